"""Drawing tokens (seqvae.sampler): the top-k and nucleus filters, draws that follow the (filtered) softmax."""

import itertools

import pytest
import torch

from seqvae.sampler import draw, draw_nucleus, filter_logits, nucleus


def test_nucleus_is_the_smallest_set_reaching_p():
    logits = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()
    for p, kept in [(0.45, [0]), (0.55, [0, 1]), (0.79, [0, 1]), (0.81, [0, 1, 2]), (1e-9, [0]), (0.96, [0, 1, 2, 3])]:
        assert nucleus(logits, p)[0].nonzero().flatten().tolist() == kept, p
    shuffled = logits[:, [2, 0, 3, 1]]  # order in the vocabulary does not matter
    assert nucleus(shuffled, 0.75)[0].tolist() == [False, True, False, True]
    # a p that is 0 in float32 still keeps the top token: a row with nothing in it drew token V (a traceback)
    assert nucleus(logits, 1e-300)[0].nonzero().flatten().tolist() == [0]
    assert draw_nucleus(logits.expand(8, 4), 1e-300, torch.Generator().manual_seed(0)).tolist() == [0] * 8


@pytest.mark.parametrize("V,p", list(itertools.product([5, 37, 300], [0.05, 0.5, 0.9])))
def test_nucleus_draws_stay_in_the_nucleus(V, p):
    gen = torch.Generator().manual_seed(V)
    logits = torch.randn(64, V, generator=gen) * torch.rand(64, 1, generator=gen) * 8  # peaked and flat rows
    mask = nucleus(logits, p)
    for _ in range(20):
        tok = draw_nucleus(logits, p, gen)
        assert mask.gather(1, tok[:, None]).all()


def test_draw_nucleus_follows_the_renormalised_nucleus():
    logits = torch.tensor([0.05, 0.5, 0.15, 0.3]).log().expand(20000, 4)
    freq = torch.bincount(draw_nucleus(logits, 0.75, torch.Generator().manual_seed(0)), minlength=4) / 20000
    assert freq[0] == 0 and freq[2] == 0  # outside the nucleus {1, 3}
    assert torch.allclose(freq, torch.tensor([0.0, 0.625, 0.0, 0.375]), atol=0.015)
    flat = torch.zeros(8, 1000) + torch.arange(1000) * 1e-4  # a tiny p on flat rows: the exact fallback
    assert draw_nucleus(flat, 1e-6, torch.Generator().manual_seed(0)).tolist() == [999] * 8


def test_top_k_filter():
    logits = torch.tensor([[1.0, 4.0, 3.0, 2.0]])
    assert torch.isinf(filter_logits(logits, top_k=2)).tolist() == [[True, False, False, True]]
    assert torch.equal(filter_logits(logits, top_k=0), logits)


def test_draw_follows_softmax_and_skips_masked_tokens():
    logits = torch.tensor([0.0, 1.0, -1.0, float("-inf"), 2.0]).expand(20000, 5)
    tokens = draw(logits, torch.Generator().manual_seed(0))
    freq = torch.bincount(tokens, minlength=5).float() / 20000
    assert freq[3] == 0
    assert torch.allclose(freq, torch.softmax(logits[0], -1), atol=0.015)
