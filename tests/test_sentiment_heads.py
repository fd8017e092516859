"""heads: the linear and set heads behind the Head interface, their saved form and the one loader,
fitting and predicting through `seqvae classify fit / predict`, and one-line CLI errors. Tiny
untrained models and a handful of fake reviews: fast."""

import json

import numpy as np
import pytest

from seqvae.sentiment import config as K
from seqvae.sentiment import features as Fe
from seqvae.sentiment import linear as L
from seqvae.sentiment import setmlp as M
from seqvae.sentiment.data import holdout_split, stratified_sample
from seqvae.sentiment.heads import load_head
from seqvae.sentiment.linear import LinearHead
from seqvae.sentiment.setmlp import SetHead

sklearn = pytest.importorskip("sklearn")


def set_cfg(**kw):
    """The set head's recipe with one member, mean pooling and sentences unless told otherwise."""
    return K.HeadConfig(kind="set", unit="sentence", **{"members": 1, "pool": "mean", **kw})


def fit_one(S, y, **kw):
    """One set member, as fit_set_mlp fitted it."""
    return M.fit_member(S, y, set_cfg(**kw))


# ---------------------------------------------------------------------------- pure parts
def _xor_reviews(n, seed):
    """Reviews of 1-6 two-dimensional 'sentences'; the label is the sign of the mean of x0 * x1,
    which no linear function of the mean sentence can read."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 7, n)
    owner = np.repeat(np.arange(n), sizes)
    mu = rng.normal(size=(len(owner), 2)).astype(np.float32)
    score = np.bincount(owner, weights=mu[:, 0] * mu[:, 1], minlength=n) / sizes
    return Fe.SentenceSet(mu, owner, n), (score > 0).astype(np.int64)


def test_set_mlp_reads_what_mean_pooling_loses(tmp_path):
    import torch

    S, y = _xor_reviews(1500, 0)
    S_te, y_te = _xor_reviews(600, 1)
    state = torch.random.get_rng_state()
    model = SetHead.fit(S, y, set_cfg(hidden=32))
    assert torch.equal(torch.random.get_rng_state(), state)  # seeded without touching the global RNG
    set_acc = (model.predict(S_te) == y_te).mean()
    mean_lr = LinearHead.fit(S, y)
    lr_acc = (mean_lr.predict(S_te) == y_te).mean()
    assert set_acc > 0.85 and lr_acc < 0.65, (set_acc, lr_acc)
    again = SetHead.fit(S, y, set_cfg(hidden=32))
    np.testing.assert_array_equal(again.predict_proba(S_te), model.predict_proba(S_te))  # reproducible
    empty = Fe.SentenceSet(np.zeros((0, 2), np.float32), np.zeros(0, np.int64), 2)  # reviews with no sentence
    p = model.predict_proba(empty)
    assert p.shape == (2, 2) and np.allclose(p[:, 1], torch.sigmoid(model.members[0].b).item())
    with pytest.raises(K.ClassifyError, match="both classes"):
        SetHead.fit(S, np.zeros(len(S), np.int64), set_cfg())
    model.meta["note"] = "kept"
    model.save(tmp_path)
    back = load_head(tmp_path, "set")
    np.testing.assert_array_equal(back.predict_proba(S_te), model.predict_proba(S_te))
    assert back.meta["note"] == "kept" and back.meta["n_train"] == 1500 and back.hidden == 32 and back.pool == "mean"


def _loudest_reviews(n, seed):
    """Reviews of 2-7 two-dimensional 'sentences'; the label is the sign of x0 of the sentence with the
    largest x1 (one sentence decides, the others are noise of the same kind)."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 8, n)
    owner = np.repeat(np.arange(n), sizes)
    mu = rng.normal(size=(len(owner), 2)).astype(np.float32)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    loudest = np.array([a + np.argmax(mu[a : a + k, 1]) for a, k in zip(starts, sizes)])
    return Fe.SentenceSet(mu, owner, n), (mu[loudest, 0] > 0).astype(np.int64)


