"""scripts/gpu_flagship.sh in its CPU smoke form (SMOKE=1: a few steps of each run): the VAE candidate and its
language model train, and each comes back as a float16 run dir (best/ and metrics.jsonl) packed in a tar that
loads; without prepared data it says so in one line and exits non-zero. A run that fails leaves the other's
packed, and runs that the budget stops between a checkpoint's two renames are packed from the parked version."""

import json
import os
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import torch
from conftest import run_script
from safetensors.torch import load_file

from seqvae import SeqVAE

ROOT = Path(__file__).resolve().parents[1]


def flagship_env(tmp_path, data, **more) -> dict[str, str]:
    return {**os.environ, "SMOKE": "1", "DATA": str(data), "RUNS": str(tmp_path / "runs"),
            "OUT": str(tmp_path / "out"), "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "OMP_NUM_THREADS": "1", **more}


def gpu_flagship(tmp_path, data, **env) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "scripts/gpu_flagship.sh"], cwd=ROOT, env=flagship_env(tmp_path, data, **env),
                          capture_output=True, text=True, timeout=600)


def unpacked(tmp_path, name: str) -> Path:
    with tarfile.open(tmp_path / "out" / f"{name}.tar") as tar:
        tar.extractall(tmp_path / "back", filter="data")
    return tmp_path / "back" / name


