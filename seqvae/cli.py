"""`seqvae <command>`: a thin shell over the library. Every user error is one line on stderr, exit 2.

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
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Callable

from . import __version__
from .config import (MAX_IW_SAMPLES, MAX_REFINE_STEPS, MAX_SAMPLES, ConfigError, DataConfig, ModelConfig, RunConfig,
                     load_json, preset, refuse_empty_values, resolve_device, seed_arg)
from .display import format_mi
from .reporting import reporting_errors
from .textcli import (DEVICE_HELP, add_decode, add_encode, add_interpolate, add_reconstruct, add_sample, add_score,
                      check_size)


# ---------------------------------------------------------------------------- helpers
def _parse_value(text: str, current: Any) -> Any:
    """Parse a --set value to the type of the field's current value."""
    if isinstance(current, list):  # model.adaptive_cutoffs: 2000,6000 or [2000, 6000]
        try:
            return [int(v) for v in text.strip().strip("[]").split(",") if v.strip()]
        except ValueError:
            raise ConfigError(f"expected comma-separated integers, got {text!r}") from None
    if isinstance(current, bool):
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"expected a boolean, got {text!r}")
    try:
        return type(current)(text)
    except ValueError:
        raise ConfigError(f"expected {type(current).__name__}, got {text!r}") from None


def apply_sets(cfg: RunConfig, sets: list[str]) -> RunConfig:
    """Apply `section.field=value` overrides (e.g. train.kl_x0=1000)."""
    sections: dict[str, dict[str, Any]] = {"model": {}, "train": {}}
    for item in sets:
        key, sep, value = item.partition("=")
        section, dot, name = key.partition(".")
        if not sep or not dot or section not in sections:
            raise ConfigError(f"--set {item!r}: expected model.FIELD=VALUE or train.FIELD=VALUE")
        obj = cfg.model if section == "model" else cfg.train
        if name not in {f.name for f in dataclasses.fields(obj)}:  # not hasattr: methods (validate, replace) are not fields
            raise ConfigError(f"--set {item!r}: {section} has no field {name!r}")
        try:
            sections[section][name] = _parse_value(value, getattr(obj, name))
        except ConfigError as e:
            raise ConfigError(f"--set {item!r}: {e}") from None
    return RunConfig(model=cfg.model.replace(**sections["model"]), train=cfg.train.replace(**sections["train"]))


# Flags that map one-to-one onto config fields: flag -> (section, field)
_TRAIN_FLAGS = {
    "max_steps": ("train", "max_steps"), "batch_size": ("train", "batch_size"), "lr": ("train", "lr"),
    "eval_every": ("train", "eval_every"), "kl_schedule": ("train", "kl_schedule"),
    "free_bits": ("train", "free_bits"), "word_dropout": ("train", "word_dropout"), "seed": ("train", "seed"),
    "threads": ("train", "num_threads"),
    "embed_dim": ("model", "embed_dim"), "hidden_dim": ("model", "hidden_dim"), "latent_dim": ("model", "latent_dim"),
}
_TRAIN_FLAG_HELP = {  # each flag sets the config field above (seqvae/config.py has its default)
    "max_steps": "optimisation steps in total", "lr": "AdamW learning rate",
    "batch_size": "sentences per optimisation step (under torchrun: over all processes, not each)",
    "eval_every": "validate and checkpoint every N steps",
    "kl_schedule": "KL weight schedule: logistic, linear, cyclical or constant",
    "free_bits": "free bits: nats per latent dimension on the batch-mean KL (0 = off)",
    "word_dropout": "rate of decoder input tokens replaced by <unk>", "seed": "seed of all randomness",
    "threads": "torch CPU threads (per process under torchrun; 0 = torch's default)", "embed_dim": "word embedding size",
    "hidden_dim": "GRU hidden size", "latent_dim": "size of z",
}


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


