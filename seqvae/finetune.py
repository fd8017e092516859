"""Fine-tuning the encoder on review labels: the set MLP head trained end to end through the encoder.

    seqvae classify runs/imdb-vae --train --head finetuned           # fit, save finetuned_classifier.*
    seqvae classify runs/imdb-vae --texts "A gem." --head finetuned  # predict with it
    seqvae classify runs/imdb-vae --curve --finetune                 # add its row to the curve

The other heads read the VAE's posterior means as fixed features. Here the labels may also move the
encoder that makes them (pretrain on unlabelled text, then fine-tune; Dai & Le 2015):
  1. fit_set_mlp on the frozen posterior means starts the head (same held-out split as below);
  2. the encoder (bi-GRU and its μ/logσ² layer) and the head then train together (AdamW, a smaller
     learning rate for the encoder) for a few epochs; the epoch with the best held-out accuracy
     (then loss) is kept, epoch 0 being the frozen start, so on the held-out reviews fine-tuning
     never ends worse than the plain set MLP. Below 200 labels nothing is held out (as fit_set_mlp)
     and half the epochs run.
The word-embedding table is the decoder's too and stays frozen, and the checkpoint's model is never
changed: the tuned encoder lives in the head's own file, and FinetunedHead.apply(vae) gives a SeqVAE
whose encoder is the tuned one.

Is the tuned encoder still a posterior of the model? The labels alone may pull q(z|x) away from what
the (frozen) decoder can use. elbo_weight > 0 adds that weight times the mean -ELBO (reconstruction
under the frozen decoder + KL, no free bits) of up to elbo_sentences of the step's sentences to the
loss, as in semi-supervised VAEs, so the encoder is trained for the labels and as an inference
network of the same generative model. Either way every fit reports the bound of the same held-out
sentences under the frozen and the tuned encoder (meta: neg_elbo_frozen / neg_elbo_tuned, rec_*, kl_*).
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .classify import SetMLP, _checkpoint_error, _log, _read_head, _val_split, _write_head, fit_set_mlp
from .features import ClassifyError, SentenceSet, encode_reviews

FT_HEAD_WEIGHTS = "finetuned_classifier.safetensors"
FT_HEAD_CONFIG = "finetuned_classifier.json"
SUB_BATCH = 64  # sentences per encoder call, length-sorted: half the time of one padded call per step on CPU


def tokenize_reviews(vae, texts: Sequence[str]) -> list[list[list[int]]]:
    """Token ids of each review's sentences: the corpus' splitter, as encode_reviews, cut to the API's
    MAX_TOKENS; sentences with no tokens are left out (they have no posterior)."""
    from .api import MAX_TOKENS
    from .corpus import review_to_sentences

    split = [[s.strip() for s in review_to_sentences(t)] for t in texts]
    flat = vae.tokenizer.encode_batch([s for sents in split for s in sents])
    out, k = [], 0
    for sents in split:
        out.append([ids[:MAX_TOKENS] for ids in flat[k : k + len(sents)] if ids])
        k += len(sents)
    return out


def _sentence_mu(model, sents: list[list[int]], sub_batch: int = SUB_BATCH) -> torch.Tensor:
    """(S, Z) posterior means of token-id sentences, in input order, through `model.encode` in
    length-sorted chunks (with gradients if the caller has them on)."""
    from .data import collate

    cfg = model.cfg
    if not sents:
        return torch.zeros(0, cfg.latent_dim, device=model.device)
    order = np.argsort([len(s) for s in sents], kind="stable")
    parts = []
    for j in range(0, len(order), sub_batch):
        b = collate([sents[i] for i in order[j : j + sub_batch]], pad_id=cfg.pad_id, bos_id=cfg.bos_id,
                    eos_id=cfg.eos_id).to(model.device)
        parts.append(model.encode(b.src, b.src_lens)[0])
    mu = torch.cat(parts)
    return torch.empty_like(mu).index_copy(0, torch.from_numpy(order).to(mu.device), mu)


def _neg_elbo(model, sents: list[list[int]]) -> torch.Tensor:
    """(S,) -ELBO of token-id sentences under the model's own decoder: -log p(x|z) + KL(q(z|x) || p(z)),
    one z drawn from q with torch's RNG; no free bits, no word dropout (the bound `seqvae evaluate` reports)."""
    from .data import collate

    cfg = model.cfg
    b = collate(sents, pad_id=cfg.pad_id, bos_id=cfg.bos_id, eos_id=cfg.eos_id).to(model.device)
    out = model(b.src, b.src_lens, b.dec_in, b.target)
    return out.rec + out.kl


def _bound(model, sents: list[list[int]], seed: int) -> dict[str, float]:
    """rec, KL and -ELBO per sentence (nats), the mean over `sents`, as `seqvae evaluate` computes them
    (seeded draws; torch's global RNG untouched)."""
    from .data import SentenceDataset
    from .metrics import evaluate

    r = evaluate(model, SentenceDataset.from_lists(sents), k=0, batch_size=SUB_BATCH, seed=seed)
    return {"rec": round(r["rec"], 3), "kl": round(r["kl"], 3), "neg_elbo": round(r["neg_elbo"], 3)}


