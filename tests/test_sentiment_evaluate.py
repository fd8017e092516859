"""Scoring a saved head (seqvae/head_eval.py, `seqvae classify --evaluate`)."""

import json
import shutil

import numpy as np
import pytest
import torch

from seqvae import classify as C
from seqvae import head_eval as H
from seqvae.corpus import review_to_sentences
from seqvae.features import ClassifyError, sentence_features


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
    from seqvae.calibrate import length_scale
    from seqvae.cli import main

    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny[0], ckpt)
    base = ["classify", str(ckpt), "--no-progress", "--data-root", str(tiny[1]), "--head", "set"]
    assert main(base + ["--train", "--no-cache"]) == 0
    capsys.readouterr()
    assert main(base + ["--evaluate", "--json", "--snippets", "1,2"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["texts"] for r in rows] == ["reviews", 1, 2]
    head, vae = C.SetMLP.load(ckpt), SeqVAE.from_pretrained(ckpt)
    texts, y = C.load_reviews("test", data_root=tiny[1])
    S = sentence_features(vae, texts, progress=False)
    z = head.decision(S)
    assert rows[0]["n"] == len(y) and rows[0]["raw"]["accuracy"] == pytest.approx(100 * ((z > 0) == y).mean(),
                                                                                     abs=1e-3)
    want = H.logit_metrics(z * length_scale(head.meta["length_scales"], np.diff(S.offsets)), y)
    assert rows[0]["calibrated"] == want and rows[0]["raw"]["log_loss"] != want["log_loss"]
    n_long = sum(len(review_to_sentences(t)) >= 2 for t in texts)
    assert rows[1]["n"] == len(y) and rows[2]["n"] == n_long < len(y)  # the fixture's reviews have 1-3 sentences
    assert rows[1]["units_per_text"] == 1.0
    assert main(base + ["--evaluate"]) == 0  # the markdown table, from the cache this time
    out = capsys.readouterr().out
    assert out.startswith("| texts |") and "| whole reviews | 20 |" in out and "→" in out
    one_line(base + ["--evaluate", "--snippets", "0"], "--snippets")
    one_line(base + ["--train", "--snippets", "1"], "--snippets")
    one_line(["classify", ckpt, "--evaluate", "--head", "review"], "no classifier head")
    cfg = json.loads((ckpt / C.SET_HEAD_CONFIG).read_text())
    (ckpt / C.SET_HEAD_CONFIG).write_text(json.dumps({**cfg, "model_sha256": "0" * 64}))
    one_line(base + ["--evaluate"], "other weights")


def test_a_finetuned_head_is_scored_through_its_own_encoder_and_cached_by_its_weights(tiny, tmp_path):
    from seqvae.api import SeqVAE
    from seqvae.finetune import FinetunedHead

    vae = SeqVAE.from_pretrained(tiny[0])
    texts, y = C.load_reviews("test", data_root=tiny[1])
    S = sentence_features(vae, texts, progress=False)
    set_head = C.fit_set_mlp(S, y, seed=0)
    heads = []
    for scale in (1.5, -1.0):  # two tuned encoders: the frozen weights, stretched or flipped
        state = {k: v * scale if k.startswith("to_stats") else v for k, v in vae.model.encoder.state_dict().items()}
        heads.append(FinetunedHead(state, set_head))
    frozen = vae.model.encoder.state_dict()["to_stats.weight"]
    assert not torch.equal(heads[0].encoder_state["to_stats.weight"], frozen)  # the checkpoint is left alone
    cache = tmp_path / "cache"
    for ft in heads:
        rows = H.evaluate_head(vae, ft, texts, y, cache_dir=cache, progress=False)
        want = (ft.predict(vae, texts) == y).mean()
        assert rows[0]["raw"]["accuracy"] == pytest.approx(100 * want, abs=1e-3) and rows[0]["calibrated"] is None
        again = H.evaluate_head(vae, ft, texts, y, cache_dir=cache, progress=False)
        assert again[0]["raw"] == rows[0]["raw"]
    assert len(list(cache.glob("tuned-test-sentences-*.npz"))) == 2  # one file per tuned encoder
    assert not list(cache.glob("vae-*"))
