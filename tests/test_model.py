import pytest
import torch

from seqvae.config import ConfigError, ModelConfig
from seqvae.data import collate
from seqvae.model import SentenceVAE

TINY = dict(vocab_size=30, embed_dim=8, hidden_dim=12, latent_dim=5)


def make(**kw):
    torch.manual_seed(0)
    return SentenceVAE(ModelConfig(**{**TINY, **kw})).eval()


@pytest.mark.parametrize("sentences", [[[5]], [[5, 6, 7]], [[5, 6, 7], [8], [9, 10]], [[4] * 20] * 3])
@pytest.mark.parametrize("kw", [{}, {"tie_embeddings": True}, {"num_layers": 2}, {"softmax": "adaptive"}])
def test_shapes(sentences, kw):
    model = make(**kw)
    b = collate(sentences)
    out = model(b.src, b.src_lens, b.dec_in, b.target)
    B = len(sentences)
    assert out.rec.shape == (B,) and out.kl.shape == (B,)
    assert out.mu.shape == out.logvar.shape == out.z.shape == (B, 5)
    assert (out.rec > 0).all() and (out.kl >= 0).all()
    out.rec.sum().backward()  # differentiable end to end


def test_language_model_has_no_latent():
    model = make(latent=False)
    b = collate([[5, 6], [7]])
    out = model(b.src, b.src_lens, b.dec_in, b.target)
    assert out.mu is None and torch.equal(out.kl, torch.zeros(2))
    assert model.encoder is None
    with pytest.raises(RuntimeError, match="no encoder"):
        model.encode(b.src, b.src_lens)


def test_padding_does_not_change_a_sentence():
    """Encoder (packed) and decoder (causal) give the same numbers alone and padded in a batch."""
    model = make()
    alone = collate([[5, 6]])
    padded = collate([[5, 6], [7, 8, 9, 10, 11]])
    mu1, lv1 = model.encode(alone.src, alone.src_lens)
    mu2, lv2 = model.encode(padded.src, padded.src_lens)
    assert torch.allclose(mu1[0], mu2[0], atol=1e-6) and torch.allclose(lv1[0], lv2[0], atol=1e-6)
    z = torch.randn(2, 5, generator=torch.Generator().manual_seed(7))  # the same whatever ran before
    nll1 = model.token_nll(alone.dec_in, alone.target, z[:1])
    nll2 = model.token_nll(padded.dec_in, padded.target, z)
    assert torch.allclose(nll1[0], nll2[0], atol=1e-5)


def test_posterior_does_not_depend_on_the_batch_order():
    """Length-sorted batches pack without a reordering index (enforce_sorted), others with one: same μ, logσ²."""
    model = make()
    sents = [[5, 6], [7, 8, 9, 10, 11], [12], [13, 14, 15]]
    order = sorted(range(len(sents)), key=lambda i: -len(sents[i]))
    b, s = collate(sents), collate([sents[i] for i in order])
    assert not bool((b.src_lens[:-1] >= b.src_lens[1:]).all()) and bool((s.src_lens[:-1] >= s.src_lens[1:]).all())
    mu_b, lv_b = model.encode(b.src, b.src_lens)
    mu_s, lv_s = model.encode(s.src, s.src_lens)
    assert torch.allclose(mu_b[order], mu_s, atol=1e-6) and torch.allclose(lv_b[order], lv_s, atol=1e-6)


