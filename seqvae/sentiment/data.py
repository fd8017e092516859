"""IMDB reviews with their labels, and the stratified draws every fit and curve makes from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .config import ClassifyError


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


def holdout_split(y: np.ndarray, val_frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train idx, held-out idx), stratified; the held-out slice has at least one item per class."""
    n_cls = len(np.unique(y))
    n_val = min(max(int(round(val_frac * len(y))), n_cls), len(y) - n_cls)
    if n_cls < 2 or n_val < n_cls:
        raise ClassifyError(f"need at least two labelled examples of each class, got {len(y)} labels")
    va = stratified_sample(y, n_val, np.random.default_rng([seed, 7919]))
    return np.setdiff1d(np.arange(len(y)), va), va


def load_reviews(split: str, *, data_root: str | Path | None = None, source: str = "local", max_reviews: int = 0,
                 seed: int = 0) -> tuple[list[str], np.ndarray]:
    """IMDB reviews of a split (corpus.load_imdb) and their labels; `max_reviews` > 0 keeps a
    reproducible stratified subset (the files list all negatives first, so never the first N)."""
    from ..corpus import load_imdb

    ds = load_imdb(split, source=source) if data_root is None else load_imdb(split, source=source,
                                                                             data_root=str(data_root))
    texts, labels = list(ds["text"]), np.asarray(ds["label"], dtype=np.int64)
    if 0 < max_reviews < len(texts):
        idx = stratified_sample(labels, max_reviews, np.random.default_rng([seed, 104729]))
        texts, labels = [texts[i] for i in idx], labels[idx]
    if not set(np.unique(labels)) <= {0, 1}:
        raise ClassifyError(f"imdb {split}: expected labels 0/1 (the {split} split may be unlabelled)")
    return texts, labels
