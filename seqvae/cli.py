"""`seqvae <command>`: a thin shell over the library. Every user error is one line on stderr, exit 2.
This module assembles the parser (COMMANDS), runs a command (main) and holds the small ones: prepare, evaluate,
fit-prior, words. train is traincli.py's, report reportcli.py's, the commands that write or read sentences
textcli.py's, classify and steer the sentiment layer's (sentiment/cli.py).

    seqvae prepare --dataset ptb --out data/ptb
    seqvae train --data data/ptb --out runs/ptb-vae --preset small
    seqvae train --resume runs/ptb-vae
    seqvae evaluate runs/ptb-vae --split test --samples 500
    seqvae sample runs/ptb-vae -n 10 --strategy top-p --top-p 0.9 --seed 0
    seqvae interpolate runs/ptb-vae "a sentence" "another one" --steps 8 --method slerp
    seqvae reconstruct runs/ptb-vae "a sentence"      (or `-`: one sentence per stdin line)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

from . import __version__
from .config import (MAX_IW_SAMPLES, MAX_REFINE_STEPS, ConfigError, DataConfig, refuse_empty_values, resolve_device,
                     seed_arg)
from .display import format_mi
from .reportcli import add_report
from .reporting import reporting_errors
from .textcli import (DEVICE_HELP, add_decode, add_encode, add_interpolate, add_reconstruct, add_sample, add_score,
                      check_size)
from .traincli import add_train


# ---------------------------------------------------------------------------- prepare
def _add_prepare(sub) -> None:
    """The prepare flags: one per DataConfig field."""
    p = sub.add_parser("prepare", help="read a corpus, split sentences, train the tokenizer, write arrays")
    d = DataConfig()
    add = p.add_argument
    add("--dataset", choices=["imdb", "ptb", "text"], default=d.dataset,
        help=f"corpus (default {d.dataset}); text: your own files, --train and optionally --valid, --test")
    add("--train", default=d.train_file, metavar="FILE",
        help="text: UTF-8 file, one sentence per line (or one document per line with --unit document)")
    add("--valid", default=d.valid_file, metavar="FILE",
        help="text: validation file like --train (default: --valid-reviews train lines held out)")
    add("--test", default=d.test_file, metavar="FILE",
        help="text: test file like --train (default: --valid-reviews train lines held out)")
    add("--unit", choices=["line", "document"], default=d.text_unit,
        help="text: a line is one sentence (default), or a document that seqvae splits into sentences")
    add("--out", help="prepared data dir to create or replace (default data/<dataset>)")
    add("--data-root", default=d.data_root,
        help=f"folder with imdb/*.jsonl.gz and ptb/ptb.*.txt, read through `datasets`; a relative path from the "
             f"current dir, else from the seqvae repo (default {d.data_root})")
    add("--source", choices=["local", "hub"], default=d.source,
        help=f"local: files under --data-root; hub: the Hugging Face hub's imdb or ptb_text_only (needs network; "
             f"offline, one line within seconds; default {d.source})")
    add("--tokenizer", choices=["auto", "sentencepiece", "word"], default=d.tokenizer,
        help=f"auto: word for PTB, sentencepiece for IMDB and text (default {d.tokenizer})")
    add("--vocab-size", type=int, default=d.vocab_size,
        help=f"vocabulary incl. 4 special ids (default {d.vocab_size}; PTB's word vocabulary is kept whole)")
    add("--sp-model-type", choices=["unigram", "bpe"], default=d.sp_model_type,
        help=f"sentencepiece model type (default {d.sp_model_type})")
    add("--min-tokens", type=int, default=d.min_tokens,
        help=f"drop shorter sentences (IMDB, text; default {d.min_tokens})")
    add("--max-tokens", type=int, default=d.max_tokens,
        help=f"drop longer sentences (IMDB, text; default {d.max_tokens})")
    add("--valid-reviews", type=int, default=d.valid_reviews,
        help=f"IMDB train reviews held out for validation; text: train lines held out for each of valid and "
             f"test without a file, at most a tenth of them (default {d.valid_reviews})")
    add("--max-sentences", type=int, default=d.max_sentences,
        help=f"cap on train sentences (default {d.max_sentences}; 0 = all)")
    add("--no-dedup", action="store_true",
        help="keep duplicate sentences, and valid/test sentences that train also has (IMDB, text)")
    add("--seed", type=seed_arg, default=d.seed, help=f"shuffling and held-out selection (default {d.seed})")
    add("--quiet", action="store_true", help="no progress bars or statistics table")
    p.set_defaults(func=_cmd_prepare)


def _cmd_prepare(args) -> int:
    """Run `prepare` from the parsed flags. Errors propagate (reporting_errors prints one line)."""
    from .prepare import prepare

    cfg = DataConfig(dataset=args.dataset, source=args.source, data_root=args.data_root, train_file=args.train,
                     valid_file=args.valid, test_file=args.test, text_unit=args.unit, tokenizer=args.tokenizer,
                     vocab_size=args.vocab_size, sp_model_type=args.sp_model_type, min_tokens=args.min_tokens,
                     max_tokens=args.max_tokens, valid_reviews=args.valid_reviews,
                     max_sentences=args.max_sentences, dedup=not args.no_dedup, seed=args.seed)
    prepare(cfg, args.out or Path("data") / cfg.dataset, progress=not args.quiet)
    return 0


# ---------------------------------------------------------------------------- evaluate
def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="IW-NLL, PPL, ELBO, KL, MI and active units on a split")
    p.add_argument("checkpoint", help="checkpoint dir, or a run dir (its best/)")
    p.add_argument("--data", help="prepared data dir (default: the one the model was trained on)")
    p.add_argument("--split", default="test", choices=["train", "valid", "test"], help="default: test")
    p.add_argument("--samples", type=int, default=500,
                   help="importance samples per sentence for a VAE's IW-NLL (default 500; 0: the -ELBO bound "
                        "only); a language model's NLL is exact")
    p.add_argument("--refine", type=int, default=0,
                   help="also the IW-NLL with a proposal fitted per sentence in N steps (nll_refined; default 0: skip)")
    p.add_argument("--batch-size", type=int, default=32, help="sentences per batch (default 32; changes no number)")
    p.add_argument("--max-sentences", type=int, default=0, help="evaluate the first N sentences only (default 0: all)")
    p.add_argument("--seed", type=seed_arg, default=0, help="seed of the importance samples (default 0)")
    p.add_argument("--device", help=DEVICE_HELP)
    p.add_argument("--json", dest="json_out", help="write the results here (default: CKPT/eval-SPLIT.json)")
    p.add_argument("--per-sentence", action="store_true",
                   help="also write each sentence's NLL (for scripts/compare_nll.py)")
    p.set_defaults(func=_cmd_evaluate)


LATENT_ONLY = ("kl", "mi", "au")  # metrics of the latent: "n/a" for a language model


def format_table(rows: list[tuple[str, dict[str, Any]]]) -> str:
    """A small fixed-width table of the headline metrics, one row per model (MI: display.format_mi; a
    language model's KL, MI and AU: n/a)."""
    cols = [("nll", "NLL", ".2f"), ("nll_per_token", "NLL/tok", ".3f"), ("ppl", "PPL", ".1f"),
            ("neg_elbo", "-ELBO", ".2f"), ("rec", "rec", ".2f"), ("kl", "KL", ".2f"), ("mi", "MI", None),
            ("au", "AU", "d")]
    cells = [["n/a" if k in LATENT_ONLY and r.get("latent") is False else
              format_mi(r[k], r.get("mi_se")) if fmt is None else format(r[k], fmt) for k, _, fmt in cols]
             for _, r in rows]
    widths = [max([8] + [len(row[i]) for row in cells]) for i in range(len(cols))]
    name_w = max([len("model")] + [len(n) for n, _ in rows])
    lines = [f"{'model':<{name_w}} " + " ".join(f"{h:>{w}}" for (_, h, _), w in zip(cols, widths))]
    for (name, _), row in zip(rows, cells):
        lines.append(f"{name:<{name_w}} " + " ".join(f"{c:>{w}}" for c, w in zip(row, widths)))
    return "\n".join(lines)


def describe_evaluation(res: dict[str, Any]) -> str:
    """What an evaluation's numbers are: the split, its size, and how NLL was estimated (k, seed)."""
    where = f"{res.get('split', '?')} split, {res['sentences']:,} sentences, {res['tokens']:,} tokens incl. EOS"
    if res.get("latent") is False:
        how = "language model: exact NLL; KL, MI and AU do not apply (no latent)"
    elif res.get("nll_is_bound"):
        how = "NLL is -ELBO, an upper bound (--samples 0)"
    else:
        how = f"NLL importance-weighted with k = {res['iw_samples']:,} samples"
    seed = f", seed {res['seed']}" if res.get("latent") is not False and "seed" in res else ""
    return f"{where}; {how}{seed}; PPL = exp(total NLL / tokens)"


def _cmd_evaluate(args) -> int:
    from . import atomic, checkpoint
    from .data import SentenceDataset
    from .metrics import evaluate
    from .prepare import model_data_dir

    if args.batch_size < 1 or args.max_sentences < 0:
        raise ConfigError("--batch-size must be >= 1, --max-sentences >= 0")
    check_size("--samples", args.samples, 0, MAX_IW_SAMPLES)
    check_size("--refine", args.refine, 0, MAX_REFINE_STEPS)
    if args.refine and not args.samples:
        raise ConfigError("--refine fits proposals for importance sampling: it needs --samples >= 1")
    device = resolve_device(args.device)
    ckpt = checkpoint.resolve(args.checkpoint)
    out = atomic.check_file_path(args.json_out or ckpt / f"eval-{args.split}.json")  # before the work
    model, _, cfg = checkpoint.load(ckpt, map_location=device)
    data_dir = model_data_dir(cfg, args.data, same_ids_as=ckpt)
    atomic.check_not_an_input(out, {f"the checkpoint {ckpt}": ckpt, f"the data dir {data_dir}": data_dir},
                              keep=lambda name: name.startswith("eval-") and name.endswith(".json"))  # its own
    dataset = SentenceDataset.from_dir(data_dir, args.split, model.cfg.vocab_size)
    if not len(dataset):
        raise ConfigError(f"{data_dir}: the {args.split} split has no sentences to evaluate")
    res = evaluate(model, dataset, k=args.samples if model.cfg.latent else 0, batch_size=args.batch_size,
                   max_sentences=args.max_sentences, seed=args.seed, refine_steps=args.refine,
                   per_sentence=args.per_sentence, progress=True)
    res.update({"checkpoint": str(ckpt), "split": args.split, "data": str(Path(data_dir).resolve())})
    atomic.write_json(out, res)
    print(describe_evaluation(res))
    print(format_table([(ckpt.parent.name if ckpt.name == "best" else ckpt.name, res)]))
    if "nll_refined" in res:
        print(f"NLL with proposals fitted per sentence ({res['refine_steps']} steps): {res['nll_refined']:.2f}")
    print(f"wrote {out}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------- classify / steer
def _add_classify(sub) -> None:
    from .sentiment.cli import add_classify_args, run_classify

    p = sub.add_parser("classify", help="sentiment from posterior means: fit, predict, evaluate, calibrate, curve")
    add_classify_args(p)
    p.set_defaults(func=run_classify)


def _add_steer(sub) -> None:
    from .sentiment.cli import add_steer_args, run_steer

    p = sub.add_parser("steer", help="move a sentence's z along the classifier's direction and decode it")
    add_steer_args(p)
    p.set_defaults(func=run_steer)


# ---------------------------------------------------------------------------- fit-prior / words
PRIOR_SENTENCES = 20_000  # fit-prior's default: the train sentences whose codes the mixture is fitted on


def _add_fit_prior(sub) -> None:
    p = sub.add_parser("fit-prior", help="fit the aggregate prior (a Gaussian mixture on training codes) into a "
                                         "checkpoint, for sampling")
    p.add_argument("checkpoint", help="checkpoint dir (the prior is written into it)")
    p.add_argument("--data", help="prepared data dir whose train split to encode (default: the model's)")
    p.add_argument("--sentences", type=int, default=None,
                   help=f"train sentences to encode, at most the split's (default {PRIOR_SENTENCES}, or the whole split "
                        "if it has fewer)")
    p.add_argument("--components", type=int, default=32, help="mixture components (default 32)")
    p.add_argument("--seed", type=seed_arg, default=0, help="seed of the sentences chosen and of the fit (default 0)")
    p.add_argument("--device", help=DEVICE_HELP)
    p.set_defaults(func=_cmd_fit_prior)


def _cmd_fit_prior(args) -> int:
    import numpy as np

    from .api import SeqVAE
    from .checkpoint import resolve
    from .data import SentenceDataset
    from .prepare import model_data_dir

    for flag, value in (("--sentences", args.sentences), ("--components", args.components)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} must be >= 1, got {value}")
    ckpt = resolve(args.checkpoint)
    vae = SeqVAE.from_pretrained(ckpt, device=args.device, with_prior=False)  # the prior it has, if any, goes
    if not vae.latent:
        raise ConfigError(f"{ckpt} is a language model: it has no latent space to fit a prior on")
    data = model_data_dir(vae.config, args.data, same_ids_as=ckpt)
    train = SentenceDataset.from_dir(data, "train")
    if args.sentences is not None and args.sentences > len(train):
        raise ConfigError(f"--sentences {args.sentences}: the train split of {data} has {len(train)} sentences")
    pick = np.random.default_rng(args.seed).permutation(len(train))[: args.sentences or PRIOR_SENTENCES]
    prior = vae.fit_prior([train[int(i)].tolist() for i in pick], components=args.components, seed=args.seed)
    prior.save(ckpt)
    em = "converged" if prior.meta["converged"] else "did not converge"
    print(f"{ckpt}: aggregate prior of {prior.components} components fitted on {len(pick)} training codes "
          f"(mean log density {prior.meta['mean_log_density']:.2f}, EM {em} in {prior.meta['iterations']} steps)")
    return 0


def _add_words(sub) -> None:
    p = sub.add_parser("words", help="write the word list into a checkpoint: the words its training sentences use "
                                     "at least --min-count times; decoding then writes no other word")
    p.add_argument("checkpoint", help="checkpoint dir (words.txt is written into it)")
    p.add_argument("--data", help="prepared data dir whose train split to count (default: the model's)")
    p.add_argument("--min-count", type=int, default=None, help="least count of a known word (default 5)")
    p.set_defaults(func=_cmd_words)


def _cmd_words(args) -> int:
    from .checkpoint import read_config, resolve
    from .prepare import model_data_dir
    from .splittext import TrainingText
    from .wordlist import MIN_COUNT

    min_count = MIN_COUNT if args.min_count is None else args.min_count
    if min_count < 1:
        raise ConfigError("--min-count must be >= 1")
    ckpt = resolve(args.checkpoint)  # only its config is read: a damaged words.txt there is simply replaced
    data = model_data_dir(read_config(ckpt), args.data)
    words = TrainingText.from_data_dir(data).known_words(min_count)
    if not len(words):
        raise ConfigError(f"{data}: no word is used {min_count} times in its train split")
    path = words.save(ckpt)
    print(f"{path}: {len(words):,} words used at least {min_count} times in {data}'s train split")
    return 0


# ---------------------------------------------------------------------------- main
# Each entry adds one subcommand; other modules' commands are registered the same way.
COMMANDS: list[Callable] = [_add_prepare, add_train, _add_evaluate, add_sample, add_interpolate, add_reconstruct,
                           add_score, add_encode, add_decode, _add_fit_prior, _add_words, add_report, _add_classify,
                           _add_steer]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqvae", description="Sentence VAEs that use their latent space.")
    parser.add_argument("--version", action="version", version=f"seqvae {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    refuse_empty_values(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # Commands that take sentences (nargs="*") accept them after options too: `reconstruct CKPT --json "A gem."`
    # leaves "A gem." unparsed, since argparse gives the sentences their slot where the checkpoint stands.
    takes_texts = isinstance(getattr(args, "texts", None), list)
    unknown = [e for e in extra if e.startswith("-") and e != "-"] if takes_texts else extra
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if extra:
        args.texts += extra
    code = reporting_errors("seqvae", lambda: args.func(args))
    if "torch.distributed" in sys.modules:  # only a command that loaded torch can have joined torchrun's group
        from .ranks import exit_joined

        exit_joined(code)  # there, the process ends here: see exit_joined for why
    return code


if __name__ == "__main__":
    sys.exit(main())
