"""Length calibration: how sure a review head may be of a text of n sentences.

The heads are fitted on whole reviews, about 12 sentences each, and read a single sentence as if it
were one: on one random sentence of each test review (labelled with its review's label) the heads
of `imdb-bow-gpu` are 88-90% sure on average and 67% right, a log-loss worse than a coin's. A text
of n sentences carries less evidence than a review, so its logit is scaled down:

    p(positive | text of n sentences) = σ(s_n · logit(text))

s_1 ... s_K are fitted per head on the labelled train reviews: for each k, one random k-sentence
snippet of every review with at least k sentences, labelled with its review's label; s_k is the
scale with the lowest log-loss there (a convex 1-D problem, solved by Newton's method). Texts of
more than K sentences use s_K. The scale never changes a verdict, only how sure it is. For a
head that reads clauses (--unit clause), n counts clauses: snippets are k clauses.
`seqvae classify CKPT --calibrate --head H` adds the scales to a saved head; `--train` fits them
with every head; `--texts` applies them (predict_texts).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .classify import LinearHead, head_unit
from .features import ClassifyError, SentenceSet, pool

MAX_SENTENCES = 16  # K: scales are fitted for snippets of 1..K sentences


def head_logits(head, S: SentenceSet) -> np.ndarray:
    """(n_reviews,) positive-class logits of a LinearHead (on S pooled as it pools), SetMLP or
    ReviewCodeHead on the reviews of S."""
    if isinstance(head, LinearHead):
        if head.pooling == "mean_logvar" and S.logvar is None:
            raise ClassifyError("a mean_logvar head needs the sentences' logσ² as well as their μ")
        logvar = S.mu if S.logvar is None else S.logvar  # mean / meanmax pooling read μ only
        return head.decision(pool(S.mu, logvar, S.owner, S.n_reviews, head.pooling))
    return head.decision(S)


def snippets(S: SentenceSet, k: int, rng: np.random.Generator) -> tuple[SentenceSet, np.ndarray]:
    """(k random sentences of each review of S with at least k, in their order; those reviews' indices)."""
    n = np.diff(S.offsets)
    keep = np.flatnonzero(n >= k)
    rows = [S.offsets[r] + np.sort(rng.permutation(n[r])[:k]) for r in keep]
    rows = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    return S.rows(rows, np.repeat(np.arange(len(keep)), k), len(keep)), keep


MAX_SCALE = 100.0  # where the snippets are perfectly separated the loss falls forever: stop here


def best_scale(z: np.ndarray, y: np.ndarray, steps: int = 50) -> float:
    """argmin over 0 < s <= MAX_SCALE of the mean log-loss of σ(s z) against labels y (0/1), by
    Newton's method on the convex loss; 1 where z is all zero (nothing to scale)."""
    m = np.asarray(z, np.float64) * (2 * np.asarray(y) - 1)  # margin per unit of scale
    s = 1.0
    for _ in range(steps):
        q = 1.0 / (1.0 + np.exp(np.clip(s * m, -50, 50)))  # σ(-s m)
        grad, hess = -np.mean(m * q), np.mean(m * m * q * (1 - q))
        if hess <= 1e-12:
            break
        s_new = min(max(s - grad / hess, s / 10), MAX_SCALE)  # damped: stays positive
        if abs(s_new - s) < 1e-9:
            s = s_new
            break
        s = s_new
    return float(s)


def fit_length_scales(head, S: SentenceSet, y: np.ndarray, *, max_sentences: int = MAX_SENTENCES,
                      seed: int = 0) -> list[float]:
    """[s_1, ..., s_K] for `head` from snippets of the labelled reviews S (module docstring).
    K is max_sentences, or less where no review has that many sentences."""
    y = np.asarray(y)
    if len(y) != S.n_reviews or len(np.unique(y)) < 2:
        raise ClassifyError("length calibration needs one label per review and both classes")
    rng = np.random.default_rng([seed, 6151])
    scales = []
    for k in range(1, max_sentences + 1):
        part, keep = snippets(S, k, rng)
        if len(np.unique(y[keep])) < 2:
            break
        scales.append(round(best_scale(head_logits(head, part), y[keep]), 4))
    if not scales:
        raise ClassifyError("length calibration needs labelled reviews with at least one sentence")
    return scales


def length_scale(scales: Sequence[float] | None, n_sentences: np.ndarray) -> np.ndarray:
    """The scale of each text from its sentence count: s_n, s_K beyond K, 1 without scales or sentences."""
    n = np.asarray(n_sentences, dtype=np.int64)
    if not scales:
        return np.ones(len(n))
    table = np.asarray(scales, dtype=np.float64)
    return np.where(n > 0, table[np.clip(n, 1, len(table)) - 1], 1.0)


def calibration_meta(scales: list[float], n_reviews: int) -> dict[str, Any]:
    return {"length_scales": scales, "length_calibration": {"reviews": int(n_reviews), "max_sentences": len(scales)}}


def head_sentences(vae, head, texts: Sequence[str], *, split: str, model_id: str | None = None,
                   cache_dir=None, batch_size: int = 256, progress: bool = True) -> tuple[SentenceSet, Any]:
    """(the sentences, or clauses, of `texts` as `head` reads them, the head that scores them):
    a fine-tuned head's sentence means come from its own encoder (cached by those weights' hash)
    and are scored by its set MLP; every other head reads the checkpoint's (with logσ² for a
    mean_logvar head) and scores them itself (head_logits)."""
    from .features import sentence_features
    from .finetune import FinetunedHead

    if isinstance(head, FinetunedHead):
        vae, model_id, inner, tag = head.apply(vae), None, head.head, "tuned"
    else:
        inner, tag = head, "vae"
    S = sentence_features(vae, texts, split=split, model_id=model_id, tag=tag, cache_dir=cache_dir,
                          batch_size=batch_size, progress=progress,
                          logvar=getattr(head, "pooling", None) == "mean_logvar", unit=head_unit(head))
    return S, inner


def calibrate_head(vae, head, texts: Sequence[str], labels: np.ndarray, *, model_id: str | None = None,
                   cache_dir=None, batch_size: int = 256, progress: bool = True, seed: int = 0) -> list[float]:
    """Fit the length scales of a head of any kind (LinearHead, SetMLP, ReviewCodeHead,
    finetune.FinetunedHead) on the labelled reviews `texts` and put them in its meta; returns them."""
    S, inner = head_sentences(vae, head, texts, split="train", model_id=model_id, cache_dir=cache_dir,
                              batch_size=batch_size, progress=progress)
    scales = fit_length_scales(inner, S, np.asarray(labels), seed=seed)
    head.meta.update(calibration_meta(scales, len(labels)))
    return scales
