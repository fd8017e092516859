"""The user-facing API (seqvae.api.SeqVAE), the sample/interpolate/reconstruct CLI and the generation scripts."""

import io
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import train_tiny

from seqvae import Posterior, SeqVAE, generation
from seqvae.api import MAX_TOKENS, InputError
from seqvae.checkpoint import CheckpointError
from seqvae.cli import main
from seqvae.data import collate
from seqvae.interpolation import interpolate_codes
from seqvae.streams import (NOISE_DECODE, NOISE_FIT, NOISE_FIT_IW, NOISE_IW, NOISE_MI, NOISE_POSTERIOR, NOISE_PRIOR,
                            NOISE_Z, key_generator, sentence_noise)

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------- loading and saving
def test_save_and_reload_give_identical_outputs(vae, texts, tmp_path):
    again = SeqVAE.from_pretrained(vae.save_pretrained(tmp_path / "copy"), device="cpu")
    assert torch.equal(vae.encode(texts).mean, again.encode(texts).mean)
    for opts in ({"strategy": "greedy"}, {"strategy": "beam"}, {"strategy": "top-p", "top_p": 0.9}):
        assert vae.sample(5, seed=0, **opts) == again.sample(5, seed=0, **opts)
    assert torch.equal(vae.score(texts, samples=4), again.score(texts, samples=4))
    half = SeqVAE.from_pretrained(vae.save_pretrained(tmp_path / "half", dtype=torch.float16), device="cpu")
    assert torch.allclose(vae.encode(texts).mean, half.encode(texts).mean, atol=2e-2)
    from seqvae.checkpoint import CheckpointError

    for bad in (torch.int8, torch.bool, "float16"):  # int8 weights decoded "',,?????": refused, nothing written
        with pytest.raises(CheckpointError, match="dtype must be a floating torch.dtype"):
            vae.save_pretrained(tmp_path / "bad", dtype=bad)
        assert not (tmp_path / "bad").exists()


def _files(d: Path) -> dict[str, bytes]:
    return {str(f.relative_to(d)): f.read_bytes() for f in sorted(d.rglob("*")) if f.is_file()}


def test_resaving_the_flagship_into_its_own_dir_keeps_its_heads_report_and_card(tmp_path):
    """from_pretrained(d).save_pretrained(d, float16) on the shipped checkpoint (float16 weights): the same
    weights file, so its heads (which name that file's sha256), report and card are kept, and the heads still
    load for it. A float32 save would change the file: refused, naming what would be lost, nothing changed.
    (Both used to succeed and drop README.md, report.*, classifier.* and set_classifier.*.)"""
    from seqvae.sentiment.heads import HEADS, load_head
    from seqvae.sentiment.features import checkpoint_id

    d = tmp_path / "imdb"
    shutil.copytree(ROOT / "checkpoints" / "imdb", d)
    before = _files(d)
    vae = SeqVAE.from_pretrained(d, device="cpu")
    vae.save_pretrained(d, dtype=torch.float16)
    after = _files(d)
    assert sorted(after) == sorted(before)
    assert [f for f in after if after[f] != before[f]] == ["config.json"]  # its random save_id
    for kind in HEADS:
        load_head(d, kind, model_id=checkpoint_id(d))
    with pytest.raises(CheckpointError, match=r"holds README.md, classifier.json, .*report.json.* \(the weights "
                                              r"there are float16: the same model saved in float16 keeps them\)"):
        vae.save_pretrained(d)
    assert _files(d) == after
    assert not [f for f in tmp_path.iterdir() if f.name != "imdb"]  # no temporary dir left


def test_saving_other_weights_over_a_checkpoint_refuses_to_drop_what_it_held(vae, tmp_path):
    """A checkpoint dir whose extras (a head, a report) were made for its weights: saving changed weights there
    is refused, nothing changed; with only what the model carries (prior, word list) it is replaced."""
    d = vae.save_pretrained(tmp_path / "ckpt")
    (d / "report.json").write_text("{}")
    (d / "notes").mkdir()
    (d / "notes" / "a.txt").write_text("mine")
    SeqVAE.from_pretrained(d, device="cpu").save_pretrained(d)  # the same float32 file: kept, subdir too
    assert (d / "report.json").read_text() == "{}" and (d / "notes" / "a.txt").read_text() == "mine"
    before = _files(d)
    other = SeqVAE.from_pretrained(d, device="cpu")
    with torch.no_grad():
        next(other.model.parameters()).add_(1.0)
    with pytest.raises(CheckpointError, match=r"holds notes, report.json, made for the weights this save replaces"):
        other.save_pretrained(d)
    with pytest.raises(CheckpointError, match="notes, report.json"):
        vae.save_pretrained(d, dtype=torch.float16)
    assert _files(d) == before
    (d / "report.json").unlink()
    shutil.rmtree(d / "notes")
    (d / "features").mkdir()  # `classify`'s cache, keyed by the weights: no reason to refuse, left behind
    (d / "features" / "x.npz").write_bytes(b"cache")
    other.save_pretrained(d, dtype=torch.float16)  # nothing but the model's own files: replaced
    assert not (d / "features").exists()
    assert torch.equal(SeqVAE.from_pretrained(d, device="cpu").model.state_dict()[next(iter(
        other.model.state_dict()))], next(other.model.parameters()).half().float())