@pytest.mark.parametrize("kw", [{}, {"softmax": "adaptive"}, {"softmax": "adaptive", "adaptive_cutoffs": [6, 12]}])
def test_token_nll_matches_full_softmax(kw):
    model = make(**kw)
    b = collate([[5, 6, 7], [8]])
    z = torch.randn(2, 5, generator=torch.Generator().manual_seed(8))
    hidden, _ = model.decoder(b.dec_in, z)
    logp = torch.log_softmax(model.decoder.logits(hidden), -1)
    mask = b.target != 0
    ref = -(logp.gather(-1, b.target.unsqueeze(-1)).squeeze(-1) * mask).sum(1)
    assert torch.allclose(model.token_nll(b.dec_in, b.target, z), ref, atol=1e-5)
    # the CPU-precomputed positions (the training path, no device sync) give the same numbers
    assert b.positions.tolist() == torch.nonzero(mask.flatten()).squeeze(1).tolist()
    assert torch.equal(model.token_nll(b.dec_in, b.target, z, b.positions), model.token_nll(b.dec_in, b.target, z))
    moved = b.to("cpu")
    assert moved.src_lens.device.type == "cpu" and torch.equal(moved.positions, b.positions)


def test_z_conditions_the_decoder():
    model = make()
    b = collate([[5, 6, 7]])
    a = model.token_nll(b.dec_in, b.target, torch.zeros(1, 5))
    c = model.token_nll(b.dec_in, b.target, torch.full((1, 5), 3.0))
    assert not torch.allclose(a, c)


def test_eval_without_sampling_uses_mean():
    model = make()
    b = collate([[5, 6, 7]])
    out = model(b.src, b.src_lens, b.dec_in, b.target, sample=False)
    assert torch.equal(out.z, out.mu)


def test_bow_nll_is_the_bag_of_words_likelihood_given_z():
    model = make(bow_head=True)
    b = collate([[5, 6, 5], [8]])
    z = torch.randn(2, 5, generator=torch.Generator().manual_seed(9))
    logp = torch.log_softmax(model.bow(z), -1)
    # every target token, EOS included, once per occurrence, order ignored; padding not scored
    ref = torch.stack([-(2 * logp[0, 5] + logp[0, 6] + logp[0, 3]), -(logp[1, 8] + logp[1, 3])])
    assert torch.allclose(model.bow_nll(z, b.target), ref, atol=1e-5)
    out = model(b.src, b.src_lens, b.dec_in, b.target)
    assert out.bow.shape == (2,) and (out.bow > 0).all()
    assert make().bow is None and make()(b.src, b.src_lens, b.dec_in, b.target).bow is None
    assert make(latent=False, bow_head=True).bow is None  # an LM has no z to predict from


def test_adaptive_softmax_is_a_distribution_and_checks_its_cutoffs():
    model = make(softmax="adaptive", adaptive_cutoffs=[6, 12])
    hidden = torch.randn(3, 4, model.cfg.hidden_dim, generator=torch.Generator().manual_seed(10))
    logp = model.decoder.logits(hidden)  # (3, 4, V)
    assert logp.shape[-1] == model.cfg.vocab_size
    assert torch.allclose(logp.exp().sum(-1), torch.ones(3, 4), atol=1e-5)
    for bad in ([12, 6], [0, 6], [6, 10_000], ["6"]):
        with pytest.raises(ConfigError, match="adaptive_cutoffs"):
            ModelConfig(vocab_size=20, softmax="adaptive", adaptive_cutoffs=bad).validate()
    with pytest.raises(ConfigError, match="tie_embeddings"):
        ModelConfig(softmax="adaptive", tie_embeddings=True).validate()


@pytest.mark.parametrize("kw", [{}, {"z_skip": True}, {"z_skip": True, "softmax": "adaptive", "num_layers": 2},
                                {"z_slots": 3}, {"z_slots": 1, "num_layers": 2, "softmax": "adaptive"},
                                {"z_slots": 3, "encoder_slots": 2}])
