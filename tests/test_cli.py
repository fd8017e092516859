"""The `seqvae` command: an end-to-end run on tiny data, and one-line errors for bad input."""

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from seqvae.cli import main


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, pattern):
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("seqvae: error:"), err
    assert pattern in lines[0], lines[0]


TINY_TRAIN = ["--set", "model.embed_dim=16", "--set", "model.hidden_dim=32", "--set", "model.latent_dim=4",
              "--batch-size", 16, "--eval-every", 10, "--threads", 1, "--device", "cpu"]


def test_train_says_what_it_will_do_and_where_the_result_is_and_keeps_stdout_json(tiny_data_dir, tmp_path, capsys):
    """With its progress on (no --no-progress) and stderr not a terminal, the evaluation lines went to stdout
    ahead of the JSON summary (`train ... > summary.json` was no JSON); the start line named no steps nor run dir,
    and the end said nothing of best/ or what to run next."""
    run_dir = tmp_path / "run"
    code, out, err = run(capsys, "train", "--data", tiny_data_dir, "--out", run_dir, *TINY_TRAIN, "--max-steps", 20)
    assert code == 0 and json.loads(out)["step"] == 20, out
    lines = [ln for ln in err.splitlines() if not ln.startswith("seqvae train: note: beta")]  # 20 steps: a note
    assert lines[0].startswith("VAE: ") and f"20 steps, evaluating every 10, into {run_dir} (best/, last/" in lines[0]
    assert [ln.split(":")[0] for ln in lines[1:3]] == ["step 10", "step 20"] and "valid nll" in lines[1], err
    assert f"in {run_dir / 'best'}; next: seqvae sample {run_dir} -n 5" in lines[-1], err
    assert "\r" not in err  # no progress bar where stderr is no terminal
    code, out, err = run(capsys, "train", "--resume", run_dir, "--max-steps", 30, *TINY_TRAIN[-4:])
    assert code == 0 and json.loads(out)["step"] == 30 and "steps 20 to 30, evaluating every 10" in err, err


def test_a_run_too_short_for_its_kl_ramp_says_so(tiny_data_dir, tmp_path, capsys):
    """`--max-steps 20` under the default logistic ramp (midpoint 2,500): beta stays near 0 and the newcomer's
    run is an autoencoder, said nowhere. Now a note names the schedule and how to scale it; a ramp the run
    reaches (or a cyclical one, which follows max_steps) gets none."""
    code, _, err = run(capsys, "train", "--data", tiny_data_dir, "--out", tmp_path / "short", *TINY_TRAIN,
                       "--max-steps", 20, "--no-progress")
    assert code == 0
    note = [ln for ln in err.splitlines() if ln.startswith("seqvae train: note: beta reaches only")]
    assert len(note) == 1 and "logistic KL schedule (its midpoint train.kl_x0=2,500)" in note[0], err
    assert "--set train.kl_x0=5 " in note[0], note
    # resumed, the note gave the same advice, which --resume refuses (it keeps the saved schedule)
    code, _, err = run(capsys, "train", "--resume", tmp_path / "short", "--max-steps", 30, "--no-progress")
    note = [ln for ln in err.splitlines() if ln.startswith("seqvae train: note: beta reaches only")]
    assert code == 0 and len(note) == 1 and (
        f"--resume keeps the saved schedule: a new run (--init-from {tmp_path / 'short' / 'last'}) takes --set "
        "train.kl_x0=7 or --kl-schedule cyclical") in note[0], err
    for extra in (["--set", "train.kl_x0=5"], ["--kl-schedule", "cyclical"], ["--lm"]):
        code, _, err = run(capsys, "train", "--data", tiny_data_dir, "--out", tmp_path / extra[-1].replace("=", "_"),
                           *TINY_TRAIN, "--max-steps", 20, "--no-progress", *extra)
        assert code == 0 and "note: beta" not in err, (extra, err)


def test_the_kl_ramp_note_gives_the_beta_the_last_step_trains_with(tiny_data_dir, tmp_path, capsys):
    """Step N trains with kl_weight(N - 1) (metrics.jsonl's row for step N says so); the note read kl_weight(N), a
    step no run trains: a linear ramp of twice the run's length ended at beta 0.475 and was said to reach 0.5."""
    run_dir = tmp_path / "lin"
    code, _, err = run(capsys, "train", "--data", tiny_data_dir, "--out", run_dir, *TINY_TRAIN, "--max-steps", 20,
                       "--no-progress", "--kl-schedule", "linear", "--set", "train.kl_warmup=40")
    assert code == 0
    note = [ln for ln in err.splitlines() if ln.startswith("seqvae train: note: beta reaches only")]
    rows = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in rows if "beta" in r][-1]
    assert last["step"] == 20 and len(note) == 1, (rows[-1], err)
    assert note[0].startswith(f"seqvae train: note: beta reaches only {last['beta']:.3g} (of 1) by step 20 "), note


def test_a_language_models_evaluation_lines_claim_no_latent(tiny_data_dir, tmp_path, capsys):
    """`train --lm` printed `kl 0.00 ... au 0 mi 0.00 ± 0.00` per evaluation, a collapsed VAE's figures, where
    `seqvae evaluate` says KL, MI and AU do not apply: the LM's line has its NLL and PPL alone."""
    code, _, err = run(capsys, "train", "--data", tiny_data_dir, "--out", tmp_path / "lm", *TINY_TRAIN,
                       "--max-steps", 10, "--lm")
    line = next(ln for ln in err.splitlines() if ln.startswith("step 10: valid nll"))
    assert code == 0 and " ppl " in line and not any(f" {c} " in line for c in ("rec", "kl", "au", "mi")), line


def test_a_ctrl_c_says_what_the_run_dir_keeps(tiny_data_dir, tmp_path, capsys, monkeypatch):
    """Ctrl-C mid-training said `seqvae: interrupted` alone: not that last/ holds the last evaluation's step and
    --resume goes on from it (or, before the first, that there is nothing to resume)."""
    from seqvae.train import Trainer

    step = Trainer.train_step

    def interrupted_at_15(self, idx):
        if self.step == 15:
            raise KeyboardInterrupt
        return step(self, idx)

    monkeypatch.setattr(Trainer, "train_step", interrupted_at_15)
    run_dir = tmp_path / "run"
    code, out, err = run(capsys, "train", "--data", tiny_data_dir, "--out", run_dir, *TINY_TRAIN, "--max-steps", 30,
                         "--no-progress")
    assert code == 130 and out == "", out
    assert err.splitlines()[-1] == (f"seqvae: interrupted at step 15; {run_dir / 'last'} holds step 10: "
                                    f"`seqvae train --resume {run_dir}` goes on from there"), err
    code, _, err = run(capsys, "train", "--data", tiny_data_dir, "--out", tmp_path / "early", *TINY_TRAIN,
                       "--eval-every", 20, "--max-steps", 30, "--no-progress")
    assert code == 130 and err.splitlines()[-1].endswith(
        f"at step 15, before the first checkpoint (step 20): {tmp_path / 'early'} has nothing to resume; start it "
        "over with --overwrite"), err


