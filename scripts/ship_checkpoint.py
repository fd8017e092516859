"""Turn a training run into a shippable checkpoint dir with test metrics, a quality report and a model card.

    python scripts/ship_checkpoint.py runs/imdb checkpoints/imdb --lm runs/imdb-lm --judge checkpoints/imdb-lm \
        --prior-components 32 --samples 100 --max-sentences 2000

Loads RUN/best (RUN/last with --which last), evaluates it on the test split of the data it was trained
on (importance-weighted NLL with --samples samples, KL, MI, AU), and, when given, on a GRU-LM baseline run
(--lm RUN_DIR), fits the aggregate prior (--prior-components K, on 20,000 training codes), attaches the word
list (--words MIN_COUNT), runs `seqvae report` with --judge, and writes weights in --dtype, config.json (with
the run's train section), the tokenizer, prior.*, words.txt, metrics.json ({"valid", "test", "training",
"weights_dtype", and with --lm "lm_test", "lm_training"}), report.md / report.json and a README.md model card.
Everything is written to a temporary dir beside OUT and renamed into place. One ship at a time writes
OUT: it holds a lock file beside it (.OUT.lock) from the start, so a second ship there stops at once with one
line naming the first (rather than evaluate for an hour and then replace the first one's checkpoint), and it
removes what a killed ship left there. Re-shipped into a checkpoint dir, the classifier heads there are kept
if the weights come out the same file, else dropped with a note.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import shutil
import sys
from pathlib import Path

import torch

from seqvae import SeqVAE, checkpoint, quality
from seqvae.cli import format_table
from seqvae.reporting import reporting_errors
from seqvae.config import MAX_IW_SAMPLES, ConfigError
from seqvae.data import SentenceDataset
from seqvae.judge import Judge
from seqvae.metrics import evaluate
from seqvae.prepare import describe_data_dir, locate_data_dir
from seqvae.runlock import OutLock
from seqvae.splittext import TrainingText, held_out
from seqvae.textcli import check_size
from seqvae.tokenizer import same_tokenizer

# written as IMDB's reviews write (cased, punctuation attached): "the plot ." is not text the flagship saw
RECON = ["The acting was wonderful and the story moved me.", "This is the worst movie I have ever seen.",
         "The plot makes no sense at all."]
INTERP = ("I loved every minute of this film.", "The script is a complete mess.")
# for a word-level (PTB) run: lower case, no punctuation, as PTB writes
RECON_WORDS = ["the company said it expects to report a loss", "the stock market fell sharply in early trading",
               "the plan was approved by the board"]
INTERP_WORDS = ("the company said it expects to report a loss", "the stock market fell sharply in early trading")
CORPORA = {"imdb": "IMDB review sentences", "ptb": "Penn Treebank sentences", "text": "sentences of its user's text"}


def regenerate_command(args) -> str:
    """The command line that rebuilds this checkpoint dir (every option that was given)."""
    parts = ["python scripts/ship_checkpoint.py", args.run, args.out, "--samples", str(args.samples),
             "--dtype", args.dtype, "--which", args.which]
    if args.max_sentences:
        parts += ["--max-sentences", str(args.max_sentences)]
    if args.lm:
        parts += ["--lm", args.lm]
    if args.judge:
        parts += ["--judge", args.judge]
    if args.prior_components:
        parts += ["--prior-components", str(args.prior_components)]
    if args.words:
        parts += ["--words", str(args.words)]
    if args.data:
        parts += ["--data", args.data]
    if args.hardware:
        parts += ["--hardware", shlex.quote(args.hardware)]
    return " ".join(parts)


def lm_summary(lm: Path) -> dict:
    """The LM's training summary: from its run dir, or as its shipped checkpoint recorded it."""
    if (lm / "metrics.jsonl").is_file():
        return run_summary(lm)
    return json.loads((lm / "metrics.json").read_text())["training"]


def run_summary(run_dir: Path) -> dict:
    """Steps, best step and training wall time from a run's last/ checkpoint and log; a run packed without
    last/ (scripts/gpu_flagship.sh: the optimizer state is too large to bring back) has training.json."""
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    if (run_dir / "last").is_dir():
        state = checkpoint.load_trainer_state(run_dir / "last")
    elif (run_dir / "training.json").is_file():
        state = json.loads((run_dir / "training.json").read_text())
    else:
        raise ConfigError(f"{run_dir}: neither last/ nor training.json: the run's steps and time are unknown")
    train_rows = [r for r in rows if r["split"] == "train"]
    return {"steps": int(state["step"]), "train_time_s": round(float(state["train_time"]), 1),
            "mean_tokens_per_s": round(sum(r["tokens_per_s"] for r in train_rows) / max(1, len(train_rows)), 1),
            "best_step": json.loads((run_dir / "best" / "metrics.json").read_text())["step"]}


