"""Batched beam search (seqvae.beam), through generation.generate(strategy="beam"): one beam is greedy, enough
beams are exact (against enumeration), and the ranking follows the length penalty."""

import pytest
import torch

from conftest import every_sentence, random_vae
from seqvae import beam as beam_module
from seqvae import generation as G
from seqvae.decodestep import step
from seqvae.generation import generate


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_beam_with_one_beam_is_greedy(model, z, length_penalty):
    greedy = generate(model, z, strategy="greedy")
    assert generate(model, z, strategy="beam", num_beams=1, length_penalty=length_penalty) == greedy


def test_wide_beam_is_exhaustive_over_two_tokens(model, z, monkeypatch):
    """With num_beams = V * V and max_len = 2 beam search keeps every pair of tokens: it finds the sentence of at
    most two tokens with the best log p(x + EOS | z) (a pair is a sentence cut at max_len: its EOS counts too).
    V * V is past the command line's beam bound, lifted here."""
    V, bos, eos = model.cfg.vocab_size, model.cfg.bos_id, model.cfg.eos_id
    monkeypatch.setattr(G, "MAX_BEAMS", V * V)
    got = generate(model, z[:2], strategy="beam", num_beams=V * V, max_len=2, length_penalty=0.0)
    with torch.no_grad():
        for i in range(2):
            zi = z[i : i + 1]
            logits, h = step(model, torch.tensor([bos]), zi, model.decoder.initial_state(zi, 1))
            lp1 = torch.log_softmax(logits, -1)[0]  # (V,)
            lg2, h2 = step(model, torch.arange(V), zi.expand(V, -1), h.expand(-1, V, -1).contiguous())
            lp2 = torch.log_softmax(lg2, -1)  # (V, V): after each first token
            lg3, _ = step(model, torch.arange(V).repeat(V), zi.expand(V * V, -1), h2.repeat_interleave(V, 1))
            lp3 = torch.log_softmax(lg3, -1)[:, eos].view(V, V)  # EOS after each pair
            best = {(): float(lp1[eos])}
            for t1 in set(range(V)) - {eos, bos, model.cfg.pad_id}:
                best[(t1,)] = float(lp1[t1] + lp2[t1, eos])
                for t2 in set(range(V)) - {eos, bos, model.cfg.pad_id}:
                    best[(t1, t2)] = float(lp1[t1] + lp2[t1, t2] + lp3[t1, t2])
            assert tuple(got[i]) == max(best, key=best.get)


def test_beam_ranks_by_the_length_penalty(model, z, monkeypatch):
    """A decoder made to order: after BOS, EOS (p 0.5) or A (0.45); after A, B (0.8); after B, EOS (0.8).
    The raw sum (penalty 0) ranks "" (log 0.5) above "A B" (log 0.288); the mean per token (penalty 1) ranks
    "A B" (log 0.288 / 3) above "" (log 0.5 / 1). A finished beam's length stays as it was."""
    V, bos, eos = model.cfg.vocab_size, model.cfg.bos_id, model.cfg.eos_id
    a, b = 10, 11

    def row(probs: dict[int, float]) -> torch.Tensor:
        rest = (1 - sum(probs.values())) / (V - len(probs))
        p = torch.full((V,), rest)
        for tok, q in probs.items():
            p[tok] = q
        return p.log()

    table = torch.stack([row({eos: 0.9}) for _ in range(V)])  # (V, V): log p(next | previous token)
    table[bos], table[a], table[b] = row({eos: 0.5, a: 0.45}), row({b: 0.8}), row({eos: 0.8})
    monkeypatch.setattr(beam_module, "step", lambda model, tokens, z, h, memory=None: (table[tokens], h))
    for lp, want in ((0.0, []), (1.0, [a, b])):
        assert generate(model, z[:2], strategy="beam", num_beams=4, max_len=6, length_penalty=lp) == [want] * 2, lp


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_a_beam_that_keeps_every_hypothesis_finds_the_best_sentence(length_penalty):
    """With at least as many beams as hypotheses (4**3 = 64 at max_len 3) beam search is exact: it returns the
    sentence of at most max_len tokens with the best log p(x + EOS | z) / (len + 1)**length_penalty, a sentence
    cut at max_len counting the EOS that ends it. It used to rank a beam still open at max_len by its prefix's
    log p alone, which outranks every sentence that goes on from it, and return it (with penalty 0 it beat the
    best whole sentence by several nats). One beam stays greedy, the argmax at each step."""
    model, L, eos = random_vae(), 3, 3
    z = torch.randn(8, 3, generator=torch.Generator().manual_seed(1))
    got = generate(model, z, strategy="beam", num_beams=64, max_len=L, length_penalty=length_penalty)
    greedy = generate(model, z, strategy="greedy", max_len=L)
    assert generate(model, z, strategy="beam", num_beams=1, max_len=L, length_penalty=length_penalty) == greedy
    assert got != greedy  # a search that finds more than greedy
    for i in range(len(z)):
        lp = every_sentence(model, z[i:i + 1], L)
        rank = {s: (sum(float(row[j, t]) for j, t in enumerate(s)) + float(row[len(s), eos]))
                / (len(s) + 1) ** length_penalty for s, row in lp.items()}
        assert tuple(got[i]) == max(rank, key=rank.get), i
        seq = ()
        while len(seq) < L and int(lp[seq][len(seq)].argmax()) != eos:
            seq += (int(lp[seq][len(seq)].argmax()),)
        assert tuple(greedy[i]) == seq
