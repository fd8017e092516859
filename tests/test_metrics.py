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
    mu, logvar, z = torch.randn(3, 4), torch.randn(3, 4), torch.randn(3, 4)
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
