"""Tests for seqvae.kernels: the PyTorch reference and the fused Triton kernel.

The Triton tests run on CPU through Triton's interpreter (TRITON_INTERPRET=1, set
here and in conftest.py before anything imports triton); on a machine where
TRITON_INTERPRET=0 and CUDA is present they run on the GPU instead.
Run: python -m pytest -q tests/test_kernels.py      (only Triton: -m triton)
"""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")  # must precede the first `import triton` in this process

import importlib
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seqvae import kernels
from seqvae.kernels import gaussian_kl, reparameterize_kl
from seqvae.kernels import reference as ref

REPO_ROOT = Path(__file__).resolve().parents[1]
LAMBDA = 0.5  # free-bits threshold used throughout; make_inputs puts columns on both sides of it

# Odd shapes: B = 1, Z = 1, non-powers of two, and Z > the kernel's largest Z block (loops over Z).
SHAPES = [(1, 1), (3, 7), (513, 33), (5, 600)]

# (atol, rtol) for outputs stored in each dtype; KL is fp32-accumulated in every case.
TOL = {
    torch.float32: (1e-5, 1e-5),
    torch.bfloat16: (3e-2, 1.6e-2),  # bf16 has 8 mantissa bits: one rounding ≈ 0.4 % relative
    torch.float16: (3e-3, 2e-3),  # fp16 has 11: ≈ 0.05 %
}


def make_inputs(B, Z, dtype=torch.float32, device="cpu", seed=0):
    """(mu, logvar) leaf tensors of shape (B, Z). Every third column has a small μ, so its batch-mean
    KL (≈ 0.1) lies well below LAMBDA while the others (≈ 1.2) lie well above it."""
    g = torch.Generator().manual_seed(seed)
    scale = torch.where(torch.arange(Z) % 3 == 0, 0.2, 1.5)  # (Z,)
    mu = torch.randn(B, Z, generator=g) * scale  # (B, Z)
    logvar = 0.4 * torch.randn(B, Z, generator=g) - 0.2  # (B, Z)
    return mu.to(device, dtype).requires_grad_(), logvar.to(device, dtype).requires_grad_()


def backward(z, kl, mu, logvar, which, seed=0):
    """Gradients of <gz, z> + <gk, kl> w.r.t. (mu, logvar) with random grad_outputs; which ∈ both|z|kl."""
    g = torch.Generator().manual_seed(1000 + seed)
    gz = torch.randn(z.shape, generator=g).to(z.device, z.dtype)
    gk = torch.randn(kl.shape, generator=g).to(kl.device)
    outs, grads = {"both": ((z, kl), (gz, gk)), "z": ((z,), (gz,)), "kl": ((kl,), (gk,))}[which]
    dmu, dlv = torch.autograd.grad(outs, (mu, logvar), grads, allow_unused=True)
    dlv = torch.zeros_like(logvar) if dlv is None else dlv  # z = μ with sample=False ignores logσ²
    return dmu, dlv


def close(actual, expected, dtype=torch.float32):
    atol, rtol = TOL[dtype]
    torch.testing.assert_close(actual.float(), expected.float(), atol=atol, rtol=rtol)


@pytest.fixture(scope="module")
def tk():
    """The Triton module, usable on this machine (interpreter on CPU, or a real GPU)."""
    pytest.importorskip("triton")
    mod = importlib.import_module("seqvae.kernels.triton_reparam_kl")
    if not mod.interpreted():
        if os.environ.get("TRITON_INTERPRET") == "1":
            pytest.fail("TRITON_INTERPRET=1 is set but triton was imported before it was; see tests/conftest.py")
        if not torch.cuda.is_available():
            pytest.skip("Triton kernels need CUDA or TRITON_INTERPRET=1")
    return mod


@pytest.fixture(scope="module")
def dev(tk):
    return "cpu" if tk.interpreted() else "cuda"


def triton_and_reference(tk, mu, logvar, seed, free_bits, sample):
    """(z, kl) from the Triton kernel and from the reference fed with the kernel's own ε."""
    z, kl = reparameterize_kl(mu, logvar, seed=seed, free_bits=free_bits, sample=sample, backend="triton")
    eps = tk.philox_randn(seed, *mu.shape, device=mu.device)
    z_ref, kl_ref = ref.reparameterize_kl(mu, logvar, eps=eps, free_bits=free_bits, sample=sample)
    return (z, kl), (z_ref, kl_ref)


# =========================================================================== reference


def test_reference_kl_matches_torch_distributions():
    mu, logvar = make_inputs(9, 13)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    expected = torch.distributions.kl_divergence(q, p).sum(-1)  # (B,)
    _, kl = ref.reparameterize_kl(mu, logvar, seed=0)
    close(kl, expected)
    close(gaussian_kl(mu, logvar), expected)
    assert gaussian_kl(mu, logvar).shape == (9,) and gaussian_kl(mu, logvar).dtype == torch.float32


def test_reference_z_uses_given_eps():
    mu, logvar = make_inputs(4, 6)
    eps = torch.randn(4, 6, generator=torch.Generator().manual_seed(1))  # the same whatever ran before
    z, _ = ref.reparameterize_kl(mu, logvar, eps=eps)
    close(z, mu + (0.5 * logvar).exp() * eps)


