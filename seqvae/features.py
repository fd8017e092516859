"""Review features from a sentence VAE: split each review into sentences (the corpus' own
cleaning and splitter), encode every sentence to its posterior mean μ (and logσ²), no sampling,
and pool them into one vector per review, or keep them per sentence (SentenceSet) for the heads
that score sentences first. unit="clause" cuts each sentence further into clauses
(corpus.split_clauses) and encodes those instead: finer codes, each of a span the size of the
sentences the VAE was trained on. Used by classify.py (heads, curve), reviewcode.py, finetune.py,
calibrate.py and steer.py.

    S = sentence_features(vae, texts, split="train", cache_dir="runs/features")   # SentenceSet
    F = review_features(vae, texts, pooling="mean", split="train", cache_dir=...)  # Features, F.X (N, Z)

Features are cached as .npz keyed by the weights' sha256, the pooling, the unit, the split and
the exact review texts (and FEATURE_VERSION), so nothing stale is ever read; a miss computes every pooling
and the sentence set at once.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import atomic
from .config import ConfigError
from .corpus import CLAUSE_CUT_VERSION, UNITS

POOLINGS = ("mean", "meanmax", "mean_logvar")
FEATURE_VERSION = 1   # bump when the feature computation changes: old cache files are then ignored
UNTRAINED_SEED = 0    # init seed of the untrained-encoder baseline


class ClassifyError(ConfigError):
    """Bad input to feature extraction, classification or steering (one-line message; the CLI exits 2)."""


def check_unit(unit: str) -> None:
    if unit not in UNITS:
        raise ClassifyError(f"unit must be one of {', '.join(UNITS)}, got {unit!r}")


# ---------------------------------------------------------------------------- pooling
def pool(mu: np.ndarray, logvar: np.ndarray, owner: np.ndarray, n_reviews: int, pooling: str = "mean") -> np.ndarray:
    """Sentence posteriors -> one feature row per review.

    mu, logvar: (S, Z) per sentence; owner: (S,) index of the review each sentence belongs to.
    Returns (N, D) float32 with D = Z ("mean"), 2Z ("meanmax": mean μ ‖ max μ) or
    2Z ("mean_logvar": mean μ ‖ mean logσ²). A review with no sentence gets a zero row.
    """
    if pooling not in POOLINGS:
        raise ClassifyError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
    Z = mu.shape[1]
    owner = np.asarray(owner, dtype=np.int64)
    counts = np.bincount(owner, minlength=n_reviews)[:, None]  # (N, 1)

    def mean_of(a: np.ndarray) -> np.ndarray:
        total = np.zeros((n_reviews, Z), dtype=np.float64)
        np.add.at(total, owner, a)
        return total / np.maximum(counts, 1)  # (N, Z)

    mean_mu = mean_of(mu)
    if pooling == "mean":
        out = mean_mu
    elif pooling == "meanmax":
        top = np.full((n_reviews, Z), -np.inf)
        np.maximum.at(top, owner, mu)
        top[counts[:, 0] == 0] = 0.0
        out = np.concatenate([mean_mu, top], axis=1)
    else:
        out = np.concatenate([mean_mu, mean_of(logvar)], axis=1)
    return out.astype(np.float32)


def latent_part(pooling: str, latent_dim: int) -> list[slice]:
    """Which feature columns are (functions of) μ for a single sentence: mean and max of one μ is μ."""
    if pooling == "meanmax":
        return [slice(0, latent_dim), slice(latent_dim, 2 * latent_dim)]
    return [slice(0, latent_dim)]


# ---------------------------------------------------------------------------- sentence encoding
def encode_sentences(vae, sentences: Sequence[str], *, batch_size: int = 256, progress: bool = True,
                     desc: str = "encode") -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Posterior (μ, logσ²) of each sentence through `vae.encode` (an api.SeqVAE), no sampling.

    Returns mu, logvar (S, Z) float32 in input order, `ok` (S,) bool (False: the sentence has no
    tokens, so no posterior; its rows are 0) and how many sentences were longer than the API's
    MAX_TOKENS and cut to it (never dropped). Sentences are sorted by token length and passed to
    the API in chunks of 16 batches, so its length-sorted batches carry little padding and the
    progress bar moves.
    """
    from tqdm.auto import tqdm

    from .api import MAX_TOKENS

    stripped = [s.strip() for s in sentences]  # what the API tokenizes
    lens = np.array([len(ids) if s else 0 for s, ids in zip(stripped, vae.tokenizer.encode_batch(stripped))],
                    dtype=np.int64)
    ok = lens > 0
    S, Z = len(sentences), vae.latent_dim
    mu = np.zeros((S, Z), dtype=np.float32)
    logvar = np.zeros((S, Z), dtype=np.float32)
    order = np.flatnonzero(ok)
    order = order[np.argsort(-lens[order], kind="stable")]  # longest first: memory peaks early
    chunk = 16 * batch_size
    with tqdm(total=len(order), desc=desc, unit="sent", disable=not progress, leave=False) as bar:
        for start in range(0, len(order), chunk):
            idx = order[start : start + chunk]
            post = vae.encode([sentences[i] for i in idx], batch_size=batch_size)
            mu[idx] = post.mu.float().cpu().numpy()
            logvar[idx] = post.logvar.float().cpu().numpy()
            bar.update(len(idx))
    return mu, logvar, ok, int((lens > MAX_TOKENS).sum())


