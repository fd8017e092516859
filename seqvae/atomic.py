"""Atomic writes: a reader sees the old version of a file or directory, or the new one, never half.

    write_text(path, text) / write_json(path, obj) / write_bytes(path, data)
    write_with(path, lambda tmp: np.savez(tmp, ...))   for libraries that want a path to write to
    check_file_path(path) / check_dir_path(path)        fail fast, before the work, on a path that cannot be written
    check_not_an_input(path, {what: dir}, keep=...)     fail fast on an output path that is a file the command reads
    write_pair(data, writer, mark, fields)              a two-file save (a prior, a head): the old pair or the new;
                                                        two at once in one dir take turns (an flock on the dir)
    with locked_dir(d): ...                             that flock: one holder at a time, the others wait
    read_pair(data, mark)                               (the mark's JSON, the bytes of the data file it names)
    read_steady(locate, read, identity, errors)         a read done again while writers replace what it reads
    tmp = temp_dir_for(final); ...fill tmp...; replace_dir(tmp, final)
    recover_dir(final)                                  finishes a swap a crash interrupted (writers only)
    current_dir(final)                                  where a reader finds the whole version of `final`
    leftovers(final)                                    temporary files and dirs a killed writer left for `final`
    remove_leftovers(final)                             deletes them (the one writer of `final` only)
    is_leftover(path)                                   whether a name is one of those temporary names

Everything is written beside its destination (same filesystem, so os.replace is atomic) and
gets ordinary permissions from the umask, not the 0600/0700 that mkstemp/mkdtemp use.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Hashable, Iterator, TypeVar

from . import faultpoint

READ_TRIES = 5  # read_steady's reads of one thing (a checkpoint dir, a pair) while writers keep replacing it
P, T = TypeVar("P"), TypeVar("T")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class OutputError(ValueError):
    """An output path that cannot take what is to be written there (one-line message)."""


class ReplacedError(OSError):
    """What was read was replaced by writers during each of read_steady's tries."""


def _file_in_the_way(path: Path) -> Path | None:
    """The nearest existing ancestor of `path` when it is not a directory (then nothing can go below it)."""
    for parent in path.parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def check_file_path(path: str | Path) -> Path:
    """`path` can become a file: it is no directory and no ancestor of it is a file."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a directory; give a file path")
    blocker = _file_in_the_way(path)
    if blocker is not None:
        raise OutputError(f"{path}: {blocker} is a file, not a directory")
    return path


def check_dir_path(path: str | Path) -> Path:
    """`path` can be (or already is) a directory: neither it nor an ancestor is a file."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: exists and is not a directory")
    blocker = _file_in_the_way(path)
    if blocker is not None:
        raise OutputError(f"{path}: {blocker} is a file, not a directory")
    return path


def check_not_an_input(path: str | Path, inputs: dict[str, str | Path], keep: Callable[[str], bool] = lambda n: False,
                       ) -> None:
    """Refuse an output `path` that is an existing file of one of the `inputs` dirs (named by what they are: "the
    checkpoint DIR"), whose name `keep` does not accept (a command's own earlier output there)."""
    target = Path(path)
    if not target.is_file():
        return
    for what, d in inputs.items():
        d = Path(d)
        if d.is_dir() and not keep(target.name) and any(target.samefile(f) for f in d.iterdir() if f.is_file()):
            raise OutputError(f"{path}: is a file of {what}: write elsewhere")


def write_with(path: str | Path, writer: Callable[[Path], None]) -> Path:
    """Call writer(tmp) on a temporary path beside `path` (same suffix), then rename it to `path`.
    Missing parent directories are created."""
    path = check_file_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        writer(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_bytes(path: str | Path, data: bytes) -> Path:
    return write_with(path, lambda tmp: tmp.write_bytes(data))


def write_text(path: str | Path, text: str) -> Path:
    return write_with(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2) + "\n")


def old_path(final: str | Path) -> Path:
    """Where replace_dir parks the previous version of dir `final` between its two renames (and write_pair
    the previous version of a file)."""
    final = Path(final)
    return final.with_name(f".{final.name}.old")


