"""The training objective: reconstruction + beta * KL, and the schedules for beta.

Schedules (step counts from 0):
  logistic   beta = kl_max / (1 + exp(-k (step - x0)))            Bowman et al. 2016
  linear     beta = kl_max * min(1, step / kl_warmup)
  cyclical   beta = kl_max * min(1, tau / ratio), tau = position in the current cycle in [0, 1)
                                                                   Fu et al. 2019 (M cycles, ratio R)
  constant   beta = kl_max
Free bits live in the reparameterization/KL kernel (seqvae.kernels), which clamps the
batch-mean KL per dimension; the loss here just weighs whatever KL it is given.
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
        return cfg.kl_max * min(1.0, step / max(1, cfg.kl_warmup))
    if cfg.kl_schedule == "cyclical":
        period = cfg.max_steps / cfg.kl_cycles
        tau = (step % period) / period
        return cfg.kl_max * min(1.0, tau / cfg.kl_ratio)
    raise ValueError(f"unknown kl_schedule {cfg.kl_schedule!r}")


def elbo_loss(rec: torch.Tensor, kl: torch.Tensor, beta: float) -> torch.Tensor:
    """Mean over sentences of rec + beta * KL; rec and kl are (B,) per-sentence sums."""
    return (rec + beta * kl).mean()
