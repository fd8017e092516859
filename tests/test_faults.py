"""Training under faults: SIGKILL at chosen points, non-finite steps, a second trainer, failing writes."""

import errno
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from seqvae import atomic, checkpoint
from seqvae.config import ModelConfig, RunConfig, TrainConfig
from seqvae.train import Trainer

TINY_MODEL = ModelConfig(embed_dim=16, hidden_dim=32, latent_dim=8)
RUN_FILES = {"best", "last", "metrics.jsonl"}  # what a run dir holds once no trainer is in it


def tiny_cfg(**train):
    base = dict(batch_size=16, max_steps=20, eval_every=10, log_every=5, kl_schedule="logistic", kl_x0=10,
                kl_k=0.3, word_dropout=0.2, seed=0, num_threads=1)
    return RunConfig(model=TINY_MODEL, train=TrainConfig(**{**base, **train}))


@pytest.fixture
def stops_with(capsys):
    """stops_with(argv, pattern): `seqvae ARGV` starts (its banner line), then exits 2 with one error line."""
    from seqvae.cli import main

    def check(argv, pattern):
        assert main([str(a) for a in argv]) == 2
        lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
        assert len(lines) == 2 and lines[0].startswith("VAE: ") and lines[1].startswith("seqvae: error:"), lines
        assert pattern in lines[1], lines[1]

    return check


def rows(run):
    return [{k: v for k, v in json.loads(x).items() if k != "tokens_per_s"}
            for x in (run / "metrics.jsonl").read_text().splitlines()]


def whole_checkpoints(run: Path) -> dict[str, int]:
    """Every checkpoint dir in the run dir, parked ones included, loads strictly: {name: its step}."""
    found = {}
    for name in ("best", "last", ".best.old", ".last.old"):
        d = run / name
        if d.exists():
            checkpoint.load(d)  # strict: raises on anything missing, cut short or mismatched
            found[name] = json.loads((d / "metrics.json").read_text())["step"]
            if name.endswith("last") or name == ".last.old":
                assert checkpoint.load_trainer_state(d)["step"] == found[name]
    return found


# ---------------------------------------------------------------------------- SIGKILL
def _env(**extra):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
           **extra}
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SEQVAE_PAUSE_AT", "SEQVAE_PAUSE_MARKER"):
        if var not in extra:
            env.pop(var, None)
    return env


