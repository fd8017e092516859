"""Tokenizers: text <-> token ids, with the same four special ids everywhere.

Two kinds, one interface:

  SentencePieceTokenizer  subword pieces (IMDB); trained in memory by `train_sentencepiece`,
                          stored as `tokenizer.model`.
  WordTokenizer           whitespace tokens with a fixed vocabulary (PTB, whose text is already
                          tokenised and has its own `<unk>`); built by `build_word_tokenizer`,
                          stored as `vocab.txt` (one token per line, in id order).

Special ids (seqvae.config): PAD=0, UNK=1, BOS=2, EOS=3. `encode` never adds BOS/EOS (the data
loader and the model do that); `decode` skips PAD/BOS, stops at the first EOS and renders UNK
as "<unk>", which `encode` reads back as UNK: encode(decode(ids)) == ids for either kind. `load_tokenizer(dir)` finds whichever file a directory holds; a prepared data dir
and a checkpoint dir both hold exactly one.
"""

from __future__ import annotations

import io
import os
import random
import re
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

from . import atomic
from .config import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from .display import one_line

TOKENIZER_FILES = ("tokenizer.model", "vocab.txt")
SPECIAL_PIECES = ("<pad>", "<unk>", "<s>", "</s>")  # ids 0..3; the text of each special id
UNK_TEXT = "<unk>"                                  # how decode renders an unknown token
# Characters that sentencepiece encoding reads as unknown (noncharacters: no text should hold them), of which a
# SentencePieceTokenizer writes the first that none of its pieces has where a text says "<unk>".
UNK_STANDINS = ("\uffff", "\ufdd0", "\U0010ffff")
# sentencepiece trains on a uniform sample of at most this many sentences. On IMDB (892k train
# sentences) a 300k sample gives within 0.3% of the full model's tokens per sentence in ~1/7 of the time.
MAX_SP_SENTENCES = 300_000
SP_TRAIN_THREADS = 2  # fixed, not os.cpu_count(): the trained model depends on the thread count


class TokenizerError(ValueError):
    """A tokenizer file is missing, corrupt, or cannot be trained (message is one line)."""