def test_attention_pool_finds_the_sentence_that_decides(tmp_path):
    S, y = _loudest_reviews(4000, 0)
    S_te, y_te = _loudest_reviews(600, 1)
    acc = {pool: (SetHead.fit(S, y, set_cfg(hidden=32, pool=pool)).predict(S_te) == y_te).mean()
           for pool in K.SET_POOLS}
    assert acc["attention"] > 0.95 and acc["mean"] < 0.85, acc
    head = SetHead.fit(S, y, set_cfg(hidden=32, pool="attention"))
    head.save(tmp_path)
    back = load_head(tmp_path, "set")
    assert back.pool == "attention"
    assert json.loads((tmp_path / SetHead.files[1]).read_text())["m0"]["pool"] == "attention"
    np.testing.assert_array_equal(back.predict_proba(S_te), head.predict_proba(S_te))


def test_attention_pool_on_a_hand_made_example():
    import torch

    mu = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, -1.0], [-2.0, 1.0]], dtype=np.float32)
    S = Fe.SentenceSet(mu, np.array([0, 0, 0, 2]), 3)  # review 1 has no sentence
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the same weights whatever ran before
        head = M.SetMLP(np.zeros(2), np.ones(2), hidden=4, pool="attention")
    head.net.eval()  # no dropout
    with torch.no_grad():
        head.b.fill_(0.25)
        g = head.net.g[2]
        per = head.net.f(torch.from_numpy(mu)).squeeze(1)
        scores = head.net.g(torch.from_numpy(mu)).squeeze(1)
        w = torch.softmax(scores[:3], 0)
        want = [0.25 + float((w * per[:3]).sum()), 0.25, 0.25 + float(per[3])]
        np.testing.assert_allclose(head.torch_logits(S).numpy(), want, rtol=1e-5)
        g.bias.add_(100.0)  # exp(100) overflows float32: the softmax must not
        # (scores near 100 keep float32's ~1e-5 absolute precision, hence the wider tolerance)
        np.testing.assert_allclose(head.torch_logits(S).numpy(), want, rtol=1e-4)
        g.weight.zero_()  # equal scores: the plain mean of the sentence scores
        mean = [0.25 + float(per[:3].mean()), 0.25, 0.25 + float(per[3])]
        np.testing.assert_allclose(head.torch_logits(S).numpy(), mean, rtol=1e-5)
    head.net.train()  # gradients reach every sentence's score
    head.torch_logits(S).sum().backward()
    assert all(p.grad is not None and torch.any(p.grad != 0) for p in head.net.f.parameters())
    with pytest.raises(K.ClassifyError, match="pool"):
        M.SetMLP(np.zeros(2), np.ones(2), pool="max")
    with pytest.raises(K.ClassifyError, match="pool"):
        K.HeadConfig(kind="set", pool="max")


def test_set_heads_saved_before_bags_and_attention_load_as_one_mean_pooled_member(tmp_path):
    member = fit_one(*_xor_reviews(300, 0), hidden=8, epochs=2)
    weights, cfg = member.arrays()
    cfg.pop("pool")
    SetHead([member]).save(tmp_path)  # then rewritten as earlier versions wrote one head: flat, no pool
    from safetensors.numpy import save_file

    save_file(weights, str(tmp_path / SetHead.files[0]))
    (tmp_path / SetHead.files[1]).write_text(json.dumps({"format": 1, "kind": "set_mlp", **cfg, "n_train": 300}))
    S, _ = _xor_reviews(50, 1)
    back = load_head(tmp_path, "set")
    assert back.pool == "mean" and len(back.members) == 1 and back.meta["n_train"] == 300
    np.testing.assert_array_equal(back.logits(S), member.logits(S))


