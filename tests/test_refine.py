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


def test_api_refine_keeps_input_order_and_feeds_reconstruct_and_interpolate(vae, texts):
    z = vae.refine(texts, steps=5)
    assert z.shape == (len(texts), vae.latent_dim)
    assert torch.allclose(vae.refine(texts[::-1], steps=5), z.flip(0), atol=1e-5)
    assert torch.equal(vae.refine(texts, steps=0), vae.encode(texts).mean)
    assert vae.reconstruct(texts, refine=5) == vae.decode(z)
    path, _ = vae.interpolate(texts[0], texts[1], steps=4, refine=5)
    assert torch.allclose(path[0], z[0], atol=1e-5) and torch.allclose(path[-1], z[1], atol=1e-5)
    with pytest.raises(InputError, match="steps must be >= 0"):
        vae.refine(texts, steps=-1)


def test_refine_needs_a_latent_space(tiny_lm_ckpt):
    with pytest.raises(InputError, match="latent"):
        SeqVAE.from_pretrained(tiny_lm_ckpt, device="cpu").refine(["the movie was great"])


def test_cli_refine(tiny_vae_ckpt, texts, capsys, one_line):
    from seqvae.cli import main

    assert main(["reconstruct", str(tiny_vae_ckpt), texts[0], "--refine", "5"]) == 0
    assert capsys.readouterr().out.strip() == SeqVAE.from_pretrained(tiny_vae_ckpt, device="cpu").reconstruct(
        texts[:1], refine=5)[0]
    one_line(["reconstruct", tiny_vae_ckpt, texts[0], "--refine", "-3"], "refine steps must be >= 0")
