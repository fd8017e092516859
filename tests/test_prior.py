import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from seqvae import checkpoint
from seqvae.api import InputError, SeqVAE
from seqvae.cli import main
from seqvae.config import ModelConfig
from seqvae.data import SentenceDataset
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
    one_line(["fit-prior", ckpt, "--data", tiny_data_dir, "--components", "0"], "--components must be >= 1, got 0")
    one_line(["fit-prior", ckpt, "--data", tiny_data_dir, "--sentences", "0"], "--sentences must be >= 1, got 0")
    n_train = len(SentenceDataset.from_dir(tiny_data_dir, "train"))  # an explicit count the split lacks: refused ...
    one_line(["fit-prior", ckpt, "--data", tiny_data_dir, "--sentences", n_train + 1],
             f"--sentences {n_train + 1}: the train split of {tiny_data_dir} has {n_train} sentences")
    assert main(["fit-prior", str(ckpt), "--data", str(tiny_data_dir), "--components", "2", "--device", "cpu"]) == 0
    assert f"fitted on {n_train} training codes" in capsys.readouterr().out  # ... the default: the whole split
    one_line(["fit-prior", ckpt, "--data", tmp_path / "nowhere"], "no prepared data dir")
    lm = checkpoint.save(tmp_path / "lm", SentenceVAE(ModelConfig(vocab_size=tok.vocab_size, embed_dim=8, hidden_dim=12,
                                                                  latent=False)), tok)
    one_line(["fit-prior", lm], "is a language model: it has no latent space")  # before looking for its data


@pytest.mark.parametrize("seed", [-1, 1.5, None, True, 2**63, "0"])
def test_fit_refuses_a_seed_that_is_not_one(trained_tiny_vae, tiny_vae_ckpt, seed):
    """As every seed elsewhere: an integer in [0, 2**63). -1 was scikit-learn's ValueError, None a TypeError,
    and 1.5 was taken and written into prior.json as it was."""
    with pytest.raises(PriorError, match=r"seed must be an integer in \[0, 2\*\*63\)"):
        AggregatePrior.fit(clusters(), components=2, seed=seed)
    vae = SeqVAE.from_pretrained(tiny_vae_ckpt, device="cpu")
    with pytest.raises(InputError, match="seed must be an integer"):
        vae.fit_prior(trained_tiny_vae[2], components=2, seed=seed)
    assert vae.prior is None


def test_fit_takes_numpy_integers_and_saves_them_as_json(tmp_path):
    prior = AggregatePrior.fit(clusters(), components=np.int64(2), seed=np.int64(3))  # a saved seed was np.int64:
    prior.save(tmp_path)                                                             # json.dumps failed
    assert json.loads((tmp_path / PRIOR_JSON).read_text())["seed"] == 3
    assert load_prior(tmp_path, latent_dim=3).components == 2


def test_fit_refuses_codes_that_are_not_finite():
    x = clusters()
    x[7, 1] = float("nan")
    with pytest.raises(PriorError, match="not all finite"):
        AggregatePrior.fit(x, components=2)


def test_degenerate_codes_fit_without_nan():
    """Codes all equal, or one dimension that never moves (a collapsed unit): covariances stay positive
    definite (scikit-learn's reg_covar), so sampling and log densities are finite."""
    same = torch.zeros(50, 3)
    flat = clusters()
    flat[:, 1] = 2.0
    for codes in (same, flat):
        prior = AggregatePrior.fit(codes, components=2, seed=0)
        assert abs(float(prior.weights.sum()) - 1) < 1e-6
        assert (torch.linalg.eigvalsh(prior.scale_tril @ prior.scale_tril.mT) > 0).all()
        assert torch.isfinite(prior.log_prob(codes)).all()
        assert torch.isfinite(prior.sample(100, generator=torch.Generator().manual_seed(0))).all()


def test_samples_have_the_codes_mean_and_covariance():
    """The fitted mixture has the codes' moments (mean sum_k w_k m_k, covariance sum_k w_k (L_k L_k^T +
    (m_k - mean)(m_k - mean)^T)), and its samples have the mixture's (within a few standard errors at 1e5)."""
    g = torch.Generator().manual_seed(0)
    mix = torch.tensor([[1.0, 0, 0], [0.8, 0.5, 0], [-0.3, 0.2, 0.2]])
    codes = clusters() + torch.randn(400, 3, generator=g) @ mix.T
    prior = AggregatePrior.fit(codes, components=2, seed=0)
    w, m, L = prior.weights.double(), prior.means.double(), prior.scale_tril.double()
    mean = w @ m
    cov = sum(w[k] * (L[k] @ L[k].T + torch.outer(m[k] - mean, m[k] - mean)) for k in range(len(w)))
    assert torch.allclose(mean, codes.mean(0).double(), atol=0.05)
    assert torch.allclose(cov, torch.cov(codes.T).double(), atol=0.1)
    z = prior.sample(100_000, generator=torch.Generator().manual_seed(1)).double()
    assert torch.allclose(z.mean(0), mean, atol=0.05)
    assert torch.allclose(torch.cov(z.T), cov, atol=0.1, rtol=0.02)  # var(x0) ~ 17: its SE at 1e5 is ~0.08