def test_train_then_evaluate(tiny_data_dir, tmp_path, capsys):
    run_dir = tmp_path / "run"
    code, out, _ = run(capsys, "train", "--data", tiny_data_dir, "--out", run_dir, "--preset", "tiny",
                       "--max-steps", 20, "--eval-every", 10, "--no-progress", "--set", "train.log_every=5")
    assert code == 0 and json.loads(out)["step"] == 20
    code, out, _ = run(capsys, "train", "--resume", run_dir, "--max-steps", 30, "--threads", 1, "--no-progress")
    assert code == 0 and json.loads(out)["step"] == 30
    assert json.loads((run_dir / "last" / "config.json").read_text())["train"]["num_threads"] == 1  # --threads taken
    code, _, err = run(capsys, "evaluate", run_dir, "--json", tmp_path)  # a directory: refused before the work
    assert_one_line_error(code, err, "is a directory")
    code, out, _ = run(capsys, "evaluate", run_dir, "--split", "test", "--samples", 4)
    assert code == 0 and "NLL" in out
    res = json.loads((run_dir / "best" / "eval-test.json").read_text())
    assert res["iw_samples"] == 4 and res["sentences"] > 0 and res["nll"] <= res["neg_elbo"] + 1.0
    assert "nll_refined" not in res
    code, out, _ = run(capsys, "evaluate", run_dir, "--split", "test", "--samples", 4, "--refine", 5,
                       "--max-sentences", 20, "--per-sentence")
    fitted = json.loads((run_dir / "best" / "eval-test.json").read_text())
    assert code == 0 and "proposals fitted per sentence (5 steps)" in out and fitted["refine_steps"] == 5
    assert len(fitted["per_sentence_nll_refined"]) == len(fitted["per_sentence_nll"]) == 20
    code, _, err = run(capsys, "evaluate", run_dir, "--refine", -1)
    assert_one_line_error(code, err, "--refine")
    code, _, err = run(capsys, "evaluate", run_dir, "--refine", 5, "--samples", 0)
    assert_one_line_error(code, err, "needs --samples >= 1")
    # another data dir's ids would be read with this model's vocabulary: refused, and eval-test.json kept
    (tmp_path / "other.txt").write_text("".join(f"another corpus line {i} .\n" for i in range(60)))
    code, _, _ = run(capsys, "prepare", "--dataset", "text", "--train", tmp_path / "other.txt", "--vocab-size", 60,
                     "--min-tokens", 2, "--out", tmp_path / "other", "--quiet")
    assert code == 0
    code, _, err = run(capsys, "evaluate", run_dir, "--split", "test", "--data", tmp_path / "other")
    assert_one_line_error(code, err, "its tokenizer is not the checkpoint's")
    assert json.loads((run_dir / "best" / "eval-test.json").read_text()) == fitted
    # --json onto a file the command reads (the checkpoint's config or weights, the data's meta) would write the
    # results over it: refused before the work, the file as it was; its own eval-*.json there is replaced as before
    for target in (run_dir / "best" / "config.json", run_dir / "best" / "model.safetensors",
                   tiny_data_dir / "meta.json"):
        before = target.read_bytes()
        code, out, err = run(capsys, "evaluate", run_dir, "--samples", 1, "--json", target)
        assert_one_line_error(code, err, f"{target}: is a file of the")
        assert out == "" and target.read_bytes() == before
    code, _, _ = run(capsys, "evaluate", run_dir, "--split", "test", "--samples", 1,
                     "--json", run_dir / "best" / "eval-test.json")
    assert code == 0 and json.loads((run_dir / "best" / "eval-test.json").read_text())["iw_samples"] == 1


def test_evaluate_says_what_its_numbers_are(tiny_data_dir, tmp_path, capsys):
    """The split, its size and k above the table; a language model's KL, MI and AU are n/a; an empty split is
    one line."""
    import shutil

    import numpy as np

    small = ["--preset", "tiny", "--max-steps", 2, "--eval-every", 2, "--embed-dim", 8, "--hidden-dim", 8,
             "--latent-dim", 2, "--no-progress"]
    for name, extra in (("vae", []), ("lm", ["--lm"])):
        assert run(capsys, "train", "--data", tiny_data_dir, "--out", tmp_path / name, *small, *extra)[0] == 0
    code, out, _ = run(capsys, "evaluate", tmp_path / "vae", "--split", "valid", "--samples", 3, "--max-sentences", 7)
    head = out.splitlines()[0]
    assert code == 0 and "valid split, 7 sentences" in head and "k = 3 samples" in head and "seed 0" in head
    assert "n/a" not in out
    code, out, _ = run(capsys, "evaluate", tmp_path / "vae", "--samples", 0, "--max-sentences", 7)
    assert code == 0 and "test split" in out.splitlines()[0] and "upper bound" in out.splitlines()[0]
    code, out, _ = run(capsys, "evaluate", tmp_path / "lm", "--samples", 3, "--json", tmp_path / "lm.json")
    head, row = out.splitlines()[0], out.splitlines()[-1]
    assert code == 0 and "KL, MI and AU do not apply" in head and "k =" not in head
    assert row.split()[-3:] == ["n/a"] * 3
    assert json.loads((tmp_path / "lm.json").read_text())["latent"] is False
    empty = tmp_path / "empty"
    shutil.copytree(tiny_data_dir, empty)
    np.savez_compressed(empty / "test.npz", ids=np.zeros(0, np.int32), offsets=np.zeros(1, np.int64),
                        review=np.zeros(0, np.int64), origin=np.zeros(0, np.int8), label=np.zeros(0, np.int8))
    for ckpt in ("vae", "lm"):
        code, _, err = run(capsys, "evaluate", tmp_path / ckpt, "--data", empty, "--json", tmp_path / "e.json")
        assert_one_line_error(code, err, "the test split has no sentences")
    assert not (tmp_path / "e.json").exists()


def test_lm_drops_the_presets_word_dropout_unless_it_is_asked_for():
    """`--preset small --lm` (the baseline in docs/usage.md) trained the LM with the VAE's word dropout 0.3."""
    from seqvae.cli import build_parser
    from seqvae.traincli import build_run_config

    def train_cfg(*argv):
        return build_run_config(build_parser().parse_args(["train", "--preset", "small", *argv])).train

    assert train_cfg().word_dropout == 0.3 and train_cfg("--lm").word_dropout == 0.0
    assert train_cfg("--lm", "--word-dropout", "0.2").word_dropout == 0.2
    assert train_cfg("--lm", "--set", "train.word_dropout=0.1").word_dropout == 0.1


