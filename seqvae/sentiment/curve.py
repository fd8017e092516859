"""The label-budget curve: test accuracy of the heads against how many labelled reviews they get.

    seqvae classify curve checkpoints/imdb --out results/classify

Rows: the linear head on the review's mean μ and the set head on its units' μ, for the VAE's
encoder and (baselines) for an untrained encoder of the same config; and tf-idf of unigrams and
bigrams with logistic regression on the cleaned text. Budgets are stratified draws of the train
reviews (several draws each, the same for every row), scored on the test reviews; writes
(with matplotlib) curve.png, then curve.md, then curve.json, which names the other two's sha256s.
"""

from __future__ import annotations

import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .. import atomic
from ..sentences import review_to_sentences
from .config import ClassifyError, HeadConfig
from .data import stratified_sample
from .features import sentence_features, untrained_like
from .linear import LinearHead, select_c, sklearn
from .setmlp import SetHead

DEFAULT_BUDGETS = (200, 1000, 5000, 25000)
TFIDF_C_GRID = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)  # LR on tf-idf vectors


@dataclass(frozen=True)
class CurveConfig:
    budgets: tuple[int, ...] = DEFAULT_BUDGETS   # labelled train reviews per fit
    draws: int = 5                                # stratified draws per budget below all
    seed: int = 0                                 # draws d of budget b use the generator (seed, b, d)
    unit: str = "sentence"                        # what the encoder rows encode: sentence | clause
    set_head: HeadConfig | None = field(default_factory=lambda: HeadConfig(kind="set", unit="sentence", members=1))
                                                  # how the set-head rows are fitted (None: no set-head rows)
    baselines: bool = True                        # untrained-encoder rows and tf-idf


@dataclass
class Method:
    """One row of the curve: `fit(idx, y)` fits on the train reviews idx and returns test predictions."""

    name: str                                     # key in the JSON, e.g. "vae_lr"
    label: str                                    # row label in the table and legend
    fit: Callable[[np.ndarray, np.ndarray, int], tuple[np.ndarray, dict[str, Any]]]


def budget_draws(labels: np.ndarray, budget: int, draws: int, seed: int = 0) -> list[np.ndarray]:
    """The label-budget subsets: `draws` stratified draws of `budget` reviews (one: all, if budget >= N).
    Reproducible, and adding a budget or a draw never changes the others."""
    if budget >= len(labels):
        return [np.arange(len(labels))]
    return [stratified_sample(labels, budget, np.random.default_rng([seed, budget, d])) for d in range(draws)]


def _fit_tfidf_lr(X, y: np.ndarray, seed: int):
    """Logistic regression on (sparse) tf-idf rows, C picked as the linear head picks it."""
    sk = sklearn()

    def fit(Xf, yf, C):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return sk.linear_model.LogisticRegression(C=C, solver="liblinear", max_iter=1000).fit(Xf, yf)

    C, _ = select_c(fit, X, y, TFIDF_C_GRID, 5, seed)
    return fit(X, y, C)


def encoder_methods(tag: str, label: str, S_tr, S_te, cfg: CurveConfig) -> list[Method]:
    """The linear head (and the set head) rows of one encoder's features."""
    def linear(idx, y, seed):
        head = LinearHead.fit(S_tr[idx], y, HeadConfig(seed=seed))
        return head.predict(S_te), {"C": head.meta["C"]}

    of = "" if cfg.unit == "sentence" else f" of {cfg.unit}s"
    rows = [Method(f"{tag}_lr", f"{label}{of} + LR", linear)]
    if cfg.set_head is not None:
        s = cfg.set_head

        def set_mlp(idx, y, seed):
            return SetHead.fit(S_tr[idx], y, s.replace(seed=seed)).predict(S_te), {}

        desc = f"{s.pool}" + (f", {s.members} averaged" if s.members > 1 else "")
        rows.append(Method(f"{tag}_set", f"{label} per {cfg.unit} + set MLP ({desc})", set_mlp))
    return rows


def tfidf_method(tr_texts: Sequence[str], te_texts: Sequence[str]) -> tuple[Method, dict[str, Any]]:
    """tf-idf 1-2grams fitted once on every train review's text (the VAE saw them too, unlabelled);
    the budget limits only what the logistic regression sees."""
    t0 = time.perf_counter()
    vec = sklearn().feature_extraction.text.TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True,
                                                           dtype=np.float32)
    X_tr = vec.fit_transform([" ".join(review_to_sentences(t)) for t in tr_texts])
    X_te = vec.transform([" ".join(review_to_sentences(t)) for t in te_texts])

    def fit(idx, y, seed):
        lr = _fit_tfidf_lr(X_tr[idx], y, seed)
        return lr.predict(X_te), {"C": float(lr.C)}

    info = {"vocabulary": int(X_tr.shape[1]), "seconds": round(time.perf_counter() - t0, 2)}
    return Method("tfidf_lr", "tf-idf 1-2gram + LR", fit), info


