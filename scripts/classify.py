"""Sentiment from a sentence VAE's posterior means: the label-budget curve with baselines, a saved
classifier head, predictions. A thin shell over `seqvae classify` (same options, same errors).

    python scripts/classify.py checkpoints/imdb-small --curve --out results/classify
    python scripts/classify.py checkpoints/imdb-small --curve --out /tmp/quick --budgets 200,1000 \\
        --draws 2 --max-train-reviews 2000 --max-test-reviews 1000
    python scripts/classify.py checkpoints/imdb-small --train
    python scripts/classify.py checkpoints/imdb-small --texts "A gem of a film." "Two hours I will never get back."

--curve trains on 200, 1,000, 5,000 and all 25,000 labelled train reviews (5 stratified draws for
the small budgets), scores on all 25,000 test reviews, and writes curve.json, curve.md and
curve.png to --out. Features are cached in CKPT/features/, so a second run skips the encoder.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from seqvae.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["classify", *sys.argv[1:]]))