def test_bad_inputs_give_one_line_errors(tiny_data_dir, tmp_path, capsys):
    code, _, err = run(capsys, "train", "--data", tmp_path / "missing", "--out", tmp_path / "r", "--no-progress")
    assert_one_line_error(code, err, "missing")
    assert not (tmp_path / "r").exists()

    bad_cfg = tmp_path / "bad.json"
    for text, msg in (('{"train": {"max_stepz": 3}}', "max_stepz"), ("{not json", "invalid JSON"),
                      ("[1, 2]", "expected a JSON object"),
                      ('{"train": {"max_steps": "many"}}', "max_steps: expected int"),
                      ('{"model": {"latent_dim": 0}}', "latent_dim must be >= 1")):
        bad_cfg.write_text(text)
        code, _, err = run(capsys, "train", "--data", tiny_data_dir, "--out", tmp_path / "r", "--config", bad_cfg)
        assert_one_line_error(code, err, msg)
        assert f"error: {bad_cfg}: " in err  # each names the file (the preset's or the file's value?)
    code, _, err = run(capsys, "train", "--data", tiny_data_dir, "--out", tmp_path / "r", "--set", "train.kl_schedule=wavy")
    assert_one_line_error(code, err, "kl_schedule")
    code, _, err = run(capsys, "train", "--data", tiny_data_dir, "--out", tmp_path / "r", "--preset", "huge")
    assert_one_line_error(code, err, "unknown preset")
    (tmp_path / "a_file").write_text("mine")
    code, _, err = run(capsys, "train", "--data", tiny_data_dir, "--out", tmp_path / "a_file", "--no-progress")
    assert_one_line_error(code, err, "exists and is not a directory")
    assert (tmp_path / "a_file").read_text() == "mine"
    assert not (tmp_path / "r").exists()

    code, _, err = run(capsys, "evaluate", tmp_path / "nope")
    assert_one_line_error(code, err, "no such checkpoint")
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "config.json").write_text('{"model": {"hidden_dim": 8}}')
    code, _, err = run(capsys, "evaluate", tmp_path / "corrupt")
    assert_one_line_error(code, err, "model.safetensors")

    code, _, err = run(capsys, "train", "--resume", tmp_path / "nope")
    assert_one_line_error(code, err, "no last/")
    code, _, err = run(capsys, "train", "--resume", tmp_path / "nope", "--lr", "0.1", "--word-dropout", "0.5")
    assert_one_line_error(code, err, "--lr, --word-dropout")  # flags a resume would silently ignore

    for args, msg in ((["--device", "tpu"], "unknown device"), (["--device", "cuda:7"], "cuda:7"),
                      (["--set", "train.lr=-1"], "lr must be > 0"), (["--set", "train.log_every=0"], "log_every"),
                      (["--set", "train.lr=inf"], "lr must be a finite number"),
                      (["--set", "train.kl_max=nan"], "kl_max must be a finite number")):
        code, _, err = run(capsys, "train", "--data", tiny_data_dir, "--out", tmp_path / "r", "--no-progress", *args)
        assert_one_line_error(code, err, msg)
    assert not (tmp_path / "r").exists()
    for args, msg in ((["--batch-size", "0"], "--batch-size"), (["--samples", "-1"], "--samples")):
        code, _, err = run(capsys, "evaluate", tmp_path / "corrupt", *args)
        assert_one_line_error(code, err, msg)


def test_a_new_run_is_not_trained_into_a_checkpoint_or_data_dir(tiny_data_dir, tiny_vae_ckpt, tmp_path, capsys):
    """--out naming a checkpoint (a run's best/ too) or a prepared data dir is a mistaken --out: its best/, last/
    and log would go in among that dir's files (and a run's next save of best/ would drop them)."""
    import shutil

    data, ckpt = tmp_path / "data", tmp_path / "ckpt"
    shutil.copytree(tiny_data_dir, data)
    shutil.copytree(tiny_vae_ckpt, ckpt)
    for out, extra, msg in ((ckpt, [], "a checkpoint dir, not a run dir"),
                            (ckpt, ["--overwrite"], "a checkpoint dir, not a run dir"),
                            (data, [], "a prepared data dir, not a run dir")):
        before = sorted(p.name for p in out.iterdir())
        code, out_text, err = run(capsys, "train", "--data", data, "--out", out, "--preset", "tiny", "--max-steps", 2,
                                  "--no-progress", *extra)
        assert_one_line_error(code, err, msg)
        assert out_text == "" and sorted(p.name for p in out.iterdir()) == before


@pytest.mark.parametrize("argv,option", [
    (["train", "--data", "{data}", "--out", "{tmp}/r", "--preset", "tiny", "--config", ""], "--config"),
    (["train", "--data", "{data}", "--out", "{tmp}/r", "--preset", "tiny", "--init-from", ""], "--init-from"),
    (["train", "--data", "", "--out", "{tmp}/r"], "--data"),
    (["evaluate", "{ckpt}", "--data", ""], "--data"),
    (["report", "{ckpt}", "--texts", ""], "--texts"),
    (["sample", ""], "checkpoint"),
    (["classify", "fit", "{ckpt}", "--data-root", ""], "--data-root"),
])
def test_an_empty_path_is_a_usage_error_not_the_default(tiny_data_dir, tiny_vae_ckpt, tmp_path, capsys, argv, option):
    """`--config "$CFG"` with CFG unset: an empty value read as no --config, and the run trained with the defaults
    (exit 0); each option's empty value is now argparse's usage error, nothing written."""
    names = {"data": str(tiny_data_dir), "ckpt": str(tiny_vae_ckpt), "tmp": str(tmp_path)}
    before = sorted(p.name for p in tiny_vae_ckpt.iterdir())
    with pytest.raises(SystemExit) as e:
        main([a.format(**names) for a in argv + ["--max-steps", "2", "--no-progress"] * (argv[0] == "train")])
    assert e.value.code == 2
    assert f"argument {option}: an empty value" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [] and sorted(p.name for p in tiny_vae_ckpt.iterdir()) == before


def test_set_names_only_config_fields_and_the_item_on_a_bad_value(tiny_data_dir, tmp_path, capsys):
    """`--set train.validate=1` (a method, not a field) was a traceback; `--set train.kl_x0=1.5` said
    "expected int, got '1.5'" without naming the --set it came from."""
    for item, msg in (("train.validate=1", "train has no field 'validate'"),
                      ("model.replace=1", "model has no field 'replace'"),
                      ("train.to_dict=1", "train has no field 'to_dict'"),
                      ("model.__class__=1", "model has no field '__class__'"),
                      ("train.kl_x0=1.5", "--set 'train.kl_x0=1.5': expected int"),
                      ("train.amp=maybe", "--set 'train.amp=maybe': expected a boolean"),
                      ("model.adaptive_cutoffs=a,b", "--set 'model.adaptive_cutoffs=a,b': expected comma-separated")):
        code, _, err = run(capsys, "train", "--data", tiny_data_dir, "--out", tmp_path / "r", "--no-progress",
                           "--set", item)
        assert_one_line_error(code, err, msg)
    assert not (tmp_path / "r").exists()


def test_a_saved_config_json_is_a_config_file(tiny_data_dir, tmp_path, capsys):
    """`--config RUN/best/config.json` (train another run like this one) was refused: "unknown section(s) data,
    format, save_id"; a checkpoint with no train section (checkpoints/imdb-lm) has "train": null."""
    from seqvae.cli import build_parser
    from seqvae.traincli import build_run_config

    small = ["--embed-dim", 8, "--hidden-dim", 8, "--latent-dim", 4, "--batch-size", 4, "--no-progress"]
    code, _, _ = run(capsys, "train", "--data", tiny_data_dir, "--out", tmp_path / "a", "--max-steps", 2,
                     "--eval-every", 1, *small, "--set", "train.kl_x0=7", "--set", "model.z_skip=true")
    assert code == 0
    saved = json.loads((tmp_path / "a" / "best" / "config.json").read_text())
    code, _, err = run(capsys, "train", "--data", tiny_data_dir, "--out", tmp_path / "b", "--config",
                       tmp_path / "a" / "best" / "config.json")
    assert code == 0, err
    again = json.loads((tmp_path / "b" / "best" / "config.json").read_text())
    assert (again["model"], again["train"]) == (saved["model"], saved["train"])

    def cfg(path):
        return build_run_config(build_parser().parse_args(["train", "--config", str(path)]))

    from seqvae.config import ModelConfig, RunConfig

    root = Path(__file__).resolve().parents[1] / "checkpoints"
    lm = json.loads((root / "imdb-lm" / "config.json").read_text())
    assert lm["train"] is None and cfg(root / "imdb-lm" / "config.json") == RunConfig(model=ModelConfig.from_dict(lm["model"]))
    flagship = json.loads((root / "imdb" / "config.json").read_text())
    assert cfg(root / "imdb" / "config.json") == RunConfig.from_dict({s: flagship[s] for s in ("model", "train")})
    hand = tmp_path / "hand.json"  # a hand-written file's "data" section is still refused: it sets nothing
    hand.write_text('{"data": {"dataset": "ptb"}, "train": {}}')
    code, _, err = run(capsys, "train", "--data", tiny_data_dir, "--out", tmp_path / "c", "--config", hand)
    assert_one_line_error(code, err, "unknown section(s) data")
    assert not (tmp_path / "c").exists()