def ship_language_model(lm: SeqVAE, args, cfg: dict, metrics: dict, table: str, dtype: torch.dtype) -> int:
    """The GRU-LM baseline as a checkpoint: weights, test metrics and a short card (samples, no latent)."""
    tr, mc = metrics["training"], cfg["model"]
    lines = [f"# {Path(args.out).name}: the GRU language model baseline", "",
             f"The decoder of the flagship VAE without encoder or z (embedding {mc['embed_dim']}, hidden "
             f"{mc['hidden_dim']}, {mc.get('softmax', 'full')} softmax over {vocabulary(cfg)}), "
             f"trained on the same sentences with the same batch size for {tr['steps']} steps "
             f"({tr['train_time_s'] / 60:.1f} min of step time on {args.hardware}). It is the baseline of the VAE's "
             "NLL and the judge of `seqvae report` (it saw the training sentences, none of the held-out ones).", "",
             f"Config: `{json.dumps(cfg.get('train'))}`", "", "## Test metrics", "```", table, "```", "",
             "## Samples (top-p 0.9, seed 0)", *[f"- {x}" for x in lm.sample(8, strategy="top-p", top_p=0.9, seed=0)],
             "", f"Regenerate this card: `{regenerate_command(args)}`"]
    return put_in_place(args, lm, cfg, metrics, dtype, {"README.md": "\n".join(lines) + "\n"},
                        train_cfg=cfg.get("train"))


def put_in_place(args, vae: SeqVAE, cfg: dict, metrics: dict, dtype: torch.dtype, files: dict[str, str],
                 train_cfg: dict | None = None) -> int:
    """The checkpoint, with `files` (name: text) and the model's extras (prior, word list) beside its weights,
    built in a temporary dir and renamed to --out in one step (checkpoint.save; the caller holds OUT's lock).
    What OUT held besides (classifier heads fitted on it) is kept when the weights are the same file; if they
    are not, such files are dropped, each named. `train_cfg` goes into config.json for reference."""
    def dropped(names: list[str]) -> None:
        print(f"ship_checkpoint: note: {args.out} held {', '.join(names)}, made for its previous weights: not kept",
              file=sys.stderr)

    def fill(tmp: Path) -> None:
        vae.save_extras(tmp)
        for name, text in files.items():
            (tmp / name).write_text(text)
        if train_cfg is not None:
            full_cfg = json.loads((tmp / "config.json").read_text())
            full_cfg["train"] = train_cfg
            (tmp / "config.json").write_text(json.dumps(full_cfg, indent=2) + "\n")

    checkpoint.save(args.out, vae.model, vae.tokenizer, train_cfg=None, data_meta=cfg.get("data"), metrics=metrics,
                    dtype=dtype, extra=fill, on_stale=dropped)
    print(f"wrote {args.out}")
    return 0


def vocabulary(cfg: dict) -> str:
    """"8000 sentencepiece pieces" / "10002 words": the vocabulary a run's config records."""
    data = cfg.get("data") or {}
    kind = "words" if data.get("tokenizer") == "word" else "sentencepiece pieces"
    return f"{cfg['model']['vocab_size']} {kind}"


def data_lines(cfg: dict) -> str:
    """The card's Data section: what the run's prepared data dir recorded."""
    data = cfg.get("data") or {}
    dc, stats = data.get("data_config") or {}, data.get("stats") or {}
    counts = ", ".join(f"{s} {stats[s]['sentences']:,}" for s in ("train", "valid", "test") if s in stats)
    where = {"imdb": f"Sentences split from IMDB reviews (train + unsup minus {dc.get('valid_reviews')} held-out train "
                     "reviews for validation; test = the official test reviews), cleaned of HTML",
             "ptb": "Penn Treebank sentences (Mikolov's train / valid / test split)",
             "text": "Sentences of the user's own files (`seqvae prepare --dataset text`)"}
    filtered = data.get("dataset") != "ptb"  # PTB's lines are kept as they are: no length filter, no dedup
    return (f"{where.get(data.get('dataset'), 'Sentences of ' + str(data.get('dataset')))}"
            + (f", {dc.get('min_tokens')}–{dc.get('max_tokens')} tokens" if filtered else "")
            + (", deduplicated" if filtered and dc.get("dedup") else "")
            + (f": {counts} sentences." if counts else "."))


