"""Scoring a saved head (sentiment/evaluate.py, `seqvae classify evaluate`)."""

import json
import shutil

import numpy as np
import pytest

from seqvae.sentences import review_to_sentences
from seqvae.sentiment import evaluate as H
from seqvae.sentiment.config import ClassifyError
from seqvae.sentiment.data import load_reviews
from seqvae.sentiment.features import sentence_features
from seqvae.sentiment.heads import load_head
from seqvae.sentiment.setmlp import SetHead


def test_logit_metrics_on_a_hand_made_example():
    z, y = np.array([2.0, -1.0, 0.5, -3.0, 0.0]), np.array([1, 1, 0, 0, 1])
    m = H.logit_metrics(z, y)
    assert m["accuracy"] == 40.0  # right: 2 (pos), -3 (neg); a logit of 0 reads as negative
    ll = np.mean([np.log1p(np.exp(-2.0)), np.log1p(np.exp(1.0)), np.log1p(np.exp(0.5)), np.log1p(np.exp(-3.0)),
                  np.log(2.0)])
    assert m["log_loss"] == pytest.approx(ll, abs=1e-4)
    s = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    conf = [s(2.0), s(1.0), s(0.5), s(3.0), 0.5]  # bins 7, 4, 2, 9 and 0: one text each
    assert m["ece"] == pytest.approx(100 * np.mean(np.abs(np.array([1, 0, 0, 1, 0]) - conf)), abs=0.01)
    assert m["confidence"] == pytest.approx(100 * np.mean(conf), abs=0.01)
    two = H.logit_metrics(np.array([3.0, 3.0]), np.array([1, 0]))  # one bin, half right at 95% confidence
    assert two["ece"] == pytest.approx(100 * abs(0.5 - s(3.0)), abs=0.01)
    with pytest.raises(ClassifyError, match="nothing to score"):
        H.logit_metrics(np.zeros(0), np.zeros(0))


def test_snippets_are_ordered_sentences_of_long_enough_reviews_and_reproducible():
    texts = ["One. Two. Three.", "Alone.", "A b c. D e f.", "First.<br /><br />Second. Third. Fourth."]
    y = np.array([1, 0, 1, 0])
    snips, ys = H.snippet_texts(texts, y, 2, seed=3)
    assert len(snips) == 3 and list(ys) == [1, 1, 0]  # "Alone." has no two sentences
    for snip, text in zip(snips, [texts[0], texts[2], texts[3]]):
        sents, got = review_to_sentences(text), review_to_sentences(snip)
        assert len(got) == 2 and all(g in sents for g in got) and sents.index(got[0]) < sents.index(got[1])
    again, ys_again = H.snippet_texts(texts, y, 2, seed=3)
    assert again == snips and list(ys_again) == list(ys)
    assert any(H.snippet_texts(texts, y, 2, seed=s)[0] != snips for s in range(4, 12))  # the seed matters
    assert H.snippet_texts(texts, y, 9)[0] == []
    with pytest.raises(ClassifyError):
        H.snippet_texts(texts, y, 0)


def test_evaluate_cli_scores_the_saved_head_as_predict_does(tiny, tmp_path, capsys, one_line):
    from seqvae.api import SeqVAE
    from seqvae.cli import main
    from seqvae.sentiment.calibrate import length_scale

    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny[0], ckpt)
    opts = [str(ckpt), "--no-progress", "--data-root", str(tiny[1]), "--head", "set"]
    assert main(["classify", "fit", *opts, "--no-cache", "--unit", "sentence", "--members", "2"]) == 0
    capsys.readouterr()
    assert main(["classify", "evaluate", *opts, "--json", "--snippets", "1,2"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["texts"] for r in rows] == ["reviews", 1, 2]
    head, vae = load_head(ckpt, "set"), SeqVAE.from_pretrained(ckpt)
    texts, y = load_reviews("test", data_root=tiny[1])
    S = sentence_features(vae, texts, progress=False)
    z = head.logits(S)
    assert rows[0]["n"] == len(y) and rows[0]["raw"]["accuracy"] == pytest.approx(100 * ((z > 0) == y).mean(),
                                                                                     abs=1e-3)
    want = H.logit_metrics(z * length_scale(head.meta["length_scales"], np.diff(S.offsets)), y)
    assert rows[0]["calibrated"] == want and rows[0]["raw"]["log_loss"] != want["log_loss"]
    n_long = sum(len(review_to_sentences(t)) >= 2 for t in texts)
    assert rows[1]["n"] == len(y) and rows[2]["n"] == n_long < len(y)  # the fixture's reviews have 1-3 sentences
    assert rows[1]["units_per_text"] == 1.0
    assert main(["classify", "evaluate", *opts]) == 0  # the markdown table, from the cache this time
    out = capsys.readouterr().out
    assert out.startswith("| texts |") and "| whole reviews | 20 |" in out and "→" in out
    one_line(["classify", "evaluate", *opts, "--snippets", "0"], "--snippets")
    one_line(["classify", "evaluate", *opts, "--snippets", "1,x"], "--snippets")
    one_line(["classify", "evaluate", ckpt], "no classifier head")  # the linear head was never fitted here
    cfg = json.loads((ckpt / SetHead.files[1]).read_text())
    (ckpt / SetHead.files[1]).write_text(json.dumps({**cfg, "model_sha256": "0" * 64}))
    one_line(["classify", "evaluate", *opts], "other weights")