def test_each_layer_of_the_train_config_is_over_the_one_before(tmp_path):
    """docs/usage.md: defaults, preset, file, flags, then each --set in order; a flag given its default value
    still overrides the preset's."""
    from seqvae.cli import build_parser
    from seqvae.traincli import build_run_config
    from seqvae.config import PRESETS, TrainConfig

    def cfg(*argv):
        return build_run_config(build_parser().parse_args(["train", *map(str, argv)]))

    default, tiny = TrainConfig().batch_size, PRESETS["tiny"]["train"]["batch_size"]
    assert default != tiny and cfg("--preset", "tiny").train.batch_size == tiny
    assert cfg("--preset", "tiny", "--batch-size", default).train.batch_size == default
    file = tmp_path / "c.json"
    file.write_text(json.dumps({"model": {"embed_dim": 12}, "train": {"batch_size": 6, "kl_x0": 7}}))
    c = cfg("--preset", "tiny", "--config", file)
    assert (c.model.embed_dim, c.train.batch_size, c.train.kl_x0) == (12, 6, 7)
    assert c.model.hidden_dim == PRESETS["tiny"]["model"]["hidden_dim"]  # what the file leaves, the preset gives
    c = cfg("--preset", "tiny", "--config", file, "--batch-size", 9, "--embed-dim", 16)
    assert (c.model.embed_dim, c.train.batch_size, c.train.kl_x0) == (16, 9, 7)
    c = cfg("--config", file, "--batch-size", 9, "--set", "train.batch_size=11", "--set", "train.batch_size=13")
    assert c.train.batch_size == 13


