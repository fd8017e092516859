import json
import shutil

import pytest
import torch

from seqvae import checkpoint, quality, splittext, textscores
from seqvae.api import SeqVAE
from seqvae.cli import main
from seqvae.display import format_mi
from seqvae.judge import Judge
from seqvae.config import ModelConfig
from seqvae.model import SentenceVAE
from seqvae.tokenizer import load_tokenizer


def test_mi_is_never_shown_as_a_bare_negative_number():
    assert not format_mi(-0.17, 0.2).startswith("-")
    assert "clipped" in format_mi(-0.17) and format_mi(3.456, 0.1) == "3.46 ± 0.10"


def _vae_on(data_dir, path):
    tok = load_tokenizer(data_dir)
    torch.manual_seed(0)
    model = SentenceVAE(ModelConfig(vocab_size=tok.vocab_size, embed_dim=8, hidden_dim=12, latent_dim=3))
    return checkpoint.save(path, model, tok)


def test_report_command(tiny_data_dir, tiny_lm_ckpt, tmp_path, capsys):
    data = shutil.copytree(tiny_data_dir, tmp_path / "data")
    ckpt = _vae_on(data, tmp_path / "vae")
    argv = ["report", str(ckpt), "--data", str(data), "--judge", str(tiny_lm_ckpt), "-n", "1000",
            "--samples", "4", "--iw-samples", "2", "--out", str(tmp_path / "rep"), "--device", "cpu"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "asked for 1000 sentences" in err and "using all" in err  # the clamp is stated
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert 2 <= rep["sentences"] < 1000 and "using all" in rep["note"]
    assert set(rep["reconstruction"]) == {"greedy", "beam 4", "greedy, refined (10 steps)"}
    by_length = rep["reconstruction"]["greedy"]["by_length"]
    assert sum(b["sentences"] for b in by_length) == rep["sentences"]
    assert "by the input's length in words" in (tmp_path / "rep" / "report.md").read_text()
    assert {"bleu_first_vs_a", "inner_judge_ppl"} <= set(rep["interpolation"]["refined"])
    assert {r["prior"] for r in rep["samples"]} == {"standard"} and len(rep["samples"]) == 4
    lat = rep["latent"]
    assert lat["mi_se"] >= 0 and {"vs_judge", "vs_judge_refined"} <= set(lat) and lat["refine_steps"] == 50
    assert "## Reconstruction" in (tmp_path / "rep" / "report.md").read_text() and "## Latent" in out
    assert "| fitted, 50 steps |" in out and "fitted proposals)" in err  # the table row and the summary line
    assert {r["words"] for r in rep["samples"]} == {"any"}
    ref = rep["decoder_reference"]  # the held-out means decoded by top-p 0.9, with the report's seed
    texts, _ = splittext.held_out(data, 1000)
    vae = SeqVAE.from_pretrained(ckpt)
    decoded = vae.decode(vae.encode(texts).mean, strategy="top-p", top_p=0.9, seed=0, max_len=64)
    assert ref["n"] == rep["sentences"] and ref["examples"] == decoded[: len(ref["examples"])]
    assert ref["ppl_ratio"] > 0 and "| held-out means | top-p 0.9 |" in (tmp_path / "rep" / "report.md").read_text()
    assert main(["words", str(ckpt), "--data", str(data)]) == 0  # with a word list: rows with and without it
    assert main(argv + ["--iw-refine", "0"]) == 0
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert "nll_refined" not in rep["latent"] and "vs_judge_refined" not in rep["latent"]
    assert set(rep["reconstruction"]) == {"greedy", "beam 4", "greedy, any word", "greedy, refined (10 steps)"}
    assert [(r["strategy"], r["words"]) for r in rep["samples"]] == [
        ("greedy", "known"), ("top-p 0.9", "known"), ("top-p 0.9, best of 4", "known"), ("sample T=1", "known"),
        ("top-p 0.9", "any")]
    assert all(r["invented_rate"] == 0 for r in rep["samples"] if r["words"] == "known")
    assert rep["decoder_reference"]["words"] == "known" and rep["decoder_reference"]["invented_rate"] == 0


def test_report_refuses_a_language_model(tiny_lm_ckpt, one_line):
    one_line(["report", tiny_lm_ckpt, "--device", "cpu"], "no latent space")


def test_report_refuses_bad_counts(tiny_vae_ckpt, one_line):
    for opt, value in (("--iw-refine", "-1"), ("--iw-samples", "0"), ("--samples", "0")):
        one_line(["report", tiny_vae_ckpt, "--device", "cpu", "-n", "3", opt, value], f"{opt} must be between")


def test_report_says_when_no_test_sentence_has_the_words_asked(tiny_vae_ckpt, tiny_data_dir, one_line, capsys):
    argv = ["report", tiny_vae_ckpt, "--device", "cpu", "--data", tiny_data_dir, "-n", "3"]
    one_line(argv + ["--words", "40-50"], "the test split has 0 sentence(s) of 40-50 words; the report needs 2 "
                                         "(set --words MIN-MAX, or --texts FILE)")
    for bad in ("5", "9-3", "a-b", "0-4"):
        with pytest.raises(SystemExit) as e:
            main([str(a) for a in argv] + ["--words", bad])
        assert e.value.code == 2 and "expected MIN-MAX words" in capsys.readouterr().err


def test_report_judge_sentence_count_is_checked_before_any_model_loads(tiny_vae_ckpt, tiny_lm_ckpt, tmp_path,
                                                                       one_line, monkeypatch):
    short = tmp_path / "short.txt"
    short.write_text("a fine film\ngood .\nawful stuff\nthe plot was dull and slow .\n")  # one of four or more words
    loaded = []
    monkeypatch.setattr(SeqVAE, "from_pretrained", classmethod(lambda cls, path, device=None: loaded.append(path)))
    argv = ["report", tiny_vae_ckpt, "--device", "cpu", "--judge", tiny_lm_ckpt, "--texts", short,
            "--out", tmp_path / "rep"]
    one_line(argv, f"the judge checks need at least two sentences of four or more words ({short}: 1)")
    assert loaded == [] and not (tmp_path / "rep").exists()  # no model loaded, nothing written


def test_report_texts_are_read_as_prepare_reads_them(tiny_vae_ckpt, tiny_data_dir, tmp_path, one_line, capsys):
    base = ["report", tiny_vae_ckpt, "--device", "cpu", "--samples", "2", "--iw-samples", "2", "--iw-refine", "0"]
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"the movie was \xff great .\na fine film it was .\n")
    one_line([*base, "--texts", bad], "line 1 is not valid UTF-8")
    one_line([*base, "--texts", tmp_path], "is a directory")
    one = tmp_path / "one.txt"
    one.write_text("the movie was great .\n")
    one_line([*base, "--texts", one], "the report needs at least 2 sentences")  # one line, no note before it
    (tmp_path / "file").write_text("")
    one_line([*base, "--texts", one, "--out", tmp_path / "file"], "is a file")
    (tmp_path / "o" / "report.md").mkdir(parents=True)
    one_line([*base, "--texts", one, "--out", tmp_path / "o"], "is a directory")
    assert not (tmp_path / "o" / "report.json").exists()

    bom = tmp_path / "bom.txt"
    bom.write_bytes("\ufeffthe movie was great .\r\nthe plot was dull and slow .\r\na b\r\n".encode())
    capsys.readouterr()
    assert main([str(a) for a in [*base, "--texts", bom, "--data", tiny_data_dir, "--words", "4-10",
                                  "--out", tmp_path / "r"]]) == 0
    rep = json.loads((tmp_path / "r" / "report.json").read_text())
    assert rep["sentences"] == 2 and "1 of" in rep["note"] and "left out" in rep["note"]
    examples = [e["input"] for e in rep["reconstruction"]["greedy"]["examples"]]
    assert examples[0] == "the movie was great ."  # no byte-order mark in front of it
    assert "-%" not in (tmp_path / "r" / "report.md").read_text()


