import math

import pytest
import torch

from seqvae.config import ModelConfig
from seqvae.data import SentenceDataset, collate
from seqvae.metrics import active_units, evaluate, iw_log_likelihood, log_normal, mutual_information
from seqvae.model import SentenceVAE


def tiny_vae(latent=True, seed=0):
    torch.manual_seed(seed)
    model = SentenceVAE(ModelConfig(vocab_size=20, embed_dim=8, hidden_dim=16, latent_dim=4, latent=latent)).eval()
    if latent:
        with torch.no_grad():  # a posterior with real spread, so that IW differs from the ELBO
            model.encoder.to_stats.bias[4:] = -1.0
    return model


def sentences(n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(4, 20, (int(torch.randint(1, 8, (1,), generator=g)),), generator=g).tolist() for _ in range(n)]


def test_log_normal_matches_torch_distributions():
    mu, logvar, z = torch.randn(3, 3, 4, generator=torch.Generator().manual_seed(0))  # whatever ran before
    ref = torch.distributions.Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1)
    assert torch.allclose(log_normal(z, mu, logvar), ref, atol=1e-5)


def test_iw_nll_at_most_neg_elbo_on_average():
    model = tiny_vae()
    batch = collate(sentences())
    g = torch.Generator().manual_seed(0)
    iw = -iw_log_likelihood(model, batch, 200, generator=g)
    res = evaluate(model, SentenceDataset.from_lists(sentences()), k=0)
    assert float(iw.mean()) < res["neg_elbo"]
    # a tighter bound with more samples, in expectation
    iw5 = torch.stack([-iw_log_likelihood(model, batch, 5, generator=g) for _ in range(20)]).mean()
    assert float(iw.mean()) <= float(iw5) + 0.05


def test_iw_chunks_respect_the_logits_budget(monkeypatch):
    model = tiny_vae()
    batch = collate(sentences(6))
    per_copy = batch.target.shape[1] * model.cfg.vocab_size
    rows, token_nll = [], model.token_nll
    monkeypatch.setattr(model, "token_nll", lambda dec_in, *a, **kw: rows.append(len(dec_in)) or token_nll(dec_in, *a, **kw))
    g = torch.Generator().manual_seed(0)
    iw_log_likelihood(model, batch, 10, max_logits=3 * 6 * per_copy, generator=g)
    assert rows == [18, 18, 18, 6]  # 3 samples per chunk of 6 sentences, then the last one
    rows.clear()
    iw_log_likelihood(model, batch, 10, max_logits=1, generator=g)  # below one copy: one sample a chunk
    assert rows == [6] * 10
    rows.clear()
    iw_log_likelihood(model, batch, 10, generator=g)
    assert rows == [60]
    # chunking changes memory, not numbers
    estimates = [iw_log_likelihood(model, batch, 50, max_logits=m, generator=torch.Generator().manual_seed(3))
                 for m in (1, 7 * 6 * per_copy, 2**27)]
    assert torch.allclose(estimates[0], estimates[2], atol=1e-5) and torch.allclose(estimates[1], estimates[2], atol=1e-5)


def test_iw_estimate_is_exact_when_the_decoder_ignores_z(monkeypatch):
    """A decoder that ignores z gives every sample the weight p(x) p(z) / q(z): with the prior as proposal the
    estimate is log p(x) exactly for any k; with a wider proposal it is log p(x) up to Monte Carlo noise."""
    model = tiny_vae()
    batch = collate(sentences(5))
    monkeypatch.setattr(model, "token_nll", lambda dec_in, target, z: 0.7 * (target != 0).sum(1).float())
    exact = -0.7 * (batch.target != 0).sum(1).float()  # log p(x) of each sentence
    prior = (torch.zeros(5, 4), torch.zeros(5, 4))
    for k in (1, 7, 50):
        est = iw_log_likelihood(model, batch, k, generator=torch.Generator().manual_seed(k), proposal=prior)
        assert torch.allclose(est, exact, atol=1e-5), k
    wide = (torch.full((5, 4), 0.3), torch.full((5, 4), math.log(2.0)))  # q wider than p: weights of finite variance
    est = iw_log_likelihood(model, batch, 4000, generator=torch.Generator().manual_seed(0), proposal=wide)
    assert torch.allclose(est, exact, atol=0.1)