def test_step_by_step_decoding_scores_as_the_teacher_forced_pass(kw):
    """decodestep.step, one token at a time, gives the teacher-forced pass's logits (bar the masked PAD and BOS),
    with the slot memory computed inside the step or passed in once."""
    from seqvae.decodestep import step

    model = make(**kw)
    b = collate([[5, 6, 7, 8]])
    z = torch.randn(1, 5, generator=torch.Generator().manual_seed(1))
    hidden, _ = model.decoder(b.dec_in, z)
    whole = model.decoder.logits(hidden)[0]  # (T, V)
    memory = model.decoder.slot_memory(z, hidden.dtype)
    assert (memory is None) == (model.decoder.slots is None)
    h = h_cached = model.decoder.initial_state(z, 1)
    for t in range(b.dec_in.shape[1]):
        logits, h = step(model, b.dec_in[:, t], z, h)
        cached, h_cached = step(model, b.dec_in[:, t], z, h_cached, memory)
        kept = torch.isfinite(logits[0])
        assert int((~kept).sum()) == 2
        assert torch.allclose(logits[0][kept], whole[t][kept], atol=1e-5)
        assert torch.equal(cached, logits)


def test_z_skip_gives_z_a_path_to_the_softmax():
    with_skip, plain = make(z_skip=True), make()
    assert with_skip.decoder.z_skip is not None and plain.decoder.z_skip is None
    assert make(z_skip=True, latent=False).decoder.z_skip is None  # a language model has no z
    b = collate([[5, 6, 7]])
    z = torch.randn(1, 5, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        with_skip.decoder.z_skip.weight.zero_()  # a zero skip is the plain decoder: same init otherwise
    plain.load_state_dict({k: v for k, v in with_skip.state_dict().items() if "z_skip" not in k})
    assert torch.allclose(with_skip.token_nll(b.dec_in, b.target, z), plain.token_nll(b.dec_in, b.target, z))


def test_z_slots_read_different_parts_of_z_at_different_positions():
    """The slot read is attention over K linear views of z: weights sum to one over the slots, differ by
    position, and are added to the GRU outputs; a language model, or K = 0, has no slots."""
    slotted = make(z_slots=4)
    dec = slotted.decoder
    assert dec.slots.out_features == 4 * 12 and make(z_slots=4, latent=False).decoder.slots is None
    assert make().decoder.slots is None
    b = collate([[5, 6, 7, 8, 9]])
    z = torch.randn(1, 5, generator=torch.Generator().manual_seed(3))
    out, _ = dec.gru(dec.inputs(b.dec_in, z), dec.initial_state(z, 1))
    memory = dec.slots(z).view(1, 4, 12)
    weights = torch.softmax(dec.query(out) @ memory.transpose(1, 2) / 12 ** 0.5, dim=-1)  # (1, T, 4)
    assert torch.allclose(weights.sum(-1), torch.ones(1, out.shape[1]))
    assert torch.allclose(dec.readout(out, z), out + weights @ memory, atol=1e-6)
    assert weights[0].std(0).max() > 0  # positions attend differently
    with pytest.raises(ConfigError, match="z_slots"):
        ModelConfig(z_slots=-1).validate()



def test_with_z_skip_the_slots_query_is_the_output_after_the_skip():
    """z_skip and z_slots together: the skip term is added first and the attention's query is that sum (as
    config.py's z_slots comment says), so both paths reach the softmax once."""
    dec = make(z_slots=3, z_skip=True).decoder
    b = collate([[5, 6, 7, 8]])
    z = torch.randn(1, 5, generator=torch.Generator().manual_seed(4))
    out, _ = dec.gru(dec.inputs(b.dec_in, z), dec.initial_state(z, 1))
    skipped = out + dec.z_skip(z)[:, None]  # (1, T, H)
    memory = dec.slots(z).view(1, 3, 12)
    weights = torch.softmax(dec.query(skipped) @ memory.transpose(1, 2) / 12 ** 0.5, dim=-1)  # (1, T, 3)
    assert torch.allclose(dec.readout(out, z), skipped + weights @ memory, atol=1e-6)
    plain_query = torch.softmax(dec.query(out) @ memory.transpose(1, 2) / 12 ** 0.5, dim=-1)
    assert not torch.allclose(dec.readout(out, z), skipped + plain_query @ memory, atol=1e-6)

def test_encoder_slots_read_every_position_and_ignore_padding():
    """With model.encoder_slots the posterior of a sentence is the same alone or padded in a batch, and with
    the reads zeroed it is the plain encoder's (the reads only add inputs to the map to mu and logvar)."""
    model = make(encoder_slots=3, z_slots=2)
    assert model.encoder.queries.shape == (3, 24) and make().encoder.queries is None
    sentences = [[5, 6, 7, 8, 9], [10, 11], [12]]
    b = collate(sentences)
    mu, logvar = model.encode(b.src, b.src_lens)
    for i, s in enumerate(sentences):
        one = collate([s])
        mu1, logvar1 = model.encode(one.src, one.src_lens)
        assert torch.allclose(mu1[0], mu[i], atol=1e-6) and torch.allclose(logvar1[0], logvar[i], atol=1e-6)
    with torch.no_grad():
        model.encoder.read_proj.weight.zero_()
        model.encoder.read_proj.bias.zero_()
    plain = make()
    slot_keys = ("encoder.queries", "encoder.read_proj", "decoder.slots", "decoder.query")
    plain.load_state_dict({k: v for k, v in model.state_dict().items()
                           if not k.startswith(slot_keys) and k != "encoder.to_stats.weight"}, strict=False)
    with torch.no_grad():  # zero reads: the reads' columns of to_stats see nothing, so the rest is the plain encoder
        plain.encoder.to_stats.weight.copy_(model.encoder.to_stats.weight[:, :24])
    assert torch.allclose(model.encode(b.src, b.src_lens)[0], plain.encode(b.src, b.src_lens)[0], atol=1e-6)
    with pytest.raises(ConfigError, match="encoder_slots"):
        ModelConfig(encoder_slots=-2).validate()


def test_mean_rec_is_the_reconstruction_from_the_posterior_mean():
    model = make()
    b = collate([[5, 6, 5], [8]])
    out = model(b.src, b.src_lens, b.dec_in, b.target, seed=0, mean_rec=True)
    assert torch.allclose(out.rec_mean, model.token_nll(b.dec_in, b.target, out.mu), atol=1e-5)
    assert not torch.allclose(out.rec_mean, out.rec)  # z was drawn, not the mean
    at_mean = model(b.src, b.src_lens, b.dec_in, b.target, sample=False, mean_rec=True)
    assert torch.allclose(at_mean.rec_mean, at_mean.rec, atol=1e-5)  # z = mu: the same pass twice
    assert model(b.src, b.src_lens, b.dec_in, b.target).rec_mean is None  # not asked: no second pass


def test_evaluating_restores_the_mode_it_found_also_on_an_error():
    model = make().train()
    with model.evaluating():
        assert not model.training and not model.decoder.training
    assert model.training
    with pytest.raises(RuntimeError), model.evaluating():
        raise RuntimeError("boom")
    assert model.training
    model.eval()
    with model.evaluating():
        pass
    assert not model.training


@pytest.mark.parametrize("kw", [{}, {"softmax": "adaptive"}, {"softmax": "adaptive", "adaptive_cutoffs": [6, 12]},
                                {"tie_embeddings": True}])
def test_logits_of_no_rows_have_the_vocabulary_width(kw):
    """(..., H) -> (..., V) also with no rows: the adaptive softmax's view(..., -1) was ambiguous for 0 elements."""
    dec = make(**kw).decoder
    assert dec.logits(torch.zeros(0, 12)).shape == (0, 30)
    assert dec.logits(torch.zeros(0, 4, 12)).shape == (0, 4, 30)


@pytest.mark.parametrize("kw", [{}, {"encoder_slots": 3, "z_slots": 2, "z_skip": True, "num_layers": 2,
                                     "softmax": "adaptive"}, {"tie_embeddings": True, "encoder_slots": 1}])
def test_a_sentence_scores_the_same_alone_as_in_any_padded_batch(kw):
    """mu, logvar and rec (z = mu) of each sentence: alone (B = 1, no packing), in a batch with the longest
    sentence, in another order, and with extra all-padding columns."""
    model = make(**kw)
    sents = [[5, 6, 7, 8, 9, 10], [11], [4] * 6, [12, 13, 14], []]
    order = [3, 0, 4, 2, 1]

    def terms(src, src_lens, dec_in, target):  # (B, 2Z + 1): mu, logvar, rec
        out = model(src, src_lens, dec_in, target, sample=False)
        return torch.cat([out.mu, out.logvar, out.rec[:, None]], 1)

    b, s = collate(sents), collate([sents[i] for i in order])
    wide = [torch.cat([t, torch.zeros(len(sents), 3, dtype=t.dtype)], 1) for t in (b.src, b.dec_in, b.target)]
    with torch.no_grad():
        alone = torch.cat([terms(*(lambda o: (o.src, o.src_lens, o.dec_in, o.target))(collate([x]))) for x in sents])
        shuffled = torch.empty_like(alone)
        shuffled[order] = terms(s.src, s.src_lens, s.dec_in, s.target)
        for run in (terms(b.src, b.src_lens, b.dec_in, b.target), terms(wide[0], b.src_lens, *wide[1:]), shuffled):
            assert torch.allclose(run, alone, atol=1e-5)


@pytest.mark.parametrize("kw", [{}, {"softmax": "adaptive"}, {"tie_embeddings": True, "num_layers": 2}])
def test_the_language_model_is_the_vae_decoder_without_z(kw):
    """latent=False has no latent parameter, and its NLL is the VAE decoder's with z's paths (its input columns,
    the initial state's map) zeroed: the same weights give the same numbers whatever z is."""
    lm, vae = make(latent=False, **kw), make(**kw)
    latent_parts = ("encoder", "init_state", "z_skip", "slots", "query", "bow")
    assert not [n for n, _ in lm.named_parameters() if any(p in n for p in latent_parts)]
    state = vae.state_dict()
    for k, v in lm.state_dict().items():  # the first GRU layer reads [embedding, z]: z's columns zero
        state[k] = torch.cat([v, torch.zeros(v.shape[0], 5)], 1) if k == "decoder.gru.weight_ih_l0" else v
    state["decoder.init_state.weight"].zero_()
    state["decoder.init_state.bias"].zero_()  # tanh(0): the LM's zero initial state
    vae.load_state_dict(state)
    b = collate([[5, 6, 7, 8], [9], [10, 11]])
    with torch.no_grad():
        expected = lm(b.src, b.src_lens, b.dec_in, b.target).rec
        for z in (torch.zeros(3, 5), torch.randn(3, 5, generator=torch.Generator().manual_seed(5))):
            assert torch.allclose(vae.token_nll(b.dec_in, b.target, z), expected, atol=1e-5)


def test_tied_embeddings_stay_one_tensor_after_loading():
    """With tie_embeddings the output layer reads the embedding table itself: no V x E copy in the state dict,
    and after load_state_dict a change to the table changes the logits."""
    model = make(tie_embeddings=True)
    assert sorted(k for k, v in model.state_dict().items() if 30 in v.shape) == ["decoder.embedding.weight",
                                                                              "decoder.out_bias"]
    loaded = SentenceVAE(ModelConfig(**TINY, tie_embeddings=True)).eval()
    loaded.load_state_dict(model.state_dict())
    hidden = torch.randn(2, 12, generator=torch.Generator().manual_seed(6))
    before = loaded.decoder.logits(hidden).detach()
    with torch.no_grad():
        loaded.decoder.embedding.weight[7] += 1.0
    after = loaded.decoder.logits(hidden).detach()
    assert not torch.allclose(after[:, 7], before[:, 7])
    assert torch.equal(torch.cat([after[:, :7], after[:, 8:]], 1), torch.cat([before[:, :7], before[:, 8:]], 1))