@pytest.mark.parametrize("free_bits", [0.0, LAMBDA])
def test_reference_backward_matches_closed_form(free_bits):
    """Autograd of the reference equals the formulas the Triton backward implements."""
    mu, logvar = make_inputs(32, 10)
    g = torch.Generator().manual_seed(2)  # ε and grad_outputs the same whatever ran before
    eps = torch.randn(32, 10, generator=g)
    z, kl = ref.reparameterize_kl(mu, logvar, eps=eps, free_bits=free_bits)
    gz, gk = torch.randn(z.shape, generator=g), torch.randn(kl.shape, generator=g)
    dmu, dlv = torch.autograd.grad((z, kl), (mu, logvar), (gz, gk))
    mu, logvar = mu.detach(), logvar.detach()
    keep = ref.free_bits_mask(ref.elementwise_kl(mu, logvar), free_bits).float() if free_bits else torch.ones(10)
    if free_bits:
        assert 0 < keep.sum() < 10  # the test is about a mixed mask
    std = (0.5 * logvar).exp()
    close(dmu, gz + gk[:, None] * mu * keep)
    close(dlv, gz * 0.5 * std * eps + gk[:, None] * 0.5 * (logvar.exp() - 1) * keep)


@pytest.mark.parametrize("free_bits, sample", [(0.0, True), (LAMBDA, True), (LAMBDA, False)])
def test_reference_gradients_match_finite_differences(free_bits, sample):
    """torch.autograd.gradcheck in float64: the reference's gradients (which the Triton backward must
    reproduce) are those of its forward, free bits included: below the floor a dimension's KL is the
    constant λ, so no KL gradient flows there."""
    mu, logvar = (t.detach().double().requires_grad_() for t in make_inputs(16, 7))
    eps = torch.randn(16, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    z, kl = ref.reparameterize_kl(mu, logvar, eps=eps, free_bits=free_bits, sample=sample)
    assert z.dtype == kl.dtype == torch.float64
    if free_bits:
        m = ref.elementwise_kl(mu, logvar).detach().mean(0)  # (Z,) well away from λ, or the differences jump
        assert (m < LAMBDA).any() and (m > LAMBDA).any() and ((m - LAMBDA).abs() > 1e-3).all()

    def fn(m, lv):
        return ref.reparameterize_kl(m, lv, eps=eps, free_bits=free_bits, sample=sample)

    assert torch.autograd.gradcheck(fn, (mu, logvar))


def test_float64_is_the_reference_alone():
    """float64 is for gradient checks of the reference; the dispatcher (and so Triton) refuses it."""
    mu, logvar = torch.zeros(2, 3, dtype=torch.float64), torch.zeros(2, 3, dtype=torch.float64)
    for backend in ("auto", "torch", "triton"):
        with pytest.raises(ValueError, match="dtype must be one of float32, bfloat16, float16; got torch.float64"):
            reparameterize_kl(mu, logvar, backend=backend)
    _, kl = ref.reparameterize_kl(mu, logvar, seed=0)
    assert kl.dtype == torch.float64 and torch.equal(kl, torch.zeros(2, dtype=torch.float64))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_reference_low_precision(dtype):
    mu, logvar = make_inputs(8, 5, dtype)
    eps = torch.randn(8, 5, generator=torch.Generator().manual_seed(4))
    z, kl = ref.reparameterize_kl(mu, logvar, eps=eps)
    z32, kl32 = ref.reparameterize_kl(mu.float(), logvar.float(), eps=eps)
    assert z.dtype == dtype and kl.dtype == torch.float32
    close(z, z32, dtype)
    close(kl, kl32)  # inputs are identical after upcasting, and KL is computed in fp32


@pytest.mark.parametrize("sample", [True, False])
def test_reference_fp16_gradients_sum_in_fp32(sample):
    """dμ = dz + dkl·μ and dlogσ² = dz·½σε + dkl·½(σ² − 1) are summed in fp32 and rounded once to fp16, as the
    Triton backward does: here each term is past fp16's 65504 and their sum is not (dlogσ²: with sample=True
    only, z = μ has no σ term). Rounding each term to fp16 before the sum gave inf − inf = NaN.
    Expected values from the closed forms in float64."""
    mu = torch.tensor([[1.0e4, 1.0]], dtype=torch.float16).requires_grad_()
    logvar = torch.tensor([[0.0, 10.0]], dtype=torch.float16).requires_grad_()
    eps = torch.tensor([[1.0, 2.0]])
    gk = torch.tensor([7.0])
    gz = torch.tensor([[-6.0e4, -452.0]], dtype=torch.float16)
    z, kl = ref.reparameterize_kl(mu, logvar, eps=eps, sample=sample)
    dmu, dlv = torch.autograd.grad((z, kl), (mu, logvar), (gz, gk))
    m, lv, e, g = mu.detach().double(), logvar.detach().double(), eps.double(), gz.double()
    exp_dmu = g + 7.0 * m  # (1, 2): column 0 is 7e4 − 6e4
    exp_dlv = (g * 0.5 * (0.5 * lv).exp() * e if sample else 0.0) + 7.0 * 0.5 * (lv.exp() - 1)  # column 1
    cols = [0, 1] if sample else [0]  # sample=False: dlogσ² of column 1 is 7.7e4 itself, past fp16 on any path
    assert exp_dmu.abs().max() < 65504 and exp_dlv[:, cols].abs().max() < 65504  # representable
    assert (7.0 * m[0, 0]).item() > 65504 and (sample is False or (7.0 * 0.5 * lv[0, 1].exp()).item() > 65504)
    close(dmu, exp_dmu, torch.float16)
    close(dlv[:, cols], exp_dlv[:, cols], torch.float16)


@pytest.mark.parametrize("backend", ["torch", "auto"])
def test_reference_seeding(backend):
    mu, logvar = make_inputs(16, 8)
    z1, _ = reparameterize_kl(mu, logvar, seed=7, backend=backend)
    z2, _ = reparameterize_kl(mu, logvar, seed=7, backend=backend)
    z3, _ = reparameterize_kl(mu, logvar, seed=8, backend=backend)
    assert torch.equal(z1, z2) and not torch.equal(z1, z3)
    torch.manual_seed(123)
    a, _ = reparameterize_kl(mu, logvar, backend=backend)
    b, _ = reparameterize_kl(mu, logvar, backend=backend)
    torch.manual_seed(123)
    a2, _ = reparameterize_kl(mu, logvar, backend=backend)
    assert torch.equal(a, a2) and not torch.equal(a, b)


@pytest.mark.parametrize(
    "mu, logvar, kwargs",
    [
        (torch.zeros(3), torch.zeros(3), {}),  # not 2-D
        (torch.zeros(2, 3), torch.zeros(2, 4), {}),  # shape mismatch
        (torch.zeros(0, 3), torch.zeros(0, 3), {}),  # B = 0
        (torch.zeros(2, 3, dtype=torch.int64), torch.zeros(2, 3, dtype=torch.int64), {}),
        (torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.float16), {}),  # dtype mismatch
        (torch.zeros(2, 3), torch.zeros(2, 3), {"free_bits": -0.1}),
        (torch.zeros(2, 3), torch.zeros(2, 3), {"free_bits": float("nan")}),
        (torch.zeros(2, 3), torch.zeros(2, 3), {"free_bits": True}),  # not 1 nat by accident
        (torch.zeros(2, 3), torch.zeros(2, 3), {"seed": -1}),
        (torch.zeros(2, 3), torch.zeros(2, 3), {"seed": True}),
        (torch.zeros(2, 3), torch.zeros(2, 3), {"backend": "cuda"}),  # unknown backend
        (torch.zeros(2, 3), torch.zeros(2, 3), {"free_bits": 0.5, "free_bits_mean": 0.5}),  # not a function
    ],
)
def test_invalid_inputs_raise_value_error(mu, logvar, kwargs):
    with pytest.raises(ValueError):
        reparameterize_kl(mu, logvar, **kwargs)


