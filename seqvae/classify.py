"""Sentiment from the latent space: classifiers on posterior-mean features, baselines, label-budget curve.

    seqvae classify runs/imdb-vae --train                      # fit the LR head, save it in the checkpoint
    seqvae classify runs/imdb-vae --texts "A gem." "So dull."  # predict with the saved head
    seqvae classify runs/imdb-vae --train --head set           # the set MLP head (scores sentences, then pools)
    seqvae classify runs/imdb-vae --train --head finetuned     # that head with the encoder fine-tuned (finetune.py)
    seqvae classify runs/imdb-vae --train --head review        # LR on a review code learned without labels
    seqvae classify runs/imdb-vae --curve --out results/       # label-budget curve with baselines
    seqvae classify runs/imdb-vae --evaluate --head set        # score a saved head on the test reviews

The features come from seqvae/features.py: review -> sentences (the corpus' own splitter) ->
posterior means μ per sentence -> one vector per review (pooling), or the unpooled SentenceSet;
cached on disk. `--unit clause` cuts the sentences into clauses first (LR and set heads, curve);
a head records its unit and --texts / --calibrate read texts the same way. This module reads top to bottom:
  heads      LinearHead: logistic regression on standardised features, C picked by k-fold
             cross-validated log-loss; saved as classifier.safetensors + classifier.json (no pickle). An MLP head
             (scikit-learn) for the curve. SetMLP scores each sentence's μ with a small MLP and
             averages the scores per review, plainly or with learned attention weights (torch;
             --head set saves it as set_classifier.*); SetBag averages several of them (--set-members);
             self_train_set_mlp adds pseudo-labelled unlabelled reviews (curve --self-train).
             seqvae/finetune.py trains the set MLP end to end through the encoder (--head finetuned).
             seqvae/reviewcode.py learns a review code from unlabelled reviews' sentence μ, with
             an LR on it (--head review, curve --review-code).
  baselines  tf-idf unigram+bigram logistic regression on the cleaned text, and the same heads on
             features from an untrained encoder (same config, fixed seed).
  curve      stratified label budgets (200, 1k, 5k, all), several draws each, scored on the test set.

Latent steering along the LR head's direction is seqvae/steer.py (`seqvae steer`); the length
calibration of every head for short texts is seqvae/calibrate.py, and scoring a saved head on
labelled reviews and snippets (--evaluate) seqvae/head_eval.py.

scikit-learn (the `classify` extra) is needed to fit heads and baselines, not to predict with a
saved head; matplotlib (the `plot` extra) only for the curve's PNG.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import atomic
from .textinput import read_lines
from .features import (POOLINGS, SENTENCES, UNITS, ClassifyError, Features, SentenceSet, _cached, check_unit,
                       checkpoint_id, encode_reviews, latent_part, model_sha256, sentence_features,
                       untrained_like)

SET_POOLS = ("mean", "attention")  # how the set MLP weighs a review's sentence scores
ATTENTION_HIDDEN = 64  # hidden units of the set MLP's attention scorer g
CLASSES = ("negative", "positive")  # IMDB labels 0 and 1
DEFAULT_BUDGETS = (200, 1000, 5000, 25000)
C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)  # LR on standardised latent features
TFIDF_C_GRID = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)  # LR on tf-idf vectors
C_FOLDS = 5           # LR heads pick C by this many folds' cross-validated log-loss
HEAD_VERSION = 1
HEAD_WEIGHTS = "classifier.safetensors"
HEAD_CONFIG = "classifier.json"
SET_HEAD_WEIGHTS = "set_classifier.safetensors"  # the set MLP head (--train --head set)
SET_HEAD_CONFIG = "set_classifier.json"
REVIEW_EPOCHS = 40    # default epochs of the review code (reviewcode.py) over the unlabelled reviews


def _sklearn():
    """Import scikit-learn lazily: only fitting needs it."""
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise ClassifyError("scikit-learn is needed to fit classifiers: pip install 'seqvae[classify]'") from None
    import sklearn.feature_extraction.text
    import sklearn.linear_model
    import sklearn.neural_network
    import sklearn.pipeline
    import sklearn.preprocessing

    return sklearn


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- the linear head
def _standardise_stats(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = X.mean(0, dtype=np.float64)
    std = X.std(0, dtype=np.float64)
    std[std < 1e-8] = 1.0  # a constant feature stays 0 after centering
    return mean, std


def scaled_proba(z: np.ndarray, scale=1.0) -> np.ndarray:
    """(N, 2) p(negative), p(positive) = σ(scale · z) for positive-class logits z (scale: a number,
    or one per row: calibrate.py's length scales)."""
    p1 = 1.0 / (1.0 + np.exp(-scale * np.asarray(z, dtype=np.float64)))
    return np.stack([1.0 - p1, p1], axis=1)


@dataclass
class LinearHead:
    """Binary logistic regression on standardised features: p(positive | x) = σ(w·(x − m)/s + b)."""

    coef: np.ndarray        # (D,) weights on standardised features, toward class 1 (positive)
    intercept: float
    mean: np.ndarray        # (D,) feature means of the training reviews
    std: np.ndarray         # (D,) feature stds (1 for constant features)
    pooling: str = "mean"
    classes: tuple[str, ...] = CLASSES
    meta: dict[str, Any] = field(default_factory=dict)  # C, cv_log_loss, n_train, model_sha256, ...

    def decision(self, X: np.ndarray) -> np.ndarray:
        """(N, D) -> (N,) logit of the positive class."""
        Xs = (np.asarray(X, dtype=np.float64) - self.mean) / self.std
        return Xs @ self.coef + self.intercept

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """(N, 2): p(negative), p(positive)."""
        return scaled_proba(self.decision(X))

    def predict(self, X: np.ndarray) -> np.ndarray:
        return (self.decision(X) > 0).astype(np.int64)

    def raw_weights(self) -> np.ndarray:
        """(D,) weights on unstandardised features: w / s (the logit's gradient in feature space)."""
        return self.coef / self.std

    def latent_direction(self, latent_dim: int) -> np.ndarray:
        """(Z,) unit vector in z-space along which the positive logit grows fastest for one sentence.

        A one-sentence review has features [μ] ("mean"), [μ, μ] ("meanmax") or [μ, logσ²]
        ("mean_logvar"), so the gradient w.r.t. μ sums the raw weights of the μ columns.
        """
        w = self.raw_weights()
        g = sum(w[s] for s in latent_part(self.pooling, latent_dim))
        n = np.linalg.norm(g)
        if n == 0:
            raise ClassifyError("the classifier's weights on the latent are all zero: no direction to steer along")
        return g / n

    # -- persistence: safetensors for arrays, JSON for the rest
    def arrays(self) -> dict[str, np.ndarray]:
        """The saved weights (float64); reviewcode's head stores them beside its coder's."""
        return {"coef": self.coef.astype(np.float64), "intercept": np.array([self.intercept], dtype=np.float64),
                "mean": self.mean.astype(np.float64), "std": self.std.astype(np.float64)}

    def save(self, ckpt_dir: str | Path) -> tuple[Path, Path]:
        cfg = {"kind": "logreg", "pooling": self.pooling, "classes": list(self.classes),
               "feature_dim": int(self.coef.shape[0]), **self.meta}
        return _write_head(Path(ckpt_dir), HEAD_WEIGHTS, HEAD_CONFIG, self.arrays(), cfg)

    @classmethod
    def load(cls, ckpt_dir: str | Path) -> "LinearHead":
        d = Path(ckpt_dir)
        cfg, w = _read_head(d, HEAD_WEIGHTS, HEAD_CONFIG, "logreg", "")
        try:
            head = cls(coef=w["coef"], intercept=float(w["intercept"][0]), mean=w["mean"], std=w["std"],
                       pooling=cfg.pop("pooling"), classes=tuple(cfg.pop("classes")))
        except KeyError as e:
            raise _checkpoint_error(f"{d}: unreadable classifier head (missing {e})") from None
        if head.pooling not in POOLINGS or not (len(head.coef) == len(head.mean) == len(head.std)):
            raise _checkpoint_error(f"{d / HEAD_CONFIG}: inconsistent classifier head")
        head.meta = cfg
        return head


def _checkpoint_error(msg: str) -> Exception:
    from .checkpoint import CheckpointError  # imports torch: only when there is an error to raise

    return CheckpointError(msg)


def _write_head(d: Path, weights_name: str, config_name: str, weights: dict[str, np.ndarray],
                cfg: dict[str, Any]) -> tuple[Path, Path]:
    """Arrays to safetensors, the rest to JSON (after a format number), both atomically."""
    from safetensors.numpy import save_file

    atomic.write_with(d / weights_name, lambda tmp: save_file(weights, str(tmp), metadata={"format": "np"}))
    atomic.write_json(d / config_name, {"format": HEAD_VERSION, **cfg})
    return d / weights_name, d / config_name


def _read_head(d: Path, weights_name: str, config_name: str, kind: str, train_flag: str) -> tuple[dict, dict]:
    """(config dict without format/kind/feature_dim, numpy weights) of a saved head; one-line
    CheckpointError otherwise. feature_dim is written for readers of the JSON; the weights' shapes rule."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    if not (d / weights_name).is_file() or not (d / config_name).is_file():
        raise _checkpoint_error(f"{d}: no classifier head ({weights_name}); fit one with "
                                f"`seqvae classify {d} --train{train_flag}`")
    try:
        cfg = json.loads((d / config_name).read_text(encoding="utf-8"))
        w = load_file(str(d / weights_name))
    except (json.JSONDecodeError, UnicodeDecodeError, SafetensorError, OSError) as e:
        raise _checkpoint_error(f"{d}: unreadable classifier head ({str(e).splitlines()[0]})") from None
    if cfg.pop("format", HEAD_VERSION) > HEAD_VERSION or cfg.pop("kind", "logreg") != kind:
        raise _checkpoint_error(f"{d / config_name}: classifier head of an unknown format or kind")
    cfg.pop("feature_dim", None)
    return cfg, w


# ---------------------------------------------------------------------------- fitting
def stratified_sample(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of `n` items drawn without replacement, keeping the class proportions.

    Each class gets floor(n · share); the leftover goes to the classes with the largest remainders.
    """
    labels = np.asarray(labels)
    if not 0 < n <= len(labels):
        raise ClassifyError(f"cannot draw {n} of {len(labels)} items")
    classes, counts = np.unique(labels, return_counts=True)
    exact = n * counts / len(labels)
    quota = np.floor(exact).astype(np.int64)
    quota[np.argsort(-(exact - quota), kind="stable")[: n - quota.sum()]] += 1
    picks = [rng.choice(np.flatnonzero(labels == c), q, replace=False) for c, q in zip(classes, quota)]
    return np.sort(np.concatenate(picks))


def budget_draws(labels: np.ndarray, budget: int, draws: int, seed: int = 0) -> list[np.ndarray]:
    """The label-budget subsets: `draws` stratified draws of `budget` reviews (one: all, if budget >= N).

    Draw d of budget b uses the generator seeded with (seed, b, d): reproducible, and adding a
    budget or a draw never changes the others.
    """
    if budget >= len(labels):
        return [np.arange(len(labels))]
    return [stratified_sample(labels, budget, np.random.default_rng([seed, budget, d])) for d in range(draws)]


def _val_split(y: np.ndarray, val_frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train idx, val idx), stratified; the validation slice has at least one item per class."""
    n_cls = len(np.unique(y))
    n_val = min(max(int(round(val_frac * len(y))), n_cls), len(y) - n_cls)
    if n_cls < 2 or n_val < n_cls:
        raise ClassifyError(f"need at least two labelled examples of each class, got {len(y)} labels")
    va = stratified_sample(y, n_val, np.random.default_rng([seed, 7919]))
    tr = np.setdiff1d(np.arange(len(y)), va)
    return tr, va


def _cv_folds(y: np.ndarray, folds: int, seed: int) -> list[np.ndarray]:
    """Stratified folds of range(len(y)) (validation indices), as many as `folds` or the smaller class allows."""
    y = np.asarray(y)
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2 or counts.min() < 2:
        raise ClassifyError(f"need at least two labelled examples of each class, got {len(y)} labels")
    k = int(min(folds, counts.min()))
    rng = np.random.default_rng([seed, 7907])
    fold_of = np.empty(len(y), np.int64)
    for c in classes:  # each class dealt round-robin, in random order, over the folds
        members = rng.permutation(np.flatnonzero(y == c))
        fold_of[members] = (np.arange(len(members)) + rng.integers(k)) % k
    return [np.flatnonzero(fold_of == f) for f in range(k)]


def _select_c(fit, X, y, Cs: Sequence[float], folds: int, seed: int) -> tuple[float, dict[str, float]]:
    """The C with the lowest mean held-out log-loss over stratified folds of (X, y) (the smallest C
    wins ties: more regularisation), and each C's mean log-loss. `fit(X, y, C)` returns a model
    with predict_proba. A few dozen validation reviews decide little by accuracy (one review of 40
    is 2.5 points); log-loss over every labelled review as a held-out one varies far less."""
    y = np.asarray(y)
    losses = {C: 0.0 for C in Cs}
    for va in _cv_folds(y, folds, seed):
        tr = np.setdiff1d(np.arange(len(y)), va)
        for C in Cs:
            p = np.clip(fit(X[tr], y[tr], C).predict_proba(X[va])[:, 1], 1e-12, 1 - 1e-12)
            losses[C] -= float(np.sum(np.where(y[va] == 1, np.log(p), np.log1p(-p))))
    losses = {C: v / len(y) for C, v in losses.items()}
    best = min(Cs, key=lambda C: (losses[C], C))
    return best, {str(C): round(v, 6) for C, v in losses.items()}


def _fit_sk_logreg(X: np.ndarray, y: np.ndarray, C: float, seed: int = 0):
    sk = _sklearn()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter at tiny C / tiny data
        return sk.linear_model.LogisticRegression(C=C, max_iter=2000, random_state=seed).fit(X, y)


def fit_linear_head(X: np.ndarray, y: np.ndarray, *, pooling: str = "mean", Cs: Sequence[float] = C_GRID,
                    folds: int = C_FOLDS, seed: int = 0) -> LinearHead:
    """Standardise, pick C by cross-validated log-loss over stratified folds of (X, y) (_select_c),
    refit on all of (X, y)."""
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y)

    def fit(Xf, yf, C):
        mean, std = _standardise_stats(Xf)
        lr = _fit_sk_logreg((Xf - mean) / std, yf, C, seed)
        return LinearHead(lr.coef_[0].copy(), float(lr.intercept_[0]), mean, std, pooling)

    if len(Cs) > 1:
        C, scores = _select_c(fit, X, y, Cs, folds, seed)
    else:
        C, scores = Cs[0], {}
    head = fit(X, y, C)
    head.meta.update({"C": C, "cv_log_loss": scores, "n_train": int(len(y))})
    return head


def fit_mlp(X: np.ndarray, y: np.ndarray, *, seed: int = 0, hidden: int = 256):
    """Standardise + one-hidden-layer MLP, with early stopping on 15% of (X, y) when there are enough labels.

    Below 200 labels a 15% slice is too small to stop on (and may miss a class): train a fixed
    number of epochs with stronger weight decay instead.
    """
    sk = _sklearn()
    early = len(y) >= 200
    mlp = sk.neural_network.MLPClassifier(hidden_layer_sizes=(hidden,), alpha=1e-3 if early else 1e-2,
                                          early_stopping=early,
                                          validation_fraction=0.15, n_iter_no_change=10, max_iter=300,
                                          random_state=seed)
    model = sk.pipeline.make_pipeline(sk.preprocessing.StandardScaler(), mlp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(X, y)


def head_unit(head) -> str:
    """What a saved head reads a text as: "sentence" (every head before clauses existed) or "clause"."""
    unit = head.meta.get("unit", "sentence")
    if unit not in UNITS:
        raise _checkpoint_error(f"the classifier head reads texts as {unit!r}: this version knows "
                                f"{', '.join(UNITS)}")
    return unit


def check_set_pool(pool: str) -> None:
    if pool not in SET_POOLS:
        raise ClassifyError(f"the set classifier's pool must be one of {', '.join(SET_POOLS)}, got {pool!r}")


class _ReviewLogits:
    """predict_proba / predict of a head whose decision(S) gives the positive-class logits."""

    def predict_proba(self, S: SentenceSet) -> np.ndarray:
        import torch

        p = torch.sigmoid(torch.from_numpy(self.decision(S)).float()).numpy().astype(np.float64)
        return np.stack([1 - p, p], axis=1)

    def predict(self, S: SentenceSet) -> np.ndarray:
        return (self.predict_proba(S)[:, 1] > 0.5).astype(np.int64)


class SetMLP(_ReviewLogits):
    """A review classifier that scores sentences, then pools: logit(review) = b + sum_s w_s f(μ_s).

    f is a one-hidden-layer MLP on standardised sentence posterior means, trained (AdamW, torch)
    on review labels only. Averaging μ first (review_features) lets a linear head see only the
    mean code; scoring each sentence first lets a plainly positive sentence count as such whatever
    else the review says. The weights w_s: pool="mean" gives every sentence of a review the same
    1/n; pool="attention" learns them, w = softmax over the review's sentences of g(μ_s) (a second
    small MLP), so that a sentence that decides the verdict can outweigh plot summary. A review
    with no sentence gets the bias b alone.
    """

    classes = CLASSES

    def __init__(self, mean: np.ndarray, std: np.ndarray, hidden: int = 256, dropout: float = 0.3,
                 pool: str = "mean"):
        import torch

        check_set_pool(pool)
        self.mean, self.std = mean.astype(np.float32), std.astype(np.float32)
        self.hidden, self.pool, self.meta = hidden, pool, {}
        nn = torch.nn
        # one module holding every trainable part (finetune moves, trains and snapshots it whole);
        # its state_dict names (f.*, g.*, b) are the saved ones
        self.net = nn.Module()
        self.net.f = nn.Sequential(nn.Dropout(0.1), nn.Linear(len(mean), hidden), nn.GELU(), nn.Dropout(dropout),
                                   nn.Linear(hidden, 1))
        if pool == "attention":
            self.net.g = nn.Sequential(nn.Linear(len(mean), ATTENTION_HIDDEN), nn.Tanh(),
                                       nn.Linear(ATTENTION_HIDDEN, 1))
        self.net.b = nn.Parameter(torch.zeros(()))

    @property
    def b(self):
        return self.net.b

    def logits(self, S: SentenceSet):
        import torch

        return self.pooled_logits(torch.from_numpy(S.mu), torch.from_numpy(S.owner), S.n_reviews)

    def pooled_logits(self, mu, owner, n_reviews: int):
        """(n_reviews,) logits from sentence means mu (S, Z) and their review index owner (S,), torch
        tensors (mu may carry gradients: finetune trains the encoder through this)."""
        import torch

        x = (mu - torch.from_numpy(self.mean).to(mu)) / torch.from_numpy(self.std).to(mu)
        per = self.net.f(x).squeeze(1)
        owner = owner.to(per.device)
        zeros = torch.zeros(n_reviews, dtype=per.dtype, device=per.device)
        if self.pool == "attention":  # softmax of g within each review
            a = self.net.g(x).squeeze(1)
            top = torch.full_like(zeros, -torch.inf).scatter_reduce(0, owner, a.detach(), "amax")
            e = torch.exp(a - top[owner])
            return self.net.b + zeros.index_add(0, owner, e * per) / zeros.index_add(0, owner, e).clamp(min=1e-30)
        counts = torch.bincount(owner, minlength=n_reviews).clamp(min=1).to(per)
        return self.net.b + zeros.index_add(0, owner, per) / counts

    def decision(self, S: SentenceSet) -> np.ndarray:
        """(n_reviews,) float64 logits of the positive class (eval mode, no gradients)."""
        import torch

        self.net.eval()
        with torch.no_grad():
            return self.logits(S).numpy().astype(np.float64)

    def arrays(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(weights, config) as saved; finetune stores them beside its encoder weights."""
        weights = {k: v.detach().cpu().numpy().copy() for k, v in self.net.state_dict().items()}
        weights.update(b=weights["b"].reshape(1), mean=self.mean, std=self.std)
        return weights, {"classes": list(self.classes), "feature_dim": len(self.mean), "hidden": self.hidden,
                         "pool": self.pool, **self.meta}

    @classmethod
    def from_arrays(cls, w: dict[str, np.ndarray], cfg: dict[str, Any], where: Path) -> "SetMLP":
        """The inverse of arrays(); a one-line CheckpointError naming `where` if they do not fit."""
        import torch

        try:
            # heads saved before attention pooling existed have no "pool": they are mean-pooled
            head = cls(w["mean"], w["std"], hidden=int(cfg.pop("hidden")), pool=cfg.pop("pool", "mean"))
            state = {k: torch.from_numpy(v) for k, v in w.items() if k not in ("mean", "std")}
            head.net.load_state_dict({**state, "b": state["b"].reshape(())})
        except (KeyError, RuntimeError, ValueError, ClassifyError) as e:
            raise _checkpoint_error(f"{where}: inconsistent set classifier head ({str(e).splitlines()[0]})") from None
        head.net.eval()
        head.classes = tuple(cfg.pop("classes", CLASSES))
        head.meta = cfg
        return head

    def save(self, ckpt_dir: str | Path) -> tuple[Path, Path]:
        weights, cfg = self.arrays()
        return _write_head(Path(ckpt_dir), SET_HEAD_WEIGHTS, SET_HEAD_CONFIG, weights, {"kind": "set_mlp", **cfg})

    @classmethod
    def load(cls, ckpt_dir: str | Path) -> "SetMLP | SetBag":
        """The saved set head: a SetMLP, or a SetBag where the file holds several (--set-members)."""
        d = Path(ckpt_dir)
        cfg, w = _read_head(d, SET_HEAD_WEIGHTS, SET_HEAD_CONFIG, "set_mlp", " --head set")
        if "members" in cfg:
            return SetBag.from_arrays(w, cfg, d / SET_HEAD_WEIGHTS)
        return cls.from_arrays(w, cfg, d / SET_HEAD_WEIGHTS)


