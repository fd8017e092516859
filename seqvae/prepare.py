"""A prepared data dir: building it from a raw corpus (`prepare`) and reading it back (`read_meta`,
`load_split`; `model_data_dir` finds a checkpoint's).

    reviews (or a user's lines) ──review_to_sentences──► sentences (seqvae.sentences)
            ──tokenizer──► ids ──length filter, dedup──► {train,valid,test}.npz + meta.json

The raw corpora are read by seqvae.corpus (load_imdb, load_ptb).

A prepared data dir holds:
    tokenizer.model | vocab.txt   the tokenizer (see seqvae.tokenizer)
    {train,valid,test}.npz        ids int32 (all sentences back to back, no BOS/EOS),
                                  offsets int64 (N+1; sentence i = ids[offsets[i]:offsets[i+1]]),
                                  review int64 (row of the source file; PTB, text: line number - 1),
                                  origin int8 (ORIGINS), label int8 (-1 = unlabelled)
    meta.json                     format, dataset, tokenizer kind, vocab size, special ids,
                                  data_config, stats per split
    samples.txt                   the first train sentences, decoded, for eyeballing
It is written to a temporary sibling dir and renamed into place only when complete.

Command line (`seqvae prepare`, its flags in seqvae.cli, one per DataConfig field):
    seqvae prepare --dataset imdb --out data/imdb
    seqvae prepare --dataset text --train my/train.txt --out data/mine    # your own sentences, one per line
"""

from __future__ import annotations

import itertools
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import atomic, faultpoint
from .config import BOS_ID, EOS_ID, PAD_ID, UNK_ID, ConfigError, DataConfig, PTB_KEPT_WHOLE, load_json
from .corpus import IMDB_SPLITS, PTB_SPLITS, DataError, load_imdb, load_ptb, load_text, resolve_data_root
from .display import one_line
from .runlock import OutLock
from .sentences import review_to_sentences
from .tokenizer import (SentencePieceTokenizer, Tokenizer, WordTokenizer, build_word_tokenizer, same_tokenizer,
                        train_sentencepiece)

FORMAT_VERSION = 1
SPLITS = ("train", "valid", "test")
ORIGINS = {"imdb_train": 0, "imdb_unsup": 1, "imdb_test": 2, "ptb": 3, "text": 4}  # the `origin` column
META_FILE = "meta.json"
SAMPLES_FILE = "samples.txt"
WORDS_CACHE = "report_words.npz"  # what seqvae.splittext caches in a prepared dir: its training words
PREPARED_FILES = {META_FILE, SAMPLES_FILE, SentencePieceTokenizer.filename, WordTokenizer.filename, WORDS_CACHE,
                  *(f"{s}.npz" for s in SPLITS)}  # what seqvae writes in a prepared dir: nothing else is replaced


# ---------------------------------------------------------------------------- prepare
class _Split:
    """Sentences of one output split with where each came from, plus counters for the stats."""

    def __init__(self, name: str):
        self.name = name
        self.sentences: list[str] = []
        self.review: list[int] = []
        self.origin: list[int] = []
        self.label: list[int] = []
        self.seen: set[str] = set()
        self.reviews = 0            # source rows read into this split
        self.raw = 0                # sentences before any filtering
        self.dropped = {"short": 0, "long": 0, "dup": 0, "cap": 0, "in_train": 0}
        self.notes: list[str] = []  # what the user should know about how this split was made

    def add(self, sentence: str, review: int, origin: int, label: int, dedup: bool,
            exclude: set[str] | None = None) -> None:
        self.raw += 1
        if exclude is not None and sentence in exclude:
            self.dropped["in_train"] += 1
            return
        if dedup:
            if sentence in self.seen:
                self.dropped["dup"] += 1
                return
            self.seen.add(sentence)
        self.sentences.append(sentence)
        self.review.append(review)
        self.origin.append(origin)
        self.label.append(label)


def _progress(iterable, progress: bool, desc: str, total: int | None = None):
    if not progress:
        return iterable
    from tqdm.auto import tqdm

    # disable=None: no bars when stderr is not a terminal (a log file would get their carriage returns)
    return tqdm(iterable, desc=desc, total=total, unit_scale=True, leave=False, file=sys.stderr, disable=None)


