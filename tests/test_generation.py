"""Decoding strategies (seqvae.generation) on a tiny trained VAE: equivalences, determinism, batching."""

import pytest
import torch

from conftest import every_sentence, random_vae
from seqvae import generation as G
from seqvae.decodestep import step
from seqvae.generation import DecodingError, generate
from seqvae.sampler import RowNoise


def test_greedy_is_deterministic_and_well_formed(model, z):
    a = generate(model, z, strategy="greedy")
    assert a == generate(model, z, strategy="greedy")
    cfg = model.cfg
    assert len(a) == 6 and any(a)
    for row in a:
        assert len(row) <= 40 and not {cfg.eos_id, cfg.pad_id, cfg.bos_id} & set(row)
    assert all(len(r) <= 2 for r in generate(model, z, strategy="greedy", max_len=2))


def test_top_k_1_and_tiny_top_p_are_greedy(model, z):
    greedy = generate(model, z, strategy="greedy")
    assert generate(model, z, strategy="top-k", top_k=1, seed=3) == greedy
    assert generate(model, z, strategy="top-p", top_p=1e-6, seed=3) == greedy
    # also at a high temperature: filtering keeps one token, whatever the spread
    assert generate(model, z, strategy="top-k", top_k=1, temperature=5.0, seed=4) == greedy