def test_iw_with_one_sample_is_neg_elbo_in_expectation():
    model = tiny_vae()
    data = sentences(8)
    batch = collate(data)
    g = torch.Generator().manual_seed(1)
    draws = torch.stack([-iw_log_likelihood(model, batch, 1, generator=g) for _ in range(400)])  # (400, B)
    mu, logvar = model.encode(batch.src, batch.src_lens)
    kl = 0.5 * (mu**2 + logvar.exp() - logvar - 1).sum(-1)
    recs = []
    for _ in range(400):
        z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=g)
        recs.append(model.token_nll(batch.dec_in, batch.target, z))
    neg_elbo = torch.stack(recs).mean(0) + kl
    se = draws.std(0) / math.sqrt(400) + torch.stack(recs).std(0) / math.sqrt(400)
    assert (abs(draws.mean(0) - neg_elbo) < 4 * se + 1e-4).all()


def test_language_model_metrics_are_exact():
    model = tiny_vae(latent=False)
    data = sentences()
    res = evaluate(model, SentenceDataset.from_lists(data), k=10)
    batch = collate(data)
    nll = model.token_nll(batch.dec_in, batch.target, None).detach()
    assert res["nll"] == pytest.approx(float(nll.mean()), rel=1e-5)
    tokens = sum(len(s) + 1 for s in data)
    assert res["ppl"] == pytest.approx(math.exp(float(nll.sum()) / tokens), rel=1e-5)
    assert res["nll_per_token"] == pytest.approx(float(nll.sum()) / tokens, rel=1e-5)
    assert res["kl"] == 0 and res["au"] == 0


def test_per_sentence_nll_in_dataset_order():
    data = sentences()
    lm = tiny_vae(latent=False)
    res = evaluate(lm, SentenceDataset.from_lists(data), per_sentence=True, batch_size=5)  # bucketed, reordered
    one_by_one = [float(lm.token_nll(b.dec_in, b.target, None).detach()) for b in (collate([s]) for s in data)]
    assert res["per_sentence_nll"] == pytest.approx(one_by_one, rel=1e-5)
    vae = tiny_vae()
    for k in (0, 5):
        r = evaluate(vae, SentenceDataset.from_lists(data), k=k, per_sentence=True, batch_size=5)
        assert len(r["per_sentence_nll"]) == len(data)
        assert sum(r["per_sentence_nll"]) / len(data) == pytest.approx(r["nll"], rel=1e-6)
    assert "per_sentence_nll" not in evaluate(vae, SentenceDataset.from_lists(data), k=0)


def test_evaluate_is_deterministic_and_leaves_global_rng_alone():
    model = tiny_vae()
    ds = SentenceDataset.from_lists(sentences())
    torch.manual_seed(7)
    state = torch.get_rng_state()
    a = evaluate(model, ds, k=5, seed=3)
    assert torch.equal(state, torch.get_rng_state())
    b = evaluate(model, ds, k=5, seed=3)
    assert a == b
    assert a["nll"] <= a["neg_elbo"] + 1.0 and a["nll_is_bound"] is False


def test_evaluate_does_not_depend_on_batch_size():
    """Each sentence draws its own noise: batching changes float rounding only (MI's subsample included)."""
    model, ds = tiny_vae(), SentenceDataset.from_lists(sentences())
    a, b = (evaluate(model, ds, k=5, refine_steps=3, mi_sentences=10, per_sentence=True, seed=4, batch_size=bs)
            for bs in (3, 24))
    for key in ("nll", "nll_refined", "rec", "kl", "neg_elbo", "mi", "mi_se", "ppl"):
        assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-5), key
    assert a["per_sentence_nll"] == pytest.approx(b["per_sentence_nll"], rel=1e-5)
    assert a["per_sentence_nll_refined"] == pytest.approx(b["per_sentence_nll_refined"], rel=1e-5)
    assert a["au_variances"] == pytest.approx(b["au_variances"], rel=1e-4, abs=1e-7)
    assert evaluate(model, ds, k=5, seed=5)["nll"] != a["nll"]  # the seed does matter


