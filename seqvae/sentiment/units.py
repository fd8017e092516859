"""What a review is cut into before its pieces are encoded: sentences (seqvae.sentences' own splitter)
or clauses, each sentence cut further at , ; : ( ) dashes and before a word that turns it.

    review_to_clauses("A fine film, but the plot was dull.")   # ["A fine film", "but the plot was dull."]

Clauses serve only the sentiment heads: finer codes, each of a span about the size of the
sentences the VAE was trained on.
"""

from __future__ import annotations

import re

from ..sentences import review_to_sentences

# Where a sentence may be cut into clauses: at , ; : and parentheses, at a dash between spaces,
# and before a word that turns the sentence ("the cast is fine, but the plot ..."); the cut
# word opens the next clause. A sentence-initial "But" is no cut (no space before it), nor is a
# comma or colon between digits ("$6,000", "at 2:00"). Changing the cut changes cached
# features: bump CLAUSE_CUT_VERSION (part of their cache key) with it.
CLAUSE_CUT_VERSION = 2  # 1: commas and colons inside numbers were cuts too
_CLAUSE_CUT = re.compile(r"\s*(?:[;()]|(?<!\d)[,:]|[,:](?!\d)|\s--?\s)\s*"
                         r"|\s+(?=(?:but|although|though|however|yet|whereas|except|unless)\b)", re.I)
_WORD = re.compile(r"\w")
MIN_CLAUSE_WORDS = 3  # a shorter piece joins its neighbour: "Well, I liked it" stays whole


def split_clauses(sentence: str) -> list[str]:
    """Split one sentence into clauses (see _CLAUSE_CUT); a piece of fewer than MIN_CLAUSE_WORDS
    words is joined to the piece before it (the first piece, if short, to the one after it), with
    the text between them kept. A sentence with no cut, or only short pieces, comes back whole:
    [sentence.strip()]; one without any letter or digit gives []."""
    spans, start = [], 0
    for m in _CLAUSE_CUT.finditer(sentence):
        spans.append((start, m.start()))
        start = m.end()
    spans.append((start, len(sentence)))
    merged: list[tuple[int, int]] = []
    for a, b in spans:
        if not _WORD.search(sentence[a:b]):
            continue
        short = len(sentence[a:b].split()) < MIN_CLAUSE_WORDS
        if merged and (short or len(sentence[merged[-1][0] : merged[-1][1]].split()) < MIN_CLAUSE_WORDS):
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return [sentence[a:b].strip() for a, b in merged]


def review_to_clauses(text: str) -> list[str]:
    """A raw review -> its clauses: each sentence of review_to_sentences through split_clauses."""
    return [c for s in review_to_sentences(text) for c in split_clauses(s)]


SPLITTERS = {"sentence": review_to_sentences, "clause": review_to_clauses}  # unit -> review splitter
