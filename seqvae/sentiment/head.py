"""The Head interface: every sentiment head reads the posterior means of a review's units
(a SentenceSet) and gives one positive-class logit per review.

    head = LinearHead.fit(S, y, HeadConfig())      # or SetHead.fit(S, y, HeadConfig(kind="set"))
    head.logits(S)                                  # (N,) on encoded features
    head.predict_texts(vae, ["A gem.", "Dull."])    # on texts, with the head's length calibration
    head.save(ckpt_dir); heads.load_head(ckpt_dir, "set")

A head is saved in its checkpoint as two files: safetensors for the arrays, JSON for the rest,
which names the head's kind, its unit and the sha256 of the weights it was fitted on
(model_sha256). Callers (calibration, evaluation, steering, the CLI) use only what is here.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from .. import atomic
from ..checkpoint import CheckpointError
from .calibrate import length_scale
from .config import CLASSES, UNITS, ClassifyError, HeadConfig
from .features import SentenceSet, encode_reviews

FORMAT = 1  # the saved JSON's format number


def scaled_proba(z: np.ndarray, scale=1.0) -> np.ndarray:
    """(N, 2) p(negative), p(positive) = σ(scale · z) for positive-class logits z (scale: a
    number, or one per row: the length scales)."""
    p1 = 1.0 / (1.0 + np.exp(-scale * np.asarray(z, dtype=np.float64)))
    return np.stack([1.0 - p1, p1], axis=1)


class Head:
    """What every head is. Subclasses set the class attributes and implement logits, arrays,
    from_arrays and fit; meta holds provenance (model_sha256), unit, length_scales and fit notes."""

    kind: ClassVar[str]          # the CLI's name: linear | set
    saved_kind: ClassVar[str]    # the JSON's "kind"
    files: ClassVar[tuple[str, str]]  # (weights, config) file names in a checkpoint dir
    classes: tuple[str, ...] = CLASSES
    meta: dict[str, Any]

    # -- to implement
    def logits(self, S: SentenceSet) -> np.ndarray:
        """(n_reviews,) float64 logits of the positive class from the reviews' unit means."""
        raise NotImplementedError

    @property
    def latent_dim(self) -> int:
        """The width of the μ the head reads."""
        raise NotImplementedError

    def arrays(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(weights, config) as saved."""
        raise NotImplementedError

    @classmethod
    def from_arrays(cls, weights: dict[str, np.ndarray], cfg: dict[str, Any], where: Path) -> "Head":
        """The inverse of arrays(); a one-line CheckpointError naming `where` if they do not fit."""
        raise NotImplementedError

    @classmethod
    def fit(cls, S: SentenceSet, y: np.ndarray, cfg: HeadConfig) -> "Head":
        raise NotImplementedError

    # -- shared
    @property
    def unit(self) -> str:
        """What the head reads a text as: "sentence" (every head before clauses existed) or "clause"."""
        unit = self.meta.get("unit", "sentence")
        if unit not in UNITS:
            raise CheckpointError(f"the classifier head reads texts as {unit!r}: this version knows "
                                   f"{', '.join(UNITS)}")
        return unit

    def predict_proba(self, S: SentenceSet) -> np.ndarray:
        """(N, 2): p(negative), p(positive), uncalibrated (the head as fitted on whole reviews)."""
        return scaled_proba(self.logits(S))

    def predict(self, S: SentenceSet) -> np.ndarray:
        return (self.logits(S) > 0).astype(np.int64)

    def calibrated_logits(self, S: SentenceSet) -> np.ndarray:
        """logits(S) times each review's length scale (calibrate.py); the plain logits without scales."""
        return self.logits(S) * length_scale(self.meta.get("length_scales"), S.units_per_review())

    def predict_texts(self, vae, texts: Sequence[str], batch_size: int = 256) -> list[dict[str, Any]]:
        """Sentiment of each text (a review or a sentence): label, probabilities and its number of
        sentences (and of clauses, for a head that reads clauses). With the head's length scales a
        text of n units has p = σ(s_n · logit): short texts are not read as surely as reviews."""
        from ..sentences import review_to_sentences

        S = encode_reviews(vae, texts, unit=self.unit, batch_size=batch_size, progress=False)
        if S.mu.shape[1] != self.latent_dim:
            raise ClassifyError(f"the classifier head expects {self.latent_dim} features, this model gives "
                                f"{S.mu.shape[1]}: refit it with `seqvae classify fit`")
        proba = scaled_proba(self.calibrated_logits(S))
        n_units = S.units_per_review()
        n_sent = n_units if self.unit == "sentence" else [len(review_to_sentences(t)) for t in texts]
        return [{"text": t, "label": self.classes[int(p[1] > 0.5)], "p_" + self.classes[0]: float(p[0]),
                 "p_" + self.classes[1]: float(p[1]), "sentences": int(ns),
                 **({"clauses": int(n)} if self.unit == "clause" else {})}
                for t, p, ns, n in zip(texts, proba, n_sent, n_units)]

    def save(self, ckpt_dir: str | Path) -> tuple[Path, Path]:
        """Arrays to safetensors, then the rest to JSON, which names the weights file's sha256 and so commits the
        pair (atomic.write_pair: the previous head stays loadable until the new one is whole); the two paths."""
        from safetensors.numpy import save_file

        weights, cfg = self.arrays()
        d = Path(ckpt_dir)
        w_path, c_path = d / self.files[0], d / self.files[1]
        atomic.write_pair(w_path, lambda tmp: save_file(weights, str(tmp), metadata={"format": "np"}), c_path,
                          {"format": FORMAT, "kind": self.saved_kind, "classes": list(self.classes),
                           "model_sha256": self.meta.get("model_sha256"), **cfg}, sha_key="weights_sha256")
        return w_path, c_path

    @classmethod
    def load(cls, ckpt_dir: str | Path) -> "Head":
        """This kind's head saved in `ckpt_dir`; a one-line CheckpointError if missing or unreadable."""
        from safetensors import SafetensorError
        from safetensors.numpy import load

        d = Path(ckpt_dir)
        w_path, c_path = d / cls.files[0], d / cls.files[1]
        no_head = CheckpointError(f"{d}: no classifier head ({cls.files[0]}); fit one with "
                                  f"`seqvae classify fit {d} --head {cls.kind}`")
        if not c_path.is_file():
            raise no_head
        try:  # the weights the JSON names (heads saved before it named them: none), or the previous ones mid-save
            cfg, raw = atomic.read_pair(w_path, c_path, sha_key="weights_sha256")
        except (ValueError, OSError) as e:
            raise CheckpointError(f"{d}: unreadable classifier head ({str(e).splitlines()[0]})") from None
        if raw is None and not (w_path.is_file() or atomic.old_path(w_path).is_file()):
            raise no_head
        fmt = cfg.pop("format", FORMAT) if isinstance(cfg, dict) else None
        if type(fmt) is not int or fmt > FORMAT or cfg.pop("kind", None) != cls.saved_kind:
            raise CheckpointError(f"{c_path}: classifier head of an unknown format or kind")
        cfg.pop("weights_sha256", None)
        if raw is None:
            raise CheckpointError(f"{d}: {cls.files[0]} is not the file {cls.files[1]} was saved with (a save cut "
                                   f"short?): fit the head again with `seqvae classify fit {d} --head {cls.kind}`")
        try:
            weights = load(raw)
        except (SafetensorError, OSError) as e:
            raise CheckpointError(f"{d}: unreadable classifier head ({str(e).splitlines()[0]})") from None
        cfg.pop("feature_dim", None)  # written for readers of the JSON; the weights' shapes rule
        if tuple(cfg.pop("classes", CLASSES)) != CLASSES:
            raise CheckpointError(f"{c_path}: a head of the classes {', '.join(CLASSES)} expected")
        if why := _bad_values(weights, cfg):
            raise CheckpointError(f"{c_path}: unusable classifier head ({why})")
        return cls.from_arrays(weights, cfg, c_path)


def _finite_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _bad_values(weights: dict[str, np.ndarray], cfg: dict[str, Any]) -> str | None:
    """What makes a loaded head's values unusable (None if nothing): arrays and the numbers its
    predictions use must be finite, the length scales positive."""
    if bad := next((k for k, w in weights.items() if not np.issubdtype(w.dtype, np.number) or
                    not np.isfinite(w).all()), None):
        return f"{bad} is not all finite numbers"
    scales = cfg.get("length_scales")
    if scales is not None and not (isinstance(scales, list) and all(_finite_number(v) and v >= 0 for v in scales)):
        return "length_scales must be a list of numbers >= 0"  # 0: the calibration found such texts tell nothing
    std = cfg.get("direction_std")
    if std is not None and not (_finite_number(std) and std > 0):
        return "direction_std must be a positive number"
    return None