def test_evaluate_keyed_by_tokens_does_not_depend_on_the_order():
    """noise_by="tokens" (the report's): a sentence's draws follow from its tokens, so a permutation of the
    sentences permutes the per-sentence NLLs and leaves every total as it was (MI's draws included)."""
    model, sents = tiny_vae(), sentences()
    perm = torch.randperm(len(sents), generator=torch.Generator().manual_seed(1)).tolist()
    a, b = (evaluate(model, SentenceDataset.from_lists(s), k=5, refine_steps=3, per_sentence=True, seed=4,
                     noise_by="tokens") for s in (sents, [sents[i] for i in perm]))
    for key in ("nll", "nll_refined", "rec", "kl", "mi", "mi_se"):
        assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), key
    assert [a["per_sentence_nll"][i] for i in perm] == pytest.approx(b["per_sentence_nll"], rel=1e-5)
    place = [evaluate(model, SentenceDataset.from_lists(s), k=5, seed=4) for s in (sents, [sents[i] for i in perm])]
    assert place[0]["nll"] != pytest.approx(place[1]["nll"], rel=1e-6)  # keyed by place, the draws move with it
    with pytest.raises(ValueError, match="noise_by"):
        evaluate(model, SentenceDataset.from_lists(sents), noise_by="order")


def test_evaluate_reports_mi_with_its_standard_error(monkeypatch):
    import seqvae.metrics as M

    terms = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)  # per-sentence MI terms, made to order
    monkeypatch.setattr(M, "mutual_information_terms", lambda mu, logvar, **_: terms)
    res = evaluate(tiny_vae(), SentenceDataset.from_lists(sentences(4)), k=0)
    assert res["mi"] == pytest.approx(2.5) and res["mi_max"] == pytest.approx(math.log(4))
    assert res["mi_se"] == pytest.approx(float(terms.std()) / 2)  # the mean's standard error: std / sqrt(4)


def test_active_units_counts_varying_dims():
    mu = torch.zeros(100, 4)
    mu[:, 0] = torch.linspace(-1, 1, 100)  # var ~ 0.34
    mu[:, 1] = torch.linspace(-0.05, 0.05, 100)  # var ~ 0.00085
    unit = torch.linspace(-1, 1, 100) / torch.linspace(-1, 1, 100).std()  # var 1
    mu[:, 2], mu[:, 3] = unit * 0.0125**0.5, unit * 0.008**0.5  # either side of the 0.01 threshold, near it
    n, var = active_units(mu)
    assert n == 2 and var[0] > var[2] > 0.01 > var[3] > var[1]
    assert var[2] == pytest.approx(0.0125, rel=1e-4) and var[3] == pytest.approx(0.008, rel=1e-4)


def test_mutual_information_bounds():
    from seqvae.metrics import mutual_information_terms

    g = torch.Generator().manual_seed(0)
    N, Z = 2000, 3
    # identical posteriors: z carries no information about x, and q(z) = q(z|x_i) at every draw, so every
    # term is 0 (estimating E q(z|x) by its closed-form entropy instead left a noise of std sqrt(Z/2 / N))
    same = mutual_information_terms(torch.full((N, Z), 0.3), torch.full((N, Z), -0.5), generator=g)
    assert same.abs().max() < 1e-9
    # well separated, tight posteriors: MI approaches log N, and no term can pass it (q(z) >= q(z|x_i) / N)
    mu = torch.randn(N, Z, generator=g) * 10
    sharp = mutual_information_terms(mu, torch.full((N, Z), -8.0), generator=g, chunk=300)
    assert float(sharp.mean()) == pytest.approx(math.log(N), abs=0.05) and float(sharp.max()) <= math.log(N) + 1e-12
    assert mutual_information(mu, torch.full((N, Z), -8.0), generator=torch.Generator().manual_seed(1)) <= math.log(N) + 1e-12
    # posteriors of every spread, 64 dims as the flagship's: each term below log N, and the mean of many draws
    # near the estimand, which the per-sentence average over draws gives as well
    Z, N = 64, 50
    mu, logvar = torch.randn(N, Z, generator=g) * 0.1, torch.rand(N, Z, generator=g) * -0.5  # overlapping
    draws = torch.stack([mutual_information_terms(mu, logvar, generator=g, chunk=16) for _ in range(400)])
    assert float(draws.max()) <= math.log(N) + 1e-12
    closed = -0.5 * Z * math.log(2 * math.pi) - 0.5 * (1 + logvar.double()).sum(-1)  # E_q log q(z|x_i), exactly
    ref = [closed - torch.logsumexp(log_normal(z[:, None], mu.double()[None], logvar.double()[None]), 1)
           + math.log(N) for z in (mu + (0.5 * logvar).exp() * torch.randn(400, N, Z, generator=g)).double()]
    assert float(draws.mean()) == pytest.approx(float(torch.stack(ref).mean()), abs=0.1)


