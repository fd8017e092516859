"""features: the mean of a review's units on a hand-made example, the sentence set, and features
that match the API and are cached (and never read stale). Tiny untrained model, fake reviews: fast."""

import numpy as np
import pytest

from seqvae.sentiment import features as F
from seqvae.sentiment.config import ClassifyError
from seqvae.sentiment.data import load_reviews


def test_mean_mu_on_a_hand_made_example():
    mu = np.array([[1.0, 2.0], [3.0, -4.0], [5.0, 6.0]], dtype=np.float32)   # (S=3, Z=2)
    S = F.SentenceSet(mu, np.array([0, 0, 2]), 3)  # review 1 has no sentence
    mean = F.mean_mu(S)
    np.testing.assert_allclose(mean, [[2.0, -1.0], [0.0, 0.0], [5.0, 6.0]])
    assert mean.dtype == np.float32
    assert S.summary() == {"reviews": 3, "sentences": 3, "empty_reviews": 1, "cached": False}


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


# ---------------------------------------------------------------------------- a tiny checkpoint and tiny IMDB
@pytest.fixture(scope="module")
def vae(tiny):
    from seqvae.api import SeqVAE

    return SeqVAE.from_pretrained(tiny[0], device="cpu")


def test_sentence_features_match_the_api_and_are_cached(tiny, vae, tmp_path, monkeypatch):
    from seqvae.sentences import review_to_sentences

    texts, labels = load_reviews("train", data_root=tiny[1])
    assert len(texts) == 40 and sorted(set(labels.tolist())) == [0, 1]
    texts = texts[:6] + ["<br /><br />"]  # the last review has no sentence
    S = F.sentence_features(vae, texts, split="train", cache_dir=tmp_path)
    X = F.mean_mu(S)
    assert X.shape == (7, 4) and not S.cached and S.summary()["empty_reviews"] == 1
    np.testing.assert_array_equal(X[-1], 0.0)
    np.testing.assert_allclose(X[2], vae.encode(review_to_sentences(texts[2])).mu.numpy().mean(0), atol=1e-6)
    assert len(S.mu) == sum(len(review_to_sentences(t)) for t in texts)
    np.testing.assert_allclose(S.mu[S.owner == 2], vae.encode(review_to_sentences(texts[2])).mu.numpy(), atol=1e-6)

    def boom(*a, **k):
        raise AssertionError("the encoder ran although the features are cached")

    monkeypatch.setattr(F, "encode_sentences", boom)
    again = F.sentence_features(vae, texts, split="train", cache_dir=tmp_path)
    assert again.cached and again.summary()["empty_reviews"] == 1
    np.testing.assert_array_equal(again.mu, S.mu)
    (path,) = tmp_path.glob("vae-train-sentences-*.npz")  # as written before: with logσ², read the same
    with np.load(path) as z:
        np.savez(path, mu=z["mu"], logvar=z["mu"], owner=z["owner"], n_reviews=z["n_reviews"])
    np.testing.assert_array_equal(F.sentence_features(vae, texts, split="train", cache_dir=tmp_path).mu, S.mu)
    with pytest.raises(AssertionError, match="encoder ran"):  # other texts: another key
        F.sentence_features(vae, texts[:5], split="train", cache_dir=tmp_path)
    with pytest.raises(AssertionError, match="encoder ran"):  # other weights: another key
        F.sentence_features(vae, texts, split="train", cache_dir=tmp_path, model_id="other")


