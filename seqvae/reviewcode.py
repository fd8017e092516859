"""A review code learned without labels from the sentences' posterior means.

The VAE codes single sentences; sentiment belongs to the review. Two random halves of one review
share its verdict (and its film, and its writer's habits), and two different reviews mostly do
not. So an encoder that maps a set of sentence means to one vector, trained so that the two halves
of a review find each other among the halves of the other reviews in a batch (a symmetric InfoNCE
loss), learns what a review says throughout, from unlabelled reviews alone. A logistic regression
on that code then needs few labels (`seqvae classify CKPT --curve --review-code`, `--head review`).

    code(review) = mean over its sentences s of h((μ_s - mean) / std)      h: Z -> hidden -> dim MLP

Training adds a small projection head on top of the code (used by the loss only, not saved), as
contrastive learners usually do: the code below it keeps what the projection is free to discard.
A review with no sentence gets the zero code; reviews with fewer than two sentences cannot be
split and are not trained on.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .classify import CLASSES, LinearHead, _checkpoint_error, _read_head, _write_head, fit_linear_head
from .features import ClassifyError, SentenceSet, model_sha256, sentence_features

REVIEW_HEAD_WEIGHTS = "review_classifier.safetensors"  # --train --head review
REVIEW_HEAD_CONFIG = "review_classifier.json"


def split_halves(S: SentenceSet, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Split every review of S at random into two views: (rows, view).

    rows orders S's sentences review by review, shuffled within each review; view[i] is
    2 * review + 0 for the first floor(n/2) of a review's n sentences and 2 * review + 1 for the rest.
    """
    order = np.lexsort((rng.random(len(S.owner)), S.owner))
    owner = S.owner[order]
    pos = np.arange(len(order)) - S.offsets[owner]
    second = pos >= np.diff(S.offsets)[owner] // 2
    return order, owner * 2 + second


class ReviewEncoder:
    """code(review) = mean of h(standardised μ) over the review's sentences (module docstring)."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, hidden: int = 512, dim: int = 128):
        import torch

        self.mean, self.std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
        self.hidden, self.dim, self.meta = hidden, dim, {}
        nn = torch.nn
        self.h = nn.Sequential(nn.Linear(len(self.mean), hidden), nn.GELU(), nn.Linear(hidden, dim))

    def pooled(self, mu, groups, n_groups: int):
        """(n_groups, dim) torch codes of the sentence means mu (S, Z) grouped by `groups` (S,)."""
        import torch

        v = self.h((mu - torch.from_numpy(self.mean)) / torch.from_numpy(self.std))
        counts = torch.bincount(groups, minlength=n_groups).clamp(min=1).to(v).unsqueeze(1)
        return torch.zeros(n_groups, self.dim, dtype=v.dtype).index_add(0, groups, v) / counts

    def embed(self, S: SentenceSet, batch_reviews: int = 4096) -> np.ndarray:
        """(n_reviews, dim) float32 codes of the reviews of S."""
        import torch

        self.h.eval()
        out = [np.zeros((0, self.dim), np.float32)]
        with torch.no_grad():
            for start in range(0, S.n_reviews, batch_reviews):
                part = S[np.arange(start, min(start + batch_reviews, S.n_reviews))]
                out.append(self.pooled(torch.from_numpy(part.mu), torch.from_numpy(part.owner),
                                       part.n_reviews).numpy())
        return np.concatenate(out)

    def arrays(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        weights = {f"h.{k}": v.detach().numpy().copy() for k, v in self.h.state_dict().items()}
        return {**weights, "mean": self.mean, "std": self.std}, {"hidden": self.hidden, "dim": self.dim,
                                                                 **self.meta}

    @classmethod
    def from_arrays(cls, w: dict[str, np.ndarray], cfg: dict[str, Any]) -> "ReviewEncoder":
        """The inverse of arrays(); KeyError / RuntimeError / ValueError if they do not fit."""
        import torch

        enc = cls(w["mean"], w["std"], hidden=int(cfg.pop("hidden")), dim=int(cfg.pop("dim")))
        enc.h.load_state_dict({k[2:]: torch.from_numpy(v) for k, v in w.items() if k.startswith("h.")})
        enc.h.eval()
        enc.meta = cfg
        return enc


def fit_review_encoder(U: SentenceSet, *, epochs: int = 40, batch_reviews: int = 512,
                       temperature: float = 0.1, hidden: int = 512, dim: int = 128, lr: float = 1e-3,
                       seed: int = 0, progress: bool = True) -> ReviewEncoder:
    """Train a ReviewEncoder on the unlabelled reviews U (no labels): each step splits a batch of
    reviews into halves (split_halves) and asks each half to pick its other half among the batch's
    (symmetric InfoNCE at `temperature`). Seeded; leaves torch's global RNG as it was."""
    import torch
    from tqdm.auto import tqdm

    F = torch.nn.functional
    usable = np.flatnonzero(np.diff(U.offsets) >= 2)
    if len(usable) < 2 or epochs < 1 or batch_reviews < 2 or not temperature > 0:
        raise ClassifyError("the review encoder needs at least two reviews of two or more sentences, epochs >= 1, "
                            "a batch of at least two reviews and a temperature > 0")
    rng = np.random.default_rng([seed, 104729])
    mean, std = U.mu.mean(0), U.mu.std(0) + 1e-6
    t0, losses = time.perf_counter(), []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        enc = ReviewEncoder(mean, std, hidden=hidden, dim=dim)
        proj = torch.nn.Sequential(torch.nn.Linear(dim, dim), torch.nn.GELU(), torch.nn.Linear(dim, 64))
        params = [*enc.h.parameters(), *proj.parameters()]
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
        enc.h.train()
        for _ in tqdm(range(epochs), desc="review code", unit="epoch", disable=not progress, leave=False):
            order, total, steps = rng.permutation(usable), 0.0, 0
            for start in range(0, len(order), batch_reviews):
                batch = U[order[start : start + batch_reviews]]
                if batch.n_reviews < 2:
                    continue
                rows, view = split_halves(batch, rng)
                codes = enc.pooled(torch.from_numpy(batch.mu[rows]), torch.from_numpy(view), 2 * batch.n_reviews)
                z = F.normalize(proj(codes), dim=1).view(batch.n_reviews, 2, -1)
                sim = z[:, 0] @ z[:, 1].T / temperature
                target = torch.arange(batch.n_reviews)
                loss = (F.cross_entropy(sim, target) + F.cross_entropy(sim.T, target)) / 2
                opt.zero_grad()
                loss.backward()
                opt.step()
                total, steps = total + float(loss.detach()), steps + 1
            losses.append(round(total / max(steps, 1), 4))
    enc.h.eval()
    enc.meta.update({"epochs": epochs, "batch_reviews": batch_reviews, "temperature": temperature,
                     "unlabelled_reviews": int(U.n_reviews), "trained_on": int(len(usable)), "loss": losses,
                     "seconds": round(time.perf_counter() - t0, 1)})
    return enc


