"""Length calibration (sentiment/calibrate.py): a text of n sentences gets p = σ(s_n · logit)."""

import json
import shutil

import numpy as np
import pytest

from seqvae.sentiment import calibrate as K
from seqvae.sentiment import features as Fe
from seqvae.sentiment.config import ClassifyError
from seqvae.sentiment.heads import load_head
from seqvae.sentiment.linear import LinearHead


def test_best_scale_recovers_the_true_temperature():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, 200_000)
    y = (rng.random(len(z)) < 1 / (1 + np.exp(-0.3 * z))).astype(np.int64)  # labels drawn at σ(0.3 z)
    s = K.best_scale(z, y)
    assert s == pytest.approx(0.3, abs=0.01)
    m = z * (2 * y - 1)  # the log-loss's derivative in s is zero there
    assert abs(np.mean(m / (1 + np.exp(s * m)))) < 1e-6
    assert K.best_scale(z, 1 - y) > 0  # a head that is always wrong still gets a positive scale (never flips)
    assert K.best_scale(z, (z > 0).astype(np.int64)) == K.MAX_SCALE  # perfectly separated: capped, not infinite
    assert K.best_scale(np.zeros(10), np.arange(10) % 2) == 1.0  # no evidence: nothing to scale


def test_snippets_and_scale_lookup_on_a_hand_made_example():
    mu = np.arange(6, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)
    S = Fe.SentenceSet(mu, np.array([0, 0, 0, 1, 2, 2]), 3)  # reviews of 3, 1 and 2 sentences
    part, keep = K.snippets(S, 2, np.random.default_rng(0))
    np.testing.assert_array_equal(keep, [0, 2])  # the one-sentence review has no 2-sentence snippet
    assert part.n_reviews == 2 and list(part.owner) == [0, 0, 1, 1]
    assert set(part.mu[:2, 0]) <= {0, 1, 2} and part.mu[0, 0] < part.mu[1, 0]  # from review 0, in order
    np.testing.assert_array_equal(part.mu[2:, 0], [4, 5])
    np.testing.assert_array_equal(K.length_scale([0.2, 0.5, 0.9], np.array([1, 2, 3, 7, 0])),
                                  [0.2, 0.5, 0.9, 0.9, 1.0])  # beyond K: s_K; no sentence: 1
    np.testing.assert_array_equal(K.length_scale(None, np.array([1, 5])), [1.0, 1.0])


def _reviews(n, rng, n_sent=8, Z=4):
    """Reviews of n_sent sentences whose means lean, weakly and noisily, to the review's sign."""
    y = np.arange(n) % 2
    mu = rng.normal(size=(n * n_sent, Z)).astype(np.float32)
    mu[:, 0] += 0.6 * np.repeat(2 * y - 1, n_sent)
    return Fe.SentenceSet(mu, np.repeat(np.arange(n), n_sent), n), y


def test_scales_grow_with_the_evidence_and_fix_single_sentence_overconfidence():
    rng = np.random.default_rng(1)
    S, y = _reviews(2000, rng)
    head = LinearHead.fit(S, y)
    scales = K.fit_length_scales(head, S, y, max_units=8)
    assert len(scales) == 8 and scales[0] < 0.5 * scales[-1]  # one sentence: far less sure
    assert all(a <= b + 0.05 for a, b in zip(scales, scales[1:]))
    T, y_t = _reviews(2000, np.random.default_rng(2))  # fresh reviews: calibrated on 1-sentence snippets
    one, keep = K.snippets(T, 1, np.random.default_rng(3))
    z, yy = head.logits(one), y_t[keep]

    def loss(v):
        return np.mean(np.logaddexp(0, -v * (2 * yy - 1)))

    assert loss(scales[0] * z) < loss(z) - 0.05
    with pytest.raises(ClassifyError, match="both classes"):
        K.fit_length_scales(head, S, np.zeros(len(y)))


def test_calibrate_cli_adds_scales_that_predict_applies(tiny, tmp_path, capsys):
    from seqvae.cli import main

    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny[0], ckpt)
    opts = [str(ckpt), "--no-progress", "--data-root", str(tiny[1]), "--no-cache"]
    assert main(["classify", "fit", *opts]) == 0
    capsys.readouterr()
    head = load_head(ckpt)
    fitted = head.meta.pop("length_scales")
    assert 1 <= len(fitted) <= 3 and all(s > 0 for s in fitted)  # the fixture's reviews have 1-3 sentences
    head.meta.pop("length_calibration")
    head.save(ckpt)  # as a head saved before calibration existed
    texts = ["The movie was great.", "The plot was dull. The acting was boring."]
    assert main(["classify", "predict", str(ckpt), *texts, "--json"]) == 0
    cap = capsys.readouterr()
    raw = [r["p_positive"] for r in json.loads(cap.out)]
    assert "seqvae classify: note: this head has no length calibration" in cap.err and "seqvae classify calibrate" in cap.err
    assert main(["classify", "calibrate", *opts]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["length_scales"] == fitted and load_head(ckpt).meta["length_scales"] == fitted
    assert main(["classify", "predict", str(ckpt), *texts, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    z = np.log(np.array(raw) / (1 - np.array(raw)))
    want = 1 / (1 + np.exp(-np.array([fitted[0], fitted[min(2, len(fitted)) - 1]]) * z))
    np.testing.assert_allclose([r["p_positive"] for r in rows], want, rtol=1e-6)
    assert [r["label"] for r in rows] == ["positive" if p > 0.5 else "negative" for p in raw]  # verdicts kept
    from seqvae.api import SeqVAE

    vae = SeqVAE.from_pretrained(ckpt)  # steering reads one sentence as --texts does: calibrated
    from seqvae.sentiment.steer import steer

    r = steer(vae, load_head(ckpt), texts[0], to="positive", strength=0.0)
    assert r.p_target_before == pytest.approx(rows[0]["p_positive"], abs=1e-6)
    # a head fitted on other weights is not calibrated against this model
    cfg = json.loads((ckpt / LinearHead.files[1]).read_text())
    (ckpt / LinearHead.files[1]).write_text(json.dumps({**cfg, "model_sha256": "0" * 64}))
    assert main(["classify", "calibrate", *opts]) == 2
    assert "other weights" in capsys.readouterr().err
