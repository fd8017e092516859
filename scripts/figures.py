"""The README's two pictures for a checkpoint: an interpolation drawn step by step, and a 2-D map of latents.

    python scripts/figures.py checkpoints/imdb --out docs --data-root ../shared/data

Writes OUT/interpolation.png: the path from sentence A to sentence B (slerp between their posterior
means), one decoded sentence per step, each at its position t on the path; and OUT/latent_map.png:
the posterior means of IMDB test sentences (left) and each review's mean μ (right), projected on
their first two principal components (fitted on those points, without labels) and coloured by the
review's sentiment label. Needs matplotlib (`pip install -e ".[plot]"`); bad input is one line on
stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from seqvae import SeqVAE, atomic
from seqvae.reporting import reporting_errors
from seqvae.config import MAX_PATH_STEPS, ConfigError, whole

A = "The acting was wonderful and the story moved me."  # as the reviews write (the flagship's training text)
B = "The plot makes no sense and the film is a bore."


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="checkpoint dir, or a run dir (its best/)")
    p.add_argument("--out", default="docs", help="folder for the two PNGs (default docs)")
    p.add_argument("--a", default=A, help="the interpolation's first sentence")
    p.add_argument("--b", default=B, help="the interpolation's last sentence")
    p.add_argument("--steps", type=int, default=8, help="points on the path, endpoints included (default 8)")
    p.add_argument("--reviews", type=int, default=2000, help="test reviews on the map (stratified; default 2000)")
    p.add_argument("--sentences", type=int, default=6000, help="of their sentences, at most this many (default 6000)")
    p.add_argument("--data-root", help="folder holding imdb/*.jsonl.gz (default: the corpus module's)")
    p.add_argument("--device", help="cpu, cuda (default: cuda if available)")
    return p.parse_args(argv)


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("figures.py needs matplotlib: pip install -e '.[plot]'") from None
    return plt


def interpolation_figure(vae, a: str, b: str, steps: int, path: Path) -> list[str]:
    """Decode `steps` points of the slerp from a's posterior mean to b's; draw them as lines of text."""
    plt = _pyplot()
    _, texts = vae.interpolate(a, b, steps=steps, method="slerp", strategy="greedy")
    ts = np.linspace(0, 1, steps)
    fig, ax = plt.subplots(figsize=(10, 0.45 * steps + 1.0))
    ax.plot([0.02, 0.02], [0, steps - 1], color="0.75", lw=2, zorder=1)
    for i, (t, text) in enumerate(zip(ts, texts)):
        y = steps - 1 - i
        ax.scatter([0.02], [y], s=40, color=plt.cm.coolwarm(1 - t), zorder=2)  # red: A, blue: B (the map's colours for the defaults)
        ax.text(0.05, y, f"t={t:.2f}", va="center", fontsize=9, color="0.4", family="monospace")
        ax.text(0.14, y, text, va="center", fontsize=10, weight="bold" if i in (0, steps - 1) else "normal")
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.7, steps - 0.3)
    ax.axis("off")
    ax.set_title("Interpolating between two sentences' posterior means (slerp, greedy decoding)", fontsize=10,
                 loc="left")
    fig.tight_layout()
    atomic.write_with(path, lambda tmp: fig.savefig(tmp, dpi=130, format="png"))
    plt.close(fig)
    return texts


def _pca2(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2) projection on the first two principal components, and their shares of the variance."""
    Xc = X - X.mean(0)
    _, s, vt = np.linalg.svd(Xc, full_matrices=False)
    return Xc @ vt[:2].T, (s[:2] ** 2) / (s ** 2).sum()


def latent_map_figure(vae, texts: list[str], labels: np.ndarray, max_sentences: int, path: Path) -> None:
    """Sentence posterior means and reviews' mean μ on their first two principal components, by label."""
    from seqvae.sentiment.features import mean_mu, sentence_features

    plt = _pyplot()
    S = sentence_features(vae, texts, split="test", progress=False)
    rng = np.random.default_rng(0)
    pick = np.sort(rng.permutation(len(S.mu))[:max_sentences])
    panels = [("sentences of test reviews", S.mu[pick], labels[S.owner[pick]]),
              ("reviews (mean μ of their sentences)", mean_mu(S), labels)]
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    for ax, (title, X, y) in zip(axes, panels):
        P, share = _pca2(X.astype(np.float64))
        for cls, name, colour in ((0, "negative", "tab:blue"), (1, "positive", "tab:red")):
            ax.scatter(P[y == cls, 0], P[y == cls, 1], s=4, alpha=0.35, color=colour, label=name, linewidths=0)
        ax.set_title(f"{len(X):,} {title}", fontsize=10)
        ax.set_xlabel(f"PC 1 ({100 * share[0]:.0f}% of variance)")
        ax.set_ylabel(f"PC 2 ({100 * share[1]:.0f}%)")
        ax.legend(markerscale=4, fontsize=8, loc="upper right")
    fig.suptitle("Posterior means μ, first two principal components, coloured by the review's label", fontsize=11)
    fig.tight_layout()
    atomic.write_with(path, lambda tmp: fig.savefig(tmp, dpi=130, format="png"))
    plt.close(fig)


def main(argv=None) -> int:
    args = parse_args(argv)
    return reporting_errors("figures", lambda: make(args))


def make(args) -> int:
    whole("--steps", args.steps, 2, ConfigError, MAX_PATH_STEPS)  # the API's bound, before the model loads
    if args.reviews < 4 or args.sentences < 2:  # two points: a map's principal components
        raise ConfigError("--reviews must be >= 4 and --sentences >= 2")
    for opt, text in (("--a", args.a), ("--b", args.b)):
        if not text.strip():
            raise ConfigError(f"{opt} is empty: the interpolation's endpoints are two sentences")
    _pyplot()  # before the model: a missing matplotlib fails fast
    from seqvae.sentiment.data import load_reviews

    out = atomic.check_dir_path(args.out)
    vae = SeqVAE.from_pretrained(args.checkpoint, device=args.device)
    reviews, labels = load_reviews("test", data_root=args.data_root, max_reviews=args.reviews)  # before any figure
    texts = interpolation_figure(vae, args.a, args.b, args.steps, out / "interpolation.png")
    print("\n".join(texts))
    latent_map_figure(vae, reviews, labels, args.sentences, out / "latent_map.png")
    print(f"wrote {out / 'interpolation.png'}, {out / 'latent_map.png'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
