"""Beam search, batched over rows: the B rows' K beams decode as one batch of B*K decoder rows.

    ids = beam(model, z, num_beams=4, length_penalty=1.0)   # list[list[int]]: each row's best-ranked sentence

seqvae.generation.generate(strategy="beam") checks the options and calls it on chunks of rows; the codes'
checks and the decoder step are seqvae.decodestep's.
"""

from __future__ import annotations

import torch

from .decodestep import start, step, to_lists
from .model import SentenceVAE
from .wordlist import WordFilter

WORD_CANDIDATES = 4  # with a word filter, beam search checks this many candidates per kept one first (then all)


def beam(model: SentenceVAE, z: torch.Tensor | None, *, num_beams: int = 4, max_len: int = 40,
         length_penalty: float = 1.0, batch_size: int | None = None,
         words: WordFilter | None = None) -> list[list[int]]:
    """Beam search, batched over rows: the B rows' K beams are one batch of B*K decoder rows.

    Hypotheses are ranked by log p / length**length_penalty (length counts EOS; 0 = the raw sum,
    1 = the mean log-probability per token). A finished beam stays in the beam with its score
    frozen (it can only continue with <pad> at no cost), so it competes with live beams until
    something better displaces it. A row is done when all its beams have finished; done rows
    leave the batch. The best-ranked beam of each row is returned. A row still open after max_len
    tokens ranks each open beam as the sentence cut there, its EOS counted (as sampling scores a cut
    row): the score of an open beam is a prefix's, which outranks every sentence that goes on from it.
    So with enough beams to keep every hypothesis the result is exact: the best-ranked of all sentences
    of at most max_len tokens. With num_beams=1 this is exactly greedy. With `words`, each beam's
    extensions are its likeliest tokens that the filter allows (looked for among its
    WORD_CANDIDATES * K likeliest first, then among all); a beam with none (`WordFilter.cut`) has one:
    its sentence cut back to its last listed word, ended there (EOS) and ranked with that sentence's score.
    """
    cfg = model.cfg
    z, h, tokens = start(model, z, batch_size)
    B, K, V, device = tokens.shape[0], num_beams, cfg.vocab_size, tokens.device
    # Live row i's beams are decoder rows i*K .. i*K+K-1.
    h = h.repeat_interleave(K, dim=1)  # (L, B*K, H)
    z = z.repeat_interleave(K, dim=0) if z is not None else None  # (B*K, Z)
    tokens = tokens.repeat_interleave(K)  # (B*K,)
    memory = model.decoder.slot_memory(z, h.dtype)  # (B*K, K_slots, H) or None
    if words is not None:
        words.start(B * K)
    f32 = dict(device=device, dtype=torch.float32)  # scores in float32, whatever torch's default dtype
    scores = torch.zeros(B, K, **f32)  # (B, K) summed log-probs
    scores[:, 1:] = float("-inf")  # all beams start identical: expand only beam 0 at the first step
    lengths = torch.zeros(B, K, dtype=torch.long, device=device)  # tokens so far, EOS included
    done = torch.zeros(B, K, dtype=torch.bool, device=device)
    history = torch.zeros(B, K, 0, dtype=torch.long, device=device)  # (B, K, t)
    ends = torch.zeros(B, K, 0, **f32)  # (B, K, t) with `words`: each beam's score had it ended at step s
    k = min(K, V)  # candidates per beam
    end_lp = torch.full((k,), float("-inf"), **f32)  # a finished beam's only continuation:
    end_lp[0] = 0.0  # <pad>, at no cost (so it keeps its score and its place)
    rows = torch.arange(B, device=device)  # (b,) the output row of each live row
    results: list[list[int]] = [[] for _ in range(B)]

    for t in range(max_len):
        if rows.numel() == 0:
            break
        b = rows.numel()
        logits, h = step(model, tokens, z, h, memory)  # (b*K, V)
        logits = logits.float()
        # Within a beam all extensions share a length, so the K best overall are among each
        # beam's K most likely tokens: rank K*K candidates per row instead of K*V.
        if words is None:
            top_logit, top_tok = logits.topk(k, dim=-1)  # (b*K, k)
        else:  # the k best tokens that the filter allows; after[r][j]: beam r's open word after top_tok[r, j]
            top_logit, top_tok, after = words.best(logits, k, WORD_CANDIDATES * k, last=t == max_len - 1)
        norm = logits.logsumexp(dim=-1, keepdim=True)  # (b*K, 1)
        top_lp = (top_logit - norm).view(b, K, k)  # log-probs
        top_lp = torch.where(done[..., None], end_lp, top_lp)
        top_tok = top_tok.view(b, K, k).masked_fill(done[..., None], cfg.pad_id)
        cand = scores[..., None] + top_lp  # (b, K, k) score of each extension
        cand_len = lengths + (~done).long()  # (b, K)
        if words is not None:
            end_now = scores + (logits[:, cfg.eos_id] - norm[:, 0]).view(b, K)  # (b, K) ending here instead
            for r, keep in words.cut.items():  # beams with no allowed token: their one extension ends at `keep`
                if not done.view(-1)[r]:
                    cand[r // K, r % K, 0] = ends[r // K, r % K, keep]
                    cand_len[r // K, r % K] = keep + 1
                    top_tok[r // K, r % K, 0] = cfg.eos_id
        rank = cand / cand_len[..., None].float().pow(length_penalty)  # (b, K, k)
        _, idx = rank.view(b, K * k).topk(K, dim=-1)  # (b, K) best K extensions, best first
        src = idx // k  # (b, K) beam each new beam extends
        tok = top_tok.view(b, K * k).gather(1, idx)  # (b, K) token it appends
        scores = cand.view(b, K * k).gather(1, idx)
        lengths = cand_len.gather(1, src)
        was_done = done.gather(1, src)  # (b, K) the new beam continues a finished one (with <pad>)
        done = was_done | (tok == cfg.eos_id)
        history = torch.cat([history.gather(1, src[..., None].expand(-1, -1, t)), tok[..., None]], dim=-1)
        flat = (torch.arange(b, device=device)[:, None] * K + src).view(-1)  # (b*K,) decoder row continued
        if words is not None:  # each new beam's open word: its source beam's, after the token it appended
            j = (idx % k).view(-1).tolist()  # (b*K,) the appended token's place among its beam's k extensions
            fins = was_done.view(-1).tolist()
            for i, (r, fin) in enumerate(zip(flat.tolist(), fins) if words.cut else ()):
                if r in words.cut and not fin:  # a beam cut back: its sentence ends at `keep`
                    history[i // K, i % K, words.cut[r]] = cfg.eos_id
            ends = torch.cat([ends.gather(1, src[..., None].expand(-1, -1, t)), end_now.gather(1, src)[..., None]], -1)
            words.reorder(flat.tolist(), tok.view(-1).tolist(),
                          [None if fin else after[r][c] or "" for r, c, fin in zip(flat.tolist(), j, fins)])
        h, tokens = h[:, flat], tok.view(-1)
        finished = done.all(dim=1)  # (b,) rows whose every beam has ended
        if bool(finished.any()):
            for r, seq in zip(rows[finished].tolist(), to_lists(history[finished, 0], cfg.eos_id, cfg.pad_id)):
                results[r] = seq  # topk sorts: beam 0 ranks best
            live = ~finished  # drop the finished rows from every piece of state
            rows, scores, lengths, done, history = rows[live], scores[live], lengths[live], done[live], history[live]
            ends = ends[live]
            beams = live.repeat_interleave(K)  # (b*K,)
            h, tokens = h[:, beams], tokens[beams]
            z = z[beams] if z is not None else None
            memory = memory[beams] if memory is not None else None
            if words is not None:
                words.keep(beams)
    if rows.numel():  # rows cut at max_len: a beam still open ends there, its EOS counted, before they are ranked
        logits, _ = step(model, tokens, z, h, memory)  # (b*K, V)
        logits = logits.float()
        end_lp = (logits[:, cfg.eos_id] - logits.logsumexp(dim=-1)).view(-1, K)  # (b, K)
        scores = torch.where(done, scores, scores + end_lp)
        lengths = lengths + (~done).long()
        best = (scores / lengths.float().pow(length_penalty)).argmax(dim=1)  # (b,) ties: the first (beam order)
        history = history[torch.arange(rows.numel(), device=device), best]  # (b, max_len)
        for r, seq in zip(rows.tolist(), to_lists(history, cfg.eos_id, cfg.pad_id)):
            results[r] = seq
    return results
