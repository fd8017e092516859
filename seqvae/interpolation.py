"""Paths between two codes: a straight line (lerp) or a great-circle direction with a lerped norm (slerp).

    check_method("slerp")                          # an unknown method is an InputError
    z = interpolate_codes(za, zb, 8, "slerp")      # (8, Z), z[0] == za and z[-1] == zb exactly

SeqVAE.interpolate encodes two sentences, runs this on their codes and decodes the path; its docstring and
docs/usage.md ("Interpolation") say why slerp.
"""

from __future__ import annotations

import math

import torch

from .config import INTERPOLATION_METHODS, MAX_PATH_STEPS, whole
from .errors import InputError


def check_method(method: str) -> None:
    """An InputError unless `method` is one of INTERPOLATION_METHODS (checked before any work)."""
    if method not in INTERPOLATION_METHODS:
        raise InputError(f"unknown interpolation method {method!r} (choose from {', '.join(INTERPOLATION_METHODS)})")


def interpolate_codes(za: torch.Tensor, zb: torch.Tensor, steps: int, method: str = "lerp") -> torch.Tensor:
    """(steps, Z) codes from za to zb (Z,) by lerp or slerp (see SeqVAE.interpolate); endpoints exact."""
    check_method(method)
    steps = whole("steps", steps, 2, InputError, MAX_PATH_STEPS)  # the two endpoints at least
    za, zb = torch.as_tensor(za), torch.as_tensor(zb)
    if za.dim() != 1 or za.shape != zb.shape or not za.is_floating_point():
        raise InputError(f"za and zb must be two codes of one width, (Z,) floats; got {tuple(za.shape)} {za.dtype} "
                         f"and {tuple(zb.shape)} {zb.dtype}")
    zb = zb.to(za)
    if not (torch.isfinite(za).all() and torch.isfinite(zb).all()):  # else a path of NaNs, refused only by decode
        raise InputError("za and zb must be finite codes (they have NaN or inf entries)")
    t = torch.linspace(0.0, 1.0, steps, device=za.device, dtype=torch.float64)[:, None]  # (steps, 1)
    a, b = za.double(), zb.double()
    path = (1 - t) * a + t * b  # (steps, Z) lerp
    if method == "slerp":
        na, nb = a.norm(), b.norm()
        if na > 0 and nb > 0:
            ua, ub = a / na, b / nb
            omega = torch.arccos((ua @ ub).clamp(-1.0, 1.0))  # angle between the two directions
            if math.sin(float(omega)) > 1e-3:
                direction = (torch.sin((1 - t) * omega) * ua + torch.sin(t * omega) * ub) / torch.sin(omega)
                path = direction * ((1 - t) * na + t * nb)  # unit direction times the lerped norm
    path = path.to(za.dtype)
    path[0], path[-1] = za, zb  # exactly the endpoints, whatever the rounding
    return path