@pytest.mark.parametrize("cut", ["empty", "truncated"])
def test_a_cut_cache_file_is_computed_again(tiny, vae, tmp_path, cut):
    """A cache file cut short (a partial copy of a checkpoint's features/) is recomputed, not a traceback."""
    texts, _ = load_reviews("train", data_root=tiny[1])
    S = F.sentence_features(vae, texts[:4], split="train", cache_dir=tmp_path)
    (path,) = tmp_path.glob("vae-train-sentences-*.npz")
    data = path.read_bytes()
    path.write_bytes(b"" if cut == "empty" else data[: len(data) // 2])
    again = F.sentence_features(vae, texts[:4], split="train", cache_dir=tmp_path)
    assert not again.cached
    np.testing.assert_array_equal(again.mu, S.mu)


def test_clause_unit_encodes_clauses_and_caches_apart(tiny, vae, tmp_path, monkeypatch):
    from seqvae.sentiment import units
    from seqvae.sentiment.units import review_to_clauses

    texts = ["The movie was great, but the plot was dull.", "The acting was boring.", "<br />"]
    S = F.sentence_features(vae, texts, split="custom", cache_dir=tmp_path, unit="clause")
    np.testing.assert_array_equal(S.owner, [0, 0, 1])  # two clauses, one, none
    np.testing.assert_allclose(S.mu[:2], vae.encode(review_to_clauses(texts[0])).mu.numpy(), atol=1e-6)
    sentences = F.sentence_features(vae, texts, split="custom", cache_dir=tmp_path / "s")
    assert len(sentences.mu) == 2 and not np.allclose(F.mean_mu(sentences)[0], F.mean_mu(S)[0])

    def boom(*a, **k):
        raise AssertionError("the encoder ran")

    monkeypatch.setattr(F, "encode_sentences", boom)
    with pytest.raises(AssertionError, match="encoder ran"):  # the sentence cache is not the clause cache
        F.sentence_features(vae, texts, split="custom", cache_dir=tmp_path)
    np.testing.assert_array_equal(F.sentence_features(vae, texts, split="custom", cache_dir=tmp_path / "s",
                                                      unit="sentence").mu, sentences.mu)
    assert F.sentence_features(vae, texts, split="custom", cache_dir=tmp_path, unit="clause").cached
    monkeypatch.setattr(F, "CLAUSE_CUT_VERSION", units.CLAUSE_CUT_VERSION + 1)  # a new cut: clause files are stale
    with pytest.raises(AssertionError, match="encoder ran"):
        F.sentence_features(vae, texts, split="custom", cache_dir=tmp_path, unit="clause")
    F.sentence_features(vae, texts, split="custom", cache_dir=tmp_path / "s")  # the sentence files are not
    with pytest.raises(ClassifyError, match="unit must be one of sentence, clause"):
        F.sentence_features(None, texts, unit="word", cache_dir="/nonexistent")


def test_the_cache_key_is_the_one_earlier_versions_wrote():
    """Feature files written before the sentiment package existed are still hits (same key)."""
    import hashlib
    import json

    raw = json.dumps({"v": 1, "model": "m", "pooling": "sentences", "split": "test", "texts": "t", "unit": "clause",
                      "cut": 2}, sort_keys=True)
    assert F.feature_key("m", "test", "t", "clause") == hashlib.sha256(raw.encode()).hexdigest()[:20]


def test_review_features_are_each_reviews_own_sentences_whatever_the_batching(vae):
    """The mean μ of a review, derived apart: its sentences encoded one at a time (no padding, no
    other review in the batch), averaged. Reviews of 0, 1 and several sentences, a sentence repeated
    inside a review and across reviews (encoded once, counted where it occurs), batches of 1 and 2."""
    from seqvae.sentences import review_to_sentences

    short, long_ = "The plot was dull.", "The movie was great, the acting was great and the music was moving."
    mid = "This film was slow and the ending was awful."
    reviews = [f"{short} {mid} {long_}", "<br />***<br />", mid, f"{long_} {long_} {short}", short]
    counts = [len(review_to_sentences(t)) for t in reviews]
    assert counts == [3, 0, 1, 3, 1]  # unique sentences, longest first, are not in the order they occur
    expected = np.zeros((len(reviews), vae.latent_dim))
    for r, t in enumerate(reviews):
        for s in review_to_sentences(t):
            expected[r] += vae.encode(s).mu[0].double().numpy() / counts[r]
    for batch_size in (1, 2, 256):
        S = F.encode_reviews(vae, reviews, batch_size=batch_size, progress=False)
        np.testing.assert_array_equal(S.units_per_review(), counts)
        np.testing.assert_allclose(F.mean_mu(S), expected, atol=1e-5)
    np.testing.assert_array_equal(F.mean_mu(S)[1], 0.0)  # no sentence: the zero row (the prior's mean)
