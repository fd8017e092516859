"""Texts from the command line and stdin: UTF-8, no NUL, one per line.

    texts = read_lines(sys.stdin, "stdin")          # the non-empty lines, stripped
    why = problem(text)                             # None, or what makes one text unusable
    texts_sha256(texts)                             # the identity of a list of texts, in order

Python hands over command-line bytes that are not UTF-8 as lone surrogates, and stdin's decoding
depends on the locale; both are checked here so that such input is one clear error everywhere.
A long line is not an error: the api cuts every input to its first MAX_TOKENS tokens.
"""

from __future__ import annotations

import hashlib
import re
from typing import BinaryIO, Iterable, TextIO

_SURROGATE = re.compile("[\udc80-\udcff]")  # how os.fsdecode / surrogateescape carry undecodable bytes


class TextInputError(ValueError):
    """Text input that is not UTF-8 or holds NUL bytes (one-line message)."""


def problem(text: str) -> str | None:
    """Why `text` cannot be a sentence (to follow "sentence N"), or None if it can."""
    if "\0" in text:
        return "contains a NUL character (binary input?)"
    if _SURROGATE.search(text):
        return "is not valid UTF-8"
    return None


def texts_sha256(texts: Iterable[str]) -> str:
    """sha256 of texts in order, each as UTF-8 followed by a NUL (which no text holds: see problem): the one
    identity of a list of sentences (a report's held-out sentences, a features cache's texts)."""
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


# What ends a line besides "\n", here and in files (corpus): Windows' and old Macs' line ends, and Unicode's line
# and paragraph separators, which some exports put between lines ("\r\n" first: it is one end, not two)
LINE_ENDS = ("\r\n", "\r", "\u2028", "\u2029")


def read_lines(stream: TextIO | BinaryIO, what: str = "stdin") -> list[str]:
    """The stripped non-empty lines of a stream (sys.stdin: its bytes, decoded as strict UTF-8), a leading
    byte-order mark dropped. Blank lines are skipped: line N of an error is the stream's own line N."""
    data = getattr(stream, "buffer", stream).read()
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as e:
            line = data.count(b"\n", 0, e.start) + 1
            raise TextInputError(f"{what} line {line} is not valid UTF-8") from None
    # else a text stream with no bytes under it (io.StringIO): already decoded
    data = data.removeprefix("\ufeff")  # a byte-order mark (Notepad, PowerShell's pipes) is no text, as in files
    for end in LINE_ENDS:
        data = data.replace(end, "\n")
    lines = data.split("\n")
    for n, line in enumerate(lines, 1):
        why = problem(line)
        if why:
            raise TextInputError(f"{what} line {n} {why}")
    return [line.strip() for line in lines if line.strip()]
