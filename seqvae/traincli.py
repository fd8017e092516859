"""`seqvae train`: its flags, the RunConfig they build (defaults, --preset, --config, --init-from, the flags,
--set), and the lines it prints around the Trainer's run: what it is about to do, a note when the run is too
short for its KL ramp, and where the best checkpoint is (registered by cli.py; errors reach the user as one line
through it).

    seqvae train --data data/ptb --out runs/ptb-vae --preset small --set train.kl_x0=1000
    seqvae train --resume runs/ptb-vae --max-steps 20000
"""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any

from .config import ConfigError, ModelConfig, RunConfig, load_json, preset, seed_arg
from .textcli import DEVICE_HELP


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


def add_train(sub) -> None:
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


def _config_file(path: str) -> Any:
    """A --config file's JSON. A checkpoint's config.json (it has "format") is one too: its records of the save
    (format, data, save_id) are no settings and are left out, and a null train section (a model saved with no
    training config) is none, so a saved run's config trains another run like it."""
    from .checkpoint import RECORDS

    file_cfg = load_json(path)
    if isinstance(file_cfg, dict) and "format" in file_cfg:
        file_cfg = {k: v for k, v in file_cfg.items() if k not in RECORDS and not (k == "train" and v is None)}
    return file_cfg


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
