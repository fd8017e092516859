"""Quality table: the GRU language model baseline vs VAE variants, same size, same budget.

    python scripts/benchmark_ptb.py --data data/ptb --out runs/ptb-bench --max-steps 4000 --samples 500

Trains (unless a variant's run dir already has a finished best/ checkpoint) and evaluates on the
test split with importance-weighted NLL:
  lm           GRU language model, no latent (the baseline)
  vae-bowman   logistic KL annealing + word dropout (Bowman et al. 2016)
  vae-cyc-fb   cyclical annealing + free bits 0.25/dim (Fu et al. 2019; Li et al. 2019)
  vae-fb       logistic annealing + word dropout + free bits 0.4/dim (a KL floor of 12.8 nats at Z=32)
A run dir that already holds a shorter run is continued to --max-steps where a fresh run would have
the same config: the LM. A VAE variant's KL schedule follows --max-steps (x0 and slope, or the cycles'
period), so a longer one wants another --out; a run of other settings (sizes, --lr, --batch-size, ...)
is refused, not reused. With lm among the variants, each VAE's row also gives its
paired per-sentence NLL difference to the LM on the same sentences, ± its standard error.
Writes OUT/results.json and OUT/results.md. Works for any prepared data dir (IMDB too); the published
rows (Bowman et al.) are added only beside an evaluation of PTB's whole test split.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from seqvae import atomic
from seqvae.cli import build_parser, describe_evaluation, format_table
from seqvae.reporting import reporting_errors
from seqvae.config import MAX_IW_SAMPLES, ConfigError
from seqvae.display import format_mi
from seqvae.metrics import paired_difference
from seqvae.prepare import read_meta
from seqvae.textcli import check_size
from seqvae.traincli import build_run_config

# Published PTB test numbers (Bowman et al. 2016, CoNLL, Table 2; NLL per sentence in nats).
PUBLISHED = [
    ("Bowman et al. 2016 RNNLM", {"nll": 100.0, "ppl": 116.0}),
    ("Bowman et al. 2016 VAE", {"nll": 101.0, "kl": 2.0, "ppl": 119.0}),
]
PTB_TEST = {"sentences": 3761, "tokens": 82430}  # the split they are for: words + one EOS per sentence
# config fields a run may continue with other values of (`seqvae train --resume` takes --max-steps and --threads);
# the vocabulary size and special ids come from the data dir
FREE_FIELDS = {"model": {"vocab_size", "pad_id", "unk_id", "bos_id", "eos_id"}, "train": {"max_steps", "num_threads"}}


def comparable_to_published(dataset: str, split: str, res: dict) -> bool:
    """Whether an evaluation scored PTB's whole test split, the sentences the published numbers are for."""
    return (dataset == "ptb" and split == "test"
            and all(res.get(k) == v for k, v in PTB_TEST.items()))


def variants(max_steps: int) -> dict[str, list[str]]:
    """Train flags for each variant (all other settings from the model flags given on the command line)."""
    return {
        "lm": ["--lm"],
        "vae-bowman": ["--kl-schedule", "logistic", "--word-dropout", "0.3",
                       "--set", f"train.kl_x0={max_steps // 3}", "--set", f"train.kl_k={20 / max_steps:.6g}"],
        "vae-cyc-fb": ["--kl-schedule", "cyclical", "--set", "train.kl_cycles=4", "--set", "train.kl_ratio=0.5",
                       "--free-bits", "0.25", "--word-dropout", "0.3"],
        "vae-fb": ["--kl-schedule", "logistic", "--word-dropout", "0.3", "--free-bits", "0.4",
                   "--set", f"train.kl_x0={max_steps // 3}", "--set", f"train.kl_k={20 / max_steps:.6g}"],
    }


