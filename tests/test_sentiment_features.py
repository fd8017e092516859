"""features: pooling on a hand-made example, the sentence set, and features that match the API and
are cached (and never read stale). Tiny untrained model, a handful of fake reviews: fast."""

import numpy as np
import pytest

from seqvae import features as F
from seqvae.classify import load_reviews


def test_pooling_on_a_hand_made_example():
    mu = np.array([[1.0, 2.0], [3.0, -4.0], [5.0, 6.0]], dtype=np.float32)   # (S=3, Z=2)
    logvar = np.array([[-1.0, -2.0], [-3.0, -4.0], [0.0, 2.0]], dtype=np.float32)
    owner = np.array([0, 0, 2])  # review 1 has no sentence
    mean = F.pool(mu, logvar, owner, 3, "mean")
    np.testing.assert_allclose(mean, [[2.0, -1.0], [0.0, 0.0], [5.0, 6.0]])
    meanmax = F.pool(mu, logvar, owner, 3, "meanmax")
    np.testing.assert_allclose(meanmax, [[2.0, -1.0, 3.0, 2.0], [0, 0, 0, 0], [5.0, 6.0, 5.0, 6.0]])
    mlv = F.pool(mu, logvar, owner, 3, "mean_logvar")
    np.testing.assert_allclose(mlv, [[2.0, -1.0, -2.0, -3.0], [0, 0, 0, 0], [5.0, 6.0, 0.0, 2.0]])
    assert mean.dtype == np.float32
    with pytest.raises(F.ClassifyError, match="pooling"):
        F.pool(mu, logvar, owner, 3, "median")
    with pytest.raises(F.ClassifyError, match="pooling"):  # checked before any model or cache is touched
        F.review_features(None, ["a fine film"], pooling="median", cache_dir="/nonexistent")


def test_sentence_set_selects_and_renumbers_reviews():
    mu = np.arange(10, dtype=np.float32).reshape(5, 2)   # rows 0-1: review 0, none for 1, rows 2-4: review 2
    S = F.SentenceSet(mu, np.array([0, 0, 2, 2, 2]), 3)
    np.testing.assert_array_equal(S.offsets, [0, 2, 2, 5])
    sub = S[np.array([2, 1, 0])]
    assert len(sub) == 3
    np.testing.assert_array_equal(sub.owner, [0, 0, 0, 2, 2])
    np.testing.assert_array_equal(sub.mu, mu[[2, 3, 4, 0, 1]])
    assert len(S[np.array([1])].mu) == 0
    both = S.concat(sub)
    assert len(both) == 6 and both.n_reviews == 6
    np.testing.assert_array_equal(both.owner, [0, 0, 2, 2, 2, 3, 3, 3, 5, 5])
    np.testing.assert_array_equal(both[np.array([3, 5])].mu, sub[np.array([0, 2])].mu)
    with pytest.raises(ValueError, match="non-decreasing"):
        F.SentenceSet(mu, np.array([0, 2, 1, 2, 2]), 3)
    with_lv = F.SentenceSet(mu, S.owner, 3, logvar=mu + 100)  # logσ² follows its sentences where known
    np.testing.assert_array_equal(with_lv[np.array([2, 0])].logvar, with_lv[np.array([2, 0])].mu + 100)
    np.testing.assert_array_equal(with_lv.concat(with_lv).logvar, np.concatenate([mu, mu]) + 100)
    assert with_lv.concat(S).logvar is None and S[np.array([0])].logvar is None


# ---------------------------------------------------------------------------- a tiny checkpoint and tiny IMDB
@pytest.fixture(scope="module")
def vae(tiny):
    from seqvae.api import SeqVAE

    return SeqVAE.from_pretrained(tiny[0], device="cpu")


