"""Is a fine-tuned encoder still a posterior of its model? The bound under both encoders.

    python scripts/finetuned_bound.py checkpoints/imdb-bow --sentences 5000
    python scripts/finetuned_bound.py checkpoints/imdb-bow runs/other-head --sentences 1000 --samples 100

For each checkpoint dir (its model + its `finetuned_classifier.*`, from
`seqvae classify CKPT --train --head finetuned`) the same IMDB test sentences (a seeded random
sample, split and tokenized as `seqvae classify` does) are scored with the model's own encoder and
with the fine-tuned one, the decoder being the model's in both: rec, KL, -ELBO and, with
--samples K, the importance-weighted NLL (K samples from each encoder as the proposal). The
generative model is the same, so the true NLL is too: a larger -ELBO or IW estimate under the
tuned encoder is a looser posterior, nothing else. Prints a table; --json writes the numbers.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import numpy as np  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", nargs="+", help="checkpoint dirs, each with a fine-tuned head")
    ap.add_argument("--sentences", type=int, default=5000, help="test sentences to score (default 5000)")
    ap.add_argument("--samples", type=int, default=0, help="importance samples per sentence (0: ELBO only)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-root", help="folder holding imdb/*.jsonl.gz (default: the corpus module's)")
    ap.add_argument("--json", dest="json_out", help="write the results here")
    args = ap.parse_args(argv)

    from seqvae import atomic
    from seqvae.api import SeqVAE
    from seqvae.checkpoint import CheckpointError
    from seqvae.classify import load_reviews
    from seqvae.features import ClassifyError
    from seqvae.cli import format_table
    from seqvae.config import ConfigError
    from seqvae.corpus import DataError
    from seqvae.data import SentenceDataset
    from seqvae.finetune import FinetunedHead, tokenize_reviews
    from seqvae.metrics import evaluate

    try:
        if args.sentences < 1 or args.samples < 0:
            raise ConfigError("--sentences must be >= 1 and --samples >= 0")
        models = [(Path(c), SeqVAE.from_pretrained(c)) for c in args.checkpoints]
        heads = [FinetunedHead.load(c) for c, _ in models]  # a missing head fails before the long part
        texts, _ = load_reviews("test", data_root=args.data_root)
    except (ConfigError, CheckpointError, ClassifyError, DataError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rows, out = [], {}
    for (ckpt, vae), head in zip(models, heads):
        sents = [s for r in tokenize_reviews(vae, texts) for s in r]
        pick = np.sort(np.random.default_rng(args.seed).permutation(len(sents))[: args.sentences])
        data = SentenceDataset.from_lists([sents[i] for i in pick])
        for name, model in (("encoder", vae.model), ("fine-tuned encoder", head.apply(vae).model)):
            res = evaluate(model, data, k=args.samples, seed=args.seed, progress=True)
            res.pop("au_variances")
            rows.append((f"{ckpt} {name}", res))
            out[f"{ckpt}:{name}"] = {**res, "elbo_weight": head.meta.get("elbo_weight", 0.0)}
    print(format_table(rows))
    print(f"{len(data)} IMDB test sentences (seed {args.seed}); NLL "
          + (f"importance-weighted, {args.samples} samples" if args.samples else "= -ELBO (no --samples)"))
    if args.json_out:
        atomic.write_json(Path(args.json_out), out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
