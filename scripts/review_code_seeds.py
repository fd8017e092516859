"""How much does the review code's accuracy move with the coder's own seed (and its settings)?

    python scripts/review_code_seeds.py checkpoints/imdb-bow-gpu --seeds 0,1,2 --cache-dir runs/features
    python scripts/review_code_seeds.py checkpoints/imdb-bow-gpu --dev --epochs 20,40 --budgets 200,1000 \\
        --cache-dir runs/features

For each coder seed (and each --epochs value) a review encoder (seqvae/reviewcode.py) is trained
without labels on the unlabelled and train reviews' sentence means, and the LR on its code is
scored exactly as the row of `seqvae classify CKPT --curve --review-code`: the same stratified
draws per budget, the same C search. `--dev` scores on a development split instead of the test
reviews: the draws come from a stratified half of the train reviews and are scored on the other
half, for choosing settings without looking at the test set. Prints one table (a row per coder)
and the mean over coders per budget; --json writes every run.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import numpy as np  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--seeds", default="0", help="coder seeds, comma-separated (default 0: the curve's coder)")
    ap.add_argument("--epochs", default="40", help="coder epochs, comma-separated (default 40)")
    ap.add_argument("--budgets", default="200,1000,5000,25000", help="labelled reviews, comma-separated")
    ap.add_argument("--draws", type=int, default=5, help="stratified draws per budget below all (default 5)")
    ap.add_argument("--dev", action="store_true", help="score on a held-out half of the train reviews, not test")
    ap.add_argument("--max-unlabelled-reviews", type=int, default=0, help="a random subset of them (0 = all)")
    ap.add_argument("--data-root", help="folder holding imdb/*.jsonl.gz (default: the corpus module's)")
    ap.add_argument("--cache-dir", help="feature cache (default: CKPT/features)")
    ap.add_argument("--json", dest="json_out", help="write every run here")
    args = ap.parse_args(argv)

    from seqvae import atomic
    from seqvae.api import SeqVAE
    from seqvae.checkpoint import CheckpointError, resolve
    from seqvae.classify import (Method, _parse_budgets, _parse_ints, _val_split, label_budget_curve, load_reviews,
                                 load_unlabelled)
    from seqvae.features import ClassifyError, checkpoint_id, sentence_features
    from seqvae.config import ConfigError
    from seqvae.corpus import DataError
    from seqvae.reviewcode import fit_review_encoder

    try:
        seeds, epochs = _parse_ints(args.seeds, "--seeds"), _parse_ints(args.epochs, "--epochs")
        budgets = _parse_budgets(args.budgets)
        if min(epochs) < 1 or args.draws < 1:
            raise ClassifyError("--epochs and --draws must be >= 1")
        ckpt = resolve(args.checkpoint)
        vae = SeqVAE.from_pretrained(ckpt)
        cache = Path(args.cache_dir) if args.cache_dir else ckpt / "features"
        opts = {"model_id": checkpoint_id(ckpt), "cache_dir": cache}
        tr_texts, y_tr = load_reviews("train", data_root=args.data_root)
        S_tr = sentence_features(vae, tr_texts, split="train", **opts)
        U = sentence_features(vae, load_unlabelled(data_root=args.data_root, max_reviews=args.max_unlabelled_reviews),
                              split="unsup", **opts).concat(S_tr)
        if args.dev:  # a stratified half of train to draw budgets from, the other half to score on
            pool, held = _val_split(y_tr, 0.5, 1)
            S_fit, y_fit, S_eval, y_eval = S_tr[pool], y_tr[pool], S_tr[held], y_tr[held]
        else:
            te_texts, y_eval = load_reviews("test", data_root=args.data_root)
            S_fit, y_fit, S_eval = S_tr, y_tr, sentence_features(vae, te_texts, split="test", **opts)
    except (ConfigError, CheckpointError, ClassifyError, DataError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    methods, coders = [], {}
    for n_epochs in epochs:
        for seed in seeds:
            coder = fit_review_encoder(U, epochs=n_epochs, seed=seed)
            name = f"epochs{n_epochs}_seed{seed}"
            coders[name] = coder.meta
            print(f"{name}: {coder.meta['seconds']} s, last loss {coder.meta['loss'][-1]}", file=sys.stderr)
            methods.append(Method(name, f"{n_epochs} epochs, coder seed {seed}", "lr", coder.embed(S_fit),
                                  coder.embed(S_eval)))
    curve = label_budget_curve(methods, y_fit, y_eval, budgets=budgets, draws=args.draws)
    where = "held-out half of train" if args.dev else "test"
    print(f"| coder ({where}) | " + " | ".join(f"{b:,}" for b in curve["budgets"]) + " |")
    print("|---|" + "---:|" * len(curve["budgets"]))
    for m in methods:
        row = curve["methods"][m.name]["budgets"]
        print(f"| {m.label} | " + " | ".join(f"{100 * row[str(b)]['mean']:.1f} ± {100 * row[str(b)]['std']:.1f}"
                                          for b in curve["budgets"]) + " |")
    for n_epochs in epochs:
        runs = {b: [r for s in seeds for r in curve["methods"][f"epochs{n_epochs}_seed{s}"]["budgets"][str(b)]["runs"]]
                for b in curve["budgets"]}
        print(f"| {n_epochs} epochs, all {len(seeds)} coders | " + " | ".join(
            f"{100 * np.mean(r):.1f} ± {100 * np.std(r, ddof=1) if len(r) > 1 else 0:.1f}" for r in runs.values())
            + " |")
    if args.json_out:
        atomic.write_json(args.json_out, {"checkpoint": str(ckpt), "scored_on": where, "coders": coders, **curve})
    return 0


if __name__ == "__main__":
    sys.exit(main())
