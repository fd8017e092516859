"""One writer per run dir: a lock file that a trainer holds while it may write there.

    lock = RunLock(run_dir)
    lock.acquire()      # RunDirBusy (one line naming the holder) if another live process holds it
    ...train, write checkpoints...
    lock.release()      # the kernel drops the flock (not the file) when the process dies, even by SIGKILL

The lock is an flock(2) on RUN_DIR/train.lock, which records the holder's pid and host for the
message. The kernel drops an flock when its process dies, so a lock file left behind by a killed
trainer is stale by construction: the next trainer takes it over, whatever pid it names. Readers
(from_pretrained, evaluate, sample ...) never take the lock; checkpoints are replaced by rename,
so they see a whole one without it. A dir that is replaced whole (a prepared data dir, a shipped
checkpoint) has its lock file beside it instead: `with OutLock(out, writer="prepare", advice=...):`,
which also finishes or drops what a killed writer of `out` left. Linux and macOS; on a network
filesystem flock needs lock support from the server (NFS has it).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
from pathlib import Path

from . import atomic
from .config import ConfigError

LOCK_FILE = "train.lock"


class RunDirBusy(ConfigError):
    """Another live process holds the run dir's lock (one-line message naming it)."""


def holder(path: str | Path) -> dict:
    """What a lock file says about its holder: {"pid": ..., "host": ...} ({} if unreadable)."""
    try:
        info = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


class RunLock:
    """The lock on one run dir (see the module docstring); `held` while this object has it. `path` puts the
    lock file elsewhere than RUN_DIR/train.lock; `writer` and `advice` are for the refusal."""

    def __init__(self, run_dir: str | Path, *, path: str | Path | None = None, writer: str = "trainer",
                 advice: str = "use another run dir"):
        self.dir = Path(run_dir)
        self.path = Path(path) if path is not None else self.dir / LOCK_FILE
        self.writer, self.advice = writer, advice
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock (creating the run dir); a no-op if this object holds it already."""
        if self._fd is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:  # a place no dir can be made (/proc/x), which only trying tells (root passes os.access)
            raise ConfigError(f"{self.path.parent}: cannot create the dir ({e.strerror})") from None
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno not in (errno.EAGAIN, errno.EACCES):  # a filesystem without locks
                    raise ConfigError(f"{self.path}: cannot lock the run dir ({e.strerror})") from None
                info = holder(self.path)
                who = f"pid {info.get('pid', '?')} on {info.get('host', '?')}"
                raise RunDirBusy(f"{self.dir} is being written by another {self.writer} ({who}, lock "
                                 f"{self.path}); wait for it to finish or {self.advice}") from None
            # the holder before us may have removed the file between our open and our flock:
            # then we locked a file nobody else will see; start again on the one at the path
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps({"pid": os.getpid(), "host": socket.gethostname()}) + "\n").encode())
        self._fd = fd

    def release(self) -> None:
        """Remove the lock file and drop the lock (removal first, while it is still ours)."""
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            pass  # an unwritable dir: the file stays, and the dropped flock still frees it
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __del__(self):  # a trainer dropped without close(): free the dir for the next one
        try:
            self.release()
        except Exception:
            pass


class OutLock(RunLock):
    """One writer at a time for a dir that is replaced whole (`seqvae prepare --out`, scripts/ship_checkpoint.py's
    OUT): the lock file is .NAME.lock beside it (beside where it points, for a link). Entered, it finishes or drops
    what a killed writer left: a dir parked between two renames comes back, temporary dirs and files go (only the
    holder may remove them: another live writer's would be among them)."""

    def __init__(self, out: str | Path, *, writer: str, advice: str):
        final = atomic.linked(out)
        super().__init__(out, path=final.with_name(f".{final.name}.lock"), writer=writer, advice=advice)

    def __enter__(self) -> "OutLock":
        self.acquire()  # RunDirBusy if another writer is at work there
        atomic.recover_dir(self.dir)
        atomic.remove_leftovers(self.dir)
        return self

    def __exit__(self, *exc) -> None:
        self.release()
