"""Numbers and errors as people read them: the formatting that the CLI, the trainer's progress line,
the quality report and the one-line error messages share."""

from __future__ import annotations


def format_mi(mi: float, se: float | None = None) -> str:
    """MI for display: never a bare negative number (an estimate below 0 shows as 0, the raw value beside)."""
    spread = f" ± {se:.2f}" if se is not None else ""
    if mi < 0:
        return f"0 (estimate {mi:.2f}{spread}, clipped)"
    return f"{mi:.2f}{spread}"


def one_line(e: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none), for one-line errors."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
