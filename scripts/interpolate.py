"""Decode a path through latent space between two sentences' posterior means, one line per step.

    python scripts/interpolate.py runs/ptb-vae "the movie was great" "i hated the ending" --steps 8 --method slerp

A thin wrapper over `seqvae interpolate` (same options; --json for machine-readable output).
The Python equivalent: z, texts = SeqVAE.from_pretrained("runs/ptb-vae").interpolate(a, b, steps=8, method="slerp")
"""

import sys

from seqvae.cli import main

if __name__ == "__main__":
    sys.exit(main(["interpolate", *sys.argv[1:]]))
