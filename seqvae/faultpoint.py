"""A test hook: stop a process at a named point so that a test can kill it there, or act and let it go on.

    SEQVAE_PAUSE_AT=checkpoint-filled:2 SEQVAE_PAUSE_MARKER=/tmp/m seqvae train ...

pauses the second time the code reaches `faultpoint.reached("checkpoint-filled")`: it writes the
marker file (so the test knows the process is there) and sleeps until it is killed, or until the
test removes the marker file (then it goes on: a paused reader, say). With the variable unset,
reached() is one comparison. Points: "step" (inside an optimisation step, after the backward pass,
before the update), "evaluated" (right after an evaluation and its checkpoints), "checkpoint-filled"
(a checkpoint's files written to its temporary dir, before the rename), "prepare-filled" (the same
for a prepared data dir), "swap" (between the two renames that replace an existing checkpoint dir or
prepared data dir), "pair" (a two-file save, a prior's or a classifier head's, between its data file
and the JSON that commits it) and "pair-read" (a reader of such a pair, between reading its JSON and
looking up the data file that the JSON names).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

PAUSE_ENV = "SEQVAE_PAUSE_AT"
MARKER_ENV = "SEQVAE_PAUSE_MARKER"

_point, _, _nth = os.environ.get(PAUSE_ENV, "").partition(":")
_target = int(_nth) if _nth.isdigit() else 1
_hits = 0


def reached(point: str) -> None:
    """Pause here if SEQVAE_PAUSE_AT names this point and this is its n-th visit: for good, or while the
    marker file is there."""
    global _hits
    if point != _point:
        return
    _hits += 1
    if _hits != _target:
        return
    marker = os.environ.get(MARKER_ENV)
    if marker:  # written whole, then renamed: whoever sees the file can read the pid
        tmp = Path(f"{marker}.{os.getpid()}.tmp")
        tmp.write_text(f"{os.getpid()} {point}:{_hits}\n", encoding="utf-8")
        os.replace(tmp, marker)
    while not marker or os.path.exists(marker):
        time.sleep(0.05 if marker else 3600)
