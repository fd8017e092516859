"""classify: pooling, feature cache, the saved LR head, label-budget sampling, the curve end to end,
and one-line CLI errors. Tiny untrained models and a handful of fake reviews: fast."""

import gzip
import importlib.util
import json

import numpy as np
import pytest

from seqvae import classify as C
from seqvae import features as Fe

sklearn = pytest.importorskip("sklearn")


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
    model = C.fit_set_mlp(S, y, seed=0, hidden=32)
    assert torch.equal(torch.random.get_rng_state(), state)  # seeded without touching the global RNG
    set_acc = (model.predict(S_te) == y_te).mean()
    mean_lr = C.fit_linear_head(Fe.pool(S.mu, S.mu, S.owner, len(S), "mean"), y, seed=0)
    lr_acc = (mean_lr.predict(Fe.pool(S_te.mu, S_te.mu, S_te.owner, len(S_te), "mean")) == y_te).mean()
    assert set_acc > 0.85 and lr_acc < 0.65, (set_acc, lr_acc)
    again = C.fit_set_mlp(S, y, seed=0, hidden=32)
    np.testing.assert_array_equal(again.predict_proba(S_te), model.predict_proba(S_te))  # reproducible
    empty = Fe.SentenceSet(np.zeros((0, 2), np.float32), np.zeros(0, np.int64), 2)  # reviews with no sentence
    p = model.predict_proba(empty)
    assert p.shape == (2, 2) and np.allclose(p[:, 1], torch.sigmoid(model.b).item())
    with pytest.raises(C.ClassifyError, match="both classes"):
        C.fit_set_mlp(S, np.zeros(len(S), np.int64))
    model.meta["note"] = "kept"
    model.save(tmp_path)
    back = C.SetMLP.load(tmp_path)
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
    acc = {pool: (C.fit_set_mlp(S, y, seed=0, hidden=32, pool=pool).predict(S_te) == y_te).mean()
           for pool in C.SET_POOLS}
    assert acc["attention"] > 0.95 and acc["mean"] < 0.85, acc
    head = C.fit_set_mlp(S, y, seed=0, hidden=32, pool="attention")
    head.save(tmp_path)
    back = C.SetMLP.load(tmp_path)
    assert back.pool == "attention" and json.loads((tmp_path / C.SET_HEAD_CONFIG).read_text())["pool"] == "attention"
    np.testing.assert_array_equal(back.predict_proba(S_te), head.predict_proba(S_te))


def test_attention_pool_on_a_hand_made_example():
    import torch

    mu = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, -1.0], [-2.0, 1.0]], dtype=np.float32)
    S = Fe.SentenceSet(mu, np.array([0, 0, 0, 2]), 3)  # review 1 has no sentence
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the same weights whatever ran before
        head = C.SetMLP(np.zeros(2), np.ones(2), hidden=4, pool="attention")
    head.net.eval()  # no dropout
    with torch.no_grad():
        head.b.fill_(0.25)
        g = head.net.g[2]
        per = head.net.f(torch.from_numpy(mu)).squeeze(1)
        scores = head.net.g(torch.from_numpy(mu)).squeeze(1)
        w = torch.softmax(scores[:3], 0)
        want = [0.25 + float((w * per[:3]).sum()), 0.25, 0.25 + float(per[3])]
        np.testing.assert_allclose(head.logits(S).numpy(), want, rtol=1e-5)
        g.bias.add_(100.0)  # exp(100) overflows float32: the softmax must not
        # (scores near 100 keep float32's ~1e-5 absolute precision, hence the wider tolerance)
        np.testing.assert_allclose(head.logits(S).numpy(), want, rtol=1e-4)
        g.weight.zero_()  # equal scores: the plain mean of the sentence scores
        mean = [0.25 + float(per[:3].mean()), 0.25, 0.25 + float(per[3])]
        np.testing.assert_allclose(head.logits(S).numpy(), mean, rtol=1e-5)
    mu_t = torch.from_numpy(mu).requires_grad_(True)  # gradients reach every sentence of a review
    head.pooled_logits(mu_t, torch.from_numpy(S.owner), 3).sum().backward()
    assert torch.all(mu_t.grad.abs().sum(1) > 0)
    with pytest.raises(C.ClassifyError, match="pool"):
        C.SetMLP(np.zeros(2), np.ones(2), pool="max")


