"""Reparameterization + KL for the sentence VAE's Gaussian posterior.

    z, kl = reparameterize_kl(mu, logvar)          # z (B, Z) in mu's dtype, kl (B,) fp32

Two implementations of the same formulas (see reference.py for the maths):
  * "torch":  plain PyTorch (reference.py), the source of truth; runs anywhere.
  * "triton": one fused kernel pass that draws ε in-kernel with Philox and
              regenerates it in the backward instead of storing it
              (triton_reparam_kl.py). Needs CUDA tensors, or CPU tensors with
              TRITON_INTERPRET=1 set before triton is imported (tests do that).
backend="auto" picks Triton for CUDA tensors when triton imports, the reference otherwise.

The Triton module is imported lazily, on first use, so that `import seqvae`
never pays for `import triton` and the interpreter switch can still be set.
"""

from __future__ import annotations

import importlib

import torch

from seqvae.kernels import reference
from seqvae.kernels.reference import FreeBitsMean, check_inputs, gaussian_kl

__all__ = ["reparameterize_kl", "gaussian_kl", "BACKENDS", "FreeBitsMean"]

BACKENDS = ("auto", "triton", "torch")
_TRITON_MODULE = "seqvae.kernels.triton_reparam_kl"


def _load_triton():
    """The Triton implementation module, or the ImportError that stopped it (triton missing, ...)."""
    try:
        return importlib.import_module(_TRITON_MODULE)
    except ImportError as e:
        return e


def _pick_backend(backend: str, device: torch.device) -> str:
    """Resolve "auto" to "triton" or "torch" for tensors on `device`; reject unknown names."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    if backend != "auto":
        return backend
    if device.type == "cuda" and not isinstance(_load_triton(), ImportError):
        return "triton"
    return "torch"


def reparameterize_kl(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    *,
    seed: int | None = None,
    free_bits: float = 0.0,
    sample: bool = True,
    backend: str = "auto",
    free_bits_mean: FreeBitsMean | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """z = μ + exp(½·logσ²)·ε and per-row KL(N(μ, σ²) ‖ N(0, I)), with optional free bits.

    mu, logvar: (B, Z), fp32/bf16/fp16, same dtype and device, any strides.
    seed: None → drawn from torch's RNG (reproducible under torch.manual_seed);
          int → deterministic noise. The same seed gives different ε on the two
          backends (Philox in Triton, torch.Generator in the reference).
    free_bits: λ ≥ 0 nats per dimension, clamped on the batch-mean KL: kl_b = Σ_j (K_bj if
          mean_b K_bj > λ else λ), so mean_b kl_b = Σ_j max(λ, m_j); 0 turns it off.
    free_bits_mean: None (m_j over this call's rows), or f(m (Z,), B) → the m_j that λ is compared with: under
          torchrun seqvae.ranks.mean_over_ranks, so that every process decides on the whole batch.
    sample: False → z = μ (eval / posterior mean); kl is still returned.
    backend: "auto" | "triton" | "torch".
    Returns z (B, Z) in mu's dtype and kl (B,) fp32; both differentiable w.r.t. mu and logvar.
    """
    check_inputs(mu, logvar, free_bits, seed)
    if free_bits_mean is not None and not callable(free_bits_mean):
        raise ValueError(f"free_bits_mean must be None or a function (m, B) -> m, got {free_bits_mean!r}")
    backend = _pick_backend(backend, mu.device)
    if backend == "torch":
        return reference.reparameterize_kl(mu, logvar, seed=seed, free_bits=free_bits, sample=sample,
                                           free_bits_mean=free_bits_mean)
    mod = _load_triton()
    if isinstance(mod, ImportError):
        raise RuntimeError(f"backend='triton' needs the triton package, which failed to import: {mod}")
    return mod.reparameterize_kl(mu, logvar, seed=seed, free_bits=free_bits, sample=sample,
                                 free_bits_mean=free_bits_mean)