def test_unknown_option_exits_nonzero():
    proc = subprocess.run([sys.executable, "-m", "seqvae.cli", "train", "--no-such-flag"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "unrecognized arguments: --no-such-flag" in proc.stderr


def test_prepare_via_cli(tmp_path, capsys):
    from conftest import write_fake_ptb

    root = write_fake_ptb(tmp_path / "raw", n_train=30, n_eval=5)
    code, _, _ = run(capsys, "prepare", "--dataset", "ptb", "--data-root", root, "--out", tmp_path / "d")
    assert code == 0 and (tmp_path / "d" / "train.npz").exists()
    code, _, err = run(capsys, "prepare", "--dataset", "ptb", "--data-root", tmp_path / "none", "--out", tmp_path / "e")
    assert_one_line_error(code, err, "none")
    assert not (tmp_path / "e").exists()


def test_train_init_from_takes_the_model_config_from_the_checkpoint(tiny_data_dir, tmp_path, capsys):
    base = tmp_path / "base"
    code, _, _ = run(capsys, "train", "--data", tiny_data_dir, "--out", base, "--preset", "tiny", "--hidden-dim", 24,
                     "--max-steps", 4, "--eval-every", 4, "--no-progress")
    assert code == 0
    code, out, _ = run(capsys, "train", "--data", tiny_data_dir, "--out", tmp_path / "tuned", "--init-from", base,
                       "--max-steps", 4, "--eval-every", 4, "--kl-schedule", "constant", "--no-progress")
    assert code == 0 and json.loads(out)["step"] == 4
    cfg = json.loads((tmp_path / "tuned" / "last" / "config.json").read_text())
    assert cfg["model"]["hidden_dim"] == 24 and cfg["train"]["init_from"] == str(base)
    code, _, err = run(capsys, "train", "--data", tiny_data_dir, "--out", tmp_path / "bad", "--init-from", base,
                       "--hidden-dim", 32, "--no-progress")
    assert_one_line_error(code, err, "hidden_dim")
    assert not (tmp_path / "bad").exists()
    code, _, err = run(capsys, "train", "--resume", tmp_path / "tuned", "--init-from", base, "--no-progress")
    assert_one_line_error(code, err, "--init-from")


# ---------------------------------------------------------------------------- the bad-input sweep (docs/faults.md)
def _corrupt(ckpt, tmp_path, how):
    """A copy of checkpoint `ckpt` broken in one way."""
    import shutil

    d = tmp_path / how
    shutil.copytree(ckpt, d)
    weights = d / "model.safetensors"
    if how == "truncated":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size * 9 // 10])
    elif how == "bad-json":
        (d / "config.json").write_text('{"model": {"hidden_dim": 8')
    elif how == "sizes":
        cfg = json.loads((d / "config.json").read_text())
        cfg["model"]["hidden_dim"] += 4
        (d / "config.json").write_text(json.dumps(cfg))
    elif how == "no-tokenizer":
        for f in ("vocab.txt", "tokenizer.model"):
            (d / f).unlink(missing_ok=True)
    return d


@pytest.mark.parametrize("argv,stdin,pattern", [
    (["reconstruct", "{ckpt}", ""], None, "sentence 0 is empty"),
    (["reconstruct", "{ckpt}", "the movie \udcff was"], None, "sentence 0 is not valid UTF-8"),  # argv bytes
    (["reconstruct", "{ckpt}", "the movie\0was"], None, "sentence 0 contains a NUL"),
    (["reconstruct", "{ckpt}", "-"], b"", "no sentences on stdin"),
    (["reconstruct", "{ckpt}", "-"], b"the movie\nthe \xff plot\n", "stdin line 2 is not valid UTF-8"),
    (["reconstruct", "{ckpt}", "-"], b"the movie\0was great\n", "stdin line 1 contains a NUL"),
    (["reconstruct", "{ckpt}", "-"], b"the movie\rthe plot\r\0\r", "stdin line 3 contains a NUL"),  # old Mac ends
    (["interpolate", "{ckpt}", "   ", "the plot"], None, "sentence 0 is empty"),
    (["interpolate", "{ckpt}", "a", "b", "--steps", "1"], None, "--steps must be between 2"),
    (["interpolate", "{ckpt}", "a", "b", "--steps", "10000000000"], None, "--steps must be between 2"),
    (["sample", "{ckpt}", "-n", "0"], None, "-n must be between 1 and 1,000,000, got 0"),
    (["sample", "{ckpt}", "-n", "-3"], None, "-n must be between 1"),
    (["sample", "{ckpt}", "-n", "1000000000000"], None, "-n must be between 1"),
    (["sample", "{ckpt}", "--max-len", "1000000000"], None, "--max-len must be between 1"),
    (["sample", "{ckpt}", "--strategy", "beam", "--num-beams", "100000000"], None, "--num-beams must be between"),
    (["sample", "{ckpt}", "--candidates", "0"], None, "--candidates must be between 1"),
    (["sample", "{ckpt}", "--strategy", "greedy", "--candidates", "4"], None, "needs a sampling strategy"),
    (["sample", "{ckpt}", "--temperature", "0"], None, "temperature must be a finite number >= 0.001, got 0"),
    # counts are checked before the model loads (a checkpoint that is not there is not even looked at)
    (["score", "{tmp}/no-ckpt", "the movie", "--samples", "100000000"], None, "--samples must be between 1"),
    (["score", "{tmp}/no-ckpt", "the movie", "--refine", "-2"], None, "--refine must be between 0"),
    (["reconstruct", "{tmp}/no-ckpt", "the movie", "--refine", "100000000"], None, "--refine must be between 0"),
    (["interpolate", "{tmp}/no-ckpt", "a", "b", "--refine", "-1"], None, "--refine must be between 0"),
    (["interpolate", "{tmp}/no-ckpt", "a", "b", "--steps", "1"], None, "--steps must be between 2"),
    (["encode", "{tmp}/no-ckpt", "the movie", "--json", "--refine", "-1"], None, "--refine must be between 0"),
    (["evaluate", "{tmp}/no-ckpt", "--samples", "100000000"], None, "--samples must be between 0"),
    (["evaluate", "{tmp}/no-ckpt", "--refine", "100000000"], None, "--refine must be between 0"),
    (["report", "{tmp}/no-ckpt", "--iw-samples", "100000000"], None, "--iw-samples must be between 1"),
    (["report", "{tmp}/no-ckpt", "--iw-refine", "100000000"], None, "--iw-refine must be between 0"),
    (["sample", "{tmp}/no-ckpt", "-n", "0"], None, "-n must be between 1"),
    (["sample", "{ckpt}", "--temperature", "inf"], None, "temperature must be a finite number"),  # NaN logits
    (["sample", "{ckpt}", "--temperature", "1e-38"], None, "temperature must be a finite number"),  # overflow
    (["decode", "{ckpt}", "{codes_good}", "--strategy", "beam", "--length-penalty", "nan"], None,
     "length_penalty must be a finite number"),
    (["encode", "{ckpt}", "the movie", "--out", "{tmp}/.npy"], None, "end the name in .npy"),  # np.save adds .npy
    (["classify", "predict", "{ckpt}", "a gem", " "], None, "text 1 is empty"),
    (["steer", "{ckpt}", "-"], None, "not '-' (stdin)"),
    (["steer", "{ckpt}", "a gem", "--out", "{tmp}/s.json"], None, "--out writes the --report"),
    (["sample", "{ckpt}", "--top-p", "0"], None, "top_p must be in (0, 1]"),
    (["sample", "{ckpt}", "--top-p", "1.5"], None, "top_p must be in (0, 1]"),
    (["sample", "{ckpt}", "--strategy", "top-k", "--top-k", "0"], None, "needs top_k >= 1"),
    (["sample", "{ckpt}", "--device", "cuda:99"], None, "cuda:99"),
    (["sample", "{truncated}"], None, "unreadable weights"),
    (["sample", "{bad-json}"], None, "invalid JSON"),
    (["sample", "{sizes}"], None, "config implies"),
    (["sample", "{no-tokenizer}"], None, "no tokenizer file"),
    (["evaluate", "{truncated}"], None, "unreadable weights"),
    (["score", "{ckpt}", "-"], b"", "score: no sentences on stdin"),
    (["score", "{ckpt}", "the movie", "  "], None, "sentence 1 is empty"),
    (["score", "{ckpt}", "the movie", "--samples", "0"], None, "--samples must be between 1 and 10,000, got 0"),
    (["score", "{ckpt}", "the movie", "--samples", "100000000"], None, "--samples must be between 1 and 10,000"),
    (["score", "{ckpt}", "the movie", "--refine", "-2"], None, "--refine must be between 0 and 10,000, got -2"),
    (["score", "{ckpt}", "the movie", "--refine", "100000000"], None, "--refine must be between 0 and 10,000"),
    (["reconstruct", "{ckpt}", "the movie", "--refine", "100000000"], None, "--refine must be between 0"),
    (["interpolate", "{ckpt}", "a", "b", "--refine", "-1"], None, "--refine must be between 0"),
    (["evaluate", "{ckpt}", "--samples", "100000000"], None, "--samples must be between 0 and 10,000"),
    (["evaluate", "{ckpt}", "--refine", "100000000"], None, "--refine must be between 0 and 10,000"),
    (["report", "{ckpt}", "--iw-samples", "100000000"], None, "--iw-samples must be between 1 and 10,000"),
    (["report", "{ckpt}", "--iw-refine", "100000000"], None, "--iw-refine must be between 0 and 10,000"),
    (["report", "{ckpt}", "--samples", "100000000"], None, "--samples must be between 1 and 1,000,000"),
    (["encode", "{ckpt}", "the movie"], None, "give --out FILE.npy, --json, or both"),
    (["encode", "{ckpt}", "the movie", "--out", "{tmp}/codes.txt"], None, "end the name in .npy"),
    (["encode", "{ckpt}", "the movie", "  ", "--out", "{tmp}/codes.npy"], None, "sentence 1 is empty"),
    (["encode", "{ckpt}", "-", "--json"], b"", "encode: no sentences on stdin"),
    (["encode", "{ckpt}", "the movie", "--json", "--refine", "-1"], None, "--refine must be between 0"),
    (["decode", "{ckpt}", "{tmp}/missing.npy"], None, "missing.npy: no such file"),
    (["decode", "{ckpt}", "{tmp}"], None, "a directory, not a .npy file"),
    (["decode", "{ckpt}", "{ckpt}/config.json"], None, "not a .npy file"),
    (["decode", "{ckpt}", "{codes_cut}"], None, "unreadable .npy file"),
    (["decode", "{ckpt}", "{codes_objects}"], None, "unreadable .npy file"),
    (["decode", "{ckpt}", "{codes_width}"], None, "expected codes of shape (N, 4) or (4,) with N >= 1, got (2, 5)"),
    (["decode", "{ckpt}", "{codes_empty}"], None, "got (0, 4)"),
    (["decode", "{ckpt}", "{codes_3d}"], None, "got (1, 2, 4)"),
    (["decode", "{ckpt}", "{codes_row}"], None, "got (5,)"),
    (["decode", "{ckpt}", "{codes_nan}"], None, "row 1 is not finite"),
    (["decode", "{ckpt}", "{codes_text}"], None, "codes must be numbers"),
    (["decode", "{ckpt}", "{codes_good}", "--max-len", "0"], None, "--max-len must be between 1"),
])
def test_bad_input_sweep(tiny_vae_ckpt, tmp_path, capsys, monkeypatch, argv, stdin, pattern):
    """Each bad input of docs/faults.md: one line on stderr, exit 2, nothing on stdout."""
    import io

    names = {"ckpt": str(tiny_vae_ckpt), "tmp": str(tmp_path)}
    for how in ("truncated", "bad-json", "sizes", "no-tokenizer"):
        if "{" + how + "}" in argv:
            names[how] = str(_corrupt(tiny_vae_ckpt, tmp_path, how))
    for arg in argv:
        if arg.startswith("{codes_"):
            names[arg.strip("{}")] = str(_bad_codes(tmp_path, arg.strip("{}").removeprefix("codes_")))
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    before = sorted(p.name for p in tiny_vae_ckpt.iterdir())
    files = sorted(p.name for p in tmp_path.iterdir())
    code, out, err = run(capsys, *[a.format(**names) if a.startswith("{") else a for a in argv])
    assert_one_line_error(code, err, pattern)
    assert out == ""
    assert sorted(p.name for p in tiny_vae_ckpt.iterdir()) == before  # nothing written beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == files  # nor a partial output file


@pytest.mark.parametrize("seed", ["-1", str(2**63), "1e3"])
def test_seeds_outside_what_torch_and_numpy_take_are_usage_errors(tiny_vae_ckpt, capsys, seed):
    for argv in (["sample", tiny_vae_ckpt], ["fit-prior", tiny_vae_ckpt], ["steer", tiny_vae_ckpt, "--report", "1"]):
        with pytest.raises(SystemExit) as e:
            main([str(a) for a in argv] + ["--seed", seed])
        assert e.value.code == 2 and "argument --seed:" in capsys.readouterr().err


def test_sentences_may_follow_options(tiny_vae_ckpt, capsys):
    """argparse gives nargs="*" sentences their slot beside the checkpoint; main() takes the ones after options."""
    code, out, _ = run(capsys, "reconstruct", tiny_vae_ckpt, "--json", "the movie", "--max-len", 5, "a plot")
    assert code == 0 and [r["input"] for r in json.loads(out)] == ["the movie", "a plot"]
    with pytest.raises(SystemExit):
        main(["reconstruct", str(tiny_vae_ckpt), "--json", "the movie", "--no-such-option"])
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err


def test_a_closed_pipe_ends_quietly():
    """`seqvae sample ... | head -1`: no BrokenPipeError traceback once the reader has gone."""
    code = ("import sys; from seqvae.reporting import reporting_errors\n"
            "def run():\n    for i in range(100000): print('line', i)\n"
            "sys.exit(reporting_errors('seqvae', run))")
    p = subprocess.run(f"{sys.executable} -c \"{code}\" | head -1; exit ${{PIPESTATUS[0]}}", shell=True,
                       executable="/bin/bash", capture_output=True, text=True)
    assert p.stdout == "line 0\n" and "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr, p.stderr
    assert p.returncode == 141  # seqvae's own status, as a shell reports a command ended by SIGPIPE


def _without_unbuffered() -> dict[str, str]:
    """The environment as a user's shell has it: stdout block-buffered, so a short output is written at exit."""
    import os

    return {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}


def test_a_reader_gone_before_the_last_flush_ends_quietly():
    """`seqvae score ... | head -1`: the output's tail, still buffered when the command returns, was written at
    exit, after the handler: "Exception ignored ... BrokenPipeError" on stderr and exit 120. The line is printed
    once the reader has gone (Linux's poll says POLLERR on a pipe without readers), not raced against its exit."""
    code = ("import select, sys; from seqvae.reporting import reporting_errors\n"
            "def run():\n"
            "    gone = select.poll()\n"
            "    gone.register(sys.stdout.fileno(), 0)\n"
            "    while not gone.poll(10): pass\n"
            "    print('a line')\n"
            "sys.exit(reporting_errors('seqvae', run))")
    p = subprocess.run(f"{sys.executable} -c \"{code}\" | (exec 0<&-; sleep 0); exit ${{PIPESTATUS[0]}}",
                       shell=True, executable="/bin/bash", capture_output=True, text=True, env=_without_unbuffered(),
                       timeout=120)  # a kernel that never said POLLERR would loop: fail, not hang
    assert p.stderr == "" and p.returncode == 141, (p.returncode, p.stderr)


@pytest.mark.parametrize("unbuffered", [False, True])
def test_stdout_on_a_full_disk_is_one_line(unbuffered):
    """`seqvae sample ... > /dev/full`: one line and exit 2, not an OSError traceback (or, buffered, Python's
    "Exception ignored" and exit 120)."""
    code = ("import sys; from seqvae.reporting import reporting_errors\n"
            "sys.exit(reporting_errors('seqvae', lambda: print('a line')))")
    env = {**_without_unbuffered(), **({"PYTHONUNBUFFERED": "1"} if unbuffered else {})}
    with open("/dev/full", "w") as full:
        p = subprocess.run([sys.executable, "-c", code], stdout=full, stderr=subprocess.PIPE, text=True, env=env)
    assert p.stderr == "seqvae: error: cannot write the output (No space left on device)\n", p.stderr
    assert p.returncode == 2


@pytest.mark.parametrize("writes", [True, False])
def test_a_closed_stdout_is_one_line_when_the_command_writes_there(writes):
    """`seqvae sample CKPT >&-`: Python starts with sys.stdout None and print() dropped the samples, exit 0. Now a
    command that writes a line there stops with one line and exit 2; one that writes nothing there runs as before."""
    code = ("import sys; from seqvae.reporting import reporting_errors\n"
            f"sys.exit(reporting_errors('seqvae', lambda: print('a line') if {writes} else None))")
    p = subprocess.run(["bash", "-c", f'"{sys.executable}" -c "$0" >&-', code], stderr=subprocess.PIPE, text=True,
                       env=_without_unbuffered())
    if writes:
        assert p.stderr == "seqvae: error: cannot write the output (stdout is closed)\n", p.stderr
        assert p.returncode == 2
    else:
        assert p.stderr == "" and p.returncode == 0, (p.returncode, p.stderr)


def test_an_ascii_terminal_gets_escapes_not_a_traceback():
    """LC_ALL=C or PYTHONIOENCODING=ascii: a decoded sentence with a non-ASCII letter is escaped."""
    import os

    code = ("import sys; from seqvae.reporting import reporting_errors\n"
            "sys.exit(reporting_errors('seqvae', lambda: print('caf\\u00e9')))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "PYTHONIOENCODING": "ascii"})
    assert p.returncode == 0 and p.stdout == "caf\\xe9\n" and "Traceback" not in p.stderr, p.stderr


def _bad_codes(tmp_path, how):
    """A .npy file of codes for the tiny VAE (Z = 4) that `seqvae decode` must refuse (or accept: good)."""
    import numpy as np

    path = tmp_path / f"{how}.npy"
    arrays = {"good": np.zeros((2, 4), np.float32), "width": np.zeros((2, 5)), "empty": np.zeros((0, 4)),
              "3d": np.zeros((1, 2, 4)), "row": np.zeros(5), "nan": np.array([[0.0] * 4, [0.0, np.inf, 0.0, 0.0]]),
              "text": np.array(["a", "b", "c", "d"]), "objects": np.array([{"a": 1}], dtype=object)}
    if how == "cut":
        np.save(path, np.zeros((8, 4)))
        path.write_bytes(path.read_bytes()[:100])
    else:
        np.save(path, arrays[how], allow_pickle=how == "objects")
    return path


def test_a_long_line_is_cut_not_refused(tiny_vae_ckpt, capsys, monkeypatch):
    """1 MB of text on stdin: cut to the api's MAX_TOKENS like any long input, decoded as usual."""
    import io

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"the movie was great " * 52_000 + b"\n")))
    code, out, err = run(capsys, "reconstruct", tiny_vae_ckpt, "-", "--max-len", 8)
    assert code == 0 and len(out.splitlines()) == 1 and err == ""