def test_set_heads_saved_before_attention_load_as_mean_pooled(tmp_path):
    head = C.fit_set_mlp(*_xor_reviews(300, 0), seed=0, hidden=8, epochs=2)
    head.save(tmp_path)
    cfg_path = tmp_path / C.SET_HEAD_CONFIG
    cfg = json.loads(cfg_path.read_text())
    assert cfg.pop("pool") == "mean"
    cfg_path.write_text(json.dumps(cfg))  # as written by earlier versions
    S, _ = _xor_reviews(50, 1)
    back = C.SetMLP.load(tmp_path)
    assert back.pool == "mean"
    np.testing.assert_array_equal(back.predict_proba(S), head.predict_proba(S))


def test_set_mlp_refit_trains_on_all_labels_for_the_chosen_epochs():
    S, y = _xor_reviews(400, 0)
    T, _ = _xor_reviews(100, 1)
    kept = C.fit_set_mlp(S, y, seed=0, hidden=16, refit=False)
    refit = C.fit_set_mlp(S, y, seed=0, hidden=16)  # the default
    m = kept.meta
    assert m["refit"] is False and refit.meta["refit"] is True and m["n_fit"] == 340 and refit.meta["n_fit"] == 400
    assert 1 <= m["epochs"] <= 40 and refit.meta["epochs"] == m["epochs"]  # one selection, two heads
    assert refit.meta["val_accuracy"] == m["val_accuracy"]
    val = C._val_split(y, 0.15, 0)[1]
    assert m["val_accuracy"] == pytest.approx((kept.predict(S[val]) == y[val]).mean())
    # the refitted head is the run without a hold-out for that many epochs, standardised on every row
    same, epochs, _ = C._train_set_mlp(S, y, np.arange(400), np.zeros(0, np.int64), m["epochs"], seed=0, hidden=16,
                                       pool="mean", batch_reviews=128, patience=6, weight_decay=1e-2)
    assert epochs == m["epochs"]
    np.testing.assert_array_equal(same.decision(T), refit.decision(T))
    np.testing.assert_allclose(refit.mean, S.mu.mean(0), rtol=1e-5)
    assert not np.array_equal(refit.decision(T), kept.decision(T))
    small = C.fit_set_mlp(S[np.arange(100)], y[:100], seed=0, hidden=16, epochs=4)  # nothing held out: no refit
    assert "refit" not in small.meta and small.meta["n_fit"] == 100


def test_set_bag_averages_its_members_logits_and_round_trips(tmp_path):
    from seqvae.checkpoint import CheckpointError

    S, y = _xor_reviews(400, 0)
    T, _ = _xor_reviews(100, 1)
    bag = C.fit_set_bag(S, y, members=3, seed=5, hidden=16, epochs=3)
    singles = [C.fit_set_mlp(S, y, seed=s, hidden=16, epochs=3) for s in (5, 6, 7)]
    z = np.mean([h.decision(T) for h in singles], axis=0)
    np.testing.assert_allclose(bag.decision(T), z, rtol=1e-6)
    np.testing.assert_array_equal(bag.predict(T), (z > 0).astype(np.int64))
    assert bag.meta["n_train"] == 400 and bag.meta["epochs_per_member"] == [h.meta["epochs"] for h in singles]
    bag.meta["note"] = "kept"
    bag.save(tmp_path)
    back = C.SetMLP.load(tmp_path)  # the set head's loader reads a bag too
    assert isinstance(back, C.SetBag) and len(back.members) == 3 and back.meta["note"] == "kept"
    np.testing.assert_array_equal(back.decision(T), bag.decision(T))
    one = C.fit_set_bag(S, y, members=1, seed=5, hidden=16, epochs=3)  # one member: the plain head
    assert isinstance(one, C.SetMLP)
    np.testing.assert_array_equal(one.decision(T), singles[0].decision(T))
    with pytest.raises(C.ClassifyError, match="at least one member"):
        C.fit_set_bag(S, y, members=0)
    cfg_path = tmp_path / C.SET_HEAD_CONFIG
    cfg = json.loads(cfg_path.read_text())
    cfg_path.write_text(json.dumps({**cfg, "members": 4}))  # a member the weights do not hold
    with pytest.raises(CheckpointError, match="inconsistent"):
        C.SetMLP.load(tmp_path)


