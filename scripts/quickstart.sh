#!/usr/bin/env bash
# Quickstart: first what a trained sentence VAE does (the shipped flagship, checkpoints/imdb: samples,
# reconstructions, an interpolation), then train a tiny one yourself in about 5 minutes on a CPU
# (prepare a slice of IMDB, train, evaluate, sample, reconstruct).
#
#     bash scripts/quickstart.sh                 # DATA_ROOT=../shared/data, OUT=runs/quickstart, DATA=data/imdb-quick
#     FLAGSHIP=runs/my-vae bash scripts/quickstart.sh   # demonstrate another checkpoint
#     QUICK=1 bash scripts/quickstart.sh         # a smoke run of every step in seconds (tests/test_quickstart.py)
#
# Real runs: see README.md (seqvae prepare / train / evaluate with the full data and a larger preset).
set -euo pipefail
DATA_ROOT=${DATA_ROOT:-../shared/data}
FLAGSHIP=${FLAGSHIP:-checkpoints/imdb}
if [ "${QUICK:-0}" = 1 ]; then  # every command, on 2,000 sentences and 20 steps: checks the script, not the model
  OUT=${OUT:-runs/quickstart-smoke}; DATA=${DATA:-data/imdb-smoke}
  PREPARE=(--max-sentences 2000 --valid-reviews 20); TRAIN=(--max-steps 20 --eval-every 10)
  EVAL=(--samples 2 --max-sentences 50)
else
  OUT=${OUT:-runs/quickstart}; DATA=${DATA:-data/imdb-quick}
  PREPARE=(--max-sentences 60000); TRAIN=(); EVAL=(--samples 20 --max-sentences 500)
fi
A="the acting was wonderful and the story moved me ."
B="this is the worst movie i have ever seen ."
C="the plot makes no sense at all ."

echo "== 1/2  What a trained model does: $FLAGSHIP"
if [ -d "$FLAGSHIP" ]; then
  echo "-- five sentences sampled from its prior (top-p 0.9):"
  seqvae sample "$FLAGSHIP" -n 5 --strategy top-p --top-p 0.9 --seed 0
  echo "-- three sentences encoded to z and decoded back (posterior mean, greedy):"
  seqvae reconstruct "$FLAGSHIP" "$A" "$B" "$C"
  echo "-- a straight path in z from the first sentence to the second:"
  seqvae interpolate "$FLAGSHIP" "$A" "$B" --steps 6
else
  echo "quickstart: no checkpoint at $FLAGSHIP: skipping its demonstration" \
       "(set FLAGSHIP to a checkpoint dir, e.g. FLAGSHIP=checkpoints/imdb)" >&2
fi

echo "== 2/2  Train your own: a tiny VAE (preset tiny, 1M parameters) on 60,000 IMDB sentences"
echo "   About 5 minutes on a CPU. Expect a latent that is used (KL about 7 nats, MI about 5, all 16 units"
echo "   active) but not readable text: after 1,200 steps, two thirds of a pass over the sentences, the"
echo "   decoder strings review words together (held to the words its training sentences use, by"
echo "   \`seqvae words\`; without that list it also makes up words), and a reconstruction keeps little"
echo "   more than a sentence's length. Fluent text takes the flagship's hours of training (part 1/2 above)."
if [ ! -f "$DATA/meta.json" ]; then
  seqvae prepare --dataset imdb --data-root "$DATA_ROOT" --out "$DATA" --vocab-size 4000 --max-tokens 40 \
    "${PREPARE[@]}"
fi
seqvae train --data "$DATA" --out "$OUT" --preset tiny --overwrite "${TRAIN[@]}"
seqvae evaluate "$OUT" --split test "${EVAL[@]}"
seqvae words "$OUT" --data "$DATA"   # decoding then writes only words its training sentences use 5+ times
echo "-- five samples from your model's prior (top-p 0.9):"
seqvae sample "$OUT" -n 5 --strategy top-p --top-p 0.9 --seed 0
echo "-- the same three sentences through your model:"
seqvae reconstruct "$OUT" "$A" "$B" "$C"
