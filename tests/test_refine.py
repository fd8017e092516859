"""Refined codes (seqvae.refine, SeqVAE.refine): better likelihood than the posterior mean, z alone moves."""

import pytest
import torch

from seqvae import SeqVAE
from seqvae.api import InputError
from seqvae.data import collate
from seqvae.refine import RefineError, refine_codes


def _batch(vae, texts):
    cfg = vae.model.cfg
    return collate(vae.tokenize(texts), pad_id=cfg.pad_id, bos_id=cfg.bos_id, eos_id=cfg.eos_id)


def test_refining_raises_the_likelihood_and_moves_only_z(vae, texts):
    model = vae.model
    b = _batch(vae, texts)
    with torch.no_grad():
        mu, logvar = model.encode(b.src, b.src_lens)
        before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()  # refining runs in eval mode and puts the mode back
    z = refine_codes(model, b, mu, logvar, steps=30, lr=0.05, weight=0.0)
    assert model.training
    model.eval()
    with torch.no_grad():
        nll_mu = model.token_nll(b.dec_in, b.target, mu)
        nll_z = model.token_nll(b.dec_in, b.target, z)
    assert nll_z.sum() < nll_mu.sum() - 1.0  # the refined codes explain the sentences better
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(refine_codes(model, b, mu, logvar, steps=30, lr=0.05, weight=0.0), z)  # deterministic
    assert torch.equal(refine_codes(model, b, mu, logvar, steps=0), mu)
    held = refine_codes(model, b, mu, logvar, steps=30, lr=0.05, weight=100.0)  # held near q(z|x)
    assert (held - mu).norm() < (z - mu).norm()
    with pytest.raises(RefineError, match="lr"):
        refine_codes(model, b, mu, logvar, lr=0.0)


def test_refined_codes_minimize_the_nll_plus_the_weighted_posterior_term(vae, texts, monkeypatch):
    """Under a stand-in likelihood with its peak at a, -log p(x|z) = |z - a|^2 / 2, the refined code is the
    minimum of that plus weight * |(z - mu) / sigma|^2 / 2, per dimension (a + w mu / s^2) / (1 + w / s^2)."""
    import math

    model, Z = vae.model, vae.latent_dim
    b = _batch(vae, texts[:2])
    a = torch.linspace(-1.0, 1.0, Z).expand(2, Z)
    mu, logvar = torch.zeros(2, Z), torch.full((2, Z), math.log(0.25))
    logvar[:, 0] = math.log(4.0)  # one wide dimension: held less
    monkeypatch.setattr(model, "token_nll", lambda dec_in, target, z, positions=None: 0.5 * ((z - a) ** 2).sum(1))
    z = refine_codes(model, b, mu, logvar, steps=3000, lr=0.01, weight=2.0)
    var = logvar.exp()
    assert torch.allclose(z, (a + 2.0 * mu / var) / (1 + 2.0 / var), atol=0.02)


def test_api_refine_keeps_input_order_and_feeds_reconstruct_and_interpolate(vae, texts):
    z = vae.refine(texts, steps=5)
    assert z.shape == (len(texts), vae.latent_dim)
    assert torch.allclose(vae.refine(texts[::-1], steps=5), z.flip(0), atol=1e-5)
    assert torch.equal(vae.refine(texts, steps=0), vae.encode(texts).mean)
    assert vae.reconstruct(texts, refine=5) == vae.decode(z)
    path, _ = vae.interpolate(texts[0], texts[1], steps=4, refine=5)
    assert torch.allclose(path[0], z[0], atol=1e-5) and torch.allclose(path[-1], z[1], atol=1e-5)
    with pytest.raises(InputError, match="steps must be between 0 and 10,000"):
        vae.refine(texts, steps=-1)


def test_refine_needs_a_latent_space(tiny_lm_ckpt):
    with pytest.raises(InputError, match="latent"):
        SeqVAE.from_pretrained(tiny_lm_ckpt, device="cpu").refine(["the movie was great"])


def test_cli_refine(tiny_vae_ckpt, texts, capsys, one_line):
    from seqvae.cli import main

    assert main(["reconstruct", str(tiny_vae_ckpt), texts[0], "--refine", "5"]) == 0
    assert capsys.readouterr().out.strip() == SeqVAE.from_pretrained(tiny_vae_ckpt, device="cpu").reconstruct(
        texts[:1], refine=5)[0]
    one_line(["reconstruct", tiny_vae_ckpt, texts[0], "--refine", "-3"], "--refine must be between 0 and 10,000, got -3")


