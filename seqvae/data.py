"""Tokenized sentences in memory, length-bucketed batching, collation, word dropout, token deletion.

A split is two flat numpy arrays (see seqvae.prepare): `ids` holds every sentence's
token ids back to back and `offsets[i]:offsets[i+1]` is sentence i. Nothing is padded
on disk; padding happens per batch, and batches are drawn from length-sorted pools so
that there is little of it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from .config import BOS_ID, EOS_ID, PAD_ID


class SentenceDataset:
    """Sentences as token-id arrays (no BOS/EOS), backed by one flat array."""

    def __init__(self, ids: np.ndarray, offsets: np.ndarray):
        if offsets.ndim != 1 or len(offsets) < 1 or offsets[0] != 0 or offsets[-1] != len(ids):
            raise ValueError("offsets must start at 0 and end at len(ids)")
        self.ids = ids.astype(np.int64, copy=False)
        self.offsets = offsets.astype(np.int64, copy=False)
        self.lengths = np.diff(self.offsets)  # (N,) tokens per sentence, without BOS/EOS

    @classmethod
    def from_dir(cls, data_dir: str | Path, split: str, vocab_size: int | None = None) -> "SentenceDataset":
        """One split of a prepared dir; with `vocab_size`, every id checked to lie in [0, vocab_size)."""
        from .prepare import load_split

        ids, offsets, _ = load_split(data_dir, split, vocab_size)
        return cls(ids, offsets)

    @classmethod
    def from_lists(cls, sentences: Sequence[Sequence[int]]) -> "SentenceDataset":
        lengths = np.array([len(s) for s in sentences], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        flat = [t for s in sentences for t in s]
        return cls(np.asarray(flat, dtype=np.int64), offsets)

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.ids[self.offsets[i] : self.offsets[i + 1]]

    def subset(self, n: int) -> "SentenceDataset":
        """The first n sentences (for quick evaluation)."""
        n = min(n, len(self))
        return SentenceDataset(self.ids[: self.offsets[n]], self.offsets[: n + 1])

    @property
    def num_target_tokens(self) -> int:
        """Tokens the decoder predicts: every token plus one EOS per sentence."""
        return int(self.lengths.sum() + len(self))

    def fingerprint(self) -> str:
        """sha256 of the sentences (their token ids and boundaries): the same for a copy of the split, or for
        one prepared again into the same sentences; another for any other sentences."""
        h = hashlib.sha256()
        h.update(self.offsets.tobytes())
        h.update(self.ids.tobytes())
        return h.hexdigest()


class BucketBatchSampler:
    """Batches of similar-length sentences, reproducible per (seed, epoch).

    Each epoch: shuffle all indices, cut them into pools of `batch_size * bucket_size`,
    sort each pool by length, cut pools into batches, shuffle the batch order.
    Every sentence appears in exactly one batch per epoch. One batch, the last pool's last, is short
    where batch_size does not divide the sentences; the batch order shuffle puts it anywhere in the epoch.
    """

    def __init__(self, lengths: np.ndarray, batch_size: int, *, shuffle: bool = True,
                 seed: int = 0, bucket_size: int = 100):
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.bucket_size = max(1, bucket_size)

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def batches(self, epoch: int = 0) -> list[np.ndarray]:
        n = len(self.lengths)
        if not self.shuffle:
            # Deterministic, length-sorted (longest first) for evaluation: least padding.
            order = np.argsort(-self.lengths, kind="stable")
            return [order[i : i + self.batch_size] for i in range(0, n, self.batch_size)]
        rng = np.random.default_rng([self.seed, epoch])
        perm = rng.permutation(n)
        pool = self.batch_size * self.bucket_size
        batches = []
        for start in range(0, n, pool):
            chunk = perm[start : start + pool]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches.extend(chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size))
        order = rng.permutation(len(batches))
        return [batches[i] for i in order]

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self.batches(0))


@dataclass
class Batch:
    """One padded batch. T = longest sentence in the batch (tokens, no BOS/EOS)."""

    src: torch.Tensor        # (B, T)   encoder input: the sentence, right-padded
    src_lens: torch.Tensor   # (B,)     sentence lengths (>= 1 unless the sentence is empty); always on the CPU
    dec_in: torch.Tensor     # (B, T+1) decoder input: BOS x1 .. xn, padded
    target: torch.Tensor     # (B, T+1) decoder target: x1 .. xn EOS, padded
    positions: torch.Tensor  # (N,)     flat indices of the N real (non-pad) target positions in (B*(T+1))

    def to(self, device: torch.device | str) -> "Batch":
        """Move to `device`; src_lens stays on the CPU, where packing reads it without a device sync."""
        nb = torch.device(device).type == "cuda"
        src, dec_in, target, positions = (t.to(device, non_blocking=nb)
                                          for t in (self.src, self.dec_in, self.target, self.positions))
        return Batch(src, self.src_lens, dec_in, target, positions)

    @property
    def size(self) -> int:
        return self.src.shape[0]

    @property
    def num_target_tokens(self) -> int:
        return int(self.src_lens.sum()) + self.size


def collate(sentences: Sequence[np.ndarray | Sequence[int]], *, pad_id: int = PAD_ID,
            bos_id: int = BOS_ID, eos_id: int = EOS_ID) -> Batch:
    """Pad a list of token-id sequences into a Batch."""
    lens = np.array([len(s) for s in sentences], dtype=np.int64)
    B, T = len(sentences), int(lens.max(initial=0))
    src = np.full((B, max(T, 1)), pad_id, dtype=np.int64)
    dec_in = np.full((B, T + 1), pad_id, dtype=np.int64)
    target = np.full((B, T + 1), pad_id, dtype=np.int64)
    dec_in[:, 0] = bos_id
    for b, s in enumerate(sentences):
        n = lens[b]
        src[b, :n] = s
        dec_in[b, 1 : n + 1] = s
        target[b, :n] = s
        target[b, n] = eos_id
    positions = np.flatnonzero(target != pad_id)
    return Batch(torch.from_numpy(src), torch.from_numpy(lens), torch.from_numpy(dec_in), torch.from_numpy(target),
                 torch.from_numpy(positions))


def word_dropout(dec_in: torch.Tensor, rate: float, *, unk_id: int, pad_id: int = PAD_ID,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Replace decoder input tokens by <unk> with probability `rate` (Bowman et al. 2016).

    Column 0 (BOS) and padding are never replaced. Returns a new tensor.
    """
    if rate <= 0.0:
        return dec_in
    drop = torch.rand(dec_in.shape, device=dec_in.device, generator=generator) < rate
    drop[:, 0] = False
    drop &= dec_in != pad_id
    return dec_in.masked_fill(drop, unk_id)


def delete_tokens(src: torch.Tensor, src_lens: torch.Tensor, rate: float, *, pad_id: int = PAD_ID,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Delete each real token of the encoder's input with probability `rate` (the denoising of Shen et al.
    2020); what is left keeps its order and moves left. A sentence keeps at least its first token. src
    (B, T) and src_lens (B,) on the CPU, as collate makes them. Returns new (src, src_lens), src as wide
    as the longest sentence left.
    """
    if rate <= 0.0:
        return src, src_lens
    B, T = src.shape
    real = torch.arange(T)[None, :] < src_lens[:, None]
    keep = (torch.rand((B, T), generator=generator) >= rate) & real
    keep[:, 0] |= real[:, 0] & ~keep.any(dim=1)  # nothing left: keep the first token
    lens = keep.sum(dim=1)
    order = torch.sort((~keep).to(torch.int8), dim=1, stable=True).indices  # kept tokens first, in order
    out = src.gather(1, order).masked_fill(torch.arange(T)[None, :] >= lens[:, None], pad_id)
    width = max(int(lens.max()), 1) if B else 1
    return out[:, :width].contiguous(), lens
