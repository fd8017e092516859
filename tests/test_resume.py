"""--resume's checks (seqvae/resume.py): what it refuses, with which line, and what it accepts."""

import shutil

import pytest
from test_train import tiny_cfg

from seqvae import checkpoint
from seqvae.config import ConfigError
from seqvae.train import Trainer


def test_a_run_stopped_before_its_first_checkpoint_is_started_over_not_sent_to_resume(tiny_data_dir, tmp_path,
                                                                                     one_line):
    """Killed before its first evaluation, a run dir holds a log and no last/: both ways back name --overwrite
    (train --out said "resume it with --resume", and --resume said only that there is no last/)."""
    run = tmp_path / "run"
    Trainer(tiny_cfg(), tiny_data_dir, run, device="cpu", progress=False).fit(until_step=7)  # evaluates at 10
    assert (run / "metrics.jsonl").exists() and not (run / "last").exists()
    one_line(["train", "--data", tiny_data_dir, "--out", run, "--device", "cpu"],
             "stopped before its first checkpoint (nothing to resume); start it over with --overwrite")
    one_line(["train", "--resume", run, "--device", "cpu"], "start it over with --overwrite")
    assert Trainer(tiny_cfg(), tiny_data_dir, run, device="cpu", progress=False, overwrite=True).fit()["step"] == 20
    # a checkpoint dir given for its run dir is not sent to --overwrite
    one_line(["train", "--resume", run / "last", "--device", "cpu"],
             f"a checkpoint, not a run dir: --resume takes the run dir that holds it ({run.absolute()})")
    one_line(["train", "--resume", run / "best", "--device", "cpu"], "--init-from it starts a new run from its weights")
    one_line(["train", "--resume", tmp_path, "--device", "cpu"], "no last/ checkpoint to resume from (not a run dir?)")


def test_resume_refuses_a_max_steps_below_the_runs_step(tiny_data_dir, tmp_path, one_line):
    """--max-steps under the checkpoint's step exited 0 with nothing done (the loop never ran)."""
    Trainer(tiny_cfg(max_steps=10), tiny_data_dir, tmp_path / "run", device="cpu", progress=False).fit()
    one_line(["train", "--resume", tmp_path / "run", "--max-steps", "5", "--device", "cpu"],
             "--max-steps 5 is below the step its last/ checkpoint is at (10)")
    assert Trainer.resume(tmp_path / "run", max_steps=10, device="cpu", progress=False).fit()["step"] == 10


