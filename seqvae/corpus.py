"""Reading the raw corpora through `datasets`: IMDB reviews and PTB lines, each file checked first.

    ds = load_imdb("train")          # datasets.Dataset with `text`, `label` (-1 = unlabelled)
    ds = load_ptb("valid")           # datasets.Dataset with `text`, one sentence per row
    ds = load_text("my/train.txt")   # a user's own file: one sentence (or one document) per line

Local files live under a data root (`resolve_data_root`): imdb/{train,test,unsup}.jsonl.gz and
ptb/ptb.{train,valid,test}.txt; source="hub" asks the Hugging Face hub instead. A user's text files
are named directly. Every problem with the input is a one-line DataError. Turning the rows into a
prepared data dir is seqvae.prepare's job.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import socket
import threading
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .config import DataConfig
from .display import one_line
from .textinput import LINE_ENDS

REPO_ROOT = Path(__file__).resolve().parent.parent


class DataError(ValueError):
    """Input data is missing or malformed, or a prepared dir is unreadable (message is one line)."""


IMDB_SPLITS = ("train", "test", "unsup")
PTB_SPLITS = ("train", "valid", "test")
_HUB_IMDB_SPLIT = {"train": "train", "test": "test", "unsup": "unsupervised"}
_HUB_PTB_SPLIT = {"train": "train", "valid": "validation", "test": "test"}
HUB_REACH_TIMEOUT_S = 5.0  # the look for the hub before `datasets`, which retries for ~25 s, a log line a try
_TRUE = ("1", "true", "yes", "on")


def resolve_data_root(data_root: str | Path) -> Path:
    """A relative data root is taken from the current directory; when nothing is there, from the
    repository root (so the default "../shared/data" also works when run from elsewhere)."""
    p = Path(data_root).expanduser()
    if p.is_absolute():
        return p
    here = Path.cwd() / p
    if not here.exists() and (REPO_ROOT / p).exists():
        return (REPO_ROOT / p).resolve()
    return here.resolve()


@contextlib.contextmanager
def _quiet_datasets():
    """Silence datasets' progress bars and info logging inside the block (restored afterwards)."""
    import datasets

    bars_were_off = datasets.is_progress_bar_enabled() is False
    level = datasets.logging.get_verbosity()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    try:
        yield datasets
    finally:
        datasets.logging.set_verbosity(level)
        if not bars_were_off:
            datasets.enable_progress_bars()


def _load(builder: str, what: str, *, data_files: Path | None = None, split: str = "train",
          cache_dir: str | None = None):
    """datasets.load_dataset with every failure turned into a one-line DataError. A local file is read afresh
    each time: `datasets` knows its cached copy by path, size and modification time, and returned the old
    rows for a file replaced by one of the same size and time (`cp -p`, `touch -r`). IMDB: 3 s more."""
    with _quiet_datasets() as datasets:
        try:
            if data_files is not None:
                return datasets.load_dataset(builder, data_files=str(data_files), split=split, cache_dir=cache_dir,
                                             download_mode="force_redownload")
            return datasets.load_dataset(builder, split=split, cache_dir=cache_dir)
        except Exception as e:  # datasets raises many types (DatasetGenerationError, ValueError, OSError, ...)
            raise DataError(f"{what}: cannot load ({type(e).__name__}: {one_line(e)})") from None


def _check_rows(ds, what: str, columns: Sequence[str]):
    if len(ds) == 0:
        raise DataError(f"{what}: no rows (empty file?)")
    for col in columns:
        if col not in ds.column_names:
            raise DataError(f"{what}: rows have no {col!r} field (found: {', '.join(ds.column_names) or 'none'})")
    try:
        bad = next((i for i, t in enumerate(ds["text"]) if not isinstance(t, str)), None)
    except UnicodeDecodeError as e:  # json.gz bytes that are not UTF-8 surface here, as pyarrow decodes them
        raise DataError(f"{what}: a text is not valid UTF-8 ({e.reason} at byte {e.start})") from None
    if bad is not None:
        raise DataError(f"{what}: row {bad} has no text")
    return ds


