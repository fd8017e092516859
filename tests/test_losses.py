import math
from fractions import Fraction

import pytest
import torch

from seqvae.config import ConfigError, RunConfig, TrainConfig
from seqvae.kernels import gaussian_kl, reparameterize_kl
from seqvae.losses import elbo_loss, kl_weight, length_free_kl


def test_logistic_schedule_values():
    cfg = TrainConfig(kl_schedule="logistic", kl_k=0.0025, kl_x0=2500)
    assert kl_weight(2500, cfg) == pytest.approx(0.5)
    assert kl_weight(0, cfg) == pytest.approx(1 / (1 + math.exp(0.0025 * 2500)))
    assert kl_weight(10**7, cfg) == pytest.approx(1.0)
    assert kl_weight(-(10**7), cfg) == pytest.approx(0.0)  # no overflow
    steps = [kl_weight(s, cfg) for s in range(0, 6000, 500)]
    assert steps == sorted(steps)


def test_linear_schedule_values():
    cfg = TrainConfig(kl_schedule="linear", kl_warmup=1000, kl_max=0.5)
    assert [kl_weight(s, cfg) for s in (0, 250, 1000, 5000)] == pytest.approx([0.0, 0.125, 0.5, 0.5])
    # no warmup: kl_max from the first step on (not 0 at step 0, as 0 / max(1, 0) made it)
    assert [kl_weight(s, cfg.replace(kl_warmup=0)) for s in (0, 1, 7)] == [0.5, 0.5, 0.5]


def test_cyclical_schedule_values():
    # 4 cycles over 1000 steps: period 250; beta rises over the first half of each cycle, then stays at 1
    cfg = TrainConfig(kl_schedule="cyclical", max_steps=1000, kl_cycles=4, kl_ratio=0.5)
    assert [kl_weight(s, cfg) for s in (0, 62, 125, 200, 249, 250, 375, 999)] == pytest.approx(
        [0.0, 62 / 125, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0])
    half = TrainConfig(kl_schedule="cyclical", max_steps=1000, kl_cycles=4, kl_ratio=0.5, kl_max=0.5)
    assert [kl_weight(s, half) for s in (62, 200)] == pytest.approx([0.5 * 62 / 125, 0.5])  # rises to kl_max


@pytest.mark.parametrize("max_steps,cycles", [(20, 6), (14, 6), (15, 9), (1000, 3), (32000, 4)])
def test_cyclical_schedule_restarts_at_zero_where_the_period_is_not_a_whole_number(max_steps, cycles):
    """beta at each step against the schedule in exact rationals: each cycle starts at beta 0 (20 steps in
    6 cycles: step 10 starts the fourth, where a float period of 3.33 gave beta 1)."""
    cfg = TrainConfig(kl_schedule="cyclical", max_steps=max_steps, kl_cycles=cycles, kl_ratio=0.25)
    period = Fraction(max_steps, cycles)
    exact = [float(min(Fraction(1), (s % period) / period / Fraction(1, 4))) for s in range(max_steps)]
    assert [kl_weight(s, cfg) for s in range(max_steps)] == pytest.approx(exact, abs=1e-12)


def test_constant_schedule():
    assert kl_weight(123, TrainConfig(kl_schedule="constant", kl_max=0.3)) == pytest.approx(0.3)


def test_elbo_loss_weights_kl():
    rec, kl = torch.tensor([10.0, 20.0]), torch.tensor([2.0, 4.0])
    assert float(elbo_loss(rec, kl, 0.5)) == pytest.approx((10 + 1 + 20 + 2) / 2)


def test_free_bits_clamp_on_batch_mean_kl():
    torch.manual_seed(0)
    B, Z, lam = 16, 6, 0.5
    mu = torch.zeros(B, Z)
    mu[:, :3] = 2.0  # dims 0-2: KL ~ 2 per dim, above lambda; dims 3-5: ~0, below
    mu[:, 5] = 1.0  # dim 5: KL 0.5 exactly, at lambda: clamped too ("at or below")
    mu = mu.requires_grad_()
    logvar = torch.zeros(B, Z, requires_grad=True)
    _, kl = reparameterize_kl(mu, logvar, free_bits=lam, backend="torch")
    per_dim_mean = 0.5 * (mu**2 + logvar.exp() - logvar - 1).mean(0)
    expected = torch.clamp(per_dim_mean, min=lam).sum()
    assert float(kl.detach().mean()) == pytest.approx(float(expected.detach()), rel=1e-6)
    kl.mean().backward()
    assert (mu.grad[:, 3:] == 0).all()  # clamped dims (dim 5 at lambda too) get no gradient
    assert torch.allclose(mu.grad[:, :3], mu.detach()[:, :3] / B)
    # without free bits: the plain KL
    _, kl0 = reparameterize_kl(mu.detach(), logvar.detach(), backend="torch")
    assert torch.allclose(kl0, gaussian_kl(mu.detach(), logvar.detach()))


def test_length_free_kl_gives_each_sentence_a_budget_by_its_length():
    mu = torch.tensor([[0.5, 0.5], [2.0, 1.0], [3.0, 0.0]], requires_grad=True)
    logvar = torch.zeros(3, 2)
    kl = gaussian_kl(mu, logvar)  # 0.25, 2.5, 4.5
    tokens = torch.tensor([4, 4, 10])
    out = length_free_kl(kl, tokens, 0.5)  # budgets 2, 2, 5: the first and third sentences are under theirs
    assert out.tolist() == pytest.approx([2.0, 2.5, 5.0])
    out.sum().backward()
    assert mu.grad[0].abs().sum() == 0 and mu.grad[2].abs().sum() == 0  # under budget: no KL gradient
    assert mu.grad[1].tolist() == pytest.approx([2.0, 1.0])  # over it: the KL's own gradient (d/dmu = mu)
    assert length_free_kl(kl, tokens, 0.0) is kl  # off
    at = torch.tensor([2.0, 2.5], requires_grad=True)  # at the budget (2) and above it
    length_free_kl(at, torch.tensor([4, 4]), 0.5).sum().backward()
    assert at.grad.tolist() == [0.0, 1.0]  # at the budget: free, as free bits' "at or below" (not half)
    with pytest.raises(ConfigError, match="free_nats_per_token must be >= 0"):
        TrainConfig.from_dict({"free_nats_per_token": -1.0})
    with pytest.raises(ConfigError, match="free_nats_per_token > 0 needs a VAE"):
        RunConfig.from_dict({"model": {"latent": False}, "train": {"free_nats_per_token": 1.0}})