def label_budget_curve(methods: Sequence[Method], y_train: np.ndarray, y_test: np.ndarray, cfg: CurveConfig,
                       progress: bool = True) -> dict[str, Any]:
    """Test accuracy of every method at every budget: mean ± std (ddof=1; 0 for one draw) over
    the draws. Budgets at or above the number of train reviews collapse into one "all" budget."""
    from tqdm.auto import tqdm

    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    n = len(y_train)
    sizes = sorted({min(int(b), n) for b in cfg.budgets})
    subsets = {b: budget_draws(y_train, b, cfg.draws, cfg.seed) for b in sizes}
    jobs = [(m, b, d) for m in methods for b in sizes for d in range(len(subsets[b]))]
    res: dict[str, Any] = {m.name: {"label": m.label, "budgets": {}} for m in methods}
    for m, b, d in tqdm(jobs, desc="curve", unit="fit", disable=None if progress else True, leave=False):
        idx = subsets[b][d]
        t0 = time.perf_counter()
        pred, info = m.fit(idx, y_train[idx], cfg.seed + d)
        row = res[m.name]["budgets"].setdefault(str(b), {"runs": [], "fit": []})
        row["runs"].append(float((pred == y_test).mean()))
        row["fit"].append({**info, "seconds": round(time.perf_counter() - t0, 2)})
    for m in methods:
        for row in res[m.name]["budgets"].values():
            runs = np.asarray(row["runs"])
            row["mean"] = float(runs.mean())
            row["std"] = float(runs.std(ddof=1)) if len(runs) > 1 else 0.0
    return {"budgets": sizes, "draws": cfg.draws, "seed": cfg.seed, "n_train_pool": n, "n_test": int(len(y_test)),
            "methods": res}


def run_curve(vae, out_dir: str | Path, train: tuple[list[str], np.ndarray], test: tuple[list[str], np.ndarray],
              cfg: CurveConfig = CurveConfig(), *, model_id: str, cache_dir=None, batch_size: int = 256,
              progress: bool = True, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The label-budget experiment end to end: features, rows, curve; writes curve.json/.md/.png."""
    (tr_texts, y_tr), (te_texts, y_te) = train, test
    if min(cfg.budgets, default=0) < 4 or cfg.draws < 1:
        raise ClassifyError("every budget must be >= 4 and draws >= 1")
    sklearn()  # fail before the expensive part
    overlap = sum(t in set(tr_texts) for t in te_texts)  # aclImdb has a few test reviews that are also in train
    print(f"{len(tr_texts):,} train / {len(te_texts):,} test reviews ({overlap} test reviews also in train)",
          file=sys.stderr)
    encoders = [("vae", "VAE μ", vae, model_id)]
    if cfg.baselines:
        encoders.append(("untrained", "untrained encoder μ", *untrained_like(vae)))
    methods, feature_info = [], {}
    for tag, label, enc, ident in encoders:
        S_tr, S_te = (sentence_features(enc, texts, unit=cfg.unit, split=split, model_id=ident, tag=tag,
                                        cache_dir=cache_dir, batch_size=batch_size, progress=progress)
                      for texts, split in ((tr_texts, "train"), (te_texts, "test")))
        feature_info[tag] = {"train": S_tr.summary(cfg.unit), "test": S_te.summary(cfg.unit)}
        methods += encoder_methods(tag, label, S_tr, S_te, cfg)
    if cfg.baselines:
        tfidf, feature_info["tfidf"] = tfidf_method(tr_texts, te_texts)
        methods.append(tfidf)
    curve = label_budget_curve(methods, y_tr, y_te, cfg, progress=progress)
    curve.update({"unit": cfg.unit, "features": feature_info, "test_reviews_in_train": overlap,
                  **({"set_head": cfg.set_head.to_dict()} if cfg.set_head is not None else {}), **(extra or {})})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # the plot and curve.md first, curve.json last: it names their sha256s (atomic.write_pair), so a cut between
    # the files never leaves a reader of curve.json with another run's table or plot unawares
    plot = plot_curve(curve, out / "curve.png")
    if plot is None:
        (out / "curve.png").unlink(missing_ok=True)  # a plot of an earlier run would stand beside these rows
    md = curve_markdown(curve)
    atomic.write_pair(out / "curve.md", lambda tmp: tmp.write_text(md, encoding="utf-8"), out / "curve.json",
                      {**curve, "plot_sha256": atomic.file_sha256(plot) if plot else None}, sha_key="markdown_sha256")
    return curve


def curve_markdown(curve: dict[str, Any]) -> str:
    """Methods x budgets table of test accuracy (%), mean ± std over draws."""
    sizes, n = curve["budgets"], curve["n_train_pool"]
    lines = ["| method | " + " | ".join(f"{b:,}" + (" (all)" if b == n else "") for b in sizes) + " |",
             "|---|" + "---:|" * len(sizes)]
    for m in curve["methods"].values():
        cells = [f"{100 * m['budgets'][str(b)]['mean']:.1f}"
                 + (f" ± {100 * m['budgets'][str(b)]['std']:.1f}" if len(m["budgets"][str(b)]["runs"]) > 1 else "")
                 for b in sizes]
        lines.append(f"| {m['label']} | " + " | ".join(cells) + " |")
    lines += ["", f"Test accuracy (%) on {curve['n_test']:,} test reviews; labelled train reviews drawn "
              f"stratified from {n:,}; mean ± std over {curve['draws']} draws (seed {curve['seed']}) "
              f"for budgets below all."]
    return "\n".join(lines) + "\n"


def plot_curve(curve: dict[str, Any], path: str | Path) -> Path | None:
    """Accuracy vs label budget (log x) with std error bars; None (and a notice) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: skipping the plot (pip install 'seqvae[plot]')", file=sys.stderr)
        return None
    sizes = curve["budgets"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for m in curve["methods"].values():
        mean = [100 * m["budgets"][str(b)]["mean"] for b in sizes]
        std = [100 * m["budgets"][str(b)]["std"] for b in sizes]
        ax.errorbar(sizes, mean, yerr=std, marker="o", capsize=3, label=m["label"])
    ax.set_xscale("log")
    ax.set_xticks(sizes)
    ax.set_xticklabels([f"{b:,}" for b in sizes])
    ax.minorticks_off()
    ax.set_xlabel("labelled train reviews")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"IMDB sentiment vs label budget ({curve['n_test']:,} test reviews)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic.write_with(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)
    return Path(path)