def load_imdb(split: str, source: str = "local", data_root: str | Path = DataConfig.data_root,
              cache_dir: str | None = None):
    """IMDB reviews of `split` (train, test or unsup) as a datasets.Dataset with `text`, `label`.

    source="local" reads `{data_root}/imdb/{split}.jsonl.gz`; source="hub" asks the Hugging Face
    hub for "imdb" (needs network). Rows keep the file order (row i = review i).
    """
    ds, what = _load_local_or_hub("imdb", split, IMDB_SPLITS, source, data_root, cache_dir,
                                  local_path=f"imdb/{split}.jsonl.gz", local_builder="json",
                                  check_local=_check_not_empty_gzip, hub_name="imdb", hub_splits=_HUB_IMDB_SPLIT)
    _check_rows(ds, what, ("text", "label"))
    labels = np.asarray(ds["label"])
    if labels.dtype.kind not in "iu" or not np.isin(labels, (-1, 0, 1)).all():
        raise DataError(f"{what}: labels must be -1, 0 or 1")
    return ds


def load_ptb(split: str, source: str = "local", data_root: str | Path = DataConfig.data_root,
             cache_dir: str | None = None):
    """PTB lines of `split` (train, valid, test) as a datasets.Dataset with a `text` column.

    source="local" reads `{data_root}/ptb/ptb.{split}.txt`; "hub" loads "ptb_text_only" (network).
    """
    ds, what = _load_local_or_hub("ptb", split, PTB_SPLITS, source, data_root, cache_dir,
                                  local_path=f"ptb/ptb.{split}.txt", local_builder="text",
                                  check_local=_check_line_file, hub_name="ptb_text_only", hub_splits=_HUB_PTB_SPLIT)
    if "sentence" in ds.column_names:  # the hub's column name
        ds = ds.rename_column("sentence", "text")
    return _check_rows(ds, what, ("text",))


PTB_MAX_LINE = 10_000  # bytes per line of a PTB file: its longest sentence is under 1,000
DOCUMENT_MAX_LINE = 1_000_000  # bytes per line of a text file of documents (IMDB's longest review: 14,000)
TEXT_UNITS = ("line", "document")
GZIP_MAGIC = b"\x1f\x8b"


def load_text(path: str | Path, unit: str = "line"):
    """A user's UTF-8 text file as a datasets.Dataset with a `text` column, one row per line (blank
    lines included: callers skip them, so row i is line i + 1). unit="line": each line is one sentence
    (at most 10,000 bytes); "document": each line is a document to split into sentences (1,000,000).
    The file is read as named (no glob patterns, no cached copy of an older version): `_read_lines`."""
    if unit not in TEXT_UNITS:
        raise DataError(f"unit must be one of {', '.join(TEXT_UNITS)}, got {unit!r}")
    path = Path(path).expanduser()
    if unit == "line":
        lines = _read_lines(path, PTB_MAX_LINE, "sentence", hint="; --unit document takes one document per line")
    else:
        lines = _read_lines(path, DOCUMENT_MAX_LINE, "document")
    with _quiet_datasets() as datasets:
        return datasets.Dataset.from_dict({"text": lines})


def _check_line_file(path: Path) -> None:
    """PTB's files, checked before `datasets` reads them: see `_read_lines`."""
    _read_lines(path, PTB_MAX_LINE, "sentence")


def read_sentences(path: str | Path) -> list[str]:
    """The stripped non-empty lines of a file of one sentence per line, read as `load_text` reads one
    (byte-order mark, CRLF, not UTF-8 and directories handled; each problem a one-line DataError)."""
    lines = _read_lines(Path(path).expanduser(), PTB_MAX_LINE, "sentence")
    return [line.strip() for line in lines if line.strip()]


