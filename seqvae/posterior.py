"""Posterior: the diagonal Gaussians q(z|x) of N sentences that SeqVAE.encode returns, and their draws.

    post = vae.encode(texts)                 # Posterior(mu, logvar), each (N, Z)
    post.mean, post.std                      # (N, Z): the codes decode uses; exp(logvar / 2)
    post.sample(4, seed=0)                   # (N, 4, Z): row i's draws depend on the seed and i alone
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import generation
from .config import MAX_SAMPLES, whole
from .errors import InputError
from .streams import NOISE_POSTERIOR, draw_noise


@dataclass
class Posterior:
    """The diagonal Gaussians q(z|x) = N(mu, diag(exp(logvar))) of N sentences, in input order."""

    mu: torch.Tensor      # (N, Z)
    logvar: torch.Tensor  # (N, Z)

    @property
    def mean(self) -> torch.Tensor:
        """The posterior means mu, (N, Z) float32 on the model's device: the codes decode and reconstruct use."""
        return self.mu  # (N, Z)

    @property
    def std(self) -> torch.Tensor:
        """The posterior standard deviations exp(logvar / 2), (N, Z) float32."""
        return torch.exp(0.5 * self.logvar)  # (N, Z)

    def sample(self, n: int = 1, *, generator: torch.Generator | None = None,
               seed: int | None = None) -> torch.Tensor:
        """n draws per sentence, (N, n, Z). Row i's draws come from noise of its own, keyed by the seed and i
        (streams.NOISE_POSTERIOR), so they do not depend on the other rows or their number (a sentence's
        draws for n and seed are the same in any Posterior where it is row i), and they are drawn one code at a
        time (streams.draw_noise), so the first k of n draws are the k draws of the same seed:
        sample(n, seed=s)[:, :k] == sample(k, seed=s), as with SeqVAE.prior_codes and sample. `generator` instead of
        `seed`: the seed is drawn from it (one draw per call); seed=None: fresh randomness. The global RNG is
        untouched. n is at most config.MAX_SAMPLES (10**6) per sentence; a draw costs 3 to 6 us on one CPU
        thread. Returns float32 on the model's device. A bad n, seed or generator is an InputError."""
        n = whole("n", n, 0, InputError, MAX_SAMPLES)
        seed = generation.stream_seed(seed, generator, InputError)
        eps = draw_noise(seed, NOISE_POSTERIOR, range(len(self)), n, (self.mu.shape[1],), self.mu.device)
        return self.mu[:, None] + self.std[:, None] * eps.to(self.mu.dtype)  # (N, n, Z)

    def __len__(self) -> int:
        return self.mu.shape[0]
