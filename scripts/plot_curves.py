"""Training curves from run dirs' metrics.jsonl: train loss, KL and beta, and the validation NLL, against steps.

    python scripts/plot_curves.py runs/ptb-small/lm runs/ptb-small/vae-bowman --out docs/ptb_curves.png

One row of panels: train loss, train KL with beta on a second axis, validation NLL bound (-ELBO for
VAEs, exact NLL for the LM). Needs matplotlib (`pip install -e ".[plot]"`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from seqvae import atomic
from seqvae.reporting import reporting_errors
from seqvae.config import ConfigError

FORMATS = ("png", "pdf", "svg")


def read_rows(run_dir: Path) -> list[dict]:
    """The rows of RUN/metrics.jsonl; a missing, empty or damaged log is a one-line error."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise ConfigError(f"{path} line {n}: not JSON (a log cut short?)") from None
            if not isinstance(row, dict) or not {"step", "split"} <= set(row):
                raise ConfigError(f"{path} line {n}: not a metrics row (no step and split)")
            rows.append(row)
    if not any(r["split"] == "train" for r in rows):
        raise ConfigError(f"{path}: no training rows to plot")
    return rows


def labels(runs: list[str]) -> list[str]:
    """Each run's legend label: its dir name, or the path as given where two runs share a name."""
    names = [Path(r).name for r in runs]
    return [n if names.count(n) == 1 else r for n, r in zip(names, runs)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="run dirs (each with metrics.jsonl)")
    ap.add_argument("--out", required=True, help="the figure to write: a .png, .pdf or .svg file")
    args = ap.parse_args()
    return reporting_errors("plot_curves", lambda: plot(args))


def plot(args) -> int:
    out = atomic.check_file_path(args.out)
    fmt = out.suffix[1:].lower()
    if fmt not in FORMATS:
        raise ConfigError(f"--out {args.out}: name a .png, .pdf or .svg file")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("matplotlib is not installed (pip install -e '.[plot]')") from None
    runs = dict(zip(labels(args.runs), (read_rows(Path(r)) for r in args.runs)))

    fig, (ax_loss, ax_kl, ax_val) = plt.subplots(1, 3, figsize=(15, 4))
    ax_beta = ax_kl.twinx()
    for name, rows in runs.items():
        train = [r for r in rows if r["split"] == "train"]
        valid = [r for r in rows if r["split"] == "valid"]
        steps = [r["step"] for r in train]
        (line,) = ax_loss.plot(steps, [r["loss"] for r in train], label=name)
        if any(r.get("kl") for r in train):
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
    atomic.write_with(out, lambda tmp: fig.savefig(tmp, dpi=110, format=fmt))
    plt.close(fig)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