def test_review_features_match_the_api_and_are_cached(tiny, vae, tmp_path, monkeypatch):
    from seqvae.corpus import review_to_sentences

    texts, labels = load_reviews("train", data_root=tiny[1])
    assert len(texts) == 40 and sorted(set(labels.tolist())) == [0, 1]
    texts = texts[:6] + ["<br /><br />"]  # the last review has no sentence
    f = F.review_features(vae, texts, pooling="mean", split="train", cache_dir=tmp_path)
    assert f.X.shape == (7, 4) and not f.cached and f.n_empty == 1
    np.testing.assert_array_equal(f.X[-1], 0.0)
    sents = review_to_sentences(texts[2])
    np.testing.assert_allclose(f.X[2], vae.encode(sents).mu.numpy().mean(0), atol=1e-6)
    assert f.n_sentences == sum(len(review_to_sentences(t)) for t in texts)

    def boom(*a, **k):
        raise AssertionError("the encoder ran although the features are cached")

    monkeypatch.setattr(F, "encode_sentences", boom)
    again = F.review_features(vae, texts, pooling="mean", split="train", cache_dir=tmp_path)
    assert again.cached and again.n_empty == 1
    np.testing.assert_array_equal(again.X, f.X)
    other = F.review_features(vae, texts, pooling="meanmax", split="train", cache_dir=tmp_path)  # written on the miss
    assert other.X.shape == (7, 8)
    sents = F.sentence_features(vae, texts, split="train", cache_dir=tmp_path)  # also written on the miss
    assert len(sents) == 7 and len(sents.mu) == f.n_sentences and sents.offsets[-2] == sents.offsets[-1]
    post = vae.encode(review_to_sentences(texts[2]))
    np.testing.assert_allclose(sents.mu[sents.owner == 2], post.mu.numpy(), atol=1e-6)
    np.testing.assert_allclose(sents.logvar[sents.owner == 2], post.logvar.numpy(), atol=1e-6)  # kept with μ
    assert F.sentence_features(vae, texts, split="train", cache_dir=tmp_path, logvar=True).logvar is not None
    (path,) = tmp_path.glob("vae-train-sentences-*.npz")  # as written before logσ² was kept
    with np.load(path) as z:
        np.savez(path, mu=z["mu"], owner=z["owner"], n_reviews=z["n_reviews"])
    assert F.sentence_features(vae, texts, split="train", cache_dir=tmp_path).logvar is None  # still a hit
    with pytest.raises(AssertionError, match="encoder ran"):  # but not for a head that needs logσ²
        F.sentence_features(vae, texts, split="train", cache_dir=tmp_path, logvar=True)
    with pytest.raises(AssertionError, match="encoder ran"):  # other texts: another key
        F.review_features(vae, texts[:5], pooling="mean", split="train", cache_dir=tmp_path)
    with pytest.raises(AssertionError, match="encoder ran"):  # other weights: another key
        F.review_features(vae, texts, pooling="mean", split="train", cache_dir=tmp_path, model_id="other")


def test_clause_unit_encodes_clauses_and_caches_apart(tiny, vae, tmp_path, monkeypatch):
    from seqvae.corpus import review_to_clauses

    texts = ["The movie was great, but the plot was dull.", "The acting was boring.", "<br />"]
    S = F.sentence_features(vae, texts, split="custom", cache_dir=tmp_path, unit="clause")
    np.testing.assert_array_equal(S.owner, [0, 0, 1])  # two clauses, one, none
    np.testing.assert_allclose(S.mu[:2], vae.encode(review_to_clauses(texts[0])).mu.numpy(), atol=1e-6)
    f = F.review_features(vae, texts, split="custom", cache_dir=tmp_path, unit="clause")  # written on the miss
    assert f.cached and f.n_sentences == 3
    sentences = F.review_features(vae, texts, split="custom", cache_dir=tmp_path / "s")
    assert sentences.n_sentences == 2 and not np.allclose(sentences.X[0], f.X[0])

    def boom(*a, **k):
        raise AssertionError("the encoder ran")

    monkeypatch.setattr(F, "encode_sentences", boom)
    with pytest.raises(AssertionError, match="encoder ran"):  # the sentence cache is not the clause cache
        F.review_features(vae, texts, split="custom", cache_dir=tmp_path)
    np.testing.assert_array_equal(F.review_features(vae, texts, split="custom", cache_dir=tmp_path / "s",
                                                    unit="sentence").X, sentences.X)
    monkeypatch.setattr(F, "CLAUSE_CUT_VERSION", F.CLAUSE_CUT_VERSION + 1)  # a new cut: clause files are stale
    with pytest.raises(AssertionError, match="encoder ran"):
        F.review_features(vae, texts, split="custom", cache_dir=tmp_path, unit="clause")
    F.review_features(vae, texts, split="custom", cache_dir=tmp_path / "s")  # the sentence files are not
    with pytest.raises(F.ClassifyError, match="unit must be one of sentence, clause"):
        F.review_features(None, texts, unit="word", cache_dir="/nonexistent")