def test_samples_are_judged_against_every_held_out_sentence(tiny_vae_ckpt, tiny_lm_ckpt, trained_tiny_vae):
    """The judge's checks corrupt only sentences of four or more words; the "x real" ratios divide by the judge's
    perplexity of all the held-out sentences, short ones too."""
    vae = SeqVAE.from_pretrained(tiny_vae_ckpt, device="cpu")
    judge = Judge(SeqVAE.from_pretrained(tiny_lm_ckpt, device="cpu"), "tiny-lm")
    long = [s for s in trained_tiny_vae[2] if len(s.split()) >= 4][:4]
    texts = long + [" ".join(s.split()[:2]) for s in long[:3]]  # three of two words
    rep = quality.build_report(vae, texts, judge=judge, n_samples=3, iw_samples=1, iw_refine=0, show=1)
    every, checked = judge.ppl(texts), judge.ppl(long)
    assert every != pytest.approx(checked, rel=1e-3)  # the short sentences move it
    for row in rep["samples"] + [rep["decoder_reference"]]:
        assert row["ppl_ratio"] == pytest.approx(row["judge_ppl"] / every)
    assert rep["interpolation"]["inner_ppl_ratio"] == pytest.approx(rep["interpolation"]["inner_judge_ppl"] / every)
    j = rep["judge"]
    assert j["real"] == {"ppl": pytest.approx(checked), "sentences": 4} and j["held_out_ppl"] == pytest.approx(every)
    md = quality.to_markdown(rep, "tiny")
    assert f"perplexity {every:.1f} on the real sentences; on the 4 of four or more words" in md
    rep = quality.build_report(vae, long, judge=judge, n_samples=3, iw_samples=1, iw_refine=0, show=1)
    assert rep["judge"]["held_out_ppl"] == rep["judge"]["real"]["ppl"]  # all of four or more words: one figure
    assert "of four or more words" not in quality.to_markdown(rep, "tiny")