def test_wrapped_in_memory_model_matches_loaded(trained_tiny_vae, vae, texts):
    model, tok, _ = trained_tiny_vae
    assert SeqVAE(model, tok).reconstruct(texts) == vae.reconstruct(texts)


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        SeqVAE.from_pretrained(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        SeqVAE.from_pretrained(tmp_path)


# ---------------------------------------------------------------------------- encode
def test_encode_keeps_input_order(vae, texts):
    shuffled = [texts[i] for i in (3, 0, 5, 1, 4, 2)]  # mixed lengths
    post = vae.encode(shuffled, batch_size=2)  # several length-sorted batches
    assert isinstance(post, Posterior) and post.mean.shape == (6, vae.latent_dim) and len(post) == 6
    for i, t in enumerate(shuffled):
        one = vae.encode(t)  # a str is one sentence
        assert one.mean.shape == (1, vae.latent_dim)
        assert torch.allclose(post.mean[i], one.mean[0], atol=1e-5)
        assert torch.allclose(post.logvar[i], one.logvar[0], atol=1e-5)


def test_posterior_sample(vae, texts):
    post = vae.encode(texts[:2])
    s = post.sample(50, seed=0)
    assert s.shape == (2, 50, vae.latent_dim)
    assert torch.equal(s, post.sample(50, seed=0)) and not torch.equal(s, post.sample(50, seed=1))
    assert torch.allclose(post.std, torch.exp(0.5 * post.logvar))
    assert torch.allclose(s.mean(1), post.mean, atol=4 * float(post.std.max()) / math.sqrt(50))


def test_posterior_sample_is_keyed_per_row(vae, texts):
    # row i's draws depend on the seed, n and i alone: not on the other rows nor their number
    post = vae.encode(texts[:4])
    full = post.sample(6, seed=5)
    for i in range(4):
        assert torch.equal(Posterior(post.mu[: i + 1], post.logvar[: i + 1]).sample(6, seed=5)[i], full[i])
    other = Posterior(torch.cat([post.mu[:1], post.mu[1:] + 1]), torch.cat([post.logvar[:1], post.logvar[1:] - 1]))
    assert torch.equal(other.sample(6, seed=5)[0], full[0])  # other rows' values change nothing in row 0
    # a generator supplies the seed (generation.stream_seed: one draw per call); the global RNG is untouched
    state = torch.get_rng_state()
    seed = generation.stream_seed(None, torch.Generator().manual_seed(1))
    assert torch.equal(post.sample(6, generator=torch.Generator().manual_seed(1)), post.sample(6, seed=seed))
    gen = torch.Generator().manual_seed(1)
    assert not torch.equal(post.sample(6, generator=gen), post.sample(6, generator=gen))
    assert torch.equal(torch.get_rng_state(), state)
    # row i's noise: draw j is the j-th (Z,) draw of streams.key_generator for key i in a stream of its own (no
    # other use's draws); one draw is sentence_noise's for key i (a seeded sample() of one code kept its value)
    eps = (full - post.mu[:, None]) / post.std[:, None]
    gens = [key_generator(5, NOISE_POSTERIOR, i) for i in range(4)]
    want = torch.stack([torch.stack([torch.randn(vae.latent_dim, generator=g) for _ in range(6)]) for g in gens])
    assert torch.allclose(eps, want, atol=1e-4)
    one = (post.sample(1, seed=5) - post.mu[:, None]) / post.std[:, None]
    assert torch.allclose(one, sentence_noise(5, NOISE_POSTERIOR, range(4), (1, vae.latent_dim)), atol=1e-4)
    assert len({NOISE_Z, NOISE_IW, NOISE_FIT, NOISE_FIT_IW, NOISE_PRIOR, NOISE_DECODE, NOISE_MI, NOISE_POSTERIOR}) == 8


def test_long_input_is_truncated(vae, texts):
    # one sentence past MAX_TOKENS tokens, then another: a repeated sentence alone drives the encoder to the
    # same state however long it is, the second one is what the cut leaves out
    long = " ".join([texts[0]] * 200 + [texts[1]] * 200)
    ids = vae.tokenizer.encode(long)
    assert len(ids) > MAX_TOKENS
    cut = vae.tokenizer.decode(ids[:MAX_TOKENS])
    assert torch.allclose(vae.encode(long).mean, vae.encode(cut).mean, atol=1e-5)
    whole = collate([ids])
    with torch.no_grad():
        uncut, _ = vae.model.encode(whole.src, whole.src_lens)
    assert not torch.allclose(uncut, vae.encode(cut).mean, atol=1e-3)  # the whole input would encode elsewhere
    assert len(vae.tokenize(long)[0]) == MAX_TOKENS and vae.tokenize(long)[0] == ids[:MAX_TOKENS]
    assert torch.allclose(vae.encode_ids([ids]).mean, vae.encode(cut).mean, atol=1e-5)  # ids are cut as well


def test_empty_input_is_an_error(vae):
    for bad in ("", "   ", ["fine", " "]):
        with pytest.raises(InputError, match="empty"):
            vae.encode(bad)
    with pytest.raises(InputError, match="no sentences"):
        vae.encode([])



def test_posterior_sample_prefix_is_stable(vae, texts):
    """The first k of n draws are the k draws of the same seed (or generator), as with prior_codes: until
    2026-12-07 a row's n draws were one torch.randn of n * Z numbers, which torch computes another way from 16 on
    (Z = 4 here: sample(3) drew 12 numbers, sample(6) 24, and their first 3 codes differed)."""
    post = vae.encode(texts[:3])
    full = post.sample(40, seed=7)
    for k in (0, 1, 3, 4, 5, 17, 39):
        assert torch.equal(post.sample(k, seed=7), full[:, :k]), k
    assert torch.equal(post.sample(3, generator=torch.Generator().manual_seed(2)),
                       post.sample(9, generator=torch.Generator().manual_seed(2))[:, :3])
    for z in (1, 5, 17, 64):  # widths below, at and past torch's 16, and not multiples of it
        wide = Posterior(torch.zeros(2, z), torch.zeros(2, z))
        assert torch.equal(wide.sample(2, seed=1), wide.sample(9, seed=1)[:, :2]), z

# ---------------------------------------------------------------------------- decode, sample, reconstruct
def test_decode_batch_equals_one_by_one(vae, texts):
    z = vae.encode(texts).mean
    for opts in ({"strategy": "greedy"}, {"strategy": "beam", "num_beams": 3}):
        batched = vae.decode(z, **opts)
        assert batched == [vae.decode(z[i], **opts)[0] for i in range(len(z))]  # a (Z,) z is one row
    ids = vae.decode_ids(z)
    assert vae.detokenize(ids) == vae.decode(z) and all(isinstance(t, int) for row in ids for t in row)


def test_sample_is_seeded(vae):
    a = vae.sample(8, strategy="sample", seed=0)
    assert len(a) == 8 and all(isinstance(t, str) for t in a)
    assert a == vae.sample(8, strategy="sample", seed=0)
    assert a != vae.sample(8, strategy="sample", seed=1)
    assert vae.sample(0) == []


def test_sample_i_depends_on_the_seed_and_i_alone(vae, texts, trained_tiny_lm, monkeypatch):
    """The first k of sample(n, seed=s) are sample(k, seed=s), for either prior, any decoding, in chunks or not:
    sample is decode(prior_codes(n, seed=s), seed=s), and code i and its decoding draw on streams keyed by
    (s, i). A generator supplies the seed (one draw)."""
    from seqvae import generation
    from seqvae.prior import AggregatePrior

    fitted = SeqVAE(vae.model, vae.tokenizer, prior=AggregatePrior.fit(vae.encode(texts).mean, components=2))
    lm = SeqVAE(*trained_tiny_lm[:2])
    for v, prior in ((vae, "standard"), (fitted, "aggregate"), (lm, None)):
        if v is not lm:
            codes = v.prior_codes(12, prior, seed=3)
            assert torch.equal(v.prior_codes(5, prior, seed=3), codes[:5])
            assert not torch.equal(v.prior_codes(5, prior, seed=4), codes[:5])
        for opts in ({}, {"candidates": 3}, {"strategy": "sample", "temperature": 1.5}, {"strategy": "greedy"}):
            full = v.sample(12, prior=prior, seed=3, **opts)
            assert v.sample(5, prior=prior, seed=3, **opts) == full[:5], (prior, opts)
            if v is not lm:
                assert full == v.decode(codes, seed=3, **generation.sampling_defaults(opts))
            with monkeypatch.context() as m:
                m.setattr(generation, "DECODE_ROWS", 4)
                assert v.sample(12, prior=prior, seed=3, **opts) == full
        seed = generation.stream_seed(None, torch.Generator().manual_seed(0))
        assert v.sample(6, prior=prior, generator=torch.Generator().manual_seed(0)) == \
            v.sample(6, prior=prior, seed=seed)


def test_sample_decodes_with_top_p_unless_told(vae):
    default = vae.sample(8, seed=0)
    assert default == vae.sample(8, strategy="top-p", top_p=0.9, seed=0)
    assert default == vae.sample(8, strategy="top-p", seed=0)  # top-p without a p: the same p
    assert default != vae.sample(8, strategy="sample", seed=0)  # plain sampling keeps the whole distribution
    assert vae.sample(8, strategy="sample", top_p=0.9, seed=0) == default  # sample with the filter is top-p


def test_top_p_without_a_p_means_the_samples_p_everywhere(vae, texts):
    z = vae.encode(texts).mean
    assert vae.decode(z, strategy="top-p", seed=0) == vae.decode(z, strategy="top-p", top_p=0.9, seed=0)
    many = z.repeat(8, 1)  # a row's top-p draw differs from its plain one only where that one left the nucleus
    assert vae.decode(many, strategy="top-p", seed=0) != vae.decode(many, strategy="sample", seed=0)
    assert vae.reconstruct(texts, strategy="top-p", seed=1) == vae.decode(z, strategy="top-p", top_p=0.9, seed=1)
    _, path = vae.interpolate(texts[0], texts[1], steps=4, strategy="top-p", seed=2)
    assert path == vae.interpolate(texts[0], texts[1], steps=4, strategy="top-p", top_p=0.9, seed=2)[1]
    assert vae.decode(z) == vae.decode(z, strategy="greedy")  # no strategy: still greedy


def test_reconstruct_decodes_the_posterior_mean(vae, texts):
    rec = vae.reconstruct(texts, strategy="greedy")
    assert rec == vae.decode(vae.encode(texts).mean)
    # the tiny model was trained on these sentences: it gets most of them back word by word
    hits = sum(r.split()[:2] == t.split()[:2] for r, t in zip(rec, texts))
    assert hits >= len(texts) // 2, list(zip(texts, rec))


# ---------------------------------------------------------------------------- interpolate
@pytest.mark.parametrize("method", ["lerp", "slerp"])
def test_interpolation_endpoints_are_the_encodings(vae, texts, method):
    z, out = vae.interpolate(texts[0], texts[1], steps=5, method=method)
    mu = vae.encode([texts[0], texts[1]]).mean
    assert z.shape == (5, vae.latent_dim) and len(out) == 5
    assert torch.equal(z[0], mu[0]) and torch.equal(z[-1], mu[1])
    assert out[0] == vae.reconstruct(texts[0])[0] and out[-1] == vae.reconstruct(texts[1])[0]


def test_interpolate_refuses_an_unknown_method_before_encoding(vae, texts, monkeypatch):
    """The method was checked only once the two codes were made: `method="cubic", refine=10000` refined for
    minutes, then said the method was unknown."""
    def encoded(*args, **kwargs):
        raise AssertionError("encoded before the method was checked")

    monkeypatch.setattr(vae, "encode", encoded)
    monkeypatch.setattr(vae, "refine", encoded)
    for refine in (0, 5):
        with pytest.raises(InputError, match="unknown interpolation method 'cubic'"):
            vae.interpolate(texts[0], texts[1], steps=3, method="cubic", refine=refine)


# ---------------------------------------------------------------------------- score
def test_score(vae, texts, trained_tiny_vae):
    nll = vae.score(texts, samples=8, batch_size=4)
    assert nll.shape == (6,) and (nll > 0).all()
    assert torch.equal(nll, vae.score(texts, samples=8, batch_size=4))
    assert torch.equal(vae.score(texts[::-1], samples=8, batch_size=4), nll.flip(0))  # order-independent
    # a training sentence is likelier than the same words shuffled
    assert float(vae.score(texts[0], samples=8)[0]) < float(vae.score(" ".join(texts[0].split()[::-1]), samples=8)[0])


@pytest.mark.parametrize("refine", [0, 2])
def test_a_sentences_score_does_not_depend_on_the_others(vae, texts, refine):
    """Each sentence draws its own noise: alone, beside others, twice in one call, in batches of any size, it
    gets the same score (up to float rounding); another seed gives another estimate."""
    longer = texts[:3] + [" ".join(texts[3].split() * 3), texts[1]]  # lengths apart, texts[1] twice
    nll = vae.score(longer, samples=8, refine=refine, seed=5)
    alone = torch.cat([vae.score(t, samples=8, refine=refine, seed=5) for t in longer])
    assert torch.allclose(nll, alone, rtol=0, atol=1e-4)
    assert torch.allclose(vae.score(longer, samples=8, refine=refine, seed=5, batch_size=2), nll, rtol=0, atol=1e-4)
    assert float(nll[1]) == float(nll[4])
    assert not torch.allclose(vae.score(longer, samples=8, refine=refine, seed=6), nll, rtol=0, atol=1e-3)


# ---------------------------------------------------------------------------- a sentence among others
VARIANTS = {"default": {}, "attention slots and z skip": dict(encoder_slots=3, z_slots=3, z_skip=True),
            "adaptive softmax": dict(softmax="adaptive"), "two layers, tied": dict(num_layers=2, tie_embeddings=True)}


@pytest.fixture(scope="module", params=list(VARIANTS))
def variant(request):
    """(SeqVAE, its training sentences) for a tiny VAE of each encoder and decoder variant."""
    kw = VARIANTS[request.param]
    model, tok, sentences = train_tiny(**kw) if kw else request.getfixturevalue("trained_tiny_vae")
    return SeqVAE(model, tok), sentences


def test_a_sentences_results_do_not_depend_on_the_others_in_its_call(variant, tiny_lm_ckpt):
    """docs/usage.md: encode, refine, score, greedy and beam decoding give a sentence alone what they give it
    among shorter and longer ones (padding, packing, length sorting), in another order and in batches of any size,
    whatever the model's variant (the encoder's attention slots read padded positions, which must stay masked),
    up to float rounding: a batch of another shape sums in another order (about 1e-7 here)."""
    vae, sentences = variant
    texts = sentences[:5] + [" ".join(sentences[5].split() * 3)]  # lengths 2 to 3 x apart: padding in every batch
    order = [4, 2, 5, 0, 3, 1]
    shuffled = [texts[i] for i in order]
    post = vae.encode(texts)
    alone = [vae.encode(t) for t in texts]
    assert torch.allclose(torch.cat([p.mean for p in alone]), post.mean, rtol=0, atol=1e-5)
    assert torch.allclose(torch.cat([p.logvar for p in alone]), post.logvar, rtol=0, atol=1e-5)
    assert torch.allclose(vae.encode(shuffled, batch_size=4).mean, post.mean[order], rtol=0, atol=1e-5)
    refined = vae.refine(texts, steps=3)
    assert torch.allclose(torch.cat([vae.refine(t, steps=3) for t in texts]), refined, rtol=0, atol=1e-4)
    assert torch.allclose(vae.refine(shuffled, steps=3, batch_size=4), refined[order], rtol=0, atol=1e-4)
    nll = vae.score(texts, samples=4, seed=2)
    assert torch.allclose(torch.cat([vae.score(t, samples=4, seed=2) for t in texts]), nll, rtol=0, atol=1e-4)
    assert torch.allclose(vae.score(shuffled, samples=4, seed=2, batch_size=4), nll[order], rtol=0, atol=1e-4)
    z = torch.cat([post.mean, 1.5 * torch.randn(6, vae.latent_dim, generator=torch.Generator().manual_seed(0))])
    perm = torch.randperm(len(z), generator=torch.Generator().manual_seed(1)).tolist()
    for opts in ({"strategy": "greedy"}, {"strategy": "beam", "num_beams": 3}):
        batched = vae.decode(z, max_len=12, **opts)  # rows end at different steps and leave the batch
        assert [vae.decode(row, max_len=12, **opts)[0] for row in z] == batched, opts
        assert vae.decode(z[perm], max_len=12, **opts) == [batched[i] for i in perm], opts
    lm = SeqVAE.from_pretrained(tiny_lm_ckpt, device="cpu")
    nll = lm.score(texts)
    assert torch.allclose(torch.cat([lm.score(t) for t in texts]), nll, rtol=0, atol=1e-4)
    assert torch.allclose(lm.score(shuffled, batch_size=4), nll[order], rtol=0, atol=1e-4)


# ---------------------------------------------------------------------------- language model checkpoints
def test_language_model_checkpoint(tiny_lm_ckpt, texts):
    lm = SeqVAE.from_pretrained(tiny_lm_ckpt, device="cpu")
    assert not lm.latent
    assert len(lm.sample(3, strategy="top-k", top_k=5, seed=0)) == 3
    assert lm.sample(3, seed=0, strategy="sample") == lm.sample(3, seed=0, strategy="sample")
    nll = lm.score(texts[:3])
    model = lm.model
    b = collate(lm.tokenize(texts[:3]))
    assert torch.allclose(nll, model.token_nll(b.dec_in, b.target, None).detach(), atol=1e-5)
    for call, name in ((lambda: lm.encode(texts[0]), "encode"),
                       (lambda: lm.interpolate(texts[0], texts[1]), "interpolate"),
                       (lambda: lm.reconstruct(texts[0]), "reconstruct"),
                       (lambda: lm.reconstruct(texts[0], refine=2), "reconstruct"),
                       (lambda: lm.refine(texts[0]), "refine"), (lambda: lm.decode(torch.zeros(1, 4)), "decode")):
        with pytest.raises(InputError, match="language model") as err:  # the message names the method called
            call()
        assert str(err.value).startswith(name), str(err.value)


# ---------------------------------------------------------------------------- CLI and scripts
def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_sample_interpolate_reconstruct(tiny_vae_ckpt, texts, capsys, monkeypatch):
    code, out, _ = run(capsys, "sample", tiny_vae_ckpt, "-n", 4, "--strategy", "top-p", "--top-p", 0.9,
                       "--seed", 0, "--json")
    res = json.loads(out)
    assert code == 0 and len(res["samples"]) == 4 and res["strategy"] == "top-p"
    vae = SeqVAE.from_pretrained(tiny_vae_ckpt)  # the CLI's default device (seeded draws differ between CPU and CUDA)
    assert res["samples"] == vae.sample(4, strategy="top-p", top_p=0.9, seed=0)
    code, out, _ = run(capsys, "sample", tiny_vae_ckpt, "-n", 3, "--seed", 1)  # the default: top-p 0.9, as the API's
    assert code == 0 and out.splitlines() == vae.sample(3, strategy="top-p", top_p=0.9, seed=1)
    code, out, _ = run(capsys, "sample", tiny_vae_ckpt, "-n", 3, "--seed", 1, "--strategy", "sample")
    assert code == 0 and out.splitlines() == vae.sample(3, strategy="sample", top_p=1.0, seed=1)
    code, out, _ = run(capsys, "sample", tiny_vae_ckpt, "-n", 3, "--seed", 1, "--candidates", 4, "--json")
    res = json.loads(out)
    assert code == 0 and res["candidates"] == 4 and res["top_p"] == 0.9
    assert res["samples"] == vae.sample(3, seed=1, candidates=4)
    code, out, _ = run(capsys, "sample", tiny_vae_ckpt, "-n", 8, "--seed", 1, "--candidates", 4, "--json")
    assert code == 0 and json.loads(out)["samples"][:3] == res["samples"]  # -n 8 begins with what -n 3 gave

    code, out, _ = run(capsys, "interpolate", tiny_vae_ckpt, texts[0], texts[1], "--steps", 4, "--method", "slerp",
                       "--json")
    path = json.loads(out)["path"]
    assert code == 0 and [p["t"] for p in path] == [0.0, 0.3333, 0.6667, 1.0]
    assert [p["text"] for p in path] == vae.interpolate(texts[0], texts[1], steps=4, method="slerp")[1]

    code, out, _ = run(capsys, "reconstruct", tiny_vae_ckpt, texts[0], texts[1])
    assert code == 0 and out.splitlines() == vae.reconstruct(texts[:2])
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{texts[2]}\n\n{texts[3]}\n"))
    code, out, _ = run(capsys, "reconstruct", tiny_vae_ckpt, "-", "--json")
    assert code == 0 and [r["input"] for r in json.loads(out)] == texts[2:4]


def test_cli_errors_are_one_line(tiny_vae_ckpt, tiny_lm_ckpt, tmp_path, capsys):
    cases = [(("sample", tmp_path / "missing"), "no such checkpoint"),
             (("sample", tiny_vae_ckpt, "--strategy", "top-p", "--top-p", 0), "top_p"),
             (("sample", tiny_vae_ckpt, "--strategy", "top-k"), "top_k"),
             (("sample", tiny_vae_ckpt, "--temperature", -1), "temperature"),
             (("reconstruct", tiny_vae_ckpt, "  "), "empty"),
             (("interpolate", tiny_vae_ckpt, "a b", "c d", "--steps", 1), "steps"),
             (("interpolate", tiny_lm_ckpt, "the movie", "the plot"), "language model")]
    for argv, pattern in cases:
        code, _, err = run(capsys, *argv)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert code == 2 and len(lines) == 1 and lines[0].startswith("seqvae: error:"), (argv, err)
        assert pattern in lines[0], (argv, lines[0])


def _script(name):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bench_sampling_runs(tiny_vae_ckpt, capsys):
    bench = _script("bench_sampling")
    assert bench.main([str(tiny_vae_ckpt), "--batch-sizes", "1", "8", "--repeats", "1", "--min-sentences", "2",
                       "--strategies", "sample", "beam"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 + 4 and lines[-1].split()[:2] == ["beam", "8"]


def test_benchmarks_reject_bad_input_in_one_line(tiny_vae_ckpt, tiny_data_dir, tmp_path, capsys):
    train, sampling = _script("bench_train"), _script("bench_sampling")
    cases = ((train.main, ["--data", tiny_data_dir, "--steps", "0"], "--steps"),
             (train.main, ["--data", tmp_path / "none"], "none"),
             (train.main, ["--data", tiny_data_dir, "--steps", "1000"], "asks for"),
             (train.main, ["--data", tiny_data_dir, "--json", tmp_path], "is a directory"),
             (sampling.main, [tmp_path / "none"], "no such checkpoint"),
             (sampling.main, [tiny_vae_ckpt, "--batch-sizes", "0"], "--batch-sizes"))
    for script_main, argv, msg in cases:
        assert script_main([str(a) for a in argv]) == 2
        err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
        assert len(err) == 1 and "error:" in err[0] and msg in err[0], err


# ---------------------------------------------------------------------------- a review as a researcher
def test_refining_works_inside_inference_mode(vae, texts):
    with torch.no_grad():
        codes, scores = vae.refine(texts[:2], steps=3), vae.score(texts[:2], samples=4, refine=2)
    with torch.inference_mode():
        assert torch.equal(vae.refine(texts[:2], steps=3), codes)
        assert torch.equal(vae.score(texts[:2], samples=4, refine=2), scores)
        assert vae.reconstruct(texts[:2], refine=3) == vae.decode(codes)
    assert not scores.requires_grad


def test_codes_and_scores_do_not_depend_on_the_models_mode(vae, texts):
    """A caller that left the model in train mode (after fine-tuning) gets the same codes and scores."""
    drop = [m for m in vae.model.modules() if isinstance(m, torch.nn.Dropout)]
    old = [m.p for m in drop]
    mu, nll, ref = vae.encode(texts).mean, vae.score(texts, samples=3), vae.refine(texts, steps=2)
    try:
        for m in drop:
            m.p = 0.5
        vae.model.train()
        assert torch.equal(vae.encode(texts).mean, mu) and torch.equal(vae.score(texts, samples=3), nll)
        assert torch.equal(vae.refine(texts, steps=2), ref) and vae.model.training
    finally:
        vae.model.eval()
        for m, p in zip(drop, old):
            m.p = p
    assert drop, "the tiny model has dropout layers to test with"


def test_loading_leaves_the_global_rng_alone(tiny_vae_ckpt):
    torch.manual_seed(123)
    state = torch.get_rng_state()
    SeqVAE.from_pretrained(tiny_vae_ckpt, device="cpu")
    assert torch.equal(state, torch.get_rng_state())


def test_bad_arguments_are_input_errors(vae, texts, tiny_lm_ckpt):
    from seqvae.config import ConfigError
    from seqvae.generation import DecodingError

    m = vae.encode(texts).mean
    V = vae.model.cfg.vocab_size
    for call, msg in [(lambda: vae.encode_ids([[5, V]]), f"token id {V} is outside the vocabulary"),
                      (lambda: vae.encode_ids([[5, -1]]), "token id -1 is outside"),
                      (lambda: vae.encode_ids([[5, vae.model.cfg.eos_id, 6]]), "which a sentence's ids may not hold"),
                      (lambda: vae.encode_ids([[vae.model.cfg.pad_id, 5]]), f"token id {vae.model.cfg.pad_id} is <pad>"),
                      (lambda: vae.encode_ids([[5.7, 6.2]]), "must be integers"),
                      (lambda: vae.encode_ids(["abc"]), "got a string"),
                      (lambda: vae.fit_prior(texts * 10, components=0), "components must be >= 1"),
                      (lambda: vae.score(texts, samples=2.5), "samples must be an integer"),
                      (lambda: vae.encode(texts, batch_size=2.5), "batch_size must be an integer"),
                      (lambda: vae.refine(texts, batch_size=True), "batch_size must be an integer"),
                      (lambda: vae.score(texts, batch_size="4"), "batch_size must be an integer"),
                      (lambda: vae.encode_ids([[5, 6]], batch_size=0), "batch_size must be >= 1"),
                      (lambda: vae.reconstruct(texts, refine=True), "refine steps must be an integer"),
                      (lambda: vae.refine(texts, lr=math.inf), "lr must be a finite number"),
                      (lambda: vae.refine(texts, weight=math.inf), "weight must be a finite number"),
                      (lambda: vae.interpolate(texts[0], texts[1], steps=3.0), "steps must be an integer"),
                      (lambda: interpolate_codes(m[0], m[1], 1), "steps must be between 2 and 10,000"),
                      (lambda: interpolate_codes(m[0], m[1, :2], 3), "two codes of one width"),
                      (lambda: vae.encode(texts).sample(-1), "n must be between 0 and 1,000,000"),
                      (lambda: vae.sample(2.0), "n must be an integer"),
                      (lambda: vae.to(torch.float64), "takes a device, not a dtype"),
                      (lambda: SeqVAE.from_pretrained(tiny_lm_ckpt).latent_dim, "needs a latent space")]:
        with pytest.raises(InputError, match=msg):
            call()
    for opts, msg in [({"strategy": "beam", "num_beams": 2.0}, "num_beams must be an integer"),
                      ({"strategy": "top-k", "top_k": 2.5}, "top_k must be an integer"),
                      ({"max_len": 5.0}, "max_len must be an integer")]:
        with pytest.raises(DecodingError, match=msg):
            vae.decode(m, **opts)
    with pytest.raises(DecodingError, match="no codes given"):
        vae.decode([])
    with pytest.raises(ConfigError):
        vae.to("cuda:99")
    path = interpolate_codes(m[0].numpy(), m[1].numpy(), 3)  # numpy codes, as decode takes them
    assert torch.equal(path[0], m[0]) and torch.equal(path[-1], m[1])
    assert vae.decode([m[0], m[1]]) == vae.decode(m[:2])  # a list of (Z,) codes is stacked
    assert vae.encode_ids([[5, 6]]).mean.shape == (1, vae.latent_dim)


def test_sizes_past_the_shared_bounds_are_refused_before_any_work(vae, texts, tiny_vae_ckpt, capsys):
    """The API refuses the sizes the command line refuses, by the same bounds (seqvae.config), at once: it took
    any size (sample(10**12) built 10**12 noise generators one by one, for days; samples=10**9 asked for 256 GB
    of noise; max_len=10**9 for 16 GB of tokens; steps=10**9 for 8 GB of path)."""
    from seqvae import config
    from seqvae.generation import DecodingError

    m = vae.encode(texts[:2]).mean
    post = vae.encode(texts[:2])
    for call, msg in [(lambda: vae.sample(10**12), f"n must be between 0 and {config.MAX_SAMPLES:,}"),
                      (lambda: vae.sample_ids(config.MAX_SAMPLES + 1), "n must be between"),
                      (lambda: vae.prior_codes(10**12), "n must be between"),
                      (lambda: post.sample(10**12), "n must be between"),
                      (lambda: vae.score(texts, samples=10**9), f"samples must be between 1 and {config.MAX_IW_SAMPLES:,}"),
                      (lambda: vae.score(texts, refine=10**9), "refine must be between"),
                      (lambda: vae.refine(texts, steps=10**12), "refine steps must be between"),
                      (lambda: vae.reconstruct(texts, refine=10**12), "refine steps must be between"),
                      (lambda: vae.interpolate(texts[0], texts[1], steps=10**9), "steps must be between 2 and"),
                      (lambda: interpolate_codes(m[0], m[1], 10**9), "steps must be between 2 and")]:
        with pytest.raises(InputError, match=msg):
            call()
    for opts, msg in [({"max_len": 10**9}, f"max_len must be between 1 and {config.MAX_LEN:,}"),
                      ({"strategy": "beam", "num_beams": 10**8}, f"num_beams must be between 1 and {config.MAX_BEAMS}"),
                      ({"strategy": "sample", "candidates": 10**6}, "candidates must be between 1 and")]:
        with pytest.raises(DecodingError, match=msg):
            vae.decode(m, **opts)
        with pytest.raises(DecodingError, match=msg):
            vae.sample(2, **opts)
    assert len(vae.sample(0)) == 0 and len(vae.decode(m, max_len=config.MAX_LEN)) == 2  # the bounds themselves
    assert main(["sample", str(tiny_vae_ckpt), "-n", str(config.MAX_SAMPLES + 1)]) == 2  # the CLI: the same bound
    assert f"between 1 and {config.MAX_SAMPLES:,}" in capsys.readouterr().err


def test_options_that_are_not_numbers_are_decoding_errors(vae, texts):
    """A str, None or bool where a number is meant is one DecodingError (InputError for refine) that names the
    option; it used to meet a comparison inside and end in a bare TypeError ('<=' not supported ...).
    numpy and 0-d torch numbers are taken as numbers."""
    import numpy as np

    from seqvae.generation import DecodingError

    m = vae.encode(texts[:2]).mean
    for opts, msg in [({"strategy": "sample", "temperature": "0.8"}, "temperature must be a number, got '0.8'"),
                      ({"strategy": "sample", "temperature": None}, "temperature must be a number, got None"),
                      ({"strategy": "sample", "top_p": "0.9"}, "top_p must be a number"),
                      ({"strategy": "sample", "top_p": True}, "top_p must be a number, got True"),
                      ({"strategy": "beam", "length_penalty": "1"}, "length_penalty must be a number")]:
        with pytest.raises(DecodingError, match=msg):
            vae.decode(m, **opts)
    for opts, msg in [({"lr": "0.1"}, "refine lr must be a number"), ({"weight": None}, "refine weight must be a number")]:
        with pytest.raises(InputError, match=msg):
            vae.refine(texts, **opts)
    same = {"strategy": "top-p", "seed": 3}
    assert vae.decode(m, top_p=np.float32(0.5), temperature=np.float64(0.7), **same) == \
        vae.decode(m, top_p=float(np.float32(0.5)), temperature=0.7, **same)
    assert vae.decode(m, temperature=torch.tensor(0.7), **same) == vae.decode(m, temperature=0.7, **same)


def test_a_bad_seed_or_generator_is_refused_whatever_the_strategy(vae, texts):
    """generator=5 (a seed in the wrong place) was an AttributeError inside torch; a bad seed or generator given to
    greedy or beam decoding, which draw nothing, was ignored silently."""
    from seqvae.generation import DecodingError

    m = vae.encode(texts[:2]).mean
    for strategy in ("greedy", "beam", "sample"):
        with pytest.raises(DecodingError, match="generator must be a torch.Generator, got int"):
            vae.decode(m, strategy=strategy, generator=5)
        for seed in (-1, 1.5, 2**63):
            with pytest.raises(DecodingError, match="seed must be an integer in"):
                vae.decode(m, strategy=strategy, seed=seed)
    with pytest.raises(DecodingError, match="generator must be a torch.Generator"):
        vae.sample(2, generator=5)
    assert vae.decode(m, seed=7) == vae.decode(m)  # a good seed still changes nothing for greedy


def test_texts_that_are_no_list_of_sentences_are_named(vae, texts, tiny_lm_ckpt):
    """A str is one sentence everywhere (fit_prior read it as a list of characters: 'sentence 3 is empty' for
    'the movie'); bytes, None or a number are one InputError naming what came (bytes were read as a list of
    numbers: 'sentence 0: expected a string, got int'; None: "'NoneType' object is not iterable"), and so is a
    path that is not one (pathlib's TypeError)."""
    for call in (lambda: vae.encode(None), lambda: vae.encode(5), lambda: vae.score(3.5), lambda: vae.reconstruct(None),
                 lambda: vae.refine(7)):
        with pytest.raises(InputError, match="texts must be a string or a list of strings, got (NoneType|int|float)"):
            call()
    with pytest.raises(InputError, match="got bytes .decode bytes to str first"):
        vae.encode(texts[0].encode())
    with pytest.raises(InputError, match="needs at least 4 codes, got 1"):  # one sentence, not len(texts[0]) chars
        vae.fit_prior(texts[0], components=2)
    with pytest.raises(InputError, match="no sentences given"):
        vae.fit_prior([], components=2)
    with pytest.raises(InputError, match="seed must be an integer"):  # before anything is encoded
        vae.fit_prior(texts, components=2, seed=-1)
    for path in (None, 5):
        with pytest.raises(InputError, match="path must be a checkpoint directory"):
            SeqVAE.from_pretrained(path)
    assert vae.encode(iter(texts[:2])).mean.shape == (2, vae.latent_dim)  # any iterable of str still works


@pytest.mark.parametrize("dtype, name", [(None, "float32"), (torch.float32, "float32"), (torch.bfloat16, "bfloat16"),
                                         (torch.float16, "float16")])
def test_a_resave_in_another_dtype_records_the_dtype_it_wrote(tmp_path, dtype, name):
    """The flagship's metrics.json says weights_dtype float16 (ship_checkpoint.py); save_pretrained in float32 (the
    default: the loaded model is float32) or bfloat16 copied that claim beside a float32 or bfloat16 file."""
    from safetensors import safe_open

    vae = SeqVAE.from_pretrained(ROOT / "checkpoints" / "imdb", device="cpu")
    assert vae.metrics["weights_dtype"] == "float16"
    out = vae.save_pretrained(tmp_path / "copy", dtype=dtype)
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        assert {str(f.get_tensor(k).dtype) for k in f.keys()} == {f"torch.{name}"}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["weights_dtype"] == name
    assert {k: v for k, v in metrics.items() if k != "weights_dtype"} == \
        {k: v for k, v in vae.metrics.items() if k != "weights_dtype"}
    assert vae.metrics["weights_dtype"] == "float16"  # the loaded model's own record is left alone


# ---------------------------------------------------------------------------- the caller's default dtype
def _api_results(vae_dir, lm_dir, texts) -> dict:
    """What each API call gives on the tiny checkpoints (codes, scores, draws, sentences), under whatever
    default dtype torch has when called."""
    vae, lm = SeqVAE.from_pretrained(vae_dir, device="cpu"), SeqVAE.from_pretrained(lm_dir, device="cpu")
    vae.fit_prior(texts * 4, components=2, seed=0)
    post = vae.encode(texts)
    z, path = vae.interpolate(texts[0], texts[1], steps=4, method="slerp")
    return {"weights": {p.dtype for p in vae.model.parameters()} | {p.dtype for p in lm.model.parameters()},
            "mu": post.mu, "logvar": post.logvar, "draws": post.sample(3, seed=1),
            "score": vae.score(texts, samples=5, seed=0), "score refined": vae.score(texts, samples=3, refine=2),
            "refined": vae.refine(texts, steps=2), "greedy": vae.reconstruct(texts),
            "beam": vae.reconstruct(texts, strategy="beam", num_beams=3), "path": z, "path text": path,
            "prior codes": vae.prior_codes(3, seed=4), "standard codes": vae.prior_codes(3, prior="standard", seed=4),
            "samples": vae.sample(4, seed=2), "best of 3": vae.sample(4, seed=2, candidates=3),
            "decoded": vae.decode(post.mu, strategy="sample", seed=5),
            "lm score": lm.score(texts), "lm samples": lm.sample(4, seed=2)}


def test_the_callers_default_dtype_changes_nothing(tiny_vae_ckpt, tiny_lm_ckpt, texts):
    """A script that sets torch.set_default_dtype(torch.float64) gets the float32 API: the same codes, scores and
    sentences, bit for bit (encode ended in an index_put dtype error; the weights loaded as float64)."""
    want = _api_results(tiny_vae_ckpt, tiny_lm_ckpt, texts)
    assert want["weights"] == {torch.float32}
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        got = _api_results(tiny_vae_ckpt, tiny_lm_ckpt, texts)
    finally:
        torch.set_default_dtype(default)
    for name, value in want.items():
        if isinstance(value, torch.Tensor):
            assert got[name].dtype == value.dtype == torch.float32 and torch.equal(got[name], value), name
        else:
            assert got[name] == value, name


# ---------------------------------------------------------------------------- one API, one set of errors
def test_every_method_names_bad_input_with_the_api_errors(vae, texts, tiny_lm_ckpt, tmp_path):
    """Siblings raise alike: encode_ids(None) and save_pretrained(None) were bare TypeErrors where encode(None) and
    from_pretrained(None) are InputErrors; detokenize turned [[5.5]] into 'and' (5) silently, a flat list or a str
    row into TypeError / ValueError, an id past the vocabulary into a TokenizerError; score, prior_codes and
    Posterior.sample, which decode nothing, refused a bad seed with a DecodingError while fit_prior says
    InputError."""
    V = vae.model.cfg.vocab_size
    post = vae.encode(texts[:2])
    for call, msg in [(lambda: vae.encode_ids(None), "token ids must be a list of sentences, got NoneType"),
                      (lambda: vae.encode_ids(5), "token ids must be a list of sentences, got int"),
                      (lambda: vae.detokenize(None), "token ids must be a list of sentences, got NoneType"),
                      (lambda: vae.detokenize([5, 6]), "sentence 0: expected a list of token ids"),
                      (lambda: vae.detokenize(["a"]), "sentence 0: expected token ids, got a string"),
                      (lambda: vae.detokenize([[5.5]]), "token ids must be integers"),
                      (lambda: vae.detokenize([[5, V]]), f"token id {V} is outside the vocabulary"),
                      (lambda: vae.save_pretrained(None), "path must be a checkpoint directory"),
                      (lambda: vae.save_pretrained(5), "path must be a checkpoint directory"),
                      (lambda: vae.score(texts, seed=-1), "seed must be an integer"),
                      (lambda: vae.prior_codes(2, seed=1.5), "seed must be an integer"),
                      (lambda: post.sample(2, seed=-1), "seed must be an integer"),
                      (lambda: post.sample(2, generator=5), "generator must be a torch.Generator")]:
        with pytest.raises(InputError, match=msg):
            call()
    ids = vae.tokenize(texts[:2])
    assert vae.detokenize(ids) == vae.detokenize(np.array(ids[0])[None]) + vae.detokenize(torch.tensor([ids[1]]))
    assert vae.detokenize([[]]) == [""] and vae.detokenize([]) == []  # what decode_ids gives for 0 codes


def test_unknown_decoding_options_are_named_not_ignored(vae, texts, tiny_lm_ckpt):
    """Decoding options pass through **opts: a misspelt one was a TypeError naming generate(), which the caller
    never called; batch_size (encode's, score's, refine's) was ignored silently by decode, reconstruct,
    interpolate and a VAE's sample, and a TypeError ('multiple values') for a language model's sample."""
    from seqvae.generation import DecodingError

    m = vae.encode(texts[:2]).mean
    lm = SeqVAE.from_pretrained(tiny_lm_ckpt, device="cpu")
    for call, name in [(lambda: vae.decode(m, temprature=0.5), "temprature"),
                       (lambda: vae.decode(m, batch_size=2), "batch_size"),
                       (lambda: vae.decode_ids(m, batch_size=2), "batch_size"),
                       (lambda: vae.reconstruct(texts, batch_size=2), "batch_size"),
                       (lambda: vae.interpolate(texts[0], texts[1], batch_size=2), "batch_size"),
                       (lambda: vae.sample(2, batch_size=2), "batch_size"),
                       (lambda: vae.sample(2, z=m), "z"),
                       (lambda: lm.sample(2, batch_size=1), "batch_size")]:
        with pytest.raises(DecodingError, match=f"unknown decoding option '{name}' .choose from strategy, max_len"):
            call()


def test_the_package_exports_its_errors_and_no_helpers():
    """`from seqvae import InputError` (and the other errors the API raises) works; dir(seqvae) listed the
    package's own helpers (lazy_names, TYPE_CHECKING, annotations); every exported class has a docstring.
    InputError, Posterior and interpolate_codes have modules of their own (errors, posterior, interpolation);
    seqvae.api still offers them, as before."""
    import seqvae
    import seqvae.api
    from seqvae import CheckpointError as CE, ConfigError, DecodingError, InputError as IE
    from seqvae.config import ConfigError as CfgE
    from seqvae.decodestep import DecodingError as DE
    from seqvae.errors import InputError as home
    from seqvae.posterior import Posterior as P

    assert (IE, DE, CE, ConfigError) == (InputError, DE, CheckpointError, CfgE)
    assert IE is home is seqvae.api.InputError and seqvae.Posterior is P is seqvae.api.Posterior
    assert seqvae.api.interpolate_codes is interpolate_codes
    assert {"InputError", "DecodingError", "CheckpointError", "ConfigError"} <= set(seqvae.__all__)
    assert not {"lazy_names", "TYPE_CHECKING", "annotations"} & set(dir(seqvae))
    assert all(getattr(seqvae, n).__doc__ for n in seqvae.__all__ if n != "__version__")
