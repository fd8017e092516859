"""Paths between two codes (seqvae.interpolation): lerp and slerp, their endpoints, and the codes they refuse.
SeqVAE.interpolate, which encodes and decodes around them, is tested in test_api.py."""

import math

import pytest
import torch

from seqvae.errors import InputError
from seqvae.interpolation import interpolate_codes


def test_slerp_path():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(16, generator=gen), 3 * torch.randn(16, generator=gen)
    z = interpolate_codes(a, b, 9, "slerp")
    t = torch.linspace(0, 1, 9)
    assert torch.allclose(z.norm(dim=1), (1 - t) * a.norm() + t * b.norm(), rtol=1e-5)  # norm moves linearly
    u = z / z.norm(dim=1, keepdim=True)
    steps = torch.arccos((u[:-1] * u[1:]).sum(1).clamp(-1, 1))
    assert torch.allclose(steps, steps.mean().expand(8), atol=1e-4)  # constant angular speed
    assert torch.allclose(steps.sum(), torch.arccos(a @ b / (a.norm() * b.norm())), atol=1e-4)  # great circle
    lerp = interpolate_codes(a, b, 9, "lerp")
    assert torch.allclose(lerp, (1 - t)[:, None] * a + t[:, None] * b, atol=1e-6)
    for parallel in (2 * a, -a, a):  # no great circle: falls back to lerp, no NaN
        z = interpolate_codes(a, parallel, 5, "slerp")
        assert torch.allclose(z, interpolate_codes(a, parallel, 5, "lerp")) and not z.isnan().any()
    with pytest.raises(InputError, match="method"):
        interpolate_codes(a, b, 3, "cubic")


def test_slerp_keeps_near_opposite_and_tiny_angles_finite_and_the_endpoints_bit_exact():
    """Codes at tiny angles, at the fallback's edge, opposite or zero: a finite path whose ends are the codes
    bit for bit, for every method and dtype, at 2, 3 and many steps."""
    gen = torch.Generator().manual_seed(1)
    a, w = torch.randn(16, generator=gen, dtype=torch.float64), torch.randn(16, generator=gen, dtype=torch.float64)
    w = w - (w @ a) / (a @ a) * a
    w = w / w.norm() * a.norm()
    for angle in (0.0, 1e-9, 1e-4, 9.9e-4, 1.01e-3, 0.5, math.pi - 1.01e-3, math.pi - 9.9e-4, math.pi - 1e-9, math.pi):
        b = 3 * (math.cos(angle) * a + math.sin(angle) * w)
        for dtype in (torch.float32, torch.float64, torch.float16):
            for method, steps in ((m, s) for m in ("lerp", "slerp") for s in (2, 3, 1000)):
                z = interpolate_codes(a.to(dtype), b.to(dtype), steps, method)
                assert z.dtype == dtype and torch.isfinite(z).all(), (angle, dtype, method)
                assert torch.equal(z[0], a.to(dtype)) and torch.equal(z[-1], b.to(dtype))
    zero = torch.zeros(16)
    assert torch.equal(interpolate_codes(zero, zero, 4, "slerp"), zero.expand(4, 16))


def test_interpolate_codes_refuses_codes_that_are_not_finite():
    """A NaN or inf in a code gave a path of NaNs (inf and -inf: NaN midpoints) without a word; decode refuses
    such codes, so the fault only showed a step later, far from its cause."""
    a = torch.randn(8, generator=torch.Generator().manual_seed(0))
    for bad in (float("nan"), float("inf"), -float("inf")):
        b = a.clone()
        b[3] = bad
        for method in ("lerp", "slerp"):
            with pytest.raises(InputError, match="za and zb must be finite"):
                interpolate_codes(a, b, 3, method)
            with pytest.raises(InputError, match="za and zb must be finite"):
                interpolate_codes(b, a, 3, method)