def test_the_latent_figures_do_not_depend_on_the_sentences_order(tiny_vae_ckpt, tiny_lm_ckpt, trained_tiny_vae):
    """The same held-out sentences in another order (a shuffled --texts file) give the same IW-NLL, -ELBO, MI and
    paired difference to the judge: each sentence's draws follow from its tokens, not its place."""
    vae = SeqVAE.from_pretrained(tiny_vae_ckpt, device="cpu")
    judge = Judge(SeqVAE.from_pretrained(tiny_lm_ckpt, device="cpu"), "tiny-lm")
    texts = trained_tiny_vae[2][:10]
    a, b = (quality.latent(vae, t, judge, iw_samples=3, seed=0, iw_refine=2) for t in (texts, texts[::-1]))
    for key in ("nll", "nll_refined", "rec", "neg_elbo", "kl", "mi", "mi_se", "au"):
        assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), key
    for key in ("vs_judge", "vs_judge_refined"):
        assert a[key]["mean_diff"] == pytest.approx(b[key]["mean_diff"], rel=1e-5, abs=1e-6), key
    from seqvae.data import SentenceDataset
    from seqvae.metrics import evaluate

    ds = SentenceDataset.from_lists(vae.tokenize(texts))  # keyed by tokens, evaluate draws as SeqVAE.score does
    res = evaluate(vae.model, ds, k=3, seed=0, refine_steps=2, per_sentence=True, noise_by="tokens")
    assert res["per_sentence_nll"] == pytest.approx(vae.score(texts, samples=3, seed=0).tolist(), rel=1e-5)
    assert res["per_sentence_nll_refined"] == pytest.approx(vae.score(texts, samples=3, seed=0, refine=2).tolist(),
                                                            rel=1e-5)


