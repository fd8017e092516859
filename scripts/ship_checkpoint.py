"""Turn a training run into a shippable checkpoint dir with test metrics and a model card.

    python scripts/ship_checkpoint.py runs/imdb-small checkpoints/imdb-small --samples 100 --dtype float16

Loads RUN/best, evaluates it on the test split of the data it was trained on (importance-weighted
NLL with --samples samples, KL, MI, AU), and, when given, on a GRU-LM baseline run (--lm RUN_DIR),
writes weights in --dtype, config.json, the tokenizer, metrics.json ({"valid", "test", "lm_test",
"training"}) and a README.md model card with prior samples, reconstructions and an interpolation.
Everything is written to a temporary dir and renamed into place.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
from pathlib import Path

import torch

from seqvae import SeqVAE, atomic, checkpoint
from seqvae.cli import format_table
from seqvae.data import SentenceDataset
from seqvae.metrics import evaluate

RECON = ["the acting was wonderful and the story moved me .", "this is the worst movie i have ever seen .",
         "the plot makes no sense at all ."]
INTERP = ("i loved every minute of this film .", "the script is a complete mess .")


def regenerate_command(args) -> str:
    """The command line that rebuilds this checkpoint dir (every option that was given)."""
    parts = ["python scripts/ship_checkpoint.py", args.run, args.out, "--samples", str(args.samples),
             "--dtype", args.dtype]
    if args.max_sentences:
        parts += ["--max-sentences", str(args.max_sentences)]
    if args.lm:
        parts += ["--lm", args.lm]
    if args.data:
        parts += ["--data", args.data]
    if args.hardware:
        parts += ["--hardware", shlex.quote(args.hardware)]
    return " ".join(parts)


def run_summary(run_dir: Path) -> dict:
    """Steps, best step and training wall time from a run's last/ checkpoint and log."""
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    state = checkpoint.load_trainer_state(run_dir / "last")
    train_rows = [r for r in rows if r["split"] == "train"]
    return {"steps": int(state["step"]), "train_time_s": round(float(state["train_time"]), 1),
            "mean_tokens_per_s": round(sum(r["tokens_per_s"] for r in train_rows) / max(1, len(train_rows)), 1),
            "best_step": json.loads((run_dir / "best" / "metrics.json").read_text())["step"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="training run dir (with best/ and last/)")
    ap.add_argument("out", help="checkpoint dir to write")
    ap.add_argument("--lm", help="GRU-LM baseline run dir, evaluated on the same test split")
    ap.add_argument("--data", help="prepared data dir (default: the one the run recorded)")
    ap.add_argument("--samples", type=int, default=100, help="importance samples for the test NLL")
    ap.add_argument("--max-sentences", type=int, default=0, help="evaluate on the first N test sentences")
    ap.add_argument("--dtype", default="float16", choices=["float32", "float16", "bfloat16"])
    ap.add_argument("--hardware", default=f"CPU ({platform.processor() or platform.machine()}), "
                                          f"{torch.get_num_threads()} threads")
    args = ap.parse_args()

    run = Path(args.run)
    vae = SeqVAE.from_pretrained(run / "best", device="cpu")
    cfg = checkpoint.read_config(run / "best")
    data_dir = args.data or cfg["data"]["data_dir"]
    test = SentenceDataset.from_dir(data_dir, "test")
    # Evaluate the weights as shipped (rounded to --dtype), so the card's numbers are the file's numbers.
    dtype = getattr(torch, args.dtype)
    with torch.no_grad():
        for p in vae.model.parameters():
            p.copy_(p.to(dtype).float())
    res = evaluate(vae.model, test, k=args.samples, max_sentences=args.max_sentences, progress=True)
    metrics = {"valid": json.loads((run / "best" / "metrics.json").read_text())["valid"], "test": res,
               "training": run_summary(run), "weights_dtype": args.dtype}
    rows = [(run.name, res)]
    if args.lm:
        lm, _, _ = checkpoint.load(Path(args.lm) / "best")
        metrics["lm_test"] = evaluate(lm, test, max_sentences=args.max_sentences, progress=True)
        metrics["lm_training"] = run_summary(Path(args.lm))
        rows.append((Path(args.lm).name + " (LM)", metrics["lm_test"]))
    table = format_table(rows)
    print(table)

    samples = vae.sample(8, strategy="top-p", top_p=0.9, seed=0)
    greedy = vae.sample(4, strategy="greedy", seed=1)
    recon = vae.reconstruct(RECON)
    _, path = vae.interpolate(*INTERP, steps=6, method="slerp")

    tmp = checkpoint.save(Path(args.out).with_name(f".{Path(args.out).name}.build"), vae.model, vae.tokenizer,
                          train_cfg=None, data_meta=cfg.get("data"), metrics=metrics, dtype=dtype)
    # keep the training config for reference
    full_cfg = json.loads((tmp / "config.json").read_text())
    full_cfg["train"] = cfg.get("train")
    (tmp / "config.json").write_text(json.dumps(full_cfg, indent=2) + "\n")
    mc, tr = cfg["model"], metrics["training"]
    t = res
    lines = [
        f"# {Path(args.out).name}: a sentence VAE trained on IMDB review sentences",
        "",
        "Load it with `SeqVAE.from_pretrained(\"checkpoints/" + Path(args.out).name + "\")` or any `seqvae` command.",
        "",
        "## Model",
        f"bi-GRU encoder → diagonal Gaussian q(z|x) with {mc['latent_dim']} dims → GRU decoder conditioned on z "
        f"(initial state and every step). Embedding {mc['embed_dim']}, hidden {mc['hidden_dim']}, "
        f"vocabulary {mc['vocab_size']} sentencepiece pieces; weights stored as {args.dtype}."
        + (f" A bag-of-words head (z → vocabulary) added a loss in training, weight "
           f"{cfg['train'].get('bow_weight', 0):g} (Zhao et al. 2017); sampling and evaluation do not use it."
           if mc.get("bow_head") else ""),
        "",
        "## Data",
        f"Sentences split from IMDB reviews (train + unsup minus {cfg['data']['data_config']['valid_reviews']} held-out "
        f"train reviews for validation; test = the official test reviews), cleaned of HTML, "
        f"{cfg['data']['data_config']['min_tokens']}–{cfg['data']['data_config']['max_tokens']} tokens, deduplicated: "
        + ", ".join(f"{s} {cfg['data']['stats'][s]['sentences']:,}" for s in ("train", "valid", "test")) + " sentences.",
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
        "## Samples from the prior (top-p 0.9, seed 0)",
        *[f"- {s}" for s in samples],
        "",
        "Greedy decoding from prior draws (seed 1):",
        *[f"- {s}" for s in greedy],
        "",
        "## Reconstructions (posterior mean, greedy)",
        *[f"- {a}  →  {b}" for a, b in zip(RECON, recon)],
        "",
        "## Interpolation (slerp between posterior means)",
        *[f"{i}. {s}" for i, s in enumerate(path)],
        "",
        "## Limitations",
        "- Small model trained for a short CPU budget: samples are often ungrammatical, and the VAE's NLL is "
        "compared honestly with a GRU language model of the same size above.",
        "- Trained on English movie-review sentences only; it inherits the reviews' biases and topics.",
        "- Text is lower-/upper-case sensitive sentencepiece pieces; inputs are cleaned of HTML by the corpus "
        "code only at preparation time, not in `encode`.",
        "",
        f"Regenerate this card: `{regenerate_command(args)}`",
    ]
    (tmp / "README.md").write_text("\n".join(lines) + "\n")
    atomic.replace_dir(tmp, Path(args.out))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
