"""Atomic writes: nothing half-written is ever visible, and an interrupted swap is recovered."""

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from seqvae import atomic


def test_write_text_and_json_replace_whole_files(tmp_path):
    p = tmp_path / "a.json"
    atomic.write_json(p, {"x": 1})
    atomic.write_text(tmp_path / "b.txt", "hello")
    assert p.read_text() == '{\n  "x": 1\n}\n' and (tmp_path / "b.txt").read_text() == "hello"
    assert sorted(f.name for f in tmp_path.iterdir()) == ["a.json", "b.txt"]  # no temp files left
    old_mask = os.umask(0o022)
    try:  # an ordinary file's mode, not the private 0600 of the temporary file it was written as
        atomic.write_text(tmp_path / "c.txt", "mode")
    finally:
        os.umask(old_mask)
    assert stat.S_IMODE((tmp_path / "c.txt").stat().st_mode) == 0o644


def test_a_write_cut_short_leaves_the_old_file(tmp_path, monkeypatch):
    """write_text / write_json / write_bytes: a write that fails half way (a full disk) leaves the old file whole."""
    p = tmp_path / "a.json"
    atomic.write_json(p, {"x": 1})
    real_text, real_bytes = Path.write_text, Path.write_bytes

    def half_text(self, text, *a, **k):
        real_text(self, text[: len(text) // 2], *a, **k)
        raise OSError(28, "No space left on device")

    def half_bytes(self, data):
        real_bytes(self, data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", half_text)
    monkeypatch.setattr(Path, "write_bytes", half_bytes)
    for write in (lambda: atomic.write_json(p, {"x": 22}), lambda: atomic.write_text(p, "new text"),
                  lambda: atomic.write_bytes(p, b"new bytes")):
        with pytest.raises(OSError, match="No space left"):
            write()
        assert p.read_text() == '{\n  "x": 1\n}\n' and [f.name for f in tmp_path.iterdir()] == ["a.json"]


def test_failed_writer_leaves_the_old_file_and_no_temp(tmp_path):
    p = tmp_path / "f.npz"
    atomic.write_bytes(p, b"old")

    def boom(tmp):
        assert tmp.suffix == ".npz" and tmp.parent == tmp_path  # same folder, same suffix (np.savez keeps it)
        tmp.write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic.write_with(p, boom)
    assert p.read_bytes() == b"old" and [f.name for f in tmp_path.iterdir()] == ["f.npz"]


def test_replace_dir_swaps_and_sets_ordinary_modes(tmp_path):
    old_mask = os.umask(0o022)
    try:
        final = tmp_path / "ckpt"
        for version in ("v1", "v2"):
            tmp = atomic.temp_dir_for(final)
            (tmp / "w.bin").write_text(version)
            os.chmod(tmp / "w.bin", 0o600)
            atomic.replace_dir(tmp, final)
            assert (final / "w.bin").read_text() == version
        assert stat.S_IMODE(final.stat().st_mode) == 0o755
        assert stat.S_IMODE((final / "w.bin").stat().st_mode) == 0o644
        assert [f.name for f in tmp_path.iterdir()] == ["ckpt"]
    finally:
        os.umask(old_mask)


def test_recover_dir_after_a_crash_between_the_renames(tmp_path):
    final = tmp_path / "last"
    # the state a crash leaves after `final -> .last.old` and before `tmp -> final`
    (tmp_path / ".last.old").mkdir()
    (tmp_path / ".last.old" / "w.bin").write_text("previous")
    atomic.recover_dir(final)
    assert (final / "w.bin").read_text() == "previous" and not (tmp_path / ".last.old").exists()
    # a crash after the second rename leaves only a stale .old behind: it is dropped
    (tmp_path / ".last.old").mkdir()
    atomic.recover_dir(final)
    assert (final / "w.bin").read_text() == "previous" and not (tmp_path / ".last.old").exists()


def test_a_linked_dir_is_replaced_and_recovered_where_it_lives(tmp_path):
    """co/ck -> ../shared/ck: the dir is swapped beside its target; a crash between the renames (the link
    dangles) is read and recovered there, and the link stays a link."""
    (tmp_path / "shared" / "ck").mkdir(parents=True)
    (tmp_path / "shared" / "ck" / "w.bin").write_text("one")
    (tmp_path / "co").mkdir()
    link = tmp_path / "co" / "ck"
    link.symlink_to(os.path.join("..", "shared", "ck"))
    tmp = atomic.temp_dir_for(link)
    assert tmp.parent == tmp_path / "shared"
    (tmp / "w.bin").write_text("two")
    atomic.replace_dir(tmp, link)
    assert link.is_symlink() and (link / "w.bin").read_text() == "two"
    os.replace(tmp_path / "shared" / "ck", tmp_path / "shared" / ".ck.old")  # as a crash at the swap leaves it
    assert (atomic.current_dir(link) / "w.bin").read_text() == "two"
    atomic.recover_dir(link)
    assert link.is_symlink() and (link / "w.bin").read_text() == "two"
    assert sorted(p.name for p in (tmp_path / "shared").iterdir()) == ["ck"]


def test_checkpoint_reader_reads_an_interrupted_save_without_changing_it(tiny_data_dir, tmp_path):
    from seqvae import checkpoint
    from seqvae.config import ModelConfig
    from seqvae.model import SentenceVAE
    from seqvae.tokenizer import load_tokenizer

    tok = load_tokenizer(tiny_data_dir)
    model = SentenceVAE(ModelConfig(vocab_size=tok.vocab_size, embed_dim=8, hidden_dim=8, latent_dim=4))
    checkpoint.save(tmp_path / "run" / "best", model, tok)
    os.replace(tmp_path / "run" / "best", tmp_path / "run" / ".best.old")  # "crashed" mid-swap
    # a reader reads the parked version and leaves the repair to the run's one writer
    assert checkpoint.resolve(tmp_path / "run") == tmp_path / "run" / ".best.old"
    checkpoint.load(tmp_path / "run")
    assert not (tmp_path / "run" / "best").exists()
    checkpoint.save(tmp_path / "run" / "best", model, tok)  # the next writer brings it back, then replaces it
    assert checkpoint.resolve(tmp_path / "run") == tmp_path / "run" / "best"
    assert sorted(os.listdir(tmp_path / "run")) == ["best"]


def test_output_paths_are_checked_and_parents_made(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("mine")
    with pytest.raises(atomic.OutputError, match="is a directory"):
        atomic.write_text(tmp_path / "d", "x")
    with pytest.raises(atomic.OutputError, match="is a file, not a directory"):
        atomic.write_text(tmp_path / "f" / "a" / "b.txt", "x")
    with pytest.raises(atomic.OutputError, match="exists and is not a directory"):
        atomic.check_dir_path(tmp_path / "f")
    with pytest.raises(atomic.OutputError, match="is a file, not a directory"):
        atomic.check_dir_path(tmp_path / "f" / "run")
    assert atomic.check_dir_path(tmp_path / "d") == tmp_path / "d"
    assert atomic.check_dir_path(tmp_path / "new" / "run") == tmp_path / "new" / "run"
    assert (tmp_path / "f").read_text() == "mine" and sorted(os.listdir(tmp_path / "d")) == []
    atomic.write_json(tmp_path / "new" / "deep" / "r.json", {"x": 1})  # missing parents are made
    assert (tmp_path / "new" / "deep" / "r.json").read_text() == '{\n  "x": 1\n}\n'


@pytest.mark.parametrize("fails", ["data", "mark"])
def test_a_pair_save_that_fails_leaves_the_old_pair_as_it_was(tmp_path, monkeypatch, fails):
    """write_pair on a full disk, failing on the data file or on the mark: both files as they were, nothing parked."""
    data, mark = tmp_path / "w.bin", tmp_path / "w.json"
    atomic.write_pair(data, lambda p: p.write_bytes(b"old"), mark, {"v": 1})
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real = atomic.write_with if fails == "data" else atomic.write_json

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic, "write_with" if fails == "data" else "write_json", full)
    with pytest.raises(OSError, match="No space"):
        atomic.write_pair(data, lambda p: p.write_bytes(b"new"), mark, {"v": 2})
    monkeypatch.setattr(atomic, real.__name__, real)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert atomic.read_pair(data, mark) == ({"v": 1, "sha256": hashlib.sha256(b"old").hexdigest()}, b"old")


def test_a_pair_cut_between_its_files_reads_the_old_one_and_the_next_save_commits(tmp_path):
    """The state a kill between the two writes leaves (new data, old mark, old data parked): readers get the
    old data for the old mark, also for a mark that names no sha (saved before marks did); the next save
    keeps the parked version as the previous one, and leaves only the new pair."""
    data, mark = tmp_path / "w.bin", tmp_path / "w.json"
    for old_mark in ({"v": 1, "sha256": hashlib.sha256(b"old").hexdigest()}, {"v": 1}):
        data.write_bytes(b"half-saved new")
        atomic.old_path(data).write_bytes(b"old")
        mark.write_text(json.dumps(old_mark))
        assert atomic.read_pair(data, mark) == (old_mark, b"old")
        assert atomic.read_pair(data, mark, sha_key="other") == (old_mark, b"old")  # names none: the parked one
        other = tmp_path / "other.json"
        other.write_text(json.dumps({"sha256": hashlib.sha256(b"other").hexdigest()}))
        assert atomic.read_pair(data, other)[1] is None
        other.unlink()

        def cut(p):
            assert atomic.old_path(data).read_bytes() == b"old"  # the committed version stays parked meanwhile
            raise OSError(28, "No space left on device")

        with pytest.raises(OSError):
            atomic.write_pair(data, cut, mark, {"v": 2})
        assert atomic.read_pair(data, mark) == (old_mark, b"old")
        atomic.write_pair(data, lambda p: p.write_bytes(b"new"), mark, {"v": 2})
        assert sorted(os.listdir(tmp_path)) == ["w.bin", "w.json"]
        assert atomic.read_pair(data, mark) == ({"v": 2, "sha256": hashlib.sha256(b"new").hexdigest()}, b"new")


def test_two_pair_saves_at_once_end_with_one_whole_pair(tmp_path, monkeypatch):
    """Two writers of one pair at once (two `fit-prior` on one checkpoint, two `report --out DIR`): the second,
    started while the first is between its two files, waits for it, and the pair ends as the second wrote it.
    Before 2026-12-07 the second wrote both its files there meanwhile, and the first's mark, written after,
    named the first's data beside the second's: a pair that no save wrote, and no load could read."""
    import threading

    from seqvae import faultpoint

    data, mark = tmp_path / "w.bin", tmp_path / "w.json"
    atomic.write_pair(data, lambda p: p.write_bytes(b"old"), mark, {"v": 0})
    second = threading.Thread(target=atomic.write_pair, args=(data, lambda p: p.write_bytes(b"second"), mark, {"v": 2}))

    def reached(point):  # the first, between its data file and its mark: the second starts and is given 1 s
        if point == "pair" and threading.current_thread() is threading.main_thread():
            second.start()
            second.join(timeout=1.0)

    monkeypatch.setattr(faultpoint, "reached", reached)
    atomic.write_pair(data, lambda p: p.write_bytes(b"first"), mark, {"v": 1})
    second.join(timeout=30)
    assert not second.is_alive()
    saved = json.loads(mark.read_text())
    assert saved["v"] == 2 and atomic.read_pair(data, mark) == (saved, b"second")
    assert sorted(os.listdir(tmp_path)) == ["w.bin", "w.json"]


def test_a_pair_read_that_a_save_overlaps_is_read_again_and_a_mismatch_comes_back_at_once(tmp_path, monkeypatch):
    """read_pair with a save completing between its read of the mark and its look for the data (the old data,
    parked meanwhile, already removed): it reads again and gets the new pair. A mark that names neither file
    while nothing moves comes back after one read (its caller reports it, without retry delay); saves that
    overlap every read end in ReplacedError."""
    from seqvae import faultpoint

    data, mark = tmp_path / "w.bin", tmp_path / "w.json"
    atomic.write_pair(data, lambda p: p.write_bytes(b"v0"), mark, {"v": 0})
    reads = []

    def save_meanwhile(point, saves=1):
        if point != "pair-read":  # the save's own point
            return
        reads.append(point)
        if len(reads) <= saves:
            atomic.write_pair(data, lambda p: p.write_bytes(b"v%d" % len(reads)), mark, {"v": len(reads)})

    monkeypatch.setattr(faultpoint, "reached", save_meanwhile)
    assert atomic.read_pair(data, mark) == ({"v": 1, "sha256": hashlib.sha256(b"v1").hexdigest()}, b"v1")
    assert len(reads) == 2
    reads.clear()
    monkeypatch.setattr(faultpoint, "reached", lambda point: save_meanwhile(point, saves=atomic.READ_TRIES))
    with pytest.raises(atomic.ReplacedError, match=f"replaced {atomic.READ_TRIES} times while being read"):
        atomic.read_pair(data, mark)
    assert len(reads) == atomic.READ_TRIES
    reads.clear()
    monkeypatch.setattr(faultpoint, "reached", lambda point: save_meanwhile(point, saves=0))
    data.write_bytes(b"edited by hand")
    assert atomic.read_pair(data, mark)[1] is None and len(reads) == 1
