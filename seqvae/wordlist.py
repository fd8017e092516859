"""Known words: the whole words a corpus uses, and a decoding filter that writes only those.

A subword decoder can glue pieces into words no review has ("Forcaroting", "spisodicate").
A checkpoint may carry a word list (`words.txt`: the lowercased words seen at least MIN_COUNT
times in its training sentences). Decoding can then be held to it: a token is accepted only if
every word it completes is in the list and the word it leaves open is the start of one
(`WordFilter`). Sampling stays exact: a rejected token is removed and the row drawn again from
what is left, which is drawing from the sampler's distribution (after temperature, top-k, top-p)
restricted to the allowed tokens; when that holds none, from the allowed tokens' distribution cut the same way.
A row whose open word no allowed token can go on with (at max_len: finish) ends before that word.

    words = KnownWords.from_counts(counts)       # word -> count, e.g. splittext.TrainingText.counts
    words.save(ckpt_dir); words = load_words(ckpt_dir)   # None if the dir has no words.txt
    filt = words.filter(piece_texts, end_id)     # piece_texts[i]: the text token i adds (None: never)

A word is a run of letters a-z with at most one inner apostrophe, lowercased (`WORD`); digits
and other symbols are not words and are never held back.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import torch

from . import atomic

WORD = r"[a-z]+(?:'[a-z]+)?"  # one word of lowercased text
MIN_COUNT = 5                 # a word seen fewer times than this in the training sentences is not known
WORDS_FILE = "words.txt"
HEADER = "# seqvae known words"
MEMO_SIZE = 1 << 20           # advance answers remembered (then forgotten all at once)
TRIES = 4                     # rejections per row and step before the filter works out all the row's allowed tokens
ALL_MEMO_CELLS = 1 << 24      # allowed_all answers remembered, in tokens (V each; then forgotten all at once)

_WORD_RE = re.compile(WORD)
_GOES_ON = {*"abcdefghijklmnopqrstuvwxyz'", ""}  # a token starting so (or empty) may go on with the open word


def _bools(flags: list[bool], shape: torch.Size, device: torch.device) -> torch.Tensor:
    """A bool tensor of `shape` from flat Python bools (read as bytes: torch.tensor on a list is far slower)."""
    if not flags:
        return torch.zeros(shape, dtype=torch.bool, device=device)
    return torch.frombuffer(bytearray(flags), dtype=torch.bool).view(shape).to(device)


class WordListError(ValueError):
    """A word list that cannot be read or used (one-line message)."""


class KnownWords:
    """A set of lowercased words, with every prefix of them (to accept a word still being written)."""

    def __init__(self, words: Iterable[str], min_count: int = MIN_COUNT):
        self.words = frozenset(words)
        self.min_count = min_count
        bad = next((w for w in self.words if not _WORD_RE.fullmatch(w)), None)
        if bad is not None:
            raise WordListError(f"not a lowercased word: {bad!r}")
        self.prefixes = frozenset(w[:i] for w in self.words for i in range(1, len(w) + 1))
        self._seen: dict[str, dict[str | None, str | None]] = {}  # advance's answers: open word -> text -> answer
        self._remembered = 0  # answers in _seen

    @classmethod
    def from_counts(cls, counts: Mapping[str, int], min_count: int = MIN_COUNT) -> "KnownWords":
        return cls((w for w, c in counts.items() if c >= min_count and _WORD_RE.fullmatch(w)), min_count)

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.words

    def save(self, directory: str | Path) -> Path:
        """words.txt in `directory`, written atomically: a header line, then one word per line, sorted."""
        path = Path(directory) / WORDS_FILE
        lines = [f"{HEADER}: min_count={self.min_count} words={len(self.words)}", *sorted(self.words)]
        atomic.write_text(path, "\n".join(lines) + "\n")
        return path

    def advance(self, tail: str, text: str) -> str | None:
        """Write `text` after the open word `tail`: the new open word ("" if none), or None if the text
        completes a word not in the list or opens one that no listed word starts with.

        A word is open while it touches the end of the text (it may go on), or is followed only by an
        apostrophe (which may be inner: "don'" + "t"). Lowercases the text."""
        known = self._answers(tail)
        if text not in known:
            known[text] = self._advance(tail, text)
            self._remembered += 1
        return known[text]

    def advance_all(self, tail: str, texts: Sequence[str | None]) -> list[str | None]:
        """[advance(tail, t) for t in texts], None where t is None: one call for many texts after the same open
        word (a row's candidate tokens), the remembered answers read in one pass."""
        known = self._answers(tail)
        try:
            return [known[t] for t in texts]
        except KeyError:  # some not remembered yet
            for t in texts:
                if t not in known:
                    known[t] = None if t is None else self._advance(tail, t)
                    self._remembered += 1
            return [known[t] for t in texts]

    def _answers(self, tail: str) -> dict[str | None, str | None]:
        """The remembered answers after the open word `tail` (all forgotten once there are MEMO_SIZE)."""
        if self._remembered >= MEMO_SIZE:
            self._seen.clear()
            self._remembered = 0
        known = self._seen.get(tail)
        if known is None:
            known = self._seen[tail] = {}
        return known

    def _advance(self, tail: str, text: str) -> str | None:
        s = tail + text.lower()
        open_at = None
        for m in _WORD_RE.finditer(s):
            end = m.end()
            if end == len(s) or (end == len(s) - 1 and s[end] == "'"):
                w = s[m.start():]
                if w not in self.prefixes and not (w.endswith("'") and w[:-1] in self.words):
                    return None
                open_at = m.start()
            elif m.group() not in self.words:
                return None
        return s[open_at:] if open_at is not None else ""

    def filter(self, piece_texts: Sequence[str | None], end_id: int) -> "WordFilter":
        return WordFilter(self, piece_texts, end_id)


def load_words(directory: str | Path) -> KnownWords | None:
    """The word list in a checkpoint dir, or None if it has none. Strict: a file that is not a whole
    word list (no header, a count that does not match, a line that is not a word) is a WordListError."""
    path = Path(directory) / WORDS_FILE
    if not path.is_file():
        return None
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise WordListError(f"{path}: unreadable ({str(e).splitlines()[0]})") from None
    m = re.fullmatch(re.escape(HEADER) + r": min_count=(\d+) words=(\d+)", lines[0]) if lines else None
    if m is None:
        raise WordListError(f"{path}: not a seqvae word list (its first line should start with {HEADER!r})")
    if int(m.group(2)) != len(lines) - 1:
        raise WordListError(f"{path}: the header says {m.group(2)} words, the file has {len(lines) - 1} "
                            "(a partial copy?)")
    try:
        return KnownWords(lines[1:], int(m.group(1)))
    except WordListError as e:
        raise WordListError(f"{path}: {e}") from None


class WordFilter:
    """Per-row state of a decoding held to known words: the open word of each row, and where the row may end.

    The decoder calls `start(n)` once, `choose(logits, pick)` at every step (it returns the rows'
    next tokens and moves their state on), and `keep(mask)` when rows leave. Beam search takes its beams'
    extensions from `best(logits, k, candidates)` and calls `reorder` when it regroups its beams.

    A row may find no allowed token: its open word is not listed and no token goes on with it (at the last
    step, max_len: none finishes it). Such a row ends before that word: `safe[i]` is how many of row i's tokens
    it may end with, all of them when no word is open, else those before the token that began the open word
    (less a trailing space; none if the word is the row's first). `cut` names the rows that end so at the latest
    step, {row: tokens kept}: choose gives them the end token, best no extension, and the decoder cuts them back.
    """

    def __init__(self, words: KnownWords, piece_texts: Sequence[str | None], end_id: int):
        self.words = words
        self.texts = list(piece_texts)
        self.texts[end_id] = " "  # the end of the sentence closes the open word
        self.end_id = end_id
        self.sizes = [len(t.lower()) if t is not None else 0 for t in self.texts]  # characters `advance` reads
        self.blank = [t is not None and not t.strip() for t in self.texts]  # writes only spaces (or nothing)
        self.tails: list[str] = []
        self.safe: list[int] = []  # how many of each row's tokens it may end with (see the class)
        self.written = 0  # tokens each row has written (all rows the same: one per step)
        self.cut: dict[int, int] = {}  # rows of the latest step that end before their open word -> tokens kept
        # For `allowed_all`: what each token may do with no word open, which tokens close an open word (they
        # start with neither a letter nor an apostrophe), and the others by their first character.
        self.free_ok = torch.tensor([t is not None and words.advance("", t) is not None for t in self.texts])
        self.closing = torch.tensor([t is not None and t[:1].lower() not in _GOES_ON for t in self.texts])
        self.going_on: dict[str, list[int]] = {}  # first character ("" for an empty text) -> tokens
        for i, t in enumerate(self.texts):
            if t is not None and t[:1].lower() in _GOES_ON:
                self.going_on.setdefault(t[:1].lower(), []).append(i)
        self.all_seen: dict[tuple[str, bool], torch.Tensor] = {}  # allowed_all's answers (shared by `fresh` copies)

    def fresh(self) -> "WordFilter":
        """A filter with no rows yet that shares this one's tables (cheap: one per decoding call)."""
        new = copy.copy(self)
        new.start(0)
        return new

    def start(self, n: int) -> None:
        self.tails, self.safe, self.written, self.cut = [""] * n, [0] * n, 0, {}

    def keep(self, mask: torch.Tensor) -> None:
        keep = mask.tolist()
        self.tails = [t for t, k in zip(self.tails, keep) if k]
        self.safe = [s for s, k in zip(self.safe, keep) if k]

    def _safe_after(self, row: int, token: int, after: str) -> int:
        """Row `row`'s `safe` once it writes `token`, which leaves the open word `after`: all of it when no word is
        open and the token writes more than spaces; else, when the token closes the open word or begins a new one,
        the best end before the token (the word it closed, if any, is listed); else (the token goes on with the
        open word) as it was."""
        if not after and not self.blank[token]:
            return self.written + 1
        if not after or len(after) <= self.sizes[token]:
            return self.written if self.tails[row] else self.safe[row]
        return self.safe[row]

    def reorder(self, sources: Sequence[int], tokens: Sequence[int], after: Sequence[str | None]) -> None:
        """Beam search's new rows: row i continues row sources[i] with tokens[i], and its open word is then
        after[i]; None keeps the source row's state (a finished beam, which appends only <pad>)."""
        self.safe = [self.safe[s] if a is None else self._safe_after(s, t, a)
                     for s, t, a in zip(sources, tokens, after)]
        self.tails = [self.tails[s] if a is None else a for s, a in zip(sources, after)]
        self.written += 1

    def complete(self, word: str) -> bool:
        """Whether the open word `word` may end here: none is open, it is listed, or it is one and an apostrophe."""
        w = self.words
        return not word or word in w.words or (word.endswith("'") and word[:-1] in w.words)

    def step(self, row: int, token: int, last: bool = False) -> str | None:
        """Row `row`'s open word after `token`, or None if the token is not allowed there. last: the row's last
        token (max_len reached), which must leave no word half written."""
        text = self.texts[token] if 0 <= token < len(self.texts) else None
        after = None if text is None else self.words.advance(self.tails[row], text)
        return None if after is None or (last and not self.complete(after)) else after

    def allowed(self, rows: torch.Tensor, tokens: torch.Tensor,
                last: bool = False) -> tuple[torch.Tensor, list[list[str | None]]]:
        """For each row i and candidate tokens[i, j]: whether allowed (bool (n, k)), and the open word after it.
        The same as `step` on each pair, one KnownWords.advance_all call a row (beam search checks many)."""
        row_ids, toks = rows.tolist(), tokens.tolist()
        texts = self.texts
        if tokens.numel() and not 0 <= int(tokens.min()) <= int(tokens.max()) < len(texts):  # ids with no text
            after = [[self.step(r, t, last) for t in row] for r, row in zip(row_ids, toks)]
        else:
            advance_all, tails, complete = self.words.advance_all, self.tails, self.complete
            after = [advance_all(tails[r], [texts[t] for t in row]) for r, row in zip(row_ids, toks)]
            if last:  # as a row's last token: refused too where it leaves a word half written
                after = [[a if a is not None and complete(a) else None for a in row] for row in after]
        return _bools([a is not None for row in after for a in row], tokens.shape, tokens.device), after

    def allowed_all(self, tail: str, last: bool = False) -> torch.Tensor:
        """(V,) bool: the tokens allowed after the open word `tail` (as a row's last token with `last`), all of
        them. Equal to checking every token with `step`, in far fewer checks: a closing token needs `tail` to be
        a word and is then judged as with nothing open; a token going on needs `tail` + its first letter to
        start a word. Remembered (`all_seen`, up to ALL_MEMO_CELLS tokens): rows often share an open word."""
        key = (tail, last)
        ok = self.all_seen.get(key)
        if ok is None:
            if (len(self.all_seen) + 1) * len(self.texts) > ALL_MEMO_CELLS:
                self.all_seen.clear()
            ok = self.all_seen[key] = self._scan(tail, last)
        return ok.clone()

    def _scan(self, tail: str, last: bool) -> torch.Tensor:
        """allowed_all, worked out."""
        w = self.words
        if not tail:
            ok = self.free_ok.clone()
        else:
            ok = self.closing & self.free_ok if self.complete(tail) else torch.zeros_like(self.free_ok)
            ids = [i for first, group in self.going_on.items() if first in ("'", "") or tail + first in w.prefixes
                   for i in group]
            if ids:
                after = w.advance_all(tail, [self.texts[i] for i in ids])
                ok[ids] = torch.tensor([a is not None for a in after])
        if last:  # the tokens left must also end the word they leave open
            ids = ok.nonzero()[:, 0].tolist()
            if ids:
                ok[ids] = torch.tensor([self.complete(a) for a in w.advance_all(tail, [self.texts[i] for i in ids])])
        return ok

    def restrict(self, logits: torch.Tensor, rows: Sequence[int],
                 last: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """The logits (r, V) of `rows` with every token the filter refuses there (`allowed_all`) at -inf, and (r,)
        whether each row allows any token at all: a row that allows none keeps its logits as they are."""
        ok = torch.stack([self.allowed_all(self.tails[i], last) for i in rows]).to(logits.device)  # (r, V)
        some = ok.any(dim=1)  # (r,)
        return logits.masked_fill(~ok & some[:, None], float("-inf")), some

    def _end(self, rows: Sequence[int]) -> None:
        """`rows` allow no token: they end at their `safe` (recorded in `cut`)."""
        self.cut.update((i, self.safe[i]) for i in rows)

    def best(self, logits: torch.Tensor, k: int, candidates: int,
             last: bool = False) -> tuple[torch.Tensor, torch.Tensor, list[list[str | None]]]:
        """Each row's k likeliest allowed tokens of `logits` (n, V), for beam search: their logits (n, k), -inf
        where a row allows fewer than k; the tokens (n, k); and the open word after each (None: not allowed).
        last: the rows' last tokens (see `step`).

        A row's `candidates` likeliest tokens are checked first; a row with fewer than k allowed among them has
        all its allowed tokens worked out (`allowed_all`), so a beam is never extended by a refused token while
        an allowed one exists. A row with no allowed token at all gets none (all -inf) and goes into `cut`: the
        caller ends it at its `safe` instead.
        """
        self.cut = {}
        n, V = logits.shape
        rows = torch.arange(n)
        cand_logit, cand_tok = logits.topk(min(V, candidates), dim=-1)  # (n, c)
        ok, cand_after = self.allowed(rows, cand_tok, last)
        top_logit, pos = cand_logit.masked_fill(~ok, float("-inf")).topk(k, dim=-1)  # (n, k)
        top_tok = cand_tok.gather(1, pos)
        after = [[row_after[j] for j in row_pos] for row_after, row_pos in zip(cand_after, pos.tolist())]
        short = (ok.sum(dim=1) < k).nonzero()[:, 0].tolist()  # rows whose candidates hold fewer than k allowed
        if short:
            masked, some = self.restrict(logits[short], short, last)
            top_logit[short], top_tok[short] = masked.topk(k, dim=-1)
            ok_short, short_after = self.allowed(torch.tensor(short), top_tok[short], last)  # only these rows changed
            top_logit[short] = top_logit[short].masked_fill(~ok_short, float("-inf"))  # rows with none: all -inf
            for i, row_after in zip(short, short_after):
                after[i] = row_after
            self._end([i for i, has in zip(short, some.tolist()) if not has])
        return top_logit, top_tok, after

    def choose(self, logits: torch.Tensor, pick: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
               last: bool = False) -> torch.Tensor:
        """Next token of every row, (b,): `pick` (argmax, or a draw) over the allowed tokens of `logits` (b, V).
        pick(sub, idx, base) is called with some rows' logits, their indices idx (r,) in `logits` (a sampler draws
        each row's numbers from its own stream), and the logits its own cuts (temperature, top-k, top-p) are to be
        made on: the step's `logits`, so that a refused token leaves the sampler's distribution as it was, less that
        token (None at the first pick: `sub` itself, nothing refused yet). A pick returns -1 for a row whose own
        tokens are all refused. last: the rows' last tokens (max_len
        reached): a token that leaves a word half written is refused too.

        A rejected token is set to -inf in `sub` and the row picked again; after TRIES rejections (or a -1) the
        row's allowed tokens are all worked out (`allowed_all`) and the row picked among them; a row whose pick
        has none of them is picked again with only them as `base` (the cuts made on the allowed tokens alone).
        So a sampler draws from its distribution restricted to the allowed tokens, or, when that holds none, from
        the allowed tokens' distribution cut its way. A row with no allowed token at all (rare: at max_len, an
        open word no token finishes) gets the end token and goes into `cut`: the caller ends it at its `safe`
        instead, before the open word.
        """
        self.cut = {}
        base, V = logits, logits.shape[1]
        struck: list[tuple[int, int]] = []  # (row, token): tokens refused so far, at -inf in the rows picked again
        tokens = pick(base, torch.arange(len(base), device=base.device), None).clone()  # (b,) nothing refused

        def refusing(rows: list[int]) -> torch.Tensor:  # the logits of `rows` (a copy), their refused tokens at -inf
            sub, place = base[rows], {r: j for j, r in enumerate(rows)}
            hits = [(place[r], t) for r, t in struck if r in place]
            if hits:
                at, toks = zip(*hits)
                sub[list(at), list(toks)] = float("-inf")
            return sub

        after: list[str | None] = [None] * len(tokens)
        todo = list(range(len(tokens)))  # rows whose token is still to be checked
        spent: list[int] = []  # rows whose pick has no token left: straight to the whole check
        for _ in range(TRIES):
            refused = []
            for i, t in zip(todo, tokens[todo].tolist()):
                after[i] = self.step(i, t, last)
                if after[i] is None:
                    refused.append((i, t))
            spent += [i for i, t in refused if t < 0]
            todo = [i for i, t in refused if t >= 0]
            if not todo:
                break
            struck += [(i, t) for i, t in refused if 0 <= t < V]
            idx = torch.tensor(todo, device=base.device)
            tokens[idx] = pick(refusing(todo), idx, base[idx])
        todo = sorted(todo + spent)
        if todo:  # rows still refused: mask everything they may not write, then pick once more (all at once)
            idx = torch.tensor(todo, device=base.device)
            masked, some = self.restrict(refusing(todo), todo, last)  # rows with no allowed token: picked, then ended
            picked = pick(masked, idx, base[idx])
            none = (picked < 0) & some  # none of the pick's own tokens is allowed: its cuts on the allowed alone
            if bool(none.any()):
                picked[none] = pick(masked[none], idx[none], masked[none])
            tokens[idx] = torch.where(some, picked, self.end_id)
            for i, t, has in zip(todo, tokens[idx].tolist(), some.tolist()):
                after[i] = self.step(i, t, last) if has else ""
            self._end([i for i, has in zip(todo, some.tolist()) if not has])
        tails = [a if a is not None else "" for a in after]
        self.safe = [self._safe_after(i, t, a) for i, (t, a) in enumerate(zip(tokens.tolist(), tails))]
        self.tails = tails
        self.written += 1
        return tokens