def _peaked_model(seed: int = 0):
    """A random model with one latent dimension that its decoder reads strongly: a peaked p(z|x)
    away from where the random encoder puts q(z|x), and few enough dimensions to integrate exactly."""
    from seqvae.config import ModelConfig
    from seqvae.model import SentenceVAE

    torch.manual_seed(seed)
    model = SentenceVAE(ModelConfig(vocab_size=20, embed_dim=8, hidden_dim=12, latent_dim=1,
                                    unk_id=3, bos_id=1, eos_id=2)).eval()  # the ids PEAKED_BATCH is collated with
    with torch.no_grad():
        model.decoder.init_state.weight.mul_(4.0)
        model.decoder.gru.weight_ih_l0[:, -1:].mul_(4.0)  # the z input of every step
        model.decoder.out.weight.mul_(3.0)
    return model


PEAKED_BATCH = [[4, 5, 6, 7], [8, 9, 9, 3, 10, 11], [12, 13], [5, 5, 14, 15, 16]]


def _exact_log_likelihood(model, b):
    """log p(x) = log ∫ p(x|z) N(z; 0, 1) dz per sentence, by quadrature on a fine grid (Z = 1)."""
    import math

    from seqvae.metrics import log_standard_normal

    grid = torch.linspace(-8.0, 8.0, 4001)[:, None]  # (G, 1)
    with torch.no_grad():
        return torch.stack([torch.logsumexp(-model.token_nll(b.dec_in[i:i + 1].expand(len(grid), -1),
                                                              b.target[i:i + 1].expand(len(grid), -1), grid)
                                            + log_standard_normal(grid), 0) + math.log(16.0 / 4000)
                            for i in range(b.size)])


def test_fitted_proposals_estimate_the_exact_likelihood_more_tightly():
    """The exact log p(x), against the importance-weighted estimate with q(z|x) and with the fitted proposals."""
    from seqvae.metrics import iw_log_likelihood
    from seqvae.refine import refine_posterior

    model = _peaked_model()
    b = collate(PEAKED_BATCH, pad_id=0, bos_id=1, eos_id=2)
    exact = _exact_log_likelihood(model, b)
    with torch.no_grad():
        mu, logvar = model.encode(b.src, b.src_lens)
    gen = torch.Generator().manual_seed(0)
    fitted = refine_posterior(model, b, mu, logvar, steps=100, lr=0.05, generator=gen)
    assert all(p.grad is None for p in model.parameters())
    with torch.no_grad():
        fit_many = iw_log_likelihood(model, b, 2000, proposal=fitted, generator=gen)
        assert torch.allclose(fit_many, exact, atol=0.05)  # a proposal's density, not only its draws, is right
        enc_few = iw_log_likelihood(model, b, 5, generator=gen)
        fit_few = iw_log_likelihood(model, b, 5, proposal=fitted, generator=gen)
    assert (exact - fit_few).mean() < 0.5 * (exact - enc_few).mean()  # both under log p(x) on average; fitted closer


def test_evaluate_reports_the_estimate_from_fitted_proposals():
    """evaluate(refine_steps=N): "nll_refined" is the IW-NLL with the fitted proposals, closer to the exact
    NLL than "nll" (with q(z|x)), which stays as it is without refining."""
    from seqvae.data import SentenceDataset
    from seqvae.metrics import evaluate

    model = _peaked_model()
    with torch.no_grad():  # an encoder whose q(z|x) is narrow and beside p(z|x): 5 samples of it fall short
        model.encoder.to_stats.bias[0] += 2.0
        model.encoder.to_stats.bias[1] -= 2.0
    exact = -float(_exact_log_likelihood(model, collate(PEAKED_BATCH, pad_id=0, bos_id=1, eos_id=2)).mean())
    ds = SentenceDataset.from_lists(PEAKED_BATCH)
    res = evaluate(model, ds, k=5, refine_steps=100)
    assert res["refine_steps"] == 100 and res["nll"] == evaluate(model, ds, k=5)["nll"]
    assert res["nll"] - exact > 1.0 and abs(res["nll_refined"] - exact) < 0.3


