"""steer: moving a sentence's code along the LR head's direction, the flip report, one-line CLI
errors. A tiny untrained checkpoint with an LR head fitted on a handful of fake reviews: fast."""

import json
import shutil

import numpy as np
import pytest

from seqvae.cli import main
from seqvae.sentiment import steer as S
from seqvae.sentiment.heads import load_head

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def with_head(tiny, tmp_path_factory):
    """(checkpoint with an LR head, data root, the model)."""
    from seqvae.api import SeqVAE

    ckpt = tmp_path_factory.mktemp("steer") / "ckpt"
    shutil.copytree(tiny[0], ckpt, ignore=shutil.ignore_patterns("*classifier.*", "features"))
    assert main(["classify", "fit", str(ckpt), "--data-root", str(tiny[1]), "--no-progress", "--no-cache"]) == 0
    return ckpt, tiny[1], SeqVAE.from_pretrained(ckpt, device="cpu")


def test_unigram_f1():
    assert S.unigram_f1([], []) == 1.0 and S.unigram_f1(["a"], []) == 0.0
    assert S.unigram_f1("a b b c".split(), "b b d".split()) == pytest.approx(2 * (2 / 4) * (2 / 3) / (2 / 4 + 2 / 3))


def test_steer(with_head, capsys):
    ckpt, _, vae = with_head
    capsys.readouterr()
    head = load_head(ckpt)
    r0 = S.steer(vae, head, "the plot was dull .", to="positive", strength=0.0)
    assert r0.steered == r0.reconstruction and r0.overlap_f1 == 1.0 and r0.distance == 0.0
    assert r0.p_target_latent == pytest.approx(r0.p_target_before)
    r = S.steer(vae, head, "the plot was dull .", to="positive", strength=3.0)
    assert r.p_target_latent > r0.p_target_before  # moving along the direction raises p(target)
    assert r.distance == pytest.approx(3.0 * head.meta["direction_std"])
    neg = S.steer(vae, head, "the plot was dull .", to="negative", strength=3.0, unit="l2")
    assert neg.distance == 3.0 and neg.p_target_latent > 1 - r0.p_target_before
    assert main(["steer", str(ckpt), "the plot was dull .", "--strength", "0", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["steered"] == out["reconstruction"]


def test_steering_report(with_head, tmp_path, capsys):
    ckpt, root, vae = with_head
    head = load_head(ckpt)
    sentences = ["the plot was dull .", "a moving and wonderful film .", "it was fine ."]
    rep = S.steering_report(vae, head, sentences, strengths=(0.0, 50.0))
    assert rep["sentences"] == 3 and len(rep["examples"]) == 3
    zero, far = rep["strengths"]["0"], rep["strengths"]["50"]
    assert zero["mean_overlap_f1"] == 1.0  # strength 0: the reconstruction itself (its flips are the noise floor)
    for row in rep["examples"]:  # toward the class the head does not give the sentence
        assert row[0]["to"] != row[0]["label_before"] and row[1]["p_target_latent"] > row[0]["p_target_latent"]
        assert row[0]["steered"] == row[0]["reconstruction"]
    for j, r in enumerate((zero, far)):
        assert r["flip_rate"] == np.mean([row[j]["flipped"] for row in rep["examples"]])
        assert r["flipped_and_close_rate"] == np.mean([row[j]["flipped"] and row[j]["overlap_f1"] >= 0.5
                                                       for row in rep["examples"]])

    capsys.readouterr()
    out = tmp_path / "steer.json"
    assert main(["steer", str(ckpt), "--report", "4", "--strengths", "0,2", "--data-root", str(root),
                 "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[2].startswith("| 0 |") and "| 1.00 |" in table.splitlines()[2]
    saved = json.loads(out.read_text())
    assert saved["sentences"] == 4 and set(saved["strengths"]) == {"0", "2"}


def test_report_sentences_come_from_both_classes(with_head):
    """The stratified draw comes back in file order (every negative review first): the report shuffles it."""
    from conftest import IMDB_NEG, IMDB_POS

    sentences = S.report_sentences(8, data_root=with_head[1])
    assert len(sentences) == 8
    pos = sum(any(w in s.lower().split() for w in IMDB_POS) for s in sentences)
    neg = sum(any(w in s.lower().split() for w in IMDB_NEG) for s in sentences)
    assert pos + neg == 8 and pos >= 2 and neg >= 2


def test_one_line_errors(tiny, with_head, tmp_path, one_line):
    bare = tmp_path / "bare"
    shutil.copytree(tiny[0], bare, ignore=shutil.ignore_patterns("*classifier.*", "features"))

    one_line(["steer", bare, "a fine film"], "no classifier head")
    one_line(["steer", bare], "either a text to steer or --report")
    one_line(["steer", bare, "a fine film", "--report", "3"], "either a text to steer or --report")
    one_line(["steer", bare, "--report", "3", "--strengths", "1,x"], "--strengths")
    for bad in ("nan", "inf", "-1", "1e39"):  # --to gives the direction; a strength is a distance
        one_line(["steer", with_head[0], "a fine film", "--strength", bad], "strength must be a number in [0, 1000]")
    one_line(["steer", with_head[0], "a fine film", "--max-len", "1000000000"], "--max-len must be between 1 and")
    ckpt = with_head[0]
    for name in ("classifier.json", "model.safetensors"):  # the report never replaces a file of the checkpoint
        before = (ckpt / name).read_bytes()
        one_line(["steer", ckpt, "--report", "2", "--out", ckpt / name], "is a file of the checkpoint")
        assert (ckpt / name).read_bytes() == before


def test_steer_checks_the_head_belongs_to_the_model(tiny, with_head, tmp_path, one_line, capsys):
    import dataclasses

    import torch

    from seqvae import checkpoint
    from seqvae.model import SentenceVAE

    vae = with_head[2]
    for name, dim in (("other", vae.latent_dim), ("narrow", vae.latent_dim + 2)):
        d = tmp_path / name
        torch.manual_seed(5)
        model = SentenceVAE(dataclasses.replace(vae.model.cfg, latent_dim=dim))
        checkpoint.save(d, model, vae.tokenizer)
        for f in with_head[0].glob("classifier.*"):
            shutil.copy(f, d / f.name)
    one_line(["steer", tmp_path / "narrow", "the plot was dull ."], "reads codes of 4 dimensions, this model's have 6")
    one_line(["steer", tmp_path / "other", "--report", "2", "--data-root", with_head[1]], "fitted on other weights")
    capsys.readouterr()
    assert main(["steer", str(tmp_path / "other"), "the plot was dull ."]) == 0  # one text: a warning, as predict
    assert "seqvae steer: warning: the classifier head was fitted on other weights" in capsys.readouterr().err


def test_steering_moves_mu_along_the_direction_by_the_distance_and_decodes_there(with_head, monkeypatch):
    """Derived apart from the head's arrays: d = (coef / std) / |coef / std|; the codes decoded are
    μ (from encode) and μ ± distance · d, and the logit moves by ± distance · |coef / std|."""
    ckpt, _, vae = with_head
    head = load_head(ckpt)
    g = head.coef / head.std
    text = "the plot was dull ."
    mu = vae.encode(text).mu[0].double().numpy()
    decoded, decode = [], vae.decode
    monkeypatch.setattr(vae, "decode", lambda z, **kw: decoded.append(z.double().numpy()) or decode(z, **kw))
    for to, strength, unit, sign, per in [("positive", 2.0, "std", 1, head.meta["direction_std"]),
                                          ("negative", 1.5, "l2", -1, 1.0)]:
        decoded.clear()
        r = S.steer(vae, head, text, to=to, strength=strength, unit=unit)
        (z,) = decoded
        np.testing.assert_allclose(z[0], mu, atol=1e-6)
        np.testing.assert_allclose(z[1] - z[0], sign * strength * per * g / np.linalg.norm(g), atol=1e-5)
        assert r.distance == pytest.approx(strength * per)
        dlogit = head.decision(z[1:])[0] - head.decision(z[:1])[0]
        assert dlogit == pytest.approx(sign * strength * per * np.linalg.norm(g), rel=1e-4)
        assert (r.reconstruction, r.steered) == tuple(decode(torch_of(z), strategy="greedy", max_len=40))


def torch_of(z):
    import torch

    return torch.from_numpy(z).float()