def _flatten(reviews: list[list[list[int]]]) -> tuple[list[list[int]], torch.Tensor]:
    sents = [s for r in reviews for s in r]
    owner = torch.repeat_interleave(torch.arange(len(reviews)), torch.tensor([len(r) for r in reviews],
                                                                             dtype=torch.int64))
    return sents, owner


def _logits(model, head: SetMLP, reviews: list[list[list[int]]]) -> torch.Tensor:
    sents, owner = _flatten(reviews)
    return head.pooled_logits(_sentence_mu(model, sents), owner, len(reviews))


class FinetunedHead:
    """A set MLP head and the encoder weights it was trained with (saved together, beside the
    checkpoint's own files: finetuned_classifier.safetensors + .json)."""

    def __init__(self, encoder_state: dict[str, torch.Tensor], head: SetMLP, meta: dict[str, Any] | None = None):
        self.encoder_state = {k: v.detach().cpu().clone() for k, v in encoder_state.items()}
        self.head = head
        self.meta = dict(meta or {})

    @property
    def classes(self) -> tuple[str, ...]:
        return self.head.classes

    def apply(self, vae):
        """A SeqVAE like `vae` whose encoder has the tuned weights (vae itself is left as it was)."""
        from .api import SeqVAE

        model = copy.deepcopy(vae.model)
        try:
            model.encoder.load_state_dict(self.encoder_state)
        except RuntimeError as e:
            raise ClassifyError(f"the fine-tuned head's encoder does not fit this model "
                                f"({str(e).splitlines()[0]}): refit it with --train --head finetuned") from None
        return SeqVAE(model, vae.tokenizer, vae.config)

    def predict_proba(self, vae, texts: Sequence[str], *, batch_size: int = 256, progress: bool = False) -> np.ndarray:
        """(N, 2) p(negative), p(positive) of each review through the tuned encoder."""
        enc = encode_reviews(self.apply(vae), texts, batch_size=batch_size, progress=progress, desc="encode (tuned)")
        return self.head.predict_proba(enc.sentence_set())

    def predict(self, vae, texts: Sequence[str], **kw) -> np.ndarray:
        return (self.predict_proba(vae, texts, **kw)[:, 1] > 0.5).astype(np.int64)

    def save(self, ckpt_dir: str | Path) -> tuple[Path, Path]:
        weights, cfg = self.head.arrays()
        weights.update({f"encoder.{k}": v.float().numpy() for k, v in self.encoder_state.items()})
        cfg = {**cfg, **self.meta}
        return _write_head(Path(ckpt_dir), FT_HEAD_WEIGHTS, FT_HEAD_CONFIG, weights,
                           {"kind": "finetuned_set_mlp", **cfg})

    @classmethod
    def load(cls, ckpt_dir: str | Path) -> "FinetunedHead":
        d = Path(ckpt_dir)
        cfg, w = _read_head(d, FT_HEAD_WEIGHTS, FT_HEAD_CONFIG, "finetuned_set_mlp", " --head finetuned")
        encoder = {k[len("encoder."):]: torch.from_numpy(v) for k, v in w.items() if k.startswith("encoder.")}
        if not encoder:
            raise _checkpoint_error(f"{d / FT_HEAD_WEIGHTS}: fine-tuned head without encoder weights")
        head = SetMLP.from_arrays({k: v for k, v in w.items() if not k.startswith("encoder.")}, cfg,
                                  d / FT_HEAD_WEIGHTS)
        ft = cls(encoder, head, head.meta)
        head.meta = {}
        return ft


