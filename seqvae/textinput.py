"""Texts from the command line and stdin: UTF-8, no NUL, one per line.

    texts = read_lines(sys.stdin.buffer, "stdin")   # the non-empty lines, stripped
    why = problem(text)                             # None, or what makes one text unusable

Python hands over command-line bytes that are not UTF-8 as lone surrogates, and stdin's decoding
depends on the locale; both are checked here so that such input is one clear error everywhere.
A long line is not an error: the api cuts every input to its first MAX_TOKENS tokens.
"""

from __future__ import annotations

import re
from typing import BinaryIO

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


def read_lines(stream: BinaryIO, what: str = "stdin") -> list[str]:
    """The stripped non-empty lines of a byte stream, decoded as strict UTF-8."""
    data = stream.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise TextInputError(f"{what} line {line} is not valid UTF-8") from None
    if "\0" in text:
        raise TextInputError(f"{what} line {text.count(chr(10), 0, text.index(chr(0))) + 1} contains a NUL "
                             "character (binary input?)")
    return [line.strip() for line in text.splitlines() if line.strip()]