def _collect_imdb(cfg: DataConfig, root: Path, progress: bool) -> dict[str, _Split]:
    """Read IMDB, hold out validation reviews, split every review into sentences (deduped)."""
    if cfg.valid_reviews < 1:
        raise ConfigError("valid_reviews must be >= 1 for IMDB")
    data = {s: load_imdb(s, cfg.source, root) for s in IMDB_SPLITS}
    n_train = len(data["train"])
    if cfg.valid_reviews >= n_train:
        raise ConfigError(f"valid_reviews ({cfg.valid_reviews}) must be smaller than the number of "
                          f"train reviews ({n_train})")
    rng = np.random.default_rng(cfg.seed)
    held = rng.permutation(n_train)
    valid_rows, rest_rows = held[: cfg.valid_reviews], held[cfg.valid_reviews :]
    # (origin, row) of every train review, shuffled together: official train minus valid, plus unsup.
    pool = [(ORIGINS["imdb_train"], int(r)) for r in rest_rows]
    pool += [(ORIGINS["imdb_unsup"], r) for r in range(len(data["unsup"]))]
    pool = [pool[i] for i in rng.permutation(len(pool))]
    plan = {
        "train": pool,
        "valid": [(ORIGINS["imdb_train"], int(r)) for r in valid_rows],
        "test": [(ORIGINS["imdb_test"], int(r)) for r in rng.permutation(len(data["test"]))],
    }
    source_of = {ORIGINS["imdb_train"]: "train", ORIGINS["imdb_unsup"]: "unsup", ORIGINS["imdb_test"]: "test"}
    columns = {s: (list(ds["text"]), list(ds["label"])) for s, ds in data.items()}
    # With a sentence cap, read only about twice the sentences it keeps (filters drop some).
    raw_cap = 2 * cfg.max_sentences + 1000 if cfg.max_sentences > 0 else None
    splits: dict[str, _Split] = {}
    in_train: set[str] | None = None  # with dedup: valid/test keep only sentences the model never trained on
    for name, rows in plan.items():  # train first
        sp = splits[name] = _Split(name)
        for origin, row in _progress(rows, progress, f"split {name}"):
            texts, labels = columns[source_of[origin]]
            for sent in review_to_sentences(texts[row]):
                sp.add(sent, row, origin, int(labels[row]), cfg.dedup, exclude=in_train)
            sp.reviews += 1
            if name == "train" and raw_cap is not None and len(sp.sentences) >= raw_cap:
                break
        if name == "train" and cfg.dedup:
            in_train = sp.seen
        else:
            sp.seen.clear()
    if in_train is not None:
        in_train.clear()
    return splits


def _collect_ptb(cfg: DataConfig, root: Path, progress: bool) -> dict[str, _Split]:
    """PTB: each line is a sentence, kept as is (no dedup: numbers stay comparable)."""
    splits = {}
    for name in PTB_SPLITS:
        sp = splits[name] = _Split(name)
        for i, line in enumerate(load_ptb(name, cfg.source, root)["text"]):
            sp.reviews += 1
            sent = " ".join(line.split())
            if not sent:
                sp.raw += 1
                sp.dropped["short"] += 1  # an empty line; the real files have none
                continue
            sp.add(sent, i, ORIGINS["ptb"], -1, dedup=False)
    return splits


