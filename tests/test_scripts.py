"""scripts/plot_curves.py and scripts/figures.py as a user runs them: what they write, and bad input as one
line with nothing written (tiny runs and checkpoints; the plots need matplotlib, in the test extra)."""

import json
from pathlib import Path

import pytest
from conftest import run_script as script

pytest.importorskip("matplotlib")


def _run_dir(path: Path, kl: float) -> Path:
    path.mkdir(parents=True)
    rows = [{"step": s, "split": "train", "loss": 10.0 - s, "rec": 9.0, "kl": kl, "beta": s / 4} for s in (1, 2, 3)]
    rows.append({"step": 3, "split": "valid", "nll": 8.0})
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def one_line(result, prog: str, pattern: str) -> None:
    rc, _, err = result
    assert rc == 2 and err.count("\n") == 1 and err.startswith(f"{prog}: error:") and pattern in err, err


def test_plot_curves(tmp_path):
    plot = script("plot_curves")
    vae, lm = _run_dir(tmp_path / "a" / "run", kl=2.0), _run_dir(tmp_path / "b" / "run", kl=0.0)
    rc, out, _ = plot(vae, lm, "--out", tmp_path / "c.png")
    assert rc == 0 and (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG" and "wrote" in out
    module = plot.module
    assert module.labels([str(vae), str(lm)]) == [str(vae), str(lm)]  # two runs named "run": both kept apart
    assert module.labels(["x/a", "y/b"]) == ["a", "b"]

    (tmp_path / "dir").mkdir()
    one_line(plot(vae, "--out", tmp_path / "dir"), "plot_curves", "is a directory")
    one_line(plot(vae, "--out", tmp_path / "x.txt"), "plot_curves", "name a .png, .pdf or .svg file")
    cut = tmp_path / "cut"
    cut.mkdir()
    (cut / "metrics.jsonl").write_text((vae / "metrics.jsonl").read_text()[:70])
    one_line(plot(cut, "--out", tmp_path / "d.png"), "plot_curves", "line 1: not JSON")
    (cut / "metrics.jsonl").write_text("")
    one_line(plot(cut, "--out", tmp_path / "d.png"), "plot_curves", "no training rows")
    assert not (tmp_path / "d.png").exists() and not (tmp_path / "x.txt").exists()


def test_figures_write_nothing_on_bad_input(tiny, tmp_path):
    figures = script("figures")
    (tmp_path / "file.png").write_text("")
    one_line(figures(tiny[0], "--out", tmp_path / "file.png"), "figures", "exists and is not a directory")
    one_line(figures(tiny[0], "--out", tmp_path / "figs", "--data-root", tmp_path / "none", "--steps", "3"),
             "figures", "none")
    assert not (tmp_path / "figs").exists()
    # an empty endpoint names its option (was "sentence 0 is empty", after the model loaded); one sentence on the
    # map has no principal components (was a figure labelled "nan% of variance")
    one_line(figures(tiny[0], "--out", tmp_path / "figs", "--a", " "), "figures", "--a is empty")
    one_line(figures(tiny[0], "--out", tmp_path / "figs", "--sentences", "1"), "figures", "--sentences >= 2")
    # the API's bound, checked before the model and the reviews load (was after, in the API's words)
    one_line(figures(tiny[0], "--out", tmp_path / "figs", "--data-root", tmp_path / "none", "--steps", "100000"),
             "figures", "--steps must be between 2 and 10,000, got 100,000")
    import sys

    saved = sys.modules.get("matplotlib")
    sys.modules["matplotlib"] = None  # not installed: one line naming the extra
    try:
        one_line(figures(tiny[0], "--out", tmp_path / "figs"), "figures", "pip install -e '.[plot]'")
    finally:
        sys.modules["matplotlib"] = saved
    assert not (tmp_path / "figs").exists()
    rc, out, _ = figures(tiny[0], "--out", tmp_path / "figs", "--data-root", tiny[1], "--steps", "3",
                         "--reviews", "8", "--sentences", "10", "--a", "The plot was dull.", "--b", "A gem.")
    assert rc == 0 and len(out.splitlines()) == 3
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["interpolation.png", "latent_map.png"]


def test_benchmark_ptb_refuses_a_run_of_other_sizes(tiny_data_dir, tmp_path):
    bench = script("benchmark_ptb")
    out = tmp_path / "pb"
    opts = ["--data", tiny_data_dir, "--out", out, "--variants", "lm", "--max-steps", "2", "--eval-every", "2",
            "--embed-dim", "8", "--hidden-dim", "16", "--latent-dim", "4", "--batch-size", "8", "--threads", "1",
            "--samples", "2", "--max-test-sentences", "10"]
    one_line(bench(*opts, "--variants", "lm,vae-nope"), "benchmark_ptb", "unknown variant(s) vae-nope")
    assert not out.exists()
    rc, stdout, _ = bench(*opts)
    assert rc == 0 and "| lm |" in stdout and json.loads((out / "results.json").read_text())["lm"]["sentences"] == 10
    md = (out / "results.md").read_text()  # what the numbers are, and no KL/MI/AU for a language model
    assert md.startswith("lm: test split, 10 sentences")
    assert next(ln for ln in md.splitlines() if ln.startswith("| lm |")).endswith("| - | - | - | 2 |")
    # Bowman et al.'s rows are for PTB's whole test split, not 10 of its sentences (were always there)
    assert "Bowman" not in md and "published PTB numbers left out" in md
    whole = {"sentences": 3761, "tokens": 82430}  # PTB's test split, words + one EOS per sentence
    assert bench.module.comparable_to_published("ptb", "test", whole)
    assert not bench.module.comparable_to_published("ptb", "valid", whole)
    assert not bench.module.comparable_to_published("text", "test", whole)
    assert not bench.module.comparable_to_published("ptb", "test", {**whole, "sentences": 10})
    one_line(bench(*opts, "--hidden-dim", "32"), "benchmark_ptb", "was trained with {'hidden_dim': 16}")
    one_line(bench(*opts, "--lr", "0.01"), "benchmark_ptb",  # was: reused, its numbers labelled with this lr
             "was trained with {'lr': 0.001}, not {'lr': 0.01}")
    rc, stdout, _ = bench(*opts, "--latent-dim", "8")  # an LM has no z: its run is the same model
    assert rc == 0 and "lm: reusing" in stdout
    rc, stdout, err = bench(*opts, "--max-steps", "3")  # the LM's config has no schedule that follows max_steps
    assert rc == 0 and "train --resume" in stdout, err
    assert json.loads((out / "lm" / "last" / "metrics.json").read_text())["step"] == 3
    with pytest.raises(SystemExit) as e:  # argparse: a split that does not exist, before any training
        bench(*opts, "--split", "foo")
    assert e.value.code == 2


def _saved_run(bench, run_dir: Path, argv: list, variant: str) -> list[str]:
    """run_dir/last as `seqvae train` leaves it for `benchmark_ptb ARGV`'s VARIANT: the config that run would have
    trained with (a real one is checked against the same in the test above) and its step; no weights. Returns
    the variant's train flags."""
    args = bench.module.arg_parser().parse_args([str(a) for a in argv])
    flags = [*bench.module.common_flags(args), *bench.module.variants(args.max_steps)[variant]]
    cfg = bench.module.build_run_config(bench.module.build_parser().parse_args(["train", *flags, "--out", "x"]))
    (run_dir / "last").mkdir(parents=True)
    (run_dir / "last" / "config.json").write_text(json.dumps(cfg.to_dict()))
    (run_dir / "last" / "metrics.json").write_text(json.dumps({"step": args.max_steps}))
    return flags


def test_benchmark_ptb_extends_no_vae_run_to_other_steps(tiny_data_dir, tmp_path):
    """A VAE variant's logistic schedule follows --max-steps (x0 = max_steps // 3) and `train --resume` keeps the
    saved one, so extending vae-bowman from 2 to 4 steps trained a run labelled vae-bowman on the 2-step
    schedule (was: silently). Refused before any work; the LM goes on (test above)."""
    bench = script("benchmark_ptb")
    out = tmp_path / "pb"
    opts = ["--data", tiny_data_dir, "--out", out, "--variants", "vae-bowman", "--eval-every", "2", "--embed-dim",
            "8", "--hidden-dim", "16", "--latent-dim", "4", "--batch-size", "8", "--threads", "1", "--samples", "2",
            "--max-test-sentences", "10"]
    flags = _saved_run(bench, out / "vae-bowman", [*opts, "--max-steps", "2"], "vae-bowman")
    bench.module.check_same_settings(out / "vae-bowman", flags)  # the same run: no error
    train = json.loads((out / "vae-bowman" / "last" / "config.json").read_text())["train"]
    one_line(bench(*opts, "--max-steps", "4"), "benchmark_ptb",
             f"vae-bowman was trained with {{'kl_k': {train['kl_k']}, 'kl_x0': {train['kl_x0']}}}")
    assert json.loads((out / "vae-bowman" / "last" / "metrics.json").read_text())["step"] == 2  # nothing trained
    assert sorted(p.name for p in out.iterdir()) == ["vae-bowman"]  # no log, no results
    # a cyclical schedule's period follows max_steps too, and `train --resume` refuses another: said before the
    # other variants train (was: after them, hours at real sizes, as "training vae-cyc-fb failed")
    flags = _saved_run(bench, tmp_path / "cyc" / "vae-cyc-fb", [*opts, "--max-steps", "2"], "vae-cyc-fb")
    bench.module.check_same_settings(tmp_path / "cyc" / "vae-cyc-fb", flags)  # the same run: no error
    opts[opts.index(out)] = tmp_path / "cyc"
    one_line(bench(*opts, "--variants", "lm,vae-cyc-fb", "--max-steps", "4"), "benchmark_ptb",
             "vae-cyc-fb was trained with {'max_steps': 2}, not {'max_steps': 4}")
    assert sorted(p.name for p in (tmp_path / "cyc").iterdir()) == ["vae-cyc-fb"]  # the LM was not trained


def test_benchmark_ptb_refuses_bad_input_before_any_work(tiny_data_dir, tmp_path):
    bench = script("benchmark_ptb")
    out = tmp_path / "pb"
    opts = ["--data", tiny_data_dir, "--out", out, "--variants", "lm,vae-fb", "--threads", "1"]
    one_line(bench(*opts, "--max-steps", "0"), "benchmark_ptb", "--max-steps must be >= 1")  # was a ZeroDivisionError
    one_line(bench(*opts, "--samples", "-1"), "benchmark_ptb", "--samples must be between 0 and 10,000")
    one_line(bench(*opts, "--eval-every", "0"), "benchmark_ptb", "--eval-every must be >= 1")
    one_line(bench(*opts[2:], "--data", tmp_path / "nodata"), "benchmark_ptb", "nodata/meta.json: no such file")
    assert not out.exists()
    (tmp_path / "a_file").write_text("mine")
    one_line(bench(*opts[:2], "--out", tmp_path / "a_file", *opts[4:]), "benchmark_ptb", "is not a directory")
    assert (tmp_path / "a_file").read_text() == "mine"


def test_compare_nll_into_a_closed_pipe_is_no_traceback(tmp_path):
    """`compare_nll.py A B --json | head -0`: the reader is gone; exit 141 as for `seqvae`, nothing on stderr."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    for name, nll in (("a", [1.0, 2.0, 3.0]), ("b", [1.5, 2.0, 2.0])):
        (tmp_path / f"{name}.json").write_text(json.dumps({"split": "test", "data": "d", "per_sentence_nll": nll}))
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run([sys.executable, str(root / "scripts" / "compare_nll.py"), tmp_path / "a.json",
                               tmp_path / "b.json", "--json"], stdout=write, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(root)})
    finally:
        os.close(write)
    assert proc.returncode == 141 and proc.stderr == ""


def test_compare_nll_names_each_estimate_and_the_split(tmp_path):
    common = {"split": "test", "data": "d", "nll_is_bound": False}
    files = {"vae": {**common, "latent": True, "iw_samples": 7, "per_sentence_nll": [1.0, 2.0, 3.0]},
             "lm": {**common, "latent": False, "iw_samples": 0, "per_sentence_nll": [1.5, 2.0, 2.0]}}
    for name, res in files.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(res))
    rc, out, _ = script("compare_nll")(tmp_path / "vae.json", tmp_path / "lm.json")
    assert rc == 0 and "over 3 test sentences" in out
    assert "(A: IW-NLL (k = 7); B: exact NLL of a language model)" in out


def test_compare_reports_puts_each_figure_under_its_column(tmp_path):
    """A report whose figures all differ: each lands under its header; optional parts (a judge, refined codes, the
    training words) missing give '-', a missing required part one line naming it."""
    rep = json.loads((Path(__file__).resolve().parents[1] / "checkpoints" / "imdb" / "report.json").read_text())
    rec, it, lat = rep["reconstruction"], rep["interpolation"], rep["latent"]
    rec["greedy"].update(bleu=11.11, exact=0.0222)
    rec["beam 4"]["bleu"] = 33.33
    rec["greedy, refined (10 steps)"]["bleu"] = 44.44
    it.update(bleu_first_vs_a=55.55, bleu_last_vs_b=66.66)
    it["refined"].update(bleu_first_vs_a=77.77, bleu_last_vs_b=88.88)
    for i, r in enumerate(rep["samples"]):
        r.update(ppl_ratio=5.0 + i, distinct_2=0.9, invented_rate=0.0)
    rep["samples"][3].update(ppl_ratio=0.123, distinct_2=0.987, invented_rate=0.000456)
    lat.update(kl=12.34, mi=4.567, mi_se=0.089, au=42)
    lat["vs_judge"].update(mean_diff=2.34, se=0.45)
    lat["vs_judge_refined"].update(mean_diff=-1.23, se=0.34)
    rep["checkpoint"] = "mine"
    (tmp_path / "a.json").write_text(json.dumps(rep))
    rc, out, err = script("compare_reports")(tmp_path / "a.json")
    assert rc == 0, err
    head, _, row = out.strip().splitlines()
    cells = dict(zip([c.strip() for c in head.strip("|").split("|")], [c.strip() for c in row.strip("|").split("|")]))
    best = rep["samples"][3]
    assert cells == {"checkpoint": "mine", "BLEU greedy": "11.1", "BLEU beam": "33.3", "exact": "2.2%",
                     "interp. A / B": "55.5 / 66.7", "refined: BLEU; A / B": "44.4; 77.8 / 88.9",
                     "samples x real PPL (best)": f"0.12 ({best['prior']}, {best['strategy']})", "distinct-2": "0.99",
                     "invented": "0.05%", "KL": "12.3", "MI": "4.57 ± 0.09", "AU": "42", "IW-NLL - LM": "+2.3 ± 0.5",
                     "fitted proposals": "-1.2 ± 0.3"}
    del rep["judge"], it["refined"], lat["vs_judge"], lat["vs_judge_refined"], rep["checkpoint"]
    for r in rep["samples"]:
        del r["ppl_ratio"], r["invented_rate"]
    (tmp_path / "b.json").write_text(json.dumps(rep))
    rc, out, err = script("compare_reports")(tmp_path / "b.json")
    row = [c.strip() for c in out.strip().splitlines()[2].strip("|").split("|")]
    assert rc == 0 and row[0] == str(tmp_path / "b.json") and row[5:9] == ["-"] * 4 and row[12:] == ["-"] * 2
    del rec["beam 4"]
    (tmp_path / "c.json").write_text(json.dumps(rep))
    rc, out, err = script("compare_reports")(tmp_path / "a.json", tmp_path / "c.json")
    assert rc == 2 and not out and err.count("\n") == 1 and "c.json: not a report of `seqvae report`: it has no 'beam 4'" in err


def test_a_shipped_language_model_records_its_training_config(tiny_data_dir, tmp_path):
    """scripts/ship_checkpoint.py on a language-model run: config.json keeps the run's train section, as a
    VAE's does, so the config its card prints can be traced to the checkpoint (before: "train": null)."""
    from seqvae.config import ModelConfig, RunConfig, TrainConfig
    from seqvae.train import Trainer

    cfg = RunConfig(model=ModelConfig(embed_dim=16, hidden_dim=32, latent_dim=8, latent=False),
                    train=TrainConfig(batch_size=16, max_steps=2, eval_every=2, log_every=1, seed=0, num_threads=1))
    Trainer(cfg, tiny_data_dir, tmp_path / "lm", device="cpu", progress=False).fit()
    out = tmp_path / "shipped"
    rc, _, err = script("ship_checkpoint")(str(tmp_path / "lm"), str(out), "--samples", "1", "--max-sentences", "4",
                                            "--data", str(tiny_data_dir))
    assert rc == 0, err
    run_train = json.loads((tmp_path / "lm" / "best" / "config.json").read_text())["train"]
    assert run_train is not None
    assert json.loads((out / "config.json").read_text())["train"] == run_train
    assert f"Config: `{json.dumps(run_train)}`" in (out / "README.md").read_text()


def _closed_pipe_run(name: str, *argv) -> "subprocess.CompletedProcess":
    """scripts/NAME.py ARGV with its stdout a pipe whose reader is gone (`| head -0`)."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run([sys.executable, str(root / "scripts" / f"{name}.py"), *map(str, argv)], stdout=write,
                              stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(root)})
    finally:
        os.close(write)


def test_compare_nll_refuses_other_sentences_of_the_same_count(tmp_path):
    """Per-sentence NLLs pair by place, so both files must hold the same sentences: files that name their sentences'
    sha256 (evaluate since 2026-12) are compared by it, wherever the data dir stands; older ones by the token count.
    Before: any two lists of one length on a split of one path were compared, the differences of unrelated
    sentences averaged into a confident interval."""
    compare = script("compare_nll")

    def write(name, **res):
        (tmp_path / f"{name}.json").write_text(json.dumps({"split": "test", "data": "d", **res}))

    write("a", per_sentence_nll=[1.0, 2.0, 3.0], tokens=12)
    write("b", per_sentence_nll=[1.5, 2.0, 2.0], tokens=15)  # the data dir prepared again between the two
    one_line(compare(tmp_path / "a.json", tmp_path / "b.json"), "compare_nll", "not the same sentences")
    write("c", per_sentence_nll=[1.0, 2.0, 3.0], tokens=12, sentences_sha256="1" * 64)
    write("e", per_sentence_nll=[1.5, 2.0, 2.0], tokens=12, sentences_sha256="2" * 64)
    one_line(compare(tmp_path / "c.json", tmp_path / "e.json"), "compare_nll", "not the same sentences")
    write("g", per_sentence_nll=[1.5, 2.0], tokens=8, sentences=2, sentences_sha256="3" * 64)
    write("h", per_sentence_nll=[1.0, 2.0, 3.0], tokens=12, sentences=3, sentences_sha256="1" * 64)
    one_line(compare(tmp_path / "g.json", tmp_path / "h.json"), "compare_nll",  # a subset: said, not just "differ"
             "differ: 2 sentences against 3 (another --max-sentences?)")
    write("f", per_sentence_nll=[1.5, 2.0, 2.0], tokens=12, sentences_sha256="1" * 64, data="/a/copy/elsewhere")
    rc, out, err = compare(tmp_path / "c.json", tmp_path / "f.json")  # the same sentences in a copy of the data dir
    assert rc == 0 and "over 3 test sentences" in out, err


def test_evaluate_names_the_sentences_it_scored(tiny_data_dir, tmp_path):
    """`seqvae evaluate --per-sentence` records the sha256 of the sentences it scored, which compare_nll pairs by."""
    from seqvae import checkpoint
    from seqvae.cli import main as seqvae
    from seqvae.config import ModelConfig
    from seqvae.data import SentenceDataset
    from seqvae.model import SentenceVAE
    from seqvae.tokenizer import load_tokenizer

    tok = load_tokenizer(tiny_data_dir)
    for name, latent in (("vae", True), ("lm", False)):  # untrained, on the data dir's tokenizer
        model = SentenceVAE(ModelConfig(vocab_size=tok.vocab_size, embed_dim=8, hidden_dim=12, latent_dim=4,
                                        latent=latent))
        ckpt = checkpoint.save(tmp_path / f"ckpt-{name}", model, tok)
        assert seqvae(["evaluate", str(ckpt), "--data", str(tiny_data_dir), "--samples", "2", "--max-sentences", "6",
                       "--per-sentence", "--json", str(tmp_path / f"{name}.json")]) == 0
        res = json.loads((tmp_path / f"{name}.json").read_text())
        assert res["sentences_sha256"] == SentenceDataset.from_dir(tiny_data_dir, "test").subset(6).fingerprint()
    rc, out, err = script("compare_nll")(tmp_path / "vae.json", tmp_path / "lm.json")
    assert rc == 0 and "over 6 test sentences" in out, err


def test_compare_reports_bad_files_are_one_clear_line(tmp_path):
    """A missing, empty, non-object or other-version file: one line naming the file and what is wrong (before: a
    Python repr, `FileNotFoundError(2, 'No such file or directory')`, `TypeError("'<' not supported ...")`), and a
    reader gone is a quiet 141 (before: a BrokenPipeError traceback, exit 1)."""
    compare = script("compare_reports")
    good = Path(__file__).resolve().parents[1] / "checkpoints" / "imdb" / "report.json"
    rep = json.loads(good.read_text())
    rep["latent"]["mi"] = None  # a field of another shape
    (tmp_path / "other.json").write_text(json.dumps(rep))
    (tmp_path / "empty.json").write_text("")
    (tmp_path / "list.json").write_text("[1]")
    for name, msg in (("nope.json", "nope.json: no such file"), ("empty.json", "empty.json: invalid JSON"),
                      ("list.json", "list.json: expected a JSON object"),
                      ("other.json", "other.json: not a report of `seqvae report`")):
        rc, out, err = compare(good, tmp_path / name)
        one_line((rc, out, err), "compare_reports", msg)
        assert not out and "Error(" not in err and "Error'" not in err
    proc = _closed_pipe_run("compare_reports", good)
    assert proc.returncode == 141 and proc.stderr == ""


def test_compare_reports_refuses_reports_on_other_sentences(tmp_path):
    """Rows side by side must be measured on the same held-out sentences: another count, another texts digest
    (reports since 2026-12) or, for older reports, other real sentences' diversity is one line, no table. Before:
    a table that set a report of 50 sentences beside one of 1,000 without a word."""
    compare = script("compare_reports")
    rep = json.loads((Path(__file__).resolve().parents[1] / "checkpoints" / "imdb" / "report.json").read_text())
    rep.pop("texts_sha256", None)  # a report from before reports named their texts (the shipped one now does)

    def variant(name, **change):
        r = json.loads(json.dumps(rep))
        for key, value in change.items():
            r[key] = value
        (tmp_path / name).write_text(json.dumps(r))
        return tmp_path / name

    good = variant("good.json")

    one_line(compare(good, variant("n.json", sentences=50)), "compare_reports", "not measured on the same held-out sentences")
    other = dict(rep["real_diversity"], self_bleu=rep["real_diversity"]["self_bleu"] + 1.0)
    one_line(compare(good, variant("d.json", real_diversity=other)), "compare_reports", "d.json")
    a, b = variant("a.json", texts_sha256="1" * 64), variant("b.json", texts_sha256="2" * 64)
    one_line(compare(a, b), "compare_reports", "not measured on the same held-out sentences")
    rc, out, err = compare(a, variant("c.json", texts_sha256="1" * 64), good)  # the same, and one without a digest
    assert rc == 0 and len([ln for ln in out.splitlines() if ln.startswith("|")]) == 5, err


def test_compare_reports_marks_judged_columns_of_other_judges_or_iw_samples(tmp_path):
    """"samples x real PPL" and "IW-NLL - LM" depend on the judge, and the IW-NLL on its sample count: reports
    with other judges (report.json's judge weights_sha256) or other --iw-samples have those cells marked and a line
    under the table says why (before: set side by side without a word); a report from before judges were named
    is "unknown", not refused; the same judge and k: no mark."""
    compare = script("compare_reports")
    good = Path(__file__).resolve().parents[1] / "checkpoints" / "imdb" / "report.json"
    rep = json.loads(good.read_text())

    def variant(name, sha="a" * 64, k=None):
        r = json.loads(json.dumps(rep))
        r["judge"]["weights_sha256"] = sha  # None: a report from before judges were named (the shipped one is not)
        if sha is None:
            del r["judge"]["weights_sha256"]
        if k is not None:
            r["latent"]["iw_samples"] = k
        r["checkpoint"] = name
        (tmp_path / name).write_text(json.dumps(r))
        return tmp_path / name

    def cells(out):
        lines = out.splitlines()
        head = [c.strip() for c in lines[0].strip("|").split("|")]
        rows = [dict(zip(head, [c.strip() for c in ln.strip("|").split("|")]))
                for ln in lines[2:] if ln.startswith("|")]
        return rows, [ln for ln in lines if ln and not ln.startswith("|")]

    judged = ("samples x real PPL (best)", "IW-NLL - LM", "fitted proposals")
    rc, out, err = compare(variant("a"), variant("a2"))
    rows, notes = cells(out)
    assert rc == 0 and not notes and not any(r[c].endswith("*") for r in rows for c in judged), out
    rc, out, err = compare(variant("a"), variant("b", sha="b" * 64))
    rows, notes = cells(out)
    assert rc == 0 and all(r[c].endswith("*") for r in rows for c in judged), out
    assert not any(r["BLEU greedy"].endswith("*") for r in rows)
    assert len(notes) == 1 and "the judge differs" in notes[0]
    assert "aaaaaaaaaaaa" in notes[0] and "bbbbbbbbbbbb" in notes[0]
    rc, out, err = compare(variant("a"), variant("k", k=500))
    rows, notes = cells(out)
    assert rc == 0 and len(notes) == 1 and "IW samples" in notes[0] and "100" in notes[0] and "500" in notes[0]
    assert all(r["IW-NLL - LM"].endswith("*") for r in rows)
    assert not any(r["samples x real PPL (best)"].endswith("*") for r in rows)
    rc, out, err = compare(variant("a"), variant("old", sha=None))
    rows, notes = cells(out)
    assert rc == 0 and len(notes) == 1 and "unknown" in notes[0] and "old" in notes[0], out
