"""Tokenizers: sentencepiece training and round trips, the word vocabulary (PTB), loading errors."""

from pathlib import Path

import pytest

from seqvae.config import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from seqvae.tokenizer import (SPECIAL_PIECES, TOKENIZER_FILES, SentencePieceTokenizer, TokenizerError,
                              WordTokenizer, build_word_tokenizer, load_tokenizer, train_sentencepiece)

CORPUS = [
    "The movie was great and I loved it.",
    "This film is terrible, the plot makes no sense!",
    "What a wonderful cast, really?",
    "J. R. R. Tolkien would have hated the ending.",
    "My friend said the acting was fine at times.",
    "I watched it twice and it was boring both times.",
    "The director should have cut twenty minutes.",
    "A brilliant, funny and sad film about growing up.",
] * 20

PTB_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ptb" / "ptb.train.txt"


@pytest.fixture(scope="module")
def sp_tok():
    return train_sentencepiece(CORPUS, vocab_size=80, seed=0)


# ---------------------------------------------------------------------------- sentencepiece
def test_sentencepiece_special_ids_and_round_trip(sp_tok):
    tok = sp_tok
    assert tok.kind == "sentencepiece" and 8 < tok.vocab_size <= 80
    assert (tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id) == (PAD_ID, UNK_ID, BOS_ID, EOS_ID) == (0, 1, 2, 3)
    assert [tok.id_to_piece(i) for i in range(4)] == list(SPECIAL_PIECES)
    for text in CORPUS[:8]:
        ids = tok.encode(text)
        assert ids and all(4 <= i < tok.vocab_size for i in ids)  # no BOS/EOS/PAD, nothing unknown
        assert tok.decode(ids) == text
    assert tok.encode_batch(CORPUS[:8]) == [tok.encode(t) for t in CORPUS[:8]]


def test_sentencepiece_decode_rules_and_unknowns(sp_tok):
    tok = sp_tok
    ids = tok.encode("the movie \u2603 was great")  # a snowman was never seen in training
    assert UNK_ID in ids
    assert tok.decode(ids) == "the movie <unk> was great"
    # PAD and BOS skipped, everything from the first EOS on ignored; numpy/tensor-like ints accepted
    body = tok.encode("I loved it.")
    assert tok.decode([BOS_ID, *body, EOS_ID, *tok.encode("boring"), PAD_ID]) == "I loved it."
    assert tok.decode([PAD_ID, PAD_ID]) == ""
    with pytest.raises(TokenizerError):
        tok.decode([tok.vocab_size])


def test_sentencepiece_is_deterministic_and_saves_atomically(sp_tok, tmp_path):
    again = train_sentencepiece(CORPUS, vocab_size=80, seed=0)
    assert again.serialized() == sp_tok.serialized()
    path = sp_tok.save(tmp_path)
    assert path == tmp_path / "tokenizer.model" and path.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tokenizer.model"]  # no temp file left
    texts = CORPUS[:8] + ["unseen w\u00f6rds \u2603 here"]
    for loaded in (load_tokenizer(tmp_path), load_tokenizer(path), SentencePieceTokenizer(path.read_bytes())):
        assert isinstance(loaded, SentencePieceTokenizer) and loaded.vocab_size == sp_tok.vocab_size
        assert loaded.encode_batch(texts) == sp_tok.encode_batch(texts)


def test_sentencepiece_keeps_rare_characters():
    # every character seen in training gets a piece (character_coverage=1.0): a digit or capital
    # that occurs once must not become <unk>
    tok = train_sentencepiece(CORPUS + ["Zoe paid $6 for it."], vocab_size=90, seed=0)
    assert UNK_ID not in tok.encode("Zoe paid $6") and tok.decode(tok.encode("Zoe paid $6")) == "Zoe paid $6"


def test_sentencepiece_samples_large_inputs():
    # max_sentences caps what training sees; the result is still a working tokenizer
    tok = train_sentencepiece(CORPUS * 5, vocab_size=60, max_sentences=50, seed=1)
    assert tok.vocab_size <= 60 and tok.decode(tok.encode(CORPUS[0])) == CORPUS[0]