def test_codes_from_noise_take_the_component_whose_share_holds_u():
    """from_noise: u in [0, w_0) picks component 0, [w_0, w_0 + w_1) component 1, ...; a weightless component
    is never picked; eps = 0 is the component's mean, eps = e_j its mean plus column j of its factor."""
    L = torch.tensor([[[1.0, 0.0], [0.9, 0.5]], [[2.0, 0.0], [0.0, 2.0]], [[0.3, 0.0], [0.1, 0.3]]])
    means = torch.tensor([[5.0, 0.0], [0.0, 9.0], [-5.0, 0.0]])
    prior = AggregatePrior(torch.tensor([0.25, 0.0, 0.75]), means, L)
    u = torch.tensor([0.0, 0.2499, 0.25, 0.6, 0.9999])
    z = prior.from_noise(u, torch.zeros(5, 2))
    assert torch.equal(z, means[[0, 0, 2, 2, 2]])
    z = prior.from_noise(torch.tensor([0.1, 0.1]), torch.eye(2))
    assert torch.allclose(z, means[0] + L[0].T)


def test_a_prior_file_whose_factors_are_not_cholesky_factors_is_refused(tmp_path):
    """A hand-edited prior.safetensors (with its sha256 updated): a factor that is not lower triangular with a
    positive diagonal gave samples of one covariance and log densities of another, or a torch error; means that
    are not a (K, Z) matrix gave a ValueError traceback (not enough values to unpack), not one line."""
    prior = AggregatePrior.fit(clusters(), components=2, seed=0)
    for edit, message in (("zero diagonal", "Cholesky"), ("upper", "Cholesky"), ("means of one row", r"means must be \(K, Z\)")):
        tril, means = prior.scale_tril.clone(), prior.means
        if edit == "zero diagonal":
            tril[0, 1, 1] = 0.0
        elif edit == "upper":
            tril[1, 0, 2] = 0.5
        else:
            means = means[0]
        _forge(tmp_path, {"means": means, "scale_tril": tril})
        with pytest.raises(PriorError, match=message):
            load_prior(tmp_path, latent_dim=3)


def _wide_prior(Z=64, K=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    tril = torch.randn(K, Z, Z, generator=g).tril(-1) * 0.1 + torch.diag_embed(torch.rand(K, Z, generator=g) + 0.5)
    return AggregatePrior(torch.full((K,), 1.0 / K), torch.randn(K, Z, generator=g), tril)


def test_codes_from_noise_are_each_codes_own_in_every_bit_however_many_are_drawn(monkeypatch):
    """from_noise row by row: the codes of u[:k], eps[:k] are the first k of any longer draw's, bit for bit, in
    chunks (prior.CODE_NUMBERS) or not. A single code went through another matrix product than a batch of them
    and came out an ulp off (seen on CPU): prior_codes(1, seed=s) was not prior_codes(n, seed=s)[0]."""
    import seqvae.prior as prior_module

    prior = _wide_prior()  # Z = 64, the flagship's (at Z = 16 the single product agreed)
    g = torch.Generator().manual_seed(1)
    u, eps = torch.rand(300, generator=g, dtype=torch.float64), torch.randn(300, 64, generator=g)
    every = prior.from_noise(u, eps)
    for k in (1, 2, 7, 299):
        assert torch.equal(prior.from_noise(u[:k], eps[:k]), every[:k]), k
    monkeypatch.setattr(prior_module, "CODE_NUMBERS", 64 * 64 * 10)  # chunks of 10 codes
    for k in (1, 10, 11, 21, 300):
        assert torch.equal(prior.from_noise(u[:k], eps[:k]), every[:k]), k


def test_codes_from_noise_take_memory_for_a_chunk_not_for_every_code(tmp_path):
    """`seqvae sample -n 1000000` (the bound) from the flagship's prior (Z = 64) gathered one Z x Z factor per
    code at once, 16 GB; in chunks, the memory for the codes themselves. Measured in a process of its own:
    40,000 codes of Z = 64 took 655 MB more at once."""
    import subprocess
    import sys

    code = ("import resource, torch, tests.test_prior as t; p = t._wide_prior(); n = 40000; "
            "u, e = torch.rand(n, dtype=torch.float64), torch.randn(n, 64); p.from_noise(u[:10], e[:10]); "
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; z = p.from_noise(u, e); "
            "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)")
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)})
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) < 200, f"from_noise of 40,000 codes took {out.stdout.strip()} MB more"


