"""Train a sentence VAE (or, with --lm, the GRU language model baseline) on a prepared data dir.

    python scripts/train.py --data data/ptb --out runs/ptb-vae --preset small

Same flags as `seqvae train` (see `seqvae train --help`); this file is a thin wrapper.
"""

import sys

from seqvae.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