class SetBag(_ReviewLogits):
    """Several SetMLP heads fitted with different seeds (so on different held-out slices and
    orders) whose logits are averaged: a review's logit is the members' mean logit. Saved in the
    set head's files, each member's arrays under "m{i}."; the members share the unit and the
    length calibration, which live in the bag's meta."""

    def __init__(self, members: Sequence[SetMLP], meta: dict[str, Any] | None = None):
        if not members:
            raise ClassifyError("a bag of set heads needs at least one member")
        self.members = list(members)
        first = self.members[0]
        self.mean, self.pool, self.hidden, self.classes = first.mean, first.pool, first.hidden, first.classes
        self.meta = dict(meta or {})

    def decision(self, S: SentenceSet) -> np.ndarray:
        return np.mean([m.decision(S) for m in self.members], axis=0)

    def arrays(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        weights, cfg = {}, {"classes": list(self.classes), "members": len(self.members), **self.meta}
        for i, m in enumerate(self.members):
            w, c = m.arrays()
            weights.update({f"m{i}.{k}": v for k, v in w.items()})
            cfg[f"m{i}"] = {k: c[k] for k in ("feature_dim", "hidden", "pool")}
        return weights, cfg

    @classmethod
    def from_arrays(cls, w: dict[str, np.ndarray], cfg: dict[str, Any], where: Path) -> "SetBag":
        try:
            n = int(cfg.pop("members"))
            members = [SetMLP.from_arrays({k[len(f"m{i}."):]: v for k, v in w.items() if k.startswith(f"m{i}.")},
                                          dict(cfg.pop(f"m{i}")), where) for i in range(n)]
        except (KeyError, TypeError, ValueError) as e:
            raise _checkpoint_error(f"{where}: inconsistent bag of set classifier heads ({e})") from None
        classes = tuple(cfg.pop("classes", CLASSES))
        bag = cls(members, cfg)
        bag.classes = classes
        return bag

    save = SetMLP.save  # the same files, the members' arrays inside


def fit_set_mlp(S: SentenceSet, y: np.ndarray, *, seed: int = 0, hidden: int = 256, pool: str = "mean",
                epochs: int = 40, batch_reviews: int = 128, patience: int = 6, val_frac: float = 0.15,
                extra: tuple[SentenceSet, np.ndarray] | None = None, refit: bool = True) -> SetMLP:
    """Fit a SetMLP (`pool` mean or attention) on the reviews of S with labels y.

    From 200 labels on, 15% of them (stratified) are held out and the epoch with the best held-out
    accuracy (then loss) is chosen, stopping after `patience` epochs without one. refit=True then
    trains a fresh head (same seed) on all the labelled reviews for that many epochs, so that the
    held-out slice is not lost to the final head (on a 12,500-review dev split of IMDB train, +0.3
    to +0.4 points; docs/results.md); refit=False keeps the early-stopped head, whose held-out
    reviews it has never seen (finetune.py needs that). Below 200 labels a fixed number of epochs
    with stronger weight decay (as fit_mlp). meta["val_accuracy"] is the early-stopped head's on
    the held-out slice. Seeded, and leaves torch's global RNG as it was. `extra` (reviews,
    labels), e.g. pseudo-labelled ones, join the training part only, never the held-out one.
    """
    import torch

    y = np.asarray(y, dtype=np.int64)
    if len(y) != S.n_reviews or len(np.unique(y)) < 2:
        raise ClassifyError("the set classifier needs one label per review and both classes")
    n_labelled = len(y)
    early = n_labelled >= 200
    fit_idx, val_idx = _val_split(y, val_frac, seed) if early else (np.arange(len(y)), np.zeros(0, np.int64))
    if extra is not None and len(extra[1]):
        S, y = S.concat(extra[0]), np.concatenate([y, np.asarray(extra[1], dtype=np.int64)])
        fit_idx = np.concatenate([fit_idx, np.arange(n_labelled, len(y))])
    with torch.random.fork_rng(devices=[]):
        model, best_epoch, best = _train_set_mlp(S, y, fit_idx, val_idx, epochs if early else max(epochs // 2, 1),
                                                 seed=seed, hidden=hidden, pool=pool, batch_reviews=batch_reviews,
                                                 patience=patience, weight_decay=1e-2 if early else 1e-1)
        if early and refit:  # best_epoch >= 1: the first epoch always beats the (-1, 0) start
            fit_idx = np.arange(len(y))
            model, _, _ = _train_set_mlp(S, y, fit_idx, val_idx[:0], best_epoch, seed=seed, hidden=hidden,
                                         pool=pool, batch_reviews=batch_reviews, patience=patience, weight_decay=1e-2)
    model.meta.update({"n_train": n_labelled, "n_fit": int(len(fit_idx)),
                       **({"n_pseudo": len(y) - n_labelled} if extra is not None else {}),
                       **({"val_accuracy": best[0], "epochs": best_epoch, "refit": refit} if early else {})})
    return model


def _train_set_mlp(S: SentenceSet, y: np.ndarray, fit_idx: np.ndarray, val_idx: np.ndarray, epochs: int, *,
                   seed: int, hidden: int, pool: str, batch_reviews: int, patience: int,
                   weight_decay: float) -> tuple[SetMLP, int, tuple[float, float]]:
    """One AdamW run of fit_set_mlp on the reviews fit_idx, features standardised on their rows:
    (head in eval mode, best epoch, its (accuracy, -loss) on val_idx). With held-out reviews the
    head of the best epoch is kept and training stops `patience` epochs after it; without, all
    `epochs` run (best epoch = epochs)."""
    import torch

    bce = torch.nn.functional.binary_cross_entropy_with_logits
    train_rows = S[fit_idx].mu
    mean, std = train_rows.mean(0), train_rows.std(0) + 1e-6
    rng = np.random.default_rng([seed, 7919])
    torch.manual_seed(seed)
    model = SetMLP(mean, std, hidden=hidden, pool=pool)
    opt = torch.optim.AdamW(model.net.parameters(), lr=1e-3, weight_decay=weight_decay)
    val, y_val = S[val_idx], torch.from_numpy(y[val_idx]).float()
    best, best_epoch, best_state, since = (-1.0, 0.0), epochs, None, 0
    for epoch in range(1, epochs + 1):
        model.net.train()
        order = rng.permutation(fit_idx)
        for start in range(0, len(order), batch_reviews):
            b = order[start : start + batch_reviews]
            loss = bce(model.logits(S[b]), torch.from_numpy(y[b]).float())
            opt.zero_grad()
            loss.backward()
            opt.step()
        if not len(val_idx):
            continue
        model.net.eval()
        with torch.no_grad():
            lg = model.logits(val)
            score = (float(((lg > 0).float() == y_val).float().mean()), -float(bce(lg, y_val)))
        if score > best:
            best, best_epoch, since = score, epoch, 0
            best_state = {k: v.clone() for k, v in model.net.state_dict().items()}
        else:
            since += 1
            if since >= patience:
                break
    if best_state is not None:
        model.net.load_state_dict(best_state)
    model.net.eval()
    return model, best_epoch, best


def fit_set_bag(S: SentenceSet, y: np.ndarray, *, members: int = 1, seed: int = 0,
                **fit_kwargs) -> SetMLP | SetBag:
    """`members` heads of fit_set_mlp (seeds seed, seed+1, ...) as one SetBag; members=1: the
    plain SetMLP of fit_set_mlp(seed=seed)."""
    if members < 1:
        raise ClassifyError(f"a bag of set heads needs at least one member, got {members}")
    if members == 1:
        return fit_set_mlp(S, y, seed=seed, **fit_kwargs)
    heads = [fit_set_mlp(S, y, seed=seed + i, **fit_kwargs) for i in range(members)]
    meta = {k: heads[0].meta[k] for k in ("n_train", "n_fit", "refit") if k in heads[0].meta}
    meta.update({f"{k}_per_member": [h.meta[k] for h in heads]
                 for k in ("val_accuracy", "epochs") if k in heads[0].meta})
    return SetBag(heads, meta)


def pseudo_label(p_positive: np.ndarray, frac: float) -> tuple[np.ndarray, np.ndarray]:
    """The `frac` of the unlabelled reviews a head is surest of (by its P(positive)), half of them
    per class: (indices, labels)."""
    if not 0.0 < frac <= 1.0:
        raise ClassifyError(f"the pseudo-labelled fraction must be in (0, 1], got {frac}")
    k = int(frac * len(p_positive)) // 2
    order = np.argsort(p_positive, kind="stable")  # most negative first
    return np.concatenate([order[:k], order[len(order) - k:]]), np.repeat(np.array([0, 1], np.int64), k)


def self_train_set_mlp(S: SentenceSet, y: np.ndarray, U: SentenceSet, *, rounds: int = 1, frac: float = 0.5,
                       seed: int = 0, **fit_kwargs) -> SetMLP:
    """Self-training: fit on the labelled reviews S, then `rounds` times label the unlabelled
    reviews U with the current head and refit on S plus the confident part of U (pseudo_label).
    Early stopping still holds out real labels only. `fit_kwargs` go to fit_set_mlp."""
    head = fit_set_mlp(S, y, seed=seed, **fit_kwargs)
    for _ in range(rounds):
        idx, y_pseudo = pseudo_label(head.predict_proba(U)[:, 1], frac)
        head = fit_set_mlp(S, y, seed=seed, extra=(U[idx], y_pseudo), **fit_kwargs)
    head.meta.update({"self_training_rounds": rounds, "unlabelled": len(U)})
    return head


class TfidfLR:
    """The bag-of-n-grams baseline: tf-idf of unigrams + bigrams, logistic regression.

    The vectorizer (vocabulary, idf) is fitted once on the unlabelled train reviews, which the
    VAE also saw without labels; the label budget only limits what the logistic regression sees.
    """

    def __init__(self, min_df: int = 2):
        sk = _sklearn()
        self.vectorizer = sk.feature_extraction.text.TfidfVectorizer(ngram_range=(1, 2), min_df=min_df,
                                                                     sublinear_tf=True, dtype=np.float32)

    def fit_transform(self, texts: Sequence[str]):
        return self.vectorizer.fit_transform(texts)

    def transform(self, texts: Sequence[str]):
        return self.vectorizer.transform(texts)


def fit_tfidf_lr(X, y: np.ndarray, *, Cs: Sequence[float] = TFIDF_C_GRID, folds: int = C_FOLDS, seed: int = 0):
    """Logistic regression on (sparse) tf-idf rows, C picked as fit_linear_head picks it."""
    y = np.asarray(y)

    def fit(Xf, yf, C):
        sk = _sklearn()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return sk.linear_model.LogisticRegression(C=C, solver="liblinear", max_iter=1000).fit(Xf, yf)

    C, _ = _select_c(fit, X, y, Cs, folds, seed) if len(Cs) > 1 else (Cs[0], {})
    return fit(X, y, C)


def self_train_tfidf_lr(X, y: np.ndarray, X_unlabelled, *, rounds: int = 1, frac: float = 0.5, seed: int = 0):
    """The tf-idf baseline self-trained like self_train_set_mlp (same pseudo-labels rule), so that
    the two can be compared fairly; C is picked once, on the real labels, and kept."""
    import scipy.sparse as sp

    lr = fit_tfidf_lr(X, y, seed=seed)
    for _ in range(rounds):
        idx, y_pseudo = pseudo_label(lr.predict_proba(X_unlabelled)[:, 1], frac)
        lr = fit_tfidf_lr(sp.vstack([X, X_unlabelled[idx]]), np.concatenate([y, y_pseudo]), Cs=(float(lr.C),))
    return lr


def review_as_text(text: str) -> str:
    """A review as the corpus sees it: cleaned sentences joined by spaces (the tf-idf input)."""
    from .corpus import review_to_sentences

    return " ".join(review_to_sentences(text))


# ---------------------------------------------------------------------------- label-budget curve
@dataclass
class Method:
    """One row of the curve: a head (`lr`, `mlp`, `set`, `set_self`, `tfidf`, `tfidf_self` or
    `finetuned`) on a feature pair."""

    name: str        # key in the JSON, e.g. "vae_lr"
    label: str       # row label in the table and legend
    kind: str        # lr | mlp | set | set_self | tfidf | tfidf_self | finetuned
    X_train: Any     # (N_train, D) array; a SentenceSet for set; a sparse matrix for tfidf;
                     # texts (object array) for finetuned
    X_test: Any      # (N_test, D)
    unlabelled: Any = None  # set_self / tfidf_self: the unlabelled reviews' SentenceSet / tf-idf rows
    vae: Any = None         # finetuned: the model whose encoder is tuned (a copy is; it is left as it was)
    options: dict[str, Any] = field(default_factory=dict)  # set, set_self, finetuned: keyword arguments of their fit


def _fit_predict(m: Method, idx: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    Xtr = m.X_train[idx]
    if m.kind == "lr":
        head = fit_linear_head(Xtr, y, seed=seed)
        return head.predict(m.X_test), {"C": head.meta["C"]}
    if m.kind == "mlp":
        return fit_mlp(Xtr, y, seed=seed).predict(m.X_test), {}
    if m.kind == "set":
        return fit_set_bag(Xtr, y, seed=seed, **m.options).predict(m.X_test), {}
    if m.kind == "set_self":
        head = self_train_set_mlp(Xtr, y, m.unlabelled, seed=seed, **m.options)
        return head.predict(m.X_test), {"pseudo_labelled": head.meta["n_pseudo"]}
    if m.kind == "tfidf":
        lr = fit_tfidf_lr(Xtr, y, seed=seed)
        return lr.predict(m.X_test), {"C": float(lr.C)}
    if m.kind == "tfidf_self":
        lr = self_train_tfidf_lr(Xtr, y, m.unlabelled, seed=seed)
        return lr.predict(m.X_test), {"C": float(lr.C)}
    if m.kind == "finetuned":
        from .finetune import finetune_set_head

        ft = finetune_set_head(m.vae, list(Xtr), y, seed=seed, progress=False, **m.options)
        info = ("best_epoch", "epochs_run", "neg_elbo_frozen", "neg_elbo_tuned")
        return ft.predict(m.vae, list(m.X_test)), {k: ft.meta[k] for k in info if k in ft.meta}
    raise ValueError(f"unknown head kind {m.kind!r}")


def label_budget_curve(methods: Sequence[Method], y_train: np.ndarray, y_test: np.ndarray, *,
                       budgets: Sequence[int] = DEFAULT_BUDGETS, draws: int = 5, seed: int = 0,
                       progress: bool = True) -> dict[str, Any]:
    """Test accuracy of every method at every label budget: mean ± std over stratified draws.

    Budgets at or above the number of train reviews collapse into one "all" budget (one draw).
    Every method sees the same draws. std is the sample std (ddof=1); 0 for a single draw.
    """
    from tqdm.auto import tqdm

    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    n = len(y_train)
    sizes = sorted({min(int(b), n) for b in budgets})
    if not sizes or sizes[0] < 1:
        raise ClassifyError("budgets must be positive integers")
    subsets = {b: budget_draws(y_train, b, draws, seed) for b in sizes}
    jobs = [(m, b, d) for m in methods for b in sizes for d in range(len(subsets[b]))]
    res: dict[str, Any] = {m.name: {"label": m.label, "kind": m.kind, "budgets": {}} for m in methods}
    for m, b, d in tqdm(jobs, desc="curve", unit="fit", disable=not progress, leave=False):
        idx = subsets[b][d]
        t0 = time.perf_counter()
        pred, info = _fit_predict(m, idx, y_train[idx], seed + d)
        row = res[m.name]["budgets"].setdefault(str(b), {"runs": [], "fit": []})
        row["runs"].append(float((pred == y_test).mean()))
        row["fit"].append({**info, "seconds": round(time.perf_counter() - t0, 2)})
    for m in methods:
        for row in res[m.name]["budgets"].values():
            runs = np.asarray(row["runs"])
            row["mean"] = float(runs.mean())
            row["std"] = float(runs.std(ddof=1)) if len(runs) > 1 else 0.0
    return {"budgets": sizes, "draws": draws, "seed": seed, "n_train_pool": n, "n_test": int(len(y_test)),
            "methods": res}


def curve_markdown(curve: dict[str, Any]) -> str:
    """Methods x budgets table of test accuracy (%), mean ± std over draws."""
    sizes = curve["budgets"]
    n = curve["n_train_pool"]
    head = [f"{b:,}" + (" (all)" if b == n else "") for b in sizes]
    lines = ["| method | " + " | ".join(head) + " |", "|---|" + "---:|" * len(sizes)]
    for m in curve["methods"].values():
        cells = []
        for b in sizes:
            row = m["budgets"][str(b)]
            cell = f"{100 * row['mean']:.1f}"
            cells.append(cell + (f" ± {100 * row['std']:.1f}" if len(row["runs"]) > 1 else ""))
        lines.append(f"| {m['label']} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"Test accuracy (%) on {curve['n_test']:,} test reviews; labelled train reviews drawn "
                 f"stratified from {n:,}; mean ± std over {curve['draws']} draws (seed {curve['seed']}) "
                 f"for budgets below all.")
    return "\n".join(lines) + "\n"


def plot_curve(curve: dict[str, Any], path: str | Path) -> Path | None:
    """Accuracy vs label budget (log x) with std error bars; None (and a notice) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        _log("matplotlib is not installed: skipping the plot (pip install 'seqvae[plot]')")
        return None
    sizes = curve["budgets"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for m in curve["methods"].values():
        mean = [100 * m["budgets"][str(b)]["mean"] for b in sizes]
        std = [100 * m["budgets"][str(b)]["std"] for b in sizes]
        ax.errorbar(sizes, mean, yerr=std, marker="o", capsize=3, label=m["label"])
    ax.set_xscale("log")
    ax.set_xticks(sizes)
    ax.set_xticklabels([f"{b:,}" for b in sizes])
    ax.minorticks_off()
    ax.set_xlabel("labelled train reviews")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"IMDB sentiment vs label budget ({curve['n_test']:,} test reviews)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


# ---------------------------------------------------------------------------- data, heads and curve end to end
def _imdb(split: str, source: str, data_root: str | Path | None):
    """corpus.load_imdb, with its own default data root unless one is given."""
    from .corpus import load_imdb

    return load_imdb(split, source=source) if data_root is None else load_imdb(split, source=source,
                                                                                data_root=str(data_root))


def load_reviews(split: str, *, source: str = "local", data_root: str | Path | None = None, max_reviews: int = 0,
                 seed: int = 0) -> tuple[list[str], np.ndarray]:
    """IMDB reviews of a split (corpus.load_imdb) and their labels; `max_reviews` > 0 keeps a
    reproducible stratified subset (the files list all negatives first, so never the first N)."""
    ds = _imdb(split, source, data_root)
    texts, labels = list(ds["text"]), np.asarray(ds["label"], dtype=np.int64)
    if 0 < max_reviews < len(texts):
        idx = stratified_sample(labels, max_reviews, np.random.default_rng([seed, 104729]))
        texts, labels = [texts[i] for i in idx], labels[idx]
    if not set(np.unique(labels)) <= {0, 1}:
        raise ClassifyError(f"imdb {split}: expected labels 0/1 (the {split} split may be unlabelled)")
    return texts, labels


def load_unlabelled(*, source: str = "local", data_root: str | Path | None = None, max_reviews: int = 0,
                    seed: int = 0) -> list[str]:
    """The 50,000 unlabelled IMDB reviews (the unsup split); `max_reviews` > 0 keeps a reproducible subset."""
    texts = list(_imdb("unsup", source, data_root)["text"])
    if 0 < max_reviews < len(texts):
        keep = np.sort(np.random.default_rng([seed, 15485863]).choice(len(texts), max_reviews, replace=False))
        texts = [texts[i] for i in keep]
    return texts


def train_head(vae, texts: Sequence[str], labels: np.ndarray, *, pooling: str = "mean", seed: int = 0,
               model_id: str | None = None, cache_dir: str | Path | None = None, split: str = "train",
               batch_size: int = 256, progress: bool = True, unit: str = "sentence") -> tuple[LinearHead, Features]:
    """Fit the LR head on the features of `texts` (pooled over their sentences, or clauses); records
    the unit, the steering unit, provenance and the length calibration (calibrate.py) in meta."""
    from .calibrate import calibration_meta, fit_length_scales

    model_id = model_id or model_sha256(vae)
    feats, S = _cached(vae, texts, [pooling, SENTENCES], split=split, model_id=model_id, tag="vae",
                       cache_dir=cache_dir, batch_size=batch_size, progress=progress,
                       logvar=pooling == "mean_logvar", unit=unit)
    head = fit_linear_head(feats.X, labels, pooling=pooling, seed=seed)
    head.meta.update(calibration_meta(fit_length_scales(head, S, labels, seed=seed), len(labels)))
    d = head.latent_direction(vae.latent_dim)
    head.meta.update({
        # std of sentence posterior means along the steering direction: the unit of steer(unit="std")
        "direction_std": float(np.sqrt(max(d @ feats.sent_cov.astype(np.float64) @ d, 0.0))),
        "model_sha256": model_id, "train_accuracy": float((head.predict(feats.X) == labels).mean()),
        "features": {k: v for k, v in feats.summary().items() if k not in ("seconds", "cached")},
        **({"unit": unit} if unit != "sentence" else {}),
    })
    return head, feats


def train_set_head(vae, texts: Sequence[str], labels: np.ndarray, *, seed: int = 0, model_id: str | None = None,
                   cache_dir: str | Path | None = None, split: str = "train", batch_size: int = 256,
                   pool: str = "mean", progress: bool = True, unit: str = "sentence", refit: bool = True,
                   members: int = 1) -> SetMLP | SetBag:
    """Fit the set MLP head (`pool` mean or attention; `refit` as fit_set_mlp; `members` > 1: a
    SetBag of that many, fit_set_bag) on the sentences (or clauses) of `texts`; records the unit,
    provenance and the length calibration (calibrate.py) in meta."""
    from .calibrate import calibration_meta, fit_length_scales

    model_id = model_id or model_sha256(vae)
    S = sentence_features(vae, texts, split=split, model_id=model_id, cache_dir=cache_dir, batch_size=batch_size,
                          progress=progress, unit=unit)
    head = fit_set_bag(S, labels, members=members, seed=seed, pool=pool, refit=refit)
    head.meta.update({"model_sha256": model_id, "train_accuracy": float((head.predict(S) == labels).mean()),
                      f"{unit}s": int(len(S.mu)),
                      **({"unit": unit} if unit != "sentence" else {}),
                      **calibration_meta(fit_length_scales(head, S, labels, seed=seed), len(labels))})
    return head


def predict_texts(vae, head, texts: Sequence[str], batch_size: int = 256,
                  length_scales: Sequence[float] | None = None) -> list[dict[str, Any]]:
    """Sentiment of each text (a review or a sentence) with a saved head (LinearHead, SetMLP or
    reviewcode.ReviewCodeHead): label, probabilities and its number of sentences (and of clauses,
    for a head that reads clauses). With length scales (`length_scales`, else the head's meta;
    seqvae/calibrate.py) a text of n sentences (clauses) has p = σ(s_n · logit): short texts are
    not read as surely as whole reviews."""
    from .calibrate import length_scale
    from .corpus import review_to_sentences

    unit = head_unit(head)
    enc = encode_reviews(vae, texts, batch_size=batch_size, progress=False, unit=unit)
    if not isinstance(head, LinearHead):  # heads that read the sentences' μ, not a pooled vector
        X, want, got = enc.sentence_set(), len(head.mean), enc.mu.shape[1]
    else:
        X = enc.features(head.pooling).X
        want, got = len(head.coef), X.shape[1]
    if got != want:
        raise ClassifyError(f"the classifier head expects {want} features, this model gives {got}: "
                            f"refit it with --train")
    n_units = np.bincount(enc.owner, minlength=len(texts))
    if n_empty := int((n_units == 0).sum()):
        _log(f"warning: {n_empty} text(s) have no sentence: predicted from the bias alone")
    scales = length_scales if length_scales is not None else head.meta.get("length_scales")
    if scales:  # every head's decision() reads its own X: pooled features, or the sentence set
        proba = scaled_proba(head.decision(X), length_scale(scales, n_units))
    else:
        proba = head.predict_proba(X)
    n_sent = n_units if unit == "sentence" else [len(review_to_sentences(t)) for t in texts]
    return [{"text": t, "label": head.classes[int(p[1] > 0.5)], "p_" + head.classes[0]: float(p[0]),
             "p_" + head.classes[1]: float(p[1]), "sentences": int(ns),
             **({"clauses": int(n)} if unit == "clause" else {})}
            for t, p, ns, n in zip(texts, proba, n_sent, n_units)]


def run_curve(vae, out_dir: str | Path, *, model_id: str, pooling: str = "mean",
              budgets: Sequence[int] = DEFAULT_BUDGETS, draws: int = 5, max_train_reviews: int = 0,
              max_test_reviews: int = 0, seed: int = 0, source: str = "local", data_root: str | Path | None = None,
              cache_dir: str | Path | None = None, baselines: bool = True, mlp: bool = True,
              set_mlp: bool = True, set_pool: str = "mean", set_refit: bool = True, set_members: int = 1,
              self_train: bool = False,
              max_unlabelled_reviews: int = 0, finetune: dict[str, Any] | None = None,
              review_code: dict[str, Any] | None = None, unit: str = "sentence", batch_size: int = 256,
              progress: bool = True, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The label-budget experiment: features, heads, baselines; writes curve.json, curve.md, curve.png.

    `self_train` adds the set MLP self-trained on the unlabelled reviews (self_train_set_mlp), for
    the VAE encoder only, and with the baselines the tf-idf LR self-trained the same way.
    `finetune` (finetune_set_head's options, {} for its defaults) adds the set MLP trained end to
    end through the VAE's encoder; each fit re-encodes the test reviews with its tuned encoder.
    `set_pool` (mean or attention) is the pooling of every set MLP row (plain, self-trained, fine-tuned);
    `set_refit` (fit_set_mlp's refit) applies to the plain and self-trained ones, `set_members`
    (fit_set_bag's members) to the plain one.
    `review_code` (fit_review_encoder's options, {} for its defaults) adds, for each encoder, the LR
    on a review code learned without labels (seqvae/reviewcode.py) from the sentence means of the
    unlabelled reviews and of the train reviews; one review encoder serves every budget and draw.
    `unit` "clause" gives every encoder row (LR, MLP, set MLP, self-trained) the reviews' clauses
    instead of their sentences; the fine-tuned and review-code rows read sentences only.
    """
    out = Path(out_dir)
    _sklearn()  # fail before the expensive part
    check_set_pool(set_pool)
    check_unit(unit)
    if unit != "sentence" and (finetune is not None or review_code is not None):
        raise ClassifyError("the fine-tuned and review-code rows read sentences: drop --unit clause or them")
    tr_texts, y_tr = load_reviews("train", source=source, data_root=data_root, max_reviews=max_train_reviews, seed=seed)
    te_texts, y_te = load_reviews("test", source=source, data_root=data_root, max_reviews=max_test_reviews, seed=seed)
    train_set = set(tr_texts)
    overlap = sum(t in train_set for t in te_texts)  # aclImdb has a few test reviews that are also in train
    _log(f"{len(tr_texts):,} train / {len(te_texts):,} test reviews ({overlap} test reviews also in train)")

    pooled = "" if unit == "sentence" else f" of {unit}s"  # the LR / MLP rows' features: the units' mean
    encoders = [("vae", "VAE μ", vae, model_id)]
    if baselines:
        rand, rand_id = untrained_like(vae)
        encoders.append(("untrained", "untrained encoder μ", rand, rand_id))
    methods, feature_info = [], {}
    wants = [pooling, SENTENCES] if set_mlp or self_train or review_code is not None else [pooling]
    un_texts = (load_unlabelled(source=source, data_root=data_root, max_reviews=max_unlabelled_reviews, seed=seed)
                if self_train or review_code is not None else [])
    self_label = f"self-trained on {len(un_texts):,} unlabelled"
    set_opts = {"pool": set_pool, "refit": set_refit}
    set_name, set_label = ("", "") if set_pool == "mean" else (f"_{set_pool}", f" ({set_pool})")
    for tag, label, enc, ident in encoders:
        (f_tr, *s_tr), (f_te, *s_te) = (_cached(enc, texts, wants, split=split, model_id=ident, tag=tag,
                                                cache_dir=cache_dir, batch_size=batch_size, progress=progress,
                                                unit=unit)
                                        for texts, split in ((tr_texts, "train"), (te_texts, "test")))
        feature_info[tag] = {"train": f_tr.summary(), "test": f_te.summary()}
        _log(f"{tag} features: train {f_tr.summary()}, test {f_te.summary()}")
        methods.append(Method(f"{tag}_lr", f"{label}{pooled} + LR", "lr", f_tr.X, f_te.X))
        if mlp:
            methods.append(Method(f"{tag}_mlp", f"{label}{pooled} + MLP", "mlp", f_tr.X, f_te.X))
        if set_mlp:
            bag = f", {set_members} averaged" if set_members > 1 else ""
            methods.append(Method(f"{tag}_set{set_name}", f"{label} per {unit} + set MLP{set_label}{bag}", "set",
                                  s_tr[0], s_te[0], options={**set_opts, "members": set_members}))
        if (self_train and tag == "vae") or review_code is not None:
            S_un = sentence_features(enc, un_texts, split="unsup", model_id=ident, tag=tag, cache_dir=cache_dir,
                                     batch_size=batch_size, progress=progress, unit=unit)
            feature_info["unlabelled"] = {"reviews": len(un_texts), f"{unit}s": int(len(S_un.mu))}
        if review_code is not None:  # also for the untrained encoder: how much is the VAE's, how much the coder's
            from .reviewcode import fit_review_encoder

            coder = fit_review_encoder(S_un.concat(s_tr[0]), seed=seed, progress=progress, **review_code)
            feature_info[f"{tag}_review_code"] = coder.meta
            _log(f"{tag} review code: {coder.meta}")
            methods.append(Method(f"{tag}_review_lr", f"{label} per sentence -> review code + LR", "lr",
                                  coder.embed(s_tr[0]), coder.embed(s_te[0])))
        if self_train and tag == "vae":
            methods.append(Method(f"{tag}_set_self{set_name}", f"{label} per {unit} + set MLP{set_label}, "
                                  f"{self_label}", "set_self", s_tr[0], s_te[0], S_un, options=set_opts))
        if finetune is not None and tag == "vae":
            methods.append(Method(f"{tag}_finetuned{set_name}", f"fine-tuned encoder μ per sentence + set MLP"
                                  f"{set_label}", "finetuned", np.asarray(tr_texts, dtype=object),
                                  np.asarray(te_texts, dtype=object), vae=enc, options={**finetune, "pool": set_pool}))
    if baselines:
        t0 = time.perf_counter()
        vec = TfidfLR()
        X_tr = vec.fit_transform([review_as_text(t) for t in tr_texts])
        X_te = vec.transform([review_as_text(t) for t in te_texts])
        feature_info["tfidf"] = {"vocabulary": int(X_tr.shape[1]), "seconds": round(time.perf_counter() - t0, 2)}
        methods.append(Method("tfidf_lr", "tf-idf 1-2gram + LR", "tfidf", X_tr, X_te))
        if self_train:
            X_un = vec.transform([review_as_text(t) for t in un_texts])
            methods.append(Method("tfidf_lr_self", f"tf-idf 1-2gram + LR, {self_label}", "tfidf_self", X_tr, X_te,
                                  X_un))

    curve = label_budget_curve(methods, y_tr, y_te, budgets=budgets, draws=draws, seed=seed, progress=progress)
    curve.update({"pooling": pooling, "unit": unit, "features": feature_info, "test_reviews_in_train": overlap,
                  **({"set_pool": set_pool} if set_mlp or self_train or finetune is not None else {}),
                  **({"set_refit": set_refit} if set_mlp or self_train else {}),
                  **({"set_members": set_members} if set_mlp else {}),
                  **({"finetune": dict(finetune)} if finetune is not None else {}),
                  **({"review_code": dict(review_code)} if review_code is not None else {}), **(extra or {})})
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_json(out / "curve.json", curve)
    atomic.write_text(out / "curve.md", curve_markdown(curve))
    plot_curve(curve, out / "curve.png")
    return curve


# ---------------------------------------------------------------------------- command line (registered in cli.py)
def add_classify_args(p) -> None:
    p.add_argument("checkpoint", help="checkpoint dir, or a run dir (its best/)")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--train", action="store_true", help="fit the LR head on all train reviews and save it "
                      f"in the checkpoint ({HEAD_WEIGHTS} + {HEAD_CONFIG})")
    mode.add_argument("--texts", nargs="+", metavar="TEXT",
                      help="predict the sentiment of these reviews/sentences ('-': one per line from stdin)")
    mode.add_argument("--curve", action="store_true", help="label-budget curve with baselines (JSON, table, plot)")
    mode.add_argument("--calibrate", action="store_true",
                      help="fit the saved --head's length calibration (how sure it may be of a text of n "
                           "sentences) on the train reviews and save it in the head (--train does this too)")
    mode.add_argument("--evaluate", action="store_true",
                      help="score the saved --head on the labelled test reviews: accuracy, log-loss and calibration, "
                           "raw and length-calibrated (seqvae/head_eval.py)")
    p.add_argument("--snippets", default="", metavar="K,...",
                   help="--evaluate: also score one random K-sentence snippet of each test review (with at least "
                        "K sentences), labelled with its review's label: how sure the head is of short texts")
    p.add_argument("--out", help="--curve: output dir (default: CKPT/curve)")
    p.add_argument("--pooling", choices=POOLINGS, default="mean", help="sentence -> review pooling (default mean)")
    p.add_argument("--unit", choices=UNITS, default=None,
                   help="--train (linear and set heads) / --curve: encode each review's sentences (default), or "
                        "its clauses (sentences cut at , ; : ( ) dashes and before but/although/...); a saved head "
                        "records its unit, which --texts and --calibrate follow")
    p.add_argument("--head", choices=["linear", "set", "finetuned", "review"], default="linear",
                   help="--train/--texts/--calibrate: the LR head on pooled μ (default; steering uses it), the set MLP "
                        f"that scores each sentence's μ ({SET_HEAD_WEIGHTS}), that head trained end to end "
                        "through the encoder (finetuned_classifier.*; the checkpoint's model is not changed), "
                        "or the LR on a review code learned from the unlabelled reviews (review_classifier.*)")
    p.add_argument("--set-pool", choices=SET_POOLS, default="mean",
                   help="the set MLP's pooling of sentence scores (--head set/finetuned, the curve's set rows): "
                        "mean (default) or attention (learned weights per sentence; pays with thousands of labels)")
    p.add_argument("--no-refit", action="store_true",
                   help="the set MLP (--head set, the curve's set rows): keep the head early-stopped on 15%% of "
                        "the labels instead of refitting it on all of them for the epochs chosen there "
                        "(the recipe before 2026-11-30)")
    p.add_argument("--set-members", type=int, default=1,
                   help="the set MLP (--head set, the curve's set rows): average the logits of this many heads "
                        "fitted with seeds --seed, --seed+1, ... (default 1)")
    p.add_argument("--budgets", default=",".join(map(str, DEFAULT_BUDGETS)),
                   help="labelled train reviews, comma-separated")
    p.add_argument("--draws", type=int, default=5, help="stratified draws per budget below all (default 5)")
    p.add_argument("--max-train-reviews", type=int, default=0,
                   help="use a stratified subset of the train reviews (0 = all)")
    p.add_argument("--max-test-reviews", type=int, default=0,
                   help="score on a stratified subset of the test reviews (0 = all)")
    p.add_argument("--no-baselines", action="store_true", help="--curve: skip tf-idf and the untrained encoder")
    p.add_argument("--no-mlp", action="store_true", help="--curve: skip the MLP heads")
    p.add_argument("--no-set", action="store_true",
                   help="--curve: skip the set MLP (scores each sentence's μ, averages the scores)")
    p.add_argument("--self-train", action="store_true",
                   help="--curve: add the set MLP (and with the baselines the tf-idf LR) self-trained on the "
                        "unlabelled (unsup) reviews: each labels them, keeps its surest half and refits")
    p.add_argument("--review-code", action="store_true",
                   help="--curve: add the LR on a review code learned without labels from the unlabelled and "
                        "train reviews' sentence μ (two halves of a review must find each other)")
    p.add_argument("--review-epochs", type=int, default=REVIEW_EPOCHS,
                   help=f"review code: training epochs over the unlabelled reviews (default {REVIEW_EPOCHS})")
    p.add_argument("--max-unlabelled-reviews", type=int, default=0,
                   help="--self-train, --review-code, --head review: use a random subset of the 50,000 "
                        "unlabelled reviews (0 = all)")
    p.add_argument("--finetune", action="store_true",
                   help="--curve: add the set MLP trained end to end through the encoder (slow: each fit "
                        "trains the encoder and re-encodes the test reviews)")
    p.add_argument("--finetune-epochs", type=int, default=4, help="fine-tuning: most epochs (default 4)")
    p.add_argument("--finetune-lr", type=float, default=1e-4, help="fine-tuning: encoder learning rate (default 1e-4)")
    p.add_argument("--finetune-elbo", type=float, default=0.0, metavar="W",
                   help="fine-tuning: add W x the sentences' -ELBO under the frozen decoder to the loss, so that "
                        "the tuned encoder stays a posterior of the model (default 0)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--source", choices=["local", "hub"], default="local", help="where IMDB comes from (default local)")
    p.add_argument("--data-root", help="folder holding imdb/*.jsonl.gz (default: the corpus module's)")
    p.add_argument("--cache-dir", help="feature cache (default: CKPT/features)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write cached features")
    p.add_argument("--batch-size", type=int, default=256, help="sentences per encoder batch")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda if available)")
    p.add_argument("--json", action="store_true", help="--texts, --evaluate: print JSON")
    p.add_argument("--no-progress", action="store_true")


def _split_values(text: str, flag: str, cast, what: str) -> list:
    """The comma-separated values of a command-line list, each through `cast`; one-line error otherwise."""
    try:
        return [cast(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ClassifyError(f"{flag}: expected comma-separated {what}, got {text!r}") from None


def _parse_budgets(text: str) -> list[int]:
    budgets = _split_values(text, "--budgets", lambda b: int(b.replace("_", "")), "integers")
    if not budgets or min(budgets) < 4:
        raise ClassifyError("--budgets: every budget must be an integer >= 4 (two reviews of each class, the "
                            "fewest that cross-validation can choose C with)")
    return budgets


def _parse_ints(text: str, flag: str) -> list[int]:
    values = _split_values(text, flag, int, "integers")
    if not values or min(values) < 0:
        raise ClassifyError(f"{flag}: expected integers >= 0, got {text!r}")
    return values


def _parse_floats(text: str, flag: str) -> list[float]:
    values = _split_values(text, flag, float, "numbers")
    if not values or not all(np.isfinite(values)) or min(values) < 0:
        raise ClassifyError(f"{flag}: expected finite numbers >= 0, got {text!r}")
    return values


def _latent_model(ckpt: Path, device: str | None):
    from .api import SeqVAE

    vae = SeqVAE.from_pretrained(ckpt, device=device)
    if not vae.latent:
        raise ClassifyError(f"{ckpt} is a language model (latent=False): it has no posterior to classify or steer")
    return vae


def run_classify(args) -> int:
    from .checkpoint import resolve

    from .calibrate import calibrate_head
    from .finetune import FinetunedHead, finetune_set_head
    from .reviewcode import ReviewCodeHead, train_review_head

    ckpt = resolve(args.checkpoint)
    if args.curve and args.out:
        atomic.check_dir_path(args.out)  # before hours of work
    head_cls = {"set": SetMLP, "linear": LinearHead, "finetuned": FinetunedHead, "review": ReviewCodeHead}[args.head]
    set_head = args.head == "set"
    if args.finetune_epochs < 1 or not args.finetune_lr > 0 or not args.finetune_elbo >= 0:
        raise ClassifyError("--finetune-epochs must be >= 1, --finetune-lr > 0 and --finetune-elbo >= 0")
    if args.review_epochs < 1:
        raise ClassifyError("--review-epochs must be >= 1")
    if args.set_members < 1:
        raise ClassifyError("--set-members must be >= 1")
    if args.batch_size < 1 or args.seed < 0:
        raise ClassifyError("--batch-size must be >= 1 and --seed >= 0")
    if min(args.max_train_reviews, args.max_test_reviews, args.max_unlabelled_reviews) < 0:
        raise ClassifyError("--max-train-reviews, --max-test-reviews and --max-unlabelled-reviews must be >= 0 "
                            "(0 = all)")
    if 0 < args.max_train_reviews < 4:
        raise ClassifyError("--max-train-reviews: at least 4 (two of each class), or 0 for all")
    snippets = _parse_ints(args.snippets, "--snippets") if args.snippets.strip() else []
    if snippets and (not args.evaluate or min(snippets) < 1):
        raise ClassifyError("--snippets: sentence counts >= 1, with --evaluate")
    ft_options = {"epochs": args.finetune_epochs, "lr": args.finetune_lr, "elbo_weight": args.finetune_elbo}
    unit = args.unit or "sentence"
    if args.train and unit != "sentence" and args.head in ("finetuned", "review"):
        raise ClassifyError(f"--head {args.head} reads sentences: --unit clause works with the linear and set heads")

    def check_head_unit(head) -> None:  # --texts / --calibrate follow the head's unit
        if args.unit and args.unit != head_unit(head):
            raise ClassifyError(f"this head reads {head_unit(head)}s, not {args.unit}s: leave out --unit, "
                                f"or refit the head with --train --unit {args.unit}")

    if args.texts:
        texts = list(args.texts)
        if texts == ["-"]:
            texts = read_lines(sys.stdin, "stdin")
            if not texts:
                raise ClassifyError("--texts -: no texts on stdin")
        # the head before the model: a missing head fails fast
        head = head_cls.load(ckpt)
        check_head_unit(head)
        vae = _latent_model(ckpt, args.device)
        if head.meta.get("model_sha256") not in (None, checkpoint_id(ckpt)):
            _log(f"warning: the classifier head was fitted on other weights than {ckpt}; refit with --train")
        scales = head.meta.get("length_scales")
        if not scales:
            _log(f"note: this head has no length calibration, so a short text is read as surely as a review; "
                 f"add it with `seqvae classify {ckpt} --calibrate --head {args.head}`")
        if isinstance(head, FinetunedHead):
            vae, head = head.apply(vae), head.head
        rows = predict_texts(vae, head, texts, batch_size=args.batch_size, length_scales=scales)
        if args.json:
            print(json.dumps(rows, indent=2))
        for r in rows if not args.json else []:
            snippet = r["text"] if len(r["text"]) <= 70 else r["text"][:67] + "..."
            print(f"{r['label']:<8} p_positive={r['p_positive']:.3f}  {snippet}")
        return 0

    if args.draws < 1:
        raise ClassifyError("--draws must be >= 1")
    budgets = _parse_budgets(args.budgets)
    vae = _latent_model(ckpt, args.device)
    model_id = checkpoint_id(ckpt)
    cache_dir = None if args.no_cache else Path(args.cache_dir) if args.cache_dir else ckpt / "features"
    progress = not args.no_progress
    if args.calibrate or args.evaluate:
        head = head_cls.load(ckpt)
        check_head_unit(head)
        if head.meta.get("model_sha256") not in (None, model_id):
            raise ClassifyError(f"the classifier head was fitted on other weights than {ckpt}: refit it with --train")
    if args.evaluate:
        from .head_eval import evaluate_head, evaluation_markdown

        texts, labels = load_reviews("test", source=args.source, data_root=args.data_root,
                                     max_reviews=args.max_test_reviews, seed=args.seed)
        rows = evaluate_head(vae, head, texts, labels, snippets=snippets, seed=args.seed, model_id=model_id,
                             cache_dir=cache_dir, batch_size=args.batch_size, progress=progress)
        print(json.dumps(rows, indent=2) if args.json else evaluation_markdown(rows, head_unit(head)).rstrip())
        return 0
    if args.calibrate:
        texts, labels = load_reviews("train", source=args.source, data_root=args.data_root,
                                     max_reviews=args.max_train_reviews, seed=args.seed)
        scales = calibrate_head(vae, head, texts, labels, model_id=model_id, cache_dir=cache_dir,
                                batch_size=args.batch_size, progress=progress, seed=args.seed)
        paths = head.save(ckpt)
        print(json.dumps({"length_scales": scales, "saved": [str(p) for p in paths]}, indent=2))
        return 0
    if args.train:
        _sklearn()  # fail before the expensive part
        texts, labels = load_reviews("train", source=args.source, data_root=args.data_root,
                                     max_reviews=args.max_train_reviews, seed=args.seed)
        if args.head == "finetuned":
            ft = finetune_set_head(vae, texts, labels, seed=args.seed, pool=args.set_pool, progress=progress,
                                   **ft_options)
            ft.meta["model_sha256"] = model_id
            calibrate_head(vae, ft, texts, labels, batch_size=args.batch_size, progress=progress, seed=args.seed)
            paths = ft.save(ckpt)
            print(json.dumps({**ft.meta, "saved": [str(p) for p in paths]}, indent=2))
            return 0
        if args.head == "review":
            unlabelled = load_unlabelled(source=args.source, data_root=args.data_root,
                                         max_reviews=args.max_unlabelled_reviews, seed=args.seed)
            head = train_review_head(vae, texts, labels, unlabelled, epochs=args.review_epochs, seed=args.seed,
                                     model_id=model_id, cache_dir=cache_dir, batch_size=args.batch_size,
                                     progress=progress)
            paths = head.save(ckpt)
            print(json.dumps({**head.meta, "encoder": head.encoder.meta, "C": head.linear.meta["C"],
                              "saved": [str(p) for p in paths]}, indent=2))
            return 0
        if set_head:
            head = train_set_head(vae, texts, labels, seed=args.seed, model_id=model_id, cache_dir=cache_dir,
                                  pool=args.set_pool, batch_size=args.batch_size, progress=progress, unit=unit,
                                  refit=not args.no_refit, members=args.set_members)
            paths = head.save(ckpt)
            print(json.dumps({**head.meta, "saved": [str(p) for p in paths]}, indent=2))
            return 0
        head, feats = train_head(vae, texts, labels, pooling=args.pooling, seed=args.seed, model_id=model_id,
                                 cache_dir=cache_dir, batch_size=args.batch_size, progress=progress, unit=unit)
        paths = head.save(ckpt)
        print(json.dumps({"C": head.meta["C"], "cv_log_loss": head.meta["cv_log_loss"],
                          "train_accuracy": head.meta["train_accuracy"], "features": feats.summary(),
                          "saved": [str(p) for p in paths]}, indent=2))
        return 0

    out = Path(args.out) if args.out else ckpt / "curve"
    curve = run_curve(vae, out, model_id=model_id, pooling=args.pooling, budgets=budgets, draws=args.draws,
                      max_train_reviews=args.max_train_reviews, max_test_reviews=args.max_test_reviews,
                      seed=args.seed, source=args.source, data_root=args.data_root, cache_dir=cache_dir,
                      baselines=not args.no_baselines, mlp=not args.no_mlp,
                      set_mlp=not args.no_set, set_pool=args.set_pool, set_refit=not args.no_refit,
                      set_members=args.set_members,
                      self_train=args.self_train,
                      max_unlabelled_reviews=args.max_unlabelled_reviews, batch_size=args.batch_size,
                      finetune=ft_options if args.finetune else None,
                      review_code={"epochs": args.review_epochs} if args.review_code else None,
                      unit=unit, progress=progress, extra={"checkpoint": str(ckpt), "model_sha256": model_id})
    print(curve_markdown(curve), end="")
    _log(f"wrote {out / 'curve.json'}, {out / 'curve.md'}" + (", curve.png" if (out / "curve.png").exists() else ""))
    return 0
