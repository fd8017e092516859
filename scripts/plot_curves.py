"""Training curves from run dirs' metrics.jsonl: loss, reconstruction, KL and beta against steps.

    python scripts/plot_curves.py runs/ptb-small/lm runs/ptb-small/vae-bowman --out docs/ptb_curves.png

One row of panels: train loss, train KL with beta on a second axis, validation NLL bound (-ELBO for
VAEs, exact NLL for the LM). Needs matplotlib (`pip install -e ".[plot]"`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def read_rows(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="run dirs (each with metrics.jsonl)")
    ap.add_argument("--out", required=True, help="PNG file to write")
    args = ap.parse_args()
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("plot_curves: error: matplotlib is not installed (pip install -e '.[plot]')", file=sys.stderr)
        return 2
    try:
        runs = {Path(r).name: read_rows(Path(r)) for r in args.runs}
    except FileNotFoundError as e:
        print(f"plot_curves: error: {e}", file=sys.stderr)
        return 2

    fig, (ax_loss, ax_kl, ax_val) = plt.subplots(1, 3, figsize=(15, 4))
    ax_beta = ax_kl.twinx()
    for name, rows in runs.items():
        train = [r for r in rows if r["split"] == "train"]
        valid = [r for r in rows if r["split"] == "valid"]
        steps = [r["step"] for r in train]
        (line,) = ax_loss.plot(steps, [r["loss"] for r in train], label=name)
        if any(r["kl"] for r in train):
            ax_kl.plot(steps, [r["kl"] for r in train], color=line.get_color(), label=f"{name} KL")
            ax_beta.plot(steps, [r["beta"] for r in train], color=line.get_color(), linestyle=":", alpha=0.7)
        ax_val.plot([r["step"] for r in valid], [r["nll"] for r in valid], marker="o", color=line.get_color(),
                    label=name)
    ax_loss.set(title="train loss (rec + beta KL), nats/sentence", xlabel="step")
    ax_kl.set(title="train KL (solid) and beta (dotted)", xlabel="step", ylabel="KL nats")
    ax_beta.set_ylabel("beta")
    ax_val.set(title="valid NLL bound (-ELBO; LM exact)", xlabel="step")
    for ax in (ax_loss, ax_kl, ax_val):
        ax.grid(alpha=0.3)
    ax_loss.legend()
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
