"""Review features from a sentence VAE: cut each review into units (sentences or clauses,
units.py), encode every unit to its posterior mean μ through the public api (no sampling), and
keep them grouped by review (SentenceSet). Every head reads a SentenceSet; the linear head
averages it per review first (mean_mu).

    S = sentence_features(vae, texts, split="train", cache_dir="runs/features")   # SentenceSet
    X = mean_mu(S)                                                                 # (N, Z)

The sets are cached as .npz keyed by the weights' sha256, the unit, the split and the exact
review texts (and FEATURE_VERSION), so nothing stale is ever read.
"""

from __future__ import annotations

import hashlib
import json
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import atomic
from ..textinput import texts_sha256
from .config import UNITS, ClassifyError
from .units import CLAUSE_CUT_VERSION, SPLITTERS

FEATURE_VERSION = 1   # bump when the feature computation changes: old cache files are then ignored
UNTRAINED_SEED = 0    # init seed of the untrained-encoder baseline
SENTENCES = "sentences"  # the cache files' pooling slot (a name kept from when poolings were cached too)


def check_unit(unit: str) -> None:
    if unit not in UNITS:
        raise ClassifyError(f"unit must be one of {', '.join(UNITS)}, got {unit!r}")


@dataclass
class SentenceSet:
    """Posterior means of every unit (sentence or clause) of a list of reviews, grouped by review."""

    mu: np.ndarray       # (S, Z) float32, units of review 0 first, then review 1, ...
    owner: np.ndarray    # (S,) int64 review index of each row, non-decreasing
    n_reviews: int       # reviews, those without a unit included
    cached: bool = field(default=False, compare=False)  # read back from the feature cache

    def __post_init__(self) -> None:
        self.owner = np.asarray(self.owner, dtype=np.int64)
        if len(self.owner) != len(self.mu) or np.any(np.diff(self.owner) < 0):
            raise ValueError("owner must give one non-decreasing review index per row of mu")
        self.offsets = np.searchsorted(self.owner, np.arange(self.n_reviews + 1))  # review r: rows offsets[r:r+2]

    def __len__(self) -> int:
        return self.n_reviews

    def __getitem__(self, idx) -> "SentenceSet":
        """The reviews `idx` (an index array), in that order, renumbered 0..len(idx)-1."""
        idx = np.asarray(idx, dtype=np.int64)
        starts, stops = self.offsets[idx], self.offsets[idx + 1]
        rows = np.concatenate([np.arange(a, b) for a, b in zip(starts, stops)] or [np.zeros(0, np.int64)])
        return self.rows(rows, np.repeat(np.arange(len(idx)), stops - starts), len(idx))

    def rows(self, rows: np.ndarray, owner: np.ndarray, n_reviews: int) -> "SentenceSet":
        """The units `rows`, regrouped into reviews by `owner`."""
        return SentenceSet(self.mu[rows], owner, n_reviews)

    def concat(self, other: "SentenceSet") -> "SentenceSet":
        """The reviews of self, then those of other (renumbered from len(self))."""
        return SentenceSet(np.concatenate([self.mu, other.mu]), np.concatenate([self.owner, other.owner + self.n_reviews]),
                           self.n_reviews + other.n_reviews)

    def units_per_review(self) -> np.ndarray:
        return np.diff(self.offsets)

    def summary(self, unit: str = "sentence") -> dict[str, Any]:
        return {"reviews": self.n_reviews, f"{unit}s": int(len(self.mu)),
                "empty_reviews": int((self.units_per_review() == 0).sum()), "cached": self.cached}


def mean_mu(S: SentenceSet) -> np.ndarray:
    """(N, Z) float32: each review's mean unit μ; a review with no unit gets a zero row."""
    total = np.zeros((S.n_reviews, S.mu.shape[1]), dtype=np.float64)
    np.add.at(total, S.owner, S.mu)
    return (total / np.maximum(S.units_per_review(), 1)[:, None]).astype(np.float32)


# ---------------------------------------------------------------------------- encoding
def encode_sentences(vae, sentences: Sequence[str], *, batch_size: int = 256, progress: bool = True,
                     desc: str = "encode") -> tuple[np.ndarray, np.ndarray]:
    """Posterior means (S, Z) float32 of `sentences` through `vae.encode` (an api.SeqVAE), in input
    order, and `ok` (S,) bool (False: no tokens, so no posterior; its row is 0). Sentences are
    sorted by token length and passed in chunks of 16 batches: little padding, a moving bar."""
    from tqdm.auto import tqdm

    stripped = [s.strip() for s in sentences]  # what the API tokenizes
    lens = np.array([len(ids) if s else 0 for s, ids in zip(stripped, vae.tokenizer.encode_batch(stripped))],
                    dtype=np.int64)
    ok = lens > 0
    mu = np.zeros((len(sentences), vae.latent_dim), dtype=np.float32)
    order = np.flatnonzero(ok)
    order = order[np.argsort(-lens[order], kind="stable")]  # longest first: memory peaks early
    chunk = 16 * batch_size
    with tqdm(total=len(order), desc=desc, unit="sent", disable=None if progress else True, leave=False) as bar:
        for start in range(0, len(order), chunk):
            idx = order[start : start + chunk]
            mu[idx] = vae.encode([sentences[i] for i in idx], batch_size=batch_size).mu.float().cpu().numpy()
            bar.update(len(idx))
    return mu, ok