def test_set_mlp_refit_trains_on_all_labels_for_the_chosen_epochs():
    S, y = _xor_reviews(400, 0)
    T, _ = _xor_reviews(100, 1)
    kept = fit_one(S, y, hidden=16, refit=False)
    refit = fit_one(S, y, hidden=16)  # the default
    m = kept.meta
    assert m["refit"] is False and refit.meta["refit"] is True and m["n_fit"] == 340 and refit.meta["n_fit"] == 400
    assert 1 <= m["epochs"] <= 40 and refit.meta["epochs"] == m["epochs"]  # one selection, two heads
    assert refit.meta["val_accuracy"] == m["val_accuracy"]
    val = holdout_split(y, 0.15, 0)[1]
    assert m["val_accuracy"] == pytest.approx(((kept.logits(S[val]) > 0) == y[val]).mean())
    # the refitted head is the run without a hold-out for that many epochs, standardised on every row
    same, epochs, _ = M.train_member(S, y, np.arange(400), np.zeros(0, np.int64), m["epochs"], set_cfg(hidden=16),
                                     weight_decay=1e-2)
    assert epochs == m["epochs"]
    np.testing.assert_array_equal(same.logits(T), refit.logits(T))
    np.testing.assert_allclose(refit.mean, S.mu.mean(0), rtol=1e-5)
    assert not np.array_equal(refit.logits(T), kept.logits(T))
    small = fit_one(S[np.arange(100)], y[:100], hidden=16, epochs=4)  # nothing held out: no refit
    assert "refit" not in small.meta and small.meta["n_fit"] == 100


def test_set_bag_averages_its_members_logits_and_round_trips(tmp_path):
    from seqvae.checkpoint import CheckpointError

    S, y = _xor_reviews(400, 0)
    T, _ = _xor_reviews(100, 1)
    bag = SetHead.fit(S, y, set_cfg(members=3, seed=5, hidden=16, epochs=3))
    singles = [fit_one(S, y, seed=s, hidden=16, epochs=3) for s in (5, 6, 7)]
    z = np.mean([h.logits(T) for h in singles], axis=0)
    np.testing.assert_allclose(bag.logits(T), z, rtol=1e-6)
    np.testing.assert_array_equal(bag.predict(T), (z > 0).astype(np.int64))
    assert bag.meta["n_train"] == 400 and bag.meta["epochs_per_member"] == [h.meta["epochs"] for h in singles]
    bag.meta["note"] = "kept"
    bag.save(tmp_path)
    back = load_head(tmp_path, "set")
    assert isinstance(back, SetHead) and len(back.members) == 3 and back.meta["note"] == "kept"
    np.testing.assert_array_equal(back.logits(T), bag.logits(T))
    one = SetHead.fit(S, y, set_cfg(members=1, seed=5, hidden=16, epochs=3))  # one member: the plain head
    np.testing.assert_array_equal(one.logits(T), singles[0].logits(T))
    with pytest.raises(K.ClassifyError, match="at least one member"):
        set_cfg(members=0)
    cfg_path = tmp_path / SetHead.files[1]
    cfg = json.loads(cfg_path.read_text())
    cfg_path.write_text(json.dumps({**cfg, "members": 4}))  # a member the weights do not hold
    with pytest.raises(CheckpointError, match="inconsistent"):
        load_head(tmp_path, "set")


def test_a_set_head_of_any_attention_width_loads_and_predicts_as_before_saving(tmp_path):
    """The JSON does not name the attention scorer's width: a head fitted with another one than the
    default (HeadConfig.attention_hidden) was refused as inconsistent when loaded back."""
    S, y = _xor_reviews(200, 0)
    T, _ = _xor_reviews(50, 1)
    for width in (K.HeadConfig.attention_hidden, 8):
        head = SetHead.fit(S, y, set_cfg(pool="attention", members=2, hidden=16, epochs=2, attention_hidden=width))
        assert head.members[0].net.g[0].out_features == width
        head.save(tmp_path / str(width))
        back = load_head(tmp_path / str(width), "set")
        assert back.members[0].net.g[0].out_features == width
        np.testing.assert_array_equal(back.logits(T), head.logits(T))