def test_report_texts_takes_all_of_the_file_unless_n_says_otherwise(tiny_vae_ckpt, trained_tiny_vae, tmp_path, capsys):
    """Without -n, every sentence of a --texts file (docs/usage.md), and no note of an -n nobody gave; with -n,
    the first n, or all and a note when the file has fewer."""
    base = ["report", str(tiny_vae_ckpt), "--device", "cpu", "--samples", "2", "--iw-samples", "1", "--iw-refine", "0",
            "--out", str(tmp_path / "r")]
    many = tmp_path / "many.txt"
    many.write_text("\n".join(f"{s} {i}" for i in range(1010) for s in trained_tiny_vae[2][:1]) + "\n")
    for extra, sentences, note in (([], 1010, ""), (["-n", "3"], 3, f"{many} has 1010 sentences: using the first 3 (-n)"),
                                   (["-n", "2000"], 1010, "asked for 2000")):
        capsys.readouterr()
        assert main(base + ["--texts", str(many)] + extra) == 0
        rep = json.loads((tmp_path / "r" / "report.json").read_text())
        assert rep["sentences"] == sentences and (note in rep["note"] if note else rep["note"] == ""), extra
        err = capsys.readouterr().err
        assert note in err if note else ("asked for" not in err and "using the first" not in err), extra


def test_every_rows_diversity_is_of_as_many_texts(tiny_vae_ckpt, trained_tiny_vae):
    """distinct-n falls as a set grows, so the held-out means' row (N texts), the prior rows (n_samples) and the real
    sentences are each measured on their first min(N, n_samples) texts, or they would not compare."""
    vae = SeqVAE.from_pretrained(tiny_vae_ckpt, device="cpu")
    texts = trained_tiny_vae[2][:12]
    assert textscores.distinct_n(texts[:5], 2) != textscores.distinct_n(texts, 2)  # the set's size matters here
    rep = quality.build_report(vae, texts, n_samples=5, iw_samples=1, iw_refine=0, show=12)
    ref = rep["decoder_reference"]
    decoded = ref["examples"]  # all 12 of them (show=12)
    assert len(decoded) == ref["n"] == 12 and ref["distinct_2"] == pytest.approx(textscores.distinct_n(decoded[:5], 2))
    assert ref["diversity_of"] == 5
    assert ref["self_bleu"] == pytest.approx(textscores.self_bleu(decoded[:5]))
    assert all(r["diversity_of"] == 5 == len(r["examples"]) for r in rep["samples"])
    assert rep["real_diversity"] == {"distinct_1": pytest.approx(textscores.distinct_n(texts[:5], 1)),
                                     "distinct_2": pytest.approx(textscores.distinct_n(texts[:5], 2)),
                                     "self_bleu": pytest.approx(textscores.self_bleu(texts[:5])), "diversity_of": 5}
    assert "Diversity of the real sentences" in quality.to_markdown(rep, "tiny")
    rep = quality.build_report(vae, texts, n_samples=20, iw_samples=1, iw_refine=0, show=0)  # fewer held-out
    assert {r["diversity_of"] for r in rep["samples"]} == {12} and rep["decoder_reference"]["diversity_of"] == 12


def _report_err_lines(err: str) -> tuple[list[str], list[str]]:
    """(stage lines, "not measured" lines) of `seqvae report`'s stderr."""
    lines = err.splitlines()
    return ([ln for ln in lines if ln.startswith("seqvae report: [")],
            [ln for ln in lines if ln.startswith("seqvae report: note: not measured")])


def test_a_bare_report_says_what_it_skipped_and_shows_its_stages(tiny_vae_ckpt, tiny_lm_ckpt, trained_tiny_vae,
                                                                  tmp_path, capsys):
    """`seqvae report CKPT` with no --judge and no data dir: one stderr line names what it did not measure and the
    flag or command that adds each (before: nothing; the judge columns were bare '-'), and a line per stage on
    stderr (before: nothing for minutes on the flagship), none of them in the markdown on stdout."""
    texts = tmp_path / "t.txt"
    texts.write_text("\n".join(s for s in trained_tiny_vae[2] if len(s.split()) >= 4) + "\n")
    base = ["report", str(tiny_vae_ckpt), "--device", "cpu", "--texts", str(texts), "--samples", "2",
            "--iw-samples", "1", "--iw-refine", "0"]
    assert main(base) == 0
    out, err = capsys.readouterr()
    stages, skipped = _report_err_lines(err)
    assert len(skipped) == 1, err
    assert "--judge" in skipped[0] and "--data" in skipped[0] and "fit-prior" in skipped[0]
    assert len(stages) >= 5 and stages[0].startswith("seqvae report: [1/") and "latent" in stages[-1]
    assert "seqvae report:" not in out and "Not measured: " in out  # the markdown says it too
    assert main(base + ["--judge", str(tiny_lm_ckpt)]) == 0
    out, err = capsys.readouterr()
    skipped = _report_err_lines(err)[1]
    assert len(skipped) == 1 and "--judge" not in skipped[0] and "--data" in skipped[0]