def _read_lines(path: Path, max_line: int, unit: str, hint: str = "") -> list[str]:
    """The lines of a file of one sentence (or document) per line, each problem a one-line DataError naming
    the line: not a file, gzip-compressed, empty, not UTF-8, a NUL byte, a line over `max_line` bytes. A
    leading byte-order mark is dropped; "\r\n", a lone "\r" and Unicode's line and paragraph separators
    (U+2028, U+2029, which some exports put between lines) end a line as "\n" does."""
    _check_file(path)
    data = path.read_bytes()
    if data.startswith(GZIP_MAGIC):  # else "line 1 is not valid UTF-8", which hides what the file is
        raise DataError(f"{path}: is gzip-compressed; give the text itself (gunzip -k {path})")
    data = data.removeprefix(b"\xef\xbb\xbf")
    for end in LINE_ENDS:
        data = data.replace(end.encode(), b"\n")
    if not data.strip():
        raise DataError(f"{path}: empty file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: line {_line_of(data, e.start)} is not valid UTF-8") from None
    nul = data.find(b"\0")
    if nul >= 0:
        raise DataError(f"{path}: line {_line_of(data, nul)} contains a NUL byte (a binary file?)")
    for n, line in enumerate(data.split(b"\n"), 1):
        if len(line) > max_line:
            raise DataError(f"{path}: line {n} is {len(line):,} bytes long; a line is one {unit} here "
                            f"(at most {max_line:,} bytes{hint})")
    return text.split("\n")


def _check_file(path: Path) -> None:
    """A one-line DataError unless `path` is a regular file (a pipe would make a reader wait for a writer)."""
    if path.is_dir():
        raise DataError(f"{path}: is a directory, not a file")
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if not path.is_file():
        raise DataError(f"{path}: not a regular file (a pipe or a device?); give a file")


def _check_not_empty_gzip(path: Path) -> None:
    """An empty .gz (or one of nothing) is a clear error; a damaged one is left to the reader's message."""
    try:
        with gzip.open(path, "rb") as f:
            empty = not f.read(1)
    except (OSError, EOFError):
        return
    if empty:
        raise DataError(f"{path}: empty file")


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def check_hub_reachable(what: str, timeout: float = HUB_REACH_TIMEOUT_S) -> None:
    """A one-line DataError within `timeout` seconds when the Hugging Face hub (HF_ENDPOINT, default
    huggingface.co) takes no connection: no network. Not checked when HF_HUB_OFFLINE or HF_DATASETS_OFFLINE
    asks `datasets` for its cache, nor behind a proxy (the connection is the proxy's to make)."""
    if any(os.environ.get(v, "").lower() in _TRUE for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")):
        return
    if urllib.request.getproxies().get("https"):
        return
    url = urllib.parse.urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
    failure = [f"no answer in {timeout:g} s"]

    def connect() -> None:  # in a thread: name resolution has no timeout of its own
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            failure.clear()
        except OSError as e:
            failure[0] = one_line(e)

    t = threading.Thread(target=connect, daemon=True)
    t.start()
    t.join(timeout)
    if failure:
        raise DataError(f"{what}: cannot reach the Hugging Face hub at {host} ({failure[0]}); without network use "
                        "--source local (files under --data-root), or HF_DATASETS_OFFLINE=1 for a copy cached earlier")


def _load_local_or_hub(corpus: str, split: str, splits: Sequence[str], source: str, data_root: str | Path,
                       cache_dir: str | None, *, local_path: str, local_builder: str,
                       check_local: Callable[[Path], None], hub_name: str, hub_splits: dict[str, str]):
    """(dataset, what) of `split` (one of `splits`) of `corpus`: from `{data_root}/{local_path}`, first
    checked by `check_local`, then read by `local_builder`; or from the hub's `hub_name`."""
    if split not in splits:
        raise DataError(f"{corpus} split must be one of {', '.join(splits)}, got {split!r}")
    if source == "local":
        path = resolve_data_root(data_root) / local_path
        _check_file(path)
        check_local(path)
        return _load(local_builder, str(path), data_files=path, cache_dir=cache_dir), str(path)
    if source == "hub":
        hub_split = hub_splits[split]
        what = f"hub {hub_name}/{hub_split}"
        check_hub_reachable(what)
        return _load(hub_name, what, split=hub_split, cache_dir=cache_dir), what
    raise DataError(f"source must be 'local' or 'hub', got {source!r}")