def test_stratified_draws_are_stratified_and_reproducible():
    from seqvae.sentiment.curve import budget_draws

    y = np.array([0] * 300 + [1] * 700)
    a = budget_draws(y, 200, 5, seed=3)
    b = budget_draws(y, 200, 5, seed=3)
    assert len(a) == 5
    for x, x2 in zip(a, b):
        np.testing.assert_array_equal(x, x2)  # same seed, same draws
        assert len(x) == len(np.unique(x)) == 200
        assert (y[x] == 0).sum() == 60 and (y[x] == 1).sum() == 140  # class shares kept exactly
    assert not np.array_equal(a[0], a[1])  # draws differ from each other
    assert not np.array_equal(a[0], budget_draws(y, 200, 1, seed=4)[0])  # and across seeds
    np.testing.assert_array_equal(budget_draws(y, 200, 2, seed=3)[1], a[1])  # fewer draws: same prefix
    assert [len(x) for x in budget_draws(y, 5000, 5)] == [1000]  # budget >= N: all, once
    odd = stratified_sample(np.array([0] * 5 + [1] * 4), 3, np.random.default_rng(0))
    assert len(odd) == 3


def test_c_is_chosen_by_cross_validated_log_loss():
    y = np.array([0] * 7 + [1] * 13)
    folds = L.cv_folds(y, 5, seed=0)
    assert len(folds) == 5
    np.testing.assert_array_equal(np.sort(np.concatenate(folds)), np.arange(20))  # a partition
    for f in folds:  # stratified: each class spread over the folds as evenly as it goes
        assert (y[f] == 0).sum() in (1, 2) and (y[f] == 1).sum() in (2, 3)
    assert all(np.array_equal(a, b) for a, b in zip(folds, L.cv_folds(y, 5, seed=0)))  # seeded
    assert not all(np.array_equal(a, b) for a, b in zip(folds, L.cv_folds(y, 5, seed=1)))
    assert len(L.cv_folds(np.array([0, 0, 0, 1, 1]), 5, seed=0)) == 2  # no more folds than the smaller class
    with pytest.raises(K.ClassifyError, match="two labelled examples of each class"):
        L.cv_folds(np.array([0, 1, 1, 1]), 5, seed=0)

    class Constant:  # predicts p(positive) = min(C, 0.3) whatever it is fitted on
        def __init__(self, C):
            self.p = min(C, 0.3)

        def predict_proba(self, X):
            return np.column_stack([np.full(len(X), 1 - self.p), np.full(len(X), self.p)])

    y = np.array([1] * 30 + [0] * 70)
    best, losses = L.select_c(lambda X, y, c: Constant(c), np.zeros((100, 1)), y, (0.1, 0.3, 0.9), 5, seed=0)
    assert best == 0.3  # the share of positives minimises the log-loss; 0.9 ties with it and is larger
    assert losses["0.3"] == pytest.approx(-(0.3 * np.log(0.3) + 0.7 * np.log(0.7)), abs=1e-6)
    assert losses["0.1"] == pytest.approx(-(0.3 * np.log(0.1) + 0.7 * np.log(0.9)), abs=1e-6)