class ReviewCodeHead:
    """A logistic regression on the review code: the `--head review` classifier."""

    classes = CLASSES

    def __init__(self, encoder: ReviewEncoder, linear: LinearHead):
        self.encoder, self.linear, self.meta = encoder, linear, {}

    @property
    def mean(self) -> np.ndarray:  # the sentence-μ standardisation: its length is the latent size it reads
        return self.encoder.mean

    def decision(self, S: SentenceSet) -> np.ndarray:
        """(n_reviews,) logits of the positive class."""
        return self.linear.decision(self.encoder.embed(S))

    def predict_proba(self, S: SentenceSet) -> np.ndarray:
        return self.linear.predict_proba(self.encoder.embed(S))

    def predict(self, S: SentenceSet) -> np.ndarray:
        return (self.predict_proba(S)[:, 1] > 0.5).astype(np.int64)

    def save(self, ckpt_dir: str | Path) -> tuple[Path, Path]:
        weights, cfg = self.encoder.arrays()
        weights.update({f"lr.{k}": v for k, v in self.linear.arrays().items()})
        return _write_head(Path(ckpt_dir), REVIEW_HEAD_WEIGHTS, REVIEW_HEAD_CONFIG, weights,
                           {"kind": "review_lr", "classes": list(self.classes), "encoder": cfg,
                            "linear": self.linear.meta, **self.meta})

    @classmethod
    def load(cls, ckpt_dir: str | Path) -> "ReviewCodeHead":
        d = Path(ckpt_dir)
        cfg, w = _read_head(d, REVIEW_HEAD_WEIGHTS, REVIEW_HEAD_CONFIG, "review_lr", " --head review")
        try:
            enc = ReviewEncoder.from_arrays(w, dict(cfg.pop("encoder")))
            lin = LinearHead(w["lr.coef"].astype(np.float64), float(w["lr.intercept"][0]),
                             w["lr.mean"].astype(np.float64), w["lr.std"].astype(np.float64), "review_code")
            if len(lin.coef) != enc.dim:
                raise ValueError(f"{len(lin.coef)} weights for a {enc.dim}-dimensional code")
        except (KeyError, RuntimeError, ValueError, TypeError) as e:
            raise _checkpoint_error(f"{d / REVIEW_HEAD_WEIGHTS}: inconsistent review classifier head "
                                    f"({str(e).splitlines()[0]})") from None
        lin.meta = cfg.pop("linear", {})
        head = cls(enc, lin)
        head.classes = tuple(cfg.pop("classes", CLASSES))
        head.meta = cfg
        return head


def fit_review_head(S: SentenceSet, y: np.ndarray, encoder: ReviewEncoder, *, seed: int = 0) -> ReviewCodeHead:
    """The LR head (C chosen by cross-validation, as fit_linear_head) on the codes of S's reviews."""
    return ReviewCodeHead(encoder, fit_linear_head(encoder.embed(S), y, pooling="review_code", seed=seed))


def train_review_head(vae, texts: Sequence[str], labels: np.ndarray, unlabelled: Sequence[str], *,
                      epochs: int = 40, seed: int = 0, model_id: str | None = None,
                      cache_dir: str | Path | None = None, batch_size: int = 256,
                      progress: bool = True) -> ReviewCodeHead:
    """The `--train --head review` head: a review encoder trained on the sentence means of the
    `unlabelled` reviews and of `texts` (no labels), then the LR on the codes of `texts` with
    `labels`; records provenance and the length calibration (calibrate.py) in meta."""
    from .calibrate import calibration_meta, fit_length_scales

    model_id = model_id or model_sha256(vae)
    opts = {"model_id": model_id, "cache_dir": cache_dir, "batch_size": batch_size, "progress": progress}
    S = sentence_features(vae, texts, split="train", **opts)
    U = sentence_features(vae, unlabelled, split="unsup", **opts)
    head = fit_review_head(S, labels, fit_review_encoder(U.concat(S), epochs=epochs, seed=seed, progress=progress),
                           seed=seed)
    head.meta.update({"model_sha256": model_id, "train_accuracy": float((head.predict(S) == labels).mean()),
                      **calibration_meta(fit_length_scales(head, S, labels, seed=seed), len(labels))})
    return head