@dataclass
class Features:
    """Review features and what it took to make them."""

    X: np.ndarray                 # (N, D) float32, one row per review
    pooling: str
    n_reviews: int
    n_sentences: int              # rows encoded: sentences (or clauses, unit="clause")
    n_empty: int                  # reviews with no sentence: zero rows
    n_truncated: int              # sentences cut to the model's maximum length
    sent_mean: np.ndarray         # (Z,) mean of sentence posterior means (for steering units)
    sent_cov: np.ndarray          # (Z, Z) their covariance
    seconds: float = 0.0          # time it took to compute (also when read back from the cache)
    cached: bool = False

    def summary(self) -> dict[str, Any]:
        return {"reviews": self.n_reviews, "sentences": self.n_sentences, "empty_reviews": self.n_empty,
                "truncated_sentences": self.n_truncated, "dim": int(self.X.shape[1]),
                "seconds": round(self.seconds, 2), "cached": self.cached}


@dataclass
class SentenceSet:
    """Posterior means of every sentence of a list of reviews, grouped by review: the input of the
    set classifier, which scores sentences before it pools (review_features pool first). `logvar`
    rides along where it is known (what `mean_logvar` pooling of a few sentences needs)."""

    mu: np.ndarray       # (S, Z) float32, sentences of review 0 first, then review 1, ...
    owner: np.ndarray    # (S,) int64 review index of each row, non-decreasing
    n_reviews: int
    logvar: np.ndarray | None = None  # (S, Z) float32 or None

    def __post_init__(self) -> None:
        self.owner = np.asarray(self.owner, dtype=np.int64)
        if len(self.owner) != len(self.mu) or np.any(np.diff(self.owner) < 0):
            raise ValueError("owner must give one non-decreasing review index per row of mu")
        if self.logvar is not None and self.logvar.shape != self.mu.shape:
            raise ValueError("logvar must have the shape of mu")
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
        """The sentences `rows` (with their logσ² where known), regrouped into reviews by `owner`."""
        return SentenceSet(self.mu[rows], owner, n_reviews, None if self.logvar is None else self.logvar[rows])

    def concat(self, other: "SentenceSet") -> "SentenceSet":
        """The reviews of self, then those of other (renumbered from len(self))."""
        owner = np.concatenate([self.owner, other.owner + self.n_reviews])
        logvar = None if self.logvar is None or other.logvar is None else np.concatenate([self.logvar, other.logvar])
        return SentenceSet(np.concatenate([self.mu, other.mu]), owner, self.n_reviews + other.n_reviews, logvar)


@dataclass
class Encoded:
    """Sentence posteriors of a list of reviews, before pooling."""

    mu: np.ndarray         # (S, Z) per sentence occurrence, grouped by review in order
    logvar: np.ndarray
    owner: np.ndarray      # (S,) review index, non-decreasing
    n_reviews: int
    n_truncated: int
    seconds: float

    def features(self, pooling: str) -> Features:
        Z = self.mu.shape[1]
        n_empty = int((np.bincount(self.owner, minlength=self.n_reviews) == 0).sum())
        sent_mean = self.mu.mean(0) if len(self.mu) else np.zeros(Z)
        sent_cov = np.cov(self.mu, rowvar=False).reshape(Z, Z) if len(self.mu) > 1 else np.eye(Z)
        return Features(pool(self.mu, self.logvar, self.owner, self.n_reviews, pooling), pooling, self.n_reviews,
                        len(self.mu), n_empty, self.n_truncated, sent_mean.astype(np.float32),
                        sent_cov.astype(np.float32), self.seconds)

    def sentence_set(self) -> SentenceSet:
        return SentenceSet(self.mu, self.owner, self.n_reviews, self.logvar)


