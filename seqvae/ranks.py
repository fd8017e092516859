"""This process's place in a torchrun launch, the device it trains on, and what the processes do together.

    ranks = Ranks.from_env()                 # RANK, WORLD_SIZE, LOCAL_RANK, or the only process
    device = process_device("cuda", ranks)   # under torchrun with CUDA: cuda:LOCAL_RANK
    ddp = join(model, ranks, device)         # torchrun's process group joined, the model in DistributedDataParallel
    share = ranks.share(idx)                 # this process's slice of a step's sentences
    m = mean_over_ranks(m, rows)             # a per-column mean over this process's rows → over all processes' rows
    whole_batch_mean(ranks, has_rows)        # mean_over_ranks as free bits take it (None: the only process)
    t, n = sum_over_ranks(t, n)              # a tensor and a count summed over the processes
    gathered(obj), from_main(obj)            # every process's obj in each; the first process's obj in each
    lost_contact(e)                          # whether a collective's error means another process is gone
    lost_others(e, ranks)                    # ... and the line that says so
    leave()                                  # leave the group together (after the last collective)
    exit_joined(code)                        # a process in a group ends here, skipping Python's shutdown

join, gathered, from_main, sum_over_ranks, mean_over_ranks and leave are collectives: every process of the group
calls them, in the same order.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass

import numpy as np
import torch

from .config import ConfigError, resolve_device
from .display import one_line


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

    def seed(self, seed: int, step: int) -> int:
        """The RNG seed of a process other than the first (word dropout, z noise), from (seed, rank, step)."""
        return int(np.random.SeedSequence([seed, self.rank, step]).generate_state(1)[0])

    def share(self, idx: np.ndarray) -> np.ndarray:
        """This process's sentences of a step's `idx` (sorted longest first): every process a slice of the same
        length profile (none waits long). Empty in some processes where idx has fewer sentences than processes."""
        return idx[self.rank :: self.world]


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


def join(model: torch.nn.Module, ranks: Ranks, device: torch.device, *, find_unused_parameters: bool = False):
    """Join torchrun's process group (nccl on CUDA, gloo on CPU; unless one is joined already) and wrap the model
    in DistributedDataParallel (which makes every process's weights the first one's)."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    if not dist.is_initialized():
        if "MASTER_ADDR" not in os.environ:
            raise ConfigError(f"WORLD_SIZE is {ranks.world} but MASTER_ADDR is not set: launch several "
                              "processes with torchrun")
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if dist.get_world_size() != ranks.world:
        raise ConfigError(f"the process group has {dist.get_world_size()} processes, WORLD_SIZE says {ranks.world}")
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, gradient_as_bucket_view=True,
                                   find_unused_parameters=find_unused_parameters)


def leave() -> None:
    """Leave torchrun's process group together. NCCL's group is destroyed, as PyTorch asks; gloo's is left to
    process exit (exit_joined): destroying it hung one process in about one CPU run of ten here (torch 2.13)."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
        if dist.get_backend() == "nccl":
            dist.destroy_process_group()


def exit_joined(code: int) -> None:
    """End this process now, with `code`, if it is in a process group (else return): not through Python's
    shutdown. A gloo worker thread can still hold the last reference to a finished collective's tensors
    (all_gather_object's, say) when the process ends; dropping them needs the GIL, which a finalizing Python no
    longer grants, so the thread is unwound inside a C++ destructor and the process aborts ("terminate called
    without an active exception", SIGABRT) instead of exiting with `code`: 4 to 8 in 100 bare process pairs did
    on this 2-core CPU under load (torch 2.13), with or without a barrier first; 0 of 80 ending here. Whatever the
    process writes is closed by then (seqvae.atomic, the log); the streams are flushed here."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # a reader gone, a closed stream: nothing more to say on it
            pass
    os._exit(code)


def gathered(obj) -> list:
    """Every process's `obj`, in rank order, in every process."""
    import torch.distributed as dist

    box = [None] * dist.get_world_size()
    dist.all_gather_object(box, obj)
    return box


def from_main(obj):
    """The first process's `obj`, in every process."""
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sum_over_ranks(total: torch.Tensor, count: int) -> tuple[torch.Tensor, int]:
    """`total` (a float tensor, returned in float64) and `count` summed over every process."""
    import torch.distributed as dist

    both = torch.cat([total.double(), torch.full((1,), float(count), dtype=torch.float64, device=total.device)])
    dist.all_reduce(both)
    return both[:-1], int(both[-1].item())


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


def _mean_over_ranks_of_none(mean: torch.Tensor, rows: int) -> torch.Tensor:
    return mean_over_ranks(mean, 0)


def whole_batch_mean(ranks: Ranks, has_rows: bool):
    """The per-column mean over a step's whole batch that free bits decide on (the kernels' free_bits_mean): None
    for the only process (its rows are the batch); under torchrun mean_over_ranks, with weight 0 in a process whose
    rows stand in for none (a step of fewer sentences than processes gave it none)."""
    if ranks.world == 1:
        return None
    return mean_over_ranks if has_rows else _mean_over_ranks_of_none


def lost_contact(e: BaseException) -> bool:
    """Whether `e`, raised by a collective, means that another process of the group is gone (it failed on its
    own, or was killed): a torch.distributed error, or the plain RuntimeError that gloo raises ("Connection
    closed by peer", a read error, its timeout)."""
    import torch.distributed as dist

    return isinstance(e, dist.DistError) or (isinstance(e, RuntimeError) and bool(re.search(r"\bgloo\b|NCCL", str(e))))


def lost_others(e: BaseException, ranks: Ranks) -> str | None:
    """Where `e` means that another process is gone (lost_contact), the line that says so in place of the
    collective's own error (the cause is the other process's error, not this one's); else None."""
    if ranks.world == 1 or not lost_contact(e):
        return None
    cause = re.sub(r"^\[[^\]]*\]\s*", "", one_line(e))  # gloo's begins with its source line
    cause = cause.split(". ")[0][:160]
    return (f"process {ranks.rank} of {ranks.world} lost the others ({cause}): one of them stopped first, and its "
            "error says why")
