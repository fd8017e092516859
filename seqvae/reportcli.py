"""`seqvae report`: what a checkpoint writes, measured (seqvae.quality's report) on held-out sentences of its
test split or of a --texts file, as markdown on stdout and optionally report.md + report.json (registered by
cli.py; errors reach the user as one line through it).

    seqvae report checkpoints/imdb --judge checkpoints/imdb-lm --out runs/imdb-report
    seqvae report runs/mine --texts my.txt --words 5-25 -n 200
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .config import MAX_IW_SAMPLES, MAX_REFINE_STEPS, MAX_SAMPLES, ConfigError, seed_arg
from .textcli import DEVICE_HELP, check_size


def add_report(sub) -> None:
    p = sub.add_parser("report", help="what a checkpoint writes, measured: reconstruction BLEU, interpolation "
                                      "endpoints, judged fluency of samples, KL/MI/AU (seqvae.quality)")
    p.add_argument("checkpoint", help="checkpoint dir, or a run dir (its best/)")
    p.add_argument("--judge", help="language-model checkpoint that judges fluency (e.g. checkpoints/imdb-lm)")
    p.add_argument("--data", help="prepared data dir: held-out test sentences and training words (default: the "
                                  "model's)")
    p.add_argument("--texts", help="held-out sentences from this file, one per line, instead of the test split")
    p.add_argument("-n", type=int, default=None, help="held-out sentences (default 1000 of the test split's, of 5-25 "
                                                      "words; with --texts, all of the file's, or its first N, noted)")
    p.add_argument("--words", type=_word_range, default=None, metavar="MIN-MAX",
                   help="the test split's (or with --texts, the file's) sentences of MIN to MAX words (default "
                        "5-25 for the test split; all of the file's)")
    p.add_argument("--samples", type=int, default=500, help="prior samples per prior and strategy (default 500)")
    p.add_argument("--iw-samples", type=int, default=100, help="importance samples for the IW-NLL (default 100)")
    p.add_argument("--iw-refine", type=int, metavar="STEPS",
                   help="also the IW-NLL with a proposal fitted per sentence in STEPS Adam steps on its ELBO "
                        "(default 50, refine.POSTERIOR_STEPS; 0: skip)")
    p.add_argument("--seed", type=seed_arg, default=0,
                   help="seed of the held-out draw, the samples and the importance samples (default 0)")
    p.add_argument("--out", help="write report.md, then report.json (which names report.md's sha256) into this dir")
    p.add_argument("--device", help=DEVICE_HELP)
    p.set_defaults(func=_cmd_report)


def _word_range(text: str) -> tuple[int, int]:
    """report's --words: "5-25" -> (5, 25); anything else is argparse's one-line usage error."""
    lo, sep, hi = text.partition("-")
    if not sep or not lo.isdigit() or not hi.isdigit() or not 1 <= int(lo) <= int(hi):
        raise argparse.ArgumentTypeError(f"expected MIN-MAX words with 1 <= MIN <= MAX, got {text!r}")
    return int(lo), int(hi)


def _report_texts(args) -> tuple[list[str], str]:
    """report --texts: the file's sentences, each once (the first of any repeats, spacing aside; with --words given,
    those of MIN-MAX words), the first -n of them, and a note of what was left out; fewer than two is an error."""
    from .corpus import read_sentences
    from .textscores import norm_spaces

    lines, notes = read_sentences(args.texts), []
    first: dict[str, str] = {}
    for line in lines:
        first.setdefault(norm_spaces(line), line)
    texts = list(first.values())
    repeats = len(lines) - len(texts)
    if repeats:
        notes.append(f"{repeats} of {args.texts}'s {len(lines)} lines repeat an earlier sentence: each counted once")
    if args.words_given:
        lo, hi = args.words
        kept = [t for t in texts if lo <= len(t.split()) <= hi]
        if len(kept) < len(texts):
            notes.append(f"{len(texts) - len(kept)} of {args.texts}'s sentences are not of {lo}-{hi} words: left out")
        texts = kept
    if len(texts) < 2:
        raise ConfigError(f"the report needs at least 2 sentences, {args.texts} has {len(texts)}"
                          + (f" of {args.words[0]}-{args.words[1]} words" if args.words_given else "")
                          + (f" (after {repeats} repeated lines left out)" if repeats else ""))
    if args.n is not None and len(texts) > args.n:
        notes.append(f"{args.texts} has {len(texts)} sentences{' of that length' if args.words_given else ''}: "
                     f"using the first {args.n} (-n)")
        texts = texts[: args.n]
    elif args.n is not None and len(texts) < args.n:
        notes.append(f"asked for {args.n} sentences, {args.texts} has {len(texts)}: using all")
    return texts, "; ".join(notes)


def _cmd_report(args) -> int:
    import time

    from . import atomic, quality
    from .api import SeqVAE
    from .judge import Judge, checked_sentences
    from .prepare import locate_data_dir, model_data_dir
    from .refine import POSTERIOR_STEPS
    from .splittext import TrainingText, held_out

    args.words_given, args.words = args.words is not None, args.words or (5, 25)
    if args.n is not None and args.n < 2:
        raise ConfigError("-n must be >= 2")
    check_size("--samples", args.samples, 1, MAX_SAMPLES)  # before anything is loaded
    check_size("--iw-samples", args.iw_samples, 1, MAX_IW_SAMPLES)
    check_size("--iw-refine", args.iw_refine or 0, 0, MAX_REFINE_STEPS)
    if args.out:  # before the work (minutes at the default size), and both files' paths
        for path in (Path(args.out) / "report.json", Path(args.out) / "report.md"):
            atomic.check_file_path(path)
    texts = _report_texts(args) if args.texts else None
    if texts is not None and args.judge:  # before the models load (seconds to minutes)
        checked_sentences(texts[0], args.texts)
    vae = SeqVAE.from_pretrained(args.checkpoint, device=args.device)
    if not vae.latent:
        raise ConfigError(f"{args.checkpoint} is a language model: it has no latent space to report on")
    if args.texts and not args.data:  # the training words of the model's data dir, where it is still there
        data = locate_data_dir(vae.config.get("data") or {})
    else:
        data = model_data_dir(vae.config, args.data)
    note = ""
    if texts is not None:
        texts, note = texts
    else:
        texts, note = held_out(data, args.n or 1000, seed=args.seed, min_words=args.words[0], max_words=args.words[1])
        if len(texts) < 2:
            raise ConfigError(f"{data}: the test split has {len(texts)} sentence(s) of {args.words[0]}-{args.words[1]} "
                              "words; the report needs 2 (set --words MIN-MAX, or --texts FILE)")
        if args.judge:  # before the judge loads
            checked_sentences(texts, f"{data}'s test split")
    long = sum(len(ids) > quality.MAX_TOKENS for ids in vae.tokenize(texts))
    if long:
        note = "; ".join(filter(None, [note, (
            f"{long} of the {len(texts)} sentences {'is' if long == 1 else 'are'} over {quality.MAX_TOKENS} tokens, "
            "more than the report decodes: their reconstructions are cut short (--words MIN-MAX leaves them out)")]))
    judge = Judge.load(args.judge, device=args.device) if args.judge else None
    if note:
        print(f"seqvae report: note: {note}", file=sys.stderr)
    train = TrainingText.from_data_dir(data) if data else None
    skipped = quality.not_measured(judge=judge is not None, train=train is not None, prior=vae.prior is not None)
    if skipped:
        print(f"seqvae report: note: not measured: {'; '.join(skipped)}", file=sys.stderr)
    start = time.monotonic()

    def progress(line: str) -> None:  # stderr: stdout is the markdown
        t = int(time.monotonic() - start)
        print(f"seqvae report: {line} ({t // 60}:{t % 60:02d} elapsed)", file=sys.stderr, flush=True)

    rep = quality.build_report(vae, texts, judge=judge, train=train, n_samples=args.samples,
                               iw_samples=args.iw_samples, seed=args.seed, note=note, progress=progress,
                               iw_refine=POSTERIOR_STEPS if args.iw_refine is None else args.iw_refine)
    rep["checkpoint"] = str(args.checkpoint)
    md = quality.to_markdown(rep, str(args.checkpoint))
    if args.out:  # report.md, then report.json naming its sha256: the JSON commits the pair (atomic.write_pair)
        out = Path(args.out)
        atomic.write_pair(out / "report.md", lambda tmp: tmp.write_text(md, encoding="utf-8"), out / "report.json",
                          rep, sha_key=quality.MARKDOWN_SHA)
    print(md)
    print(quality.summary_line(rep), file=sys.stderr)
    return 0