def check_args(args) -> None:
    """Everything that can be refused before an hour of evaluation."""
    check_size("--samples", args.samples, 1, MAX_IW_SAMPLES)
    if args.max_sentences < 0:
        raise ConfigError(f"--max-sentences must be >= 0 (0 = all), got {args.max_sentences}")
    run, out = Path(args.run).resolve(), Path(args.out).resolve()
    if out == run or run in out.parents:
        raise ConfigError(f"{args.out} is inside the run {args.run}: write the checkpoint elsewhere")
    checkpoint.check_replaceable(args.out)
    if not (Path(args.run) / args.which).is_dir():
        raise ConfigError(f"{args.run}: no {args.which}/ (a training run dir, not a checkpoint, is expected)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="training run dir (with best/ and last/)")
    ap.add_argument("out", help="checkpoint dir to write")
    ap.add_argument("--lm", help="GRU-LM baseline (run dir or shipped checkpoint), evaluated on the same test split")
    ap.add_argument("--data", help="prepared data dir (default: the one the run recorded)")
    ap.add_argument("--samples", type=int, default=100, help="importance samples for the test NLL")
    ap.add_argument("--max-sentences", type=int, default=0, help="evaluate on the first N test sentences")
    ap.add_argument("--dtype", default="float16", choices=["float32", "float16", "bfloat16"])
    ap.add_argument("--which", default="best", choices=["best", "last"],
                    help="ship the run's best/ (lowest validation -ELBO) or last/ checkpoint")
    ap.add_argument("--judge", help="LM checkpoint that judges the quality report's fluency (no report without it)")
    ap.add_argument("--prior-components", type=int, default=0, help="fit an aggregate prior of K components (0: none)")
    ap.add_argument("--words", type=int, default=0, metavar="MIN_COUNT",
                    help="ship a word list: the training words used at least MIN_COUNT times (0: none), which "
                         "decoding then keeps to by default (`seqvae words`)")
    ap.add_argument("--hardware", default=f"CPU ({platform.processor() or platform.machine()}), "
                                          f"{torch.get_num_threads()} threads")
    args = ap.parse_args()
    return reporting_errors("ship_checkpoint", lambda: ship(args))


def ship(args) -> int:
    check_args(args)
    with OutLock(args.out, writer="ship", advice="use another OUT"):
        out = Path(args.out)  # a killed ship of before 2026-12-07 built here, and left it
        for old in (out.with_name(f".{out.name}.build"), *out.parent.glob(f".{out.name}.build.*")):
            shutil.rmtree(old, ignore_errors=True)
        return build(args)


def build(args) -> int:
    """Evaluate, fit, judge and write the checkpoint (see the module docstring)."""
    run = Path(args.run)
    vae = SeqVAE.from_pretrained(run / args.which, device="cpu")
    cfg = checkpoint.read_config(run / args.which)
    data_dir = args.data or locate_data_dir(cfg.get("data") or {})
    if data_dir is None:
        raise ConfigError(f"the run's data dir is not there ({describe_data_dir(cfg.get('data') or {})}); "
                          "pass --data DIR")
    for model in (run / args.which, *([args.lm] if args.lm else [])):
        if not same_tokenizer(checkpoint.resolve(model), data_dir):
            raise ConfigError(f"{data_dir}: its tokenizer is not {model}'s; pass the data dir it was trained on")
    if args.lm and checkpoint.read_config(checkpoint.resolve(args.lm))["model"].get("latent", True):
        raise ConfigError(f"--lm {args.lm} is a VAE: the baseline must be a language model (seqvae train --lm)")
    test = SentenceDataset.from_dir(data_dir, "test")
    # Evaluate the weights as shipped (rounded to --dtype), so the card's numbers are the file's numbers.
    dtype = getattr(torch, args.dtype)
    with torch.no_grad():
        for p in vae.model.parameters():
            p.copy_(p.to(dtype).float())
    res = evaluate(vae.model, test, k=args.samples, max_sentences=args.max_sentences, progress=True)
    metrics = {"valid": json.loads((run / args.which / "metrics.json").read_text())["valid"], "test": res,
               "training": run_summary(run), "weights_dtype": args.dtype}
    rows = [(run.name, res)]
    if args.lm:
        lm, _, _ = checkpoint.load(args.lm)  # a run dir (its best/) or a shipped LM checkpoint
        metrics["lm_test"] = evaluate(lm, test, max_sentences=args.max_sentences, progress=True)
        metrics["lm_training"] = lm_summary(Path(args.lm))
        rows.append((Path(args.lm).name + " (LM)", metrics["lm_test"]))
    table = format_table(rows)
    print(table)
    if not vae.latent:
        return ship_language_model(vae, args, cfg, metrics, table, dtype)

    train = SentenceDataset.from_dir(data_dir, "train")
    if args.prior_components:
        pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:20_000]
        vae.fit_prior([train[int(i)].tolist() for i in pick], components=args.prior_components, seed=0)
    if args.words:
        vae.words = TrainingText.from_data_dir(data_dir).known_words(args.words)
    report = None
    if args.judge:
        texts, note = held_out(data_dir, 1000, seed=0)
        judge = Judge.load(args.judge, device="cpu")
        report = quality.build_report(vae, texts, judge=judge, train=TrainingText.from_data_dir(data_dir),
                                      note=note)
        report["checkpoint"] = args.out
        print(quality.summary_line(report))
    prior = "aggregate prior" if vae.prior is not None else "N(0, I)"
    samples = vae.sample(8, strategy="top-p", top_p=0.9, seed=0)
    greedy = vae.sample(4, strategy="greedy", seed=1)
    words = (cfg.get("data") or {}).get("tokenizer") == "word"
    examples, ends = (RECON_WORDS, INTERP_WORDS) if words else (RECON, INTERP)
    recon = vae.reconstruct(examples)
    _, path = vae.interpolate(*ends, steps=6, method="slerp")

    mc, tr = cfg["model"], metrics["training"]
    t = res
    lines = [
        f"# {Path(args.out).name}: a sentence VAE trained on {CORPORA.get(cfg['data'].get('dataset'), 'sentences')}",
        "",
        "Load it with `SeqVAE.from_pretrained(\"checkpoints/" + Path(args.out).name + "\")` or any `seqvae` command.",
        "",
        "## Model",
        f"bi-GRU encoder → diagonal Gaussian q(z|x) with {mc['latent_dim']} dims → GRU decoder conditioned on z "
        f"(initial state and every step). Embedding {mc['embed_dim']}, hidden {mc['hidden_dim']}, "
        f"vocabulary {vocabulary(cfg)}; weights stored as {args.dtype}."
        + (f" A bag-of-words head (z → vocabulary) added a loss in training, weight "
           f"{cfg['train'].get('bow_weight', 0):g} (Zhao et al. 2017); sampling and evaluation do not use it."
           if mc.get("bow_head") else ""),
        "",
        "## Data",
        data_lines(cfg),
        "",
        "## Training",
        f"Config: `{json.dumps(cfg.get('train'))}`",
        "",
        f"{tr['steps']} steps (best validation -ELBO at step {tr['best_step']}), {tr['train_time_s'] / 60:.1f} min of "
        f"training-step time on {args.hardware}, about {tr['mean_tokens_per_s']:.0f} target tokens/s "
        "(while other jobs shared the machine).",
        "",
        f"## Test metrics ({t['sentences']:,} test sentences, IW-NLL with {t['iw_samples']} samples)",
        "```",
        table,
        "```",
        "NLL and -ELBO in nats per sentence; PPL per token incl. EOS; KL in nats; MI = I(x;z) estimate; "
        "AU = active units (Var_x E[z|x] > 0.01).",
        "",
        *(["## Quality (`seqvae report`, 1,000 held-out test sentences of 5-25 words; full table in report.md)",
           "", quality.summary_line(report), ""] if report is not None else []),
        f"## Samples from the {prior} (top-p 0.9, seed 0)",
        *[f"- {s}" for s in samples],
        "",
        f"Greedy decoding from {prior} draws (seed 1):",
        *[f"- {s}" for s in greedy],
        "",
        "## Reconstructions (posterior mean, greedy)",
        *[f"- {a}  →  {b}" for a, b in zip(examples, recon)],
        "",
        "## Interpolation (slerp between posterior means)",
        *[f"{i}. {s}" for i, s in enumerate(path)],
        "",
        "## Limitations",
        "- Small model trained for a short CPU budget; the VAE's NLL is compared with a GRU language model of the "
        "same size and steps above, and its text is measured in report.md.",
        f"- Trained on {CORPORA.get(cfg['data'].get('dataset'), 'its sentences')} only; it inherits their biases "
        "and topics.",
        "- Input is case-sensitive; write sentences as the training text writes them. HTML is cleaned by the "
        "corpus code only at preparation time, not in `encode`.",
        "",
        f"Regenerate this card: `{regenerate_command(args)}`",
    ]
    files = {"README.md": "\n".join(lines) + "\n"}
    if report is not None:
        files["report.json"] = json.dumps(report, indent=2) + "\n"
        files["report.md"] = quality.to_markdown(report, args.out)
    return put_in_place(args, vae, cfg, metrics, dtype, files, train_cfg=cfg.get("train"))


if __name__ == "__main__":
    sys.exit(main())
