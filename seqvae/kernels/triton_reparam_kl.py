"""Fused reparameterization + KL in Triton: kernels → launchers → autograd.Function → entry point.

Forward, one pass over memory (plus a column pre-pass when free bits are on):
    z_bj  = μ_bj + exp(½·logσ²_bj)·ε_bj
    kl_b  = Σ_j K_bj,  K_bj = ½(μ_bj² + exp(logσ²_bj) − logσ²_bj − 1)
          (free bits λ > 0: K_bj is replaced by λ in dimensions whose batch mean m_j ≤ λ; m_j over
          every process's rows when a free_bits_mean function is given, as in the reference)

ε is never stored: it is Philox noise `tl.randn(seed, b·Z + j)`, keyed by the
element's flat row-major index, so it does not depend on strides or block
sizes. The backward regenerates it from the same (seed, offset):
    dμ_bj      = dz_bj + dkl_b·μ_bj·mask_j
    dlogσ²_bj  = dz_bj·½·σ_bj·ε_bj + dkl_b·½(exp(logσ²_bj) − 1)·mask_j
(mask_j = 1 when free bits are off; the ε term is absent when sample=False).

All arithmetic is fp32; z and the input gradients are stored in the input dtype.

On CPU this module runs under Triton's interpreter, which must be switched on
with TRITON_INTERPRET=1 *before* triton is first imported in the process.
"""

from __future__ import annotations

import contextlib

import torch
import triton
import triton.language as tl

# True when triton (and therefore tl.randn, and our kernels) was set up for the CPU interpreter.
try:
    from triton.runtime.interpreter import InterpretedFunction as _InterpretedFunction
except ImportError:  # pragma: no cover - very old/new triton layouts
    _InterpretedFunction = ()

# Tiles hold about this many elements; BLOCK_Z is capped so wide latents loop over Z.
_TILE_ELEMS = 4096
_MAX_BLOCK_Z = 256
_MIN_BLOCK_Z = 16
# The free-bits column pre-pass sums this many row tiles per program.
_COL_TILES_PER_PROG = 8


# --------------------------------------------------------------------------- kernels
# `seed` changes from call to call: do_not_specialize keeps Triton from
# compiling separate variants for seed == 1 or seeds divisible by 16.


@triton.jit
def _eps(seed, offs):
    """Philox N(0, 1) noise for flat element offsets (int64). The one place ε is defined."""
    return tl.randn(seed, offs)


@triton.jit(do_not_specialize=["seed", "B"])
def _randn_kernel(out_ptr, seed, B, Z, BLOCK_B: tl.constexpr, BLOCK_Z: tl.constexpr):
    """Debug kernel: writes the ε the forward/backward kernels use, as a (B, Z) fp32 array."""
    pid_b = tl.program_id(0)
    pid_z = tl.program_id(1)
    rows = pid_b * BLOCK_B + tl.arange(0, BLOCK_B)  # (BLOCK_B,)
    cols = pid_z * BLOCK_Z + tl.arange(0, BLOCK_Z)  # (BLOCK_Z,)
    ok = (rows < B)[:, None] & (cols < Z)[None, :]  # (BLOCK_B, BLOCK_Z)
    offs = rows.to(tl.int64)[:, None] * Z + cols[None, :]  # flat row-major index b*Z + j
    tl.store(out_ptr + offs, _eps(seed, offs), mask=ok)


@triton.jit(do_not_specialize=["B"])
def _col_kl_partial_kernel(
    mu_ptr, logvar_ptr, partial_ptr, B, Z,
    ROWS_PER_PROG: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_Z: tl.constexpr,
):
    """Free-bits pre-pass: partial[p, j] = Σ_{b in row chunk p} K_bj. Summed over p by the launcher."""
    pid_b = tl.program_id(0)
    pid_z = tl.program_id(1)
    cols = pid_z * BLOCK_Z + tl.arange(0, BLOCK_Z)  # (BLOCK_Z,)
    col_ok = cols < Z
    acc = tl.zeros((BLOCK_Z,), dtype=tl.float32)
    for r0 in range(0, ROWS_PER_PROG, BLOCK_B):
        rows = pid_b * ROWS_PER_PROG + r0 + tl.arange(0, BLOCK_B)  # (BLOCK_B,)
        ok = (rows < B)[:, None] & col_ok[None, :]  # (BLOCK_B, BLOCK_Z)
        offs = rows.to(tl.int64)[:, None] * Z + cols[None, :]
        mu = tl.load(mu_ptr + offs, mask=ok, other=0.0).to(tl.float32)
        lv = tl.load(logvar_ptr + offs, mask=ok, other=0.0).to(tl.float32)
        k = 0.5 * (mu * mu + tl.exp(lv) - lv - 1.0)
        acc += tl.sum(tl.where(ok, k, 0.0), axis=0)
    tl.store(partial_ptr + pid_b * Z + cols, acc, mask=col_ok)