def arg_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--variants", default="lm,vae-bowman,vae-cyc-fb")
    ap.add_argument("--max-steps", type=int, default=4000)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--embed-dim", type=int, default=256)
    ap.add_argument("--hidden-dim", type=int, default=512)
    ap.add_argument("--latent-dim", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads per training process")
    ap.add_argument("--jobs", type=int, default=1, help="variants trained at the same time")
    ap.add_argument("--samples", type=int, default=500, help="importance samples for the test NLL")
    ap.add_argument("--max-test-sentences", type=int, default=0)
    ap.add_argument("--split", default="test", choices=["train", "valid", "test"])
    ap.add_argument("--device", default=None)
    ap.add_argument("--cpu-bf16", action="store_true", help="train with bf16 autocast on CPU")
    return ap


def main() -> int:
    args = arg_parser().parse_args()
    return reporting_errors("benchmark_ptb", lambda: run(args))


def check_args(args) -> None:
    """Bad input as one line before anything is trained or written (training takes hours at the default sizes)."""
    for flag in ("max_steps", "eval_every", "embed_dim", "hidden_dim", "latent_dim", "batch_size", "jobs"):
        if getattr(args, flag) < 1:
            raise ConfigError(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    if args.threads < 0 or args.max_test_sentences < 0:
        raise ConfigError("--threads and --max-test-sentences must be >= 0")
    check_size("--samples", args.samples, 0, MAX_IW_SAMPLES)
    read_meta(args.data)  # a prepared data dir, or a one-line DataError
    atomic.check_dir_path(args.out)


def check_same_settings(run_dir: Path, train_flags: list[str]) -> None:
    """Refuse a run dir whose saved config is not the one `seqvae train TRAIN_FLAGS` would give a fresh run, bar
    FREE_FIELDS: reusing it, or continuing it with `train --resume` (which keeps the saved config), would put its
    numbers under this command's settings. An LM has no z to size."""
    cfg_file = run_dir / "last" / "config.json"
    if not cfg_file.is_file():
        return
    saved = json.loads(cfg_file.read_text())
    fresh = build_run_config(build_parser().parse_args(["train", *train_flags, "--out", str(run_dir)])).to_dict()
    old, new = {}, {}
    cyclical = fresh["train"]["kl_schedule"] == "cyclical"  # its period follows max_steps: resume refuses another
    for section in ("model", "train"):
        have = saved.get(section) or {}
        free = FREE_FIELDS[section] - ({"max_steps"} if cyclical else set())
        for k, v in fresh[section].items():
            if k in free or k not in have or have[k] == v:
                continue  # a field the run predates keeps its default
            if k == "latent_dim" and not fresh["model"]["latent"]:
                continue
            old[k], new[k] = have[k], v
    if old:
        raise ConfigError(f"{run_dir} was trained with {old}, not {new}; give another --out")


def common_flags(args) -> list[str]:
    """The `seqvae train` flags every variant shares (its own come from variants())."""
    flags = ["--data", args.data, "--max-steps", str(args.max_steps), "--eval-every", str(args.eval_every),
             "--embed-dim", str(args.embed_dim), "--hidden-dim", str(args.hidden_dim),
             "--latent-dim", str(args.latent_dim), "--batch-size", str(args.batch_size), "--lr", str(args.lr),
             "--no-progress"]
    if args.threads:
        flags += ["--threads", str(args.threads)]
    if args.device:
        flags += ["--device", args.device]
    if args.cpu_bf16:
        flags += ["--cpu-bf16"]
    return flags


def run(args) -> int:
    check_args(args)
    out = Path(args.out)
    names = args.variants.split(",")
    table = variants(args.max_steps)
    unknown = [n for n in names if n not in table]
    if unknown:
        raise ConfigError(f"unknown variant(s) {', '.join(unknown)} (known: {', '.join(table)})")
    common = common_flags(args)
    for name in names:  # a run of other settings would be reused or resumed as if it were this one
        check_same_settings(out / name, [*common, *table[name]])
    out.mkdir(parents=True, exist_ok=True)

    # Train (in parallel when --jobs > 1); a run with a finished last/ at max_steps is reused.
    procs: list[tuple[str, subprocess.Popen]] = []
    for name in names:
        run_dir = out / name
        state = run_dir / "last" / "metrics.json"
        if state.exists() and json.loads(state.read_text()).get("step") == args.max_steps:
            print(f"{name}: reusing {run_dir}")
            continue
        cmd = [sys.executable, "-m", "seqvae.cli", "train", *common, "--out", str(run_dir), *table[name]]
        if (run_dir / "last").exists():
            cmd = [sys.executable, "-m", "seqvae.cli", "train", "--resume", str(run_dir), "--no-progress",
                   "--max-steps", str(args.max_steps)]
        log = open(out / f"{name}.train.log", "a")
        print(f"{name}: {' '.join(cmd)}")
        procs.append((name, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)))
        while len([p for _, p in procs if p.poll() is None]) >= args.jobs:
            procs[[p.poll() is None for _, p in procs].index(True)][1].wait()
    for name, p in procs:
        if p.wait() != 0:
            log = out / f"{name}.train.log"
            last = ([ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()] or ["?"])[-1]
            print(f"benchmark_ptb: error: training {name} failed: {last} (log: {log})", file=sys.stderr)
            return 1

    results = {}  # name -> evaluation, in the order trained
    for name in names:
        res_file = out / f"{name}.{args.split}.json"
        cmd = [sys.executable, "-m", "seqvae.cli", "evaluate", str(out / name), "--split", args.split,
               "--samples", str(args.samples), "--json", str(res_file), "--data", args.data, "--per-sentence"]
        if args.max_test_sentences:
            cmd += ["--max-sentences", str(args.max_test_sentences)]
        if args.device:
            cmd += ["--device", args.device]
        if (rc := subprocess.run(cmd).returncode) != 0:
            print(f"benchmark_ptb: error: evaluating {name} failed (exit {rc}; its error is above)", file=sys.stderr)
            return 2
        res = json.loads(res_file.read_text())
        train_meta = json.loads((out / name / "best" / "metrics.json").read_text())
        res["best_step"] = train_meta.get("step")
        results[name] = res
    for name, r in results.items():
        if "lm" in results and name != "lm":
            r["vs_lm"] = paired_difference(r["per_sentence_nll"], results["lm"]["per_sentence_nll"])
    atomic.write_json(out / "results.json", results)
    md = [f"{name}: {describe_evaluation(r)}" for name, r in results.items()]
    md += ["", "| model | NLL | vs LM (paired ± SE) | PPL | -ELBO | KL | MI | AU | best step |",
           "|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        vs = f"{r['vs_lm']['mean_diff']:+.2f} ± {r['vs_lm']['se']:.2f}" if "vs_lm" in r else ""
        latent = (f"{r['kl']:.2f} | {format_mi(r['mi'], r.get('mi_se'))} | {r['au']}/{len(r['au_variances'])}"
                  if r.get("latent", True) else "- | - | -")  # a language model has no z
        md.append(f"| {name} | {r['nll']:.2f} | {vs} | {r['ppl']:.1f} | {r['neg_elbo']:.2f} | {latent} | "
                  f"{r['best_step']} |")
    dataset = read_meta(args.data)["dataset"]
    if all(comparable_to_published(dataset, args.split, r) for r in results.values()):
        for name, r in PUBLISHED:
            md.append(f"| {name} (published) | {r['nll']:.0f} | | {r['ppl']:.0f} | | {r.get('kl', '')} | | | |")
    elif dataset == "ptb":
        md += ["", f"(published PTB numbers left out: they are for the whole test split, {PTB_TEST['sentences']:,} "
               f"sentences and {PTB_TEST['tokens']:,} tokens incl. EOS)"]
    atomic.write_text(out / "results.md", "\n".join(md) + "\n")
    print(format_table(list(results.items())))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