def test_paired_difference_and_compare_script(tmp_path, capsys):
    import json
    import runpy
    from pathlib import Path

    from seqvae.metrics import paired_difference

    a, b = [10.0, 12.0, 9.0, 11.0], [11.0, 12.5, 9.5, 10.0]
    r = paired_difference(a, b)
    d = torch.tensor(a, dtype=torch.float64) - torch.tensor(b, dtype=torch.float64)  # -1, -0.5, -0.5, 1
    assert r["mean_diff"] == pytest.approx(-0.25) and r["se"] == pytest.approx(float(d.std() / 2))
    assert r["ci95"] == pytest.approx([-0.25 - 1.96 * r["se"], -0.25 + 1.96 * r["se"]])
    assert r["frac_a_lower"] == 0.75 and r["sentences"] == 4
    for bad in (([1.0, 2.0], [1.0]), ([1.0], [2.0]), ([1.0, float("nan")], [1.0, 2.0])):
        with pytest.raises(ValueError):
            paired_difference(*bad)

    main = runpy.run_path(str(Path(__file__).resolve().parents[1] / "scripts" / "compare_nll.py"))["main"]
    for name, nll in (("a", a), ("b", b)):
        (tmp_path / f"{name}.json").write_text(json.dumps({"split": "test", "data": "d", "per_sentence_nll": nll}))
    assert main([str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mean_diff"] == pytest.approx(-0.25)
    (tmp_path / "f.json").write_text(json.dumps({"split": "test", "data": "d", "per_sentence_nll": [20.0] * 4,
                                                  "per_sentence_nll_refined": a, "refine_steps": 50}))
    assert main([str(tmp_path / "f.json"), str(tmp_path / "b.json")]) == 0  # the tighter estimate, said
    out = capsys.readouterr().out
    assert "A - B = -0.250" in out and "A: IW-NLL from proposals fitted in 50 steps; B: NLL" in out
    (tmp_path / "c.json").write_text(json.dumps({"split": "valid", "data": "d", "per_sentence_nll": b}))
    (tmp_path / "n.json").write_text(json.dumps({"split": "test", "data": "d"}))
    (tmp_path / "d.json").write_text(json.dumps({"split": "test", "data": "d", "per_sentence_nll": {"a": 1}}))
    (tmp_path / "r.json").write_text(json.dumps({"split": "test", "data": "d", "per_sentence_nll": b,
                                                  "per_sentence_nll_refined": [1.0, "x", 2.0, 3.0]}))
    for other, msg in (("c.json", "not the same sentences"), ("n.json", "--per-sentence"), ("x.json", "no such file"),
                       ("d.json", "per_sentence_nll is not a list of numbers"), ("r.json", "refined is not a list"),
                       (".", "a directory, not a JSON file")):
        assert main([str(tmp_path / "a.json"), str(tmp_path / other)]) == 2
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1
    # the same data dir named two ways is the same sentences; a file of the ELBO alone says it is a bound
    (tmp_path / "d").mkdir()
    (tmp_path / "e.json").write_text(json.dumps({"split": "test", "data": f"{tmp_path}/d/../d",
                                                  "per_sentence_nll": a, "nll_is_bound": True}))
    (tmp_path / "g.json").write_text(json.dumps({"split": "test", "data": str(tmp_path / "d"), "per_sentence_nll": b}))
    assert main([str(tmp_path / "e.json"), str(tmp_path / "g.json")]) == 0
    assert "A: -ELBO, an upper bound on the NLL" in capsys.readouterr().out
    (tmp_path / "old.json").write_text(json.dumps({"split": "test", "data": "d", "per_sentence_nll": a}))
    (tmp_path / "new.json").write_text(json.dumps({"split": "test", "data": "/somewhere/else/d", "per_sentence_nll": b}))
    assert main([str(tmp_path / "old.json"), str(tmp_path / "new.json")]) == 0  # an older file's relative path
    capsys.readouterr()


# ---------------------------------------------------------------------------------------------
# Against the truth: with one or two latent dims, log p(x) = log ∫ p(x|z) N(z; 0, I) dz by quadrature.
def small_latent_vae(Z, vocab_size=10, logvar_bias=0.0, seed=0):
    """A VAE of Z latent dims whose decoder leans on z (its initial state from 4 W z), posteriors of std about
    exp(logvar_bias / 2): 0 keeps them wider than sqrt(1/2) (importance weights of finite variance), -1 does not."""
    torch.manual_seed(seed)
    model = SentenceVAE(ModelConfig(vocab_size=vocab_size, embed_dim=8, hidden_dim=16, latent_dim=Z)).eval()
    with torch.no_grad():
        model.decoder.init_state.weight.mul_(4.0)
        model.encoder.to_stats.bias[Z:] = logvar_bias
    return model


SMALL = [[4, 5], [6, 7, 8], [9], [5, 5, 6, 4]]


def grid_points(Z, h, half_width=8.0):
    """A regular grid of spacing h on [-8, 8]^Z, (G, Z) float64."""
    g = torch.arange(-half_width, half_width + h / 2, h, dtype=torch.float64)
    return torch.cartesian_prod(*[g] * Z).view(-1, Z) if Z > 1 else g[:, None]


def log_normal_on_grid(grid, mu, logvar):
    """log N(z_g; mu_b, diag(exp(logvar_b))) for every row b and grid point g: (B, G) float64."""
    mu, logvar = mu.double()[:, None], logvar.double()[:, None]
    return -0.5 * ((grid[None] - mu) ** 2 / logvar.exp() + logvar + math.log(2 * math.pi)).sum(-1)


def by_quadrature(model, batch, h):
    """log p(x), -ELBO and the importance weights' squared coefficient of variation Var_q(w) / p(x)^2 of each
    sentence, (B,) each, by sums over a grid (the integrands are smooth and Gaussian-tailed: a plain sum of
    spacing h is exact far below the tests' tolerances)."""
    Z = model.cfg.latent_dim
    grid = grid_points(Z, h)
    G, B = len(grid), batch.size
    with torch.no_grad():
        rec = model.token_nll(batch.dec_in.repeat_interleave(G, 0), batch.target.repeat_interleave(G, 0),
                              grid.float().repeat(B, 1)).view(B, G).double()
        mu, logvar = model.encode(batch.src, batch.src_lens)
    log_joint = -rec - 0.5 * (grid**2 + math.log(2 * math.pi)).sum(-1)  # log p(x, z_g), (B, G)
    log_q = log_normal_on_grid(grid, mu, logvar)
    cell = Z * math.log(h)
    log_px = torch.logsumexp(log_joint, 1) + cell
    neg_elbo = -(log_q.exp() * (log_joint - log_q)).sum(1) * h**Z
    cv2 = torch.expm1(torch.logsumexp(2 * log_joint - log_q, 1) + cell - 2 * log_px)  # E_q[w^2] / p(x)^2 - 1
    return log_px, neg_elbo, cv2


@pytest.mark.parametrize("Z, h", [(1, 0.02), (2, 0.2)])
def test_iw_nll_converges_to_the_exact_likelihood(Z, h):
    """-log p(x) by quadrature is the truth. With k samples the estimate of log p(x) is below it in expectation
    by Var_q(w) / (2 k p(x)^2) (the delta method) and spreads by sqrt(Var_q(w) / k) / p(x), both computed here
    by quadrature too: the mean of R estimates must sit within 4 of its standard errors of that, and their
    spread must be the predicted one. With k = 1 the estimate is -ELBO's, in expectation."""
    model, batch = small_latent_vae(Z), collate(SMALL)
    log_px, neg_elbo, cv2 = by_quadrature(model, batch, h)
    assert torch.allclose(by_quadrature(model, batch, 2 * h)[0], log_px, rtol=0, atol=1e-4)  # the grid is fine
    assert (neg_elbo > -log_px + 0.005).all() and (cv2 < 1).all()  # a real gap; weights of finite variance
    g = torch.Generator().manual_seed(0)
    one = -torch.stack([iw_log_likelihood(model, batch, 1, generator=g) for _ in range(400)]).double()  # (R, B)
    assert (abs(one.mean(0) - neg_elbo) < 4 * one.std(0) / math.sqrt(400)).all()
    k, R = 1000, 30
    many = -torch.stack([iw_log_likelihood(model, batch, k, generator=g) for _ in range(R)]).double()
    spread = (cv2 / k).sqrt()  # predicted standard deviation of one estimate
    assert (abs(many.mean(0) - (-log_px + cv2 / (2 * k))) < 4 * spread / math.sqrt(R)).all()
    assert ((many.std(0) / spread - 1).abs() < 4 / math.sqrt(2 * (R - 1))).all()  # the spread, within 4 of its SEs
    assert (many.mean(0) < one.mean(0)).all()  # more samples, a tighter bound


def test_iw_nll_with_narrow_posteriors_is_a_bound_that_tightens():
    """Posteriors narrower than sqrt(1/2) (as trained ones are): the weights' variance is infinite, so no spread
    is predicted; the estimates must still be -ELBO's at k = 1, fall with k, and stay above -log p(x)."""
    model, batch = small_latent_vae(2, logvar_bias=-1.5), collate(SMALL)
    log_px, neg_elbo, _ = by_quadrature(model, batch, 0.2)
    assert (neg_elbo > -log_px + 0.3).all()
    g = torch.Generator().manual_seed(0)
    means, ses = [], []
    for k, R in ((1, 400), (20, 100), (500, 40)):
        d = -torch.stack([iw_log_likelihood(model, batch, k, generator=g) for _ in range(R)]).double()
        means.append(d.mean(0)), ses.append(d.std(0) / math.sqrt(R))
    assert (abs(means[0] - neg_elbo) < 4 * ses[0]).all()
    assert (means[0] > means[1]).all() and (means[1] > means[2]).all()
    assert (means[2] > -log_px - 4 * ses[2]).all()


def exact_mutual_information(mu, logvar, h):
    """I(x; z) of N equally likely sentences with posteriors N(mu_i, diag(exp(logvar_i))), (N, Z), Z <= 2:
    mean_i KL(q_i || q), q their mixture, by quadrature on a grid of spacing h."""
    log_q_i = log_normal_on_grid(grid_points(mu.shape[1], h), mu, logvar)  # (N, G)
    log_q = torch.logsumexp(log_q_i, 0) - math.log(len(mu))  # (G,)
    return float((log_q_i.exp() * (log_q_i - log_q)).sum(1).mean() * h ** mu.shape[1])


@pytest.mark.parametrize("Z, h", [(1, 0.01), (2, 0.05)])
def test_mutual_information_matches_quadrature(Z, h):
    """The estimator against I(x; z) computed exactly: posteriors that overlap in part (the truth between 0 and
    log N), of unequal widths and, with Z = 2, unequal across dims. The mean of R estimates must lie within 4
    standard errors of the truth (the estimator is unbiased)."""
    from seqvae.metrics import mutual_information_terms

    g = torch.Generator().manual_seed(0)
    N = 6
    mu = torch.randn(N, Z, generator=g, dtype=torch.float64)
    logvar = torch.rand(N, Z, generator=g, dtype=torch.float64) * 4 - 3.0  # std 0.22 to 1.6: widths matter
    truth = exact_mutual_information(mu, logvar, h)
    assert truth == pytest.approx(exact_mutual_information(mu, logvar, 2 * h), abs=1e-6)  # the grid is fine
    assert 0.3 < truth < math.log(N) - 0.3  # neither end, where the estimator is right by construction
    R = 2000
    est = torch.stack([mutual_information_terms(mu, logvar, generator=g).mean() for _ in range(R)])
    assert abs(float(est.mean()) - truth) < 4 * float(est.std()) / math.sqrt(R)


TEXTS = ["good film", "a bad film", "film", "a good good film", "bad", "the film was bad"]


def test_evaluate_and_score_against_the_exact_likelihood():
    """`evaluate` (what `seqvae evaluate` prints) and `SeqVAE.score` (what `seqvae score` prints) on a VAE of two
    latent dims whose truth is known by quadrature: each sentence's IW-NLL within 4 predicted standard deviations
    (plus the predicted bias) of -log p(x); KL as torch.distributions has it; -ELBO's and MI's means over seeds
    within 4 standard errors of the exact -ELBO and I(x; z) of the posteriors."""
    from seqvae.api import SeqVAE
    from seqvae.tokenizer import build_word_tokenizer

    tok = build_word_tokenizer(TEXTS)
    model = small_latent_vae(2, vocab_size=tok.vocab_size)
    ids = [tok.encode(t) for t in TEXTS]
    batch, ds = collate(ids), SentenceDataset.from_lists(ids)
    log_px, _, cv2 = by_quadrature(model, batch, 0.2)
    k = 500
    tol = 4 * (cv2 / k).sqrt() + cv2 / (2 * k)  # per sentence, one estimate
    res = evaluate(model, ds, k=k, per_sentence=True, seed=0)
    assert (abs(torch.tensor(res["per_sentence_nll"]) + log_px) < tol).all() and (cv2 < 2).all()
    scores = SeqVAE(model, tok).score(TEXTS, samples=k).double()
    assert (abs(scores + log_px) < tol).all()

    with torch.no_grad():
        model.encoder.to_stats.weight[:2].mul_(20.0)  # posterior means apart: an MI well above 0
        mu, logvar = model.encode(batch.src, batch.src_lens)
    neg_elbo = by_quadrature(model, batch, 0.2)[1]
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    kl = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(-1)
    runs = [evaluate(model, ds, k=0, seed=s) for s in range(60)]  # one draw per sentence each: mean over seeds
    assert runs[0]["kl"] == pytest.approx(float(kl.mean()), rel=1e-5)
    mi = exact_mutual_information(mu.double(), logvar.double(), 0.1)
    assert 0.3 < mi < math.log(len(TEXTS)) - 0.3 and runs[0]["mi_max"] == pytest.approx(math.log(len(TEXTS)))
    for key, truth in (("neg_elbo", float(neg_elbo.mean())), ("mi", mi)):
        got = torch.tensor([r[key] for r in runs], dtype=torch.float64)
        assert abs(float(got.mean()) - truth) < 4 * float(got.std()) / math.sqrt(len(got)), key


def test_evaluate_counts_eos_and_takes_active_units_from_every_sentences_mean():
    """PPL = exp(total NLL / tokens), one EOS per sentence counted (docs/usage.md), for a VAE as for the LM; the
    active units' variances are Var_x of the posterior means over every sentence evaluated (with ddof 1, as
    Burda et al.'s Cov_x), not over z draws nor over MI's subsample, and counted strictly above 0.01."""
    model, data = tiny_vae(), sentences(30)
    res = evaluate(model, SentenceDataset.from_lists(data), k=3, per_sentence=True, mi_sentences=5, seed=1)
    tokens = sum(len(s) + 1 for s in data)
    assert res["tokens"] == tokens
    assert res["nll_per_token"] == pytest.approx(sum(res["per_sentence_nll"]) / tokens, rel=1e-6)
    assert res["ppl"] == pytest.approx(math.exp(sum(res["per_sentence_nll"]) / tokens), rel=1e-6)
    batch = collate(data)
    with torch.no_grad():
        mu = model.encode(batch.src, batch.src_lens)[0].double()
    var = ((mu - mu.mean(0)) ** 2).sum(0) / (len(data) - 1)
    assert res["au_variances"] == pytest.approx(var.tolist(), rel=1e-4)
    assert res["au"] == int((var > 0.01).sum())