# ---------------------------------------------------------------------------- train
def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a VAE (or with --lm the GRU language model baseline)")
    p.add_argument("--data", help="prepared data dir (from `seqvae prepare`)")
    p.add_argument("--out", help="run dir to create (best/, last/, metrics.jsonl)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last/ checkpoint")
    p.add_argument("--config", help="JSON file with 'model' and 'train' sections")
    p.add_argument("--preset", help="named preset: tiny, small, base, imdb (the flagship, for a GPU), imdb-cpu")
    p.add_argument("--init-from", metavar="CKPT", help="start from this checkpoint's weights (fine-tuning, fresh "
                   "optimizer and schedule); the model config comes from it, the data dir must use its tokenizer")
    p.add_argument("--lm", action="store_true", help="train the GRU language model baseline (no latent, and no word "
                   "dropout unless --word-dropout is given)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="override any config field, e.g. --set train.kl_x0=1000 (repeatable)")
    for flag in _TRAIN_FLAGS:
        p.add_argument("--" + flag.replace("_", "-"), dest=flag, default=None, help=_TRAIN_FLAG_HELP[flag],
                       type=str if flag == "kl_schedule" else seed_arg if flag == "seed" else
                       (float if flag in ("lr", "free_bits", "word_dropout") else int))
    p.add_argument("--device", help=DEVICE_HELP)
    p.add_argument("--cpu-bf16", action="store_true", help="bf16 autocast on CPU (fast with AMX/AVX512-BF16)")
    p.add_argument("--overwrite", action="store_true", help="start over in an --out that already holds a run")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)


def _config_file(path: str) -> Any:
    """A --config file's JSON. A checkpoint's config.json (it has "format") is one too: its records of the save
    (format, data, save_id) are no settings and are left out, and a null train section (a model saved with no
    training config) is none, so a saved run's config trains another run like it."""
    from .checkpoint import RECORDS

    file_cfg = load_json(path)
    if isinstance(file_cfg, dict) and "format" in file_cfg:
        file_cfg = {k: v for k, v in file_cfg.items() if k not in RECORDS and not (k == "train" and v is None)}
    return file_cfg


def build_run_config(args) -> RunConfig:
    """`seqvae train`'s RunConfig, each layer over the one before: defaults, --preset, --config FILE, the model
    of --init-from (with the file's model fields), the flags, then each --set."""
    cfg = RunConfig()
    file_model: dict[str, Any] = {}  # the --config file's model fields: with --init-from they must agree too
    if args.preset:
        cfg = preset(args.preset)
    if args.config:
        file_cfg = _config_file(args.config)
        if not isinstance(file_cfg, dict) or not all(isinstance(file_cfg.get(k, {}), dict) for k in ("model", "train")):
            raise ConfigError(f"{args.config}: expected a JSON object with 'model' and 'train' objects")
        merged = {"model": {**cfg.model.to_dict(), **file_cfg.get("model", {})},
                  "train": {**cfg.train.to_dict(), **file_cfg.get("train", {})}}
        unknown = sorted(set(file_cfg) - {"model", "train"})
        if unknown:
            raise ConfigError(f"{args.config}: unknown section(s) {', '.join(unknown)}")
        try:
            cfg = RunConfig.from_dict(merged)
        except ConfigError as e:  # "TrainConfig.lr: expected float" alone does not say where the value is
            raise ConfigError(f"{args.config}: {e}") from None
        file_model = file_cfg.get("model", {})
    if args.init_from:  # the model is the checkpoint's; a preset gives its train section only
        from .checkpoint import read_config

        model = ModelConfig.from_dict(read_config(args.init_from)["model"]).replace(**file_model)
        cfg = RunConfig(model=model, train=cfg.train.replace(init_from=str(args.init_from)))
    sections: dict[str, dict[str, Any]] = {"model": {}, "train": {}}
    for flag, (section, name) in _TRAIN_FLAGS.items():
        if getattr(args, flag) is not None:
            sections[section][name] = getattr(args, flag)
    if args.lm:  # the preset's decoder alone: no encoder, no z, no bag-of-words head, no word dropout (a VAE's
        # aid, which costs the baseline: 126.9 -> 130.1 valid NLL on PTB at the tiny preset's 0.3, 800 steps)
        sections["model"].update(latent=False, bow_head=False)
        sections["train"]["bow_weight"] = 0.0
        if args.word_dropout is None:
            sections["train"]["word_dropout"] = 0.0
    if args.cpu_bf16:
        sections["train"]["cpu_bf16"] = True
    cfg = RunConfig(model=cfg.model.replace(**sections["model"]), train=cfg.train.replace(**sections["train"]))
    return apply_sets(cfg, args.set)