# ---------------------------------------------------------------------------- base class
class Tokenizer:
    """Common interface. Subclasses set `vocab_size`, `kind` and implement the abstract methods."""

    pad_id = PAD_ID
    unk_id = UNK_ID
    bos_id = BOS_ID
    eos_id = EOS_ID
    kind = "base"
    filename = ""
    vocab_size: int

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` (no BOS/EOS); anything outside the vocabulary, and "<unk>", becomes unk_id."""
        raise NotImplementedError

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def id_to_piece(self, i: int) -> str:
        raise NotImplementedError

    def piece_texts(self) -> list[str | None]:
        """What each id adds to a decoded sentence, in id order: None for ids decode never writes as text
        (the special ids, and UNK), a leading space where the token starts a new word."""
        raise NotImplementedError

    def save(self, directory: str | Path) -> Path:
        """Write the tokenizer file into `directory` (atomically); returns its path."""
        raise NotImplementedError

    def _content_ids(self, ids: Iterable[int]) -> list[int]:
        """The ids decode renders: PAD/BOS dropped, everything from the first EOS on cut."""
        out = []
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if i in (self.pad_id, self.bos_id):
                continue
            if not 0 <= i < self.vocab_size:
                raise TokenizerError(f"token id {i} is outside the vocabulary (size {self.vocab_size})")
            out.append(i)
        return out

    def decode(self, ids: Iterable[int]) -> str:
        raise NotImplementedError

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"


# ---------------------------------------------------------------------------- sentencepiece
class SentencePieceTokenizer(Tokenizer):
    """A sentencepiece model whose special ids are seqvae's (checked on load)."""

    kind = "sentencepiece"
    filename = "tokenizer.model"

    def __init__(self, model: str | Path | bytes, num_threads: int | None = None):
        import sentencepiece as spm

        self.num_threads = num_threads or min(os.cpu_count() or 1, 4)  # for encode_batch
        if isinstance(model, (bytes, bytearray)):
            proto, where = bytes(model), "serialized model"
        else:
            path = Path(model)
            if not path.is_file():
                raise TokenizerError(f"{path}: no such tokenizer file")
            proto, where = path.read_bytes(), str(path)
        self.sp = spm.SentencePieceProcessor()
        try:
            self.sp.LoadFromSerializedProto(proto)
        except Exception as e:  # sentencepiece raises RuntimeError/OSError for a bad proto
            raise TokenizerError(f"{where}: not a valid sentencepiece model ({one_line(e)})") from None
        self._proto = proto
        got = (self.sp.pad_id(), self.sp.unk_id(), self.sp.bos_id(), self.sp.eos_id())
        if got != (PAD_ID, UNK_ID, BOS_ID, EOS_ID):
            raise TokenizerError(f"{where}: special ids (pad, unk, bos, eos) are {got}, expected "
                                 f"{(PAD_ID, UNK_ID, BOS_ID, EOS_ID)}")
        self.vocab_size = self.sp.get_piece_size()
        self._unk_surface_ok = self.sp.decode([UNK_ID]) == UNK_TEXT  # true for models trained here
        # "<unk>" in a text is encoded as an unknown character there would be: UNK, spaced as that character
        # (the pieces would be "<", "un", "k", ">": a sentence decoded with an UNK came back as other ids).
        in_pieces = set("".join(self.sp.id_to_piece(i) for i in range(self.vocab_size)))
        self._unk_standin = next((c for c in UNK_STANDINS if c not in in_pieces and self.sp.encode(c)[-1:] == [UNK_ID]),
                                 None)

    def _read_unk(self, text: str) -> str:
        return text.replace(UNK_TEXT, self._unk_standin) if self._unk_standin and UNK_TEXT in text else text

    def encode(self, text: str) -> list[int]:
        return self.sp.encode(self._read_unk(text), out_type=int)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return self.sp.encode([self._read_unk(t) for t in texts], out_type=int, num_threads=self.num_threads)

    def decode(self, ids: Iterable[int]) -> str:
        ids = self._content_ids(ids)
        if self._unk_surface_ok:
            return self.sp.decode(ids)
        # A model trained elsewhere: decode run by run so that UNK still reads "<unk>", spaced as the pieces
        # say (sp.decode drops the space a run's first piece starts with; the one before an UNK it keeps).
        text, run = [], []
        for i in [*ids, self.unk_id]:
            if i != self.unk_id:
                run.append(i)
                continue
            if run:
                starts_word = bool(text) and self.sp.id_to_piece(run[0]).startswith("\u2581")
                text.append((" " if starts_word else "") + self.sp.decode(run))
                run = []
            text.append(UNK_TEXT)
        return "".join(text[:-1])

    def id_to_piece(self, i: int) -> str:
        if not 0 <= int(i) < self.vocab_size:
            raise TokenizerError(f"token id {i} is outside the vocabulary (size {self.vocab_size})")
        return SPECIAL_PIECES[int(i)] if int(i) < len(SPECIAL_PIECES) else self.sp.id_to_piece(int(i))

    def piece_texts(self) -> list[str | None]:
        return [None if i < len(SPECIAL_PIECES) or self.sp.is_byte(i) else self.sp.id_to_piece(i).replace("\u2581", " ")
                for i in range(self.vocab_size)]

    def serialized(self) -> bytes:
        return self._proto

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / self.filename
        atomic.write_bytes(path, self._proto)
        return path


def train_sentencepiece(sentences: Iterable[str], vocab_size: int = 8000, model_type: str = "unigram",
                        seed: int = 0, *, max_sentences: int = MAX_SP_SENTENCES,
                        character_coverage: float = 1.0, max_sentence_length: int = 8192,
                        num_threads: int | None = None, hard_vocab_limit: bool = False,
                        ) -> SentencePieceTokenizer:
    """Train a sentencepiece model in memory and return it.

    PAD=0 UNK=1 BOS=2 EOS=3 are fixed. When there are more than `max_sentences` sentences a
    uniform sample (seeded) is used. Deterministic for a given input, seed and num_threads
    (sentencepiece's result depends on the thread count, so the default is a fixed number).
    With hard_vocab_limit=False (default) a corpus too small for `vocab_size` gets a smaller
    vocabulary instead of an error; check `.vocab_size`. character_coverage=1.0 (sentencepiece's
    advice for small alphabets): at 0.9995, IMDB lost "6", "Z", "Q", "X", "$" and "é" to <unk>.
    """
    import sentencepiece as spm

    if model_type not in ("unigram", "bpe"):
        raise TokenizerError(f"sentencepiece model_type must be 'unigram' or 'bpe', got {model_type!r}")
    sample = _reservoir_sample((s for s in sentences if s and not s.isspace()), max_sentences, seed)
    if not sample:
        raise TokenizerError("cannot train a tokenizer: no sentences")
    buf = io.BytesIO()
    spm.set_random_generator_seed(seed)
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sample), model_writer=buf,
            vocab_size=vocab_size, model_type=model_type, character_coverage=character_coverage,
            pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
            pad_piece=SPECIAL_PIECES[0], unk_piece=SPECIAL_PIECES[1],
            bos_piece=SPECIAL_PIECES[2], eos_piece=SPECIAL_PIECES[3], unk_surface=UNK_TEXT,
            input_sentence_size=0, shuffle_input_sentence=False,  # we sampled already
            max_sentence_length=max_sentence_length, hard_vocab_limit=hard_vocab_limit,
            num_threads=num_threads or SP_TRAIN_THREADS,
            minloglevel=2,  # quiet; errors still raise
        )
    except (RuntimeError, OSError) as e:
        chars = re.search(r"smaller than required_chars\. (\d+) vs (\d+)", str(e))
        if chars:  # its own advice names options seqvae does not have
            raise TokenizerError(f"the sentences' characters and the special ids need {int(chars[2]):,} pieces: "
                                 f"--vocab-size {int(chars[1]):,} is too small for them") from None
        raise TokenizerError(f"sentencepiece training failed: {one_line(e)}") from None
    return SentencePieceTokenizer(buf.getvalue())


def _reservoir_sample(items: Iterable[str], k: int, seed: int) -> list[str]:
    """Up to k items, uniformly sampled (all of them, in order, when there are at most k)."""
    rng = random.Random(seed)
    out: list[str] = []
    for n, item in enumerate(items):
        if n < k:
            out.append(item)
        else:
            j = rng.randrange(n + 1)
            if j < k:
                out[j] = item
    return out


# ---------------------------------------------------------------------------- word vocabulary
class WordTokenizer(Tokenizer):
    """Whitespace tokens; vocabulary = the 4 special pieces, then words in id order.

    The literal token "<unk>" (PTB marks out-of-vocabulary words with it) maps to unk_id; the
    other special pieces appearing in text are treated as unknown words, so text never produces
    PAD/BOS/EOS ids.
    """

    kind = "word"
    filename = "vocab.txt"

    def __init__(self, words: Sequence[str]):
        words = list(words)
        if tuple(words[: len(SPECIAL_PIECES)]) != SPECIAL_PIECES:
            raise TokenizerError(f"word vocabulary must start with the special pieces {' '.join(SPECIAL_PIECES)}")
        for w in words:
            if not w or any(c.isspace() for c in w):
                raise TokenizerError(f"word vocabulary entry {w!r} is empty or contains whitespace")
        self.words = words
        self.index = {w: i for i, w in enumerate(words)}
        if len(self.index) != len(words):
            dup = next(w for w, c in Counter(words).items() if c > 1)
            raise TokenizerError(f"word vocabulary has a duplicate entry {dup!r}")
        for special in (SPECIAL_PIECES[0], SPECIAL_PIECES[2], SPECIAL_PIECES[3]):
            del self.index[special]  # text cannot produce PAD/BOS/EOS
        self.vocab_size = len(words)

    def encode(self, text: str) -> list[int]:
        get = self.index.get
        return [get(w, UNK_ID) for w in text.split()]

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join(self.words[i] for i in self._content_ids(ids))

    def id_to_piece(self, i: int) -> str:
        if not 0 <= int(i) < self.vocab_size:
            raise TokenizerError(f"token id {i} is outside the vocabulary (size {self.vocab_size})")
        return self.words[int(i)]

    def piece_texts(self) -> list[str | None]:
        return [None if i < len(SPECIAL_PIECES) else " " + w for i, w in enumerate(self.words)]

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / self.filename
        atomic.write_text(path, "\n".join(self.words) + "\n")
        return path

    @classmethod
    def from_file(cls, path: str | Path) -> "WordTokenizer":
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise TokenizerError(f"{path}: no such tokenizer file") from None
        except (UnicodeDecodeError, OSError) as e:
            raise TokenizerError(f"{path}: unreadable vocabulary ({one_line(e)})") from None
        try:
            return cls(text.split("\n")[:-1] if text.endswith("\n") else text.split("\n"))
        except TokenizerError as e:
            raise TokenizerError(f"{path}: {e}") from None


def build_word_tokenizer(sentences: Iterable[str], max_size: int | None = None) -> WordTokenizer:
    """Vocabulary of whitespace tokens, most frequent first (ties by string).

    `max_size` caps the whole vocabulary, special pieces included (None = keep every word).
    "<unk>" in the text is never a word of its own: it is the UNK special.
    """
    counts = Counter(w for s in sentences for w in s.split())
    for special in SPECIAL_PIECES:
        counts.pop(special, None)
    words = sorted(counts, key=lambda w: (-counts[w], w))
    if max_size is not None:
        if max_size < len(SPECIAL_PIECES):
            raise TokenizerError(f"word vocabulary max_size must be at least {len(SPECIAL_PIECES)}")
        words = words[: max_size - len(SPECIAL_PIECES)]
    return WordTokenizer(list(SPECIAL_PIECES) + words)


# ---------------------------------------------------------------------------- loading
def load_tokenizer(directory_or_file: str | Path) -> Tokenizer:
    """Load `tokenizer.model` or `vocab.txt` (a file, or a directory holding one of them)."""
    p = Path(directory_or_file)
    if p.is_dir():
        found = [p / name for name in TOKENIZER_FILES if (p / name).is_file()]
        if not found:
            raise TokenizerError(f"{p}: no tokenizer file ({' or '.join(TOKENIZER_FILES)})")
        p = found[0]
    elif not p.exists():
        raise TokenizerError(f"{p}: no such file or directory")
    if p.name == WordTokenizer.filename or p.suffix == ".txt":
        return WordTokenizer.from_file(p)
    return SentencePieceTokenizer(p)


def same_tokenizer(a: str | Path, b: str | Path) -> bool:
    """Whether the tokenizers in `a` and `b` (dirs or files) have the same pieces with the same ids."""
    ta, tb = load_tokenizer(a), load_tokenizer(b)
    return (type(ta) is type(tb) and ta.vocab_size == tb.vocab_size
            and all(ta.id_to_piece(i) == tb.id_to_piece(i) for i in range(ta.vocab_size)))
