"""Raw review text -> clean text -> sentences.

    review ──clean_text──► text whose lines are hard boundaries ──split_sentences──► sentences

`review_to_sentences` (clean + split) is the one function that turns a review into sentences:
`seqvae prepare` (seqvae.prepare) builds the training data with it and the classifier
(seqvae.sentiment) calls it on raw reviews, so training data and features never drift apart.
"""

from __future__ import annotations

import html
import re
import unicodedata


# ---------------------------------------------------------------------------- cleaning
_BR = re.compile(r"<\s*br\s*/?\s*>", re.IGNORECASE)                 # <br />, <br>, <BR/>, < br / >
_BLOCK_TAG = re.compile(r"</?\s*(?:p|div|hr|li|ul|ol|h[1-6])\b[^<>]*>", re.IGNORECASE)
_TAG = re.compile(r"</?[A-Za-z][^<>]*>")                             # any other tag; not "<3" or "a < b"
_CTRL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")                      # control chars except \n
_SPACES = re.compile(r"[^\S\n]+")                                    # whitespace other than \n
_NEWLINES = re.compile(r"\s*\n\s*")
# C1 control characters are Windows-1252 bytes mis-decoded as Latin-1 ('\x85' is "…", '\x96' "–").
_CP1252 = {}
for _b in range(0x80, 0xA0):
    try:
        _CP1252[_b] = bytes([_b]).decode("cp1252")
    except UnicodeDecodeError:
        _CP1252[_b] = " "
# Typographic apostrophes and quotes -> ASCII (NFKC would turn '´' into a space + combining accent).
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u00b4": "'", "\u201a": "'", "\u2032": "'",
                         "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2033": '"'})


def clean_text(text: str) -> str:
    """Raw review -> clean text whose lines ("\\n") are hard sentence boundaries.

    <br /> variants and block tags become line breaks, other HTML tags are dropped, entities
    unescaped, Windows-1252 leftovers repaired, quotes/apostrophes made ASCII, NFKC applied,
    and whitespace collapsed (single spaces inside lines, no empty lines, nothing at the ends).
    """
    text = _BR.sub("\n", text)
    text = _BLOCK_TAG.sub("\n", text)
    text = _TAG.sub("", text)
    text = html.unescape(text)
    text = text.translate(_CP1252).translate(_QUOTES)
    text = unicodedata.normalize("NFKC", text)
    text = _CTRL.sub(" ", text)
    text = _SPACES.sub(" ", text)
    text = _NEWLINES.sub("\n", text)
    return text.strip()


# ---------------------------------------------------------------------------- sentence splitting
# A candidate boundary: a run of terminators, closing quotes/brackets that belong to the sentence,
# then whitespace, the end of the line, or (a common typo) directly a capitalised word ("film.The").
_BOUNDARY = re.compile(r"""([.!?]+)(["'»)\]]*)(\s+|$|(?=[A-Z][a-z]))""")
_FIRST_WORD = re.compile(r"""\s*["'«(\[]*(\S*)""")
# Titles and abbreviations that (practically) never end a sentence.
_HARD_ABBREV = {
    "mr", "mrs", "ms", "dr", "st", "jr", "sr", "prof", "vs", "mt", "lt", "col", "capt", "sgt", "rev",
    "hon", "gov", "sen", "e.g", "i.e", "cf", "approx", "esp", "ft", "feat",
}
# Abbreviations that end no sentence when a number follows ("No. 5", "Vol. 2").
_NUMBER_ABBREV = {"no", "nos", "vol", "vols", "ch", "p", "pp", "fig", "ep", "pt"}
# Abbreviations that do end sentences sometimes ("...made in the U.S. The film"): a boundary only
# when the next word is a frequent sentence opener.
_SOFT_ABBREV = {"etc", "al", "inc", "ltd", "co", "corp", "bros"}
_OPENERS = set("""
the this that these those it its i i'm i've i'd i'll he she they we you his her their my our your
but and so or if when while then there here what why how who where which yes no not a an in on at
as for after before although though however also even still yet now all some most many one
overall well anyway unfortunately sadly luckily finally besides plus oh ok okay
""".split())
_ACRONYM = re.compile(r"^(?:[A-Za-z]\.)+[A-Za-z]$|^[A-Za-z]+\.[A-Za-z]+(?:\.[A-Za-z]+)*$")  # U.S, Ph.D
_HAS_WORD = re.compile(r"\w")
_STRAY = re.compile(r"^(?:[.!?]+|[:;=8][-']?[()\[\]DPpOo/|*3]+)$")  # lone terminators, emoticons


def _is_boundary(line: str, start: int, m: re.Match) -> bool:
    """Decide whether the candidate `m` in `line` (current sentence began at `start`) ends a sentence."""
    term, closers, gap = m.group(1), m.group(2), m.group(3)
    if m.end() >= len(line):
        return True                                      # end of line: always a boundary
    nxt = _FIRST_WORD.match(line, m.end()).group(1)      # next word, opening quotes stripped
    if _STRAY.match(nxt):
        return False                                     # "Great! :) Next", "Hmm... ?": the stray bit stays
    lower_next = nxt[:1].islower()
    before = line[start : m.start()].split()
    prev = before[-1].lstrip("\"'«([") if before else ""  # the word the terminator ends
    if not gap:                                          # "film.The": only after a real word
        if not (len(prev) >= 2 and prev[-1].islower() and prev.isalpha()) or prev.lower() in _HARD_ABBREV:
            return False
    if lower_next and (closers or term.startswith("..")):
        return False                                     # '"Really?" she said', "Well... maybe"
    if term != ".":
        return True                                      # "!", "?", "?!", "...", "!!!"
    low = prev.lower()
    if low in _HARD_ABBREV or (low in _NUMBER_ABBREV and nxt[:1].isdigit()):
        return False
    if len(prev) == 1 and prev.isalpha() and prev.isupper() and prev != "I":
        return False                                     # an initial: "J. R. R. Tolkien", "George W. Bush"
    if low in _SOFT_ABBREV or _ACRONYM.match(prev):
        return nxt.lower().strip("\"',") in _OPENERS and not lower_next
    return True


def split_sentences(text: str) -> list[str]:
    """Split clean text (see clean_text) into sentences.

    Line breaks are boundaries. Within a line a boundary is a run of . ! ? (with any closing
    quotes/brackets kept on the sentence) followed by a space or the line end, except after
    abbreviations (Mr. Dr. St. vs. e.g. i.e. ...), single initials (J. R. R. Tolkien), soft
    abbreviations (etc. U.S.) unless a typical sentence opener follows, and ellipses or quoted
    ?/! followed by a lowercase word; a stray "?" or emoticon after a terminator stays with its
    sentence ("Great! :) Bye"). Decimals (3.5) never match. Pieces without any letter or digit
    (e.g. "***") are dropped.
    """
    out = []
    for line in text.split("\n"):
        start = 0
        for m in _BOUNDARY.finditer(line):
            if _is_boundary(line, start, m):
                sent = line[start : m.end(2)].strip()
                if _HAS_WORD.search(sent):
                    out.append(sent)
                start = m.end()
        rest = line[start:].strip()
        if rest and _HAS_WORD.search(rest):
            out.append(rest)
    return out


def review_to_sentences(text: str) -> list[str]:
    """A raw review (HTML and all) -> its sentences. The exact function `prepare` uses."""
    return split_sentences(clean_text(text))