def test_a_prior_made_from_its_parts_saves_a_checkpoint_that_loads(tiny_vae_ckpt, tmp_path):
    """AggregatePrior(weights, means, scale_tril) with no meta (the constructor, not fit) saved a prior.json
    without its kind, which load_prior refuses: save_pretrained wrote a checkpoint from_pretrained would not load."""
    vae = SeqVAE.from_pretrained(tiny_vae_ckpt, device="cpu")
    Z = vae.latent_dim
    vae.prior = AggregatePrior(torch.tensor([0.25, 0.75]), torch.arange(2.0 * Z).reshape(2, Z), torch.eye(Z).expand(2, Z, Z))
    vae.save_pretrained(tmp_path / "ck")
    back = SeqVAE.from_pretrained(tmp_path / "ck", device="cpu")
    assert torch.equal(back.prior.means, vae.prior.means) and torch.equal(back.prior.weights, vae.prior.weights)
    assert back.prior_codes(4, seed=1).tolist() == vae.prior_codes(4, seed=1).tolist()


def test_a_refit_on_a_full_disk_keeps_the_old_prior(tmp_path, monkeypatch):
    """prior.save over a saved prior, failing at its JSON (the disk filled): the old prior loads as it was."""
    import errno

    from seqvae import atomic

    old = AggregatePrior.fit(clusters(), components=2, seed=0)
    old.save(tmp_path)
    before = sorted(tmp_path.iterdir())

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic, "write_json", full)
    with pytest.raises(OSError, match="No space"):
        AggregatePrior.fit(clusters(seed=5), components=3, seed=0).save(tmp_path)
    monkeypatch.undo()
    back = load_prior(tmp_path, latent_dim=3)
    assert torch.equal(back.means, old.means) and sorted(tmp_path.iterdir()) == before


def _forge(directory, tensors, **fields):
    """Write a prior into `directory` whose tensors (and JSON fields) are edited by hand, its sha256 kept right."""
    prior = AggregatePrior.fit(clusters(), components=2, seed=0)
    prior.save(directory)
    parts = {"weights": prior.weights, "means": prior.means, "scale_tril": prior.scale_tril, **tensors}
    save_file({k: v.contiguous() for k, v in parts.items()}, str(directory / PRIOR_WEIGHTS))
    meta = {**json.loads((directory / PRIOR_JSON).read_text()), **fields}
    meta["sha256"] = hashlib.sha256((directory / PRIOR_WEIGHTS).read_bytes()).hexdigest()
    (directory / PRIOR_JSON).write_text(json.dumps(meta))


@pytest.mark.parametrize("edit, message", [
    ({"weights": torch.tensor([1.5, -0.5])}, "weights must be >= 0"),
    ({"weights": torch.tensor([float("nan"), 0.5])}, "not all finite"),
    ({"weights": torch.tensor([0.5, 0.6])}, "sum to 1"),
    ({"weights": torch.tensor([1.0])}, "parts disagree"),
    ({"scale_tril": -torch.eye(3).expand(2, 3, 3)}, "Cholesky"),
])
def test_a_prior_file_refused_for_its_numbers_is_named(tmp_path, edit, message):
    """The mixture's own checks (weights, shapes, factors) said what was wrong but not where: the one line of
    `seqvae sample` named no file."""
    _forge(tmp_path, edit)
    with pytest.raises(PriorError, match=message) as e:
        load_prior(tmp_path, latent_dim=3)
    assert str(e.value).startswith(f"{tmp_path / PRIOR_WEIGHTS}: ") and "\n" not in str(e.value)


@pytest.mark.parametrize("fields", [{"components": 5}, {"latent_dim": 7}, {"components": "2"}, {"latent_dim": True}])
def test_a_prior_json_whose_counts_disagree_with_its_tensors_is_refused(tmp_path, fields):
    """prior.json's components and latent_dim are what the tensors hold: a JSON saying 5 components over a file of
    2 loaded, and the checkpoint then described a prior it did not have."""
    _forge(tmp_path, {}, **fields)
    (field, value), = fields.items()
    with pytest.raises(PriorError, match=f"{field} is {value!r}, but {PRIOR_WEIGHTS} holds") as e:
        load_prior(tmp_path, latent_dim=3)
    assert str(e.value).startswith(str(tmp_path / PRIOR_JSON))


def test_a_prior_made_from_its_parts_saves_its_counts(tmp_path):
    prior = AggregatePrior(torch.tensor([0.5, 0.5]), torch.zeros(2, 3), torch.eye(3).expand(2, 3, 3))
    prior.save(tmp_path)
    meta = json.loads((tmp_path / PRIOR_JSON).read_text())
    assert (meta["components"], meta["latent_dim"]) == (2, 3) and load_prior(tmp_path, latent_dim=3).components == 2


