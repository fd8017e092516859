import math

import numpy as np
import pytest

from seqvae.api import SeqVAE
from seqvae.judge import Judge, ReportError


def test_the_judge_ranks_real_sentences_above_corrupted_ones(trained_tiny_lm, tiny_lm_ckpt):
    lm = SeqVAE.from_pretrained(tiny_lm_ckpt, device="cpu")
    judge = Judge(lm, "tiny-lm")
    real = [s for s in trained_tiny_lm[2] if len(s.split()) >= 4]
    checks = judge.checks(real, seed=0)
    assert checks["shuffled"]["ppl"] > checks["real"]["ppl"]
    assert checks["shuffled"]["real_ranked_higher"] > 0.5
    assert checks["invented word"]["ppl"] > checks["real"]["ppl"]
    import numpy as np  # a word-level judge reads any invented string as <unk>: it gets a word of its vocabulary

    words = [judge.invented_word(np.random.default_rng(i)) for i in range(20)]
    assert all(ids[0] != lm.model.cfg.unk_id for ids in lm.tokenize(words)) and len(set(words)) > 5


def test_the_judge_checks_compare_per_token_and_need_every_corruption_to_lose(tiny_lm_ckpt, monkeypatch):
    """The checks' bookkeeping, under a stand-in judge that reads bags of words: 1 nat a token for the words
    of a real sentence in any order, 1.5 for any other text. Shuffling is then invisible to it (the checks
    fail), and a spliced sentence shorter than its real one still costs more per token."""
    judge = Judge(SeqVAE.from_pretrained(tiny_lm_ckpt, device="cpu"), "tiny-lm")
    real = [" ".join(f"w{i}" for i in range(20)), "xa xb xc xd", "ya yb yc yd ye"]  # words no vocabulary has
    bags = {tuple(sorted(t.split())) for t in real}

    def nll(texts):
        tok = np.array([len(t.split()) + 1.0 for t in texts])
        return tok * np.array([1.0 if tuple(sorted(t.split())) in bags else 1.5 for t in texts]), tok

    monkeypatch.setattr(judge, "nll", nll)
    out = judge.checks(real, seed=0)
    assert out["real"]["ppl"] == pytest.approx(math.e)
    assert out["shuffled"]["ppl"] == pytest.approx(math.e) and out["shuffled"]["real_ranked_higher"] == 0.0
    for name in ("invented word", "spliced"):  # spliced: w0..w9 xc xd is 13 tokens, 19.5 nats < the real 21
        assert out[name]["ppl"] == pytest.approx(math.exp(1.5)) and out[name]["real_ranked_higher"] == 1.0, name
    assert out["passes"] is False  # one corruption the judge cannot see is enough to fail
    monkeypatch.setattr(judge, "nll", lambda texts: (np.array([2.0, 6.0]), np.array([1.0, 3.0])))
    assert judge.ppl(["a", "b c"]) == pytest.approx(math.exp(8 / 4))  # pooled over tokens, not a mean of texts


def test_the_judge_scores_an_empty_text_as_eos_alone(tiny_lm_ckpt):
    import torch

    lm = SeqVAE.from_pretrained(tiny_lm_ckpt, device="cpu")
    judge = Judge(lm, "tiny-lm")
    nll, tok = judge.nll(["", "the movie was great .", "  "])
    m = lm.model
    with torch.no_grad():
        out, _ = m.decoder.gru(m.decoder.embedding.weight[m.cfg.bos_id][None, None], torch.zeros(1, 1, m.cfg.hidden_dim))
        eos = float(-torch.log_softmax(m.decoder.out(out[0, 0]), -1)[m.cfg.eos_id])
    assert tok.tolist() == [1, 6, 1] and nll[0] == nll[2] == pytest.approx(eos, abs=1e-5)
    assert nll[1] == pytest.approx(float(lm.score(["the movie was great ."])[0]))


def test_the_judge_scores_a_list_of_texts_once(tiny_lm_ckpt, monkeypatch):
    """The report asks the judge for its held-out sentences' scores up to three times: the LM scores them once,
    and every answer is the first's (a caller changing its copy changes no later answer)."""
    lm = SeqVAE.from_pretrained(tiny_lm_ckpt, device="cpu")
    judge, calls, score = Judge(lm, "tiny-lm"), [], lm.score
    monkeypatch.setattr(lm, "score", lambda texts, **kw: calls.append(list(texts)) or score(texts, **kw))
    texts = ["the movie was great .", "", "the plot was slow ."]
    nll, tok = judge.nll(texts)
    expected = (nll.copy(), tok.copy())
    nll[:], tok[:] = 0, 0
    for _ in range(2):
        again = judge.nll(list(texts))
        assert np.array_equal(again[0], expected[0]) and np.array_equal(again[1], expected[1])
    assert judge.ppl(texts) == math.exp(expected[0].sum() / expected[1].sum())
    assert len(calls) == 1
    judge.nll(texts[:2])
    assert calls[1] == [texts[0]]  # other texts are scored


def test_judge_must_be_a_language_model(tiny_vae_ckpt):
    with pytest.raises(ReportError, match="language model"):
        Judge(SeqVAE.from_pretrained(tiny_vae_ckpt, device="cpu"), "vae")
