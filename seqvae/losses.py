"""The training objective: reconstruction + beta * KL, and the schedules for beta.

Schedules (step counts from 0):
  logistic   beta = kl_max / (1 + exp(-k (step - x0)))            Bowman et al. 2016
  linear     beta = kl_max * min(1, step / kl_warmup)
  cyclical   beta = kl_max * min(1, tau / ratio), tau = position in the current cycle in [0, 1)
                                                                   Fu et al. 2019 (M cycles, ratio R)
  constant   beta = kl_max
Free bits live in the reparameterization/KL kernel (seqvae.kernels), which clamps the
batch-mean KL per dimension. Free nats per token (length_free_kl) clamp each sentence's KL from
below at a budget proportional to its length, here.
"""

from __future__ import annotations

import math

import torch

from .config import TrainConfig


def kl_weight(step: int, cfg: TrainConfig) -> float:
    """beta at optimisation step `step` under cfg's schedule."""
    if cfg.kl_schedule == "constant":
        return cfg.kl_max
    if cfg.kl_schedule == "logistic":
        x = -cfg.kl_k * (step - cfg.kl_x0)
        # 1 / (1 + e^x) without overflow for large x
        w = math.exp(-x) / (1.0 + math.exp(-x)) if x > 0 else 1.0 / (1.0 + math.exp(x))
        return cfg.kl_max * w
    if cfg.kl_schedule == "linear":
        return cfg.kl_max * (min(1.0, step / cfg.kl_warmup) if cfg.kl_warmup > 0 else 1.0)  # 0: no warmup
    if cfg.kl_schedule == "cyclical":
        # tau = (step mod period) / period, period = max_steps / kl_cycles, in integers: with a float period
        # (20 / 6 steps) a cycle's first step could come out at tau = 1 - 1e-16, beta = kl_max instead of 0
        tau = (step * cfg.kl_cycles % cfg.max_steps) / cfg.max_steps
        return cfg.kl_max * min(1.0, tau / cfg.kl_ratio)
    raise ValueError(f"unknown kl_schedule {cfg.kl_schedule!r}")


def elbo_loss(rec: torch.Tensor, kl: torch.Tensor, beta: float) -> torch.Tensor:
    """Mean over sentences of rec + beta * KL; rec and kl are (B,) per-sentence sums."""
    return (rec + beta * kl).mean()


def length_free_kl(kl: torch.Tensor, tokens: torch.Tensor, nats_per_token: float) -> torch.Tensor:
    """Each sentence's KL (B,) raised to nats_per_token x its target tokens (B,): a sentence at or below its
    budget adds no KL gradient (as free bits' clamp), so its code may carry that many nats for free, more for a
    longer sentence; above it, the KL's own gradient."""
    if nats_per_token <= 0:
        return kl
    budget = nats_per_token * tokens.to(kl.dtype)
    return torch.where(kl > budget, kl, budget)  # torch.maximum would pass half the gradient at a tie
