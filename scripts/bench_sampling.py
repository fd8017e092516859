"""Batched prior-sampling throughput (sentences per second) at max_len 40, for batch 1, 64 and 1024.

    python scripts/bench_sampling.py runs/ptb-vae --strategies sample greedy top-p
    python scripts/bench_sampling.py --random small --vocab 8000     # untrained model of a preset's size

Each (strategy, batch size) gets one warm-up call, then --repeats timed rounds; a round calls
`SeqVAE.sample(batch)` (z from the checkpoint's aggregate prior if it has one, else N(0, I; the
header says which), decode, detokenize; token ids only with --random, which has no tokenizer) enough times to make at least --min-sentences sentences. The table reports the
median round. An untrained (--random) model rarely emits EOS, so every sentence runs the full
max_len: a worst case; a trained model stops rows early and finished rows leave the batch.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from seqvae.api import SeqVAE
from seqvae.reporting import reporting_errors
from seqvae.config import ConfigError, ModelConfig, preset, resolve_device
from seqvae.model import SentenceVAE


def bench(vae: SeqVAE, strategy_opts: dict, batch: int, *, max_len: int, repeats: int,
          min_sentences: int) -> dict:
    run = vae.sample if vae.tokenizer is not None else vae.sample_ids
    calls = max(1, -(-min_sentences // batch))
    run(batch, seed=0, max_len=max_len, **strategy_opts)  # warm-up
    rates, lengths = [], []
    for r in range(repeats):
        t0 = time.perf_counter()
        for c in range(calls):
            out = run(batch, seed=1 + r * calls + c, max_len=max_len, **strategy_opts)
        dt = time.perf_counter() - t0
        rates.append(calls * batch / dt)
        lengths.append(sum(len(s.split()) if isinstance(s, str) else len(s) for s in out) / len(out))
    rate = statistics.median(rates)
    return {"sent_per_s": rate, "ms_per_call": 1000 * batch / rate, "mean_len": statistics.mean(lengths)}


STRATEGY_OPTS = {
    "greedy": {"strategy": "greedy"},
    "sample": {"strategy": "sample"},
    "top-k": {"strategy": "top-k", "top_k": 40},
    "top-p": {"strategy": "top-p", "top_p": 0.9},
    "beam": {"strategy": "beam", "num_beams": 4},
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", nargs="?", help="checkpoint dir or run dir (or use --random)")
    p.add_argument("--random", metavar="PRESET", help="benchmark an untrained model of a preset's size instead")
    p.add_argument("--vocab", type=int, default=8000, help="vocabulary size for --random (default 8000)")
    p.add_argument("--strategies", nargs="+", default=["sample"], choices=list(STRATEGY_OPTS))
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 64, 1024])
    p.add_argument("--max-len", type=int, default=40)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--min-sentences", type=int, default=64, help="sentences per timed round at least")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--words", choices=["known", "any"], default=None,
                   help="decode held to the checkpoint's word list or not (default: held if it has one)")
    args = p.parse_args(argv)
    if bool(args.checkpoint) == bool(args.random):
        p.error("give a CHECKPOINT or --random PRESET, not both")
    return reporting_errors("bench_sampling", lambda: bench_all(args))


def bench_all(args) -> int:
    if min(args.batch_sizes + [args.max_len, args.repeats, args.min_sentences, args.vocab]) < 1 or args.threads < 0:
        raise ConfigError("--batch-sizes, --max-len, --repeats, --min-sentences and --vocab must be >= 1, "
                          "--threads >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    args.device = str(resolve_device(args.device))
    if args.random:
        cfg = preset(args.random).model.replace(vocab_size=args.vocab)
        torch.manual_seed(0)
        vae = SeqVAE(SentenceVAE(cfg).to(args.device), tokenizer=None)
        what = f"untrained '{args.random}' model, vocab {args.vocab} (token ids, no detokenization)"
    else:
        vae = SeqVAE.from_pretrained(args.checkpoint, device=args.device)
        what = args.checkpoint
    c: ModelConfig = vae.model.cfg
    words = vae.words_option(args.words)
    print(f"{what}: E={c.embed_dim} H={c.hidden_dim} Z={c.latent_dim} V={c.vocab_size} layers={c.num_layers}, "
          f"{vae.model.num_parameters():,} params; device {args.device}, {torch.get_num_threads()} threads, "
          f"max_len {args.max_len}, {words} words, z from {'the aggregate prior' if vae.prior is not None else 'N(0, I)'}, "
          f"median of {args.repeats}")
    unit = "tokens" if vae.tokenizer is None else "words"
    print(f"{'strategy':<8} {'batch':>6} {'sent/s':>10} {'ms/call':>10} {'mean len (' + unit + ')':>18}")
    for name in args.strategies:
        for b in args.batch_sizes:
            r = bench(vae, {**STRATEGY_OPTS[name], "words": words}, b, max_len=args.max_len, repeats=args.repeats,
                      min_sentences=args.min_sentences)
            print(f"{name:<8} {b:>6} {r['sent_per_s']:>10.1f} {r['ms_per_call']:>10.1f} {r['mean_len']:>18.1f}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