def test_a_trainer_state_that_would_run_code_is_refused(tiny_vae_ckpt, tmp_path, capsys):
    import shutil

    import torch

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (shutil.copy, (str(tiny_vae_ckpt / "config.json"), str(marker)))

    last = tmp_path / "run" / "last"
    shutil.copytree(tiny_vae_ckpt, last)
    cfg = json.loads((last / "config.json").read_text())
    (last / "config.json").write_text(json.dumps({**cfg, "train": {}}))
    torch.save({"step": 1, "optimizer": Payload()}, last / "trainer_state.pt")
    code, out, err = run(capsys, "train", "--resume", tmp_path / "run", "--no-progress")
    assert_one_line_error(code, err, "could run code")
    assert not marker.exists() and out == ""
    torch.save({"step": 1}, last / "trainer_state.pt")  # plain data, but not what a trainer saves
    code, _, err = run(capsys, "train", "--resume", tmp_path / "run", "--no-progress")
    assert_one_line_error(code, err, "not a seqvae trainer state")


def test_the_table_never_shows_a_bare_negative_mi():
    from seqvae.cli import format_table

    row = {"nll": 170.0, "nll_per_token": 6.2, "ppl": 492.7, "neg_elbo": 171.0, "rec": 170.9, "kl": 0.06, "au": 4}
    lines = format_table([("collapsed", {**row, "mi": -0.17, "mi_se": 0.05}), ("used", {**row, "mi": 3.456})])
    head, collapsed, used = lines.splitlines()
    assert collapsed.split()[7] == "0" and collapsed.endswith("0 (estimate -0.17 ± 0.05, clipped)        4")
    assert used.split()[7] == "3.46" and len({len(head), len(collapsed), len(used)}) == 1  # columns stay aligned


