"""How a command ends (`seqvae` and the scripts): `reporting_errors(prog, run)` runs it and reports

    bad input (user_errors)           "PROG: error: ..." on stderr, exit 2
    stdout that cannot be written     "PROG: error: cannot write the output (...)", exit 2 (/dev/full; a closed
                                      stdout, `>&-`, at the first line the command writes there)
    Ctrl-C                            "PROG: interrupted", exit 130 (train: "... at step N; RUN/last holds ...")
    a reader gone (`| head -1`)       nothing, exit 141, as a command ended by SIGPIPE

Loads no torch itself (user_errors imports the library's error types only when an error is to be told apart).
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable

from .config import ConfigError
from .display import one_line
from .errors import InputError


def user_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean bad input (reported as one line), not a bug."""
    from .atomic import OutputError
    from .checkpoint import CheckpointError
    from .corpus import DataError
    from .generation import DecodingError
    from .judge import ReportError
    from .textinput import TextInputError
    from .tokenizer import TokenizerError
    from .train import TrainingError
    from .wordlist import WordListError

    return (ConfigError, CheckpointError, DataError, TokenizerError, OutputError, FileNotFoundError, PermissionError,
            InputError, DecodingError, TrainingError, TextInputError, ReportError, WordListError)


class StdoutError(Exception):
    """Standard output could not be written (a full disk, /dev/full, an I/O error): not the input's fault."""


class _CheckedStdout:
    """sys.stdout, whose write errors other than a closed pipe come out as StdoutError (an OSError from print()
    is otherwise no different from one reading an input file)."""

    def __init__(self, stream):
        self._stream = stream

    def _checked(self, name: str, *args):
        try:
            return getattr(self._stream, name)(*args)
        except BrokenPipeError:
            raise
        except OSError as e:
            raise StdoutError(f"cannot write the output ({e.strerror or one_line(e)})") from None

    def write(self, text: str) -> int:
        return self._checked("write", text)

    def flush(self) -> None:
        self._checked("flush")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _ClosedStdout:
    """sys.stdout of a command started with stdout closed (`>&-`), where Python leaves it None and print() would
    drop the output without a word: a command that writes nothing there runs as usual, one that writes a line
    stops with StdoutError."""

    def write(self, text: str) -> int:
        if text:
            raise StdoutError("cannot write the output (stdout is closed)")
        return 0

    def flush(self) -> None:
        pass


def _drop_stdout() -> None:
    """Point stdout at /dev/null: what it still holds goes nowhere, and no second error comes when Python flushes
    it at exit ("Exception ignored ... BrokenPipeError", exit 120)."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def reporting_errors(prog: str, run: Callable[[], int | None]) -> int:
    """run(), with bad input (user_errors) reported as one line "PROG: error: ..." and exit code 2, stdout that
    cannot be written (/dev/full) too, Ctrl-C as "PROG: interrupted" and 130, and a reader that has gone
    (`| head -1`) as a quiet 141. The `seqvae` command and the scripts use it."""
    for stream in (sys.stdout, sys.stderr):  # an ASCII terminal (LC_ALL=C, PYTHONIOENCODING=ascii): escape, not crash
        if hasattr(stream, "reconfigure") and (stream.encoding or "").lower().replace("-", "") != "utf8":
            stream.reconfigure(errors="backslashreplace")
    stdout = sys.stdout
    # None: started with stdout closed (`>&-`)
    sys.stdout = _ClosedStdout() if stdout is None else _CheckedStdout(stdout)
    try:
        code = int(run() or 0)
        sys.stdout.flush()  # here, not at exit: a reader gone or a full disk is then ours to report
        return code
    # user_errors() last: Python evaluates it only for an exception the clauses above it did not take, and its
    # imports load torch (again, after a Ctrl-C that cut torch's first import short: a traceback, not one line)
    except KeyboardInterrupt as e:  # one that says what was kept (train's) adds it to the line
        print(f"{prog}: interrupted" + (f" {e}" if str(e) else ""), file=sys.stderr)
        return 130
    except SystemExit:  # a command's own parser (`classify fit -h`, its usage errors): nothing to import for it
        raise
    except StdoutError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        if stdout is not None:
            _drop_stdout()
        return 2
    except BrokenPipeError:  # `seqvae sample ... | head`: the reader has what it wanted
        _drop_stdout()
        return 141  # what a shell reports for a command ended by SIGPIPE
    except user_errors() as e:
        print(f"{prog}: error: {one_line(e)}", file=sys.stderr)
        return 2
    finally:
        sys.stdout = stdout