def _cmd_train(args) -> int:
    from .train import Trainer

    progress = not args.no_progress
    if args.resume:
        given = [flag for flag in ("config", "preset", "out") if getattr(args, flag)]
        given += [flag for flag in ("lm", "overwrite", "cpu_bf16", "init_from") if getattr(args, flag)]
        given += [flag for flag in _TRAIN_FLAGS
                  if flag not in ("max_steps", "threads") and getattr(args, flag) is not None]
        given += ["set"] if args.set else []
        if given:
            raise ConfigError("--resume continues a run with its saved config; it takes only --max-steps, --data, "
                              "--device, --threads and --no-progress, not "
                              + ", ".join("--" + g.replace("_", "-") for g in given))
        trainer = Trainer.resume(args.resume, data_dir=args.data, max_steps=args.max_steps, device=args.device,
                                 num_threads=args.threads, progress=progress)
    else:
        if not args.data or not args.out:
            raise ConfigError("train needs --data DIR and --out RUN_DIR (or --resume RUN_DIR)")
        cfg = build_run_config(args)
        trainer = Trainer(cfg, args.data, args.out, device=args.device, progress=progress, overwrite=args.overwrite)
    main = trainer.ranks.main  # under torchrun, only the first process speaks
    if main:
        print(_train_start_line(trainer), file=sys.stderr)
        note = _short_kl_ramp_note(trainer)
        if note:
            print(f"seqvae train: note: {note}", file=sys.stderr)
    summary = trainer.fit()
    trainer.close()  # not on an error: a process that fails exits, and torchrun stops the others
    if main:
        print(_train_end_line(trainer), file=sys.stderr)
        print(json.dumps(summary, indent=2))
    return 0


def _train_start_line(trainer) -> str:
    """What `seqvae train` is about to do: the model, the data, the device, the steps and where it writes (or that
    a resumed run has nothing left to train)."""
    tc, run = trainer.cfg.train, trainer.out_dir
    kind = "VAE" if trainer.cfg.model.latent else "LM"
    where = f"{trainer.ranks.world} processes on {trainer.device.type}" if trainer.ranks.world > 1 else \
        f"device {trainer.device}"
    head = f"{kind}: {trainer.model.num_parameters():,} parameters, {len(trainer.train_set):,} train sentences, {where}"
    if trainer.stopped_early:
        return (f"{head}; {run} stopped early at step {trainer.step} (train.patience {tc.patience}): nothing to "
                f"train (--init-from {run / 'best'} starts a new run from its weights)")
    if trainer.step >= tc.max_steps:
        return (f"{head}; {run} is finished at step {trainer.step} (max_steps {tc.max_steps}): nothing to train "
                "(--max-steps N trains it further)")
    steps = f"steps {trainer.step:,} to {tc.max_steps:,}" if trainer.step else f"{tc.max_steps:,} steps"
    return (f"{head}; {steps}, evaluating every {min(tc.eval_every, tc.max_steps):,}, into {run} (best/, last/, "
            "metrics.jsonl)")


def _short_kl_ramp_note(trainer) -> str | None:
    """A VAE run too short for its KL schedule (`--max-steps 300` under the default logistic ramp, midpoint 2,500):
    beta stays near 0 and the run trains an autoencoder whose prior samples mean nothing. Says so, and how to scale
    the ramp; None where beta reaches half its maximum (or there is nothing left to train)."""
    from .losses import kl_weight

    tc = trainer.cfg.train
    if not trainer.cfg.model.latent or trainer.step >= tc.max_steps or tc.kl_schedule not in ("logistic", "linear"):
        return None  # cyclical follows max_steps, constant has no ramp
    end = kl_weight(tc.max_steps - 1, tc)  # the last step's beta (step N trains with kl_weight(N - 1), as logged)
    if end >= 0.5 * tc.kl_max:
        return None
    ramp, fix = (f"its midpoint train.kl_x0={tc.kl_x0:,}", f"--set train.kl_x0={max(1, tc.max_steps // 4)}") \
        if tc.kl_schedule == "logistic" else \
        (f"train.kl_warmup={tc.kl_warmup:,}", f"--set train.kl_warmup={max(1, tc.max_steps // 2)}")
    change = f"{fix} or --kl-schedule cyclical"
    advice = f"for a run this short, {change}" if not trainer.step else \
        f"--resume keeps the saved schedule: a new run (--init-from {trainer.out_dir / 'last'}) takes {change}"
    return (f"beta reaches only {end:.3g} (of {tc.kl_max:g}) by step {tc.max_steps:,} under the {tc.kl_schedule} KL "
            f"schedule ({ramp}): the run trains nearly an autoencoder; {advice}")