def test_sentencepiece_training_errors():
    with pytest.raises(TokenizerError, match="no sentences"):
        train_sentencepiece(["", "  "], vocab_size=50)
    with pytest.raises(TokenizerError, match="model_type"):
        train_sentencepiece(CORPUS, vocab_size=50, model_type="wordpiece")
    with pytest.raises(TokenizerError, match="sentencepiece training failed"):
        train_sentencepiece(CORPUS, vocab_size=500, hard_vocab_limit=True)
    # more characters than pieces (a large alphabet): said in seqvae's terms, not sentencepiece's options
    with pytest.raises(TokenizerError, match=r"need 14 pieces: --vocab-size 10 is too small for them"):
        train_sentencepiece(["the cat sat on the mat"] * 50, vocab_size=10)


# ---------------------------------------------------------------------------- word vocabulary
def test_word_tokenizer_order_unk_and_round_trip(tmp_path):
    tok = build_word_tokenizer(["b a <unk> c", "a b a", "d <unk>"])
    # frequency order (a:3, b:2), ties by string (c, d); "<unk>" is the special, never a word
    assert tok.words == list(SPECIAL_PIECES) + ["a", "b", "c", "d"]
    assert tok.kind == "word" and tok.vocab_size == 8
    assert tok.encode("a <unk> zebra d") == [4, UNK_ID, UNK_ID, 7]
    assert tok.encode("  a\tb \n") == [4, 5]
    # other special pieces in text are unknown words: text never yields PAD/BOS/EOS
    assert tok.encode("<pad> <s> </s>") == [UNK_ID] * 3
    assert tok.decode([BOS_ID, 4, UNK_ID, 7, EOS_ID, 5]) == "a <unk> d"
    assert tok.id_to_piece(5) == "b"
    path = tok.save(tmp_path)
    assert path == tmp_path / "vocab.txt"
    assert path.read_text().splitlines() == tok.words
    loaded = load_tokenizer(tmp_path)
    assert isinstance(loaded, WordTokenizer) and loaded.words == tok.words
    assert loaded.encode("a b c d zebra <unk>") == tok.encode("a b c d zebra <unk>")


def test_word_tokenizer_max_size():
    tok = build_word_tokenizer(["a a a b b c"], max_size=6)
    assert tok.words == list(SPECIAL_PIECES) + ["a", "b"] and tok.encode("c") == [UNK_ID]


def test_ptb_like_vocabulary_count():
    # PTB's 10k vocabulary = 9,999 words (one of them "<unk>") + <eos>. Ours: 4 specials + the
    # 9,998 words other than "<unk>" = 10,002 ids, with "<unk>" on the UNK id.
    words = [f"w{i}" for i in range(9998)] + ["<unk>"]
    tok = build_word_tokenizer([" ".join(words[i : i + 100]) for i in range(0, len(words), 100)])
    assert tok.vocab_size == 10_002 == 4 + 9_998
    assert tok.encode("<unk> w0 w9997") == [UNK_ID, tok.words.index("w0"), tok.words.index("w9997")]


@pytest.mark.skipif(not PTB_DATA.is_file(), reason="real PTB files not available")
def test_real_ptb_vocabulary_is_10002():
    lines = PTB_DATA.read_text().splitlines()
    tok = build_word_tokenizer(lines)
    assert tok.vocab_size == 10_002
    text = " ".join(lines[:2000])
    assert tok.encode(text).count(UNK_ID) == text.split().count("<unk>") > 0  # every other word is known