def test_both_runs_come_back_as_float16_run_dirs(tmp_path, tiny_data_dir):
    proc = gpu_flagship(tmp_path, tiny_data_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    back = tmp_path / "back"
    for name, latent in (("vae", True), ("lm", False)):
        run = unpacked(tmp_path, name)
        steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert max(steps) == 4
        assert {t.dtype for t in load_file(run / "best" / "model.safetensors").values()} == {torch.float16}
        vae = SeqVAE.from_pretrained(run / "best", device="cpu")
        assert vae.latent is latent
        if latent:  # the candidate's options, beyond the flagship's preset
            cfg = vae.model.cfg
            assert (cfg.latent_dim, cfg.z_slots, cfg.encoder_slots, cfg.bow_head) == (128, 16, 16, True)
            train = json.loads((run / "best" / "config.json").read_text())["train"]
            assert (train["free_bits"], train["mean_rec_weight"], train["kl_schedule"]) == (0.175, 0.5, "cyclical")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["lm.log", "lm.tar", "vae.log", "vae.tar"]

    # the header's next step: ship_checkpoint.py on the unpacked runs (no last/: their training.json)
    ship = run_script("ship_checkpoint")
    opts = ["--samples", "2", "--max-sentences", "5", "--data", str(tiny_data_dir)]
    out = tmp_path / "shipped"
    assert ship(back / "vae", out, "--lm", back / "lm", *opts)[::2] == (0, "")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["training"]["steps"] == 4 and metrics["lm_training"]["steps"] == 4
    assert metrics["test"]["sentences"] == 5 and "lm_test" in metrics
    card = (out / "README.md").read_text()
    assert "trained on Penn Treebank sentences" in card and "IMDB" not in card and "words" in card
    assert "- the company said it expects to report a loss  →" in card and "deduplicated" not in card
    # shipped again over itself (a report re-run, say): a head fitted on it is kept while the weights file is the
    # same, and named as dropped when it is not (it was dropped silently either way)
    (out / "classifier.json").write_text("{}")
    assert ship(back / "vae", out, "--lm", back / "lm", *opts)[::2] == (0, "")
    assert (out / "classifier.json").read_text() == "{}"
    rc, _, err = ship(back / "vae", out, "--lm", back / "lm", *opts, "--dtype", "float32")
    assert rc == 0 and f"ship_checkpoint: note: {out} held classifier.json, made for its previous weights: not kept" \
        in err.splitlines()
    assert not (out / "classifier.json").exists() and not list(tmp_path.glob(".shipped*"))
    # the language model alone: a checkpoint with its short card
    assert ship(back / "lm", tmp_path / "lm-shipped", *opts)[::2] == (0, "")
    assert "the GRU language model baseline" in (tmp_path / "lm-shipped" / "README.md").read_text()
    assert SeqVAE.from_pretrained(tmp_path / "lm-shipped", device="cpu").latent is False
    assert not list(tmp_path.glob(".lm-shipped*"))

    # what ship_checkpoint refuses before any work, and what it leaves alone
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("keep me")
    for argv, msg in [((back / "vae", back / "vae", *opts), "is inside the run"),
                      ((back / "vae", back / "vae" / "best", *opts), "is inside the run"),
                      ((back / "vae", tmp_path / "notes", *opts), "is not a seqvae checkpoint dir"),
                      ((back / "vae", tmp_path / "x", "--lm", back / "vae", *opts), "is a VAE"),
                      ((back / "vae", tmp_path / "x", *opts, "--max-sentences", "-3"), "--max-sentences"),
                      ((back / "vae", tmp_path / "x", *opts, "--samples", "0"), "--samples must be between"),
                      ((tmp_path / "nope", tmp_path / "x", *opts), "no best/")]:
        rc, _, err = ship(*argv)
        assert rc == 2 and err.count("\n") == 1 and err.startswith("ship_checkpoint: error:") and msg in err, err
    assert (tmp_path / "notes" / "mine.txt").read_text() == "keep me" and (back / "vae" / "best").is_dir()
    assert not (tmp_path / "x").exists()


def test_a_failed_run_leaves_the_other_packed(tmp_path, tiny_data_dir):
    """The VAE stops at once (a bad option): the LM's run still comes back, and the script's exit status says
    that one failed (it packed nothing before: both runs' device time lost to one run's fault)."""
    proc = gpu_flagship(tmp_path, tiny_data_dir, VAE_OPTS="--set model.latent_dim=0")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "training vae failed (exit 2)" in proc.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["lm.log", "lm.tar", "vae.log"]
    run = unpacked(tmp_path, "lm")
    assert json.loads((run / "training.json").read_text())["step"] == 4
    assert SeqVAE.from_pretrained(run / "best", device="cpu").latent is False


def _descendants(pid: int) -> list[int]:
    """The processes below `pid` (Linux /proc)."""
    parent = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        parent[int(stat.parent.name)] = int(fields[1])
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        found += kids
        todo += kids
    return found


def test_runs_stopped_by_the_budget_between_a_checkpoints_renames_are_packed(tmp_path, tiny_data_dir):
    """The budget ends while each run replaces a checkpoint (step 4's first swap: its previous version parked,
    the new one not yet in place): the packed runs hold step 2's checkpoints. The budget's end is `timeout`'s
    own (SIGALRM: it stops the run and exits 124, as when BUDGET runs out), sent once both runs sit there."""
    env = flagship_env(tmp_path, tiny_data_dir, BUDGET="600", SEQVAE_PAUSE_AT="swap:1")
    proc = subprocess.Popen(["bash", "scripts/gpu_flagship.sh"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        runs = [tmp_path / "runs" / f"{name}-run" for name in ("vae", "lm")]
        deadline = time.monotonic() + 300
        while not all((run / ".best.old").is_dir() or (run / ".last.old").is_dir() for run in runs):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
            time.sleep(0.2)
        timers = [p for p in _descendants(proc.pid) if Path(f"/proc/{p}/comm").read_text().strip() == "timeout"]
        assert len(timers) == 2
        for p in timers:
            os.kill(p, signal.SIGALRM)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    for name in ("vae", "lm"):
        run = unpacked(tmp_path, name)
        assert json.loads((run / "training.json").read_text())["step"] == 2
        assert json.loads((run / "best" / "metrics.json").read_text())["step"] == 2
        SeqVAE.from_pretrained(run / "best", device="cpu")


def session_members(sid: int) -> list[int]:
    """The processes of session `sid`: the script's trainers run under `timeout`, which puts each in a process
    group of its own, so killing the script's group left them paused, orphaned, until their own time limit."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[3]) == sid:  # after the name: state, ppid, pgrp, session
            pids.append(int(stat.parent.name))
    return pids


def kill_session(sid: int) -> None:
    for pid in session_members(sid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_second_script_on_the_same_runs_stops_at_once_and_touches_nothing(tmp_path, tiny_data_dir):
    """While the script trains (both runs paused after their first evaluation), a second one with the same RUNS
    and OUT stops with one line, before anything: it used to truncate the first's logs (its trainers then failed
    on the run dirs' locks) and pack the first's runs while they trained."""
    env = flagship_env(tmp_path, tiny_data_dir, SEQVAE_PAUSE_AT="evaluated:1")
    first = subprocess.Popen(["bash", "scripts/gpu_flagship.sh"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        runs, deadline = [tmp_path / "runs" / f"{name}-run" for name in ("vae", "lm")], time.monotonic() + 300
        while not all((run / "best").is_dir() for run in runs):
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        before = {p: p.read_bytes() for p in (tmp_path / "out").iterdir()}
        listed = sorted(os.listdir(tmp_path / "runs"))
        second = gpu_flagship(tmp_path, tiny_data_dir)
        assert second.returncode == 2 and second.stderr.count("\n") == 1, second.stderr
        assert second.stderr.startswith(f"gpu_flagship: {tmp_path / 'runs'} is in use by another gpu_flagship")
        assert {p: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before
        assert sorted(os.listdir(tmp_path / "runs")) == listed
    finally:
        kill_session(first.pid)  # the script, its timeouts and their paused trainers
        first.wait(timeout=60)
    deadline = time.monotonic() + 10
    while session_members(first.pid) and time.monotonic() < deadline:  # SIGKILL is delivered, not waited for
        time.sleep(0.1)
    assert not session_members(first.pid), "trainers of the first script outlived the test"