def test_the_fit_records_its_settings_and_they_reproduce_it():
    """prior.json said the seed and whether EM converged, not how it was fitted (covariance type, the floor added
    to the covariances, EM starts, the step limit and the steps taken): scikit-learn given those fields fits the
    same mixture."""
    from sklearn.mixture import GaussianMixture

    x = clusters(seed=3)
    prior = AggregatePrior.fit(x, components=3, seed=4, max_iter=50)
    m = prior.meta
    gm = GaussianMixture(m["components"], covariance_type=m["covariance_type"], reg_covar=m["reg_covar"],
                         n_init=m["n_init"], init_params=m["init"], max_iter=m["max_iter"],
                         random_state=m["seed"]).fit(x.double().numpy())
    assert torch.equal(prior.means, torch.from_numpy(gm.means_).float()) and m["iterations"] == gm.n_iter_
    assert torch.allclose(prior.scale_tril @ prior.scale_tril.mT, torch.from_numpy(gm.covariances_).float(), atol=1e-6)


def test_a_fit_that_does_not_converge_says_so_in_its_record_not_in_a_warning(recwarn):
    g = torch.Generator().manual_seed(0)
    prior = AggregatePrior.fit(torch.randn(400, 3, generator=g) * torch.tensor([1.0, 5.0, 0.1]), components=8,
                               seed=0, max_iter=1)
    assert prior.meta["converged"] is False and prior.meta["iterations"] == 1
    assert not [w for w in recwarn if "converge" in str(w.message)]


@pytest.mark.parametrize("codes, kw, message", [
    (torch.zeros(50, 0), {}, r"a matrix \(N, Z\) with Z >= 1"),
    (torch.zeros(50), {}, r"a matrix \(N, Z\) with Z >= 1"),
    (torch.zeros(50, 3), {"max_iter": 0}, "max_iter must be >= 1"),
])
def test_fit_refuses_codes_without_a_dimension_and_no_steps(codes, kw, message):
    """Codes of Z = 0 were scikit-learn's ValueError ('Found array with 0 feature(s)'), not a PriorError."""
    with pytest.raises(PriorError, match=message):
        AggregatePrior.fit(codes, components=2, **kw)


def test_a_one_dimensional_latent_fits_and_samples():
    codes = clusters()[:, :1]
    prior = AggregatePrior.fit(codes, components=2, seed=0)
    z = prior.sample(5000, generator=torch.Generator().manual_seed(0))
    assert z.shape == (5000, 1) and torch.isfinite(prior.log_prob(z)).all()
    assert float(z.mean()) == pytest.approx(float(codes.mean()), abs=0.2)


def test_fit_prior_replaces_a_broken_prior(tiny_data_dir, tmp_path, capsys):
    """A prior whose files disagree says 'fit the prior again', but `seqvae fit-prior` loaded the checkpoint with its
    prior first and stopped at that same error: no command could repair it."""
    tok = load_tokenizer(tiny_data_dir)
    torch.manual_seed(0)
    ckpt = checkpoint.save(tmp_path / "ckpt", SentenceVAE(ModelConfig(vocab_size=tok.vocab_size, embed_dim=8,
                                                                      hidden_dim=12, latent_dim=3)), tok)
    fit = ["fit-prior", str(ckpt), "--data", str(tiny_data_dir), "--sentences", "60", "--device", "cpu"]
    assert main(fit + ["--components", "2"]) == 0
    meta = json.loads((ckpt / PRIOR_JSON).read_text())
    (ckpt / PRIOR_JSON).write_text(json.dumps({**meta, "sha256": "0" * 64}))
    with pytest.raises(checkpoint.CheckpointError, match="fit the prior again"):
        SeqVAE.from_pretrained(ckpt, device="cpu")
    capsys.readouterr()
    assert main(fit + ["--components", "3"]) == 0, capsys.readouterr().err
    assert SeqVAE.from_pretrained(ckpt, device="cpu").prior.components == 3


def test_fit_prior_counts_the_sentences_before_encoding_them(tiny_vae_ckpt, trained_tiny_vae, monkeypatch):
    """Too few sentences for the components were refused after every one of them was encoded (minutes for
    `seqvae fit-prior` on 20,000 sentences with --components 20000)."""
    vae = SeqVAE.from_pretrained(tiny_vae_ckpt, device="cpu")
    texts = trained_tiny_vae[2]
    monkeypatch.setattr(vae, "encode_ids", lambda *a, **k: pytest.fail("encoded before counting"))
    with pytest.raises(InputError, match=f"needs at least {2 * len(texts) + 2} codes, got {len(texts)}"):
        vae.fit_prior(texts, components=len(texts) + 1)