def _toy_xy(n=400, d=6, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = rng.normal(size=(n, d)) * np.arange(1, d + 1) + 3.0
    X[:, 0] += 2.0 * y  # feature 0 carries the label
    X[:, -1] = 7.0  # a constant feature must not break standardisation
    return X.astype(np.float32), y


def test_linear_head_save_load_round_trip(tmp_path):
    X, y = _toy_xy()
    head = L.fit_linear(X, y)
    assert head.meta["C"] in K.C_GRID and (head.predict(Fe.SentenceSet(X, np.arange(len(X)), len(X))) == y).mean() > 0.7
    head.meta["direction_std"] = 0.5
    head.save(tmp_path)
    assert all((tmp_path / f).is_file() for f in LinearHead.files)
    saved = json.loads((tmp_path / LinearHead.files[1]).read_text())
    assert saved["kind"] == "logreg" and "model_sha256" in saved  # the JSON names its kind and its weights
    back = load_head(tmp_path)  # the linear head is the default
    np.testing.assert_array_equal(back.decision(X), head.decision(X))
    assert back.classes == K.CLASSES and back.meta["direction_std"] == 0.5
    S = Fe.SentenceSet(np.repeat(X, 2, axis=0), np.repeat(np.arange(len(X)), 2), len(X))  # two copies per review
    np.testing.assert_allclose(back.logits(S), head.decision(X))  # the head reads the units' mean
    w = back.coef / back.std  # the latent direction: the raw weights, normalised
    np.testing.assert_allclose(back.latent_direction(), w / np.linalg.norm(w))
    # the head agrees with scikit-learn's own predictions on standardised features
    lr = sklearn.linear_model.LogisticRegression(C=head.meta["C"], max_iter=2000).fit((X - head.mean) / head.std, y)
    np.testing.assert_allclose(1 / (1 + np.exp(-head.decision(X))), lr.predict_proba((X - head.mean) / head.std)[:, 1],
                               atol=1e-6)
    cfg = json.loads((tmp_path / LinearHead.files[1]).read_text())
    (tmp_path / LinearHead.files[1]).write_text(json.dumps({**cfg, "pooling": "meanmax"}))  # a pooling now gone
    from seqvae.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="mean pooling only"):
        load_head(tmp_path)
    with pytest.raises(CheckpointError, match="unknown format or kind"):
        (tmp_path / LinearHead.files[1]).write_text(json.dumps({**cfg, "kind": "set_mlp"}))
        load_head(tmp_path)