# =========================================================================== dispatcher


def test_auto_on_cpu_uses_reference(monkeypatch):
    def no_triton():
        raise AssertionError("auto must not load the Triton backend for CPU tensors")

    monkeypatch.setattr(kernels, "_load_triton", no_triton)
    mu, logvar = make_inputs(5, 6)
    z, kl = reparameterize_kl(mu, logvar, seed=11)
    z_ref, kl_ref = ref.reparameterize_kl(mu, logvar, seed=11)
    assert torch.equal(z, z_ref) and torch.equal(kl, kl_ref)


def test_pick_backend(monkeypatch):
    pytest.importorskip("triton")
    assert kernels._pick_backend("auto", torch.device("cuda")) == "triton"
    assert kernels._pick_backend("auto", torch.device("cpu")) == "torch"
    assert kernels._pick_backend("triton", torch.device("cpu")) == "triton"
    monkeypatch.setattr(kernels, "_load_triton", lambda: ImportError("no triton"))
    assert kernels._pick_backend("auto", torch.device("cuda")) == "torch"


def test_forced_triton_without_triton_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "seqvae.kernels.triton_reparam_kl", None)  # makes the import fail
    with pytest.raises(RuntimeError, match="triton"):
        reparameterize_kl(torch.zeros(2, 3), torch.zeros(2, 3), backend="triton")


