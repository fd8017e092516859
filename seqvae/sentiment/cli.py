"""`seqvae classify ACTION CKPT ...` and `seqvae steer CKPT ...` (registered in seqvae/cli.py).

    seqvae classify fit CKPT                       # the linear head on mean μ (steering uses it)
    seqvae classify fit CKPT --head set            # the set head: attention over clauses, 5 members
    seqvae classify predict CKPT "A gem." "Dull."  # or '-': one text per stdin line
    seqvae classify evaluate CKPT --head set --snippets 1,3
    seqvae classify calibrate CKPT --head set      # refit a saved head's length calibration
    seqvae classify curve CKPT --out results/classify
    seqvae steer CKPT "The plot was dull." --to positive --strength 2

Each action parses its own options; bad input is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from ..config import MAX_LEN, refuse_empty_values, seed_arg
from ..textcli import DEVICE_HELP, check_size
from ..textinput import problem, read_lines
from .config import CLASSES, KINDS, UNITS, ClassifyError

ACTIONS = {
    "fit": "fit a head on the labelled train reviews and save it in the checkpoint",
    "predict": "the sentiment of texts with a saved head",
    "evaluate": "score a saved head on the labelled test reviews (and k-sentence snippets)",
    "calibrate": "refit a saved head's length calibration on the train reviews",
    "curve": "test accuracy against the number of labels, with baselines (JSON, table, plot)",
}
MAX_DRAWS = 1_000   # classify curve --draws: every draw's indices are built up front
MAX_MEMBERS = 100   # set-head members (--members, --set-members): each is a trained MLP
OLD_MODES = {"--train": "fit", "--texts": "predict", "--evaluate": "evaluate", "--calibrate": "calibrate",
             "--curve": "curve"}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- parsers
def add_classify_args(p: argparse.ArgumentParser) -> None:
    p.description = "Sentiment from posterior means. Actions: " + "; ".join(f"{a}: {h}" for a, h in ACTIONS.items())
    p.add_argument("action", nargs="?", metavar="ACTION", help=", ".join(ACTIONS) + " (each has its own -h)")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="the checkpoint and the action's options")
    for flag in OLD_MODES:  # the modes before actions existed: a one-line error naming the new form
        p.add_argument(flag, nargs="*", default=None, help=argparse.SUPPRESS)


def _common(p: argparse.ArgumentParser, *, data: bool = True) -> None:
    p.add_argument("checkpoint", help="checkpoint dir, or a run dir (its best/)")
    if data:
        p.add_argument("--data-root", help="folder holding imdb/*.jsonl.gz (default: the corpus module's)")
        p.add_argument("--cache-dir", help="feature cache (default: CKPT/features)")
        p.add_argument("--no-cache", action="store_true", help="neither read nor write cached features")
        p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--device", help=DEVICE_HELP)


def _head_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--head", choices=KINDS, default="linear",
                   help="linear: logistic regression on the review's mean μ (default; steering uses it); "
                        "set: an MLP per clause, attention-pooled, five averaged")


def _subset_arg(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--max-reviews", type=int, default=0, metavar="N",
                   help=f"use a stratified subset of N {what} reviews (0 = all, the default)")
    p.add_argument("--seed", type=seed_arg, default=0, help="seed of the subset, the fit and the snippets (default 0)")


def action_parser(action: str) -> argparse.ArgumentParser:
    """The options of `seqvae classify ACTION` (one of ACTIONS)."""
    p = argparse.ArgumentParser(prog=f"seqvae classify {action}", description=ACTIONS[action])
    if action == "predict":
        _common(p, data=False)
        p.add_argument("texts", nargs="+", metavar="TEXT", help="reviews or sentences; '-': one per stdin line")
        _head_arg(p)
        p.add_argument("--json", action="store_true", help="print JSON")
        return p
    _common(p)
    if action in ("fit", "evaluate", "calibrate"):
        _head_arg(p)
    if action in ("fit", "curve"):
        p.add_argument("--unit", choices=UNITS, default=None,
                       help="encode each review's sentences or clauses (default: " +
                            ("the head's recipe, linear: sentence, set: clause)" if action == "fit" else "sentence)"))
    if action == "fit":
        p.add_argument("--members", type=int, default=5, help="set head: members averaged (default 5)")
        p.add_argument("--pool", choices=["attention", "mean"], default="attention",
                       help="set head: attention over the units (default) or their plain mean")
    if action == "curve":
        p.add_argument("--out", help="output dir (default: CKPT/curve)")
        p.add_argument("--budgets", default="200,1000,5000,25000", help="labelled train reviews, comma-separated (default 200,1000,5000,25000)")
        p.add_argument("--draws", type=int, default=5, help="stratified draws per budget below all (default 5)")
        p.add_argument("--set-members", type=int, default=1, help="members of the set head rows (default 1)")
        p.add_argument("--no-set", action="store_true", help="skip the set head rows")
        p.add_argument("--no-baselines", action="store_true", help="skip tf-idf and the untrained encoder")
    if action == "evaluate":
        p.add_argument("--snippets", default="", metavar="K,...",
                       help="also score one random K-sentence snippet of each test review with at least K "
                            "sentences, labelled with its review's label")
        p.add_argument("--json", action="store_true", help="print JSON")
    _subset_arg(p, {"evaluate": "test", "curve": "train and N test"}.get(action, "train"))
    return p


# ---------------------------------------------------------------------------- helpers
def parse_numbers(text: str, flag: str, cast, least: float) -> list:
    """The comma-separated values of a command-line list, each through `cast` and >= least."""
    try:
        values = [cast(v.replace("_", "")) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or any(not math.isfinite(v) or v < least for v in values):
        raise ClassifyError(f"{flag}: expected comma-separated numbers >= {least:g}, got {text!r}")
    return values


def latent_model(ckpt: Path, device: str | None):
    from ..api import SeqVAE

    vae = SeqVAE.from_pretrained(ckpt, device=device)
    if not vae.latent:
        raise ClassifyError(f"{ckpt} is a language model (latent=False): it has no posterior to classify or steer")
    return vae


def _reviews(args, split: str):
    from .data import load_reviews

    if args.max_reviews < 0 or 0 < args.max_reviews < 4:
        raise ClassifyError("--max-reviews: at least 4 (two of each class), or 0 for all")
    return load_reviews(split, data_root=args.data_root, max_reviews=args.max_reviews, seed=args.seed)


def _cache(args, ckpt: Path) -> Path | None:
    from ..checkpoint import CACHE_DIR

    return None if args.no_cache else Path(args.cache_dir) if args.cache_dir else ckpt / CACHE_DIR


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2))


# ---------------------------------------------------------------------------- actions
def run_classify(args) -> int:
    old = next((f for f in OLD_MODES if getattr(args, f[2:]) is not None), None)
    old = old or next((a for a in [args.action or "", *args.rest] if a in OLD_MODES), None)
    if old:
        raise ClassifyError(f"`seqvae classify CKPT {old}` is now `seqvae classify {OLD_MODES[old]} CKPT` "
                            f"(see `seqvae classify {OLD_MODES[old]} -h`)")
    if args.action not in ACTIONS:
        raise ClassifyError(f"classify needs an action first: {', '.join(ACTIONS)} (e.g. `seqvae classify fit CKPT`)")
    parser = action_parser(args.action)
    refuse_empty_values(parser)  # `--data-root ""`: a usage error, not the default root
    a = parser.parse_args(args.rest)  # --seed: seed_arg's range, argparse's usage error
    from ..checkpoint import resolve  # torch: after the action's -h and usage errors, which need none

    ckpt = resolve(a.checkpoint)
    return {"fit": _fit, "predict": _predict, "evaluate": _evaluate, "calibrate": _calibrate,
            "curve": _curve}[args.action](a, ckpt)


def _fit(a, ckpt: Path) -> int:
    from .config import HeadConfig
    from .features import checkpoint_id
    from .heads import fit_head
    from .linear import sklearn

    check_size("--members", a.members, 1, MAX_MEMBERS)
    cfg = HeadConfig(kind=a.head, unit=a.unit, seed=a.seed, members=a.members if a.head == "set" else 1,
                     pool=a.pool)
    sklearn()  # before the expensive part
    model_id = checkpoint_id(ckpt)
    vae = latent_model(ckpt, a.device)
    texts, labels = _reviews(a, "train")
    head = fit_head(vae, texts, labels, cfg, model_id=model_id, cache_dir=_cache(a, ckpt), progress=not a.no_progress)
    paths = head.save(ckpt)
    _print_json({k: v for k, v in head.meta.items() if k not in ("length_scales", "config")}
                | {"saved": [str(p) for p in paths]})
    return 0


def _predict(a, ckpt: Path) -> int:
    from .heads import check_width, head_matches, load_head, other_weights

    texts = list(a.texts)
    if texts == ["-"]:
        texts = read_lines(sys.stdin, "stdin")
        if not texts:
            raise ClassifyError("predict -: no texts on stdin")
    if empty := [i for i, t in enumerate(texts) if not t.strip()]:
        raise ClassifyError(f"text {empty[0]} is empty (after stripping whitespace)")
    if bad := next(((i, why) for i, t in enumerate(texts) if (why := problem(t))), None):
        raise ClassifyError(f"text {bad[0]} {bad[1]}")
    head = load_head(ckpt, a.head)  # the head before the model: a missing head fails fast
    vae = latent_model(ckpt, a.device)
    check_width(head, vae)
    if not head_matches(head, ckpt, vae):
        log(f"seqvae classify: warning: {other_weights(ckpt, a.head)}")
    if not head.meta.get("length_scales"):
        log(f"seqvae classify: note: this head has no length calibration, so a short text is read as surely as a "
            f"review; add it with `seqvae classify calibrate {ckpt} --head {a.head}`")
    rows = head.predict_texts(vae, texts)
    if n_empty := sum(r.get("clauses", r["sentences"]) == 0 for r in rows):
        log(f"seqvae classify: warning: {n_empty} text(s) have no sentence: predicted from no evidence (the linear "
            f"head reads a zero code, the set head gives its bias)")
    if a.json:
        _print_json(rows)
        return 0
    for r in rows:
        snippet = r["text"] if len(r["text"]) <= 70 else r["text"][:67] + "..."
        print(f"{r['label']:<8} p_positive={r['p_positive']:.3f}  {snippet}")
    return 0


def _saved_head(a, ckpt: Path):
    """(the saved --head, checked against the checkpoint's weights; the model; its id)."""
    from .features import checkpoint_id
    from .heads import check_width, head_matches, load_head, other_weights

    head = load_head(ckpt, a.head)  # the head before the model: a missing head fails fast
    vae = latent_model(ckpt, a.device)
    check_width(head, vae)
    if not head_matches(head, ckpt, vae):
        raise ClassifyError(other_weights(ckpt, a.head))
    return head, vae, checkpoint_id(ckpt)


def _evaluate(a, ckpt: Path) -> int:
    from .evaluate import evaluate_head, evaluation_markdown

    snippets = parse_numbers(a.snippets, "--snippets", int, 1) if a.snippets.strip() else []
    head, vae, model_id = _saved_head(a, ckpt)
    texts, labels = _reviews(a, "test")
    rows = evaluate_head(vae, head, texts, labels, snippets=snippets, seed=a.seed, model_id=model_id,
                         cache_dir=_cache(a, ckpt), progress=not a.no_progress)
    print(json.dumps(rows, indent=2) if a.json else evaluation_markdown(rows, head.unit).rstrip())
    return 0


def _calibrate(a, ckpt: Path) -> int:
    from .calibrate import calibration_meta, fit_length_scales
    from .features import sentence_features

    head, vae, model_id = _saved_head(a, ckpt)
    texts, labels = _reviews(a, "train")
    S = sentence_features(vae, texts, unit=head.unit, split="train", model_id=model_id, cache_dir=_cache(a, ckpt),
                          progress=not a.no_progress)
    scales = fit_length_scales(head, S, labels, seed=a.seed)
    head.meta.update(calibration_meta(scales, len(labels)))
    _print_json({"length_scales": scales, "saved": [str(p) for p in head.save(ckpt)]})
    return 0


def _curve(a, ckpt: Path) -> int:
    from .. import atomic
    from .config import HeadConfig
    from .curve import CurveConfig, curve_markdown, run_curve
    from .data import load_reviews
    from .features import checkpoint_id

    out = Path(a.out) if a.out else ckpt / "curve"
    atomic.check_dir_path(out)  # before hours of work
    unit = a.unit or "sentence"
    budgets = tuple(parse_numbers(a.budgets, "--budgets", int, 4))
    check_size("--draws", a.draws, 1, MAX_DRAWS)
    check_size("--set-members", a.set_members, 1, MAX_MEMBERS)
    set_head = None if a.no_set else HeadConfig(kind="set", unit=unit, members=a.set_members)
    cfg = CurveConfig(budgets=budgets, draws=a.draws, seed=a.seed, unit=unit, set_head=set_head,
                      baselines=not a.no_baselines)
    train = _reviews(a, "train")
    test = load_reviews("test", data_root=a.data_root, max_reviews=a.max_reviews, seed=a.seed)
    model_id = checkpoint_id(ckpt)
    curve = run_curve(latent_model(ckpt, a.device), out, train, test, cfg, model_id=model_id,
                      cache_dir=_cache(a, ckpt), progress=not a.no_progress,
                      extra={"checkpoint": str(ckpt), "model_sha256": model_id})
    print(curve_markdown(curve), end="")
    log(f"wrote {out / 'curve.json'}, {out / 'curve.md'}" + (", curve.png" if (out / "curve.png").exists() else ""))
    return 0


# ---------------------------------------------------------------------------- steer
def add_steer_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="checkpoint dir with a linear head (from `seqvae classify fit CKPT`)")
    p.add_argument("text", nargs="?", help="the sentence to steer (or --report N)")
    p.add_argument("--report", type=int, metavar="N", help="instead of one text: steer N IMDB test sentences toward "
                   "the other class at each of --strengths and report flip rate and closeness")
    p.add_argument("--strengths", default="0,1,2,4",
                   help="--report: comma-separated strengths (default 0,1,2,4; 0 = the reconstruction alone)")
    p.add_argument("--out", help="--report: also write the report (with every example) as JSON here")
    p.add_argument("--seed", type=seed_arg, default=0, help="--report: which test reviews (default 0)")
    p.add_argument("--data-root", help="--report: folder holding imdb/*.jsonl.gz (default: the corpus module's)")
    p.add_argument("--to", default="positive", choices=list(CLASSES), help="target sentiment (default positive)")
    p.add_argument("--strength", type=float, default=2.0, help="how far to move (in --unit units; default 2)")
    p.add_argument("--unit", default="std", choices=["std", "l2"],
                   help="std: std of sentence codes along the direction (default); l2: plain distance in z")
    p.add_argument("--max-len", type=int, default=40, help="decoded tokens at most, EOS included (default 40)")
    p.add_argument("--device", help=DEVICE_HELP)
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def run_steer(args) -> int:
    """`seqvae steer`: one text moved toward a class, or a report over --report N test sentences."""
    from .. import atomic
    from ..checkpoint import resolve
    from .heads import check_width, head_matches, load_head, other_weights
    from .steer import report_sentences, steer, steering_markdown, steering_report

    if (args.text is None) == (args.report is None):
        raise ClassifyError("give either a text to steer or --report N, not both")
    if args.report is not None and args.report < 1:
        raise ClassifyError("--report must be >= 1")
    if args.text is not None and args.out:
        raise ClassifyError("--out writes the --report; one steered text prints (--json for JSON)")
    if args.text == "-":
        raise ClassifyError("steer takes one sentence as its argument, not '-' (stdin)")
    check_size("--max-len", args.max_len, 1, MAX_LEN)
    strengths = parse_numbers(args.strengths, "--strengths", float, 0)
    if args.out:
        atomic.check_file_path(args.out)
    ckpt = resolve(args.checkpoint)
    if args.out:
        atomic.check_not_an_input(args.out, {f"the checkpoint {ckpt}": ckpt})
    head = load_head(ckpt, "linear")
    vae = latent_model(ckpt, args.device)
    check_width(head, vae)
    if not head_matches(head, ckpt, vae):
        if args.report is not None:  # a measurement, as `classify evaluate`: refused
            raise ClassifyError(other_weights(ckpt, "linear"))
        log(f"seqvae steer: warning: {other_weights(ckpt, 'linear')}")
    if args.report is not None:
        sentences = report_sentences(args.report, seed=args.seed, data_root=args.data_root)
        report = steering_report(vae, head, sentences, strengths=strengths, unit=args.unit, max_len=args.max_len)
        if args.out:
            atomic.write_json(args.out, {"checkpoint": str(ckpt), **report})
        print(json.dumps({k: v for k, v in report.items() if k != "examples"}, indent=2) if args.json
              else steering_markdown(report), end="\n" if args.json else "")
        return 0
    r = steer(vae, head, args.text, to=args.to, strength=args.strength, unit=args.unit, max_len=args.max_len)
    if args.json:
        _print_json(r.to_dict())
        return 0
    print(f"input:          {r.text}")
    print(f"reconstruction: {r.reconstruction}")
    print(f"steered:        {r.steered}")
    print(f"moved {r.strength:g} {r.unit} (L2 {r.distance:.3f}) toward {r.to}; p({r.to}): "
          f"{r.p_target_before:.3f} -> {r.p_target_latent:.3f} (code) -> {r.p_target_after:.3f} (re-encoded)")
    print(f"label: {r.label_before} -> {r.label_after} ({'flipped' if r.flipped else 'not flipped'}); "
          f"unigram F1 vs reconstruction {r.overlap_f1:.2f}")
    return 0
