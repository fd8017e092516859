"""The linear head: logistic regression on a review's mean μ, C picked by cross-validated log-loss.

    p(positive | review) = σ(w · (x − m) / s + b),   x = mean of the review's unit μ (features.mean_mu)

Its weights map back to one direction in z (latent_direction), along which steer.py moves a
sentence. scikit-learn (the `classify` extra) is needed to fit it, not to use a saved one.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..checkpoint import CheckpointError
from ..config import seed32
from .config import ClassifyError, HeadConfig
from .features import SentenceSet, mean_mu
from .head import Head, scaled_proba


def sklearn():
    """scikit-learn, imported lazily: only fitting needs it."""
    try:
        import sklearn.feature_extraction.text
        import sklearn.linear_model
    except ImportError:
        raise ClassifyError("scikit-learn is needed to fit classifiers: pip install 'seqvae[classify]'") from None
    return sklearn


def cv_folds(y: np.ndarray, folds: int, seed: int) -> list[np.ndarray]:
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


def select_c(fit: Callable, X, y, Cs: Sequence[float], folds: int, seed: int) -> tuple[float, dict[str, float]]:
    """The C with the lowest mean held-out log-loss over stratified folds of (X, y) (the smallest C
    wins ties: more regularisation), and each C's mean log-loss. `fit(X, y, C)` returns a model
    with predict_proba. A few dozen validation reviews decide little by accuracy (one review of 40
    is 2.5 points); log-loss over every labelled review as a held-out one varies far less."""
    y = np.asarray(y)
    losses = {C: 0.0 for C in Cs}
    for va in cv_folds(y, folds, seed):
        tr = np.setdiff1d(np.arange(len(y)), va)
        for C in Cs:
            p = np.clip(fit(X[tr], y[tr], C).predict_proba(X[va])[:, 1], 1e-12, 1 - 1e-12)
            losses[C] -= float(np.sum(np.where(y[va] == 1, np.log(p), np.log1p(-p))))
    losses = {C: v / len(y) for C, v in losses.items()}
    best = min(Cs, key=lambda C: (losses[C], C))
    return best, {str(C): round(v, 6) for C, v in losses.items()}


class LinearHead(Head):
    """Binary logistic regression on standardised mean-μ features."""

    kind, saved_kind = "linear", "logreg"
    files = ("classifier.safetensors", "classifier.json")

    def __init__(self, coef: np.ndarray, intercept: float, mean: np.ndarray, std: np.ndarray,
                 meta: dict[str, Any] | None = None):
        self.coef = np.asarray(coef, dtype=np.float64)  # (Z,) weights on standardised features
        self.intercept = float(intercept)
        self.mean = np.asarray(mean, dtype=np.float64)  # (Z,) feature means of the training reviews
        self.std = np.asarray(std, dtype=np.float64)    # (Z,) feature stds (1 for constant features)
        self.meta = dict(meta or {})

    @property
    def latent_dim(self) -> int:
        return len(self.coef)

    def decision(self, X: np.ndarray) -> np.ndarray:
        """(N, Z) mean-μ rows -> (N,) logit of the positive class."""
        return (np.asarray(X, dtype=np.float64) - self.mean) / self.std @ self.coef + self.intercept

    def logits(self, S: SentenceSet) -> np.ndarray:
        return self.decision(mean_mu(S))

    def latent_direction(self) -> np.ndarray:
        """(Z,) unit vector in z along which the positive logit grows fastest: w / s, normalised."""
        g = self.coef / self.std
        n = np.linalg.norm(g)
        if n == 0:
            raise ClassifyError("the classifier's weights on the latent are all zero: no direction to steer along")
        return g / n

    def arrays(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        weights = {"coef": self.coef, "intercept": np.array([self.intercept]), "mean": self.mean, "std": self.std}
        return weights, {"pooling": "mean", "feature_dim": self.latent_dim, **self.meta}

    @classmethod
    def from_arrays(cls, weights: dict[str, np.ndarray], cfg: dict[str, Any], where: Path) -> "LinearHead":
        try:
            head = cls(weights["coef"], float(weights["intercept"][0]), weights["mean"], weights["std"])
        except KeyError as e:
            raise CheckpointError(f"{where}: unreadable classifier head (missing {e})") from None
        if cfg.pop("pooling", "mean") != "mean" or not (len(head.coef) == len(head.mean) == len(head.std)):
            raise CheckpointError(f"{where}: inconsistent classifier head (this version reads mean pooling only)")
        head.meta = cfg
        return head

    @classmethod
    def fit(cls, S: SentenceSet, y: np.ndarray, cfg: HeadConfig = HeadConfig()) -> "LinearHead":
        """fit_linear on the reviews' mean μ; records direction_std, the spread of the units' μ
        along latent_direction (the unit of steer.py's strength)."""
        head = fit_linear(mean_mu(S), y, cfg)
        along = S.mu.astype(np.float64) @ head.latent_direction()
        head.meta["direction_std"] = float(np.std(along, ddof=1)) if len(along) > 1 else 1.0
        return head


def _standardise_stats(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, std = X.mean(0, dtype=np.float64), X.std(0, dtype=np.float64)
    std[std < 1e-8] = 1.0  # a constant feature stays 0 after centering
    return mean, std


def fit_linear(X: np.ndarray, y: np.ndarray, cfg: HeadConfig = HeadConfig()) -> LinearHead:
    """Standardise the rows X (N, Z), pick C by cross-validated log-loss (select_c), refit on all."""
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y)
    sk = sklearn()

    def fit(Xf, yf, C):
        mean, std = _standardise_stats(Xf)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter at tiny C / tiny data
            lr = sk.linear_model.LogisticRegression(C=C, max_iter=2000, random_state=seed32(cfg.seed))
            lr.fit((Xf - mean) / std, yf)
        return LinearHead(lr.coef_[0].copy(), float(lr.intercept_[0]), mean, std)

    class OnRows:  # select_c scores a model by predict_proba on feature rows
        def __init__(self, head: LinearHead):
            self.predict_proba = lambda Xv: scaled_proba(head.decision(Xv))

    Cs = cfg.c_grid
    C, scores = (select_c(lambda *a: OnRows(fit(*a)), X, y, Cs, cfg.c_folds, cfg.seed) if len(Cs) > 1
                 else (Cs[0], {}))
    head = fit(X, y, C)
    head.meta.update({"C": C, "cv_log_loss": scores, "n_train": int(len(y))})
    return head
