"""Length calibration: how sure a review head may be of a text of n units (sentences or clauses).

The heads are fitted on whole reviews, about 12 sentences each, and read a single sentence as if it
were one: on one random sentence of each test review (labelled with its review's label) the heads
of `imdb-bow-gpu` were 88-90% sure on average and 67% right, a log-loss worse than a coin's. A
text of n units carries less evidence than a review, so its logit is scaled down:

    p(positive | text of n units) = σ(s_n · logit(text))

s_1 ... s_K are fitted per head on the labelled train reviews: for each k, one random k-unit
snippet of every review with at least k units, labelled with its review's label; s_k is the
scale with the lowest log-loss there (a convex 1-D problem, solved by Newton's method). Longer
texts use s_K. The scale never changes a verdict, only how sure it is. Every head is fitted
with its scales (heads.fit_head); `seqvae classify calibrate` refits them for a saved head.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .config import ClassifyError
from .features import SentenceSet

MAX_UNITS = 16        # K: scales are fitted for snippets of 1..K units
MAX_SCALE = 100.0     # where the snippets are perfectly separated the loss falls forever: stop here


def snippets(S: SentenceSet, k: int, rng: np.random.Generator) -> tuple[SentenceSet, np.ndarray]:
    """(k random units of each review of S with at least k, in their order; those reviews' indices)."""
    n = S.units_per_review()
    keep = np.flatnonzero(n >= k)
    rows = [S.offsets[r] + np.sort(rng.permutation(n[r])[:k]) for r in keep]
    rows = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    return S.rows(rows, np.repeat(np.arange(len(keep)), k), len(keep)), keep


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


def fit_length_scales(head, S: SentenceSet, y: np.ndarray, *, max_units: int = MAX_UNITS,
                      seed: int = 0) -> list[float]:
    """[s_1, ..., s_K] for `head` (anything with logits(SentenceSet)) from snippets of the labelled
    reviews S. K is max_units, or less where no review has that many units."""
    y = np.asarray(y)
    if len(y) != S.n_reviews or len(np.unique(y)) < 2:
        raise ClassifyError("length calibration needs one label per review and both classes")
    rng = np.random.default_rng([seed, 6151])
    scales = []
    for k in range(1, max_units + 1):
        part, keep = snippets(S, k, rng)
        if len(np.unique(y[keep])) < 2:
            break
        scales.append(round(best_scale(head.logits(part), y[keep]), 4))
    if not scales:
        raise ClassifyError("length calibration needs labelled reviews with at least one sentence")
    return scales


def length_scale(scales: Sequence[float] | None, n_units: np.ndarray) -> np.ndarray:
    """The scale of each text from its unit count: s_n, s_K beyond K, 1 without scales or units."""
    n = np.asarray(n_units, dtype=np.int64)
    if not scales:
        return np.ones(len(n))
    table = np.asarray(scales, dtype=np.float64)
    return np.where(n > 0, table[np.clip(n, 1, len(table)) - 1], 1.0)


def calibration_meta(scales: list[float], n_reviews: int) -> dict[str, Any]:
    """What a head records of its calibration (the keys are those of every saved head)."""
    return {"length_scales": scales, "length_calibration": {"reviews": int(n_reviews), "max_sentences": len(scales)}}
