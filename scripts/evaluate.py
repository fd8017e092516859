"""Evaluate checkpoints: importance-weighted NLL, PPL, -ELBO, KL, mutual information, active units.

    python scripts/evaluate.py runs/ptb-vae --split test --samples 500

Same flags as `seqvae evaluate` (see `seqvae evaluate --help`); this file is a thin wrapper.
"""

import sys

from seqvae.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
