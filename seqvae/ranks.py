"""This process's place in a torchrun launch, and the device it trains on.

    ranks = Ranks.from_env()                 # RANK, WORLD_SIZE, LOCAL_RANK, or the only process
    device = process_device("cuda", ranks)   # under torchrun with CUDA: cuda:LOCAL_RANK
    m = mean_over_ranks(m, rows)             # a per-column mean over this process's rows → over all processes' rows
    lost_contact(e)                          # whether a collective's error means another process is gone
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import torch

from .config import ConfigError, resolve_device


@dataclass(frozen=True)
class Ranks:
    """This process's place in a torchrun launch (one process per device), or the only process."""

    rank: int = 0   # this process's number among all (0: the one that evaluates, logs and saves)
    world: int = 1  # processes in all (torchrun's WORLD_SIZE)
    local: int = 0  # rank on this machine: the CUDA device it trains on

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> "Ranks":
        """From torchrun's WORLD_SIZE, RANK and LOCAL_RANK (absent: a single process)."""
        try:
            world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
            local = int(os.environ.get("LOCAL_RANK", "0"))
        except ValueError:
            raise ConfigError("WORLD_SIZE, RANK and LOCAL_RANK must be integers (torchrun sets them)") from None
        if world < 1 or not 0 <= rank < world or local < 0:
            raise ConfigError(f"bad torchrun environment: RANK {rank}, WORLD_SIZE {world}, LOCAL_RANK {local}")
        return cls(rank, world, local)


def process_device(device: str | torch.device | None, ranks: Ranks) -> torch.device:
    """The device of this process: under torchrun with CUDA, cuda:LOCAL_RANK."""
    dev = resolve_device(device)
    if ranks.world > 1 and dev.type == "cuda":
        if dev.index is not None:
            raise ConfigError(f"device {device!r}: under torchrun each process trains on cuda:LOCAL_RANK; "
                              "pass --device cuda (or nothing)")
        dev = resolve_device(f"cuda:{ranks.local}")
        torch.cuda.set_device(dev)
    return dev


def mean_over_ranks(mean: torch.Tensor, rows: int) -> torch.Tensor:
    """The mean over every process's rows of a per-column mean (Z,) that this process took over its own `rows`
    rows: each process's mean weighs as many rows as it had, so unequal shares of a batch are right. A collective
    (every process of the group calls it, in the same order); computed in float64, returned in mean's dtype.
    Free bits use it (seqvae.kernels' free_bits_mean) to decide on the whole batch, not each process's share."""
    import torch.distributed as dist

    total = torch.cat([mean.detach().double() * rows,
                       torch.full((1,), float(rows), dtype=torch.float64, device=mean.device)])  # (Z + 1,)
    dist.all_reduce(total)
    return (total[:-1] / total[-1]).to(mean.dtype)


def lost_contact(e: BaseException) -> bool:
    """Whether `e`, raised by a collective, means that another process of the group is gone (it failed on its
    own, or was killed): a torch.distributed error, or the plain RuntimeError that gloo raises ("Connection
    closed by peer", a read error, its timeout)."""
    import torch.distributed as dist

    return isinstance(e, dist.DistError) or (isinstance(e, RuntimeError) and bool(re.search(r"\bgloo\b|NCCL", str(e))))
