import io
import shutil

import numpy as np
import pytest
from conftest import synthetic_sentences

from seqvae import splittext
from seqvae.config import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from seqvae.data import SentenceDataset
from seqvae.tokenizer import SPECIAL_PIECES, UNK_TEXT, SentencePieceTokenizer, TokenizerError, load_tokenizer


def test_training_text_counts_words_and_copies(tiny_data_dir, tmp_path):
    data = shutil.copytree(tiny_data_dir, tmp_path / "data")
    train = splittext.TrainingText.from_data_dir(data)
    assert (data / splittext.WORDS_CACHE).is_file()
    again = splittext.TrainingText.from_data_dir(data)  # from the cache
    assert again.counts == train.counts and np.array_equal(again.hashes, train.hashes)
    tok = load_tokenizer(data)
    from seqvae.data import SentenceDataset

    seen = tok.decode(SentenceDataset.from_dir(data, "train")[0].tolist())
    assert train.invented_rate([seen]) == 0.0 and train.invented_rate(["zorblax quinthe"]) == 1.0
    assert train.copy_rate([seen, "zorblax quinthe"]) == 0.5
    few = splittext.INVENTED_BELOW
    counts = splittext.TrainingText({"rare": few - 1, "common": few}, np.zeros(0, dtype=np.int64))
    assert counts.invented_rate(["rare common", "common unseen"]) == 0.5  # seen fewer than INVENTED_BELOW times


def test_copy_rate_counts_the_texts_that_are_training_sentences_whatever_the_hashes_order():
    """copy_rate bisects the sorted training hashes: texts whose hash is below, above or between all of them,
    repeated texts, and hashes given unsorted and repeated count as a plain set lookup says."""
    train_texts = [f"sentence number {i}" for i in range(50)]
    hashes = splittext.TrainingText._hash(train_texts)
    shuffled = np.concatenate([hashes[::-1], hashes[:7]])  # unsorted, with repeats
    train = splittext.TrainingText({}, shuffled)
    texts = train_texts[::3] + [f"unseen {i}" for i in range(40)] + train_texts[:2] * 3
    known = set(hashes.tolist())
    expected = sum(h in known for h in splittext.TrainingText._hash(texts).tolist()) / len(texts)
    assert train.copy_rate(texts) == expected and 0 < expected < 1
    assert splittext.TrainingText({}, np.zeros(0, dtype=np.uint64)).copy_rate(texts) == 0.0
    assert train.copy_rate([]) == 0.0


def _straightforward_held_out(data_dir, n, seed=0, min_words=5, max_words=25):
    """held_out as it was: every test sentence decoded, then filtered and shuffled; each text once."""
    tok, test = load_tokenizer(data_dir), SentenceDataset.from_dir(data_dir, "test")
    texts = [tok.decode(test[i].tolist()) for i in range(len(test))]
    texts = [t for t in texts if min_words <= len(t.split()) <= max_words]
    texts = [texts[i] for i in np.random.default_rng(seed).permutation(len(texts))]
    first = {}
    for t in texts:
        first.setdefault(" ".join(t.split()), t)  # the first of each, spacing aside
    once = list(first.values())
    repeats = f" ({len(texts) - len(once)} repeats left out)" if len(once) < len(texts) else ""
    note = f"asked for {n} sentences, the test split has {len(once)} of {min_words}-{max_words} words{repeats}: using all"
    return once[:n], note if len(once) < n else ""