def test_sampling_is_seeded_and_leaves_global_rng_alone(model, z):
    state = torch.get_rng_state()
    a = generate(model, z, strategy="sample", seed=0)
    assert torch.equal(state, torch.get_rng_state())
    assert a == generate(model, z, strategy="sample", seed=0)
    zz = z.repeat(4, 1)  # 24 rows: two seeds agreeing on every row is (nearly) impossible
    assert generate(model, zz, strategy="sample", seed=1) != generate(model, zz, strategy="sample", seed=2)
    # a generator supplies the call's seed (one draw, so a generator used again gives other sentences)
    seed = G.stream_seed(None, torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(0)
    assert generate(model, zz, strategy="sample", generator=gen) == generate(model, zz, strategy="sample", seed=seed)
    assert generate(model, zz, strategy="sample", generator=gen) != generate(model, zz, strategy="sample", seed=seed)


@pytest.mark.parametrize("opts", [{"strategy": "greedy"}, {"strategy": "beam", "num_beams": 3}])
def test_batch_equals_one_by_one(model, z, opts):
    batched = generate(model, z, **opts)
    assert batched == [generate(model, z[i : i + 1], **opts)[0] for i in range(len(z))]


def test_temperature_scales_the_logits(model, z):
    """The first token drawn at temperature T follows softmax(logits / T)."""
    zi = z[:1]
    with torch.no_grad():
        logits, _ = step(model, torch.tensor([model.cfg.bos_id]), zi, model.decoder.initial_state(zi, 1))
    eos = model.cfg.eos_id
    for t in (0.5, 2.0):
        first = generate(model, zi.expand(8000, -1), strategy="sample", temperature=t, max_len=1, seed=0)
        tokens = torch.tensor([row[0] if row else eos for row in first])
        freq = torch.bincount(tokens, minlength=model.cfg.vocab_size).float() / len(tokens)
        want = torch.softmax(logits[0] / t, -1)
        assert (freq - want).abs().sum() < 0.06, t  # total variation, sampling noise ~0.02
        assert (torch.softmax(logits[0], -1) - want).abs().sum() > 0.2  # T changes the distribution here


def test_language_model_generation(trained_tiny_lm):
    lm = trained_tiny_lm[0]
    for strategy in ("greedy", "sample", "beam"):
        out = generate(lm, None, strategy=strategy, batch_size=3, seed=0)
        assert len(out) == 3
    assert generate(lm, None, strategy="greedy", batch_size=0) == []
    with pytest.raises(DecodingError, match="language model"):
        generate(lm, torch.zeros(2, 4))


def test_a_language_models_batch_size_is_a_bounded_whole_number(trained_tiny_lm):
    """batch_size (a language model's number of sentences) is a whole number of at most config.MAX_SAMPLES, as
    sample(n)'s: 2.5, 2.0 and True ended in a TypeError inside torch, "3" in one from a comparison, and 10**12
    would have been decoded 4,096 sentences at a time for days."""
    from seqvae.config import MAX_SAMPLES

    lm = trained_tiny_lm[0]
    for bad in (2.5, 2.0, True, "3", -1, MAX_SAMPLES + 1):
        for strategy in ("greedy", "sample", "beam"):
            with pytest.raises(DecodingError, match="batch_size must be"):
                generate(lm, None, strategy=strategy, batch_size=bad, max_len=2)
    import numpy as np

    assert len(generate(lm, None, batch_size=np.int64(2), max_len=2)) == 2


def test_codes_that_are_not_real_numbers_are_refused(model):
    """Codes of True/False (a mask passed by mistake) or complex numbers are a DecodingError: a bool tensor was
    decoded as the codes 0 and 1, a complex one as its real part (a warning at most); integers are numbers."""
    Z = model.cfg.latent_dim
    for bad in (torch.ones(2, Z, dtype=torch.bool), torch.zeros(2, Z, dtype=torch.complex64),
                [[True] * Z, [False] * Z], [torch.ones(Z, dtype=torch.bool)]):
        for strategy in ("greedy", "sample", "beam"):
            with pytest.raises(DecodingError, match="z must be real numbers"):
                generate(model, bad, strategy=strategy, max_len=2)
    assert generate(model, torch.ones(2, Z, dtype=torch.long), max_len=3) == generate(model, torch.ones(2, Z), max_len=3)


def test_bad_options(model, z):
    for opts, msg in [({"strategy": "nucleus"}, "unknown strategy"), ({"temperature": 0.0}, "temperature"),
                      ({"top_p": 0.0}, "top_p"), ({"top_p": 1.5}, "top_p"), ({"strategy": "top-k"}, "top_k >= 1"),
                      ({"strategy": "top-p"}, "top_p < 1"), ({"num_beams": 0}, "num_beams"),
                      ({"max_len": 0}, "max_len")]:
        with pytest.raises(DecodingError, match=msg):
            generate(model, z, **opts)
    with pytest.raises(DecodingError, match="shape"):
        generate(model, torch.zeros(2, model.cfg.latent_dim + 1))
    for bad in (float("nan"), float("inf")):
        with pytest.raises(DecodingError, match="finite"):
            generate(model, torch.zeros(2, model.cfg.latent_dim).index_fill(1, torch.tensor([0]), bad))
    with pytest.raises(DecodingError, match="needs z"):
        generate(model, None)


def _per_token_nll(model, ids, z):
    from seqvae.data import collate

    with torch.no_grad():
        return [float(model.token_nll(b.dec_in, b.target, None if z is None else z[i:i + 1])) / (len(row) + 1)
                for i, row in enumerate(ids) for b in [collate([row])]]


SAMPLING = [{"strategy": "sample"}, {"strategy": "top-p", "top_p": 0.8}, {"strategy": "top-k", "top_k": 5,
                                                                         "temperature": 1.5},
            {"strategy": "top-p", "top_p": 0.9, "candidates": 3}]


@pytest.mark.parametrize("opts", SAMPLING)
def test_a_sampled_row_depends_on_its_code_the_seed_and_its_place_alone(model, z, opts, monkeypatch):
    """Row i of a seeded call is what a call with z[:i+1] gives it: whatever the other codes, their number,
    and the chunks the rows are decoded in (it used to share one generator with the rows before it)."""
    zz = z.repeat(3, 1)  # 18 rows
    full = generate(model, zz, seed=7, **opts)
    assert generate(model, zz[:5], seed=7, **opts) == full[:5]
    other = torch.cat([zz[:5], torch.randn(20, zz.shape[1], generator=torch.Generator().manual_seed(1))])
    assert generate(model, other, seed=7, **opts)[:5] == full[:5]
    assert generate(model, zz, seed=8, **opts) != full
    monkeypatch.setattr(G, "DECODE_ROWS", 4)  # in chunks of 4 rows (candidates count)
    assert generate(model, zz, seed=7, **opts) == full


def test_a_language_models_samples_are_prefix_stable(trained_tiny_lm, monkeypatch):
    lm = trained_tiny_lm[0]
    for opts in SAMPLING:
        full = generate(lm, None, batch_size=12, seed=3, **opts)
        assert generate(lm, None, batch_size=5, seed=3, **opts) == full[:5], opts
        monkeypatch.setattr(G, "DECODE_ROWS", 4)
        assert generate(lm, None, batch_size=12, seed=3, **opts) == full, opts
        monkeypatch.undo()


@pytest.mark.parametrize("opts", [{}, {"temperature": 0.5}, {"top_k": 3}, {"top_p": 0.6},
                                  {"temperature": 2.0, "top_k": 6, "top_p": 0.8}])
def test_first_tokens_follow_the_filtered_distribution(model, z, opts):
    """Many rows of one code, each drawing from its own stream: their first tokens have the frequencies of
    softmax(logits / T) cut to the top k, then to the nucleus of mass p, renormalised (computed here by
    sorting, apart from the sampler's rejection)."""
    n = 6000
    zi = z[1:2]
    with torch.no_grad():
        logits, _ = step(model, torch.tensor([model.cfg.bos_id]), zi, model.decoder.initial_state(zi, 1))
    probs, order = torch.softmax(logits[0].double() / opts.get("temperature", 1.0), -1).sort(descending=True)
    keep = torch.ones_like(probs, dtype=torch.bool)
    if opts.get("top_k"):
        keep[opts["top_k"]:] = False
    probs = torch.where(keep, probs, 0.0) / torch.where(keep, probs, 0.0).sum()
    keep &= probs.cumsum(0) - probs < opts.get("top_p", 1.0)  # the mass ranked above is < p
    expect = torch.zeros_like(probs).scatter(0, order, torch.where(keep, probs, 0.0) / (probs * keep).sum())
    drawn = generate(model, zi.expand(n, -1), strategy="sample", max_len=1, seed=0, **opts)
    first = torch.tensor([row[0] if row else model.cfg.eos_id for row in drawn])  # an empty row ended at once
    freq = torch.bincount(first, minlength=len(expect)).double() / n
    assert (expect > 0.02).sum() >= 2  # a real choice
    assert torch.allclose(freq, expect, atol=0.025), (freq, expect)  # 4 standard errors at most
    assert not (freq[expect == 0] > 0).any()


def _candidates(model, z, K, seed, **opts):
    """The K draws per code that candidates=K chooses among: code i's candidate c samples from the stream (i, c)."""
    reps = None if z is None else z.repeat_interleave(K, 0)
    with torch.inference_mode():
        return G.sample(model, reps, noise=RowNoise(seed, candidates=K), **opts)


def test_candidates_keep_the_likeliest_of_each_codes_draws(model, z, trained_tiny_lm):
    """candidates=K draws K sentences per code (code i's c-th from the stream (i, c); the 0-th is the sentence
    candidates=1 gives) and keeps, for each code, the one with the lowest -log p(x|z) per token."""
    K = 4
    drawn = _candidates(model, z, K, 5, top_p=0.9)
    assert drawn[::K] == generate(model, z, strategy="top-p", top_p=0.9, seed=5)
    nll = _per_token_nll(model, drawn, z.repeat_interleave(K, 0))
    kept = generate(model, z, strategy="top-p", top_p=0.9, seed=5, candidates=K)
    assert len(kept) == len(z)
    for i, row in enumerate(kept):
        group = range(i * K, (i + 1) * K)
        assert row == drawn[min(group, key=nll.__getitem__)]
    assert len({tuple(r) for r in drawn}) > len(z)  # the draws differ: the choice is a real one
    assert generate(model, z, strategy="top-p", top_p=0.9, seed=5, candidates=1) == \
        generate(model, z, strategy="top-p", top_p=0.9, seed=5)
    lm = trained_tiny_lm[0]
    drawn = _candidates(lm, None, K, 1, batch_size=3 * K)
    nll = _per_token_nll(lm, drawn, None)
    kept = generate(lm, None, strategy="sample", batch_size=3, seed=1, candidates=K)
    assert kept == [drawn[min(range(i * K, (i + 1) * K), key=nll.__getitem__)] for i in range(3)]


def test_sampler_scores_are_the_teacher_forced_log_likelihood(model, z, monkeypatch):
    """The log p(x|z) that sampling keeps for best of K equals a teacher-forced pass over the drawn sentence
    (EOS counted, also for rows cut at max_len), and best of K picks the same in chunks of DECODE_ROWS."""
    from seqvae.data import collate

    reps = z.repeat_interleave(3, 0)
    scores: list[float] = []
    with torch.no_grad():
        ids = G.sample(model, reps, max_len=6, top_p=0.9, generator=torch.Generator().manual_seed(2), scores=scores)
        assert len(scores) == len(reps)
        assert any(len(row) == 6 for row in ids) and any(len(row) < 6 for row in ids)  # cut rows and ended ones
        for i, row in enumerate(ids):
            b = collate([row])
            assert scores[i] == pytest.approx(-model.token_nll(b.dec_in, b.target, reps[i:i + 1]).item(),
                                              rel=1e-4, abs=1e-4)
    monkeypatch.setattr(G, "DECODE_ROWS", 5)  # 24 draws in chunks of one code's 4 (5 // 4 codes per chunk)
    drawn = _candidates(model, z, 4, 5, top_p=0.9)
    nll = _per_token_nll(model, drawn, z.repeat_interleave(4, 0))
    chunked = generate(model, z, strategy="top-p", top_p=0.9, seed=5, candidates=4)
    assert chunked == [drawn[min(range(i * 4, i * 4 + 4), key=nll.__getitem__)] for i in range(len(z))]


def test_best_of_k_holds_one_chunk_of_draws_at_a_time(model, z, trained_tiny_lm, monkeypatch):
    """candidates=K decodes DECODE_ROWS // K codes' K draws at a time and keeps each code's best before the
    next chunk: memory holds one sentence per code. It used to repeat every code K times up front and keep all
    n x K drawn sentences to the end (sample -n 1000000 --candidates 256: 65 GB of repeated codes at Z = 64)."""
    seen: list[int] = []  # the draws each best_of call chooses among

    def spy(ids, logp, candidates):
        seen.append(len(ids))
        return best_of(ids, logp, candidates)

    best_of = G.best_of
    zz = z.repeat(3, 1)  # 18 codes
    whole = generate(model, zz, strategy="top-p", top_p=0.9, seed=5, candidates=3)
    monkeypatch.setattr(G, "DECODE_ROWS", 7)  # 2 codes (6 draws) per chunk
    monkeypatch.setattr(G, "best_of", spy)
    assert generate(model, zz, strategy="top-p", top_p=0.9, seed=5, candidates=3) == whole
    assert seen == [6] * 9
    seen.clear()
    lm = trained_tiny_lm[0]
    assert len(generate(lm, None, strategy="sample", batch_size=5, seed=1, candidates=3)) == 5
    assert seen == [6, 6, 3]


def test_candidates_need_sampling_and_good_codes(model, z, trained_tiny_lm):
    for opts, msg in [({"strategy": "greedy", "candidates": 2}, "sampling strategy"),
                      ({"strategy": "beam", "candidates": 2}, "sampling strategy"),
                      ({"strategy": "sample", "candidates": 0}, "candidates must be between 1 and 256")]:
        with pytest.raises(DecodingError, match=msg):
            generate(model, z, **opts)
    with pytest.raises(DecodingError, match="shape"):
        generate(model, torch.zeros(2, model.cfg.latent_dim + 1), strategy="sample", candidates=2)
    with pytest.raises(DecodingError, match="finite"):
        generate(model, torch.full((2, model.cfg.latent_dim), float("nan")), strategy="sample", candidates=2)
    with pytest.raises(DecodingError, match="batch_size"):
        generate(trained_tiny_lm[0], None, strategy="sample", candidates=2)
    one = generate(model, z[0].double(), strategy="sample", seed=0, candidates=3)  # one code, any float dtype
    assert one == generate(model, z[:1], strategy="sample", seed=0, candidates=3)


def test_seeds_are_checked():
    for bad in (-1, 2**63, 1.5, True):
        with pytest.raises(DecodingError, match=r"seed must be an integer in \[0, 2\*\*63\)"):
            G.check_seed(bad)
    assert G.check_seed(2**63 - 1) == 2**63 - 1
    import numpy as np

    assert G.check_seed(np.int64(7)) == 7 and type(G.check_seed(np.int64(7))) is int  # a seed from np.arange too


def test_many_rows_are_decoded_in_chunks_with_the_same_result(model, z, trained_tiny_lm, monkeypatch):
    """Memory stays bounded for any number of rows: generate decodes DECODE_ROWS sequences at a
    time; deterministic strategies give what one pass gives, and sampling stays seeded (its noise
    is drawn per chunk, so its rows differ from one pass's)."""
    import seqvae.generation as G

    whole = {s: generate(model, z, strategy=s, num_beams=2) for s in ("greedy", "beam")}
    monkeypatch.setattr(G, "DECODE_ROWS", 4)  # 6 rows: chunks of 4 + 2 (beam: 2 + 2 + 2)
    for s in ("greedy", "beam"):
        assert generate(model, z, strategy=s, num_beams=2) == whole[s]
    again = generate(model, z, strategy="sample", seed=3)
    assert len(again) == 6 and again == generate(model, z, strategy="sample", seed=3)
    lm = trained_tiny_lm[0]
    assert len(generate(lm, None, strategy="sample", batch_size=7, seed=0)) == 7  # LM rows: 4 + 3


def test_sampling_defaults_fill_only_what_is_not_named():
    assert G.sampling_defaults({}) == {"strategy": "top-p", "top_p": 0.9}
    assert G.sampling_defaults({"strategy": None, "top_p": None}) == {"strategy": "top-p", "top_p": 0.9}
    assert G.sampling_defaults({"strategy": "top-p", "top_p": 0.5}) == {"strategy": "top-p", "top_p": 0.5}
    assert G.sampling_defaults({"strategy": "sample"}) == {"strategy": "sample"}  # plain sampling: no filter added
    assert G.sampling_defaults({"strategy": "greedy", "max_len": 9}) == {"strategy": "greedy", "max_len": 9}


def test_top_p_default_adds_only_the_p():
    assert G.top_p_default({}) == {}  # no strategy chosen: generate's own default (greedy) stays
    assert G.top_p_default({"strategy": "top-p"}) == {"strategy": "top-p", "top_p": 0.9}
    assert G.top_p_default({"strategy": "top-p", "top_p": None}) == {"strategy": "top-p", "top_p": 0.9}
    assert G.top_p_default({"strategy": "top-p", "top_p": 0.5}) == {"strategy": "top-p", "top_p": 0.5}
    assert G.top_p_default({"strategy": "sample", "top_p": None}) == {"strategy": "sample"}


# ---------------------------------------------------------------------------- by enumeration: a tiny random model
def test_whole_sampled_sentences_follow_the_filtered_distribution():
    """A sentence drawn at temperature T with top-k and top-p has the probability of the product of its steps'
    filtered, renormalised distributions (each computed here by sorting), EOS included; one cut at max_len
    that of its tokens."""
    model, L, n, eos = random_vae(z_skip=True, z_slots=2), 3, 20000, 3
    T, k, p = 1.5, 3, 0.8
    z = torch.randn(1, 3, generator=torch.Generator().manual_seed(2))
    expect = {}
    for seq, logp in every_sentence(model, z, L).items():
        prob = 1.0
        for j, t in enumerate((*seq, eos)[:L]):
            probs, order = torch.softmax(logp[j] / T, -1).sort(descending=True)
            probs[k:] = 0.0
            probs /= probs.sum()
            probs[probs.cumsum(0) - probs >= p] = 0.0
            prob *= float(probs[(order == t).nonzero()[0, 0]] / probs.sum())
        expect[seq] = prob
    drawn = generate(model, z.expand(n, -1), strategy="sample", temperature=T, top_k=k, top_p=p, max_len=L, seed=0)
    freq = {s: 0 for s in expect}
    for row in drawn:
        freq[tuple(row)] += 1
    assert sum(v > 0.02 for v in expect.values()) >= 5  # a real spread of sentences
    for s, q in expect.items():
        assert abs(freq[s] / n - q) <= 4 * (q * (1 - q) / n) ** 0.5 + 1e-9, (s, freq[s] / n, q)


@pytest.mark.parametrize("opts", [{"strategy": "greedy"}, {"strategy": "beam", "num_beams": 3},
                                  {"strategy": "sample", "seed": 0},
                                  {"strategy": "top-p", "top_p": 0.9, "seed": 0, "candidates": 2}])
def test_no_codes_decode_to_no_sentences(opts):
    """Zero codes give zero sentences, also for a decoder with slots (reshaping their empty memory used to
    raise a RuntimeError); one code, as (1, Z) or (Z,), gives one."""
    model = random_vae(z_slots=2)
    assert generate(model, torch.zeros(0, 3), **opts) == []
    z = torch.randn(1, 3, generator=torch.Generator().manual_seed(0))
    one = generate(model, z, **opts)
    assert len(one) == 1 and generate(model, z[0], **opts) == one


def test_options_that_are_numbers_of_other_types_decode_as_python_numbers(model, z):
    """config.real takes any number (a Fraction, a Decimal, a 0-d tensor) as its float, config.whole any integer
    (a 0-d tensor too) as its int: decoding computes with those, so such options decode as the Python numbers do
    (a Fraction or a Decimal passed the check and then ended in a bare TypeError inside torch: 'Tensor' /
    'Fraction'; candidates=torch.tensor(2) in divmod of two tensors)."""
    from decimal import Decimal
    from fractions import Fraction

    for opts, same in [({"strategy": "top-p", "top_p": Fraction(9, 10)}, {"strategy": "top-p", "top_p": 0.9}),
                       ({"strategy": "sample", "temperature": Decimal("0.5")}, {"strategy": "sample", "temperature": 0.5}),
                       ({"strategy": "beam", "length_penalty": Fraction(1, 2)}, {"strategy": "beam", "length_penalty": 0.5}),
                       ({"strategy": "top-p", "top_p": torch.tensor(0.9)}, {"strategy": "top-p", "top_p": 0.9}),
                       ({"strategy": "sample", "candidates": torch.tensor(2)}, {"strategy": "sample", "candidates": 2}),
                       ({"strategy": "beam", "num_beams": torch.tensor(3)}, {"strategy": "beam", "num_beams": 3})]:
        assert generate(model, z, seed=1, max_len=8, **opts) == generate(model, z, seed=1, max_len=8, **same)
