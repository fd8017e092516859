import json
import shutil

import pytest
import torch

from seqvae import checkpoint
from seqvae.api import InputError, SeqVAE
from seqvae.cli import main
from seqvae.config import ModelConfig
from seqvae.model import SentenceVAE
from seqvae.prior import PRIOR_JSON, PRIOR_WEIGHTS, AggregatePrior, PriorError, load_prior
from seqvae.tokenizer import load_tokenizer


def clusters(n=400, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[4.0, 0.0, 0.0], [-4.0, 1.0, 0.0]])
    return centres[torch.arange(n) % 2] + 0.3 * torch.randn(n, 3, generator=g)


def test_mixture_fits_the_codes_and_samples_reproducibly():
    prior = AggregatePrior.fit(clusters(), components=2, seed=0)
    assert sorted(round(float(m[0])) for m in prior.means) == [-4, 4]
    a = prior.sample(100, generator=torch.Generator().manual_seed(1))
    b = prior.sample(100, generator=torch.Generator().manual_seed(1))
    c = prior.sample(100, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c) and a.shape == (100, 3)
    assert ((a[:, 0].abs() - 4).abs() < 1.5).float().mean() > 0.95  # near one of the two centres, not in between
    near, far = prior.log_prob(torch.tensor([[4.0, 0, 0]])), prior.log_prob(torch.tensor([[0.0, 0, 0]]))
    assert near > far + 10
    assert prior.sample(0).shape == (0, 3)


def test_samples_follow_the_mixture_weights_and_covariances():
    """Unequal weights and a correlated component: a draw picks a component by its weight, then its Gaussian
    with covariance L L^T (not L^T L, not the identity)."""
    L = torch.tensor([[[1.0, 0.0], [0.9, 0.5]], [[0.3, 0.0], [0.0, 0.3]]])
    prior = AggregatePrior(torch.tensor([0.8, 0.2]), torch.tensor([[5.0, 0.0], [-5.0, 0.0]]), L)
    z = prior.sample(20000, generator=torch.Generator().manual_seed(0))
    first = z[:, 0] > 0
    assert float(first.float().mean()) == pytest.approx(0.8, abs=0.02)
    for part, comp in ((z[first], 0), (z[~first], 1)):
        assert torch.allclose(part.mean(0), prior.means[comp], atol=0.05)
        assert torch.allclose(torch.cov(part.T), L[comp] @ L[comp].T, atol=0.06)


def test_saved_prior_loads_strictly(tmp_path):
    prior = AggregatePrior.fit(clusters(), components=2, seed=0)
    prior.save(tmp_path)
    back = load_prior(tmp_path, latent_dim=3)
    assert torch.equal(back.means, prior.means) and torch.equal(back.scale_tril, prior.scale_tril)
    assert back.meta["components"] == 2 and back.meta["fitted_on"] == 400
    with pytest.raises(PriorError, match="over 3 dims"):
        load_prior(tmp_path, latent_dim=4)
    other = tmp_path / "other"
    AggregatePrior.fit(clusters(seed=5), components=3, seed=0).save(other)
    shutil.copy(other / PRIOR_WEIGHTS, tmp_path / PRIOR_WEIGHTS)  # new weights, the old JSON: an interrupted save
    with pytest.raises(PriorError, match="sha256"):
        load_prior(tmp_path, latent_dim=3)
    (tmp_path / PRIOR_WEIGHTS).unlink()
    with pytest.raises(PriorError, match="without"):
        load_prior(tmp_path, latent_dim=3)
    (tmp_path / PRIOR_JSON).write_text("{not json")
    with pytest.raises(PriorError, match="unreadable"):
        load_prior(tmp_path, latent_dim=3)
    (tmp_path / PRIOR_JSON).unlink()
    shutil.copy(other / PRIOR_WEIGHTS, tmp_path / PRIOR_WEIGHTS)
    assert load_prior(tmp_path, latent_dim=3) is None  # weights alone: what a first save cut short leaves
    with pytest.raises(PriorError, match="at least"):
        AggregatePrior.fit(clusters(n=5), components=4)


def test_api_samples_from_the_aggregate_prior_and_saves_it(tiny_vae_ckpt, trained_tiny_vae, tmp_path):
    vae = SeqVAE.from_pretrained(tiny_vae_ckpt, device="cpu")
    assert vae.prior is None
    standard = vae.sample(6, seed=0)  # a checkpoint without a prior samples from N(0, I)
    assert standard == vae.sample(6, seed=0, prior="standard")
    with pytest.raises(InputError, match="no aggregate prior"):
        vae.sample(2, prior="aggregate")
    with pytest.raises(InputError, match="unknown prior"):
        vae.sample(2, prior="flat")
    vae.fit_prior(trained_tiny_vae[2], components=2, seed=0)
    assert vae.sample(6, seed=0) == vae.sample(6, seed=0, prior="aggregate")  # the default once fitted
    z = vae.prior_codes(6, seed=3)
    assert torch.equal(z, vae.prior_codes(6, seed=3)) and z.shape == (6, vae.latent_dim)
    vae.save_pretrained(tmp_path / "with-prior")
    back = SeqVAE.from_pretrained(tmp_path / "with-prior", device="cpu")
    assert back.prior is not None and torch.equal(back.prior.means, vae.prior.means)
    assert back.sample(6, seed=0) == vae.sample(6, seed=0)
    (tmp_path / "with-prior" / PRIOR_JSON).write_text(json.dumps({"kind": "flow"}))
    with pytest.raises(checkpoint.CheckpointError, match="not a Gaussian-mixture"):
        SeqVAE.from_pretrained(tmp_path / "with-prior", device="cpu")


def test_language_model_has_no_prior_to_choose(tiny_lm_ckpt):
    lm = SeqVAE.from_pretrained(tiny_lm_ckpt, device="cpu")
    assert len(lm.sample(3, seed=0)) == 3
    with pytest.raises(InputError, match="no latent prior"):
        lm.sample(3, prior="standard")


def test_fit_prior_command(tiny_data_dir, tmp_path, capsys, one_line):
    tok = load_tokenizer(tiny_data_dir)
    torch.manual_seed(0)
    model = SentenceVAE(ModelConfig(vocab_size=tok.vocab_size, embed_dim=8, hidden_dim=12, latent_dim=3))
    ckpt = checkpoint.save(tmp_path / "ckpt", model, tok)
    assert main(["fit-prior", str(ckpt), "--data", str(tiny_data_dir), "--components", "3",
                 "--sentences", "100", "--device", "cpu"]) == 0
    assert "3 components fitted on 100 training codes" in capsys.readouterr().out
    assert load_prior(ckpt, latent_dim=3).components == 3
    assert main(["sample", str(ckpt), "-n", "2", "--seed", "0", "--prior", "aggregate", "--device", "cpu"]) == 0
    one_line(["fit-prior", ckpt, "--data", tiny_data_dir, "--components", "0"], "must be >= 1")
    one_line(["fit-prior", ckpt, "--data", tmp_path / "nowhere"], "no prepared data dir")
    lm = checkpoint.save(tmp_path / "lm", SentenceVAE(ModelConfig(vocab_size=tok.vocab_size, embed_dim=8, hidden_dim=12,
                                                                  latent=False)), tok)
    one_line(["fit-prior", lm], "is a language model: it has no latent space")  # before looking for its data