def finetune_set_head(vae, texts: Sequence[str], y: np.ndarray, *, seed: int = 0, epochs: int = 4,
                      lr: float = 1e-4, head_lr: float = 3e-4, batch_reviews: int = 32, patience: int = 2,
                      val_frac: float = 0.15, elbo_weight: float = 0.0, elbo_sentences: int = 64,
                      check_sentences: int = 2000, pool: str = "mean", progress: bool = True) -> FinetunedHead:
    """Fit a set MLP on the frozen posterior means of `texts`, then train it and the encoder together
    (module docstring). Seeded; leaves torch's global RNG and `vae` as they were."""
    from tqdm.auto import tqdm

    y = np.asarray(y, dtype=np.int64)
    if len(y) != len(texts) or len(np.unique(y)) < 2:
        raise ClassifyError("fine-tuning needs one label per review and both classes")
    if epochs < 1 or lr <= 0 or head_lr <= 0:
        raise ClassifyError(f"fine-tuning needs epochs >= 1 and positive learning rates "
                            f"(got epochs={epochs}, lr={lr}, head_lr={head_lr})")
    if not elbo_weight >= 0 or elbo_sentences < 1:
        raise ClassifyError(f"fine-tuning needs elbo_weight >= 0 and elbo_sentences >= 1 "
                            f"(got {elbo_weight}, {elbo_sentences})")
    t0 = time.perf_counter()
    reviews = tokenize_reviews(vae, texts)
    model = copy.deepcopy(vae.model).eval()
    model.requires_grad_(False)
    with torch.no_grad():
        sents, owner = _flatten(reviews)
        S = SentenceSet(_sentence_mu(model, sents).float().cpu().numpy(), owner.numpy(), len(reviews))
    # kept early-stopped: its held-out reviews (val_idx below) must stay unseen
    head = fit_set_mlp(S, y, seed=seed, pool=pool, val_frac=val_frac, refit=False)
    early = len(y) >= 200
    fit_idx, val_idx = _val_split(y, val_frac, seed) if early else (np.arange(len(y)), np.zeros(0, np.int64))
    head.net.to(model.device)
    val_reviews, y_val = [reviews[i] for i in val_idx], torch.from_numpy(y[val_idx]).float().to(model.device)
    # The posterior check: the same sentences' bound under the frozen and the tuned encoder (held-out
    # reviews, or the training ones below 200 labels), at most check_sentences of them.
    pool = [s for i in (val_idx if early else fit_idx) for s in reviews[i]]
    pick = np.random.default_rng([seed, 7919]).permutation(len(pool))[:check_sentences]
    check = [pool[i] for i in np.sort(pick)]
    bound_frozen = _bound(model, check, seed) if check else None

    def held_out() -> tuple[float, float]:
        model.eval()
        head.net.eval()
        with torch.no_grad():
            lg = torch.cat([_logits(model, head, val_reviews[s : s + 256]) for s in range(0, len(val_reviews), 256)])
        return (float(((lg > 0).float() == y_val).float().mean()),
                -float(torch.nn.functional.binary_cross_entropy_with_logits(lg, y_val)))

    def snapshot():
        return ({k: v.clone() for k, v in model.encoder.state_dict().items()},
                {k: v.clone() for k, v in head.net.state_dict().items()})

    rng = np.random.default_rng([seed, 3571])
    history: list[float] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model.encoder.requires_grad_(True)
        opt = torch.optim.AdamW([{"params": list(model.encoder.parameters()), "lr": lr, "weight_decay": 0.0},
                                 {"params": list(head.net.parameters()), "lr": head_lr, "weight_decay": 1e-2}])
        best = held_out() if early else (-1.0, 0.0)
        history.append(best[0])
        best_state, best_epoch, since = snapshot(), 0, 0
        n_epochs = epochs if early else max(epochs // 2, 1)
        for epoch in range(1, n_epochs + 1):
            model.train()
            model.decoder.eval()  # frozen: it only scores the ELBO term
            head.net.train()
            order = rng.permutation(fit_idx)
            steps = range(0, len(order), batch_reviews)
            for start in tqdm(steps, desc=f"fine-tune {epoch}/{n_epochs}", unit="step", disable=not progress,
                              leave=False):
                b = order[start : start + batch_reviews]
                loss = torch.nn.functional.binary_cross_entropy_with_logits(
                    _logits(model, head, [reviews[i] for i in b]), torch.from_numpy(y[b]).float().to(model.device))
                if elbo_weight:  # keep q(z|x) a posterior of the (frozen) decoder
                    sents_b = [s for i in b for s in reviews[i]]
                    if sents_b:
                        idx = rng.permutation(len(sents_b))[:elbo_sentences]
                        loss = loss + elbo_weight * _neg_elbo(model, [sents_b[i] for i in idx]).mean()
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.encoder.parameters(), 1.0)
                opt.step()
            if not early:
                best_state, best_epoch = snapshot(), epoch
                continue
            score = held_out()
            history.append(score[0])
            _log(f"fine-tune epoch {epoch}/{n_epochs}: held-out accuracy {score[0]:.4f} "
                 f"(frozen start {history[0]:.4f}), {time.perf_counter() - t0:.0f} s")
            if score > best:
                best, best_state, best_epoch, since = score, snapshot(), epoch, 0
            else:
                since += 1
                if since >= patience:
                    break
    enc_state, head_state = best_state
    head.net.load_state_dict(head_state)
    head.net.cpu().eval()
    meta = {**head.meta, "encoder_lr": lr, "head_lr": head_lr, "elbo_weight": elbo_weight, "best_epoch": best_epoch,
            "epochs_run": len(history) - 1 if early else n_epochs}
    if check:
        model.encoder.load_state_dict(enc_state)
        tuned = _bound(model, check, seed)
        meta.update(check_sentences=len(check), **{f"{k}_frozen": v for k, v in bound_frozen.items()},
                    **{f"{k}_tuned": v for k, v in tuned.items()})
        _log(f"fine-tune: -ELBO {bound_frozen['neg_elbo']:.2f} (frozen encoder) -> {tuned['neg_elbo']:.2f} (tuned) "
             f"nats per sentence on {len(check)} {'held-out' if early else 'training'} sentences")
    meta["seconds"] = round(time.perf_counter() - t0, 1)
    if early:
        meta.update(val_accuracy=best[0], val_accuracy_frozen=history[0], val_history=history)
    head.meta = {}
    return FinetunedHead(enc_state, head, meta)
