"""curve: the label-budget curve end to end through `seqvae classify curve` on tiny fake IMDB."""

import gzip
import importlib.util
import json
import os

import pytest

pytest.importorskip("sklearn")


def test_curve_end_to_end(tiny, tmp_path, capsys):
    from seqvae.cli import main

    ckpt, root = tiny
    out = tmp_path / "curve"
    argv = ["classify", "curve", str(ckpt), "--out", str(out), "--data-root", str(root), "--budgets", "10,20,1000",
            "--draws", "2", "--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    assert main(argv) == 0
    res = json.loads((out / "curve.json").read_text())
    assert res["budgets"] == [10, 20, 40] and res["n_test"] == 20 and res["draws"] == 2
    assert set(res["methods"]) == {"vae_lr", "vae_set", "untrained_lr", "untrained_set", "tfidf_lr"}
    for m in res["methods"].values():
        assert [len(m["budgets"][b]["runs"]) for b in ("10", "20", "40")] == [2, 2, 1]
        assert all(0.0 <= a <= 1.0 for b in m["budgets"].values() for a in b["runs"])
    assert res["methods"]["tfidf_lr"]["budgets"]["40"]["mean"] == 1.0  # one word tells the label here
    texts = {split: [json.loads(x)["text"] for x in gzip.open(root / "imdb" / f"{split}.jsonl.gz", "rt")]
             for split in ("train", "test")}
    assert res["test_reviews_in_train"] == sum(t in set(texts["train"]) for t in texts["test"])
    table = (out / "curve.md").read_text()
    assert "| tf-idf 1-2gram + LR |" in table and "40 (all)" in table
    assert "| VAE μ per sentence + set MLP (attention) |" in table and res["set_head"]["pool"] == "attention"
    has_mpl = importlib.util.find_spec("matplotlib") is not None  # plotting is an optional extra
    assert (out / "curve.png").exists() == has_mpl
    if has_mpl:
        assert (out / "curve.png").stat().st_size > 0
    assert "VAE μ + LR" in capsys.readouterr().out
    # second run: every feature set comes from the cache
    assert main(argv + ["--no-set"]) == 0
    res2 = json.loads((out / "curve.json").read_text())
    assert set(res2["methods"]) == {"vae_lr", "untrained_lr", "tfidf_lr"} and "set_head" not in res2
    assert all(s["cached"] for f in ("vae", "untrained") for s in res2["features"][f].values())
    for b in ("10", "20", "40"):  # same draws, same numbers
        assert res2["methods"]["vae_lr"]["budgets"][b]["runs"] == res["methods"]["vae_lr"]["budgets"][b]["runs"]
    # a bag in the set rows, without the baselines
    assert main(argv + ["--no-baselines", "--set-members", "2"]) == 0
    res3 = json.loads((out / "curve.json").read_text())
    assert set(res3["methods"]) == {"vae_lr", "vae_set"} and res3["set_head"]["members"] == 2
    assert "set MLP (attention, 2 averaged)" in (out / "curve.md").read_text()
    assert res3["features"]["vae"]["train"]["cached"]
    # every encoder row on the reviews' clauses: their own cache entries
    assert main(argv + ["--unit", "clause"]) == 0
    res4 = json.loads((out / "curve.json").read_text())
    assert set(res4["methods"]) == {"vae_lr", "vae_set", "untrained_lr", "untrained_set", "tfidf_lr"}
    assert res4["unit"] == "clause" and not res4["features"]["vae"]["train"]["cached"]
    table = (out / "curve.md").read_text()
    assert "| VAE μ of clauses + LR |" in table and "| VAE μ per clause + set MLP (attention) |" in table


def test_curve_files_are_one_run_when_a_write_fails(tiny, tmp_path, monkeypatch, capsys):
    """curve.md (and the plot) first, curve.json last, naming their sha256s: a save that fails at curve.md leaves
    the previous run's curve.json with its own curve.md, never a new JSON beside an old table."""
    import hashlib

    from seqvae import atomic
    from seqvae.cli import main

    ckpt, root = tiny
    out = tmp_path / "curve"
    argv = ["classify", "curve", str(ckpt), "--out", str(out), "--data-root", str(root), "--budgets", "10,20",
            "--draws", "1", "--no-set", "--no-baselines", "--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    assert main(argv) == 0
    old = {f: (out / f).read_bytes() for f in ("curve.json", "curve.md")}
    res = json.loads(old["curve.json"])
    assert res["markdown_sha256"] == hashlib.sha256(old["curve.md"]).hexdigest()
    if (out / "curve.png").exists():
        assert res["plot_sha256"] == atomic.file_sha256(out / "curve.png")
    write_with = atomic.write_with

    def refused(path, writer):
        if path.name == "curve.md":
            raise PermissionError(f"{path}: Permission denied")
        return write_with(path, writer)

    monkeypatch.setattr(atomic, "write_with", refused)
    capsys.readouterr()
    assert main(argv + ["--draws", "2"]) == 2  # another run (2 draws), refused at curve.md
    assert "Permission denied" in capsys.readouterr().err
    assert {f: (out / f).read_bytes() for f in old} == old
    monkeypatch.setattr(atomic, "write_with", write_with)
    assert main(argv + ["--draws", "2"]) == 0
    res = json.loads((out / "curve.json").read_text())
    assert res["draws"] == 2 and res["markdown_sha256"] == atomic.file_sha256(out / "curve.md")
    assert sorted(f for f in os.listdir(out) if f.startswith(".")) == []  # nothing parked, no temporary file
