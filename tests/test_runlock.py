"""The run dir lock: one holder, named in the refusal; released on exit; a dead holder's file is stale."""

import fcntl
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from seqvae import runlock
from seqvae.runlock import LOCK_FILE, RunDirBusy, RunLock, holder


def test_one_holder_at_a_time_and_release_frees_the_dir(tmp_path):
    first = RunLock(tmp_path / "run")
    first.acquire()
    assert holder(tmp_path / "run" / LOCK_FILE) == {"pid": os.getpid(), "host": socket.gethostname()}
    first.acquire()  # already ours: nothing happens
    with pytest.raises(RunDirBusy, match=f"pid {os.getpid()} on {socket.gethostname()}"):
        RunLock(tmp_path / "run").acquire()  # another open of the lock file, even in this process
    first.release()
    assert os.listdir(tmp_path / "run") == []
    second = RunLock(tmp_path / "run")
    second.acquire()
    assert second.held
    second.release()


def test_a_lock_file_left_by_a_dead_process_is_taken_over(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (run / LOCK_FILE).write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname()}))
    lock = RunLock(run)
    lock.acquire()
    assert holder(run / LOCK_FILE)["pid"] == os.getpid()
    lock.release()


def test_a_live_holder_in_another_process_is_named(tmp_path):
    run = tmp_path / "run"
    code = ("import sys, time; from seqvae.runlock import RunLock; lock = RunLock(sys.argv[1]); lock.acquire(); "
            "print('held', flush=True); time.sleep(60)")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", code, str(run)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(RunDirBusy, match=f"pid {proc.pid} on "):
            RunLock(run).acquire()
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    lock = RunLock(run)  # killed: the kernel dropped its lock, the file it left is stale
    lock.acquire()
    lock.release()


def test_a_lock_file_removed_between_our_open_and_our_flock_is_opened_again(tmp_path, monkeypatch):
    """The holder before us released and removed the file after we opened it: the lock we got is on a file
    nobody else will open, so acquire starts again on the file at the path, and a second trainer is refused."""
    run = tmp_path / "run"
    real, calls = fcntl.flock, []

    def flock(fd, op):
        calls.append(op)
        if len(calls) == 1:
            os.unlink(run / LOCK_FILE)
        return real(fd, op)

    monkeypatch.setattr(runlock.fcntl, "flock", flock)
    lock = RunLock(run)
    lock.acquire()
    assert len(calls) == 2 and holder(run / LOCK_FILE)["pid"] == os.getpid()
    with pytest.raises(RunDirBusy, match=f"pid {os.getpid()}"):
        RunLock(run).acquire()
    lock.release()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc, where no dir can be made")
def test_a_dir_that_cannot_be_made_is_one_line_naming_it():
    """A run dir where no dir can be made (/proc/x: even root cannot) was `[Errno 2] No such file or directory`
    from mkdir, in the system's words; it is one ConfigError naming the dir."""
    from seqvae.config import ConfigError

    with pytest.raises(ConfigError, match=r"^/proc/seqvae-no-dir/run: cannot create the dir \(No such file or directory\)$"):
        RunLock(Path("/proc/seqvae-no-dir/run")).acquire()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc, where no dir can be made")
def test_train_into_a_dir_that_cannot_be_made_is_its_one_line(tiny_data_dir, one_line):
    """`train --out /proc/x` printed its `VAE: ... parameters` start line before the error: the run dir was
    made when training began. It is made (and locked) by the Trainer now, before the start line."""
    one_line(["train", "--data", tiny_data_dir, "--out", "/proc/seqvae-no-dir/run", "--preset", "tiny",
              "--device", "cpu", "--no-progress"], "/proc/seqvae-no-dir/run: cannot create the dir")
