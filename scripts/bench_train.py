"""Training throughput, side by side in one run: seqvae's training step vs an eager padded loop.

The padded loop is written here to behave like the peer toolkit (timbmg/Sentence-VAE): random
(unbucketed) batches padded to their longest sentence, logits and log-softmax over every
position including padding, and a `.item()` host sync every step. Both loops train the same
SentenceVAE (same size, same optimizer, same word dropout and KL schedule); only the loop differs.

    python scripts/bench_train.py --data data/ptb --steps 40
    python scripts/bench_train.py --data data/ptb --device cuda --bf16 --torch-kl   # on a GPU

Reports target tokens per second (words + EOS, padding excluded) for each loop and their ratio.
Loops alternate in rounds (seqvae, padded, [variants], seqvae, ...) so that machine noise hits all.
Variants of seqvae's loop (its default is fp32 on either device): --bf16 (bf16 autocast: the
config's cpu_bf16 on CPU, amp on CUDA), --adaptive (the adaptive softmax with bf16 autocast), --torch-kl (the plain PyTorch reparameterization + KL
instead of the Triton kernel, which the model picks for CUDA tensors).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

from seqvae import atomic
from seqvae.reporting import reporting_errors
from seqvae.config import ConfigError, ModelConfig, RunConfig, TrainConfig
from seqvae.data import collate, word_dropout
from seqvae.losses import kl_weight
from seqvae.train import Trainer


def padded_step(trainer: Trainer, idx: np.ndarray, step: int) -> float:
    """One peer-style step: full logits over padded positions, loss.item() every step."""
    model, tc, mc = trainer.model, trainer.cfg.train, trainer.cfg.model
    batch = collate([trainer.train_set[i] for i in idx]).to(trainer.device)
    dec_in = word_dropout(batch.dec_in, tc.word_dropout, unk_id=mc.unk_id)
    mu, logvar = model.encode(batch.src, batch.src_lens)
    std = torch.exp(0.5 * logvar)
    z = mu + std * torch.randn_like(std)
    hidden, _ = model.decoder(dec_in, z)  # (B, T, H)
    logp = F.log_softmax(model.decoder.logits(hidden), dim=-1)  # (B, T, V): padding included
    nll = F.nll_loss(logp.view(-1, logp.shape[-1]), batch.target.view(-1), ignore_index=mc.pad_id, reduction="sum")
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    loss = (nll + kl_weight(step, tc) * kl) / batch.size
    trainer.optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
    trainer.optimizer.step()
    return loss.item()  # the per-step sync


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="prepared data dir (e.g. data/ptb)")
    ap.add_argument("--steps", type=int, default=40, help="timed steps per loop per round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=10, help="untimed steps per loop first (JIT, cuDNN plans)")
    ap.add_argument("--embed-dim", type=int, default=256)
    ap.add_argument("--hidden-dim", type=int, default=512)
    ap.add_argument("--latent-dim", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--device", default=None)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--bf16", action="store_true", help="also time seqvae's loop with bf16 autocast (CPU: AMX; CUDA: amp)")
    ap.add_argument("--adaptive", action="store_true",
                    help="also time seqvae's loop with the adaptive softmax (model.softmax='adaptive') and bf16 autocast")
    ap.add_argument("--torch-kl", action="store_true",
                    help="also time seqvae's loop with the PyTorch reparameterization + KL instead of the Triton kernel")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)
    return reporting_errors("bench_train", lambda: bench(args))


def bench(args) -> int:
    if min(args.steps, args.rounds, args.embed_dim, args.hidden_dim, args.latent_dim, args.batch_size) < 1 \
            or args.warmup < 0 or args.threads < 0:
        raise ConfigError("--steps, --rounds and the sizes must be >= 1, --warmup and --threads >= 0")
    if args.json:
        atomic.check_file_path(args.json)
    if args.threads:
        torch.set_num_threads(args.threads)

    cfg = RunConfig(model=ModelConfig(embed_dim=args.embed_dim, hidden_dim=args.hidden_dim, latent_dim=args.latent_dim),
                    train=TrainConfig(batch_size=args.batch_size, word_dropout=0.25, max_steps=10**9))
    variants = {"seqvae": cfg, "padded": cfg}
    if args.bf16:
        variants["seqvae-bf16"] = RunConfig(model=cfg.model, train=cfg.train.replace(cpu_bf16=True, amp=True))
    if args.adaptive:
        variants["seqvae-adaptive-bf16"] = RunConfig(model=cfg.model.replace(softmax="adaptive"),
                                                     train=cfg.train.replace(cpu_bf16=True, amp=True))
    if args.torch_kl:
        variants["seqvae-torch-kl"] = cfg
    with tempfile.TemporaryDirectory() as tmp:
        loops = {name: Trainer(c, args.data, f"{tmp}/{i}", device=args.device, progress=False)
                 for i, (name, c) in enumerate(variants.items())}
    if args.torch_kl:
        loops["seqvae-torch-kl"].model.kl_backend = "torch"
    device = loops["seqvae"].device
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    train_set = loops["padded"].train_set
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(train_set))
    random_batches = [perm[i : i + args.batch_size] for i in range(0, len(perm), args.batch_size)]
    need = args.warmup + args.steps * args.rounds
    if need > min(len(random_batches), len(loops["seqvae"].sampler)):
        raise ConfigError(f"{args.data}: one epoch has {len(random_batches)} batches of {args.batch_size}; "
                          f"--warmup + --steps x --rounds asks for {need}")

    def run(name: str, batches) -> tuple[int, float]:
        tr = loops[name]
        sync()
        t, tok = time.perf_counter(), 0
        for idx in batches:
            if name == "padded":
                padded_step(tr, idx, tr.step)
                tr.step += 1
                tok += int(train_set.lengths[idx].sum()) + len(idx)
            else:
                tok += tr.train_step(idx)[1]
        sync()
        return tok, time.perf_counter() - t

    # seqvae loops draw length-bucketed batches (as in training); the padded loop draws random ones
    batches = {name: (random_batches if name == "padded" else tr.sampler.batches(0)) for name, tr in loops.items()}
    for tr in loops.values():
        tr.model.train()
    for name in loops:
        run(name, batches[name][: args.warmup])
    totals = {name: [0, 0.0] for name in loops}
    rates: dict[str, list[float]] = {name: [] for name in loops}  # per round, for the paired ratios
    pos = args.warmup
    for r in range(args.rounds):
        sl = slice(pos, pos + args.steps)
        pos += args.steps
        for name in loops:
            tok, dt = run(name, batches[name][sl])
            totals[name][0] += tok
            totals[name][1] += dt
            rates[name].append(tok / dt)
            print(f"round {r} {name:>16}: {tok / dt:8.0f} target tokens/s ({tok} tokens in {dt:.1f}s)", flush=True)
    res: dict = {name: v[0] / v[1] for name, v in totals.items()}
    # ratio over all timed steps, and the median / range of the per-round ratios (each round's loops ran
    # back to back, so a slow spell of the machine or a one-off stall shows up as a spread here)
    paired = {name: sorted(a / b for a, b in zip(rates[name], rates["padded"])) for name in loops}
    for name in loops:
        if name != "padded":
            res[f"ratio_{name}"] = res[name] / res["padded"]
            res[f"round_ratios_{name}"] = paired[name]
    res.update({"device": str(device), "threads": torch.get_num_threads(), "embed_dim": args.embed_dim,
                "hidden_dim": args.hidden_dim, "latent_dim": args.latent_dim, "batch_size": args.batch_size,
                "vocab_size": loops["seqvae"].cfg.model.vocab_size, "steps_per_loop": args.steps * args.rounds})
    print(f"\n{device}, {res['threads']} threads, E{args.embed_dim}/H{args.hidden_dim}/Z{args.latent_dim}/B{args.batch_size}, "
          f"V{res['vocab_size']}, {args.steps * args.rounds} timed steps per loop")
    print(f"{'loop':>16} {'tokens/s':>10} {'vs padded':>10} {'per round: median [min, max]':>30}")
    for name in loops:
        p = paired[name]
        print(f"{name:>16} {res[name]:10.0f} {res[name] / res['padded']:9.2f}x "
              f"{statistics.median(p):17.2f}x [{p[0]:.2f}, {p[-1]:.2f}]")
    if args.json:
        atomic.write_json(args.json, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