def _train_end_line(trainer) -> str:
    """Where the run's best checkpoint is and what to run next."""
    run, best = trainer.out_dir, trainer.out_dir / "best"
    if not best.is_dir():  # no evaluation ran (a resumed run can only be at one)
        return f"step {trainer.step}: no checkpoint in {run}"
    return (f"step {trainer.step}: best valid nll {trainer.best:.2f} in {best}; next: seqvae sample {run} -n 5, "
            f"seqvae evaluate {run}, seqvae report {run}")


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
    data_dir = _model_data_dir(cfg, args.data, same_ids_as=ckpt)
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


# ---------------------------------------------------------------------------- fit-prior / report
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


def _model_data_dir(config: dict[str, Any], given: str | None, same_ids_as: Path | None = None) -> str:
    """`given`, or the prepared data dir a checkpoint's config names (its training data). With `same_ids_as`
    (a checkpoint whose model reads the data's ids as they are), its tokenizer must be that checkpoint's."""
    from .prepare import describe_data_dir, locate_data_dir
    from .tokenizer import same_tokenizer

    record = config.get("data") or {}
    data = given or locate_data_dir(record)
    if not data or not Path(data).is_dir():
        named = data or describe_data_dir(record)
        raise ConfigError(f"no prepared data dir{' ' + named if named else ''} (pass --data DIR)")
    if same_ids_as is not None and not same_tokenizer(same_ids_as, data):
        raise ConfigError(f"{data}: its tokenizer is not the checkpoint's; pass the data dir the model was trained on")
    return data


def _cmd_fit_prior(args) -> int:
    import numpy as np

    from .api import SeqVAE
    from .checkpoint import resolve
    from .data import SentenceDataset

    for flag, value in (("--sentences", args.sentences), ("--components", args.components)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} must be >= 1, got {value}")
    ckpt = resolve(args.checkpoint)
    vae = SeqVAE.from_pretrained(ckpt, device=args.device, with_prior=False)  # the prior it has, if any, goes
    if not vae.latent:
        raise ConfigError(f"{ckpt} is a language model: it has no latent space to fit a prior on")
    data = _model_data_dir(vae.config, args.data, same_ids_as=ckpt)
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
    from .splittext import TrainingText
    from .wordlist import MIN_COUNT

    min_count = MIN_COUNT if args.min_count is None else args.min_count
    if min_count < 1:
        raise ConfigError("--min-count must be >= 1")
    ckpt = resolve(args.checkpoint)  # only its config is read: a damaged words.txt there is simply replaced
    data = _model_data_dir(read_config(ckpt), args.data)
    words = TrainingText.from_data_dir(data).known_words(min_count)
    if not len(words):
        raise ConfigError(f"{data}: no word is used {min_count} times in its train split")
    path = words.save(ckpt)
    print(f"{path}: {len(words):,} words used at least {min_count} times in {data}'s train split")
    return 0


def _add_report(sub) -> None:
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
    from .prepare import locate_data_dir
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
        data = _model_data_dir(vae.config, args.data)
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


# ---------------------------------------------------------------------------- main
# Each entry adds one subcommand; other modules' commands are registered the same way.
COMMANDS: list[Callable] = [_add_prepare, _add_train, _add_evaluate, add_sample, add_interpolate, add_reconstruct,
                           add_score, add_encode, add_decode, _add_fit_prior, _add_words, _add_report, _add_classify,
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
    return reporting_errors("seqvae", lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