def _train(args, pause=None, marker=None):
    """`seqvae train ARGS` in a subprocess; with `pause`, stopped at that point (see seqvae/faultpoint.py)."""
    cmd = [sys.executable, "-m", "seqvae.cli", "train", "--device", "cpu", "--no-progress", *map(str, args)]
    extra = {"SEQVAE_PAUSE_AT": pause, "SEQVAE_PAUSE_MARKER": str(marker)} if pause else {}
    return subprocess.Popen(cmd, env=_env(**extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_paused(proc, marker, timeout=120):
    t0 = time.time()
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"trainer exited ({proc.returncode}) before its pause point: {proc.stderr.read()}")
        if time.time() - t0 > timeout:
            proc.kill()
            raise AssertionError("trainer did not reach its pause point")
        time.sleep(0.05)
    return int(marker.read_text().split()[0])


def test_sigkill_anywhere_leaves_whole_checkpoints_and_resume_ends_where_an_uninterrupted_run_does(
        tiny_data_dir, tmp_path, one_line):
    """Kill -9 inside a step, right after an evaluation, with a checkpoint's files written but not yet
    renamed, and between the two renames that replace a checkpoint; resume after each. Every checkpoint
    on disk is whole at every kill, and the last run ends bit for bit where an uninterrupted one ends."""
    cfg = tiny_cfg(max_steps=40)
    conf = tmp_path / "cfg.json"
    conf.write_text(json.dumps({"model": cfg.model.to_dict(), "train": cfg.train.to_dict()}))
    run, marker = tmp_path / "run", tmp_path / "paused"
    # (pause point, the last/ step a reader sees after the kill)
    kills = [("step:13", 10),            # inside step 13: steps 11-13 are lost
             ("evaluated:1", 20),        # right after the step-20 evaluation (resumed from 10)
             ("checkpoint-filled:1", 20),  # step 30's first checkpoint written to its temp dir, not renamed
             ("swap:1", 20)]             # step 30's first replacement between its renames: parked, not gone
    for i, (point, last_step) in enumerate(kills):
        args = ["--data", tiny_data_dir, "--out", run, "--config", conf] if i == 0 else ["--resume", run]
        proc = _train(args, pause=point, marker=marker)
        pid = _wait_paused(proc, marker)
        if i == 0:  # a second trainer on a run dir in use: one line naming the holder, nothing touched
            before = sorted(os.listdir(run))
            one_line(["train", "--resume", run, "--device", "cpu", "--no-progress"], f"pid {pid} on ")
            assert sorted(os.listdir(run)) == before
        os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=60)
        proc.stdout.close(), proc.stderr.close()
        marker.unlink()
        found = whole_checkpoints(run)
        parked = point == "swap:1"
        assert any(n.endswith(".old") for n in found) == parked, found
        # what a reader (from_pretrained, evaluate, resume) finds: a whole checkpoint at the expected step
        seen = json.loads((atomic.current_dir(run / "last") / "metrics.json").read_text())["step"]
        assert seen == last_step or (parked and seen == 30), (point, found)
        checkpoint.load(run)  # best/, or its parked version
        assert (run / "train.lock").exists()  # left by the killed trainer: stale, the next one takes it
    res = subprocess.run([sys.executable, "-m", "seqvae.cli", "train", "--resume", run, "--device", "cpu",
                          "--no-progress"], env=_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert set(os.listdir(run)) == RUN_FILES  # no temp dirs, no parked copy, no lock left behind

    ref = Trainer(cfg, tiny_data_dir, tmp_path / "ref", device="cpu", progress=False)
    ref.fit()
    assert (run / "last" / "model.safetensors").read_bytes() == \
        (tmp_path / "ref" / "last" / "model.safetensors").read_bytes()
    assert (run / "best" / "model.safetensors").read_bytes() == \
        (tmp_path / "ref" / "best" / "model.safetensors").read_bytes()
    assert rows(run) == rows(tmp_path / "ref")


# ---------------------------------------------------------------------------- non-finite steps
def _poison_at(monkeypatch, calls, where):
    """Make the loss (where="loss") or one gradient (where="grad") NaN at the train steps in `calls`."""
    import seqvae.train as train_mod

    real, count = train_mod.elbo_loss, [0]

    def elbo(rec, kl, beta):
        count[0] += 1
        loss = real(rec, kl, beta)
        if count[0] in calls:
            if where == "loss":
                return loss * float("nan")
            loss.register_hook(lambda g: g * float("nan"))  # a finite loss whose gradient is not
        return loss
    monkeypatch.setattr(train_mod, "elbo_loss", elbo)


def _skip_update_at(tr, steps):
    """The reference: the same run with the optimizer step of `steps` (1-based) left out by hand."""
    real = tr.optimizer.step

    def step(*a, **k):
        if tr.step + 1 not in steps:
            return real(*a, **k)
    tr.optimizer.step = step


@pytest.mark.parametrize("where,fused", [("loss", False), ("grad", False), ("loss", True)])
def test_a_non_finite_step_makes_no_update_and_is_counted(tiny_data_dir, tmp_path, monkeypatch, where, fused):
    """fused=True takes the device path (the decision stays on the device, as on CUDA) on CPU."""
    def trainer(name):
        tr = Trainer(tiny_cfg(max_steps=12, log_every=4), tiny_data_dir, tmp_path / name, device="cpu",
                     progress=False)
        if fused:
            tr.optimizer = torch.optim.AdamW(tr.model.parameters(), lr=tr.cfg.train.lr, fused=True)
        return tr

    ref = trainer("ref")
    _skip_update_at(ref, {7})
    ref.fit()
    _poison_at(monkeypatch, {7}, where)
    bad = trainer("bad")
    bad.fit()
    a, b = ref.model.state_dict(), bad.model.state_dict()
    assert all(torch.isfinite(b[k]).all() for k in b)
    assert all(torch.equal(a[k], b[k]) for k in a), "the NaN step changed the weights"
    assert torch.equal(ref.optimizer.state_dict()["state"][0]["exp_avg"], bad.optimizer.state_dict()["state"][0]["exp_avg"])
    counted = {r["step"]: r.get("nonfinite_steps", 0) for r in rows(tmp_path / "bad") if r["split"] == "train"}
    assert counted == {4: 0, 8: 1, 10: 0, 12: 0}  # 10: the row before the evaluation at eval_every
    assert all(r["loss"] == r["loss"] for r in rows(tmp_path / "bad") if r["split"] == "train")  # no NaN averages


def test_persistent_nan_stops_with_one_line_and_keeps_the_last_good_checkpoint(tiny_data_dir, tmp_path,
                                                                             monkeypatch, stops_with):
    cfg = tiny_cfg(max_steps=40, max_bad_steps=4)
    conf = tmp_path / "cfg.json"
    conf.write_text(json.dumps({"model": cfg.model.to_dict(), "train": cfg.train.to_dict()}))
    _poison_at(monkeypatch, set(range(13, 100)), "loss")
    run = tmp_path / "run"
    stops_with(["train", "--data", tiny_data_dir, "--out", run, "--config", conf, "--device", "cpu",
                "--no-progress"], "step 16: 4 steps in a row")
    assert whole_checkpoints(run) == {"best": 10, "last": 10}
    train = [r for r in rows(run) if r["split"] == "train"]
    assert train[-1]["step"] == 16 and sum(r.get("nonfinite_steps", 0) for r in train) == 4  # 13-15, then 16
    assert set(os.listdir(run)) == RUN_FILES  # the lock is released on the error too
    # --resume takes none of the flags the line suggests and meets the same steps: it names the way on
    stops_with(["train", "--resume", run, "--device", "cpu", "--no-progress"],
               f"in a new run (--resume keeps this one's config and meets the same steps; --init-from {run / 'last'} "
               "starts one from its weights)")


# ---------------------------------------------------------------------------- failing writes
def _fail_once(monkeypatch, module, name, exc, when):
    real = getattr(module, name)

    def failing(*a, **k):
        if when(*a):
            raise exc
        return real(*a, **k)
    monkeypatch.setattr(module, name, failing)


@pytest.mark.parametrize("fault", ["disk full", "permission lost at the rename"])
def test_a_checkpoint_that_cannot_be_written_is_one_line_and_keeps_the_previous_one(tiny_data_dir, tmp_path,
                                                                                 monkeypatch, stops_with, fault):
    run = tmp_path / "run"
    Trainer(tiny_cfg(max_steps=10), tiny_data_dir, run, device="cpu", progress=False).fit()
    before = (run / "last" / "model.safetensors").read_bytes()
    if fault == "disk full":
        _fail_once(monkeypatch, checkpoint, "save_file", OSError(errno.ENOSPC, "No space left on device"),
                   lambda *a: True)
        expect = "No space left on device"
    else:  # the second rename of replace_dir: last/ is already parked as .last.old
        _fail_once(monkeypatch, atomic.os, "replace", PermissionError(errno.EACCES, "Permission denied"),
                   lambda src, dst: Path(dst).name == "last" and ".tmp-" in Path(src).name)
        expect = "Permission denied"
    stops_with(["train", "--resume", run, "--max-steps", 20, "--device", "cpu", "--no-progress"],
               f"step 20: cannot write a checkpoint in {run} ({expect}); {run / 'last'} holds the last good checkpoint")
    monkeypatch.undo()
    assert whole_checkpoints(run)["last"] == 10
    assert (run / "last" / "model.safetensors").read_bytes() == before
    assert set(os.listdir(run)) == RUN_FILES  # no temp dir, no parked copy, no lock
    assert Trainer.resume(run, max_steps=20, device="cpu", progress=False).fit()["step"] == 20


# ---------------------------------------------------------------------------- two-file saves in a checkpoint dir
def _killed_at(cmd, point, marker):
    """Run `cmd` (argv) until it reaches faultpoint `point`, then SIGKILL it there."""
    proc = subprocess.Popen(cmd, env=_env(SEQVAE_PAUSE_AT=point, SEQVAE_PAUSE_MARKER=str(marker)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    os.kill(_wait_paused(proc, marker), signal.SIGKILL)
    proc.wait(timeout=60)
    proc.stdout.close(), proc.stderr.close()
    marker.unlink()


def test_a_refit_prior_killed_between_its_two_files_leaves_the_old_prior(tiny_data_dir, tmp_path):
    """`seqvae fit-prior` on a checkpoint that has a prior, killed with its new weights written and its JSON
    not: the old prior still loads, whole; the next fit-prior replaces it and leaves nothing parked."""
    from seqvae.model import SentenceVAE
    from seqvae.prior import PRIOR_JSON, PRIOR_WEIGHTS, load_prior
    from seqvae.tokenizer import load_tokenizer

    tok = load_tokenizer(tiny_data_dir)
    torch.manual_seed(0)
    ckpt = checkpoint.save(tmp_path / "ckpt", SentenceVAE(ModelConfig(vocab_size=tok.vocab_size, embed_dim=8,
                                                                      hidden_dim=12, latent_dim=3)), tok)
    fit = [sys.executable, "-m", "seqvae.cli", "fit-prior", str(ckpt), "--data", str(tiny_data_dir),
           "--sentences", "100", "--device", "cpu"]
    assert subprocess.run(fit + ["--components", "2"], env=_env(), capture_output=True).returncode == 0
    old = load_prior(ckpt, latent_dim=3)
    old_files = {f: (ckpt / f).read_bytes() for f in (PRIOR_JSON, PRIOR_WEIGHTS)}
    _killed_at(fit + ["--components", "3"], "pair", tmp_path / "paused")
    assert (ckpt / PRIOR_WEIGHTS).read_bytes() != old_files[PRIOR_WEIGHTS]  # the new weights are in place ...
    back = load_prior(ckpt, latent_dim=3)  # ... and the old JSON reads the old weights, parked beside them
    assert back.components == 2 and torch.equal(back.means, old.means) and torch.equal(back.scale_tril, old.scale_tril)
    assert (ckpt / PRIOR_JSON).read_bytes() == old_files[PRIOR_JSON]
    assert subprocess.run(fit + ["--components", "3"], env=_env(), capture_output=True).returncode == 0
    assert load_prior(ckpt, latent_dim=3).components == 3
    assert not [f for f in os.listdir(ckpt) if f.startswith(".")]  # nothing parked, no temporary file


def test_a_head_save_killed_between_its_two_files_leaves_the_old_head(tmp_path):
    """The same for a classifier head (`seqvae classify fit` / `calibrate` over a saved head): killed between
    its weights and its JSON, the old head loads, the same values; a later save commits the new one."""
    import numpy as np

    from seqvae.sentiment.heads import LinearHead, load_head

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(200, 4)).astype(np.float32), np.arange(200) % 2
    X[:, 0] += 2 * y
    save = ("import sys, numpy as np; from seqvae.sentiment.linear import fit_linear; "
            "X = np.load(sys.argv[1]); h = fit_linear(X, np.arange(len(X)) % 2); h.coef = h.coef * float(sys.argv[2]); "
            "h.save(sys.argv[3])")
    np.save(tmp_path / "X.npy", X)
    ckpt = tmp_path / "ckpt"
    run = [sys.executable, "-c", save, str(tmp_path / "X.npy")]
    assert subprocess.run(run + ["1", str(ckpt)], env=_env(), capture_output=True).returncode == 0
    old = load_head(ckpt)
    _killed_at(run + ["3", str(ckpt)], "pair", tmp_path / "paused")
    assert (ckpt / LinearHead.files[0]).exists()
    np.testing.assert_array_equal(load_head(ckpt).decision(X), old.decision(X))
    assert subprocess.run(run + ["3", str(ckpt)], env=_env(), capture_output=True).returncode == 0
    np.testing.assert_array_equal(load_head(ckpt).coef, 3 * old.coef)
    assert sorted(os.listdir(ckpt)) == sorted(LinearHead.files)


# a reader in a subprocess: what it loads from the dir argv[1], as a JSON line
_READERS = {
    "prior": "import sys; from seqvae.prior import load_prior; print(load_prior(sys.argv[1], 3).means.tolist())",
    "head": "import sys; from seqvae.sentiment.heads import load_head; print(load_head(sys.argv[1]).coef.tolist())",
}


def _pair_versions(kind):
    """Two versions of a prior (head) to save, v(i).save(dir), and what the reader of _READERS prints for each."""
    import numpy as np

    from seqvae.prior import AggregatePrior
    from seqvae.sentiment.linear import LinearHead

    if kind == "prior":
        made = [AggregatePrior(torch.full((k,), 1.0 / k), torch.arange(3.0 * k).reshape(k, 3), torch.eye(3).expand(k, 3, 3),
                               {"kind": "gmm"})
                for k in (2, 3)]
        return made, [p.means.tolist() for p in made]
    made = [LinearHead(np.full(4, c), 0.5, np.zeros(4), np.ones(4)) for c in (1.0, 3.0)]
    return made, [h.coef.tolist() for h in made]


@pytest.mark.parametrize("kind", ["prior", "head"])
def test_a_reader_paused_between_a_pairs_json_and_its_weights_while_a_save_completes_loads_a_whole_pair(tmp_path,
                                                                                                        kind):
    """A load of a prior (a head) that has read the JSON and pauses there (faultpoint `pair-read`) while another
    save replaces the pair and removes the old weights it had parked: the reader goes on to load one whole pair,
    the new one (until 2026-12-07 it failed: `does not match the sha256`, the old weights gone)."""
    (old, new), expected = _pair_versions(kind)
    d, marker = tmp_path / "ckpt", tmp_path / "paused"
    old.save(d)
    proc = subprocess.Popen([sys.executable, "-c", _READERS[kind], str(d)],
                            env=_env(SEQVAE_PAUSE_AT="pair-read", SEQVAE_PAUSE_MARKER=str(marker)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_paused(proc, marker)
        new.save(d)
        assert not [f for f in os.listdir(d) if f.startswith(".")]  # the old weights, parked during the save, gone
        marker.unlink()  # the reader goes on
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert json.loads(out) == expected[1]


# a save_pretrained in a subprocess: the checkpoint argv[1], its weights times argv[2], saved to argv[3]
_SAVER = ("import sys, torch; from seqvae import SeqVAE; v = SeqVAE.from_pretrained(sys.argv[1], device='cpu'); "
          "[p.data.mul_(float(sys.argv[2])) for p in v.model.parameters()]; print('saving', flush=True); "
          "v.save_pretrained(sys.argv[3])")


def _waits_for_flock(pid: int, path: Path) -> bool:
    """Whether process `pid` is blocked in flock() on `path` (Linux: a waiter's line in /proc/locks reads
    `N: -> FLOCK  ADVISORY  WRITE PID MAJ:MIN:INODE 0 EOF`)."""
    inode = os.stat(path).st_ino
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if fields[1:3] == ["->", "FLOCK"] and int(fields[5]) == pid and int(fields[6].rsplit(":", 1)[1]) == inode:
            return True
    return False


def test_two_save_pretrained_into_one_dir_take_turns(tiny_vae_ckpt, tmp_path):
    """A second save_pretrained(d) while another is between the two renames that replace d (faultpoint `swap`)
    waits for it, then replaces d in turn: both succeed, d is whole and the second's, nothing is left beside it.
    Until 2026-12-07 the second went ahead unlocked (brought the parked d back, swapped its own in) and the first
    then failed with FileNotFoundError from its swap."""
    from safetensors.torch import load_file

    from seqvae import SeqVAE

    d, marker = tmp_path / "saves" / "ckpt", tmp_path / "paused"
    SeqVAE.from_pretrained(tiny_vae_ckpt, device="cpu").save_pretrained(d)
    cmd = [sys.executable, "-c", _SAVER, str(tiny_vae_ckpt)]
    first = subprocess.Popen(cmd + ["3", str(d)], env=_env(SEQVAE_PAUSE_AT="swap:1", SEQVAE_PAUSE_MARKER=str(marker)),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second = None
    try:
        _wait_paused(first, marker)
        fd = os.open(d.parent, os.O_RDONLY)  # the first holds the parent dir's lock while it swaps
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
        parked = sorted(os.listdir(d.parent))  # d parked as .ckpt.old, the first's new one in its temporary dir
        second = subprocess.Popen(cmd + ["2", str(d)], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        assert second.stdout.readline() == "saving\n"
        deadline = time.monotonic() + 120  # the kernel's word that the second waits for the lock, not a guess of
        while not _waits_for_flock(second.pid, d.parent):  # how long its save takes (a loaded CI machine)
            assert second.poll() is None, f"the second save did not wait: {second.communicate()}"
            assert time.monotonic() < deadline, "the second save never came to the parent dir's lock"
            time.sleep(0.05)
        now = set(os.listdir(d.parent))
        assert now >= set(parked) and [f.startswith(".ckpt.tmp-") for f in now - set(parked)] == [True]  # its temp dir
        marker.unlink()  # the first goes on, then the second
        results = [p.communicate(timeout=120) for p in (first, second)]
    finally:
        for p in (first, second):
            if p is not None and p.poll() is None:
                p.kill()
                p.communicate()
    assert (first.returncode, second.returncode) == (0, 0), results
    assert os.listdir(d.parent) == ["ckpt"]  # nothing parked, no temporary dir
    checkpoint.load(d)  # whole (strict)
    src, got = load_file(str(tiny_vae_ckpt / "model.safetensors")), load_file(str(d / "model.safetensors"))
    assert got.keys() == src.keys() and all(torch.equal(got[k], 2 * src[k]) for k in src)  # the second's weights


def test_a_report_killed_between_its_markdown_and_its_json_is_never_mistaken_for_one_run(tiny_vae_ckpt, tmp_path):
    """`seqvae report --out DIR` writes report.md, then report.json naming its sha256 (atomic.write_pair): killed
    between the two, the old report.json stays, the new report.md does not match what it names (a reader knows),
    and the old report.md it names is still there, parked; the next report commits a matching pair."""
    from seqvae.quality import MARKDOWN_SHA

    texts = tmp_path / "texts.txt"
    texts.write_text("the movie was great to me\nthe plot felt slow at times\nmy friend is funny in the end\n")
    out = tmp_path / "rep"
    report = [sys.executable, "-m", "seqvae.cli", "report", str(tiny_vae_ckpt), "--texts", str(texts), "--samples",
              "3", "--iw-samples", "2", "--iw-refine", "0", "--device", "cpu", "--out", str(out)]
    assert subprocess.run(report + ["--seed", "0"], env=_env(), capture_output=True).returncode == 0
    old = {f: (out / f).read_bytes() for f in ("report.json", "report.md")}
    assert json.loads(old["report.json"])[MARKDOWN_SHA] == atomic.file_sha256(out / "report.md")
    _killed_at(report + ["--seed", "1"], "pair", tmp_path / "paused")
    assert (out / "report.json").read_bytes() == old["report.json"]
    assert (out / "report.md").read_bytes() != old["report.md"]  # the other run's table, and the JSON says so:
    named = json.loads(old["report.json"])[MARKDOWN_SHA]
    assert atomic.file_sha256(out / "report.md") != named
    assert atomic.read_pair(out / "report.md", out / "report.json", MARKDOWN_SHA)[1] == old["report.md"]
    assert subprocess.run(report + ["--seed", "1"], env=_env(), capture_output=True).returncode == 0
    assert json.loads((out / "report.json").read_text())[MARKDOWN_SHA] == atomic.file_sha256(out / "report.md")
    assert sorted(os.listdir(out)) == ["report.json", "report.md"]  # nothing parked, no temporary file


def test_a_resumed_run_says_what_it_leaves_out_of_a_replaced_checkpoint(tiny_data_dir, tmp_path, capsys):
    """Files a user added to last/ (a head, a report: made for its weights) are not carried into the next
    last/, which has other weights, and the trainer says so on stderr instead of dropping them silently."""
    run = tmp_path / "run"
    Trainer(tiny_cfg(max_steps=10), tiny_data_dir, run, device="cpu", progress=False).fit()
    (run / "last" / "classifier.json").write_text("{}")
    (run / "last" / "report.md").write_text("# report")
    capsys.readouterr()
    Trainer.resume(run, max_steps=20, device="cpu", progress=False).fit()
    assert f"seqvae train: note: step 20: {run / 'last'} replaced without classifier.json, report.md (made for its " \
           f"previous weights)" in capsys.readouterr().err.splitlines()  # the `PROG: note:` of train's other notes
    assert not (run / "last" / "classifier.json").exists() and whole_checkpoints(run)["last"] == 20


def test_ships_to_one_out_never_collide_and_a_killed_ships_build_is_removed(tiny_data_dir, tmp_path):
    """scripts/ship_checkpoint.py into one OUT: while a ship is at work there (paused with its new checkpoint
    built, or between the two renames that replace OUT), a second one refuses at once with one line naming it,
    and changes nothing. Killed there, the first leaves its build (or OUT parked) behind; the next ship finishes
    or drops that, and leaves OUT whole and loadable with nothing else beside it. Before 2026-12-07 every ship
    built in one fixed .OUT.build: a second ship replaced the first one's build under it, and a killed one's
    build stayed beside OUT."""
    from conftest import run_script

    run, out, marker = tmp_path / "run", tmp_path / "shipped" / "out", tmp_path / "paused"
    Trainer(tiny_cfg(max_steps=4, eval_every=2, log_every=2), tiny_data_dir, run, device="cpu", progress=False).fit()
    argv = [str(run), str(out), "--samples", "2", "--max-sentences", "5", "--data", str(tiny_data_dir)]
    ship = run_script("ship_checkpoint")
    script = Path(__file__).resolve().parents[1] / "scripts" / "ship_checkpoint.py"
    for point in ("checkpoint-filled:1", "swap:1"):  # the first round has no OUT yet, the second replaces it
        before = sorted(os.listdir(out.parent)) if out.parent.exists() else []
        proc = subprocess.Popen([sys.executable, str(script), *argv], env=_env(SEQVAE_PAUSE_AT=point,
                                SEQVAE_PAUSE_MARKER=str(marker)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        try:
            pid = _wait_paused(proc, marker)
            left = sorted(os.listdir(out.parent))
            rc, _, err = ship(*argv, "--dtype", "float32")
            assert rc == 2 and err.count("\n") == 1, err
            assert err.startswith(f"ship_checkpoint: error: {out} is being written by another ship (pid {pid} on "), err
            assert sorted(os.listdir(out.parent)) == left
        finally:
            proc.kill()
            proc.wait(timeout=60)
            proc.stdout.close(), proc.stderr.close()
            marker.unlink(missing_ok=True)
        assert sorted(os.listdir(out.parent)) != before  # the killed ship's build, or OUT parked: left behind
        (out.parent / ".out.build").mkdir()  # where a ship of before built (it went with the next ship of before)
        (out.parent / ".out.build" / "model.safetensors").write_bytes(b"")
        assert ship(*argv)[::2] == (0, "")
        assert os.listdir(out.parent) == ["out"]  # no build, no parked OUT, no lock file
        checkpoint.load(out)
        card = (out / "README.md").read_text()
        assert "## Test metrics (5 test sentences, IW-NLL with 2 samples)" in card
        assert json.loads((out / "metrics.json").read_text())["weights_dtype"] == "float16"
