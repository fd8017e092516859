"""Plain PyTorch reparameterization + KL: the source of truth for the Triton kernel.

Everything here is ordinary autograd code; the Triton path in
`triton_reparam_kl.py` must reproduce these numbers (forward and gradients).

Notation, per batch row b and latent dimension j:
    σ_bj     = exp(½·logσ²_bj)
    z_bj     = μ_bj + σ_bj·ε_bj,                ε ~ N(0, 1)
    K_bj     = ½·(μ_bj² + σ_bj² − logσ²_bj − 1)   elementwise KL(q‖N(0, 1))
    kl_b     = Σ_j K_bj                           (no free bits)

Free bits (λ > 0, Kingma et al. 2016), clamped per dimension on the batch mean:
    m_j      = mean_b K_bj
    kl_b     = Σ_j (K_bj if m_j > λ else λ)
so that mean_b kl_b = Σ_j max(λ, m_j) and no gradient flows through the
dimensions whose batch-mean KL is at or below λ. When the batch is split over
processes (torchrun), m_j must be the whole batch's: a `free_bits_mean` function
turns this call's m_j over its B rows into it (seqvae.ranks.mean_over_ranks).
"""

from __future__ import annotations

import math
from typing import Callable

import torch

# f(m, B) → m': this call's per-dimension batch-mean KL m (Z,) over its B rows, to the mean that free bits
# decide on (under torchrun: over every process's rows, seqvae.ranks.mean_over_ranks). None: m itself.
FreeBitsMean = Callable[[torch.Tensor, int], torch.Tensor]

SUPPORTED_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
# The reference alone also takes float64, and computes in it: finite-difference checks of its gradients.
REFERENCE_DTYPES = SUPPORTED_DTYPES + (torch.float64,)


def check_inputs(mu: torch.Tensor, logvar: torch.Tensor, free_bits: float = 0.0, seed: int | None = None,
                 dtypes: tuple[torch.dtype, ...] = SUPPORTED_DTYPES) -> None:
    """Raise ValueError (one line) unless mu/logvar are a valid (B, Z) pair of one of `dtypes`."""
    if not isinstance(mu, torch.Tensor) or not isinstance(logvar, torch.Tensor):
        raise ValueError("mu and logvar must be torch tensors")
    if mu.dim() != 2:
        raise ValueError(f"mu must have shape (B, Z), got {tuple(mu.shape)}")
    if mu.shape != logvar.shape:
        raise ValueError(f"mu and logvar shapes differ: {tuple(mu.shape)} vs {tuple(logvar.shape)}")
    if mu.shape[0] < 1 or mu.shape[1] < 1:
        raise ValueError(f"mu must have B >= 1 and Z >= 1, got {tuple(mu.shape)}")
    if mu.dtype not in dtypes:
        names = ", ".join(str(d).removeprefix("torch.") for d in dtypes)
        raise ValueError(f"dtype must be one of {names}; got {mu.dtype}")
    if mu.dtype != logvar.dtype:
        raise ValueError(f"mu and logvar dtypes differ: {mu.dtype} vs {logvar.dtype}")
    if mu.device != logvar.device:
        raise ValueError(f"mu and logvar devices differ: {mu.device} vs {logvar.device}")
    if isinstance(free_bits, bool) or not (isinstance(free_bits, (int, float)) and math.isfinite(free_bits)
                                           and free_bits >= 0):
        raise ValueError(f"free_bits must be a finite number >= 0, got {free_bits!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63):
        raise ValueError(f"seed must be None or an int in [0, 2**63), got {seed!r}")


def compute_dtype(t: torch.Tensor) -> torch.dtype:
    """The dtype the reference computes in: fp32, or fp64 for fp64 inputs."""
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def elementwise_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """K_bj = ½(μ² + exp(logσ²) − logσ² − 1), computed in fp32 (fp64 inputs: fp64). Returns (B, Z)."""
    mu, logvar = mu.to(compute_dtype(mu)), logvar.to(compute_dtype(mu))
    return 0.5 * (mu * mu + logvar.exp() - logvar - 1.0)  # (B, Z)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Per-row KL(N(μ, σ²) ‖ N(0, I)) without free bits. Returns (B,) fp32 (fp64 for fp64), differentiable."""
    return elementwise_kl(mu, logvar).sum(dim=1)  # (B,)


def free_bits_mask(k: torch.Tensor, free_bits: float, free_bits_mean: FreeBitsMean | None = None) -> torch.Tensor:
    """Dimensions whose batch-mean KL exceeds λ: (Z,) bool, from the elementwise KL k (B, Z)."""
    m = k.detach().mean(dim=0)  # (Z,)
    if free_bits_mean is not None:
        m = free_bits_mean(m, k.shape[0])
    return m > free_bits


def draw_eps(mu: torch.Tensor, seed: int | None) -> torch.Tensor:
    """ε ~ N(0, 1) in fp32 (fp64 for fp64 mu) with mu's shape: torch's global RNG if seed is None, else a
    seeded Generator."""
    if seed is None:
        return torch.randn_like(mu, dtype=compute_dtype(mu))
    gen = torch.Generator(device=mu.device).manual_seed(seed)
    return torch.randn(mu.shape, generator=gen, device=mu.device, dtype=compute_dtype(mu))


def reparameterize_kl(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    *,
    eps: torch.Tensor | None = None,
    seed: int | None = None,
    free_bits: float = 0.0,
    sample: bool = True,
    free_bits_mean: FreeBitsMean | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference reparameterization + per-row KL.

    mu, logvar: (B, Z), fp32/bf16/fp16 (or fp64, computed in fp64: gradient checks), any strides.
    eps: optional (B, Z) noise to use instead of drawing (tests feed the Triton kernel's ε here).
    seed: None → torch's global RNG; int → a torch.Generator seeded with it on mu's device.
    free_bits: λ ≥ 0 nats per dimension on the batch-mean KL (0 = off), see module docstring.
    free_bits_mean: None, or f(m, B) that turns this batch's mean into the one λ is compared with (FreeBitsMean).
    sample: False → z = μ (a copy), KL still computed.
    Returns z (B, Z) in mu's dtype and kl (B,) fp32 (fp64 for fp64).
    """
    check_inputs(mu, logvar, free_bits, seed, REFERENCE_DTYPES)
    # One upcast of each input, used by every term: autograd then sums the z and KL paths' gradients in fp32 and
    # rounds once to the input dtype, as the Triton backward does. (Two upcasts of a bf16/fp16 input gave two
    # gradients rounded to bf16/fp16 and summed there: an fp16 term past 65504 gave inf + -inf = NaN.)
    ct = compute_dtype(mu)
    mu_c, logvar_c = mu.to(ct), logvar.to(ct)  # (B, Z) each; the inputs themselves when fp32 (fp64)
    k = elementwise_kl(mu_c, logvar_c)  # (B, Z) fp32 (fp64)
    if free_bits > 0:
        keep = free_bits_mask(k, free_bits, free_bits_mean)  # (Z,)
        k = torch.where(keep, k, torch.full_like(k, float(free_bits)))
    kl = k.sum(dim=1)  # (B,)

    if not sample:
        return mu_c.clone().to(mu.dtype), kl  # a copy of μ
    if eps is None:
        eps = draw_eps(mu, seed)
    elif eps.shape != mu.shape:
        raise ValueError(f"eps shape {tuple(eps.shape)} does not match mu {tuple(mu.shape)}")
    std = torch.exp(0.5 * logvar_c)  # (B, Z)
    z = mu_c + std * eps.to(device=mu.device, dtype=ct)  # (B, Z) fp32 (fp64)
    return z.to(mu.dtype), kl