def _collect_text(cfg: DataConfig, root: Path, progress: bool) -> dict[str, _Split]:
    """A user's files: each non-blank line a sentence (text_unit "line", whitespace runs made one space) or a
    document split into sentences ("document"). Valid and test are their files, or else whole train lines held
    out (valid_reviews each, at most a tenth of the lines, which the split's notes then say). Deduplicated as
    IMDB is: within each split, and no valid or test sentence that train has."""
    files = {name: Path(f).expanduser() for name, f in
             (("train", cfg.train_file), ("valid", cfg.valid_file), ("test", cfg.test_file)) if f}
    for a, b in itertools.combinations(files, 2):
        if files[a].is_file() and files[b].is_file() and files[a].samefile(files[b]):
            raise DataError(f"--{a} and --{b} name the same file ({files[b]}): each split needs its own sentences")
    unit = cfg.text_unit or "line"
    lines = {name: [(i, t) for i, t in enumerate(load_text(f, unit)["text"]) if t.strip()] for name, f in files.items()}
    sentences_of = (lambda text: [" ".join(text.split())]) if unit == "line" else review_to_sentences
    # a valid or test file keeps no sentence of the train file, held-out lines included
    whole_train = {s for _, text in lines["train"] for s in sentences_of(text)} if cfg.dedup else None
    rng = np.random.default_rng(cfg.seed)
    train = [lines["train"][i] for i in rng.permutation(len(lines["train"]))]
    missing = [name for name in ("valid", "test") if name not in lines]
    held, note = max(1, min(cfg.valid_reviews, len(train) // 10)), ""
    if missing:
        if cfg.valid_reviews < 1 or len(train) < 10:
            raise DataError(f"{cfg.train_file}: cannot hold out {' and '.join(missing)} lines from "
                            f"{len(train)} line(s) with valid_reviews {cfg.valid_reviews} "
                            f"(give --{' and --'.join(missing)} FILE)")
        if held < cfg.valid_reviews:
            note = (f"held out {held:,} train lines, not {cfg.valid_reviews:,}: at most a tenth of the file's "
                    f"{len(train):,} lines")
        for name in missing:
            lines[name], train = train[:held], train[held:]
    lines["train"] = train
    splits: dict[str, _Split] = {}
    in_train: set[str] | None = None  # with dedup: the train split's sentences, which held-out lines may not have
    for name in SPLITS:  # train first
        sp = splits[name] = _Split(name)
        if name in missing and note:
            sp.notes.append(note)
        exclude = in_train if name in missing else whole_train if name != "train" else None
        for row, text in _progress(lines[name], progress, f"split {name}"):
            for sent in sentences_of(text):
                sp.add(sent, row, ORIGINS["text"], -1, cfg.dedup, exclude=exclude)
            sp.reviews += 1
        if name == "train" and cfg.dedup:
            in_train = sp.seen
        else:
            sp.seen.clear()
    return splits


def _sentence_rows(x: dict[str, np.ndarray]) -> list[bytes]:
    """The sentences of a split's arrays (as `_encode_split` returns them), each as the bytes of its ids."""
    return [x["ids"][x["offsets"][i] : x["offsets"][i + 1]].tobytes() for i in range(len(x["offsets"]) - 1)]


def _overlap_notes(arrays: dict[str, dict[str, np.ndarray]]) -> dict[str, list[str]]:
    """{split: notes} saying how many of valid's sentences train also has, and of test's, train and valid
    (the same ids; counted with repeats). Nothing is dropped here: with dedup valid and test keep no train
    sentence, but they may share sentences with each other (IMDB's test has copies of some train reviews, and
    so of the valid ones held out), and PTB, never deduplicated, has train sentences in both."""
    notes: dict[str, list[str]] = {name: [] for name in SPLITS}
    seen: dict[str, set[bytes]] = {}
    for name in SPLITS:  # each split against the ones before it
        rows = _sentence_rows(arrays[name])
        for earlier, known in seen.items():
            n = sum(r in known for r in rows)
            if n:
                notes[name].append(f"{n:,} of its sentences are also in {earlier}")
        if name != SPLITS[-1]:
            seen[name] = set(rows)
    return notes


def _build_tokenizer(cfg: DataConfig, train_sentences: list[str], progress: bool) -> Tokenizer:
    kind = cfg.tokenizer if cfg.tokenizer != "auto" else ("word" if cfg.dataset == "ptb" else "sentencepiece")
    if progress:
        print(f"training {kind} tokenizer on {len(train_sentences):,} sentences ...", file=sys.stderr, flush=True)
    if kind == "word":
        # PTB's vocabulary is fixed by its preprocessing (10k words incl. <unk>): keep it whole.
        return build_word_tokenizer(train_sentences, max_size=None if cfg.dataset == "ptb" else cfg.vocab_size)
    return train_sentencepiece(train_sentences, vocab_size=cfg.vocab_size, model_type=cfg.sp_model_type,
                               seed=cfg.seed)


def _encode_split(sp: _Split, tok: Tokenizer, cfg: DataConfig, progress: bool,
                  chunk: int = 50_000) -> dict[str, np.ndarray]:
    """Tokenize a split, apply the length filter (not for PTB) and the train cap; -> npz arrays."""
    filter_lengths = cfg.dataset != "ptb"
    cap = cfg.max_sentences if (sp.name == "train" and cfg.max_sentences > 0) else None
    flat, lengths, keep = [], [], []
    starts = range(0, len(sp.sentences), chunk)
    for start in _progress(starts, progress, f"encode {sp.name}", total=len(starts)):
        for j, ids in enumerate(tok.encode_batch(sp.sentences[start : start + chunk]), start):
            n = len(ids)
            if filter_lengths and n < cfg.min_tokens:
                sp.dropped["short"] += 1
            elif filter_lengths and n > cfg.max_tokens:
                sp.dropped["long"] += 1
            elif cap is not None and len(keep) >= cap:
                sp.dropped["cap"] += 1
            else:
                keep.append(j)
                lengths.append(n)
                flat.append(np.asarray(ids, dtype=np.int32))
    keep_idx = np.asarray(keep, dtype=np.int64)
    offsets = np.zeros(len(keep) + 1, dtype=np.int64)
    np.cumsum(np.asarray(lengths, dtype=np.int64), out=offsets[1:])
    return {
        "ids": np.concatenate(flat) if flat else np.zeros(0, dtype=np.int32),
        "offsets": offsets,
        "review": np.asarray(sp.review, dtype=np.int64)[keep_idx],
        "origin": np.asarray(sp.origin, dtype=np.int8)[keep_idx],
        "label": np.asarray(sp.label, dtype=np.int8)[keep_idx],
    }


def _split_stats(sp: _Split, arrays: dict[str, np.ndarray], unk_id: int) -> dict[str, Any]:
    n, ids = len(arrays["offsets"]) - 1, arrays["ids"]
    lengths = np.diff(arrays["offsets"])
    return {
        "sentences": int(n), "tokens": int(len(ids)), "reviews": sp.reviews,
        "mean_tokens": round(float(lengths.mean()), 3) if n else 0.0,
        "max_tokens": int(lengths.max()) if n else 0,
        "unk_rate": round(float((ids == unk_id).mean()), 6) if len(ids) else 0.0,
        "raw_sentences": sp.raw,
        "dropped_short": sp.dropped["short"], "dropped_long": sp.dropped["long"],
        "dropped_dup": sp.dropped["dup"], "dropped_cap": sp.dropped["cap"], "dropped_in_train": sp.dropped["in_train"],
    }


def _check_out_dir(out: Path) -> None:
    """Refuse to replace anything but an earlier prepared dir that holds only what prepare writes (or an empty
    dir): replacing the dir would delete anything else, a user's own files (their corpus, say) included."""
    atomic.check_dir_path(out)  # also: no file where a parent dir should be
    if out.exists():
        if any(out.iterdir()) and not (out / META_FILE).is_file():
            raise DataError(f"{out}: exists and is not a prepared data dir (no {META_FILE}); not replacing it")
        ours = PREPARED_FILES | {p.name for name in PREPARED_FILES for p in atomic.leftovers(out / name)}
        foreign = sorted(p.name for p in out.iterdir() if p.name not in ours)
        if foreign:
            raise DataError(f"{out}: holds files seqvae prepare did not write ({', '.join(foreign[:3])}"
                            f"{', ...' if len(foreign) > 3 else ''}); not replacing it")


def prepare(cfg: DataConfig, out_dir: str | Path, progress: bool = True) -> dict[str, dict[str, Any]]:
    """Build a prepared data dir at `out_dir` from the raw corpus; returns the stats per split.

    IMDB: whole train reviews are held out for validation (cfg.valid_reviews, chosen with
    cfg.seed); train = the other train reviews + unsup; test = test. Reviews are shuffled,
    split into sentences (review_to_sentences), exact duplicates dropped per split (first kept)
    and, for valid and test, sentences that also occur in train dropped (no test sentence was
    trained on: IMDB's test reviews overlap train and unsup, and short sentences recur), then
    sentences outside [min_tokens, max_tokens] tokens dropped; the tokenizer is trained on the
    (deduplicated, unfiltered) train sentences only. PTB: lines as they are, no filter, no dedup.
    "text": the user's files (cfg.train_file, ...; `_collect_text`), then filtered and deduplicated as IMDB is.
    The notes (meta.json, and under the table) count the sentences valid shares with train and test with train
    and valid, whatever the dataset: e.g. the sentences of IMDB test reviews that copy a held-out valid review.
    """
    t0 = time.perf_counter()
    cfg.validate()
    if cfg.max_sentences < 0 or cfg.valid_reviews < 0:
        raise ConfigError("max_sentences and valid_reviews must be >= 0")
    out = Path(out_dir)
    _check_out_dir(out)
    root = resolve_data_root(cfg.data_root) if cfg.source == "local" else Path(cfg.data_root)
    if cfg.source == "local" and cfg.dataset != "text":
        sub = root / cfg.dataset
        if not sub.is_dir():
            raise DataError(f"{sub}: no such directory (set --data-root to the folder holding {cfg.dataset}/)")
    collect = {"imdb": _collect_imdb, "ptb": _collect_ptb, "text": _collect_text}[cfg.dataset]
    splits = collect(cfg, root, progress)
    if not splits["train"].sentences:
        raise DataError(f"{cfg.dataset}: the train split has no sentences")
    tok = _build_tokenizer(cfg, splits["train"].sentences, progress)
    arrays = {name: _encode_split(sp, tok, cfg, progress) for name, sp in splits.items()}
    for name, notes in _overlap_notes(arrays).items():
        splits[name].notes.extend(notes)
    stats = {name: _split_stats(splits[name], arrays[name], tok.unk_id) for name in SPLITS}
    for name in SPLITS:  # train first: with no train sentence, that is the news
        if stats[name]["sentences"] == 0:
            st = stats[name]
            raise DataError(f"{cfg.dataset}: no {name} sentence is left of {st['raw_sentences']:,}: "
                            f"{st['dropped_short'] + st['dropped_long']:,} outside {cfg.min_tokens}..{cfg.max_tokens} "
                            f"tokens, {st['dropped_in_train']:,} also in train, {st['dropped_dup']:,} duplicates")
    meta = {
        "format": FORMAT_VERSION, "dataset": cfg.dataset, "tokenizer": tok.kind, "vocab_size": tok.vocab_size,
        "pad_id": PAD_ID, "unk_id": UNK_ID, "bos_id": BOS_ID, "eos_id": EOS_ID,
        "data_config": {k: v for k, v in cfg.to_dict().items()  # PTB's: without the filters it does not apply
                        if cfg.dataset != "ptb" or k not in PTB_KEPT_WHOLE},
        "data_root": str(root), "stats": stats,
        "notes": [f"{name}: {n}" for name, sp in splits.items() for n in sp.notes],
    }

    # taken just before the writing: no dirs are made for a prepare that fails before
    with OutLock(out, writer="prepare", advice="use another --out"):
        _write(out, tok, arrays, meta)
    if progress:
        print(format_stats(meta, seconds=time.perf_counter() - t0, out=out), file=sys.stderr)
    return stats


def _write(out: Path, tok: Tokenizer, arrays: dict[str, dict[str, np.ndarray]], meta: dict[str, Any]) -> None:
    """Fill a temporary dir beside `out`, then rename it into place (atomic.replace_dir); nothing is left on failure."""
    tmp = atomic.temp_dir_for(out)
    try:
        tok.save(tmp)
        for name in SPLITS:
            np.savez_compressed(tmp / f"{name}.npz", **arrays[name])
        train = arrays["train"]
        samples = [tok.decode(train["ids"][train["offsets"][i] : train["offsets"][i + 1]])
                   for i in range(min(20, len(train["offsets"]) - 1))]
        (tmp / SAMPLES_FILE).write_text("\n".join(samples) + "\n", encoding="utf-8")
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        faultpoint.reached("prepare-filled")
        atomic.replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def format_stats(meta: dict[str, Any], seconds: float | None = None, out: Path | None = None) -> str:
    """A small table of the per-split statistics in `meta`."""
    head = f"{'split':<6} {'sentences':>10} {'tokens':>11} {'reviews':>8} {'mean':>6} {'max':>4} {'unk%':>7} " \
           f"{'short':>7} {'long':>7} {'dup':>7} {'in-train':>9}"
    asked = meta.get("data_config", {}).get("vocab_size", 0)
    fewer = f" (asked {asked:,}: the corpus has no more pieces)" \
        if meta["tokenizer"] == "sentencepiece" and meta["vocab_size"] < asked else ""
    lines = [f"{meta['dataset']}: {meta['tokenizer']} tokenizer, vocab {meta['vocab_size']:,}{fewer}"
             + (f", {seconds:.1f} s" if seconds is not None else "") + (f" -> {out}" if out else ""), head]
    for name, s in meta["stats"].items():
        lines.append(f"{name:<6} {s['sentences']:>10,} {s['tokens']:>11,} {s['reviews']:>8,} {s['mean_tokens']:>6.1f} "
                     f"{s['max_tokens']:>4} {100 * s['unk_rate']:>7.3f} {s['dropped_short']:>7,} "
                     f"{s['dropped_long']:>7,} {s['dropped_dup']:>7,} {s.get('dropped_in_train', 0):>9,}")
    lines += [f"note: {n}" for n in meta.get("notes", [])]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- reading a prepared dir
_SPLIT_ARRAYS = {"ids": "iu", "offsets": "iu", "review": "iu", "origin": "iu", "label": "i"}


def read_meta(data_dir: str | Path) -> dict[str, Any]:
    """meta.json of a prepared data dir, checked for the keys readers rely on."""
    path = Path(data_dir) / META_FILE
    if not path.is_file():
        raise DataError(f"{path}: no such file (is {Path(data_dir)} a prepared data dir? run `seqvae prepare`)")
    meta = load_json(path, error=DataError, expect_object=True)
    missing = [k for k in ("format", "dataset", "tokenizer", "vocab_size", "stats") if k not in meta]
    if missing:
        raise DataError(f"{path}: missing key(s) {', '.join(missing)}")
    if not isinstance(meta["format"], int) or meta["format"] > FORMAT_VERSION:
        raise DataError(f"{path}: data format {meta['format']!r} is not supported (this seqvae reads {FORMAT_VERSION})")
    return meta


def data_dir_record(data_dir: str | Path) -> dict[str, str]:
    """How a run records its data dir: absolute (found from any directory) and as given (a relative path
    still finds it in a copy of the repo elsewhere). `locate_data_dir` reads it back."""
    return {"data_dir": str(data_dir), "data_dir_abs": str(Path(data_dir).resolve())}


def locate_data_dir(record: dict[str, Any]) -> str | None:
    """The record's data dir (`data_dir_record`): the absolute path where it is a directory, else the path
    as given where that is one from here (a copied repo; an older record has only this); else None."""
    for key in ("data_dir_abs", "data_dir"):
        if record.get(key) and Path(record[key]).is_dir():
            return str(record[key])
    return None


def describe_data_dir(record: dict[str, Any]) -> str:
    """The record's data dir in an error message: both forms when they differ."""
    given, absolute = record.get("data_dir") or "", record.get("data_dir_abs") or ""
    return f"{given} ({absolute})" if absolute and absolute != given else given


def model_data_dir(config: dict[str, Any], given: str | None, same_ids_as: Path | None = None) -> str:
    """`given`, or the prepared data dir a checkpoint's config names (its training data). With `same_ids_as`
    (a checkpoint whose model reads the data's ids as they are), its tokenizer must be that checkpoint's."""
    record = config.get("data") or {}
    data = given or locate_data_dir(record)
    if not data or not Path(data).is_dir():
        named = data or describe_data_dir(record)
        raise ConfigError(f"no prepared data dir{' ' + named if named else ''} (pass --data DIR)")
    if same_ids_as is not None and not same_tokenizer(same_ids_as, data):
        raise ConfigError(f"{data}: its tokenizer is not the checkpoint's; pass the data dir the model was trained on")
    return data


def load_split(data_dir: str | Path, split: str, vocab_size: int | None = None
               ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(ids int32, offsets int64, {"review", "origin", "label"}) of one split of a prepared dir. With
    `vocab_size` (the tokenizer's), an id outside [0, vocab_size) is a DataError (an embedding would fail on it
    mid-run, in the one process that drew the sentence)."""
    if split not in SPLITS:
        raise DataError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    path = Path(data_dir) / f"{split}.npz"
    if not path.is_file():
        raise DataError(f"{path}: no such file (is {Path(data_dir)} a prepared data dir? run `seqvae prepare`)")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:  # zipfile.BadZipFile, ValueError, OSError, EOFError ...
        raise DataError(f"{path}: unreadable ({type(e).__name__}: {one_line(e)})") from None
    for key, kinds in _SPLIT_ARRAYS.items():
        if key not in arrays:
            raise DataError(f"{path}: missing array {key!r}")
        if arrays[key].ndim != 1 or arrays[key].dtype.kind not in kinds:
            raise DataError(f"{path}: array {key!r} must be 1-D integers")
    ids, offsets = arrays.pop("ids"), arrays.pop("offsets")
    n = len(offsets) - 1
    if n < 0 or offsets[0] != 0 or offsets[-1] != len(ids) or (np.diff(offsets) < 0).any():
        raise DataError(f"{path}: offsets must rise from 0 to len(ids)")
    if any(len(arrays[k]) != n for k in ("review", "origin", "label")):
        raise DataError(f"{path}: review/origin/label must have one entry per sentence ({n})")
    if vocab_size is not None and len(ids):
        outside = ids[(ids < 0) | (ids >= vocab_size)]
        if len(outside):
            raise DataError(f"{path}: token id {outside[0]} is outside the vocabulary of {Path(data_dir)}'s tokenizer "
                            f"(size {vocab_size}); prepare the data dir again (`seqvae prepare`)")
    return ids, offsets, arrays
