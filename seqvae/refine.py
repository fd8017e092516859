"""Refined codes: a z that the trained decoder turns back into the sentence more faithfully than the
posterior mean does.

The encoder is amortized: one network guesses q(z|x) for every sentence, and its mean is often not
the code the decoder reads best (the amortization gap). Refining searches for it, per sentence,
with the model fixed: from the posterior mean mu, `steps` Adam steps on

    log p(x | z)  -  weight * 1/2 * sum(((z - mu) / sigma)^2)        (= log p(x|z) + weight * log q(z|x) + const)

weight = 0 is the code the decoder likes best, wherever it lies (it drifts far from the codes the
prior and the other sentences use); a small weight keeps it near q(z|x). Deterministic: the same
sentences give the same codes. docs/results.md measures what it buys (reconstruction BLEU,
interpolation endpoints) and what it costs.

    z = refine_codes(model, batch, mu, logvar, steps=10, lr=0.1, weight=0.1)   # (B, Z)

The same gap makes q(z|x) a loose proposal for importance sampling, so the IW-NLL overstates
-log p(x). `refine_posterior` fits a better one per sentence, again with the model fixed: from the
encoder's (mu, logvar), Adam on the ELBO  E_q[log p(x|z)] - KL(q || N(0, I))  over the Gaussian's
mean and log-variance, one reparameterized draw per step (stochastic variational inference, as in
Kim et al. 2018's semi-amortized VAEs). Any Gaussian is a valid proposal: the estimate stays an
estimate of the same log p(x), and one closer to p(z|x) gives less variance and bias
(metrics.iw_log_likelihood).

    mu_x, logvar_x = refine_posterior(model, batch, mu, logvar, steps=50, lr=0.05, generator=gen)
    # or each sentence's own noise (B, steps, Z), so that its fit does not depend on its batch (as evaluate
    # and SeqVAE.score do): noise=streams.sentence_noise(seed, streams.NOISE_FIT, keys, (50, Z), device)
"""

from __future__ import annotations

import math

import torch

from .config import MAX_REFINE_STEPS, real, whole
from .data import Batch
from .kernels import gaussian_kl
from .model import SentenceVAE

STEPS = 10     # Adam steps per sentence (SeqVAE.refine's default): as good as 50 at this step size
LR = 0.1       # Adam's step size on z
WEIGHT = 0.1   # how strongly the code is held near q(z|x)
POSTERIOR_STEPS = 50   # Adam steps per sentence when fitting a proposal (refine_posterior)
POSTERIOR_LR = 0.05    # their step size on the mean and the log-variance


class RefineError(ValueError):
    """Refinement options that make no sense (one-line message)."""


def check_refine(steps: int, lr: float, weight: float) -> tuple[int, float, float]:
    """Raise RefineError (one line) for bad refinement options; else (steps, lr, weight) as the int and Python
    floats that refinement computes with (a Decimal lr is a number too, but not one torch takes)."""
    steps = whole("refine steps", steps, 0, RefineError, MAX_REFINE_STEPS)
    lr, weight = real("refine lr", lr, RefineError), real("refine weight", weight, RefineError)
    if not 0 < lr < math.inf:
        raise RefineError(f"refine lr must be a finite number > 0, got {lr}")
    if not 0 <= weight < math.inf:
        raise RefineError(f"refine weight must be a finite number >= 0, got {weight}")
    return steps, lr, weight


def refine_codes(model: SentenceVAE, batch: Batch, mu: torch.Tensor, logvar: torch.Tensor, *,
                 steps: int = STEPS, lr: float = LR, weight: float = WEIGHT) -> torch.Tensor:
    """(B, Z) refined codes of the batch's sentences, from their posterior parameters mu, logvar (B, Z).

    Only z moves: the gradient is taken with respect to z alone (the model's parameters and their
    .grad are untouched), with the model in eval mode (no dropout), also inside a caller's no_grad or
    inference_mode (whose tensors autograd may not save: the batch and mu are copied)."""
    steps, lr, weight = check_refine(steps, lr, weight)
    with model.evaluating(), torch.inference_mode(False), torch.enable_grad():
        batch, mu = _tracked(batch), mu.detach().float().clone()
        inv_std = torch.exp(-0.5 * logvar.detach().float())
        z = mu.clone().requires_grad_(True)
        opt = torch.optim.Adam([z], lr=lr)
        for _ in range(steps):
            nll = model.token_nll(batch.dec_in, batch.target, z, batch.positions)  # (B,) -log p(x|z)
            loss = (nll + 0.5 * weight * ((z - mu) * inv_std).pow(2).sum(1)).sum()
            (z.grad,) = torch.autograd.grad(loss, [z])
            opt.step()
    return z.detach()


def refine_posterior(model: SentenceVAE, batch: Batch, mu: torch.Tensor, logvar: torch.Tensor, *,
                     steps: int = POSTERIOR_STEPS, lr: float = POSTERIOR_LR,
                     generator: torch.Generator | None = None,
                     noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(mu, logvar), (B, Z) each: a diagonal Gaussian per sentence fitted to p(z|x) by maximizing the
    ELBO from the encoder's posterior (mu, logvar). Seeded by `generator` (the draws' noise), or given the
    noise itself: `noise` (B, steps, Z), standard normal, one draw per sentence and step; like
    refine_codes, only the Gaussian's parameters move, with the model in eval mode, also inside a caller's
    inference_mode."""
    steps, lr, _ = check_refine(steps, lr, 0.0)
    if noise is not None and tuple(noise.shape) != (mu.shape[0], steps, mu.shape[1]):
        raise ValueError(f"noise must have shape {(mu.shape[0], steps, mu.shape[1])}, got {tuple(noise.shape)}")
    with model.evaluating(), torch.inference_mode(False), torch.enable_grad():
        batch, noise = _tracked(batch), None if noise is None else noise.clone()
        m = mu.detach().float().clone().requires_grad_(True)
        lv = logvar.detach().float().clone().requires_grad_(True)
        opt = torch.optim.Adam([m, lv], lr=lr)
        for i in range(steps):
            eps = torch.randn(m.shape, device=m.device, generator=generator) if noise is None else noise[:, i]  # (B, Z)
            z = m + torch.exp(0.5 * lv) * eps
            rec = model.token_nll(batch.dec_in, batch.target, z, batch.positions)  # (B,) -log p(x|z)
            m.grad, lv.grad = torch.autograd.grad((rec + gaussian_kl(m, lv)).sum(), [m, lv])
            opt.step()
    return m.detach(), lv.detach()


def _tracked(batch: Batch) -> Batch:
    """The batch with tensors that autograd may save: those made under inference_mode (a caller's) copied."""
    return Batch(*(t.clone() if t.is_inference() else t
                   for t in (batch.src, batch.src_lens, batch.dec_in, batch.target, batch.positions)))