def test_pseudo_labels_are_the_surest_reviews_half_per_class():
    S, y = _xor_reviews(400, 0)
    U, _ = _xor_reviews(101, 1)
    head = C.fit_set_mlp(S, y, seed=0, hidden=16, epochs=4)
    p = head.predict_proba(U)[:, 1]
    idx, labels = C.pseudo_label(p, 0.5)
    assert len(idx) == 50 and len(set(idx)) == 50 and labels.tolist() == [0] * 25 + [1] * 25
    assert p[idx[:25]].max() <= np.sort(p)[24] and p[idx[25:]].min() >= np.sort(p)[-25]
    assert len(C.pseudo_label(p, 1.0)[0]) == 100  # 50 per class; the middle review is left out
    for bad in (0.0, 1.5):
        with pytest.raises(C.ClassifyError, match="fraction"):
            C.pseudo_label(p, bad)


def _linear_reviews(n, seed, d=16):
    """Reviews of 1-6 sentences; the label is the sign of the mean of the sentences' coordinate sum."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 7, n)
    owner = np.repeat(np.arange(n), sizes)
    mu = rng.normal(size=(len(owner), d)).astype(np.float32)
    score = np.bincount(owner, weights=mu.sum(1), minlength=n) / sizes
    return Fe.SentenceSet(mu, owner, n), (score > 0).astype(np.int64)


def test_self_training_uses_unlabelled_reviews_and_holds_out_real_labels_only():
    S, y = _linear_reviews(200, 2)
    U, _ = _linear_reviews(2000, 12)
    T, y_t = _linear_reviews(800, 99)
    plain = C.fit_set_mlp(S, y, seed=0, hidden=32)
    st = C.self_train_set_mlp(S, y, U, seed=0, hidden=32)
    # 200 labels leave the direction noisy in 16 dims; 1,000 confident pseudo-labels pin it down
    acc_plain, acc_st = (plain.predict(T) == y_t).mean(), (st.predict(T) == y_t).mean()
    assert acc_st > acc_plain + 0.04, (acc_plain, acc_st)
    assert st.meta["n_pseudo"] == 1000 and st.meta["n_train"] == 200 and st.meta["n_fit"] == 200 + 1000  # refitted
    kept = C.self_train_set_mlp(S, y, U, seed=0, hidden=32, refit=False)
    assert kept.meta["n_fit"] == 170 + 1000
    val = C._val_split(y, 0.15, 0)[1]  # the early-stopping hold-out: the real labels' 15%, nothing else
    assert kept.meta["val_accuracy"] == pytest.approx((kept.predict(S[val]) == y[val]).mean())
    again = C.self_train_set_mlp(S, y, U, seed=0, hidden=32)
    np.testing.assert_array_equal(again.predict_proba(T), st.predict_proba(T))


def test_self_trained_tfidf_learns_words_seen_only_in_unlabelled_reviews():
    sk = pytest.importorskip("sklearn")
    pos, neg = ["a great film", "great fun", "a fine great cast"], ["a dull film", "dull and slow", "slow dull cast"]
    unlabelled = ["great superb", "dull awful", "superb great fun", "awful slow dull"]
    vec = sk.feature_extraction.text.TfidfVectorizer().fit(pos + neg + unlabelled)  # as the curve: texts, no labels
    X, X_un = vec.transform(pos + neg), vec.transform(unlabelled)
    y = np.array([1, 1, 1, 0, 0, 0])
    superb, awful = vec.vocabulary_["superb"], vec.vocabulary_["awful"]
    plain = C.fit_tfidf_lr(X, y)
    assert plain.coef_[0, superb] == 0 and plain.coef_[0, awful] == 0  # never seen with a label
    lr = C.self_train_tfidf_lr(X, y, X_un, frac=1.0)
    assert lr.C == plain.C  # C is chosen once, on the real labels
    assert lr.coef_[0, superb] > 0 > lr.coef_[0, awful]  # learnt from the pseudo-labelled reviews


def test_budget_draws_are_stratified_and_reproducible():
    y = np.array([0] * 300 + [1] * 700)
    a = C.budget_draws(y, 200, 5, seed=3)
    b = C.budget_draws(y, 200, 5, seed=3)
    assert len(a) == 5
    for x, x2 in zip(a, b):
        np.testing.assert_array_equal(x, x2)  # same seed, same draws
        assert len(x) == len(np.unique(x)) == 200
        assert (y[x] == 0).sum() == 60 and (y[x] == 1).sum() == 140  # class shares kept exactly
    assert not np.array_equal(a[0], a[1])  # draws differ from each other
    assert not np.array_equal(a[0], C.budget_draws(y, 200, 1, seed=4)[0])  # and across seeds
    np.testing.assert_array_equal(C.budget_draws(y, 200, 2, seed=3)[1], a[1])  # fewer draws: same prefix
    assert [len(x) for x in C.budget_draws(y, 5000, 5)] == [1000]  # budget >= N: all, once
    odd = C.stratified_sample(np.array([0] * 5 + [1] * 4), 3, np.random.default_rng(0))
    assert len(odd) == 3


def test_c_is_chosen_by_cross_validated_log_loss():
    y = np.array([0] * 7 + [1] * 13)
    folds = C._cv_folds(y, 5, seed=0)
    assert len(folds) == 5
    np.testing.assert_array_equal(np.sort(np.concatenate(folds)), np.arange(20))  # a partition
    for f in folds:  # stratified: each class spread over the folds as evenly as it goes
        assert (y[f] == 0).sum() in (1, 2) and (y[f] == 1).sum() in (2, 3)
    assert all(np.array_equal(a, b) for a, b in zip(folds, C._cv_folds(y, 5, seed=0)))  # seeded
    assert not all(np.array_equal(a, b) for a, b in zip(folds, C._cv_folds(y, 5, seed=1)))
    assert len(C._cv_folds(np.array([0, 0, 0, 1, 1]), 5, seed=0)) == 2  # no more folds than the smaller class
    with pytest.raises(C.ClassifyError, match="two labelled examples of each class"):
        C._cv_folds(np.array([0, 1, 1, 1]), 5, seed=0)

    class Constant:  # predicts p(positive) = min(C, 0.3) whatever it is fitted on
        def __init__(self, C):
            self.p = min(C, 0.3)

        def predict_proba(self, X):
            return np.column_stack([np.full(len(X), 1 - self.p), np.full(len(X), self.p)])

    y = np.array([1] * 30 + [0] * 70)
    best, losses = C._select_c(lambda X, y, c: Constant(c), np.zeros((100, 1)), y, (0.1, 0.3, 0.9), 5, seed=0)
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


def test_head_save_load_round_trip(tmp_path):
    X, y = _toy_xy()
    head = C.fit_linear_head(X, y, pooling="meanmax", seed=0)
    assert head.meta["C"] in C.C_GRID and (head.predict(X) == y).mean() > 0.7
    head.meta["direction_std"] = 0.5
    head.save(tmp_path)
    assert (tmp_path / C.HEAD_WEIGHTS).is_file() and (tmp_path / C.HEAD_CONFIG).is_file()
    back = C.LinearHead.load(tmp_path)
    np.testing.assert_array_equal(back.predict_proba(X), head.predict_proba(X))
    np.testing.assert_array_equal(back.predict(X), head.predict(X))
    assert back.pooling == "meanmax" and back.classes == C.CLASSES and back.meta["direction_std"] == 0.5
    # the latent direction of a meanmax head sums the raw weights of both μ halves
    d = back.latent_direction(3)
    w = back.coef / back.std
    np.testing.assert_allclose(d, (w[:3] + w[3:]) / np.linalg.norm(w[:3] + w[3:]))
    # the head agrees with scikit-learn's own predictions on standardised features
    lr = sklearn.linear_model.LogisticRegression(C=head.meta["C"], max_iter=2000).fit((X - head.mean) / head.std, y)
    np.testing.assert_allclose(head.predict_proba(X)[:, 1], lr.predict_proba((X - head.mean) / head.std)[:, 1],
                               atol=1e-6)


# ---------------------------------------------------------------------------- a tiny checkpoint and tiny IMDB
@pytest.fixture(scope="module")
def vae(tiny):
    from seqvae.api import SeqVAE

    return SeqVAE.from_pretrained(tiny[0], device="cpu")


def test_curve_end_to_end(tiny, tmp_path, capsys):
    from seqvae.cli import main

    ckpt, root = tiny
    out = tmp_path / "curve"
    argv = ["classify", str(ckpt), "--curve", "--out", str(out), "--data-root", str(root), "--budgets", "10,20,1000",
            "--draws", "2", "--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    assert main(argv) == 0
    res = json.loads((out / "curve.json").read_text())
    assert res["budgets"] == [10, 20, 40] and res["n_test"] == 20 and res["draws"] == 2
    assert set(res["methods"]) == {"vae_lr", "vae_mlp", "vae_set", "untrained_lr", "untrained_mlp", "untrained_set",
                                   "tfidf_lr"}
    for m in res["methods"].values():
        assert [len(m["budgets"][b]["runs"]) for b in ("10", "20", "40")] == [2, 2, 1]
        assert all(0.0 <= a <= 1.0 for b in m["budgets"].values() for a in b["runs"])
    assert res["methods"]["tfidf_lr"]["budgets"]["40"]["mean"] == 1.0  # one word tells the label here
    texts = {split: [json.loads(x)["text"] for x in gzip.open(root / "imdb" / f"{split}.jsonl.gz", "rt")]
             for split in ("train", "test")}
    assert res["test_reviews_in_train"] == sum(t in set(texts["train"]) for t in texts["test"])
    table = (out / "curve.md").read_text()
    assert "| tf-idf 1-2gram + LR |" in table and "40 (all)" in table
    has_mpl = importlib.util.find_spec("matplotlib") is not None  # plotting is an optional extra
    assert (out / "curve.png").exists() == has_mpl
    if has_mpl:
        assert (out / "curve.png").stat().st_size > 0
    assert "VAE μ + LR" in capsys.readouterr().out
    # second run: every feature matrix comes from the cache
    assert main(argv + ["--no-mlp", "--no-set"]) == 0
    res2 = json.loads((out / "curve.json").read_text())
    assert set(res2["methods"]) == {"vae_lr", "untrained_lr", "tfidf_lr"}
    assert all(s["cached"] for f in ("vae", "untrained") for s in res2["features"][f].values())
    for b in ("10", "20", "40"):  # same draws, same numbers
        assert res2["methods"]["vae_lr"]["budgets"][b]["runs"] == res["methods"]["vae_lr"]["budgets"][b]["runs"]
    # self-training on 20 of the unlabelled reviews, the surest half of them pseudo-labelled
    st = argv + ["--no-mlp", "--no-set", "--self-train", "--max-unlabelled-reviews", "20"]
    assert main(st) == 0
    res3 = json.loads((out / "curve.json").read_text())
    assert set(res3["methods"]) == {"vae_lr", "vae_set_self", "untrained_lr", "tfidf_lr", "tfidf_lr_self"}
    assert res3["features"]["unlabelled"]["reviews"] == 20
    fits = res3["methods"]["vae_set_self"]["budgets"]
    assert [len(fits[b]["runs"]) for b in ("10", "20", "40")] == [2, 2, 1]
    assert all(f["pseudo_labelled"] == 10 for b in fits.values() for f in b["fit"])
    table = (out / "curve.md").read_text()
    assert "set MLP, self-trained on 20 unlabelled" in table and "tf-idf 1-2gram + LR, self-trained on 20" in table
    assert res3["methods"]["tfidf_lr_self"]["budgets"]["40"]["mean"] == 1.0
    # the set rows with attention pooling: named apart, from the same cached sentence means
    assert main(argv + ["--no-mlp", "--no-baselines", "--set-pool", "attention", "--set-members", "2"]) == 0
    res4 = json.loads((out / "curve.json").read_text())
    assert set(res4["methods"]) == {"vae_lr", "vae_set_attention"} and res4["set_pool"] == "attention"
    assert res4["set_refit"] is True and res3["set_refit"] is True and "set_refit" not in res2
    assert res4["set_members"] == 2 and "set MLP (attention), 2 averaged" in (out / "curve.md").read_text()
    assert res4["features"]["vae"]["train"]["cached"]
    assert "per sentence + set MLP (attention)" in (out / "curve.md").read_text()
    # every encoder row on the reviews' clauses: their own cache entries
    assert main(argv + ["--no-mlp", "--unit", "clause"]) == 0
    res5 = json.loads((out / "curve.json").read_text())
    assert set(res5["methods"]) == {"vae_lr", "vae_set", "untrained_lr", "untrained_set", "tfidf_lr"}
    assert res5["unit"] == "clause" and not res5["features"]["vae"]["train"]["cached"]
    table = (out / "curve.md").read_text()
    assert "| VAE μ of clauses + LR |" in table and "| VAE μ per clause + set MLP |" in table


def test_train_and_predict(tiny, capsys, monkeypatch):
    import io

    from seqvae.cli import main

    ckpt, root = tiny
    assert main(["classify", str(ckpt), "--train", "--data-root", str(root), "--no-progress", "--no-cache"]) == 0
    head = C.LinearHead.load(ckpt)
    assert head.meta["n_train"] == 40 and head.meta["direction_std"] > 0
    capsys.readouterr()
    assert main(["classify", str(ckpt), "--texts", "The movie was great.", "The plot was dull.", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["text"] for r in rows] == ["The movie was great.", "The plot was dull."]
    assert all(abs(r["p_positive"] + r["p_negative"] - 1) < 1e-9 for r in rows)
    monkeypatch.setattr("sys.stdin", io.StringIO("The movie was great.\n\n  The plot was dull.\n"))
    assert main(["classify", str(ckpt), "--texts", "-", "--json"]) == 0  # one text per line, blank lines skipped
    assert json.loads(capsys.readouterr().out) == rows
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    assert main(["classify", str(ckpt), "--texts", "-"]) == 2
    assert "no texts on stdin" in capsys.readouterr().err


def test_set_head_train_and_predict(tiny, tmp_path, capsys, monkeypatch):
    import shutil

    from seqvae.checkpoint import CheckpointError
    from seqvae.cli import main

    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny[0], ckpt)
    with pytest.raises(CheckpointError, match="--head set"):
        C.SetMLP.load(ckpt)
    linear = {p.name: p.read_bytes() for p in (ckpt / C.HEAD_WEIGHTS, ckpt / C.HEAD_CONFIG) if p.exists()}
    argv = ["classify", str(ckpt), "--head", "set", "--no-progress"]
    assert main(argv + ["--train", "--data-root", str(tiny[1]), "--no-cache"]) == 0
    saved = json.loads(capsys.readouterr().out)
    assert saved["n_train"] == 40 and saved["sentences"] > 40 and len(saved["saved"]) == 2
    fit_set_mlp = C.fit_set_mlp
    texts = ["The movie was great. The plot was dull.", "The acting was boring."]
    assert main(argv + ["--texts", *texts, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    from seqvae.api import SeqVAE

    on_cli_device = SeqVAE.from_pretrained(ckpt)  # the CLI's default device: CUDA when there is one
    head = C.SetMLP.load(ckpt)
    z = head.logits(Fe.sentence_features(on_cli_device, texts, progress=False)).detach().numpy()
    s = head.meta["length_scales"]  # fitted with the head; the texts have 2 and 1 sentences
    assert [r["sentences"] for r in rows] == [2, 1]
    np.testing.assert_allclose([r["p_positive"] for r in rows], 1 / (1 + np.exp(-np.array([s[1], s[0]]) * z)),
                               atol=1e-6)
    assert {p.name: p.read_bytes() for p in (ckpt / C.HEAD_WEIGHTS, ckpt / C.HEAD_CONFIG) if p.exists()} == linear
    assert json.loads((ckpt / C.SET_HEAD_CONFIG).read_text())["pool"] == "mean"
    fits = []  # --no-refit reaches the fit (40 labels hold nothing out, so the head itself cannot show it)
    monkeypatch.setattr(C, "fit_set_mlp", lambda *a, **k: fits.append(k["refit"]) or fit_set_mlp(*a, **k))
    assert main(argv + ["--train", "--set-pool", "attention", "--data-root", str(tiny[1]), "--no-cache",
                        "--no-refit"]) == 0
    capsys.readouterr()
    assert C.SetMLP.load(ckpt).pool == "attention" and fits == [False]
    monkeypatch.undo()
    assert main(argv + ["--train", "--set-members", "2", "--data-root", str(tiny[1]), "--no-cache"]) == 0
    assert json.loads(capsys.readouterr().out)["n_train"] == 40
    bag = C.SetMLP.load(ckpt)
    assert isinstance(bag, C.SetBag) and len(bag.members) == 2 and bag.meta["length_scales"]
    assert main(argv + ["--texts", *texts, "--json"]) == 0
    assert [r["sentences"] for r in json.loads(capsys.readouterr().out)] == [2, 1]
    assert main(argv + ["--train", "--set-members", "0"]) == 2
    assert "--set-members must be >= 1" in capsys.readouterr().err


def test_clause_heads_read_texts_by_clause(tiny, tmp_path, capsys, one_line):
    import shutil

    from seqvae.api import SeqVAE
    from seqvae.cli import main

    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny[0], ckpt)
    train = ["classify", str(ckpt), "--train", "--unit", "clause", "--data-root", str(tiny[1]), "--no-cache",
             "--no-progress"]
    assert main(train + ["--head", "set"]) == 0
    assert json.loads(capsys.readouterr().out)["unit"] == "clause"
    head = C.SetMLP.load(ckpt)
    assert C.head_unit(head) == "clause"
    texts = ["The movie was great, but the plot was dull.", "The acting was boring."]
    assert main(["classify", str(ckpt), "--head", "set", "--texts", *texts, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["sentences"], r["clauses"]) for r in rows] == [(1, 2), (1, 1)]
    z = head.decision(Fe.sentence_features(SeqVAE.from_pretrained(ckpt), texts, progress=False, unit="clause"))
    s = head.meta["length_scales"]  # scales by clause count
    np.testing.assert_allclose([r["p_positive"] for r in rows], 1 / (1 + np.exp(-np.array([s[1], s[0]]) * z)),
                               atol=1e-6)
    assert main(train) == 0  # the LR head on clause means; steering still reads one sentence
    assert json.loads((ckpt / C.HEAD_CONFIG).read_text())["unit"] == "clause"
    capsys.readouterr()
    one_line(["classify", ckpt, "--texts", "A fine film.", "--unit", "sentence"], "this head reads clauses")
    one_line(["classify", ckpt, "--calibrate", "--head", "set", "--unit", "sentence"], "this head reads clauses")
    one_line(["classify", ckpt, "--train", "--head", "review", "--unit", "clause"], "--head review reads sentences")
    one_line(["classify", ckpt, "--curve", "--unit", "clause", "--finetune"], "read sentences")
    cfg = json.loads((ckpt / C.HEAD_CONFIG).read_text())
    (ckpt / C.HEAD_CONFIG).write_text(json.dumps({**cfg, "unit": "word"}))
    one_line(["classify", ckpt, "--texts", "A fine film."], "reads texts as 'word'")


def test_one_line_errors(tiny, tmp_path, one_line, monkeypatch):
    import shutil
    import sys

    bare = tmp_path / "bare"
    shutil.copytree(tiny[0], bare, ignore=shutil.ignore_patterns("classifier.*", "features"))

    one_line(["classify", bare, "--texts", "a fine film"], "no classifier head")
    one_line(["classify", bare, "--curve", "--budgets", "ten"], "--budgets")
    one_line(["classify", bare, "--curve", "--budgets", "3,100"], "--budgets")
    one_line(["classify", bare, "--texts", "a fine film", "--batch-size", "0"], "--batch-size")
    one_line(["classify", bare, "--curve", "--seed", "-1"], "--seed")
    one_line(["classify", bare, "--curve", "--max-train-reviews", "-1"], "--max-train-reviews")
    one_line(["classify", bare, "--curve", "--max-train-reviews", "3"], "at least 4")
    one_line(["classify", bare, "--curve", "--out", tmp_path / "c", "--data-root", tmp_path / "none"], "none")
    assert not (tmp_path / "c").exists()  # nothing written when the data cannot be read
    one_line(["classify", tmp_path / "nope", "--train"], "no such checkpoint")
    monkeypatch.setitem(sys.modules, "sklearn", None)  # as if scikit-learn were not installed
    one_line(["classify", bare, "--train", "--data-root", tiny[1], "--no-cache", "--no-progress"], "scikit-learn")


def test_mlp_fits_tiny_budgets_without_early_stopping():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(6, 4)) + np.repeat([[2.0], [-2.0]], 3, axis=0)
    y = np.array([1, 1, 1, 0, 0, 0])
    model = C.fit_mlp(X, y, seed=0, hidden=8)
    assert (model.predict(X) == y).mean() == 1.0