def test_refined_posterior_raises_the_elbo_deterministically(vae, texts):
    from seqvae.metrics import log_normal, log_standard_normal
    from seqvae.refine import refine_posterior

    model = vae.model
    b = _batch(vae, texts)
    with torch.no_grad():
        mu, logvar = model.encode(b.src, b.src_lens)

    def elbo(m, lv):  # 64 draws of log p(x|z) + log p(z) - log q(z|x), per sentence
        g = torch.Generator().manual_seed(1)
        z = m[None] + torch.exp(0.5 * lv)[None] * torch.randn(64, *m.shape, generator=g)
        rec = torch.stack([model.token_nll(b.dec_in, b.target, zk) for zk in z])
        return (-rec + log_standard_normal(z) - log_normal(z, m[None], lv[None])).mean(0)

    fit = refine_posterior(model, b, mu, logvar, steps=40, generator=torch.Generator().manual_seed(0))
    again = refine_posterior(model, b, mu, logvar, steps=40, generator=torch.Generator().manual_seed(0))
    assert torch.equal(fit[0], again[0]) and torch.equal(fit[1], again[1])
    with torch.no_grad():
        assert elbo(*fit).sum() > elbo(mu, logvar).sum() + 0.5
    same = refine_posterior(model, b, mu, logvar, steps=0)
    assert torch.equal(same[0], mu) and torch.equal(same[1], logvar)
    with pytest.raises(RefineError, match="lr"):
        refine_posterior(model, b, mu, logvar, lr=-1.0)


def test_score_with_fitted_proposals(vae, texts):
    plain = vae.score(texts, samples=8)
    fitted = vae.score(texts, samples=8, refine=20)
    assert fitted.shape == plain.shape and torch.isfinite(fitted).all()
    assert torch.equal(vae.score(texts[::-1], samples=8, refine=20), fitted.flip(0))  # input order, seeded
    assert fitted.mean() < plain.mean()  # a tighter (lower) estimate of the same -log p(x)
    with pytest.raises(InputError, match="refine"):
        vae.score(texts, refine=-1)


def test_refining_inside_a_callers_inference_mode(vae, texts):
    """refine_codes, refine_posterior and evaluate(refine_steps=N) give inside torch.inference_mode() what they
    give outside it, also from a batch and posteriors made inside it (inference tensors, which autograd may not
    save); they ended in 'element 0 of tensors does not require grad' or 'Inference tensors cannot be saved'."""
    from seqvae.data import SentenceDataset
    from seqvae.metrics import evaluate
    from seqvae.refine import refine_posterior

    model = vae.model
    b = _batch(vae, texts)
    with torch.no_grad():
        mu, logvar = model.encode(b.src, b.src_lens)
    noise = torch.randn(b.size, 6, vae.latent_dim, generator=torch.Generator().manual_seed(0))
    codes = refine_codes(model, b, mu, logvar, steps=6)
    fitted = refine_posterior(model, b, mu, logvar, steps=6, noise=noise)
    ds = SentenceDataset.from_lists(vae.tokenize(texts))
    nll_refined = evaluate(model, ds, k=4, refine_steps=6)["nll_refined"]
    with torch.inference_mode():
        b_inf = _batch(vae, texts)
        mu_inf, logvar_inf = model.encode(b_inf.src, b_inf.src_lens)
        for batch, m, lv in ((b, mu, logvar), (b_inf, mu_inf, logvar_inf)):
            assert torch.equal(refine_codes(model, batch, m, lv, steps=6), codes)
            got = refine_posterior(model, batch, m, lv, steps=6, noise=noise.clone())
            assert torch.equal(got[0], fitted[0]) and torch.equal(got[1], fitted[1])
        assert evaluate(model, ds, k=4, refine_steps=6)["nll_refined"] == nll_refined
    assert all(p.grad is None for p in model.parameters())


def test_refine_options_that_are_numbers_of_other_types_refine_as_their_floats(vae, texts):
    """A Decimal (or Fraction) lr or weight passes the number check (config.real): refining computes with its
    float, as with the float itself (a Decimal ended in a bare TypeError inside Adam or the loss)."""
    from decimal import Decimal
    from fractions import Fraction

    from seqvae.refine import refine_posterior

    model, b = vae.model, _batch(vae, texts)
    with torch.no_grad():
        mu, logvar = model.encode(b.src, b.src_lens)
    want = refine_codes(model, b, mu, logvar, steps=3, lr=0.05, weight=0.5)
    for lr, weight in [(Decimal("0.05"), Decimal("0.5")), (Fraction(1, 20), Fraction(1, 2))]:
        assert torch.equal(refine_codes(model, b, mu, logvar, steps=3, lr=lr, weight=weight), want)
    noise = torch.randn(len(mu), 3, mu.shape[1], generator=torch.Generator().manual_seed(0))
    fitted = refine_posterior(model, b, mu, logvar, steps=3, lr=0.05, noise=noise)
    for a, c in zip(refine_posterior(model, b, mu, logvar, steps=3, lr=Decimal("0.05"), noise=noise), fitted):
        assert torch.equal(a, c)