def encode_reviews(vae, texts: Sequence[str], *, batch_size: int = 256, progress: bool = True,
                   desc: str = "encode", unit: str = "sentence") -> Encoded:
    """Split each review into sentences (the corpus' own splitter), or into clauses, and encode
    each one (the rows of the result; "sentence" below means either)."""
    check_unit(unit)
    t0 = time.perf_counter()
    split = [UNITS[unit](t) for t in texts]
    owner_of_sent, uniq, index = [], [], {}
    for r, sents in enumerate(split):
        for s in sents:
            if s not in index:  # a sentence repeated across reviews is encoded once
                index[s] = len(uniq)
                uniq.append(s)
            owner_of_sent.append((r, index[s]))
    mu_u, logvar_u, ok, n_truncated = encode_sentences(vae, uniq, batch_size=batch_size, progress=progress,
                                                       desc=desc)
    pairs = np.asarray(owner_of_sent, dtype=np.int64).reshape(-1, 2)
    pairs = pairs[ok[pairs[:, 1]]]  # a sentence with no tokens has no posterior: leave it out
    owner, which = pairs[:, 0], pairs[:, 1]
    return Encoded(mu_u[which], logvar_u[which], owner, len(texts), n_truncated, time.perf_counter() - t0)


# ---------------------------------------------------------------------------- feature cache
def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def texts_sha256(texts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


def feature_key(model_id: str, pooling: str, split: str, texts_hash: str, unit: str = "sentence") -> str:
    """Cache key: model identity (weights' sha256 or untrained-init recipe) + pooling + unit (with
    the clause cut's version) + split + texts (the sentence unit is left out of the key, as before
    clauses existed)."""
    unit_key = {} if unit == "sentence" else {"unit": unit, "cut": CLAUSE_CUT_VERSION}
    raw = json.dumps({"v": FEATURE_VERSION, "model": model_id, "pooling": pooling, "split": split,
                      "texts": texts_hash, **unit_key}, sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:20]


def model_sha256(vae) -> str:
    """Identity of a model's weights: sha256 over its state dict (names, dtypes, shapes, bytes)."""
    import torch

    h = hashlib.sha256()
    for name, t in sorted(vae.model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update((t.float() if t.dtype == torch.bfloat16 else t).numpy().tobytes())  # numpy has no bf16
    return h.hexdigest()


def checkpoint_id(ckpt_dir: str | Path) -> str:
    """Identity of a checkpoint's weights: sha256 of its model.safetensors."""
    from .checkpoint import WEIGHTS_FILE

    return file_sha256(Path(ckpt_dir) / WEIGHTS_FILE)


def untrained_like(vae, seed: int = UNTRAINED_SEED):
    """The baseline encoder: the same config and tokenizer, randomly initialised under `seed`.

    The global torch RNG is left as it was. Returns (SeqVAE, identity string for the cache).
    """
    import torch

    from .api import SeqVAE
    from .model import SentenceVAE

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SentenceVAE(vae.model.cfg)
    cfg = json.dumps(vae.model.cfg.to_dict(), sort_keys=True)
    ident = hashlib.sha256(f"untrained:{seed}:torch-{torch.__version__}:{cfg}".encode()).hexdigest()
    return SeqVAE(model.to(vae.device), vae.tokenizer, vae.config), ident


def _cache_path(cache_dir: Path, tag: str, split: str, pooling: str, key: str) -> Path:
    return cache_dir / f"{tag}-{split}-{pooling}-{key}.npz"


def _save_features(path: Path, f: Features) -> None:
    atomic.write_with(path, lambda tmp: np.savez(
        tmp, X=f.X, n_reviews=f.n_reviews, n_sentences=f.n_sentences, n_empty=f.n_empty,
        n_truncated=f.n_truncated, sent_mean=f.sent_mean, sent_cov=f.sent_cov, seconds=f.seconds))


def _load_features(path: Path, pooling: str) -> Features | None:
    try:
        with np.load(path) as z:
            return Features(z["X"], pooling, int(z["n_reviews"]), int(z["n_sentences"]), int(z["n_empty"]),
                            int(z["n_truncated"]), z["sent_mean"], z["sent_cov"], float(z["seconds"]), cached=True)
    except (OSError, KeyError, ValueError):
        return None  # unreadable or from an older layout: recompute


SENTENCES = "sentences"  # cache name of the unpooled sentence set


def _save_sentences(path: Path, enc: Encoded) -> None:
    atomic.write_with(path, lambda tmp: np.savez(tmp, mu=enc.mu, logvar=enc.logvar, owner=enc.owner,
                                                 n_reviews=enc.n_reviews))


def _load_sentences(path: Path) -> SentenceSet | None:
    """The cached sentence set; its logvar is None in files written before it was kept."""
    try:
        with np.load(path) as z:
            return SentenceSet(z["mu"], z["owner"], int(z["n_reviews"]), z["logvar"] if "logvar" in z else None)
    except (OSError, KeyError, ValueError):
        return None


def _cached(vae, texts: Sequence[str], wants: Sequence[str], *, split: str, model_id: str | None, tag: str,
            cache_dir: str | Path | None, batch_size: int, progress: bool,
            logvar: bool = False, unit: str = "sentence") -> list[Features | SentenceSet]:
    """`wants` (poolings and/or SENTENCES) of `texts` cut into `unit`s, from the cache; a miss
    encodes once and writes all. logvar=True: a cached sentence set without logσ² (an older file)
    counts as a miss."""
    for w in wants:
        if w != SENTENCES and w not in POOLINGS:
            raise ClassifyError(f"pooling must be one of {', '.join(POOLINGS)}, got {w!r}")
    check_unit(unit)
    paths = None
    if cache_dir is not None:
        model_id = model_id or model_sha256(vae)
        th = texts_sha256(texts)
        paths = {p: _cache_path(Path(cache_dir), tag, split, p, feature_key(model_id, p, split, th, unit))
                 for p in (*POOLINGS, SENTENCES)}
        hits = [(_load_sentences(paths[w]) if w == SENTENCES else _load_features(paths[w], w))
                if paths[w].is_file() else None for w in wants]
        if all(h is not None and h.n_reviews == len(texts) and not (logvar and isinstance(h, SentenceSet)
                                                                      and h.logvar is None) for h in hits):
            return hits
    enc = encode_reviews(vae, texts, batch_size=batch_size, progress=progress, desc=f"{tag} {split}", unit=unit)
    if paths is not None:
        for p in POOLINGS:
            _save_features(paths[p], enc.features(p))
        _save_sentences(paths[SENTENCES], enc)
    return [enc.sentence_set() if w == SENTENCES else enc.features(w) for w in wants]


def review_features(vae, texts: Sequence[str], *, pooling: str = "mean", split: str = "custom",
                    model_id: str | None = None, tag: str = "vae", cache_dir: str | Path | None = None,
                    batch_size: int = 256, progress: bool = True, unit: str = "sentence") -> Features:
    """Features of `texts` with one pooling, read from / written to `cache_dir` (None: no cache).

    `model_id` identifies the weights (default: sha256 of the checkpoint's model.safetensors).
    A miss computes and caches every pooling and the sentence set, so switching later is free too.
    `unit` "clause" pools the reviews' clauses instead of their sentences.
    """
    return _cached(vae, texts, [pooling], split=split, model_id=model_id, tag=tag, cache_dir=cache_dir,
                   batch_size=batch_size, progress=progress, unit=unit)[0]


def sentence_features(vae, texts: Sequence[str], *, split: str = "custom", model_id: str | None = None,
                      tag: str = "vae", cache_dir: str | Path | None = None, batch_size: int = 256,
                      progress: bool = True, logvar: bool = False, unit: str = "sentence") -> SentenceSet:
    """The unpooled sentence (or, unit="clause", clause) posterior means of `texts` (for the set
    classifier), cached like review_features; logvar=True makes sure their logσ² comes with them."""
    return _cached(vae, texts, [SENTENCES], split=split, model_id=model_id, tag=tag, cache_dir=cache_dir,
                   batch_size=batch_size, progress=progress, logvar=logvar, unit=unit)[0]
