"""The heads a user picks, one loader for any saved head, and fitting one on labelled reviews.

    head = fit_head(vae, texts, labels, HeadConfig(kind="set"), model_id=checkpoint_id(ckpt))
    head.save(ckpt)
    head = load_head(ckpt, "set")
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .calibrate import calibration_meta, fit_length_scales
from .config import KINDS, ClassifyError, HeadConfig
from .features import checkpoint_id, model_sha256, sentence_features
from .head import Head
from .linear import LinearHead, sklearn
from .setmlp import SetHead

HEADS: dict[str, type[Head]] = {"linear": LinearHead, "set": SetHead}
assert tuple(HEADS) == KINDS


def head_class(kind: str) -> type[Head]:
    if kind not in HEADS:
        raise ClassifyError(f"head kind must be one of {', '.join(HEADS)}, got {kind!r}")
    return HEADS[kind]


def load_head(ckpt_dir: str | Path, kind: str = "linear", *, model_id: str | None = None) -> Head:
    """The `kind` head saved in `ckpt_dir`. With `model_id` (checkpoint_id of the model it will read),
    a head fitted on other weights is a one-line error."""
    head = head_class(kind).load(ckpt_dir)
    _ = head.unit  # an unknown unit fails here, before any model is loaded
    if model_id is not None and head.meta.get("model_sha256") not in (None, model_id):
        raise ClassifyError(other_weights(ckpt_dir, kind))
    return head


def other_weights(ckpt_dir: str | Path, kind: str) -> str:
    """The message for a head fitted on other weights than the checkpoint's."""
    return (f"the classifier head was fitted on other weights than {ckpt_dir}: refit it with "
            f"`seqvae classify fit {ckpt_dir} --head {kind}`")


def check_width(head: Head, vae) -> None:
    """A one-line ClassifyError if `head` reads codes of another width than `vae` writes."""
    if head.latent_dim != vae.latent_dim:
        raise ClassifyError(f"the classifier head reads codes of {head.latent_dim} dimensions, this model's have "
                            f"{vae.latent_dim}: refit it with `seqvae classify fit`")


def head_matches(head: Head, ckpt_dir: str | Path, vae) -> bool:
    """Whether `head` was fitted on the weights of `vae` (loaded from `ckpt_dir`) or records none. A head
    records the sha256 of the checkpoint's weights file (`seqvae classify fit`) or, fitted through the API
    without a model_id, of the model's state dict (model_sha256): either identity is accepted."""
    recorded = head.meta.get("model_sha256")
    return recorded is None or recorded == checkpoint_id(ckpt_dir) or recorded == model_sha256(vae)


def fit_head(vae, texts: Sequence[str], labels: np.ndarray, cfg: HeadConfig = HeadConfig(), *,
             model_id: str | None = None, cache_dir: str | Path | None = None, batch_size: int = 256,
             progress: bool = True) -> Head:
    """Fit the head `cfg` describes on the units of `texts`; records provenance (model_sha256),
    the unit, the recipe and the length calibration in its meta."""
    sklearn()  # fail before the expensive part (the linear head and the curve's baselines need it)
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != len(texts):
        raise ClassifyError(f"expected one label per text: {len(texts)} texts, labels of shape {labels.shape}")
    if not np.isin(labels, (0, 1)).all():
        raise ClassifyError("labels must be 0 (negative) or 1 (positive)")
    labels = labels.astype(np.int64)
    model_id = model_id or model_sha256(vae)
    S = sentence_features(vae, texts, unit=cfg.unit, split="train", model_id=model_id, cache_dir=cache_dir,
                          batch_size=batch_size, progress=progress)
    head = head_class(cfg.kind).fit(S, labels, cfg)
    summary = {k: v for k, v in S.summary(cfg.unit).items() if k != "cached"}
    head.meta.update({"model_sha256": model_id, "train_accuracy": float((head.predict(S) == labels).mean()),
                      "features": summary, "config": cfg.to_dict(),
                      **({"unit": cfg.unit} if cfg.unit != "sentence" else {})})
    head.meta.update(calibration_meta(fit_length_scales(head, S, labels, seed=cfg.seed), len(labels)))
    return head


__all__ = ["HEADS", "Head", "HeadConfig", "LinearHead", "SetHead", "check_width", "checkpoint_id", "fit_head", "head_class",
           "head_matches", "load_head", "other_weights"]