@triton.jit(do_not_specialize=["seed", "B"])
def _fwd_kernel(
    mu_ptr, logvar_ptr, keep_ptr, z_ptr, kl_ptr, seed, B, Z, free_bits,
    SAMPLE: tl.constexpr, FREE_BITS: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_Z: tl.constexpr,
):
    """One program = BLOCK_B rows; loops over Z in BLOCK_Z steps, writing z and the row KL."""
    pid = tl.program_id(0)
    rows = pid * BLOCK_B + tl.arange(0, BLOCK_B)  # (BLOCK_B,)
    row_ok = rows < B
    row_start = rows.to(tl.int64)[:, None] * Z  # (BLOCK_B, 1) flat index of each row's first element
    kl_acc = tl.zeros((BLOCK_B,), dtype=tl.float32)
    for z0 in range(0, Z, BLOCK_Z):
        cols = z0 + tl.arange(0, BLOCK_Z)  # (BLOCK_Z,)
        col_ok = cols < Z
        ok = row_ok[:, None] & col_ok[None, :]  # (BLOCK_B, BLOCK_Z)
        offs = row_start + cols[None, :]  # (BLOCK_B, BLOCK_Z)
        mu = tl.load(mu_ptr + offs, mask=ok, other=0.0).to(tl.float32)
        lv = tl.load(logvar_ptr + offs, mask=ok, other=0.0).to(tl.float32)
        std = tl.exp(0.5 * lv)
        k = 0.5 * (mu * mu + std * std - lv - 1.0)  # (BLOCK_B, BLOCK_Z) elementwise KL
        if FREE_BITS:
            keep = tl.load(keep_ptr + cols, mask=col_ok, other=0.0)  # (BLOCK_Z,) 1.0 where m_j > λ
            k = tl.where(keep[None, :] != 0.0, k, free_bits)
        kl_acc += tl.sum(tl.where(ok, k, 0.0), axis=1)
        if SAMPLE:
            z = mu + std * _eps(seed, offs)
        else:
            z = mu
        tl.store(z_ptr + offs, z.to(z_ptr.dtype.element_ty), mask=ok)
    tl.store(kl_ptr + rows, kl_acc, mask=row_ok)


@triton.jit(do_not_specialize=["seed", "B"])
def _bwd_kernel(
    mu_ptr, logvar_ptr, keep_ptr, dz_ptr, dkl_ptr, dmu_ptr, dlogvar_ptr, seed, B, Z,
    SAMPLE: tl.constexpr, FREE_BITS: tl.constexpr, HAS_DZ: tl.constexpr, HAS_DKL: tl.constexpr,
    BLOCK_B: tl.constexpr, BLOCK_Z: tl.constexpr,
):
    """dμ, dlogσ² from dz (B, Z) and dkl (B,), regenerating ε from (seed, offsets)."""
    pid = tl.program_id(0)
    rows = pid * BLOCK_B + tl.arange(0, BLOCK_B)  # (BLOCK_B,)
    row_ok = rows < B
    row_start = rows.to(tl.int64)[:, None] * Z  # (BLOCK_B, 1)
    if HAS_DKL:
        dkl = tl.load(dkl_ptr + rows, mask=row_ok, other=0.0).to(tl.float32)[:, None]  # (BLOCK_B, 1)
    for z0 in range(0, Z, BLOCK_Z):
        cols = z0 + tl.arange(0, BLOCK_Z)  # (BLOCK_Z,)
        col_ok = cols < Z
        ok = row_ok[:, None] & col_ok[None, :]  # (BLOCK_B, BLOCK_Z)
        offs = row_start + cols[None, :]
        mu = tl.load(mu_ptr + offs, mask=ok, other=0.0).to(tl.float32)
        lv = tl.load(logvar_ptr + offs, mask=ok, other=0.0).to(tl.float32)
        std = tl.exp(0.5 * lv)
        dmu = tl.zeros((BLOCK_B, BLOCK_Z), dtype=tl.float32)
        dlv = tl.zeros((BLOCK_B, BLOCK_Z), dtype=tl.float32)
        if HAS_DZ:
            dz = tl.load(dz_ptr + offs, mask=ok, other=0.0).to(tl.float32)
            dmu += dz
            if SAMPLE:
                dlv += dz * 0.5 * std * _eps(seed, offs)
        if HAS_DKL:
            g = dkl  # (BLOCK_B, 1)
            if FREE_BITS:
                keep = tl.load(keep_ptr + cols, mask=col_ok, other=0.0)  # (BLOCK_Z,)
                g = g * keep[None, :]
            dmu += g * mu
            dlv += g * 0.5 * (std * std - 1.0)
        tl.store(dmu_ptr + offs, dmu.to(dmu_ptr.dtype.element_ty), mask=ok)
        tl.store(dlogvar_ptr + offs, dlv.to(dlogvar_ptr.dtype.element_ty), mask=ok)


