"""Benchmark the fused reparameterization + KL kernel against eager and torch.compile'd PyTorch.

    python scripts/bench_kernel.py --dtype float32 --free-bits 0.0

For (B, Z) in 64×32, 1024×64, 8192×128, 65536×256 it times one forward + backward
(z and kl both receive a gradient) of three implementations:
  eager     seqvae.kernels.reference.reparameterize_kl
  compile   torch.compile of the same reference function
  triton    seqvae.kernels.reparameterize_kl(..., backend="triton")
and prints, per shape: median times (triton.testing.do_bench, CUDA events), the
speed-ups eager/triton and compile/triton, the achieved bandwidth of each as a
fraction of the device bandwidth measured in the same run (a large
device-to-device copy), and the peak extra memory of each step.

Bytes counted per fwd+bwd step = the tensors a fused implementation must touch once:
read μ, logσ², grad_z (B·Z each, input dtype), grad_kl (B, fp32); write z, dμ,
dlogσ² (B·Z each, input dtype), kl (B, fp32). This is a lower bound on traffic: the
Triton backward re-reads μ and logσ², so it can reach at most 6/8 of the copy bandwidth.

--cpu-interpret: no GPU needed; runs the same code path at tiny sizes on CPU through
  Triton's interpreter (times are meaningless; torch.compile uses backend="aot_eager").
Without CUDA and without --cpu-interpret the script exits with code 2 and one line
(`bench_kernel: error: no CUDA device; ...`), as it does for a bad --free-bits.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

SHAPES = [(64, 32), (1024, 64), (8192, 128), (65536, 256)]
SMOKE_SHAPES = [(8, 5), (33, 17)]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Benchmark the fused reparameterization + KL kernel.")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--free-bits", type=float, default=0.0, help="λ passed to every implementation (0 = off)")
    p.add_argument("--cpu-interpret", action="store_true", help="tiny smoke run on CPU via TRITON_INTERPRET=1")
    p.add_argument("--copy-mib", type=int, default=1024, help="size of the bandwidth-reference copy (MiB)")
    return p.parse_args(argv)


# --------------------------------------------------------------------------- measurement


def bench_ms(fn, device) -> float:
    """Median milliseconds per call of fn()."""
    if device.type == "cuda":
        import triton.testing

        return triton.testing.do_bench(fn, warmup=25, rep=200, return_mode="median")
    fn()  # CPU smoke run: warm up once, then a few wall-clock samples
    samples = []
    for _ in range(3):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(samples)


def device_bandwidth(device, mib: int) -> float:
    """Bytes/s of a large device-to-device copy (read + write counted)."""
    import torch

    n = mib * 2**20 // 4
    src = torch.empty(n, device=device, dtype=torch.float32).uniform_()
    dst = torch.empty_like(src)
    ms = bench_ms(lambda: dst.copy_(src), device)
    return 2 * src.numel() * 4 / (ms * 1e-3)


def peak_extra_mib(fn, device) -> float | None:
    """Peak memory allocated during one fn() beyond what was allocated before it (CUDA only)."""
    import torch

    if device.type != "cuda":
        return None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    out = fn()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    del out
    return peak / 2**20


def step_bytes(B: int, Z: int, elem: int) -> int:
    """Minimal bytes of one fwd+bwd: read μ, logσ², grad_z, grad_kl; write z, kl, dμ, dlogσ²."""
    return 6 * B * Z * elem + 2 * B * 4


# --------------------------------------------------------------------------- implementations


def implementations(free_bits: float, device):
    """name -> fn(mu, logvar) -> (z, kl)."""
    import torch

    from seqvae.kernels import reference, reparameterize_kl

    def eager(mu, logvar):
        return reference.reparameterize_kl(mu, logvar, free_bits=free_bits)

    def fused(mu, logvar):
        return reparameterize_kl(mu, logvar, free_bits=free_bits, backend="triton")

    # On CPU the smoke run only exercises the path: aot_eager needs no C++ toolchain and compiles fast.
    compiled = torch.compile(eager, backend="inductor" if device.type == "cuda" else "aot_eager")
    return {"eager": eager, "compile": compiled, "triton": fused}


def make_step(fn, mu, logvar, grad_z, grad_kl):
    """One forward + backward of fn; returns the input gradients (so peak memory includes them)."""
    import torch

    def step():
        z, kl = fn(mu, logvar)
        return torch.autograd.grad((z, kl), (mu, logvar), (grad_z, grad_kl))

    return step


def run_kernel_bench(args) -> None:
    import torch
    import triton

    device = torch.device("cpu" if args.cpu_interpret else "cuda")
    dtype = getattr(torch, args.dtype)
    elem = torch.empty((), dtype=dtype).element_size()
    shapes = SMOKE_SHAPES if args.cpu_interpret else SHAPES
    impls = implementations(args.free_bits, device)
    names = list(impls)

    bw = device_bandwidth(device, 16 if args.cpu_interpret else args.copy_mib)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (Triton interpreter smoke run)"
    print(f"device: {name} | torch {torch.__version__} | triton {triton.__version__}")
    timer = "median of triton.testing.do_bench (CUDA events)" if device.type == "cuda" else "median wall clock"
    print(f"dtype {args.dtype} | free_bits {args.free_bits} | one fwd+bwd, {timer}")
    print(f"device copy bandwidth: {bw / 1e9:.1f} GB/s (read+write of a {args.copy_mib if device.type == 'cuda' else 16} MiB copy)")
    print("bytes/step = 6·B·Z·elem + 8·B (read μ, logσ², dz, dkl; write z, kl, dμ, dlogσ²)")
    print()
    header = (
        f"{'B x Z':>12} | " + " ".join(f"{n + ' us':>11}" for n in names)
        + f" | {'eager/tri':>9} {'comp/tri':>9} | " + " ".join(f"{'BW% ' + n:>12}" for n in names)
        + " | " + " ".join(f"{'MiB ' + n:>12}" for n in names)
    )
    print(header)
    print("-" * len(header))

    for B, Z in shapes:
        g = torch.Generator(device=device).manual_seed(0)
        mu = torch.randn(B, Z, device=device, generator=g).to(dtype).requires_grad_()
        logvar = (0.5 * torch.randn(B, Z, device=device, generator=g)).to(dtype).requires_grad_()
        grad_z = torch.randn(B, Z, device=device, generator=g).to(dtype)
        grad_kl = torch.randn(B, device=device, generator=g)
        nbytes = step_bytes(B, Z, elem)
        ms, mem = {}, {}
        for n in names:
            step = make_step(impls[n], mu, logvar, grad_z, grad_kl)
            step()  # compile / autotune / first-launch costs stay out of the timing
            ms[n] = bench_ms(step, device)
            mem[n] = peak_extra_mib(step, device)
        frac = {n: nbytes / (ms[n] * 1e-3) / bw for n in names}
        fmt_mem = lambda v: f"{v:12.2f}" if v is not None else f"{'n/a':>12}"  # noqa: E731
        print(
            f"{f'{B} x {Z}':>12} | " + " ".join(f"{ms[n] * 1e3:11.1f}" for n in names)
            + f" | {ms['eager'] / ms['triton']:9.2f} {ms['compile'] / ms['triton']:9.2f} | "
            + " ".join(f"{100 * frac[n]:11.1f}%" for n in names)
            + " | " + " ".join(fmt_mem(mem[n]) for n in names)
        )
        sys.stdout.flush()


def main(argv=None) -> int:
    args = parse_args(argv)
    if not (math.isfinite(args.free_bits) and args.free_bits >= 0):
        print(f"bench_kernel: error: --free-bits must be a finite number >= 0, got {args.free_bits}", file=sys.stderr)
        return 2
    if args.copy_mib < 1:
        print(f"bench_kernel: error: --copy-mib must be >= 1, got {args.copy_mib}", file=sys.stderr)
        return 2
    if args.cpu_interpret:
        os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported anywhere in this process

    import torch

    if not args.cpu_interpret and not torch.cuda.is_available():
        print("bench_kernel: error: no CUDA device; run on a GPU, or pass --cpu-interpret for a tiny smoke run",
              file=sys.stderr)
        return 2
    try:
        import triton  # noqa: F401
    except ImportError:
        print("bench_kernel: error: triton is not installed (pip install triton)", file=sys.stderr)
        return 2
    run_kernel_bench(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
