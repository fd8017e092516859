"""The `seqvae` command: an end-to-end run on tiny data, and one-line errors for bad input."""

import json
import subprocess
import sys


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


def test_train_then_evaluate(tiny_data_dir, tmp_path, capsys):
    run_dir = tmp_path / "run"
    code, out, _ = run(capsys, "train", "--data", tiny_data_dir, "--out", run_dir, "--preset", "tiny",
                       "--max-steps", 20, "--eval-every", 10, "--no-progress", "--set", "train.log_every=5")
    assert code == 0 and json.loads(out)["step"] == 20
    code, out, _ = run(capsys, "train", "--resume", run_dir, "--max-steps", 30, "--no-progress")
    assert code == 0 and json.loads(out)["step"] == 30
    code, _, err = run(capsys, "evaluate", run_dir, "--json", tmp_path)  # a directory: refused before the work
    assert_one_line_error(code, err, "is a directory")
    code, out, _ = run(capsys, "evaluate", run_dir, "--split", "test", "--samples", 4)
    assert code == 0 and "NLL" in out
    res = json.loads((run_dir / "best" / "eval-test.json").read_text())
    assert res["iw_samples"] == 4 and res["sentences"] > 0 and res["nll"] <= res["neg_elbo"] + 1.0


def test_bad_inputs_give_one_line_errors(tiny_data_dir, tmp_path, capsys):
    code, _, err = run(capsys, "train", "--data", tmp_path / "missing", "--out", tmp_path / "r", "--no-progress")
    assert_one_line_error(code, err, "missing")
    assert not (tmp_path / "r").exists()

    bad_cfg = tmp_path / "bad.json"
    for text, msg in (('{"train": {"max_stepz": 3}}', "max_stepz"), ("{not json", "invalid JSON"),
                      ("[1, 2]", "expected a JSON object"),
                      ('{"train": {"max_steps": "many"}}', "max_steps: expected int")):
        bad_cfg.write_text(text)
        code, _, err = run(capsys, "train", "--data", tiny_data_dir, "--out", tmp_path / "r", "--config", bad_cfg)
        assert_one_line_error(code, err, msg)
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


def test_the_table_never_shows_a_bare_negative_mi():
    from seqvae.cli import format_table

    row = {"nll": 170.0, "nll_per_token": 6.2, "ppl": 492.7, "neg_elbo": 171.0, "rec": 170.9, "kl": 0.06, "au": 4}
    lines = format_table([("collapsed", {**row, "mi": -0.17, "mi_se": 0.05}), ("used", {**row, "mi": 3.456})])
    head, collapsed, used = lines.splitlines()
    assert collapsed.split()[7] == "0" and collapsed.endswith("0 (estimate -0.17 ± 0.05, clipped)        4")
    assert used.split()[7] == "3.46" and len({len(head), len(collapsed), len(used)}) == 1  # columns stay aligned