@pytest.mark.triton
def test_forced_triton_on_cpu_without_interpreter_errors():
    """A fresh process without TRITON_INTERPRET: a one-line RuntimeError that says what to set."""
    pytest.importorskip("triton")
    code = (
        "import torch; from seqvae.kernels import reparameterize_kl; "
        "reparameterize_kl(torch.zeros(2, 3), torch.zeros(2, 3), backend='triton')"
    )
    env = {**os.environ, "TRITON_INTERPRET": "0", "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("RuntimeError:") and "TRITON_INTERPRET=1" in last, proc.stderr[-2000:]


# =========================================================================== compiled for a GPU, without one


def compile_training_step(arch: int) -> None:
    """In a fresh process with TRITON_INTERPRET=0: one training step of the GPU candidate's latent (Z = 128, free
    bits, z sampled, both gradients) through the real launchers, each launch compiled for CUDA sm_`arch` and not
    run (no GPU here: a stand-in driver gives the target, CPU tensors stand for CUDA ones, z stays unwritten).
    Prints JSON: the kernels compiled, or {"skip": why} where triton has no CUDA backend."""
    import json

    import triton
    from triton.backends.compiler import GPUTarget
    from triton.runtime.driver import driver
    from triton.runtime.jit import JITFunction

    from seqvae.config import ModelConfig
    from seqvae.data import collate
    from seqvae.kernels import triton_reparam_kl as tk
    from seqvae.losses import elbo_loss
    from seqvae.model import SentenceVAE

    target = GPUTarget("cuda", arch, 32)
    try:
        triton.compiler.make_backend(target)
    except Exception as e:  # noqa: BLE001 - a triton build without the NVIDIA backend
        print(json.dumps({"skip": f"triton {triton.__version__} cannot compile for CUDA here: {e}"}))
        return

    class NoGPU:  # what a launch asks the driver before it compiles
        def get_current_target(self):
            return target

        def get_current_device(self):
            return 0

        def get_current_stream(self, device=None):
            return 0

    driver.set_active(NoGPU())
    compiled, launch = [], JITFunction.run

    def compile_only(self, *args, grid, warmup, **kwargs):
        kernel = launch(self, *args, grid=grid, warmup=True, **kwargs)
        compiled.append([self.fn.__name__, "cubin" in kernel.asm])
        return kernel

    JITFunction.run = compile_only
    tk.check_device = lambda t: None  # it refuses CPU tensors without the interpreter; nothing is launched
    torch.manual_seed(0)
    model = SentenceVAE(ModelConfig(vocab_size=40, embed_dim=8, hidden_dim=16, latent_dim=128, z_slots=2,
                                    encoder_slots=2, bow_head=True))
    model.kl_backend = "triton"
    b = collate([[5, 6, 7, 8], [9, 10], [11, 12, 13]])
    out = model(b.src, b.src_lens, b.dec_in, b.target, positions=b.positions, free_bits=0.175, mean_rec=True)
    (elbo_loss(out.rec, out.kl, 0.5) + out.rec_mean.mean() + out.bow.mean()).backward()
    print(json.dumps({"compiled": compiled, "triton": triton.__version__}))


@pytest.mark.triton
@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU compiles and runs the kernels in the tests above")
@pytest.mark.parametrize("arch", [90])  # sm_90: the H100 and H200 a session may be lent
def test_a_training_step_compiles_for_the_gpu(arch):
    """The interpreter runs the kernels as Python and so accepts code that the GPU compiler refuses (a loop
    variable that changes dtype, say); on a lent GPU that is a VAE run lost at its first step. Here the kernels a
    training step launches are compiled for the GPU's architecture by triton's own compiler, on the CPU."""
    pytest.importorskip("triton")
    code = f"import test_kernels; test_kernels.compile_training_step({arch})"
    env = {**os.environ, "TRITON_INTERPRET": "0",
           "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "tests"), str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    res = json.loads(proc.stdout.strip().splitlines()[-1])
    if "skip" in res:
        pytest.skip(res["skip"])
    assert sorted(res["compiled"]) == [["_bwd_kernel", True], ["_col_kl_partial_kernel", True],
                                       ["_fwd_kernel", True]]


# =========================================================================== Triton vs reference


@pytest.mark.triton
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("sample", [True, False])
@pytest.mark.parametrize("free_bits", [0.0, LAMBDA])
def test_triton_forward_matches_reference(tk, dev, shape, sample, free_bits):
    mu, logvar = make_inputs(*shape, device=dev)
    (z, kl), (z_ref, kl_ref) = triton_and_reference(tk, mu, logvar, 1234, free_bits, sample)
    assert z.shape == shape and z.dtype == mu.dtype and kl.shape == (shape[0],) and kl.dtype == torch.float32
    # Not bitwise: the kernel's exp (numpy in the interpreter, ex2.approx on GPU) differs from torch's by ulps.
    close(z, z_ref)
    close(kl, kl_ref)
    if not sample:
        assert torch.equal(z, mu)


@pytest.mark.triton
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("which", ["both", "z", "kl"])
@pytest.mark.parametrize("free_bits, sample", [(0.0, True), (LAMBDA, True), (LAMBDA, False)])
def test_triton_grads_match_reference(tk, dev, shape, which, free_bits, sample):
    mu, logvar = make_inputs(*shape, device=dev)
    (z, kl), (z_ref, kl_ref) = triton_and_reference(tk, mu, logvar, 99, free_bits, sample)
    got = backward(z, kl, mu, logvar, which)
    expected = backward(z_ref, kl_ref, mu, logvar, which)
    close(got[0], expected[0])
    close(got[1], expected[1])


@pytest.mark.triton
def test_triton_large_shape(tk, dev):
    """4096×128 (the size a real batch has): ~4 s under the interpreter."""
    mu, logvar = make_inputs(4096, 128, device=dev)
    (z, kl), (z_ref, kl_ref) = triton_and_reference(tk, mu, logvar, 5, LAMBDA, True)
    close(z, z_ref)
    close(kl, kl_ref)
    got, expected = backward(z, kl, mu, logvar, "both"), backward(z_ref, kl_ref, mu, logvar, "both")
    close(got[0], expected[0])
    close(got[1], expected[1])


@pytest.mark.triton
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_triton_dtypes(tk, dev, dtype):
    """Low-precision inputs: fp32 math inside, outputs rounded once to the input dtype.
    Compared with the reference on the same values upcast to fp32 (the exact answer)."""
    mu, logvar = make_inputs(67, 45, dtype, device=dev)
    z, kl = reparameterize_kl(mu, logvar, seed=3, free_bits=LAMBDA, backend="triton")
    assert z.dtype == dtype and kl.dtype == torch.float32
    mu32, lv32 = mu.detach().float().requires_grad_(), logvar.detach().float().requires_grad_()
    eps = tk.philox_randn(3, 67, 45, device=dev)
    z_ref, kl_ref = ref.reparameterize_kl(mu32, lv32, eps=eps, free_bits=LAMBDA)
    close(z, z_ref, dtype)
    close(kl, kl_ref, torch.float32)
    dmu, dlv = backward(z, kl, mu, logvar, "both")
    dmu_ref, dlv_ref = backward(z_ref, kl_ref, mu32, lv32, "both")  # same grad_outputs (seeded), upcast
    assert dmu.dtype == dtype and dlv.dtype == dtype
    close(dmu, dmu_ref, dtype)
    close(dlv, dlv_ref, dtype)


@pytest.mark.triton
def test_triton_noncontiguous(tk, dev):
    """Strided inputs give the same z, kl and gradients as their contiguous copies."""
    base_mu, base_lv = make_inputs(20, 2 * 11, device=dev)
    mu = base_mu.detach()[:, ::2].requires_grad_()  # (20, 11), stride (22, 2)
    logvar = base_lv.detach()[:, :11].t().contiguous().t().requires_grad_()  # (20, 11), column-major
    assert not mu.is_contiguous() and not logvar.is_contiguous()
    mu_c, lv_c = mu.detach().contiguous().requires_grad_(), logvar.detach().contiguous().requires_grad_()
    z, kl = reparameterize_kl(mu, logvar, seed=21, free_bits=LAMBDA, backend="triton")
    z_c, kl_c = reparameterize_kl(mu_c, lv_c, seed=21, free_bits=LAMBDA, backend="triton")
    assert torch.equal(z, z_c) and torch.equal(kl, kl_c)
    g, g_c = backward(z, kl, mu, logvar, "both"), backward(z_c, kl_c, mu_c, lv_c, "both")
    assert torch.equal(g[0], g_c[0]) and torch.equal(g[1], g_c[1])
    gz = torch.randn(11, 20, generator=torch.Generator().manual_seed(5)).to(dev).t()  # non-contiguous grad_output too
    z, _ = reparameterize_kl(mu, logvar, seed=21, backend="triton")
    z_c, _ = reparameterize_kl(mu_c, lv_c, seed=21, backend="triton")
    dmu, dlv = torch.autograd.grad(z, (mu, logvar), gz)
    dmu_c, dlv_c = torch.autograd.grad(z_c, (mu_c, lv_c), gz.contiguous())
    assert torch.equal(dmu, dmu_c) and torch.equal(dlv, dlv_c)


@pytest.mark.triton
@pytest.mark.parametrize("dtype, high", [(torch.float32, 30.0), (torch.bfloat16, 30.0), (torch.float16, 10.0)])
def test_triton_extreme_logvar(tk, dev, dtype, high):
    """logσ² at −30 and +high: z, kl and both gradients finite and as the reference's. fp16 stores σ·ε
    and dlogσ² ≈ ½exp(logσ²) itself, so it overflows past logσ² ≈ 11 on either backend: high = 10."""
    mu, logvar = make_inputs(6, 9, device=dev)
    logvar = torch.where(torch.arange(9, device=dev) % 2 == 0, -30.0, high).expand(6, 9)  # (B, Z)
    mu, logvar = mu.detach().to(dtype).requires_grad_(), logvar.to(dtype).requires_grad_()
    (z, kl), (z_ref, kl_ref) = triton_and_reference(tk, mu, logvar, 8, LAMBDA, True)
    got, expected = backward(z, kl, mu, logvar, "both"), backward(z_ref, kl_ref, mu, logvar, "both")
    for t in (z, kl, *got):
        assert t.isfinite().all()
    close(z, z_ref, dtype)
    close(kl, kl_ref)
    for g, g_ref in zip(got, expected):
        close(g, g_ref, dtype)


@pytest.mark.triton
def test_every_launch_runs_on_the_tensors_device(tk, dev, monkeypatch):
    """Triton launches on the current CUDA device: each launch must sit inside on_device(tensors), or
    tensors on cuda:1 meet a kernel launched on cuda:0."""
    active = []  # the device of the innermost on_device block, if any

    class Guard:
        def __init__(self, t):
            self.device = t.device

        def __enter__(self):
            active.append(self.device)

        def __exit__(self, *exc):
            active.pop()

    class Launches:
        """Stands in for a kernel: records the active device of each launch, then launches."""

        def __init__(self, kernel):
            self.kernel = kernel

        def __getitem__(self, grid):
            def launch(*args, **kwargs):
                seen.append(active[-1] if active else None)
                return self.kernel[grid](*args, **kwargs)

            return launch

    seen = []
    monkeypatch.setattr(tk, "on_device", Guard)
    monkeypatch.setattr(tk, "check_device", lambda t: None)  # it checks that the kernels are triton's own
    for name in ("_randn_kernel", "_col_kl_partial_kernel", "_fwd_kernel", "_bwd_kernel"):
        monkeypatch.setattr(tk, name, Launches(getattr(tk, name)))
    mu, logvar = make_inputs(5, 6, device=dev)
    z, kl = reparameterize_kl(mu, logvar, seed=1, free_bits=LAMBDA, backend="triton")
    backward(z, kl, mu, logvar, "both")
    tk.philox_randn(1, 5, 6, device=dev)
    assert seen == [mu.device] * 4  # column pre-pass, forward, backward, ε


def test_on_device_picks_the_tensors_cuda_device():
    """on_device is torch.cuda.device(t.device) for a CUDA tensor (checked without a GPU: a stand-in object)."""
    tk = pytest.importorskip("seqvae.kernels.triton_reparam_kl")
    fake = type("T", (), {"device": torch.device("cuda", 1)})()
    guard = tk.on_device(fake)
    assert isinstance(guard, torch.cuda.device) and guard.idx == 1
    assert not isinstance(tk.on_device(torch.zeros(1)), torch.cuda.device)


@pytest.mark.triton
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_triton_on_the_second_gpu(tk):
    """Tensors on cuda:1 while cuda:0 is current: same z, kl and gradients as on cuda:0."""
    if tk.interpreted():
        pytest.skip("a GPU check (TRITON_INTERPRET=0)")
    results = []
    for device in ("cuda:0", "cuda:1"):
        mu, logvar = make_inputs(9, 13, device=device)
        z, kl = reparameterize_kl(mu, logvar, seed=4, free_bits=LAMBDA, backend="triton")
        results.append([t.cpu() for t in (z, kl, *backward(z, kl, mu, logvar, "both"))])
    assert torch.cuda.current_device() == 0
    for a, b in zip(*results):
        assert torch.equal(a, b)


@pytest.mark.triton
def test_triton_second_derivatives_are_refused(tk, dev):
    """The Triton backward is not itself differentiable: a gradient of its gradient (create_graph=True,
    e.g. a gradient penalty) is an error, not a term silently left out. The reference path has them."""
    mu, logvar = make_inputs(3, 4, device=dev)
    _, kl = reparameterize_kl(mu, logvar, seed=0, backend="triton")
    with pytest.raises(RuntimeError, match="no second derivatives"):
        torch.autograd.grad(kl.sum(), mu, create_graph=True)
    assert torch.autograd.grad(kl.sum(), mu)[0] is not None  # a plain backward still works
    _, kl = reparameterize_kl(mu, logvar, seed=0, backend="torch")
    (g,) = torch.autograd.grad(kl.sum(), mu, create_graph=True)  # dkl/dμ = μ
    close(torch.autograd.grad((g * g).sum() + mu.sum(), mu)[0], 2 * mu.detach() + 1)


@pytest.mark.triton
@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_free_bits_semantics(request, backend):
    """mean_b kl_b = Σ_j max(λ, m_j); the KL gradient vanishes in dimensions with m_j ≤ λ."""
    dev = request.getfixturevalue("dev") if backend == "triton" else "cpu"
    mu, logvar = make_inputs(64, 10, device=dev)
    with torch.no_grad():  # column 1 at λ exactly (KL ½(1 + 1 - 0 - 1)): clamped, as "at or below" says
        mu[:, 1], logvar[:, 1] = 1.0, 0.0
    _, kl = reparameterize_kl(mu, logvar, seed=0, free_bits=LAMBDA, backend=backend)
    m = ref.elementwise_kl(mu, logvar).detach().mean(0)  # (Z,)
    below = m <= LAMBDA
    assert m[1] == LAMBDA and below[1]
    assert 0 < below.sum() < 10
    close(kl.mean(), torch.clamp(m, min=LAMBDA).sum())
    gk = torch.randn(64, generator=torch.Generator().manual_seed(6)).to(dev)
    dmu, dlv = torch.autograd.grad(kl, (mu, logvar), gk)
    assert torch.all(dmu[:, below] == 0) and torch.all(dlv[:, below] == 0)
    close(dmu[:, ~below], (gk[:, None] * mu.detach())[:, ~below])
    # Without free bits every dimension gets a gradient.
    _, kl0 = reparameterize_kl(mu, logvar, seed=0, backend=backend)
    dmu0, _ = torch.autograd.grad(kl0, (mu, logvar), gk)
    close(dmu0, gk[:, None] * mu.detach())


@pytest.mark.triton
@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_free_bits_decide_on_the_mean_that_free_bits_mean_returns(request, backend):
    """free_bits_mean gets this call's batch-mean KL (Z,) and its row count, and λ is compared with what it
    returns; an identity changes nothing, bit for bit (a single process passes none)."""
    dev = request.getfixturevalue("dev") if backend == "triton" else "cpu"
    mu, logvar = make_inputs(13, 10, device=dev)
    gk = torch.randn(13, generator=torch.Generator().manual_seed(7)).to(dev)
    seen = []

    def run(free_bits_mean=None):
        z, kl = reparameterize_kl(mu, logvar, seed=5, free_bits=LAMBDA, backend=backend, free_bits_mean=free_bits_mean)
        return (z, kl, *torch.autograd.grad(kl, (mu, logvar), gk))

    plain = run()
    same = run(lambda m, rows: seen.append((m.clone(), rows)) or m)
    assert all(torch.equal(a, b) for a, b in zip(same, plain))
    (m, rows), = seen
    assert rows == 13
    close(m, ref.elementwise_kl(mu, logvar).detach().mean(0))
    _, kl, dmu, dlv = run(lambda m, rows: torch.zeros_like(m))  # every dimension at or below λ
    close(kl, torch.full_like(kl, 10 * LAMBDA))
    assert not dmu.any() and not dlv.any()
    _, kl, *_ = run(lambda m, rows: torch.full_like(m, math.inf))  # every dimension above λ: no clamp
    close(kl, reparameterize_kl(mu, logvar, seed=5, backend=backend)[1])


# A batch of 8 split 5 + 3 over two processes: the KL each row has per dimension, K = μ²/2 (logσ² = 0), in the
# first 5 rows and in the last 3. The whole batch's means (5a + 3b)/8 are 0.66, 0.49, 0.40, 0.64, 0.23, 0.51:
# against LAMBDA each share alone decides otherwise somewhere, and so does an unweighted mean of the two
# shares' means (columns 1 and 5: 0.525).
SHARE_KL = (torch.tensor([1.0, 0.4, 0.1, 0.9, 0.3, 0.45]), torch.tensor([0.1, 0.65, 0.9, 0.2, 0.1, 0.6]))
SHARES = (slice(0, 5), slice(5, 8))


def split_batch():
    """(mu, logvar, gk): the (8, 6) batch above (random signs) and weights for its per-row KL's gradient."""
    g = torch.Generator().manual_seed(7)
    k = torch.cat([SHARE_KL[0].expand(5, 6), SHARE_KL[1].expand(3, 6)])  # (8, 6)
    mu = (2 * k).sqrt() * torch.where(torch.rand(8, 6, generator=g) < 0.5, -1.0, 1.0)
    return mu, torch.zeros(8, 6), torch.randn(8, generator=g)


def kl_of_a_share(rank, backend):
    """In process `rank` of two: the per-row KL of its share of split_batch() and its gradient, with free bits
    decided over both processes (mean_over_ranks) and, for comparison, on the share alone."""
    from seqvae.ranks import mean_over_ranks

    mu, logvar, gk = (t[SHARES[rank]] for t in split_batch())
    mu, logvar = mu.requires_grad_(), logvar.requires_grad_()
    _, kl = reparameterize_kl(mu, logvar, seed=0, free_bits=LAMBDA, backend=backend, free_bits_mean=mean_over_ranks)
    dmu, dlv = torch.autograd.grad(kl, (mu, logvar), gk)
    _, alone = reparameterize_kl(mu, logvar, seed=0, free_bits=LAMBDA, backend=backend)
    return {"kl": kl.detach(), "dmu": dmu, "dlv": dlv, "alone": alone.detach()}


@pytest.mark.triton
@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_two_processes_on_shares_of_a_batch_free_bits_as_one_does_on_it(request, in_ranks, backend):
    """Under torchrun each process holds a share of the batch (here 5 + 3 rows); with the per-dimension mean
    taken over both (seqvae.ranks.mean_over_ranks, weighted by rows) free bits keep and clamp the dimensions
    that one process keeps and clamps on the whole batch: the same per-row KL and gradients."""
    if backend == "triton" and request.getfixturevalue("dev") != "cpu":
        pytest.skip("the two processes run the kernels on CPU (TRITON_INTERPRET=1)")
    mu, logvar, gk = split_batch()
    mu, logvar = mu.requires_grad_(), logvar.requires_grad_()
    assert ref.free_bits_mask(ref.elementwise_kl(mu, logvar), LAMBDA).tolist() == [True, False, False, True,
                                                                                      False, True]
    _, kl = reparameterize_kl(mu, logvar, seed=0, free_bits=LAMBDA, backend=backend)
    dmu, dlv = torch.autograd.grad(kl, (mu, logvar), gk)
    shares = in_ranks(kl_of_a_share, backend)
    close(torch.cat([s["kl"] for s in shares]), kl.detach())
    close(torch.cat([s["dmu"] for s in shares]), dmu)
    close(torch.cat([s["dlv"] for s in shares]), dlv)
    for share, rows in zip(shares, SHARES):  # each share alone decides otherwise: the test can tell
        assert (share["alone"] - kl.detach()[rows]).abs().min() > 0.01


@pytest.mark.triton
@pytest.mark.parametrize("backend", ["torch", "triton"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_sample_false_is_identity(request, backend, dtype):
    dev = request.getfixturevalue("dev") if backend == "triton" else "cpu"
    mu, logvar = make_inputs(6, 9, dtype, device=dev)
    z, _ = reparameterize_kl(mu, logvar, sample=False, backend=backend)
    assert torch.equal(z, mu) and z.dtype == dtype
    assert z.data_ptr() != mu.data_ptr()  # a copy: writing into z leaves mu alone
    gz = torch.randn(6, 9, generator=torch.Generator().manual_seed(8)).to(dev, dtype)
    dmu, dlv = torch.autograd.grad(z, (mu, logvar), gz, allow_unused=True)
    assert torch.equal(dmu, gz)
    assert dlv is None or torch.all(dlv == 0)


# =========================================================================== Triton RNG


@pytest.mark.triton
def test_triton_seeding(tk, dev):
    mu, logvar = make_inputs(16, 8, device=dev)
    run = lambda seed: reparameterize_kl(mu, logvar, seed=seed, backend="triton")[0]  # noqa: E731
    z1, z2, z3 = run(7), run(7), run(8)
    assert torch.equal(z1, z2)
    assert (z1 == z3).float().mean() < 0.01
    # seed=None draws the kernel seed from torch's CPU generator: reproducible under torch.manual_seed.
    torch.manual_seed(123)
    a, b = run(None), run(None)
    torch.manual_seed(123)
    assert torch.equal(a, run(None)) and not torch.equal(a, b)
    # All 64 bits of the seed key Philox (seeds 2**32 apart differ), and the backward of a seed past
    # 32 bits regenerates the ε its forward drew.
    assert (run(7 + 2**32) == z1).float().mean() < 0.01
    (z, kl), (z_ref, kl_ref) = triton_and_reference(tk, mu, logvar, 2**62 + 5, 0.0, True)
    close(z, z_ref)
    for g, g_ref in zip(backward(z, kl, mu, logvar, "z"), backward(z_ref, kl_ref, mu, logvar, "z")):
        close(g, g_ref)


@pytest.mark.triton
def test_eps_depends_only_on_flat_index(tk, dev):
    """ε at (b, j) is Philox(seed, b·Z + j): reshaping the problem does not change the stream."""
    flat = tk.philox_randn(42, 1, 7 * 33, device=dev).flatten()
    for shape in [(7, 33), (33, 7), (231, 1)]:
        assert torch.equal(tk.philox_randn(42, *shape, device=dev).flatten(), flat)


@pytest.mark.triton
def test_eps_moments(tk, dev):
    """ε over 2**18 draws: moments and correlations within 5 standard errors of N(0, 1) i.i.d."""
    B, Z = 512, 512
    n = B * Z
    eps = tk.philox_randn(2024, B, Z, device=dev).double().cpu()  # (B, Z)
    x = eps.flatten()
    se = 1 / math.sqrt(n)  # standard error of a mean / correlation of n unit-variance values
    assert abs(x.mean()) < 5 * se
    assert abs(x.var() - 1) < 5 * math.sqrt(2 / n)  # Var of the sample variance of N(0,1) is 2/n
    p = 0.6826894921370859  # P(|ε| < 1)
    assert abs((x.abs() < 1).double().mean() - p) < 5 * math.sqrt(p * (1 - p) / n)
    corr = lambda a, b: ((a - a.mean()) * (b - b.mean())).mean() / (a.std() * b.std())  # noqa: E731
    assert abs(corr(x[:-1], x[1:])) < 5 * se  # neighbours in a row (lag 1)
    assert abs(corr(eps[:-1].flatten(), eps[1:].flatten())) < 5 * se  # same column, next row (lag Z)
    other = tk.philox_randn(2025, B, Z, device=dev).double().cpu().flatten()
    assert abs(corr(x, other)) < 5 * se  # neighbouring seeds give unrelated streams


@pytest.mark.triton
def test_model_uses_its_kl_backend(tk, dev):
    """SentenceVAE.kl_backend reaches the kernel: with "triton" and a seed, z = μ + σ·ε(seed) of the Philox draw."""
    from seqvae.config import ModelConfig
    from seqvae.data import collate
    from seqvae.model import SentenceVAE

    torch.manual_seed(0)
    model = SentenceVAE(ModelConfig(vocab_size=30, embed_dim=8, hidden_dim=12, latent_dim=5)).to(dev).eval()
    b = collate([[5, 6, 7], [8, 9]]).to(dev)
    model.kl_backend = "triton"
    out = model(b.src, b.src_lens, b.dec_in, b.target, seed=123)
    eps = tk.philox_randn(123, 2, 5, device=dev)
    close(out.z, out.mu + torch.exp(0.5 * out.logvar) * eps)
    model.kl_backend = "torch"
    again = model(b.src, b.src_lens, b.dec_in, b.target, seed=123)
    close(again.kl, out.kl)
    assert not torch.allclose(again.z, out.z)  # the reference draws its own ε for the same seed


def test_bench_kernel_bad_input_is_one_line():
    """scripts/bench_kernel.py: bad options, and no GPU without --cpu-interpret, are one line and exit 2."""
    from conftest import run_script

    bench = run_script("bench_kernel")
    for argv, message in [(("--free-bits", "-1"), "--free-bits must be a finite number >= 0, got -1.0"),
                          (("--copy-mib", "0"), "--copy-mib must be >= 1, got 0")]:
        assert bench(*argv) == (2, "", f"bench_kernel: error: {message}\n")
    if not torch.cuda.is_available():
        rc, out, err = bench()
        assert rc == 2 and out == "" and err.count("\n") == 1 and err.startswith("bench_kernel: error: no CUDA device")
