"""Corpus: reading the raw IMDB/PTB files, each problem with them one line (tiny fake files from conftest)."""

import gzip

import pytest

from conftest import write_fake_imdb, write_fake_ptb
from seqvae.corpus import load_ptb, resolve_data_root


def test_relative_data_root_is_resolved_from_the_current_dir(tmp_path, monkeypatch):
    write_fake_ptb(tmp_path / "raw", n_train=30, n_eval=2)
    monkeypatch.chdir(tmp_path)
    assert resolve_data_root("raw") == tmp_path / "raw"
    assert len(load_ptb("valid", data_root="raw")) == 2


@pytest.mark.parametrize("damage,pattern", [
    (lambda b: b"", "empty file"),
    (lambda b: b + b" the movie \xff\xfe was \n", "line 31 is not valid UTF-8"),
    (lambda b: b + b" the movie\x00 was \n", "line 31 contains a NUL byte"),
    (lambda b: b + b"the movie was great " * 52_000 + b"\n", "line 31 is 1,040,000 bytes long"),
])
def test_a_damaged_ptb_file_is_one_line_and_nothing_is_written(tmp_path, one_line, damage, pattern):
    root = write_fake_ptb(tmp_path / "raw", n_train=30, n_eval=5)
    train = root / "ptb" / "ptb.train.txt"
    train.write_bytes(damage(train.read_bytes()))
    one_line(["prepare", "--dataset", "ptb", "--data-root", root, "--out", tmp_path / "d"], pattern)
    assert not (tmp_path / "d").exists()


def test_an_imdb_review_that_is_not_utf8_is_one_line(tmp_path, one_line):
    root = write_fake_imdb(tmp_path / "raw", n_train=10, n_test=4, n_unsup=4)
    train = root / "imdb" / "train.jsonl.gz"
    train.write_bytes(gzip.compress(gzip.decompress(train.read_bytes()) + b'{"text": "bad \xff\xfe", "label": 1}\n'))
    one_line(["prepare", "--dataset", "imdb", "--data-root", root, "--out", tmp_path / "d", "--tokenizer", "word",
              "--valid-reviews", 2], "a text is not valid UTF-8")
    assert not (tmp_path / "d").exists()


def test_an_empty_imdb_file_is_one_line(tmp_path, one_line):
    root = write_fake_imdb(tmp_path / "raw", n_train=10, n_test=4, n_unsup=4)
    (root / "imdb" / "test.jsonl.gz").write_bytes(gzip.compress(b""))
    one_line(["prepare", "--dataset", "imdb", "--data-root", root, "--out", tmp_path / "d", "--tokenizer", "word",
              "--valid-reviews", 2], "test.jsonl.gz: empty file")
    assert not (tmp_path / "d").exists()


def test_the_hub_without_network_is_one_line_within_seconds(tmp_path, monkeypatch, one_line):
    """No network: refused before `datasets`, which would retry for ~25 s with a log line per try."""
    import socket
    import time

    import datasets

    def no_network(*args, **kwargs):
        raise OSError("[Errno -2] Name or service not known")

    calls = []
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **kw: calls.append(a) or time.sleep(30))
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    start = time.perf_counter()
    for dataset in ("imdb", "ptb"):
        one_line(["prepare", "--dataset", dataset, "--source", "hub", "--out", tmp_path / dataset, "--quiet"],
                 "cannot reach the Hugging Face hub at huggingface.co (")
        assert not (tmp_path / dataset).exists()
    assert not calls and time.perf_counter() - start < 10
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")  # datasets' cache: its to look at, no connection tried
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **kw: calls.append(a) or datasets.Dataset.from_dict({}))
    one_line(["prepare", "--dataset", "ptb", "--source", "hub", "--out", tmp_path / "ptb", "--quiet"], "no rows")
    assert calls and not (tmp_path / "ptb").exists()


def test_a_corpus_path_that_is_a_directory_says_so(tmp_path, one_line):
    """Not "no such file" for a path that is there (the gzip check swallowed the directory's OSError)."""
    root = write_fake_imdb(tmp_path / "raw", n_train=10, n_test=4, n_unsup=4)
    (root / "imdb" / "unsup.jsonl.gz").unlink()
    (root / "imdb" / "unsup.jsonl.gz").mkdir()
    one_line(["prepare", "--dataset", "imdb", "--data-root", root, "--out", tmp_path / "d", "--tokenizer", "word",
              "--valid-reviews", 2], "unsup.jsonl.gz: is a directory, not a file")
    assert not (tmp_path / "d").exists()


def test_a_corpus_file_replaced_by_one_of_the_same_size_and_time_is_read_afresh(tmp_path):
    """`datasets` knew its cached copy by path, size and mtime only: the old rows came back."""
    import os

    from seqvae.corpus import load_imdb

    root = write_fake_ptb(tmp_path / "raw", n_train=30, n_eval=2)
    write_fake_imdb(root, n_train=10, n_test=4, n_unsup=4)
    ptb, imdb = root / "ptb" / "ptb.valid.txt", root / "imdb" / "test.jsonl.gz"
    imdb.write_bytes(gzip.compress(gzip.decompress(imdb.read_bytes()), compresslevel=0))  # stored: size = text's
    cases = [(ptb, lambda: list(load_ptb("valid", data_root=root)["text"]), lambda b: b.replace(b"o", b"0")),
             (imdb, lambda: list(load_imdb("test", data_root=root)["text"]),
              lambda b: gzip.compress(gzip.decompress(b).replace(b"o", b"0"), compresslevel=0))]
    for path, load, swap in cases:  # "o" is in every text and in no JSON key
        before, st = load(), path.stat()
        path.write_bytes(swap(path.read_bytes()))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns
        assert load() == [t.replace("o", "0") for t in before] != before
