"""A prepared data dir's splits read back as text, for the quality report: the training sentences' word counts
and hashes (invented words, copies, the checkpoint's word list) and the held-out test sentences."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np

from . import atomic
from .data import SentenceDataset
from .prepare import WORDS_CACHE  # written into the data dir: training word counts and sentence hashes
from .textscores import alpha_words, norm_spaces
from .tokenizer import load_tokenizer
from .wordlist import MIN_COUNT, KnownWords

INVENTED_BELOW = MIN_COUNT  # a word seen fewer times than this in the training sentences is "invented"


# ---------------------------------------------------------------------------- training vocabulary
class TrainingText:
    """Word counts and sentence hashes of a data dir's train split (cached in the data dir)."""

    def __init__(self, counts: dict[str, int], hashes: np.ndarray):
        hashes = np.asarray(hashes, dtype=np.uint64)
        if not (hashes[1:] > hashes[:-1]).all():  # copy_rate looks them up in order (a data dir's cache is)
            hashes = np.unique(hashes)
        self.counts, self.hashes = counts, hashes

    @staticmethod
    def _hash(texts: Sequence[str]) -> np.ndarray:
        return np.array([int.from_bytes(hashlib.blake2b(norm_spaces(t).lower().encode(), digest_size=8).digest(), "little")
                         for t in texts], dtype=np.uint64)

    @classmethod
    def from_data_dir(cls, data_dir: str | Path) -> "TrainingText":
        """The word counts and sentence hashes of a prepared data dir's train split, cached in the data dir
        (prepare.WORDS_CACHE) and counted again when train.npz is newer than the cache."""
        d = Path(data_dir)
        cache = d / WORDS_CACHE
        if cache.is_file() and cache.stat().st_mtime >= (d / "train.npz").stat().st_mtime:
            z = np.load(cache, allow_pickle=False)
            return cls(dict(zip(z["words"].tolist(), z["counts"].tolist())), z["hashes"])
        tok, train = load_tokenizer(d), SentenceDataset.from_dir(d, "train")
        texts = [tok.decode(train[i].tolist()) for i in range(len(train))]
        counts = Counter(w for t in texts for w in alpha_words(t))
        hashes = np.unique(cls._hash(texts))
        keys = sorted(counts)

        def write(path: Path) -> None:
            with open(path, "wb") as f:
                np.savez_compressed(f, words=np.array(keys), counts=np.array([counts[k] for k in keys]), hashes=hashes)

        atomic.write_with(cache, write)
        return cls(dict(counts), hashes)

    def invented_rate(self, texts: Sequence[str]) -> float:
        ws = [w for t in texts for w in alpha_words(t)]
        return float(np.mean([self.counts.get(w, 0) < INVENTED_BELOW for w in ws])) if ws else 0.0

    def copy_rate(self, texts: Sequence[str]) -> float:
        """The share of texts that are a training sentence (by hash), looked up by bisection in the sorted hashes
        (np.isin sorted all the training hashes again on every call: 0.7 s for IMDB's 843,002, 12 calls a report)."""
        if not texts or not len(self.hashes):
            return 0.0
        h = self._hash(texts)
        at = np.minimum(np.searchsorted(self.hashes, h), len(self.hashes) - 1)  # where each would stand
        return float((self.hashes[at] == h).mean())

    def known_words(self, min_count: int = MIN_COUNT) -> KnownWords:
        """The words used at least `min_count` times: the list a checkpoint's decoding keeps to."""
        return KnownWords.from_counts(self.counts, min_count)


# ---------------------------------------------------------------------------- held-out sentences
def held_out(data_dir: str | Path, n: int, seed: int = 0, min_words: int = 5,
             max_words: int = 25) -> tuple[list[str], str]:
    """n test sentences of min..max words (shuffled with seed), and a note when fewer exist."""
    d = Path(data_dir)
    tok, test = load_tokenizer(d), SentenceDataset.from_dir(d, "test")
    texts = [tok.decode(test[i].tolist()) for i in range(len(test))]
    texts = [t for t in texts if min_words <= len(t.split()) <= max_words]
    rng = np.random.default_rng(seed)
    texts = [texts[i] for i in rng.permutation(len(texts))]
    note = ""
    if len(texts) < n:
        note = f"asked for {n} sentences, the test split has {len(texts)} of {min_words}-{max_words} words: using all"
    return texts[:n], note