def test_score(tiny_vae_ckpt, tiny_lm_ckpt, texts, capsys, monkeypatch):
    """-log p(x) per sentence: the API's numbers, in input order; stdin; an LM's exact NLL."""
    import io

    from seqvae import SeqVAE

    code, out, _ = run(capsys, "score", tiny_vae_ckpt, *texts[:3], "--samples", 8, "--refine", 5, "--json")
    rows = json.loads(out)
    want = SeqVAE.from_pretrained(tiny_vae_ckpt, device="cpu").score(texts[:3], samples=8, refine=5)
    assert code == 0 and [r["text"] for r in rows] == texts[:3]
    assert [r["nll"] for r in rows] == pytest.approx(want.tolist())
    assert all(r["ppl"] == pytest.approx(2.718281828 ** (r["nll"] / r["tokens"])) for r in rows)
    assert [r["tokens"] for r in rows] == [len(t.split()) + 1 for t in texts[:3]]  # its words and EOS (usage.md)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("\n".join(texts[:2]).encode())))
    code, out, _ = run(capsys, "score", tiny_lm_ckpt)
    lm = SeqVAE.from_pretrained(tiny_lm_ckpt, device="cpu").score(texts[:2])
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2 and lines[1].endswith(texts[1])
    assert float(lines[0].split()[0]) == pytest.approx(float(lm[0]), abs=0.01)


def test_interpolate_prints_each_point_at_a_t_that_tells_it_apart(tiny_vae_ckpt, texts, capsys):
    """The t column had two decimals whatever the steps: at --steps 300 the first points read 0.00, 0.00, 0.01, so
    a line did not say where on the path it lies. Now t has as many decimals as tell neighbours apart (two at
    least, as before up to 101 steps); --json gives each point's t to the same precision or finer."""
    for steps, decimals in ((2, 2), (8, 2), (101, 2), (102, 3), (300, 3), (1001, 3), (1002, 4)):
        code, out, _ = run(capsys, "interpolate", tiny_vae_ckpt, texts[0], texts[1], "--steps", steps)
        ts = [line.split("  ", 1)[0] for line in out.splitlines()]
        assert code == 0 and len(ts) == steps and len(set(ts)) == steps, ts[:4]
        assert float(ts[0]) == 0.0 and float(ts[-1]) == 1.0
        assert all(abs(float(t) - i / (steps - 1)) <= 0.5 / (steps - 1) for i, t in enumerate(ts))
        assert {len(t.split(".")[1]) for t in ts} == {decimals}
    code, out, _ = run(capsys, "interpolate", tiny_vae_ckpt, texts[0], texts[1], "--steps", 300, "--json")
    ts = [p["t"] for p in json.loads(out)["path"]]
    assert code == 0 and len(set(ts)) == 300 and ts[0] == 0.0 and ts[-1] == 1.0