# --------------------------------------------------------------------------- launchers


def interpreted() -> bool:
    """True when triton runs in the CPU interpreter (TRITON_INTERPRET=1 was set before triton's import)."""
    return isinstance(tl.randn, _InterpretedFunction) and isinstance(_fwd_kernel, _InterpretedFunction)


def check_device(t: torch.Tensor) -> None:
    """Raise a one-line RuntimeError if these Triton kernels cannot run on t's device in this process."""
    ours, theirs = isinstance(_fwd_kernel, _InterpretedFunction), isinstance(tl.randn, _InterpretedFunction)
    if ours != theirs:
        raise RuntimeError(
            "triton was imported before TRITON_INTERPRET was changed; set TRITON_INTERPRET=1 before the first `import triton`"
        )
    if t.device.type == "cpu" and not ours:
        raise RuntimeError(
            "backend='triton' on CPU tensors needs TRITON_INTERPRET=1 set before triton is imported (or use CUDA tensors)"
        )


def on_device(t: torch.Tensor):
    """Context in which a launch runs on t's device.

    Triton launches on the *current* CUDA device, not the tensors' one: without this, tensors on
    cuda:1 (`--device cuda:1`) met a launch on cuda:0 ("Pointer argument cannot be accessed from
    Triton") or ran on cuda:0's stream, unordered with cuda:1's work."""
    return torch.cuda.device(t.device) if t.device.type == "cuda" else contextlib.nullcontext()


