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
from .tokenizer import Tokenizer, load_tokenizer
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
    """n test sentences of min..max words (shuffled with seed), each once (a split where prepare kept repeats: PTB,
    --no-dedup; spacing aside), and a note when fewer exist. Only the n are decoded: the others' words are counted
    from their tokens (word_counts; decoding IMDB's 275,552 test sentences took 3-5 s a call)."""
    d = Path(data_dir)
    tok, test = load_tokenizer(d), SentenceDataset.from_dir(d, "test")
    counts = word_counts(tok, test)
    fit = np.flatnonzero((min_words <= counts) & (counts <= max_words))  # in split order, as the texts were
    rng = np.random.default_rng(seed)
    fit = fit[rng.permutation(len(fit))]
    first: dict[str, str] = {}  # the first n distinct texts (spacing aside, as `report --texts`), in shuffled order
    for i in fit.tolist():
        if len(first) >= n:
            break
        text = tok.decode(test[i].tolist())
        first.setdefault(norm_spaces(text), text)
    texts, note = list(first.values()), ""
    if len(texts) < n:  # every fit sentence was looked at
        repeats = f" ({len(fit) - len(texts)} repeats left out)" if len(fit) > len(texts) else ""
        note = (f"asked for {n} sentences, the test split has {len(texts)} of {min_words}-{max_words} words{repeats}: "
                "using all")
    return texts, note


def word_counts(tok: Tokenizer, sentences: SentenceDataset) -> np.ndarray:
    """len(tok.decode(s).split()) for each sentence s, decoding only the sentences that hold a token without a
    piece text (special ids, UNK, byte pieces, ids outside the vocabulary: decode says what they write, or raises
    as it would). A decoded sentence is its tokens' piece texts (Tokenizer.piece_texts) joined, less any leading
    space: its words start inside pieces, and where a piece opens with a non-space after one that ended in a
    space (or first)."""
    texts = tok.piece_texts()
    known = np.array([t is not None for t in texts] + [False])  # (V + 1,) the last: ids outside the vocabulary
    opens = np.array([t is not None and not t[0].isspace() for t in texts] + [False])
    ends_space = np.array([t is not None and t[-1].isspace() for t in texts] + [False])
    inner = np.array([0 if t is None else sum(a.isspace() and not b.isspace() for a, b in zip(t, t[1:]))
                      for t in texts] + [0], dtype=np.int32)
    ids, full = sentences.ids, sentences.lengths > 0
    if len(ids) and (ids.min() < 0 or ids.max() >= len(texts)):
        ids = np.where((ids >= 0) & (ids < len(texts)), ids, len(texts))
    starts = sentences.offsets[:-1][full]  # the first token of each sentence that has one
    after_space = np.ones(len(ids), dtype=bool)  # (T,) whether the token before ended in a space, or is none
    after_space[1:] = ends_space[ids[:-1]]
    after_space[starts] = True
    counts, decode = np.zeros(len(sentences), dtype=np.int64), np.zeros(len(sentences), dtype=bool)
    if len(starts):
        counts[full] = np.add.reduceat(inner[ids] + (opens[ids] & after_space), starts)
        decode[full] = np.logical_or.reduceat(~known[ids], starts)
    for i in np.flatnonzero(decode).tolist():
        counts[i] = len(tok.decode(sentences[i].tolist()).split())
    return counts
