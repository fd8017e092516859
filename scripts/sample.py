"""Sample sentences from a trained sentence VAE's prior (z ~ N(0, I)) and print one per line.

    python scripts/sample.py runs/ptb-vae -n 10 --strategy top-p --top-p 0.9 --temperature 1.0 --seed 0

A thin wrapper over `seqvae sample` (same options; --json for machine-readable output).
The Python equivalent: SeqVAE.from_pretrained("runs/ptb-vae").sample(10, strategy="top-p", top_p=0.9, seed=0)
"""

import sys

from seqvae.cli import main

if __name__ == "__main__":
    sys.exit(main(["sample", *sys.argv[1:]]))