def _block_sizes(Z: int) -> tuple[int, int, int]:
    """(BLOCK_B, BLOCK_Z, num_warps) for (B, Z) problems: ~_TILE_ELEMS elements per tile.

    They depend on Z alone (rows past B are masked), and B is not specialised on
    (do_not_specialize), so a training run compiles each kernel once however its batch sizes vary;
    otherwise a batch of a new size stalls its step for a JIT compile (the likely cause of 1-2 s
    stalls seen in the GPU training benchmark before this).
    """
    block_z = min(max(triton.next_power_of_2(Z), _MIN_BLOCK_Z), _MAX_BLOCK_Z)
    block_b = max(1, _TILE_ELEMS // block_z)
    num_warps = 8 if block_b * block_z >= 4096 else 4
    return block_b, block_z, num_warps


def philox_randn(seed: int, B: int, Z: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The ε (B, Z) fp32 that the kernels use for this seed: for tests and debugging."""
    out = torch.empty((B, Z), device=device, dtype=torch.float32)
    check_device(out)
    block_b, block_z = 128, 32  # deliberately not the forward's blocking: ε must not depend on it
    grid = (triton.cdiv(B, block_b), triton.cdiv(Z, block_z))
    with on_device(out):
        _randn_kernel[grid](out, seed, B, Z, BLOCK_B=block_b, BLOCK_Z=block_z)
    return out


def free_bits_keep(mu: torch.Tensor, logvar: torch.Tensor, free_bits: float, free_bits_mean=None) -> torch.Tensor:
    """(Z,) fp32: 1.0 where the batch-mean KL m_j > λ, else 0.0. mu, logvar contiguous (B, Z).
    free_bits_mean: None, or f(m, B) → the mean λ is compared with, as in the reference (FreeBitsMean)."""
    B, Z = mu.shape
    block_b, block_z, num_warps = _block_sizes(Z)
    rows_per_prog = block_b * _COL_TILES_PER_PROG
    n_row_progs = triton.cdiv(B, rows_per_prog)
    partial = torch.empty((n_row_progs, Z), device=mu.device, dtype=torch.float32)  # (P, Z)
    grid = (n_row_progs, triton.cdiv(Z, block_z))
    with on_device(mu):
        _col_kl_partial_kernel[grid](
            mu, logvar, partial, B, Z,
            ROWS_PER_PROG=rows_per_prog, BLOCK_B=block_b, BLOCK_Z=block_z, num_warps=num_warps,
        )
    col_mean = partial.sum(dim=0) / B  # (Z,)
    if free_bits_mean is not None:
        col_mean = free_bits_mean(col_mean, B)
    return (col_mean > free_bits).to(torch.float32)


def reparam_kl_forward(mu, logvar, seed: int, free_bits: float, sample: bool, free_bits_mean=None):
    """Launch the forward. mu, logvar contiguous (B, Z). Returns z (B, Z), kl (B,) fp32, keep (Z,) or None."""
    B, Z = mu.shape
    block_b, block_z, num_warps = _block_sizes(Z)
    z = torch.empty_like(mu)  # (B, Z) input dtype
    kl = torch.empty(B, device=mu.device, dtype=torch.float32)  # (B,)
    keep = free_bits_keep(mu, logvar, free_bits, free_bits_mean) if free_bits > 0 else None
    with on_device(mu):
        _fwd_kernel[(triton.cdiv(B, block_b),)](
            mu, logvar, keep if keep is not None else kl, z, kl, seed, B, Z, float(free_bits),
            SAMPLE=sample, FREE_BITS=keep is not None, BLOCK_B=block_b, BLOCK_Z=block_z, num_warps=num_warps,
        )
    return z, kl, keep


def reparam_kl_backward(mu, logvar, keep, grad_z, grad_kl, seed: int, sample: bool):
    """Launch the backward. grad_z (B, Z) or None, grad_kl (B,) or None. Returns dμ, dlogσ² (B, Z)."""
    B, Z = mu.shape
    block_b, block_z, num_warps = _block_sizes(Z)
    dmu = torch.empty_like(mu)
    dlogvar = torch.empty_like(logvar)
    dz = grad_z.contiguous() if grad_z is not None else dmu  # dummy pointer when absent
    dkl = grad_kl.contiguous() if grad_kl is not None else dmu
    with on_device(mu):
        _bwd_kernel[(triton.cdiv(B, block_b),)](
            mu, logvar, keep if keep is not None else dmu, dz, dkl, dmu, dlogvar, seed, B, Z,
            SAMPLE=sample, FREE_BITS=keep is not None, HAS_DZ=grad_z is not None, HAS_DKL=grad_kl is not None,
            BLOCK_B=block_b, BLOCK_Z=block_z, num_warps=num_warps,
        )
    return dmu, dlogvar


# --------------------------------------------------------------------------- autograd


class ReparamKLFunction(torch.autograd.Function):
    """(mu, logvar, seed, free_bits, sample, free_bits_mean) → (z, kl); saves only μ, logσ², the seed and the
    free-bits mask."""

    @staticmethod
    def forward(ctx, mu, logvar, seed: int, free_bits: float, sample: bool, free_bits_mean=None):
        mu, logvar = mu.contiguous(), logvar.contiguous()
        z, kl, keep = reparam_kl_forward(mu, logvar, seed, free_bits, sample, free_bits_mean)
        ctx.save_for_backward(mu, logvar, keep)
        ctx.seed, ctx.sample = seed, sample
        ctx.set_materialize_grads(False)  # grad_z / grad_kl arrive as None when unused
        return z, kl

    @staticmethod
    def backward(ctx, grad_z, grad_kl):
        if torch.is_grad_enabled():  # create_graph=True: the kernels' gradients would carry no graph
            raise RuntimeError("the Triton reparameterize_kl has no second derivatives (create_graph=True); "
                               "use backend='torch'")
        mu, logvar, keep = ctx.saved_tensors
        if grad_z is None and grad_kl is None:
            return None, None, None, None, None, None
        dmu, dlogvar = reparam_kl_backward(mu, logvar, keep, grad_z, grad_kl, ctx.seed, ctx.sample)
        return dmu, dlogvar, None, None, None, None


def reparameterize_kl(mu, logvar, *, seed: int | None = None, free_bits: float = 0.0, sample: bool = True,
                      free_bits_mean=None):
    """Triton entry point (inputs already validated by the dispatcher). Returns z (B, Z), kl (B,) fp32."""
    check_device(mu)
    if seed is None:
        # From torch's CPU default generator: reproducible under torch.manual_seed, no GPU sync.
        seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
    return ReparamKLFunction.apply(mu, logvar, seed, float(free_bits), bool(sample), free_bits_mean)
