"""reviewcode: the half split, a review code learned without labels, its head's round trip and CLI."""

import json
import shutil

import numpy as np
import pytest

from seqvae import classify as C
from seqvae import features as Fe
from seqvae import reviewcode as R

pytest.importorskip("sklearn")


def test_split_halves_on_a_hand_made_example():
    # reviews of 1, 2, 3, 4 and 0 sentences
    owner = np.array([0, 1, 1, 2, 2, 2, 3, 3, 3, 3])
    S = Fe.SentenceSet(np.arange(10, dtype=np.float32)[:, None], owner, 5)
    rows, view = R.split_halves(S, np.random.default_rng(0))
    assert sorted(rows.tolist()) == list(range(10))  # every sentence once
    np.testing.assert_array_equal(view // 2, owner[rows])  # each stays in its own review
    counts = np.bincount(view, minlength=10).reshape(5, 2)
    np.testing.assert_array_equal(counts, [[0, 1], [1, 1], [1, 2], [2, 2], [0, 0]])  # floor(n/2), the rest
    again, _ = R.split_halves(S, np.random.default_rng(0))
    np.testing.assert_array_equal(again, rows)  # reproducible under a seed
    splits = {tuple(sorted(rows[view == 6].tolist())) for rows, view in
              (R.split_halves(S, np.random.default_rng(s)) for s in range(30))}
    assert len(splits) == 6  # review 3's first half: any 2 of its 4 sentences, all C(4, 2) of them seen


def _shared_sign_reviews(n, seed, d=8):
    """Reviews of 4-10 "sentences" in d dims; each review has a hidden sign s, and every sentence
    says it only through the sign of x0 * x1 (agreeing with s 90% of the time); the other
    coordinates are noise. No linear function of the mean sentence can read s."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(4, 11, n)
    owner = np.repeat(np.arange(n), sizes)
    s = rng.choice([-1.0, 1.0], n)
    agree = np.where(rng.random(len(owner)) < 0.9, 1.0, -1.0)
    mu = rng.normal(size=(len(owner), d))
    mu[:, 1] = np.abs(mu[:, 1]) * np.sign(mu[:, 0]) * s[owner] * agree
    return Fe.SentenceSet(mu.astype(np.float32), owner, n), (s > 0).astype(np.int64)


def test_review_code_learns_what_a_review_says_throughout_without_labels(tmp_path):
    import torch

    U, _ = _shared_sign_reviews(3000, 0)  # unlabelled: the labels are thrown away
    S, y = _shared_sign_reviews(60, 1)    # 60 labels
    T, y_t = _shared_sign_reviews(1000, 2)
    state = torch.random.get_rng_state()
    coder = R.fit_review_encoder(U, epochs=20, batch_reviews=128, hidden=64, dim=16, lr=3e-3, seed=0, progress=False)
    assert torch.equal(torch.random.get_rng_state(), state)  # seeded without touching the global RNG
    assert coder.meta["trained_on"] == 3000 and coder.meta["loss"][-1] < coder.meta["loss"][0]
    head = R.fit_review_head(S, y, coder, seed=0)
    code_acc = (head.predict(T) == y_t).mean()
    mean_lr = C.fit_linear_head(Fe.pool(S.mu, S.mu, S.owner, len(S), "mean"), y, seed=0)
    mean_acc = (mean_lr.predict(Fe.pool(T.mu, T.mu, T.owner, len(T), "mean")) == y_t).mean()
    untrained = R.fit_review_encoder(U, epochs=1, batch_reviews=3000, hidden=64, dim=16, lr=1e-12, seed=0,
                                     progress=False)  # one step at a negligible rate: an untrained encoder
    raw_acc = (R.fit_review_head(S, y, untrained, seed=0).predict(T) == y_t).mean()
    assert code_acc > 0.9 and mean_acc < 0.65 and raw_acc < 0.75, (code_acc, mean_acc, raw_acc)
    again = R.fit_review_encoder(U, epochs=20, batch_reviews=128, hidden=64, dim=16, lr=3e-3, seed=0, progress=False)
    np.testing.assert_array_equal(again.embed(T), coder.embed(T))  # reproducible
    # a review with no sentence gets the zero code
    empty = Fe.SentenceSet(np.zeros((0, 8), np.float32), np.zeros(0, np.int64), 2)
    np.testing.assert_array_equal(coder.embed(empty), np.zeros((2, 16), np.float32))
    # save / load round trip
    head.meta["note"] = "kept"
    head.save(tmp_path)
    back = R.ReviewCodeHead.load(tmp_path)
    np.testing.assert_allclose(back.predict_proba(T), head.predict_proba(T), atol=1e-12)
    assert back.meta["note"] == "kept" and back.encoder.meta["trained_on"] == 3000 and back.linear.meta["C"] > 0
    cfg = json.loads((tmp_path / R.REVIEW_HEAD_CONFIG).read_text())
    cfg["encoder"]["dim"] = 8  # a config that does not fit the weights
    (tmp_path / R.REVIEW_HEAD_CONFIG).write_text(json.dumps(cfg))
    from seqvae.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="inconsistent review classifier head"):
        R.ReviewCodeHead.load(tmp_path)


def test_review_encoder_refuses_what_it_cannot_train_on():
    one = Fe.SentenceSet(np.zeros((3, 2), np.float32), np.array([0, 1, 2]), 3)  # no review has two sentences
    with pytest.raises(C.ClassifyError, match="two or more sentences"):
        R.fit_review_encoder(one, progress=False)
    U, _ = _shared_sign_reviews(10, 0)
    for bad in ({"epochs": 0}, {"batch_reviews": 1}, {"temperature": 0.0}):
        with pytest.raises(C.ClassifyError):
            R.fit_review_encoder(U, progress=False, **bad)


def test_review_head_cli_and_curve_row(tiny, tmp_path, capsys):
    from seqvae.checkpoint import CheckpointError
    from seqvae.cli import main

    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny[0], ckpt)
    with pytest.raises(CheckpointError, match="--head review"):
        R.ReviewCodeHead.load(ckpt)
    argv = ["classify", str(ckpt), "--head", "review", "--no-progress", "--data-root", str(tiny[1])]
    assert main(argv + ["--train", "--no-cache", "--review-epochs", "2"]) == 0
    saved = json.loads(capsys.readouterr().out)
    assert len(saved["saved"]) == 2 and saved["encoder"]["epochs"] == 2
    assert saved["encoder"]["unlabelled_reviews"] == 40 + len(C.load_unlabelled(data_root=tiny[1]))
    texts = ["The movie was great. The plot was dull.", "The acting was boring."]
    assert main(argv + ["--texts", *texts, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    from seqvae.api import SeqVAE

    head = R.ReviewCodeHead.load(ckpt)
    z = head.linear.decision(head.encoder.embed(Fe.sentence_features(SeqVAE.from_pretrained(ckpt), texts,
                                                                    progress=False)))
    s = head.meta["length_scales"]  # fitted with the head; the texts have 2 and 1 sentences
    np.testing.assert_allclose([r["p_positive"] for r in rows], 1 / (1 + np.exp(-np.array([s[1], s[0]]) * z)),
                               atol=1e-6)
    # the curve row: one encoder for every draw, trained on unlabelled + train texts
    out = tmp_path / "curve"
    assert main(["classify", str(ckpt), "--curve", "--out", str(out), "--data-root", str(tiny[1]), "--budgets",
                 "10,1000", "--draws", "2", "--no-mlp", "--no-set", "--review-code",
                 "--review-epochs", "2", "--max-unlabelled-reviews", "10", "--no-progress",
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    res = json.loads((out / "curve.json").read_text())
    assert set(res["methods"]) == {"vae_lr", "vae_review_lr", "untrained_lr", "untrained_review_lr", "tfidf_lr"}
    assert res["review_code"] == {"epochs": 2}
    for tag in ("vae", "untrained"):  # one coder per encoder, on its own sentence means
        assert res["features"][f"{tag}_review_code"]["unlabelled_reviews"] == 10 + 40
    assert [len(res["methods"]["vae_review_lr"]["budgets"][b]["runs"]) for b in ("10", "40")] == [2, 1]
    assert "review code + LR" in (out / "curve.md").read_text()
    capsys.readouterr()
    assert main(argv + ["--train", "--review-epochs", "0"]) == 2
    assert capsys.readouterr().err.strip() == "seqvae: error: --review-epochs must be >= 1"


def test_seed_script_reproduces_the_curve_row(tiny, tmp_path, capsys):
    import runpy
    from pathlib import Path

    from seqvae.cli import main as cli

    main = runpy.run_path(str(Path(__file__).resolve().parents[1] / "scripts" / "review_code_seeds.py"))["main"]
    ckpt, root = tiny
    common = ["--data-root", str(root), "--budgets", "10,1000", "--draws", "2", "--cache-dir", str(tmp_path / "c")]
    assert cli(["classify", str(ckpt), "--curve", "--out", str(tmp_path / "curve"), "--no-baselines", "--no-mlp",
                "--no-set", "--review-code", "--review-epochs", "2", "--no-progress", *common]) == 0
    row = json.loads((tmp_path / "curve" / "curve.json").read_text())["methods"]["vae_review_lr"]["budgets"]
    assert main([str(ckpt), "--seeds", "0,1", "--epochs", "2", "--json", str(tmp_path / "s.json"), *common]) == 0
    res = json.loads((tmp_path / "s.json").read_text())
    assert res["scored_on"] == "test" and set(res["methods"]) == {"epochs2_seed0", "epochs2_seed1"}
    for b in ("10", "40"):  # seed 0 is the curve's coder: the same runs, draw for draw
        assert res["methods"]["epochs2_seed0"]["budgets"][b]["runs"] == row[b]["runs"]
    assert "2 epochs, all 2 coders" in capsys.readouterr().out
    assert main([str(ckpt), "--dev", "--seeds", "0", "--epochs", "2", "--json", str(tmp_path / "d.json"), *common]) == 0
    dev = json.loads((tmp_path / "d.json").read_text())
    assert dev["scored_on"] == "held-out half of train" and dev["n_test"] == 20 and dev["budgets"] == [10, 20]
    capsys.readouterr()
    assert main([str(ckpt), "--seeds", "x", *common]) == 2
    assert capsys.readouterr().err.strip() == "error: --seeds: expected comma-separated integers, got 'x'"