def test_resuming_a_finished_run_says_it_has_nothing_to_train(tiny_data_dir, tmp_path, capsys):
    """--resume of a run at its max_steps printed the start line and the summary as if it had trained."""
    from seqvae.cli import main

    Trainer(tiny_cfg(max_steps=10), tiny_data_dir, tmp_path / "run", device="cpu", progress=False).fit()
    assert main(["train", "--resume", str(tmp_path / "run"), "--device", "cpu", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert f"{tmp_path / 'run'} is finished at step 10 (max_steps 10): nothing to train (--max-steps N trains it " \
        "further)" in err.splitlines()[0], err


def test_resume_finds_a_relative_data_dir_from_elsewhere_and_refuses_a_prepared_again_one(tiny_data_dir, tmp_path,
                                                                                         monkeypatch):
    """A run records its data dir as given and absolute; resuming checks the data's tokenizer is the run's."""
    data = tmp_path / "work" / "data"
    shutil.copytree(tiny_data_dir, data)
    monkeypatch.chdir(tmp_path / "work")
    Trainer(tiny_cfg(max_steps=20), "data", "run", device="cpu", progress=False).fit(until_step=10)
    state = checkpoint.load_trainer_state(tmp_path / "work" / "run" / "last")
    assert (state["data_dir"], state["data_dir_abs"]) == ("data", str(data))
    # from a dir with a data dir of its own under the same relative name (another tokenizer): the run's
    # absolute path is used, and the state keeps the relative form it was first given
    shutil.copytree(tiny_data_dir, tmp_path / "data")
    (tmp_path / "data" / "vocab.txt").write_text((tmp_path / "data" / "vocab.txt").read_text() + "zebra\n")
    monkeypatch.chdir(tmp_path)
    assert Trainer.resume("work/run", device="cpu", progress=False).fit()["step"] == 20
    state = checkpoint.load_trainer_state(tmp_path / "work" / "run" / "last")
    assert (state["data_dir"], state["data_dir_abs"]) == ("data", str(data))
    shutil.rmtree(data)
    shutil.rmtree(tmp_path / "data")
    with pytest.raises(ConfigError, match=r"its data dir data \(.*work/data\) is not there; pass --data DIR"):
        Trainer.resume("work/run", device="cpu", progress=False)
    from seqvae.config import DataConfig
    from seqvae.prepare import prepare

    (tmp_path / "other.txt").write_text("".join(f"another corpus line {i} .\n" for i in range(60)))
    prepare(DataConfig(dataset="text", train_file=str(tmp_path / "other.txt"), vocab_size=60, min_tokens=2),
            data, progress=False)  # the same dir, prepared again from other text
    with pytest.raises(ConfigError, match="tokenizer in .* is not the run's .prepared again since.."):
        Trainer.resume("work/run", device="cpu", progress=False)


def test_resume_refuses_a_data_dir_with_the_runs_tokenizer_but_other_sentences(tiny_data_dir, tmp_path, one_line):
    """Data dirs that share a tokenizer hold other sentences (data/imdb-short and data/qs-s12 do): --resume
    trained on with a batch position in another order and a best score from other valid sentences. A copy of
    the run's data dir elsewhere is still accepted."""
    from conftest import write_fake_ptb

    from seqvae.config import DataConfig
    from seqvae.prepare import prepare
    from seqvae.tokenizer import same_tokenizer

    other = tmp_path / "capped"
    prepare(DataConfig(dataset="ptb", data_root=str(write_fake_ptb(tmp_path / "raw")), max_sentences=200), other,
            progress=False)
    assert same_tokenizer(other, tiny_data_dir)  # what --resume checked so far
    run = tmp_path / "run"
    Trainer(tiny_cfg(), tiny_data_dir, run, device="cpu", progress=False).fit(until_step=10)
    log = (run / "metrics.jsonl").read_text()
    one_line(["train", "--resume", run, "--data", other, "--device", "cpu"],
             f"the train sentences in {other} are not the ones the run was trained on")
    assert (run / "metrics.jsonl").read_text() == log
    shutil.copytree(tiny_data_dir, tmp_path / "copy")
    assert Trainer.resume(run, data_dir=tmp_path / "copy", device="cpu", progress=False).fit()["step"] == 20


def test_resume_refuses_to_stretch_a_cyclical_schedule(tiny_data_dir, tmp_path):
    Trainer(tiny_cfg(max_steps=10, kl_schedule="cyclical"), tiny_data_dir, tmp_path / "run", device="cpu",
            progress=False).fit()
    with pytest.raises(ConfigError, match="cyclical"):
        Trainer.resume(tmp_path / "run", max_steps=20, device="cpu", progress=False)
    assert Trainer.resume(tmp_path / "run", max_steps=10, device="cpu", progress=False).step == 10


def test_a_last_replaced_between_resumes_read_and_its_lock_is_refused(tiny_data_dir, tmp_path, monkeypatch, one_line):
    """--resume reads last/ (config, trainer state, then weights, with the data read in between) before it takes
    the run dir's lock. A trainer that saved last/ in that time and then finished left a state of one save with
    the weights of the next: the resume went on from step 10 with step 20's weights, and said nothing."""
    run = tmp_path / "run"
    Trainer(tiny_cfg(), tiny_data_dir, run, device="cpu", progress=False).fit(until_step=10)
    real, finished = checkpoint.load_trainer_state, []

    def read_while_another_trainer_finishes(path):
        state = real(path)
        monkeypatch.setattr(checkpoint, "load_trainer_state", real)
        assert Trainer.resume(run, device="cpu", progress=False).fit()["step"] == 20  # it saves last/, unlocks
        finished.append((run / "metrics.jsonl").read_text())
        return state

    monkeypatch.setattr(checkpoint, "load_trainer_state", read_while_another_trainer_finishes)
    one_line(["train", "--resume", run, "--device", "cpu", "--no-progress"],
             f"{run / 'last'} was replaced while --resume read it")
    assert (run / "metrics.jsonl").read_text() == finished[0]  # the finished run's log is left whole
    assert Trainer.resume(run, device="cpu", progress=False).step == 20  # read again, it is whole


def test_a_run_with_best_but_no_last_is_not_said_to_have_stopped_before_its_first_checkpoint(tiny_data_dir, tmp_path,
                                                                                             one_line):
    """A kill between the first evaluation's two saves (faultpoint checkpoint-filled:2) leaves best/ and no
    last/, as does a last/ removed to save its optimizer state's space. Both ways back said the run stopped
    before its first checkpoint (or evaluation): its best/ is one, and --init-from can start from it."""
    run = tmp_path / "run"
    Trainer(tiny_cfg(), tiny_data_dir, run, device="cpu", progress=False).fit(until_step=10)
    shutil.rmtree(run / "last")
    one_line(["train", "--data", tiny_data_dir, "--out", run, "--device", "cpu"],
             f"{run} already holds a run: one with a best/ checkpoint and no last/ (nothing to resume); start it "
             "over with --overwrite, or pick a new --out")
    one_line(["train", "--resume", run, "--device", "cpu"],
             f"{run}: no last/ checkpoint to resume from, only best/ (no trainer state): start it over with "
             f"--overwrite, or start a new run from its weights with --init-from {run / 'best'}")