@pytest.fixture(scope="module")
def odd_pieces_dir(tmp_path_factory):
    """A data dir whose sentencepiece model has byte pieces and pieces of several words (split_by_whitespace off),
    and whose test split is random ids: specials anywhere (PAD, BOS skipped, EOS cutting), UNK, bytes that
    make whitespace or invalid UTF-8, empty sentences, beside real sentences encoded."""
    import sentencepiece as spm

    sentences = synthetic_sentences(300) + ["Ünïcödé «quotes» — dashes… 日本語", "tabs\tand  double  spaces"]
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_writer=buf, vocab_size=400, byte_fallback=True,
        split_by_whitespace=False, pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
        pad_piece=SPECIAL_PIECES[0], unk_piece=SPECIAL_PIECES[1], bos_piece=SPECIAL_PIECES[2],
        eos_piece=SPECIAL_PIECES[3], unk_surface=UNK_TEXT, hard_vocab_limit=False, character_coverage=0.99,
        num_threads=1, minloglevel=2)
    tok = SentencePieceTokenizer(buf.getvalue())
    texts = tok.piece_texts()
    assert any(t is None for t in texts[4:]) and any(t and " " in t.strip() for t in texts)  # bytes; several words
    rng = np.random.default_rng(0)
    rows = tok.encode_batch(synthetic_sentences(200, seed=5))
    rows += [rng.integers(0, tok.vocab_size, rng.integers(0, 30)).tolist() for _ in range(300)]
    rows += [[], [EOS_ID], [4, UNK_ID, 5]]
    rows = [rows[i] for i in rng.permutation(len(rows))]
    d = tmp_path_factory.mktemp("odd") / "data"
    d.mkdir()
    tok.save(d)
    ds = SentenceDataset.from_lists(rows)
    n = len(rows)
    np.savez(d / "test.npz", ids=ds.ids.astype(np.int32), offsets=ds.offsets, review=np.arange(n),
             origin=np.zeros(n, dtype=np.int64), label=np.zeros(n, dtype=np.int64))
    return d


def test_word_counts_are_the_decoded_sentences_words(tiny_data_dir, odd_pieces_dir):
    for d in (tiny_data_dir, odd_pieces_dir):
        tok, test = load_tokenizer(d), SentenceDataset.from_dir(d, "test")
        expected = [len(tok.decode(test[i].tolist()).split()) for i in range(len(test))]
        assert splittext.word_counts(tok, test).tolist() == expected
    bad = SentenceDataset.from_lists([[4, 5], [4, tok.vocab_size], [-1]])  # as decode: an error, not a count
    with pytest.raises(TokenizerError, match="outside the vocabulary"):
        splittext.word_counts(tok, bad)


def test_held_out_is_the_straightforward_draw_and_decodes_only_what_it_returns(tiny_data_dir, odd_pieces_dir,
                                                                               monkeypatch):
    """held_out decoded every test sentence to count its words (3-5 s a call on IMDB's): now the sentences it
    returns, and those with a token that has no piece text (here the random ones), with the same result."""
    for d in (tiny_data_dir, odd_pieces_dir):
        for n, seed, lo, hi in ((1000, 0, 5, 25), (7, 3, 1, 6), (5, 1, 4, 4), (3, 0, 30, 40), (0, 2, 1, 99)):
            assert splittext.held_out(d, n, seed, lo, hi) == _straightforward_held_out(d, n, seed, lo, hi)
    tok = load_tokenizer(tiny_data_dir)
    texts = tok.piece_texts()
    test = SentenceDataset.from_dir(tiny_data_dir, "test")
    odd = sum(any(texts[i] is None for i in test[j].tolist()) for j in range(len(test)))
    decoded, decode = [], type(tok).decode
    monkeypatch.setattr(type(tok), "decode", lambda self, ids: decoded.append(ids) or decode(self, ids))
    got, _ = splittext.held_out(tiny_data_dir, 5, min_words=1, max_words=99)
    assert len(got) == 5 and len(test) > 5 + odd and len(decoded) == 5 + odd


def test_held_out_draws_a_repeated_test_sentence_once(tiny_data_dir, tmp_path):
    """A test split holds a sentence twice where prepare keeps repeats (PTB, kept whole; --no-dedup): the report's
    held-out draw took both (pairs interpolated to themselves, MI's N counting one sentence twice), where
    `report --texts` counts a repeated line once."""
    d = tmp_path / "data"
    shutil.copytree(tiny_data_dir, d)
    test = SentenceDataset.from_dir(tiny_data_dir, "test")
    rows = [test[i].tolist() for i in range(len(test))] * 2
    ds, n = SentenceDataset.from_lists(rows), len(rows)
    np.savez(d / "test.npz", ids=ds.ids.astype(np.int32), offsets=ds.offsets, review=np.arange(n),
             origin=np.zeros(n, dtype=np.int64), label=np.zeros(n, dtype=np.int64))
    once, _ = splittext.held_out(tiny_data_dir, 1000, min_words=1, max_words=99)
    texts, note = splittext.held_out(d, 1000, min_words=1, max_words=99)
    assert len(texts) == len(set(texts)) and sorted(texts) == sorted(once)
    assert note.endswith(f"has {len(once)} of 1-99 words ({len(once)} repeats left out): using all"), note
    few, note = splittext.held_out(d, 3, min_words=1, max_words=99)
    assert len(set(few)) == 3 and note == ""