def encode_reviews(vae, texts: Sequence[str], *, unit: str = "sentence", batch_size: int = 256,
                   progress: bool = True, desc: str = "encode") -> SentenceSet:
    """Cut each review into units and encode each distinct unit once."""
    check_unit(unit)
    owner_of, uniq, index = [], [], {}
    for r, text in enumerate(texts):
        for s in SPLITTERS[unit](text):
            if s not in index:  # a sentence repeated across reviews is encoded once
                index[s] = len(uniq)
                uniq.append(s)
            owner_of.append((r, index[s]))
    mu, ok = encode_sentences(vae, uniq, batch_size=batch_size, progress=progress, desc=desc)
    pairs = np.asarray(owner_of, dtype=np.int64).reshape(-1, 2)
    pairs = pairs[ok[pairs[:, 1]]]  # a unit with no tokens has no posterior: leave it out
    return SentenceSet(mu[pairs[:, 1]], pairs[:, 0], len(texts))


# ---------------------------------------------------------------------------- identities and the cache
def _sha256(chunks) -> str:
    h = hashlib.sha256()
    for c in chunks:
        h.update(c)
    return h.hexdigest()


def checkpoint_id(ckpt_dir: str | Path) -> str:
    """Identity of a checkpoint's weights: sha256 of its model.safetensors (what a head records)."""
    from ..checkpoint import weights_sha256

    return weights_sha256(ckpt_dir)


def model_sha256(vae) -> str:
    """Identity of an in-memory model's weights: sha256 over its state dict (names, dtypes, shapes, bytes)."""
    import torch

    def chunks():
        for name, t in sorted(vae.model.state_dict().items()):
            t = t.detach().cpu().contiguous()
            yield f"{name}:{t.dtype}:{tuple(t.shape)}".encode()
            yield (t.float() if t.dtype == torch.bfloat16 else t).numpy().tobytes()  # numpy has no bf16

    return _sha256(chunks())


def feature_key(model_id: str, split: str, texts_hash: str, unit: str = "sentence") -> str:
    """Cache key: model identity + unit (with the clause cut's version) + split + texts (the
    sentence unit is left out of the key, as before clauses existed)."""
    unit_key = {} if unit == "sentence" else {"unit": unit, "cut": CLAUSE_CUT_VERSION}
    raw = json.dumps({"v": FEATURE_VERSION, "model": model_id, "pooling": SENTENCES, "split": split,
                      "texts": texts_hash, **unit_key}, sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:20]


def untrained_like(vae, seed: int = UNTRAINED_SEED):
    """The baseline encoder: the same config and tokenizer, randomly initialised under `seed`.
    The global torch RNG is left as it was. Returns (SeqVAE, identity string for the cache)."""
    import torch

    from ..api import SeqVAE
    from ..model import SentenceVAE

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SentenceVAE(vae.model.cfg)
    cfg = json.dumps(vae.model.cfg.to_dict(), sort_keys=True)
    ident = hashlib.sha256(f"untrained:{seed}:torch-{torch.__version__}:{cfg}".encode()).hexdigest()
    return SeqVAE(model.to(vae.device), vae.tokenizer, vae.config), ident


def _load(path: Path, n_reviews: int) -> SentenceSet | None:
    try:
        with np.load(path) as z:
            S = SentenceSet(z["mu"], z["owner"], int(z["n_reviews"]), cached=True)
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):  # np.load's errors for an empty or cut file
        return None  # unreadable, cut short or from an older layout: recompute
    return S if S.n_reviews == n_reviews else None


def sentence_features(vae, texts: Sequence[str], *, unit: str = "sentence", split: str = "custom",
                      model_id: str | None = None, tag: str = "vae", cache_dir: str | Path | None = None,
                      batch_size: int = 256, progress: bool = True) -> SentenceSet:
    """The unit posterior means of `texts`, read from / written to `cache_dir` (None: no cache).
    `model_id` identifies the weights (default: the sha256 of the model's state dict)."""
    check_unit(unit)
    path = None
    if cache_dir is not None:
        key = feature_key(model_id or model_sha256(vae), split, texts_sha256(texts), unit)
        path = Path(cache_dir) / f"{tag}-{split}-{SENTENCES}-{key}.npz"
        hit = _load(path, len(texts)) if path.is_file() else None
        if hit is not None:
            return hit
    t0 = time.perf_counter()
    S = encode_reviews(vae, texts, unit=unit, batch_size=batch_size, progress=progress, desc=f"{tag} {split}")
    if path is not None:
        atomic.write_with(path, lambda tmp: np.savez(tmp, mu=S.mu, owner=S.owner, n_reviews=S.n_reviews,
                                                     seconds=time.perf_counter() - t0))
    return S