def test_report_counts_a_repeated_line_of_texts_once(tiny_vae_ckpt, tmp_path, one_line, capsys):
    """--texts with a sentence repeated: it is one held-out sentence (before: kept twice, silently: a pair of it
    interpolated to itself, and the MI over 'N' sentences of which fewer differ), and a note says how many
    repeats were left out; a file of one sentence repeated is too few, said as such."""
    base = ["report", tiny_vae_ckpt, "--device", "cpu", "--samples", "2", "--iw-samples", "1", "--iw-refine", "0"]
    dup = tmp_path / "dup.txt"
    dup.write_text("the movie was great .\nthe plot was dull .\nthe movie was great .\nthe  movie was great .\n")
    assert main([str(a) for a in [*base, "--texts", dup, "--out", tmp_path / "r"]]) == 0
    rep = json.loads((tmp_path / "r" / "report.json").read_text())
    assert rep["sentences"] == 2 and "2 of" in rep["note"] and "repeat" in rep["note"]
    assert "repeat" in capsys.readouterr().err
    same = tmp_path / "same.txt"
    same.write_text("the movie was great .\n" * 3)
    one_line([*base, "--texts", same], f"the report needs at least 2 sentences, {same} has 1 (after 2 repeated")


def test_report_names_its_judge_by_the_weights(tiny_vae_ckpt, tiny_lm_ckpt, trained_tiny_vae, tmp_path):
    """report.json records the judge's weights (sha256 of its model.safetensors) beside its path, and the IW
    settings: compare_reports needs both to say whether two reports' judged columns compare."""
    from seqvae import atomic

    texts = tmp_path / "t.txt"
    texts.write_text("\n".join(s for s in trained_tiny_vae[2] if len(s.split()) >= 4) + "\n")
    assert main(["report", str(tiny_vae_ckpt), "--device", "cpu", "--texts", str(texts), "--samples", "2",
                 "--iw-samples", "3", "--iw-refine", "2", "--judge", str(tiny_lm_ckpt),
                 "--out", str(tmp_path / "r")]) == 0
    rep = json.loads((tmp_path / "r" / "report.json").read_text())
    assert rep["judge"]["weights_sha256"] == atomic.file_sha256(tiny_lm_ckpt / checkpoint.WEIGHTS_FILE)
    assert rep["judge"]["checkpoint"] == str(tiny_lm_ckpt)
    assert rep["latent"]["iw_samples"] == 3 and rep["latent"]["refine_steps"] == 2


def test_report_says_when_a_texts_sentence_is_longer_than_it_decodes(tiny_vae_ckpt, trained_tiny_vae, tmp_path,
                                                                     capsys):
    """--texts takes every sentence of the file; one over the tokens the report decodes (quality.MAX_TOKENS) cannot
    be reconstructed whole: a note says how many and how to leave them out (before: a low BLEU and no word why)."""
    words = trained_tiny_vae[2][0].split()
    f = tmp_path / "long.txt"
    f.write_text("\n".join(trained_tiny_vae[2][:3] + [" ".join(words * (quality.MAX_TOKENS // len(words) + 1))]) + "\n")
    base = ["report", str(tiny_vae_ckpt), "--device", "cpu", "--samples", "2", "--iw-samples", "1", "--iw-refine", "0",
            "--texts", str(f), "--out", str(tmp_path / "r")]
    assert main(base) == 0
    note = json.loads((tmp_path / "r" / "report.json").read_text())["note"]
    assert f"1 of the 4 sentences is over {quality.MAX_TOKENS} tokens" in note and "--words" in note
    assert f"over {quality.MAX_TOKENS} tokens" in capsys.readouterr().err
    assert main(base + ["--words", "1-30"]) == 0
    assert "tokens" not in json.loads((tmp_path / "r" / "report.json").read_text())["note"]
