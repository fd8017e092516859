"""Prepare: a prepared data dir end to end on tiny fake IMDB/PTB files, its readers, `seqvae prepare`."""

import gzip
import json
import os
from pathlib import Path

import numpy as np
import pytest

from seqvae import prepare as P
from seqvae.config import ConfigError, DataConfig
from seqvae.corpus import DataError, load_imdb, load_ptb
from seqvae.prepare import load_split, prepare, read_meta
from seqvae.runlock import RunDirBusy
from seqvae.sentences import review_to_sentences
from seqvae.tokenizer import load_tokenizer


# ---------------------------------------------------------------------------- tiny fake corpora
POS = ["The movie was great and I loved every minute of it.", "What a wonderful cast, really.",
       "Dr. Smith gave a brilliant performance.", "The ending made me smile for days."]
NEG = ["This film is terrible and the plot makes no sense.", "I watched it twice and it was boring.",
       "The director should have cut twenty minutes.", "Mr. Jones was awful as the villain."]
DUP = "I would watch it again."           # in every review: deduplicated per split
LONG = " ".join(["very"] * 80) + " long."  # always too long
SHORT = "Ok."                             # always too short


def _review(i: int, label: int) -> str:
    pool = POS if label == 1 else NEG
    parts = [pool[i % 4], f"Review number {i} is here.", DUP]
    if i % 5 == 0:
        parts.append(LONG)
    if i % 3 == 0:
        parts.append(SHORT)
    return " ".join(parts[:2]) + "<br /><br />" + " ".join(parts[2:]) + " &amp; that is it."