def is_parked(path: str | Path) -> bool:
    """Whether `path` is a version parked by replace_dir (old_path of some dir): it is about to go."""
    name = Path(path).name
    return name.startswith(".") and name.endswith(".old") and len(name) > len("..old")


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, read in blocks of 1 MiB (the identity of a checkpoint's weights)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_pair(data: str | Path, writer: Callable[[Path], None], mark: str | Path, fields: dict[str, Any],
               sha_key: str = "sha256") -> None:
    """A two-file save that a cut (kill, full disk) never leaves without a whole version: the data file,
    written by writer(tmp), then the JSON `mark` (fields plus {sha_key: the data file's sha256}), which
    commits it. Until the new mark is in place, the previous data file stays parked at old_path(data),
    where read_pair finds it for the previous mark; a failed write puts it back, and the next save (or
    this one, once committed) removes it. A second save in the same dir meanwhile waits for this one
    (the parked path is one per pair: unlocked, the two saves' files could end up mixed)."""
    data, mark = Path(data), Path(mark)
    check_file_path(data).parent.mkdir(parents=True, exist_ok=True)
    with locked_dir(data.parent):
        _write_pair(data, writer, mark, fields, sha_key)


@contextmanager
def locked_dir(d: str | Path) -> Iterator[None]:
    """Hold an exclusive flock on the existing dir `d` itself (nothing is created in it; the kernel drops it with
    the process), waiting for another holder: the saves that take it (write_pair in `d`, checkpoint.save of a dir
    in `d`) take seconds. A file system without locks goes unlocked."""
    fd = os.open(d, os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            pass
        yield
    finally:
        os.close(fd)


def _write_pair(data: Path, writer: Callable[[Path], None], mark: Path, fields: dict[str, Any], sha_key: str) -> None:
    parked = old_path(data)
    committed = _pair_file(data, _mark_sha(mark, sha_key))
    if committed is None or committed[0] != parked:  # the committed version is `data`, or there is none
        if data.is_file():
            os.replace(data, parked)
        else:
            parked.unlink(missing_ok=True)
    try:
        write_with(data, writer)
        faultpoint.reached("pair")
        write_json(mark, {**fields, sha_key: file_sha256(data)})
    except BaseException:
        if parked.is_file():
            os.replace(parked, data)
        raise
    parked.unlink(missing_ok=True)


def read_pair(data: str | Path, mark: str | Path, sha_key: str = "sha256") -> tuple[Any, bytes | None]:
    """A two-file save's (write_pair) JSON `mark`, parsed, and the bytes of the data file it names by its sha_key:
    `data`, or the previous version parked while a save is under way; None if neither has that sha256 (a
    mismatched pair: a hand-edited mark, a corrupt data file). A mark written before marks named their data file
    (no sha_key) goes with the parked version if there is one. A read that a save overlapped (the old mark read,
    then its parked data file removed) is read again (read_steady), so it gets the old pair or the new one; a
    mismatch that no save overlapped comes back at once. A mark that cannot be read or parsed raises OSError or
    ValueError (ReplacedError, an OSError, if saves kept overlapping the read)."""
    data = Path(data)

    def read(mark: Path) -> tuple[Any, bytes | None]:
        obj = json.loads(mark.read_text(encoding="utf-8"))
        faultpoint.reached("pair-read")
        found = _pair_file(data, obj.get(sha_key) if isinstance(obj, dict) else None)
        return obj, (found[1] if found else None)

    def identity(mark: Path) -> Hashable:  # the mark's bytes and which files stand at `data` and its parked place
        try:
            text = mark.read_bytes()
        except OSError:
            text = None
        return text, _file_key(data), _file_key(old_path(data))

    return read_steady(lambda: Path(mark), read, identity, (OSError, ValueError))


def read_steady(locate: Callable[[], P], read: Callable[[P], T], identity: Callable[[P], Hashable | None],
                errors: tuple[type[BaseException], ...], tries: int = READ_TRIES) -> T:
    """read(locate()), kept only from a read during which nothing moved: identity(place) the same before and after
    it, and not None (None: nothing is there, a writer is between two renames). A read that a writer overlapped
    is done again, from locate(), up to `tries` times, then ReplacedError. An error of `errors` from a read
    during which nothing moved is the thing's own fault and is raised at once, with no other try, unless the
    place is a parked version (is_parked: its writer may be deleting it)."""
    for _ in range(tries):
        place = locate()
        before = identity(place)
        try:
            result = read(place)
        except errors:
            if before is not None and identity(place) == before and not is_parked(place):
                raise
            continue
        if before is not None and identity(place) == before:
            return result
    raise ReplacedError(f"replaced {tries} times while being read; try again")


def _file_key(path: Path) -> tuple[int, int, int, int] | None:
    """Which file stands at `path` (device, inode, size, modification time), None if none."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _mark_sha(mark: Path, sha_key: str) -> str | None | bool:
    """The sha a pair's mark names; None if it names none (an old save), False if there is no readable mark."""
    try:
        obj = json.loads(mark.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return obj.get(sha_key) if isinstance(obj, dict) else False


def _pair_file(data: Path, sha: str | None | bool) -> tuple[Path, bytes] | None:
    """(path, bytes) of whichever of `data` and its parked version the mark's `sha` names (_mark_sha)."""
    if sha is False:
        return None
    for p in ((old_path(data), data) if sha is None else (data, old_path(data))):
        try:
            b = p.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            continue
        if sha is None or hashlib.sha256(b).hexdigest() == sha:
            return p, b
    return None


def linked(final: str | Path) -> Path:
    """`final`, or where it points if it is a symbolic link (a checkout's data/ptb linked to a shared dir,
    say): a dir is replaced where it lives, and the link stays."""
    final = Path(final)
    return Path(os.path.realpath(final)) if final.is_symlink() else final


def temp_dir_for(final: str | Path) -> Path:
    """A new empty dir beside `final` (or beside where its link points; created with the parents), to fill
    and then replace_dir()."""
    final = linked(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    return tmp


def current_dir(final: str | Path) -> Path:
    """Where a reader finds the whole version of dir `final` without changing anything: `final`, or the
    previous version parked by a replace_dir that is between its two renames (or crashed there)."""
    final = Path(final)
    old = old_path(linked(final))  # a link's dir is parked beside where the link points
    return old if not final.exists() and old.is_dir() else final


def leftovers(final: str | Path) -> list[Path]:
    """Temporary dirs (temp_dir_for) and files (write_with) for `final` that a killed writer left behind.
    Only the one writer of `final` may remove them: another live writer's are in this list too."""
    final = linked(final)
    if not final.parent.is_dir():
        return []
    found = list(final.parent.glob(f".{final.name}.tmp-*"))
    found += final.parent.glob(f".{final.stem}.*.tmp{final.suffix}")
    return sorted(set(found))


# the names temp_dir_for (.NAME.tmp-RANDOM) and write_with (.STEM.RANDOM.tmp.SUFFIX) give, RANDOM tempfile's
_TEMP_NAME = re.compile(r"\..+\.tmp-[a-z0-9_]+|\..+\.[a-z0-9_]+\.tmp(\.[^.]*)?")


def is_leftover(path: str | Path) -> bool:
    """Whether `path` bears a temporary name of this module's (a dir being filled, a file being written): where
    no writer is at work, what a killed one left."""
    return _TEMP_NAME.fullmatch(Path(path).name) is not None


def remove_leftovers(final: str | Path) -> None:
    """Delete `leftovers(final)`: for the one writer of `final` only (one that holds its lock)."""
    for leftover in leftovers(final):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def recover_dir(final: str | Path) -> None:
    """Finish an interrupted replace_dir: bring back the previous version or drop its leftover."""
    final = linked(final)
    old = old_path(final)
    if not old.exists():
        return
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(old, final)


def replace_dir(tmp: str | Path, final: str | Path) -> Path:
    """Move the complete dir `tmp` to `final`, replacing what was there.

    Files directly inside `tmp` get ordinary permissions (the umask's). The previous version is
    renamed to old_path(final) first and deleted last; if a crash falls between the two renames,
    recover_dir(final) (called by the next writer; readers use current_dir) restores it. If the
    second rename fails (disk full, permission lost), the previous version is renamed back.
    """
    tmp, final = Path(tmp), linked(final)
    for f in tmp.iterdir():  # some writers (safetensors) create 0600 files
        if f.is_file():
            os.chmod(f, 0o666 & ~_umask())
    recover_dir(final)
    if final.exists():
        os.replace(final, old_path(final))
        faultpoint.reached("swap")
        try:
            os.replace(tmp, final)
        except BaseException:
            os.replace(old_path(final), final)
            raise
        shutil.rmtree(old_path(final), ignore_errors=True)
    else:
        os.replace(tmp, final)
    return final