def test_encode_then_decode(tiny_vae_ckpt, tiny_lm_ckpt, texts, tmp_path, capsys, monkeypatch):
    """encode writes the API's posterior means (or refined codes) as a float32 .npy, replacing a file
    atomically; decode turns any such array, edited or not, into the API's sentences."""
    import io

    import numpy as np
    import torch

    from seqvae import SeqVAE

    vae = SeqVAE.from_pretrained(tiny_vae_ckpt, device="cpu")
    out = tmp_path / "codes.npy"
    out.write_bytes(b"old")
    code, printed, _ = run(capsys, "encode", tiny_vae_ckpt, *texts[:3], "--out", out)
    codes = np.load(out)
    assert code == 0 and printed.startswith(f"{out}: 3 posterior means of dimension 4")
    assert codes.dtype == np.float32 and codes.shape == (3, 4)
    np.testing.assert_allclose(codes, vae.encode(texts[:3]).mean.numpy(), rtol=1e-6, atol=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == ["codes.npy"]  # no temporary file left

    code, printed, _ = run(capsys, "decode", tiny_vae_ckpt, out)
    assert code == 0 and printed.splitlines() == vae.reconstruct(texts[:3])
    np.save(tmp_path / "mid.npy", codes[:2].mean(0))  # one code (Z,), made in numpy
    code, printed, _ = run(capsys, "decode", tiny_vae_ckpt, tmp_path / "mid.npy", "--strategy", "top-p", "--seed", 3,
                           "--json")
    shown = json.loads(printed)
    want = vae.decode(torch.from_numpy(codes[:2].mean(0, keepdims=True)), strategy="top-p", seed=3)
    assert code == 0 and shown["texts"] == want and shown["top_p"] == 0.9

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("\n".join(texts[:2]).encode())))
    code, printed, _ = run(capsys, "encode", tiny_vae_ckpt, "--json", "--refine", 3)
    rows, post = json.loads(printed), vae.encode(texts[:2])
    assert code == 0 and [r["text"] for r in rows] == texts[:2]
    np.testing.assert_allclose([r["code"] for r in rows], vae.refine(texts[:2], steps=3).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose([r["mu"] for r in rows], post.mean.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose([r["logvar"] for r in rows], post.logvar.numpy(), rtol=1e-6, atol=1e-6)

    code, _, err = run(capsys, "encode", tiny_lm_ckpt, texts[0], "--out", tmp_path / "lm.npy")
    assert_one_line_error(code, err, "needs a latent space")
    code, _, err = run(capsys, "decode", tiny_lm_ckpt, out)
    assert_one_line_error(code, err, "a language model has no latent space")
    assert not (tmp_path / "lm.npy").exists()


def test_stdin_lines_end_at_unicode_line_separators():
    """Lines from stdin end at U+2028 / U+2029 as files' lines do (they ran two sentences into one)."""
    import io

    from seqvae.textinput import read_lines

    data = "The plot was dull.\u2028A gem.\u2029Fine.\n".encode()
    assert read_lines(io.BytesIO(data)) == ["The plot was dull.", "A gem.", "Fine."]


def test_a_byte_order_mark_on_stdin_is_dropped():
    """A BOM before stdin's first line (a file saved by Notepad, piped) was kept as the first sentence's first
    character: it was encoded, scored and echoed in --json as part of the text (a file's BOM is dropped)."""
    import io

    from seqvae.textinput import read_lines

    assert read_lines(io.BytesIO("\ufeffA gem.\r\n\r\nDull.\r\n".encode())) == ["A gem.", "Dull."]
    assert read_lines(io.StringIO("\ufeffA gem.\n")) == ["A gem."]


def _options(parser):
    """(option strings, help) of each option of an argparse parser, -h left out."""
    return [(a.option_strings, a.help) for a in parser._actions
            if a.option_strings and not isinstance(a, argparse._HelpAction) and a.help != argparse.SUPPRESS]


def test_every_option_says_what_it_does():
    """`seqvae COMMAND -h` (and each classify action's) explains every option: none is a bare name."""
    from seqvae.cli import build_parser
    from seqvae.sentiment.cli import ACTIONS, action_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    parsers = {**commands, **{f"classify {a}": action_parser(a) for a in ACTIONS}}
    bare = [f"{name} {' '.join(opts)}" for name, p in parsers.items() for opts, help in _options(p) if not help]
    assert not bare, bare
    for name in ("interpolate", "reconstruct", "decode"):  # no z is drawn there: the seed is the sampler's alone
        seed_help = next(h for opts, h in _options(commands[name]) if "--seed" in opts)
        assert "z" not in seed_help.split(), seed_help


def _no_default(value) -> bool:
    return (value is None or value is False or value == argparse.SUPPRESS  # --version's: no value to name
            or (isinstance(value, (list, str)) and not value))


def _options_with_a_default():
    """(command, option, default, help) of every option of every `seqvae` command (classify's actions too)
    whose default is a value, not None, a flag's False or an empty list."""
    from seqvae.cli import build_parser
    from seqvae.sentiment.cli import ACTIONS, action_parser

    def walk(name, parser):
        for a in parser._actions:
            if isinstance(a, argparse._SubParsersAction):
                for sub, sp in a.choices.items():
                    yield from walk(f"{name} {sub}".strip(), sp)
            elif (a.option_strings and a.help != argparse.SUPPRESS and not _no_default(a.default)
                  and not isinstance(a, argparse._HelpAction)):
                yield name, a.option_strings[-1], a.default, a.help or ""

    yield from walk("", build_parser())
    for action in ACTIONS:
        yield from walk(f"classify {action}", action_parser(action))


def test_every_option_with_a_default_names_it_in_its_help():
    # docs/usage.md: "Every command has its own -h, with each option's default"
    missing = [f"seqvae {cmd} {opt} (default {default!r})" for cmd, opt, default, text in _options_with_a_default()
               if "default" not in text]
    assert not missing, missing


HELP_EVERYWHERE = """
import argparse, contextlib, io, sys
from seqvae.cli import build_parser, main
from seqvae.sentiment.cli import ACTIONS

commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
argvs = [[c, "--help"] for c in commands] + [["classify", a, "--help"] for a in ACTIONS]
argvs += [["sample"], ["classify", "fit"], ["train", "--no-such-flag"]]  # usage errors
for argv in argvs:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            main(argv)
        except SystemExit as e:
            assert e.code == (0 if "--help" in argv else 2), (argv, e.code)
        else:
            raise AssertionError(argv)
print(len(argvs), sorted(m for m in ("torch", "numpy", "sentencepiece") if m in sys.modules))
"""


def test_help_and_usage_errors_import_no_torch():
    """`seqvae --help`, every `seqvae CMD --help` (classify's actions too) and usage errors load neither torch nor
    numpy nor sentencepiece (over a second of imports before a line of help), in a fresh interpreter."""
    p = subprocess.run([sys.executable, "-c", HELP_EVERYWHERE], capture_output=True, text=True,
                       cwd=Path(__file__).resolve().parents[1])
    assert p.returncode == 0, p.stderr[-2000:]
    count, loaded = p.stdout.split(" ", 1)
    assert int(count) > 15 and loaded.strip() == "[]", p.stdout


INTERRUPTED_IMPORT = """
import sys

class CtrlC:  # Ctrl-C inside torch's first import, half-way through it (torch.nn), as a console script meets it
    fired = False

    def find_spec(self, name, path=None, target=None):
        if name == "torch.nn" and not CtrlC.fired:
            CtrlC.fired = True
            raise KeyboardInterrupt
        return None

sys.meta_path.insert(0, CtrlC())
from seqvae.cli import main  # what the `seqvae` console script runs before main()
code = main(["sample", "no-such-checkpoint", "-n", "1"])
assert CtrlC.fired
sys.exit(code)
"""


def test_ctrl_c_during_the_first_torch_import_is_one_line():
    """A Ctrl-C in the first second of a command (torch importing) is `seqvae: interrupted`, exit 130: not a
    KeyboardInterrupt traceback from importing the package, nor one from reporting_errors importing torch again."""
    p = subprocess.run([sys.executable, "-c", INTERRUPTED_IMPORT], capture_output=True, text=True,
                       cwd=Path(__file__).resolve().parents[1])
    assert (p.returncode, p.stderr) == (130, "seqvae: interrupted\n"), p.stderr[-2000:]


def _all_parsers():
    """{name: parser} of every `seqvae` command (classify's actions as "classify ACTION")."""
    from seqvae.cli import build_parser
    from seqvae.sentiment.cli import ACTIONS, action_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    return {**commands, **{f"classify {a}": action_parser(a) for a in ACTIONS}}


DOCS = [Path(__file__).resolve().parents[1] / name for name in ("docs/usage.md", "README.md")]
OPTION = r"(?<![\w-])--?[a-z][\w-]*"


def test_every_option_the_docs_name_exists():
    """Each `seqvae CMD ...` the docs show takes only options CMD's parser has, each `python scripts/X.py ...` only
    X's, and every other --option they name is some command's or script's (torchrun's and pip's aside)."""
    repo = DOCS[0].parents[1]
    opts = {name: {o for a in p._actions for o in a.option_strings} for name, p in _all_parsers().items()}
    scripts = {f.name: set(re.findall(r'add_argument\(\s*(?:"-\w",\s*)?"(--?[\w-]+)"', f.read_text()))
               for f in (repo / "scripts").glob("*.py")}
    others = {"--version", "--nproc_per_node", "--index-url"}  # seqvae's own, torchrun's, pip's
    known = set().union(*opts.values(), *scripts.values()) | others
    wrong = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        commands = re.findall(r"`(seqvae [^`]+)`", text) + [
            line.split("  #")[0] for line in text.splitlines() if line.startswith("seqvae ")]
        for command in commands:
            words = command.split()
            name = " ".join(words[1:3]) if words[1] == "classify" and len(words) > 2 else words[1]
            if name.startswith("-"):
                continue  # seqvae --version
            wrong += [f"{doc.name}: {command!r}: {o}" for o in re.findall(OPTION, command)
                      if o not in opts.get(name, ())]
        for script, command in re.findall(r"`python (scripts/(\w+\.py)[^`]*)`", text):
            wrong += [f"{doc.name}: {script!r}: {o}" for o in re.findall(OPTION, script) if o not in scripts[command]]
        wrong += [f"{doc.name}: {o} (no command or script has it)" for o in set(re.findall(OPTION, text)) - known
                  if o.startswith("--")]
    assert not wrong, wrong


def test_the_defaults_docs_usage_names_are_the_parsers():
    """docs/usage.md's "`--option` (N ...)" and "`--option` ... (default N" agree with a command's default for it
    (the value, or the one its -h names)."""
    def number(text):
        return float(text.replace(",", ""))

    named: dict[str, set] = {}
    for p in _all_parsers().values():
        for a in p._actions:
            for o in a.option_strings:
                values = named.setdefault(o, set())
                if isinstance(a.default, (int, float)) and not isinstance(a.default, bool):
                    values.add(float(a.default))
                values.update(number(m) for m in re.findall(r"default:? (\d[\d,.]*\d|\d)", a.help or ""))
    text = DOCS[0].read_text(encoding="utf-8")
    NUM = r"(\d[\d,.]*\d|\d)"
    claims = (re.findall(rf"`({OPTION})`,?\s+\((?:default )?{NUM}", text)
              + re.findall(rf"`({OPTION})`[^`(]{{0,40}}\(default {NUM}", text)
              + re.findall(rf"`({OPTION})`, default {NUM}", text))
    assert len(claims) >= 10, claims  # the pattern still finds them
    wrong = [f"{o} {v} (parsers: {sorted(named.get(o, ()))})" for o, v in claims if number(v) not in named.get(o, ())]
    assert not wrong, wrong