# ---------------------------------------------------------------------------- loading errors
def test_load_errors_are_one_line(tmp_path, sp_tok):
    def one_line_error(target, match):
        with pytest.raises(TokenizerError, match=match) as e:
            load_tokenizer(target)
        assert "\n" not in str(e.value)

    one_line_error(tmp_path / "missing", "no such file")
    one_line_error(tmp_path, "no tokenizer file")  # an empty dir
    (tmp_path / "tokenizer.model").write_bytes(b"\x00not a model at all\xff" * 10)
    one_line_error(tmp_path, "not a valid sentencepiece model")
    (tmp_path / "tokenizer.model").unlink()
    (tmp_path / "vocab.txt").write_text("<unk>\n<pad>\n<s>\n</s>\nthe\n")
    one_line_error(tmp_path, "must start with the special pieces")
    (tmp_path / "vocab.txt").write_text("\n".join(SPECIAL_PIECES) + "\nthe\nthe\n")
    one_line_error(tmp_path / "vocab.txt", "duplicate")
    (tmp_path / "vocab.txt").write_bytes(b"\xff\xfe\x00")
    one_line_error(tmp_path, "unreadable")
    assert TOKENIZER_FILES == ("tokenizer.model", "vocab.txt")


def test_foreign_sentencepiece_ids_are_rejected(tmp_path):
    import io

    import sentencepiece as spm

    buf = io.BytesIO()  # sentencepiece's own defaults: unk=0, bos=1, eos=2, no pad
    spm.SentencePieceTrainer.train(sentence_iterator=iter(CORPUS), model_writer=buf, vocab_size=60,
                                   hard_vocab_limit=False, minloglevel=2)
    with pytest.raises(TokenizerError, match="special ids"):
        SentencePieceTokenizer(buf.getvalue())


def test_a_model_trained_elsewhere_decodes_unknowns_spaced_as_its_pieces_say():
    # a sentencepiece model with seqvae's special ids but sentencepiece's own UNK surface (" \u2047 "): decode
    # still writes "<unk>", with the spaces the text had (it added one at each side of an UNK, and split words)
    import io

    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(CORPUS), model_writer=buf, vocab_size=80,
                                   hard_vocab_limit=False, minloglevel=2, pad_id=PAD_ID, unk_id=UNK_ID,
                                   bos_id=BOS_ID, eos_id=EOS_ID)
    tok = SentencePieceTokenizer(buf.getvalue())
    snow = "\u2603"  # never seen in training
    for text, decoded in ((f"the movie {snow} was great", "the movie <unk> was great"),
                          (f"the mo{snow}vie was", "the mo<unk>vie was"),
                          (f"{snow} the end", "<unk> the end"),
                          (f"the end {snow}", "the end <unk>"),
                          (f"the end{snow}.", "the end<unk>."),
                          (f"a {snow}{snow} b", "a <unk> b")):
        ids = tok.encode(text)
        assert UNK_ID in ids and tok.decode([BOS_ID, *ids, EOS_ID]) == decoded
    assert tok.decode([UNK_ID, UNK_ID]) == "<unk><unk>" and tok.decode([]) == ""


def test_decoded_unknowns_encode_back_to_the_same_ids(sp_tok):
    # decode writes UNK as "<unk>"; encode reads that text back as UNK with the spacing the unknown character
    # had, so a held-out sentence decoded for the report (or a printed sample) is the model's ids again. The
    # pieces were "<", "un", "k", ">"; the word vocabulary (PTB) always read "<unk>" as UNK.
    snow = "\u2603"  # never seen in training
    texts = [f"the movie {snow} was great", f"the mo{snow}vie was", f"{snow} the end", f"the end{snow}."]
    for text in texts:
        ids = sp_tok.encode(text)
        assert UNK_ID in ids
        assert sp_tok.encode(sp_tok.decode(ids)) == ids
    decoded = [sp_tok.decode(sp_tok.encode(t)) for t in texts]
    assert sp_tok.encode_batch(decoded) == [sp_tok.encode(t) for t in texts]
    assert sp_tok.encode("the <unk> was great") == sp_tok.encode(f"the {snow} was great")
    word = build_word_tokenizer(["the movie was great"])
    assert word.encode(word.decode(word.encode(f"the {snow} was great"))) == word.encode("the <unk> was great")