def write_fake_imdb(root: Path, n_train=40, n_test=16, n_unsup=12) -> Path:
    d = root / "imdb"
    d.mkdir(parents=True, exist_ok=True)
    for split, n, base in (("train", n_train, 0), ("test", n_test, 1000), ("unsup", n_unsup, 2000)):
        rows = [{"text": _review(base + i, (i >= n // 2) if split != "unsup" else i % 2),
                 "label": int(i >= n // 2) if split != "unsup" else -1} for i in range(n)]
        with gzip.open(d / f"{split}.jsonl.gz", "wt", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    return root


def write_fake_ptb(root: Path) -> Path:
    d = root / "ptb"
    d.mkdir(parents=True, exist_ok=True)
    lines = {"train": [" the cat sat on the mat ", " a <unk> dog ran ", " the cat sat on the mat ", " yes "] * 5,
             "valid": [" the dog sat ", " a <unk> cat "], "test": [" the mat ran ", " zebra "]}
    for split, ls in lines.items():
        (d / f"ptb.{split}.txt").write_text("".join(line + "\n" for line in ls))
    return root


IMDB_CFG = dict(dataset="imdb", vocab_size=120, min_tokens=5, max_tokens=40, valid_reviews=6, seed=3)


@pytest.fixture(scope="module")
def imdb(tmp_path_factory):
    """(raw data root, prepared dir, stats) for the fake IMDB."""
    base = tmp_path_factory.mktemp("imdb")
    root = write_fake_imdb(base / "raw")
    cfg = DataConfig(data_root=str(root), **IMDB_CFG)
    stats = prepare(cfg, base / "out", progress=False)
    return root, base / "out", stats


def _source_rows(root: Path, split: str) -> list[dict]:
    with gzip.open(root / "imdb" / f"{split}.jsonl.gz", "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


# ---------------------------------------------------------------------------- prepare: IMDB
def test_prepare_imdb_layout(imdb):
    _, out, stats = imdb
    assert sorted(p.name for p in out.iterdir()) == ["meta.json", "samples.txt", "test.npz", "tokenizer.model",
                                                      "train.npz", "valid.npz"]
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp dir left behind
    meta = read_meta(out)
    assert meta["format"] == 1 and meta["dataset"] == "imdb" and meta["tokenizer"] == "sentencepiece"
    assert (meta["pad_id"], meta["unk_id"], meta["bos_id"], meta["eos_id"]) == (0, 1, 2, 3)
    assert meta["data_config"] == DataConfig(data_root=meta["data_config"]["data_root"], **IMDB_CFG).to_dict()
    assert meta["stats"] == stats
    tok = load_tokenizer(out)
    assert meta["vocab_size"] == tok.vocab_size <= 120
    for split in ("train", "valid", "test"):
        with np.load(out / f"{split}.npz") as z:
            assert sorted(z.files) == ["ids", "label", "offsets", "origin", "review"]
            assert (z["ids"].dtype, z["offsets"].dtype, z["review"].dtype, z["origin"].dtype, z["label"].dtype) == \
                (np.int32, np.int64, np.int64, np.int8, np.int8)
        ids, offsets, extra = load_split(out, split)
        s = stats[split]
        lengths = np.diff(offsets)
        assert len(offsets) == s["sentences"] + 1 and offsets[0] == 0 and offsets[-1] == len(ids) == s["tokens"]
        assert lengths.min() >= 5 and lengths.max() <= 40 and lengths.max() == s["max_tokens"]
        assert not np.isin(ids, [0, 2, 3]).any()  # no PAD/BOS/EOS in the data
        assert s["raw_sentences"] == (s["sentences"] + s["dropped_short"] + s["dropped_long"] + s["dropped_dup"]
                                      + s["dropped_cap"] + s["dropped_in_train"])
        if split == "train":
            assert s["dropped_long"] > 0 and s["dropped_short"] > 0 and s["dropped_dup"] > 0
        else:  # the fixture's repeated, too-long and too-short sentences all occur in train first
            assert s["dropped_in_train"] > 0
        assert all(len(v) == s["sentences"] for v in extra.values())
    samples = (out / "samples.txt").read_text().splitlines()
    ids, offsets, _ = load_split(out, "train")
    assert samples[:3] == [tok.decode(ids[offsets[i] : offsets[i + 1]]) for i in range(3)]


def test_prepare_imdb_splits_origins_labels_and_dedup(imdb):
    root, out, stats = imdb
    src = {0: _source_rows(root, "train"), 1: _source_rows(root, "unsup"), 2: _source_rows(root, "test")}
    tok = load_tokenizer(out)
    got = {}
    for split in ("train", "valid", "test"):
        ids, offsets, extra = load_split(out, split)
        sents = [tok.decode(ids[offsets[i] : offsets[i + 1]]) for i in range(len(offsets) - 1)]
        seqs = [ids[offsets[i] : offsets[i + 1]].tolist() for i in range(len(offsets) - 1)]
        assert len(set(sents)) == len(sents)                 # exact duplicates dropped within the split
        assert sents.count(DUP) == (1 if split == "train" else 0)  # valid/test: nothing seen in train
        assert not any("very very" in s for s in sents) and SHORT not in sents
        for seq, r, o, lab in zip(seqs, extra["review"], extra["origin"], extra["label"]):
            row = src[int(o)][int(r)]
            assert lab == row["label"]                        # label carried from the source row
            # and the sentence really is one of that row's (compared as ids: rare letters are <unk>)
            assert seq in tok.encode_batch(review_to_sentences(row["text"]))
        got[split] = extra
        got[split + "_seqs"] = seqs
    train_seqs = {tuple(q) for q in got["train_seqs"]}
    assert not any(tuple(q) in train_seqs for q in got["valid_seqs"] + got["test_seqs"])
    assert stats["test"]["dropped_in_train"] > 0 and stats["train"]["dropped_in_train"] == 0
    assert set(np.unique(got["train"]["origin"])) == {0, 1}   # train reviews + unsup
    assert set(np.unique(got["valid"]["origin"])) == {0}
    assert set(np.unique(got["test"]["origin"])) == {2}
    valid_reviews = set(got["valid"]["review"].tolist())
    train_reviews = set(got["train"]["review"][got["train"]["origin"] == 0].tolist())
    assert valid_reviews and not valid_reviews & train_reviews  # held out as whole reviews
    assert stats["valid"]["reviews"] == 6 and stats["train"]["reviews"] == 40 - 6 + 12 and stats["test"]["reviews"] == 16
    assert set(np.unique(got["valid"]["label"])) <= {0, 1} and set(np.unique(got["train"]["label"])) == {-1, 0, 1}


def test_prepare_is_deterministic_and_caps(imdb, tmp_path):
    root, out, stats = imdb
    cfg = DataConfig(data_root=str(root), **IMDB_CFG)
    again = tmp_path / "again"
    assert prepare(cfg, again, progress=False) == stats
    for split in ("train", "valid", "test"):
        a, b = load_split(out, split), load_split(again, split)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[2]["review"], b[2]["review"])
    # a sentence cap keeps the first sentences; replacing an earlier prepared dir is allowed
    capped = prepare(cfg.replace(max_sentences=7), again, progress=False)
    assert capped["train"]["sentences"] == 7 and capped["train"]["dropped_cap"] > 0
    assert capped["valid"] == stats["valid"]
    np.testing.assert_array_equal(load_split(again, "train")[0], load_split(out, "train")[0][: load_split(again, "train")[1][-1]])


# ---------------------------------------------------------------------------- prepare: PTB
def test_prepare_ptb_keeps_lines_and_maps_unk(tmp_path):
    root = write_fake_ptb(tmp_path / "raw")
    stats = prepare(DataConfig(dataset="ptb", data_root=str(root)), tmp_path / "ptb", progress=False)
    meta = read_meta(tmp_path / "ptb")
    assert meta["tokenizer"] == "word" and (tmp_path / "ptb" / "vocab.txt").is_file()
    tok = load_tokenizer(tmp_path / "ptb")
    # words of train: the cat sat on mat a dog ran yes (<unk> is the special) -> 4 + 9
    assert tok.vocab_size == meta["vocab_size"] == 13
    ids, offsets, extra = load_split(tmp_path / "ptb", "train")
    assert stats["train"]["sentences"] == 20 and stats["train"]["dropped_dup"] == 0  # no dedup
    assert np.diff(offsets).min() == 1                                            # no length filter
    assert tok.decode(ids[offsets[1] : offsets[2]]) == "a <unk> dog ran"
    assert ids[offsets[1] + 1] == 1
    assert extra["review"].tolist() == list(range(20)) and set(extra["origin"]) == {3} and set(extra["label"]) == {-1}
    ids, offsets, _ = load_split(tmp_path / "ptb", "test")
    assert tok.decode(ids[offsets[1] : offsets[2]]) == "<unk>"                    # unseen word
    assert stats["train"]["unk_rate"] == pytest.approx(5 / stats["train"]["tokens"], abs=1e-6)
    # meta.json records no filter PTB does not run (it said dedup true, 4-60 tokens, vocab 8000)
    assert not {"min_tokens", "max_tokens", "dedup", "vocab_size", "valid_reviews"} & set(meta["data_config"])
    assert meta["data_config"]["dataset"] == "ptb"


def test_prepare_ptb_refuses_sentencepiece(tmp_path):
    """PTB writes unknown words as "<unk>": sentencepiece cut it into "<", "unk", ">" and decoded junk."""
    root = write_fake_ptb(tmp_path / "raw")
    with pytest.raises(ConfigError, match="use --tokenizer word"):
        prepare(DataConfig(dataset="ptb", tokenizer="sentencepiece", vocab_size=40, data_root=str(root)),
                tmp_path / "ptb", progress=False)
    assert not (tmp_path / "ptb").exists()


def test_prepare_ptb_refuses_a_filter_it_would_not_apply(tmp_path):
    """PTB is kept whole, as the published numbers need: `--min-tokens 10`, `--max-tokens 20`, `--no-dedup`,
    `--vocab-size 5000` or `--valid-reviews 10` with it were ignored without a word (and meta.json recorded the
    defaults of a filter never run); each is now one line naming the flag, and nothing is written."""
    root = write_fake_ptb(tmp_path / "raw")
    for change, flag in ((dict(min_tokens=10), "--min-tokens"), (dict(max_tokens=20), "--max-tokens"),
                         (dict(dedup=False), "--no-dedup"), (dict(vocab_size=5000), "--vocab-size"),
                         (dict(valid_reviews=10), "--valid-reviews")):
        with pytest.raises(ConfigError, match=f"\\({flag}\\): PTB is kept whole"):
            prepare(DataConfig(dataset="ptb", data_root=str(root), **change), tmp_path / "ptb", progress=False)
        assert not (tmp_path / "ptb").exists()
    assert _prepare(["--dataset", "ptb", "--data-root", str(root), "--max-tokens", "20",
                     "--out", str(tmp_path / "ptb")]) == 2 and not (tmp_path / "ptb").exists()
    capped = prepare(DataConfig(dataset="ptb", data_root=str(root), max_sentences=5), tmp_path / "ptb", progress=False)
    assert capped["train"]["sentences"] == 5  # the train cap still applies: its notes say so


def test_prepare_into_a_link_and_below_a_file(tmp_path):
    from seqvae.atomic import OutputError

    root = write_fake_ptb(tmp_path / "raw")
    prepare(DataConfig(dataset="ptb", data_root=str(root)), tmp_path / "p1", progress=False)
    (tmp_path / "link").symlink_to(tmp_path / "p1")
    for seed in (1, 2):  # twice: the second found a stray ".link.old" link and ended in a traceback
        prepare(DataConfig(dataset="ptb", data_root=str(root), seed=seed), tmp_path / "link", progress=False)
        assert (tmp_path / "link").is_symlink() and read_meta(tmp_path / "link")["data_config"]["seed"] == seed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "p1", "raw"]
    (tmp_path / "f").write_text("")
    with pytest.raises(OutputError, match="is a file, not a directory"):
        prepare(DataConfig(dataset="ptb", data_root=str(root)), tmp_path / "f" / "sub", progress=False)


# ---------------------------------------------------------------------------- prepare: a user's text files
def _sentences(out: Path, split: str) -> list[str]:
    tok = load_tokenizer(out)
    ids, offsets, _ = load_split(out, split)
    return [tok.decode(ids[offsets[i] : offsets[i + 1]]) for i in range(len(offsets) - 1)]


TEXT_CFG = dict(dataset="text", vocab_size=60, min_tokens=3, max_tokens=60, seed=1)


def test_prepare_text_with_its_own_valid_and_test_files(tmp_path):
    train = [f"line {i} says the cat sat on the mat ." for i in range(30)]
    train += ["", "  the   dog ran  away  .  ", "line 0 says the cat sat on the mat .", "ok"]
    (tmp_path / "train.txt").write_text("\n".join(train) + "\n")
    (tmp_path / "valid.txt").write_text("the dog ran away .\nline 3 says the cat sat on the mat .\na cat ran away .\n")
    (tmp_path / "test.txt").write_text("\r\nthe mat sat on a dog .\r\n")  # CRLF and a blank first line
    cfg = DataConfig(train_file=str(tmp_path / "train.txt"), valid_file=str(tmp_path / "valid.txt"),
                     test_file=str(tmp_path / "test.txt"), **TEXT_CFG)
    stats = prepare(cfg, tmp_path / "out", progress=False)
    meta = read_meta(tmp_path / "out")
    assert meta["dataset"] == "text" and meta["tokenizer"] == "sentencepiece" and meta["notes"] == []
    got = _sentences(tmp_path / "out", "train")
    assert len(got) == 31 and "the dog ran away ." in got  # whitespace runs made one space
    assert stats["train"] == {**stats["train"], "reviews": 33, "dropped_dup": 1, "dropped_short": 1}  # blank skipped
    # valid keeps only what train has not: "the dog ran away ." and "line 3 ..." are train's
    assert _sentences(tmp_path / "out", "valid") == ["a cat ran away ."] and stats["valid"]["dropped_in_train"] == 2
    assert _sentences(tmp_path / "out", "test") == ["the mat sat on a dog ."]
    _, _, extra = load_split(tmp_path / "out", "test")
    assert extra["review"].tolist() == [1] and extra["origin"].tolist() == [4] and extra["label"].tolist() == [-1]
    _, _, extra = load_split(tmp_path / "out", "train")
    lines = (tmp_path / "train.txt").read_text().split("\n")
    assert [" ".join(lines[r].split()) for r in extra["review"]] == got  # review = the line's row in its file


def test_prepare_text_holds_out_train_lines_and_says_when_it_takes_fewer(tmp_path):
    (tmp_path / "train.txt").write_text("".join(f"sentence number {i} is here .\n" for i in range(50)))
    cfg = DataConfig(train_file=str(tmp_path / "train.txt"), valid_reviews=3, **TEXT_CFG)
    stats = prepare(cfg, tmp_path / "a", progress=False)
    assert (stats["valid"]["sentences"], stats["test"]["sentences"], stats["train"]["sentences"]) == (3, 3, 44)
    splits = {s: _sentences(tmp_path / "a", s) for s in ("train", "valid", "test")}
    assert sorted(sum(splits.values(), [])) == sorted(f"sentence number {i} is here ." for i in range(50))
    assert read_meta(tmp_path / "a")["notes"] == []
    assert prepare(cfg, tmp_path / "b", progress=False) == stats  # seeded
    assert _sentences(tmp_path / "b", "valid") == splits["valid"]
    prepare(cfg.replace(seed=2), tmp_path / "c", progress=False)
    assert _sentences(tmp_path / "c", "valid") != splits["valid"]
    # held-out lines keep no sentence that the train lines left have (15 of the 50 lines are twins)
    twins = [f"unique sentence {i} is here ." for i in range(20)] + [f"twin sentence {j // 2} is here ." for j in range(30)]
    (tmp_path / "twins.txt").write_text("".join(line + "\n" for line in twins))
    twin_stats = prepare(cfg.replace(train_file=str(tmp_path / "twins.txt"), valid_reviews=5), tmp_path / "e",
                         progress=False)
    held = {s: set(_sentences(tmp_path / "e", s)) for s in ("train", "valid", "test")}
    assert not (held["valid"] | held["test"]) & held["train"]
    assert twin_stats["valid"]["dropped_in_train"] > 0 and twin_stats["test"]["dropped_in_train"] > 0  # it arises
    # 1,000 lines asked of 50: a tenth, and the note says so, in meta.json and the table. A test file keeps
    # no sentence of the train file, held-out lines included, so a copy of it leaves nothing.
    (tmp_path / "copy.txt").write_bytes((tmp_path / "train.txt").read_bytes())
    with pytest.raises(DataError, match="no test sentence is left of 50: .* 50 also in train"):
        prepare(cfg.replace(valid_reviews=1000, test_file=str(tmp_path / "copy.txt")), tmp_path / "d", progress=False)
    (tmp_path / "test.txt").write_text("here is the sentence .\nsentence number 7 is here .\n")
    (tmp_path / "valid.txt").write_text("here is the sentence .\n" + "long " * 80 + "\n")
    prepare(cfg.replace(valid_reviews=1000, test_file=str(tmp_path / "test.txt")), tmp_path / "d", progress=False)
    assert len(_sentences(tmp_path / "d", "valid")) == 5
    assert _sentences(tmp_path / "d", "test") == ["here is the sentence ."]
    meta = read_meta(tmp_path / "d")
    assert meta["notes"] == ["valid: held out 5 train lines, not 1,000: at most a tenth of the file's 50 lines"]
    # valid and test files sharing a sentence: noted, counted among the sentences kept (not the long one)
    (tmp_path / "test.txt").write_text("here is the sentence .\nthe center is here .\n" + "long " * 80 + "\n")
    prepare(cfg.replace(valid_file=str(tmp_path / "valid.txt"), test_file=str(tmp_path / "test.txt")),
            tmp_path / "d", progress=False)
    meta = read_meta(tmp_path / "d")
    assert meta["notes"] == ["test: 1 of its sentences are also in valid"]
    from seqvae.prepare import format_stats

    assert format_stats(meta).splitlines()[-1] == "note: " + meta["notes"][0]


def test_prepare_text_reads_the_file_as_named(tmp_path):
    """No glob patterns, no cached copy of an older version; a byte-order mark and old line ends are read."""
    (tmp_path / "my[1].txt").write_text("".join(f"bracketed line {i} here .\n" for i in range(50)))
    (tmp_path / "my1.txt").write_text("".join(f"plain line {i} here .\n" for i in range(20)))
    cfg = DataConfig(train_file=str(tmp_path / "my[1].txt"), valid_reviews=2, **TEXT_CFG)
    stats = prepare(cfg, tmp_path / "a", progress=False)
    assert stats["train"]["reviews"] == 46 and "bracketed line" in _sentences(tmp_path / "a", "train")[0]
    path = tmp_path / "edit.txt"
    path.write_text("".join(f"first version {i} .\n" for i in range(50)))
    prepare(cfg.replace(train_file=str(path)), tmp_path / "b", progress=False)
    stamp = path.stat().st_mtime_ns
    path.write_text("".join(f"second version {i} .\n" for i in range(60)))
    os.utime(path, ns=(stamp, stamp))  # as `cp -p` or `tar x` leave it
    assert prepare(cfg.replace(train_file=str(path)), tmp_path / "b", progress=False)["train"]["reviews"] == 56
    assert all("second version" in t for t in _sentences(tmp_path / "b", "train"))
    path.write_bytes(b"\xef\xbb\xbf" + b"".join(b"old mac line %d here .\r" % i for i in range(50)))
    prepare(cfg.replace(train_file=str(path)), tmp_path / "c", progress=False)
    _, _, extra = load_split(tmp_path / "c", "train")
    got = _sentences(tmp_path / "c", "train")
    assert len(got) == 46 and [f"old mac line {r} here ." for r in extra["review"]] == got  # no BOM on line 1
    # Unicode line and paragraph separators end lines too: not 50 sentences run into one that the filter drops
    path.write_text("\u2028".join(f"separated line {i} here ." for i in range(25)) + "\u2029"
                    + "\n".join(f"separated line {i} here ." for i in range(25, 50)) + "\n", encoding="utf-8")
    prepare(cfg.replace(train_file=str(path)), tmp_path / "c", progress=False)
    _, _, extra = load_split(tmp_path / "c", "train")
    assert [f"separated line {r} here ." for r in extra["review"]] == _sentences(tmp_path / "c", "train")
    assert len(extra["review"]) == 46


def test_prepare_text_documents_are_split_into_sentences(tmp_path):
    docs = [f"Review {i} was fine. The cast did well!<br />I would go again. Dr. Who liked it." for i in range(20)]
    (tmp_path / "docs.txt").write_text("\n".join(docs) + "\n")
    cfg = DataConfig(train_file=str(tmp_path / "docs.txt"), text_unit="document", valid_reviews=2, **TEXT_CFG)
    stats = prepare(cfg, tmp_path / "out", progress=False)
    assert stats["train"]["reviews"] == 16 and stats["valid"]["reviews"] == stats["test"]["reviews"] == 2
    assert stats["train"]["raw_sentences"] == 16 * len(review_to_sentences(docs[0])) == 64
    assert "I would go again." in _sentences(tmp_path / "out", "train")


def test_prepare_text_refuses_bad_input_in_one_line(tmp_path):
    good = tmp_path / "train.txt"
    good.write_text("".join(f"sentence number {i} is here .\n" for i in range(50)))
    base = DataConfig(train_file=str(good), **TEXT_CFG)
    cases = [
        (dict(train_file=""), ConfigError, "needs train_file"),
        (dict(dataset="imdb", valid_file=str(good)), ConfigError, r"valid_file \(--valid\): only for dataset 'text'"),
        (dict(source="hub"), ConfigError, "local"),
        (dict(text_unit="word"), ConfigError, "text_unit"),
        (dict(train_file=str(tmp_path / "none.txt")), DataError, "none.txt: no such file"),
        (dict(valid_reviews=0), DataError, "cannot hold out valid and test lines"),
        (dict(min_tokens=59, max_tokens=60), DataError, "no train sentence is left of 40: 40 outside 59..60 tokens"),
    ]
    (tmp_path / "few.txt").write_text("one line here .\n\n two lines here .\n")
    cases.append((dict(train_file=str(tmp_path / "few.txt")), DataError, "from 2 line"))
    (tmp_path / "nul.txt").write_bytes(b"fine\nbad\0line\n")
    cases.append((dict(train_file=str(tmp_path / "nul.txt")), DataError, "line 2 contains a NUL"))
    (tmp_path / "long.txt").write_text("word " * 3000 + "\n")
    cases.append((dict(train_file=str(tmp_path / "long.txt")), DataError,
                  "line 1 is 15,000 bytes long; a line is one sentence"))
    (tmp_path / "huge.txt").write_text("fine .\n" + "word " * 200_001 + "\n")
    cases.append((dict(train_file=str(tmp_path / "huge.txt"), text_unit="document"), DataError,
                  "line 2 is 1,000,005 bytes long; a line is one document here"))
    (tmp_path / "long2.txt").write_text("word " * 100 + "\n")  # a valid file whose only line the filter drops
    cases.append((dict(valid_file=str(tmp_path / "long2.txt")), DataError, "no valid sentence is left of 1: 1 outside"))
    (tmp_path / "seen.txt").write_text("sentence number 7 is here .\n")  # a test file of a train sentence
    (tmp_path / "new.txt").write_text("a sentence train does not have .\n")
    cases.append((dict(valid_file=str(tmp_path / "new.txt"), test_file=str(tmp_path / "seen.txt")), DataError,
                  "no test sentence is left of 1: 0 outside 3..60 tokens, 1 also in train, 0 duplicates"))
    (tmp_path / "train.txt.gz").write_bytes(gzip.compress(good.read_bytes()))  # not "line 1 is not valid UTF-8"
    cases.append((dict(train_file=str(tmp_path / "train.txt.gz")), DataError,
                  r"train.txt.gz: is gzip-compressed; give the text itself \(gunzip -k "))
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbf\r\n\r\n")  # Notepad's empty UTF-8 file
    cases.append((dict(train_file=str(tmp_path / "bom.txt")), DataError, "bom.txt: empty file"))
    cases.append((dict(train_file=str(tmp_path)), DataError, "is a directory, not a file"))
    os.mkfifo(tmp_path / "fifo")  # named, but nothing to read as a file (read_bytes would wait for a writer)
    cases.append((dict(train_file=str(tmp_path / "fifo")), DataError, "fifo: not a regular file"))
    cases.append((dict(test_file=str(tmp_path / "." / "train.txt")), DataError,
                  "--train and --test name the same file"))
    (tmp_path / "link.txt").symlink_to(good)  # another name for the same file: compared as files, not names
    cases.append((dict(valid_file=str(tmp_path / "link.txt")), DataError, "--train and --valid name the same file"))
    for unit in ("document", "line"):  # an explicit "line" too: it means nothing for PTB
        cases.append((dict(dataset="ptb", train_file="", text_unit=unit), ConfigError,
                      r"text_unit \(--unit\): only for dataset 'text'"))
    for change, error, pattern in cases:
        with pytest.raises(error, match=pattern):
            prepare(base.replace(**change) if error is DataError else DataConfig(**{**base.to_dict(), **change}),
                    tmp_path / "out", progress=False)
        assert not (tmp_path / "out").exists()


def test_prepare_text_from_the_command_line(tmp_path, capsys):
    (tmp_path / "t.txt").write_text("".join(f"sentence number {i} is here .\n" for i in range(50)))
    out = tmp_path / "o"
    assert _prepare(["--dataset", "text", "--train", str(tmp_path / "t.txt"), "--vocab-size", "60",
                     "--min-tokens", "3", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "text: sentencepiece tokenizer" in err and "note: valid: held out 5 train lines" in err
    assert _prepare(["--dataset", "imdb", "--test", str(tmp_path / "t.txt"), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "test_file (--test): only for dataset 'text'" in err


# ---------------------------------------------------------------------------- atomic output and errors
def _paused_prepare(tmp_path: Path, out: Path, seed: int, point: str):
    """`seqvae prepare` of tmp_path/t.txt in a subprocess, paused at `point` (seqvae/faultpoint.py): (proc, pid)."""
    import subprocess
    import sys
    import time

    marker = tmp_path / f"paused-{seed}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
           "SEQVAE_PAUSE_AT": point, "SEQVAE_PAUSE_MARKER": str(marker)}
    cmd = [sys.executable, "-m", "seqvae.cli", "prepare", "--dataset", "text", "--train", str(tmp_path / "t.txt"),
           "--vocab-size", "60", "--min-tokens", "3", "--seed", str(seed), "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not marker.exists():
        assert proc.poll() is None, f"prepare exited ({proc.returncode}) before {point}: {proc.stderr.read()}"
        assert time.time() - t0 < 120, f"prepare did not reach {point}"
        time.sleep(0.05)
    return proc, int(marker.read_text().split()[0])


def _kill(proc) -> None:
    proc.kill()
    proc.wait()
    proc.stderr.close()


def test_a_killed_prepare_leaves_a_whole_dir_and_the_next_one_cleans_up(tmp_path):
    """SIGKILL with the new dir filled, or between the two renames: the previous dir stays whole (parked, in the
    second case); the next prepare brings it back, replaces it, and removes the killed ones' temporary dirs.
    While one prepare writes a dir, a second one is refused in one line."""
    (tmp_path / "t.txt").write_text("".join(f"sentence number {i} is here .\n" for i in range(50)))
    data = tmp_path / "data"
    out = data / "mine"
    cfg = DataConfig(train_file=str(tmp_path / "t.txt"), **TEXT_CFG)
    prepare(cfg, out, progress=False)
    first = read_meta(out)
    proc, _ = _paused_prepare(tmp_path, out, 2, "prepare-filled")
    _kill(proc)
    assert read_meta(out) == first and load_split(out, "train")  # untouched
    left = list(data.glob(".mine.tmp-*"))
    assert len(left) == 1                                        # the killed one's new dir
    proc, _ = _paused_prepare(tmp_path, out, 3, "swap")
    _kill(proc)
    assert not out.exists() and read_meta(data / ".mine.old") == first  # parked whole
    assert not left[0].exists() and len(list(data.glob(".mine.tmp-*"))) == 1  # the next writer removed it
    prepare(cfg.replace(seed=4), out, progress=False)
    assert read_meta(out)["data_config"]["seed"] == 4
    assert sorted(p.name for p in data.iterdir()) == ["mine"]  # nothing parked, no temporary dir, no lock file

    proc, pid = _paused_prepare(tmp_path, out, 5, "prepare-filled")  # holds the lock
    try:
        with pytest.raises(RunDirBusy, match=f"{out} is being written by another prepare \\(pid {pid} on "):
            prepare(cfg.replace(seed=6), out, progress=False)
        assert read_meta(out)["data_config"]["seed"] == 4
    finally:
        _kill(proc)
    prepare(cfg.replace(seed=7), out, progress=False)  # the killed holder's lock is stale
    assert read_meta(out)["data_config"]["seed"] == 7 and sorted(p.name for p in data.iterdir()) == ["mine"]


def test_failed_prepare_leaves_nothing_and_keeps_old_output(imdb, tmp_path, monkeypatch):
    root = write_fake_ptb(tmp_path / "raw")
    cfg = DataConfig(dataset="ptb", data_root=str(root))
    calls = []

    def fail_on_second(path, **arrays):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        np.savez(path, **arrays)

    monkeypatch.setattr(P.np, "savez_compressed", fail_on_second)
    with pytest.raises(OSError, match="disk full"):
        prepare(cfg, tmp_path / "out", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]  # no out dir, no temp dir
    monkeypatch.undo()
    prepare(cfg, tmp_path / "out", progress=False)
    before = (tmp_path / "out" / "meta.json").read_text()
    calls.clear()
    monkeypatch.setattr(P.np, "savez_compressed", fail_on_second)
    with pytest.raises(OSError):
        prepare(cfg.replace(seed=1), tmp_path / "out", progress=False)
    assert (tmp_path / "out" / "meta.json").read_text() == before  # the old dir is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "raw"]


def test_prepare_refuses_to_replace_a_foreign_dir(tmp_path):
    root = write_fake_ptb(tmp_path / "raw")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("precious")
    with pytest.raises(DataError, match="not a prepared data dir"):
        prepare(DataConfig(dataset="ptb", data_root=str(root)), tmp_path / "mine", progress=False)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "precious"
    # a prepared dir that also holds a user's file (their corpus, say) is not replaced either: that would delete it
    prepare(DataConfig(dataset="ptb", data_root=str(root)), tmp_path / "data", progress=False)
    (tmp_path / "data" / "corpus.txt").write_text("precious")
    with pytest.raises(DataError, match=r"holds files seqvae prepare did not write \(corpus.txt\)"):
        prepare(DataConfig(dataset="ptb", data_root=str(root)), tmp_path / "data", progress=False)
    assert (tmp_path / "data" / "corpus.txt").read_text() == "precious"
    (tmp_path / "data" / "corpus.txt").unlink()
    # what other commands cache there (the report's word counts), and a killed writer's leftover of it, are seqvae's
    (tmp_path / "data" / P.WORDS_CACHE).write_bytes(b"cache")
    (tmp_path / "data" / ".report_words.x1y2.tmp.npz").write_bytes(b"half")
    prepare(DataConfig(dataset="ptb", data_root=str(root), seed=1), tmp_path / "data", progress=False)  # replaced
    assert not (tmp_path / "data" / P.WORDS_CACHE).exists()


def test_missing_data_root_and_files(tmp_path):
    with pytest.raises(DataError, match=str(tmp_path / "nowhere")):
        prepare(DataConfig(dataset="imdb", data_root=str(tmp_path / "nowhere")), tmp_path / "out", progress=False)
    root = write_fake_imdb(tmp_path / "raw")
    (root / "imdb" / "unsup.jsonl.gz").unlink()
    with pytest.raises(DataError, match="unsup.jsonl.gz: no such file"):
        prepare(DataConfig(data_root=str(root), **IMDB_CFG), tmp_path / "out", progress=False)
    with pytest.raises(DataError, match="ptb.valid.txt: no such file"):
        load_ptb("valid", data_root=tmp_path)
    assert not (tmp_path / "out").exists()


def test_empty_and_invalid_files(tmp_path):
    root = write_fake_imdb(tmp_path / "raw")
    with gzip.open(root / "imdb" / "test.jsonl.gz", "wt") as f:
        f.write("")
    with pytest.raises(DataError, match=r"test.jsonl.gz: empty file"):
        load_imdb("test", data_root=root)
    with pytest.raises(DataError, match=r"test.jsonl.gz: empty file"):
        prepare(DataConfig(data_root=str(root), **IMDB_CFG), tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    with gzip.open(root / "imdb" / "test.jsonl.gz", "wt") as f:
        f.write('{"text": "fine", "label": 1}\n{"label": 0}\n')
    with pytest.raises(DataError, match="row 1 has no text"):
        load_imdb("test", data_root=root)
    with gzip.open(root / "imdb" / "test.jsonl.gz", "wt") as f:
        f.write('{"text": "fine", "label": 1}\n{"text": broken\n')
    with pytest.raises(DataError, match="cannot load"):
        load_imdb("test", data_root=root)
    write_fake_ptb(root)
    (root / "ptb" / "ptb.test.txt").write_text("")
    with pytest.raises(DataError, match="ptb.test.txt: empty file"):
        prepare(DataConfig(dataset="ptb", data_root=str(root)), tmp_path / "out", progress=False)


def test_config_errors(tmp_path):
    root = write_fake_imdb(tmp_path / "raw")
    with pytest.raises(ConfigError, match="valid_reviews"):
        prepare(DataConfig(data_root=str(root), **{**IMDB_CFG, "valid_reviews": 40}), tmp_path / "out", progress=False)
    with pytest.raises(ConfigError):
        prepare(DataConfig(data_root=str(root), **{**IMDB_CFG, "min_tokens": 0}), tmp_path / "out", progress=False)


def test_readers_report_missing_and_corrupt_files(tmp_path):
    with pytest.raises(DataError, match="meta.json: no such file"):
        read_meta(tmp_path)
    (tmp_path / "meta.json").write_text("{not json")
    with pytest.raises(DataError, match="invalid JSON"):
        read_meta(tmp_path)
    (tmp_path / "meta.json").write_text(json.dumps({"format": 99, "dataset": "x", "tokenizer": "word",
                                                    "vocab_size": 5, "stats": {}}))
    with pytest.raises(DataError, match="not supported"):
        read_meta(tmp_path)
    with pytest.raises(DataError, match="train.npz: no such file"):
        load_split(tmp_path, "train")
    with pytest.raises(DataError, match="split must be"):
        load_split(tmp_path, "dev")
    (tmp_path / "train.npz").write_bytes(b"garbage")
    with pytest.raises(DataError, match="unreadable"):
        load_split(tmp_path, "train")
    good = dict(ids=np.arange(5, dtype=np.int32), offsets=np.array([0, 2, 5]), review=np.zeros(2, np.int64),
                origin=np.zeros(2, np.int8), label=np.zeros(2, np.int8))
    np.savez(tmp_path / "train.npz", **{**good, "offsets": np.array([0, 2, 4])})
    with pytest.raises(DataError, match="offsets"):
        load_split(tmp_path, "train")
    np.savez(tmp_path / "train.npz", **{k: v for k, v in good.items() if k != "label"})
    with pytest.raises(DataError, match="missing array 'label'"):
        load_split(tmp_path, "train")
    np.savez(tmp_path / "train.npz", **good)
    ids, offsets, extra = load_split(tmp_path, "train")
    assert ids.tolist() == [0, 1, 2, 3, 4] and sorted(extra) == ["label", "origin", "review"]


# ---------------------------------------------------------------------------- command line
def _prepare(argv):
    from seqvae.cli import main

    return main(["prepare", *argv])


def test_prepare_errors_are_one_line_exit_2(tmp_path, capsys):
    rc = _prepare(["--dataset", "ptb", "--data-root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "nowhere" in err and not (tmp_path / "o").exists()
    assert _prepare(["--min-tokens", "0", "--out", str(tmp_path / "o")]) == 2
    assert "min_tokens" in capsys.readouterr().err


def test_prepare_command_runs(tmp_path, capsys):
    root = write_fake_ptb(tmp_path / "raw")
    assert _prepare(["--dataset", "ptb", "--data-root", str(root), "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert "train" in err and "vocab 13" in err  # the statistics table
    assert read_meta(tmp_path / "o")["data_config"]["data_root"] == str(root)


def test_the_stats_line_says_when_the_vocabulary_is_smaller_than_asked(imdb):
    """sentencepiece gives a small corpus fewer pieces than asked (hard_vocab_limit=False): said, not silent."""
    from seqvae.prepare import format_stats

    meta = read_meta(imdb[1])
    small = {**meta, "vocab_size": 50, "data_config": {**meta["data_config"], "vocab_size": 8000}}
    assert "vocab 50 (asked 8,000: the corpus has no more pieces)" in format_stats(small).splitlines()[0]
    exact = {**meta, "data_config": {**meta["data_config"], "vocab_size": meta["vocab_size"]}}
    assert "asked" not in format_stats(exact)
    assert "asked" not in format_stats({**small, "tokenizer": "word"})  # PTB's word vocabulary is kept whole


def test_prepare_notes_the_sentences_a_split_shares_with_an_earlier_one(imdb, tmp_path):
    """IMDB's test has copies of train reviews, so of some held out for valid: their sentences stay in both
    (dedup only drops what train has) and the notes count them, as they count PTB's repeats of train."""
    root, out, _ = imdb
    assert read_meta(out)["notes"] == []  # the fake corpus shares nothing between its splits
    valid_rows = sorted(set(load_split(out, "valid")[2]["review"].tolist()))
    raw = write_fake_imdb(tmp_path / "raw")
    train_rows, test_rows = _source_rows(raw, "train"), _source_rows(raw, "test")
    copied = [train_rows[r] for r in valid_rows[:2]]  # test reviews 0 and 1 become copies of two valid ones
    with gzip.open(raw / "imdb" / "test.jsonl.gz", "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in copied + test_rows[2:])
    prepare(DataConfig(data_root=str(raw), **IMDB_CFG), tmp_path / "out", progress=False)
    valid, test = _sentences(tmp_path / "out", "valid"), _sentences(tmp_path / "out", "test")
    shared = sum(s in set(valid) for s in test)
    assert shared > 0 and load_split(tmp_path / "out", "valid")[2]["review"].tolist() == \
        load_split(out, "valid")[2]["review"].tolist()  # the same reviews held out
    assert read_meta(tmp_path / "out")["notes"] == [f"test: {shared} of its sentences are also in valid"]

    ptb = write_fake_ptb(tmp_path / "ptb")
    (ptb / "ptb" / "ptb.test.txt").write_text(" the cat sat on the mat \n the dog sat \n the dog sat \n zebra \n")
    prepare(DataConfig(dataset="ptb", data_root=str(ptb)), tmp_path / "p", progress=False)
    assert read_meta(tmp_path / "p")["notes"] == ["test: 1 of its sentences are also in train",
                                                  "test: 2 of its sentences are also in valid"]
