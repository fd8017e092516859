#!/usr/bin/env bash
# Quickstart: prepare a slice of IMDB, train a tiny VAE for a few minutes on CPU, evaluate it, sample from it.
#
#     bash scripts/quickstart.sh            # DATA_ROOT=../shared/data by default; OUT=runs/quickstart
#
# Real runs: see README.md (seqvae prepare / train / evaluate with the full data and a larger preset).
set -euo pipefail
DATA_ROOT=${DATA_ROOT:-../shared/data}
OUT=${OUT:-runs/quickstart}
DATA=${DATA:-data/imdb-quick}

if [ ! -f "$DATA/meta.json" ]; then
  seqvae prepare --dataset imdb --data-root "$DATA_ROOT" --out "$DATA" --vocab-size 4000 --max-sentences 60000
fi
seqvae train --data "$DATA" --out "$OUT" --preset tiny --overwrite
seqvae evaluate "$OUT" --split test --samples 20 --max-sentences 500
seqvae sample "$OUT" -n 5 --strategy top-p --top-p 0.9 --seed 0
