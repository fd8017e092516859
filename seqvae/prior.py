"""Priors to sample z from: the standard normal, or an aggregate-posterior density fitted after training.

A VAE that keeps many nats in z has an aggregate posterior q(z) = E_x q(z|x) that covers N(0, I)
only in part: codes drawn from N(0, I) land in holes between the training sentences and decode to
broken text. Ex-post density estimation (Ghosh et al. 2020) fits a density on the training
sentences' posterior means after training and samples from it instead.

    prior = AggregatePrior.fit(mu, components=32, seed=0)     # mu: (N, Z) posterior means
    prior.save(ckpt_dir)                                       # prior.json + prior.safetensors beside the model
    prior = load_prior(ckpt_dir, latent_dim=Z)                 # None when the checkpoint has none
    z = prior.sample(n, generator=gen)                         # (n, Z), seeded, global RNG untouched
    z = prior.from_noise(u, eps)                               # (n, Z) from given noise: u (n,) uniform, eps (n, Z)

The density is a Gaussian mixture with full covariances, fitted by scikit-learn's EM (only the
fit needs scikit-learn; sampling and loading are plain torch).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load, save_file

from . import atomic
from .config import seed32, seed_value, whole

PRIOR_JSON = "prior.json"
PRIOR_WEIGHTS = "prior.safetensors"
PRIORS = ("aggregate", "standard")  # what `sample(prior=...)` accepts
# the fit (scikit-learn's GaussianMixture), each setting recorded in prior.json
COVARIANCE = "full"  # one full Z x Z covariance per component
REG_COVAR = 1e-4  # added to each covariance's diagonal: a floor (std 0.01) for a dimension the codes never move in
N_INIT = 1  # EM runs from k-means++ starts (the best one kept)
CODE_NUMBERS = 1 << 24  # from_noise gathers a (Z, Z) factor per code: this many numbers at a time (64 MB)


class PriorError(ValueError):
    """A saved prior is missing a part, corrupt, or does not fit the model (one-line message)."""


def check_fit_size(codes: int, components: int) -> None:
    """A fit of `components` needs at least two codes per component (checked before any code is computed)."""
    if codes < 2 * components:
        raise PriorError(f"fitting {components} components needs at least {2 * components} codes, got {codes}")


class AggregatePrior:
    """A K-component Gaussian mixture over z: weights (K,), means (K, Z), Cholesky factors (K, Z, Z)."""

    def __init__(self, weights: torch.Tensor, means: torch.Tensor, scale_tril: torch.Tensor,
                 meta: dict[str, Any] | None = None):
        if means.dim() != 2:
            raise PriorError(f"means must be (K, Z), one row per component, got shape {tuple(means.shape)}")
        K, Z = means.shape
        if weights.shape != (K,) or scale_tril.shape != (K, Z, Z):
            raise PriorError(f"mixture parts disagree: weights {tuple(weights.shape)}, means {tuple(means.shape)}, "
                             f"scale_tril {tuple(scale_tril.shape)}")
        if not (torch.isfinite(weights).all() and torch.isfinite(means).all() and torch.isfinite(scale_tril).all()):
            raise PriorError("mixture parameters are not all finite")
        if (weights < 0).any() or not abs(float(weights.sum()) - 1.0) < 1e-4:
            raise PriorError("mixture weights must be >= 0 and sum to 1")
        if (scale_tril.diagonal(dim1=-2, dim2=-1) <= 0).any() or (scale_tril.triu(1) != 0).any():
            raise PriorError("scale_tril must hold Cholesky factors (lower triangular, positive diagonal)")
        self.weights, self.means, self.scale_tril = weights.float(), means.float(), scale_tril.float()
        self.meta = dict(meta or {})

    @property
    def latent_dim(self) -> int:
        return self.means.shape[1]

    @property
    def components(self) -> int:
        return self.means.shape[0]

    @classmethod
    def fit(cls, mu: torch.Tensor, components: int = 32, seed: int = 0, max_iter: int = 100) -> "AggregatePrior":
        """EM fit of a full-covariance mixture on posterior means mu (N, Z), k-means++ initialised, REG_COVAR
        added to each covariance's diagonal, at most max_iter EM steps. prior.meta records these settings, the
        steps taken and whether EM converged (a fit that did not is kept, and says so there: no warning is
        printed). Costs about N * K * Z^2 per iteration: 20,000 codes, 32 components and Z = 64 take a few
        seconds per iteration on CPU."""
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.mixture import GaussianMixture

        components = whole("components", components, 1, PriorError)
        max_iter = whole("max_iter", max_iter, 1, PriorError)
        seed = seed_value(seed, PriorError)
        x = torch.as_tensor(mu).detach().double().cpu().numpy()
        if not np.isfinite(x).all():
            raise PriorError("the codes to fit are not all finite (a model whose weights went NaN?)")
        if x.ndim != 2 or x.shape[1] < 1:
            raise PriorError(f"the codes to fit must be a matrix (N, Z) with Z >= 1, got shape {x.shape}")
        check_fit_size(x.shape[0], components)
        gm = GaussianMixture(components, covariance_type=COVARIANCE, max_iter=max_iter, reg_covar=REG_COVAR,
                             n_init=N_INIT, init_params="k-means++", random_state=seed32(seed))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # its advice names settings no caller has
            gm.fit(x)
        chol = torch.linalg.cholesky(torch.from_numpy(gm.covariances_))
        meta = {"kind": "gmm", "components": components, "fitted_on": int(x.shape[0]), "seed": seed,
                "converged": bool(gm.converged_), "mean_log_density": float(gm.score(x)),
                "covariance_type": COVARIANCE, "reg_covar": REG_COVAR, "n_init": N_INIT, "init": "k-means++",
                "max_iter": max_iter, "iterations": int(gm.n_iter_)}
        return cls(torch.from_numpy(gm.weights_), torch.from_numpy(gm.means_), chol, meta)

    def to(self, device: torch.device | str) -> "AggregatePrior":
        self.weights, self.means, self.scale_tril = (t.to(device) for t in (self.weights, self.means, self.scale_tril))
        return self

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n codes (n, Z) (from_noise). Uses only `generator`, which the n codes share."""
        dev = self.means.device
        u = torch.rand(n, generator=generator, device=dev)
        return self.from_noise(u, torch.randn(n, self.latent_dim, generator=generator, device=dev))

    def from_noise(self, u: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Codes (n, Z) from noise: u (n,) uniform in [0, 1) picks each code's component by its weight
        (inverse CDF), eps (n, Z) standard normal places it in that component's Gaussian. Code i depends on
        u[i] and eps[i] alone (SeqVAE.prior_codes draws them per code)."""
        u, eps = u.to(self.means.device, torch.float64), eps.to(self.means)
        cdf = self.weights.double().cumsum(0)  # (K,)
        k = torch.searchsorted(cdf, u * cdf[-1], right=True).clamp(max=self.components - 1)  # first cdf > u * total
        z = torch.empty_like(eps)  # (n, Z)
        rows = max(2, CODE_NUMBERS // self.latent_dim ** 2)  # codes per chunk: the gathered factors stay bounded
        for i in range(0, len(k), rows):
            part = slice(i, i + rows)
            kp, ep = k[part], eps[part]
            if len(kp) == 1:  # a product of one matrix takes another path in torch, an ulp off: go as two
                kp, ep = kp.repeat(2), ep.repeat(2, 1)
            z[part] = (self.means[kp] + (self.scale_tril[kp] @ ep[..., None]).squeeze(-1))[: len(z[part])]
        return z

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log density of codes z (N, Z) under the mixture: (N,)."""
        mix = torch.distributions.MixtureSameFamily(
            torch.distributions.Categorical(probs=self.weights),
            torch.distributions.MultivariateNormal(self.means, scale_tril=self.scale_tril))
        return mix.log_prob(z.float())

    def save(self, directory: str | Path) -> None:
        """prior.safetensors, then prior.json into `directory` (atomic.write_pair). The JSON is the commit mark:
        it names the weights file's sha256, so an interrupted save (new weights, old or no JSON) is never read
        as a whole prior, and the previous prior stays loadable until the new one is whole."""
        d = Path(directory)
        tensors = {k: v.contiguous().cpu() for k, v in
                   {"weights": self.weights, "means": self.means, "scale_tril": self.scale_tril}.items()}
        atomic.write_pair(d / PRIOR_WEIGHTS, lambda p: save_file(tensors, str(p)), d / PRIOR_JSON,
                          {**self.meta, "kind": "gmm", "components": self.components,
                           "latent_dim": self.latent_dim})  # what load_prior reads and checks


def has_prior(directory: str | Path) -> bool:
    return (Path(directory) / PRIOR_JSON).is_file()


def load_prior(directory: str | Path, latent_dim: int) -> AggregatePrior | None:
    """The aggregate prior saved in a checkpoint dir, or None if it has none. Strict: a partial or
    mismatched prior is a PriorError, never silently the standard normal."""
    d = Path(directory)
    if not has_prior(d):
        return None  # (a prior.safetensors alone is what an interrupted first save leaves: not a prior)
    # the weights are those the JSON names: prior.safetensors, or the previous one while a save is under way
    try:
        meta, raw = atomic.read_pair(d / PRIOR_WEIGHTS, d / PRIOR_JSON)
    except (OSError, ValueError) as e:
        raise PriorError(f"{d / PRIOR_JSON}: unreadable ({str(e).splitlines()[0]})") from None
    if not isinstance(meta, dict) or meta.get("kind") != "gmm":
        raise PriorError(f"{d / PRIOR_JSON}: not a Gaussian-mixture prior")
    if raw is None or not isinstance(meta.get("sha256"), str):
        if not (d / PRIOR_WEIGHTS).is_file():
            raise PriorError(f"{d}: {PRIOR_JSON} without {PRIOR_WEIGHTS}")
        raise PriorError(f"{d / PRIOR_WEIGHTS}: does not match the sha256 in {PRIOR_JSON} (an interrupted save?); "
                         "fit the prior again")
    try:
        t = load(raw)
    except Exception as e:  # safetensors' error type differs across versions
        raise PriorError(f"{d / PRIOR_WEIGHTS}: unreadable ({str(e).splitlines()[0]})") from None
    expected = {"weights", "means", "scale_tril"}
    if set(t) != expected:
        raise PriorError(f"{d / PRIOR_WEIGHTS}: expected tensors {sorted(expected)}, found {sorted(t)}")
    try:
        prior = AggregatePrior(t["weights"], t["means"], t["scale_tril"], meta)
    except PriorError as e:
        raise PriorError(f"{d / PRIOR_WEIGHTS}: {e}") from None
    for field, value in (("components", prior.components), ("latent_dim", prior.latent_dim)):
        if field in meta and (type(meta[field]) is not int or meta[field] != value):  # a JSON number: int, not bool
            raise PriorError(f"{d / PRIOR_JSON}: {field} is {meta[field]!r}, but {PRIOR_WEIGHTS} holds {value}")
    if prior.latent_dim != latent_dim:
        raise PriorError(f"{d}: the prior is over {prior.latent_dim} dims, the model's z has {latent_dim}")
    return prior