# ---------------------------------------------------------------------------- a tiny checkpoint and tiny IMDB
def test_fit_and_predict(tiny, capsys, monkeypatch):
    import io

    from seqvae.cli import main

    ckpt, root = tiny
    assert main(["classify", "fit", str(ckpt), "--data-root", str(root), "--no-progress", "--no-cache"]) == 0
    head = load_head(ckpt)
    assert head.meta["n_train"] == 40 and head.meta["direction_std"] > 0
    assert head.meta["model_sha256"] == Fe.checkpoint_id(ckpt) and head.meta["config"]["kind"] == "linear"
    capsys.readouterr()
    assert main(["classify", "predict", str(ckpt), "The movie was great.", "The plot was dull.", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["text"] for r in rows] == ["The movie was great.", "The plot was dull."]
    assert all(abs(r["p_positive"] + r["p_negative"] - 1) < 1e-9 for r in rows)
    monkeypatch.setattr("sys.stdin", io.StringIO("The movie was great.\n\n  The plot was dull.\n"))
    assert main(["classify", "predict", str(ckpt), "-", "--json"]) == 0  # one text per line, blank lines skipped
    assert json.loads(capsys.readouterr().out) == rows
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    assert main(["classify", "predict", str(ckpt), "-"]) == 2
    assert "no texts on stdin" in capsys.readouterr().err


def test_set_head_fit_and_predict(tiny, tmp_path, capsys, monkeypatch):
    import shutil

    from seqvae.api import SeqVAE
    from seqvae.checkpoint import CheckpointError
    from seqvae.cli import main

    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny[0], ckpt)
    with pytest.raises(CheckpointError, match="--head set"):
        load_head(ckpt, "set")
    linear = {p.name: p.read_bytes() for p in (ckpt / f for f in LinearHead.files) if p.exists()}
    argv = ["classify", "fit", str(ckpt), "--head", "set", "--no-progress", "--data-root", str(tiny[1]), "--no-cache"]
    assert main(argv + ["--unit", "sentence", "--pool", "mean", "--members", "1"]) == 0
    saved = json.loads(capsys.readouterr().out)
    assert saved["n_train"] == 40 and saved["features"]["sentences"] > 40 and len(saved["saved"]) == 2
    texts = ["The movie was great. The plot was dull.", "The acting was boring."]
    assert main(["classify", "predict", str(ckpt), "--head", "set", *texts, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    on_cli_device = SeqVAE.from_pretrained(ckpt)  # the CLI's default device: CUDA when there is one
    head = load_head(ckpt, "set")
    z = head.logits(Fe.sentence_features(on_cli_device, texts, progress=False))
    s = head.meta["length_scales"]  # fitted with the head; the texts have 2 and 1 sentences
    assert [r["sentences"] for r in rows] == [2, 1]
    np.testing.assert_allclose([r["p_positive"] for r in rows], 1 / (1 + np.exp(-np.array([s[1], s[0]]) * z)),
                               atol=1e-6)
    assert {p.name: p.read_bytes() for p in (ckpt / f for f in LinearHead.files) if p.exists()} == linear
    assert head.pool == "mean" and len(head.members) == 1
    assert main(argv) == 0  # the shipped recipe: attention over clauses, five members
    capsys.readouterr()
    bag = load_head(ckpt, "set")
    assert bag.pool == "attention" and len(bag.members) == 5 and bag.unit == "clause" and bag.meta["length_scales"]
    assert main(["classify", "predict", str(ckpt), "--head", "set", *texts, "--json"]) == 0
    assert [(r["sentences"], r["clauses"]) for r in json.loads(capsys.readouterr().out)] == [(2, 2), (1, 1)]
    assert main(argv + ["--members", "0"]) == 2
    assert "--members must be between 1 and 100" in capsys.readouterr().err


def test_clause_heads_read_texts_by_clause(tiny, tmp_path, capsys, one_line):
    import shutil

    from seqvae.api import SeqVAE
    from seqvae.cli import main

    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny[0], ckpt)
    fit = ["classify", "fit", str(ckpt), "--unit", "clause", "--data-root", str(tiny[1]), "--no-cache",
           "--no-progress"]
    assert main(fit + ["--head", "set", "--members", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["unit"] == "clause"
    head = load_head(ckpt, "set")
    assert head.unit == "clause"
    texts = ["The movie was great, but the plot was dull.", "The acting was boring."]
    assert main(["classify", "predict", str(ckpt), "--head", "set", *texts, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["sentences"], r["clauses"]) for r in rows] == [(1, 2), (1, 1)]
    z = head.logits(Fe.sentence_features(SeqVAE.from_pretrained(ckpt), texts, progress=False, unit="clause"))
    s = head.meta["length_scales"]  # scales by clause count
    np.testing.assert_allclose([r["p_positive"] for r in rows], 1 / (1 + np.exp(-np.array([s[1], s[0]]) * z)),
                               atol=1e-6)
    assert main(fit) == 0  # the linear head on clause means; steering still reads one sentence
    assert json.loads((ckpt / LinearHead.files[1]).read_text())["unit"] == "clause"
    capsys.readouterr()
    cfg = json.loads((ckpt / LinearHead.files[1]).read_text())
    (ckpt / LinearHead.files[1]).write_text(json.dumps({**cfg, "unit": "word"}))
    one_line(["classify", "predict", ckpt, "A fine film."], "reads texts as 'word'")


def test_one_line_errors(tiny, tmp_path, one_line, monkeypatch, capsys):
    import shutil
    import sys

    bare = tmp_path / "bare"
    shutil.copytree(tiny[0], bare, ignore=shutil.ignore_patterns("*classifier.*", "features"))

    one_line(["classify", "predict", bare, "a fine film"], "no classifier head")
    one_line(["classify", "evaluate", bare, "--head", "set"], "seqvae classify fit")
    one_line(["classify", "curve", bare, "--budgets", "ten"], "--budgets")
    one_line(["classify", "curve", bare, "--budgets", "3,100"], "--budgets")
    with pytest.raises(SystemExit) as e:  # seed_arg: argparse's usage line and its error, exit 2
        from seqvae.cli import main

        main(["classify", "curve", str(bare), "--seed", "-1"])
    assert e.value.code == 2 and "argument --seed: must be in [0, 2**63)" in capsys.readouterr().err
    one_line(["classify", "curve", bare, "--max-reviews", "-1"], "--max-reviews")
    one_line(["classify", "fit", bare, "--max-reviews", "3"], "at least 4")
    one_line(["classify", "curve", bare, "--out", tmp_path / "c", "--data-root", tmp_path / "none"], "none")
    assert not (tmp_path / "c").exists()  # nothing written when the data cannot be read
    one_line(["classify", "fit", tmp_path / "nope"], "no such checkpoint")
    one_line(["classify", bare], "needs an action first")
    one_line(["classify", "guess", bare], "needs an action first")
    for old, new in (("--train", "fit"), ("--texts", "predict"), ("--curve", "curve"), ("--evaluate", "evaluate"),
                     ("--calibrate", "calibrate")):  # the modes before actions: one line naming the new form
        one_line(["classify", bare, old], f"seqvae classify {new} CKPT")
        one_line(["classify", old, bare], f"seqvae classify {new} CKPT")
    one_line(["classify", bare, "--texts", "a", "b", "--head", "set"], "seqvae classify predict CKPT")
    monkeypatch.setitem(sys.modules, "sklearn", None)  # as if scikit-learn were not installed
    monkeypatch.setitem(sys.modules, "sklearn.linear_model", None)
    one_line(["classify", "fit", bare, "--data-root", tiny[1], "--no-cache", "--no-progress"], "scikit-learn")


def test_an_unknown_option_is_argparse_usage_and_exit_2(tiny, capsys):
    from seqvae.cli import main

    with pytest.raises(SystemExit) as e:
        main(["classify", "fit", str(tiny[0]), "--set-members", "2"])
    assert e.value.code == 2 and "unrecognized arguments: --set-members" in capsys.readouterr().err


# ---------------------------------------------------------------------------- a fourth review's findings
def test_a_head_fitted_through_the_api_is_taken_for_its_own_checkpoint(tiny, tmp_path, capsys):
    """fit_head without a model_id records the state dict's hash; the commands accept it beside the file's."""
    import shutil

    from seqvae.api import SeqVAE
    from seqvae.cli import main
    from seqvae.sentiment.data import load_reviews
    from seqvae.sentiment.heads import fit_head, head_matches

    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny[0], ckpt, ignore=shutil.ignore_patterns("*classifier.*", "features"))
    vae = SeqVAE.from_pretrained(ckpt, device="cpu")
    texts, y = load_reviews("train", data_root=tiny[1])
    head = fit_head(vae, texts, y, progress=False)
    assert head.meta["model_sha256"] == Fe.model_sha256(vae) != Fe.checkpoint_id(ckpt)
    head.save(ckpt)
    assert head_matches(load_head(ckpt), ckpt, vae)
    assert load_head(ckpt, model_id=Fe.model_sha256(vae)).meta["model_sha256"] == Fe.model_sha256(vae)
    with pytest.raises(K.ClassifyError, match="fitted on other weights than"):
        load_head(ckpt, model_id="0" * 64)  # the API's check of a head against the model it will read
    assert main(["classify", "evaluate", str(ckpt), "--data-root", str(tiny[1]), "--no-progress", "--no-cache"]) == 0
    capsys.readouterr()
    assert main(["classify", "predict", str(ckpt), "The movie was great."]) == 0
    assert "warning" not in capsys.readouterr().err
    with pytest.raises(K.ClassifyError, match="0 \\(negative\\) or 1"):
        fit_head(vae, texts, y + 1, progress=False)
    with pytest.raises(K.ClassifyError, match="one label per text"):
        fit_head(vae, texts, y[:3], progress=False)


def test_a_head_cut_short_or_corrupted_is_one_line(tmp_path):
    """The JSON names its weights file by hash (a save cut between the two files is found); values that
    would give NaN or a traceback in predict are refused on loading."""
    from seqvae.checkpoint import CheckpointError

    X, y = _toy_xy()
    head = L.fit_linear(X, y)
    head.meta["direction_std"] = 0.5
    head.save(tmp_path)
    old_json = (tmp_path / LinearHead.files[1]).read_text()
    head.coef = head.coef * 2  # a second save, cut after the weights: the old JSON beside new weights
    head.save(tmp_path)
    (tmp_path / LinearHead.files[1]).write_text(old_json)
    with pytest.raises(CheckpointError, match="is not the file classifier.json was saved with"):
        load_head(tmp_path)
    head.save(tmp_path)
    cfg = json.loads((tmp_path / LinearHead.files[1]).read_text())
    for edit, msg in [({"format": "1"}, "unknown format"), ({"classes": ["good"]}, "classes negative, positive"),
                      ({"classes": ["a", "b", "c"]}, "classes negative, positive"),
                      ({"length_scales": "abc"}, "length_scales"), ({"length_scales": [1.0, float("nan")]}, "length"),
                      ({"direction_std": "x"}, "direction_std")]:
        (tmp_path / LinearHead.files[1]).write_text(json.dumps({**cfg, **edit}))
        with pytest.raises(CheckpointError, match=msg):
            load_head(tmp_path)
    (tmp_path / LinearHead.files[1]).write_text(json.dumps({**cfg, "length_scales": [0.0, 0.5]}))
    assert load_head(tmp_path).meta["length_scales"] == [0.0, 0.5]  # 0: what the calibration may find for 1 unit
    (tmp_path / LinearHead.files[1]).write_text(json.dumps(cfg))
    assert load_head(tmp_path).meta["direction_std"] == 0.5
    head.coef[0] = np.nan
    head.save(tmp_path)
    with pytest.raises(CheckpointError, match="coef is not all finite"):
        load_head(tmp_path)


def test_fourth_review_one_line_errors(tiny, tmp_path, one_line):
    import shutil

    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny[0], ckpt, ignore=shutil.ignore_patterns("features"))
    opts = ["--data-root", tiny[1], "--no-progress", "--no-cache"]
    one_line(["classify", "predict", ckpt, "A \udcff gem."], "text 0 is not valid UTF-8")
    one_line(["classify", "fit", ckpt, "--head", "set", "--members", "1000000000", *opts], "--members must be")
    one_line(["classify", "curve", ckpt, "--draws", "1000000000", "--out", tmp_path / "c", *opts], "--draws must be")
    one_line(["classify", "curve", ckpt, "--set-members", "0", "--out", tmp_path / "c", *opts], "--set-members")
    assert not (tmp_path / "c").exists()
    assert main_ok(["classify", "fit", ckpt, *opts])
    one_line(["classify", "evaluate", ckpt, "--snippets", "1,500", *opts], "--snippets 500: no review here has 500")


def main_ok(argv) -> bool:
    from seqvae.cli import main

    return main([str(a) for a in argv]) == 0


def test_seeds_beyond_32_bits_reach_scikit_learn(tiny, tmp_path):
    """seed_arg allows [0, 2**63); scikit-learn takes [0, 2**32): seed32 derives one."""
    import shutil

    import torch

    from seqvae.config import seed32
    from seqvae.prior import AggregatePrior

    assert seed32(7) == 7 and seed32(2**32 - 1) == 2**32 - 1
    assert 0 <= seed32(2**40) < 2**32 and seed32(2**40) == seed32(2**40) != seed32(2**40 + 1)
    assert seed32(2**32 + 7) != seed32(7)  # derived, not the low 32 bits: seeds 2**32 apart differ
    AggregatePrior.fit(torch.randn(40, 3, generator=torch.Generator().manual_seed(0)), components=2, seed=2**62)
    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny[0], ckpt, ignore=shutil.ignore_patterns("features"))
    assert main_ok(["classify", "fit", ckpt, "--data-root", tiny[1], "--no-progress", "--no-cache",
                    "--seed", str(2**63 - 1)])
