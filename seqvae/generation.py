"""Decoding strategies for a SentenceVAE: greedy, ancestral sampling (temperature, top-k, top-p, best of K), and
the entry point that checks the options and runs any strategy, beam search included (seqvae.beam).

    ids = generate(model, z, strategy="top-p", top_p=0.9, seed=0)   # one entry point for all strategies
    ids = greedy(model, z, max_len=40)                              # list[list[int]]: no BOS, no EOS
    ids = sample(model, z, temperature=0.8, top_k=40, generator=g)
    ids = generate(model, z, strategy="beam", num_beams=4, length_penalty=1.0)  # seqvae.beam.beam
    ids = generate(model, z, strategy="top-p", top_p=0.9, candidates=4)  # best of 4 draws per code (`best_of`)

`z` is (B, Z) latent codes; for a language model (ModelConfig.latent=False) pass z=None
and batch_size=B instead. Every strategy runs ONE decoder GRU step for the whole batch per
token (seqvae.decodestep.step) and carries the hidden state; a row stops at EOS, and the loop stops when
every row has stopped or after `max_len` tokens (EOS included). Finished rows leave the
batch (in beam search, a row whose beams have all ended), so later steps only pay for the
rows still writing. Bad options and codes are a DecodingError (one line; defined in seqvae.decodestep).

Sampling draws each row's tokens with uniforms from a stream of its own (seqvae.sampler.RowNoise:
streams.key_generator keyed by the seed and the row's (code, candidate) index), so row i's sentence depends on
z[i], the seed and i alone: not on the other codes, their number, the batch size or the chunking. A `generator`
given instead of a seed supplies the seed (one draw from it per call). The global RNG is never touched.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from .beam import beam
from .config import (MAX_BEAMS, MAX_CANDIDATES, MAX_LEN, MAX_SAMPLES, MAX_SEED, SAMPLE_STRATEGY, SAMPLE_TOP_P,
                     STRATEGIES, real, seed_value, whole)
from .decodestep import DecodingError, as_codes, start, step, to_lists
from .model import SentenceVAE
from .sampler import RowNoise, draw, draw_nucleus, filter_logits
from .wordlist import WordFilter

MIN_TEMPERATURE = 1e-3  # logits / T stays finite in float32 above it
DECODE_ROWS = 4096  # sequences decoded at once (beams count): bounds memory, each step holds rows x vocab logits
# The options a caller may pass to the API's decoding methods (SeqVAE.decode / reconstruct / interpolate / sample,
# besides their `words`); generate's batch_size and words are the API's to set, not the caller's.
OPTIONS = ("strategy", "max_len", "temperature", "top_k", "top_p", "num_beams", "length_penalty", "candidates",
           "seed", "generator")


def top_p_default(opts: dict) -> dict:
    """`opts` with SAMPLE_TOP_P when the strategy is top-p and it names no top_p; a strategy or top_p of None
    counts as not named and is dropped. Every public decoding entry point (SeqVAE.decode / reconstruct /
    interpolate / sample, and the CLI) applies it before generate, which itself insists on a top_p. A name that
    is not one of OPTIONS is a DecodingError (a misspelt one was a TypeError naming generate; batch_size, which
    decode has no use for, was ignored)."""
    if unknown := [k for k in opts if k not in OPTIONS]:
        raise DecodingError(f"unknown decoding option {unknown[0]!r} (choose from {', '.join(OPTIONS)}, words)")
    out = {k: v for k, v in opts.items() if v is not None or k not in ("strategy", "top_p")}
    if out.get("strategy") == "top-p":
        out.setdefault("top_p", SAMPLE_TOP_P)
    return out


def sampling_defaults(opts: dict) -> dict:
    """Decoding options for prior samples: top_p_default(opts), with SAMPLE_STRATEGY when it names no strategy."""
    strategy = opts.get("strategy")
    return top_p_default({**opts, "strategy": SAMPLE_STRATEGY if strategy is None else strategy})


# ---------------------------------------------------------------------------- greedy and sampling
def _decode_loop(model: SentenceVAE, z: torch.Tensor | None, batch_size: int | None, max_len: int,
                 pick: Callable[..., torch.Tensor], words: WordFilter | None,
                 scores: list[float] | None = None, noise: RowNoise | None = None) -> list[list[int]]:
    """Shared loop of greedy and sampling: `pick` maps logits (b, V) of rows (b,) (their indices in the batch,
    0..B-1) to next tokens (b,); `words` holds it to known words (and gives it a third argument: the logits its
    cuts are made on, WordFilter.choose). scores, if given, is extended by each row's
    log p(x|z) under the model (EOS included; before the word filter, temperature and top-k / top-p), so best of K
    needs no second pass. noise: the sampler's streams, started here for the B rows. A row the filter ends
    before an open word it cannot go on with (`WordFilter.cut`) is cut back to its last listed word there, and its
    score is that of the shorter sentence (log p(EOS) after it included)."""
    cfg = model.cfg
    z, h, tokens = start(model, z, batch_size)
    memory = model.decoder.slot_memory(z, h.dtype)  # (B, K, H) or None
    B = tokens.shape[0]
    if words is not None:
        words.start(B)
    if noise is not None:
        noise.start(B, tokens.device)
    out = torch.full((B, max_len), cfg.pad_id, dtype=torch.long, device=tokens.device)  # (B, max_len)
    rows = torch.arange(B, device=tokens.device)  # (b,) the output row of each live row
    f32 = dict(device=tokens.device, dtype=torch.float32)  # scores in float32, whatever torch's default dtype
    logp_sum = torch.zeros(B, **f32) if scores is not None else None  # (B,)
    # with a word filter: each row's score if it ended (EOS) at each step, for rows the filter cuts back
    ends = torch.zeros(B, max_len, **f32) if scores is not None and words is not None else None
    for t in range(max_len):
        if rows.numel() == 0:
            break
        logits, h = step(model, tokens, z, h, memory)  # (b, V), (L, b, H)
        logp = torch.log_softmax(logits.float(), dim=-1) if logp_sum is not None else None  # (b, V)
        if words is None:
            tokens = pick(logits, rows)  # (b,)
        else:  # the filter picks again for some rows: idx, their places among the live rows
            tokens = words.choose(logits, lambda sub, idx, base: pick(sub, rows[idx], base), last=t == max_len - 1)
        if logp is not None:
            if ends is not None:
                ends[rows, t] = logp_sum[rows] + logp[:, cfg.eos_id]
            logp_sum[rows] += logp.gather(1, tokens[:, None])[:, 0]
        out[rows, t] = tokens
        if words is not None and words.cut:  # rows ended before their open word (tokens[i] is EOS): cut back
            for i, keep in words.cut.items():
                out[rows[i], keep] = cfg.eos_id
                if ends is not None:
                    logp_sum[rows[i]] = ends[rows[i], keep]
        live = tokens != cfg.eos_id  # (b,)
        if not bool(live.all()):  # some rows just finished: drop them from the batch
            rows, tokens, h = rows[live], tokens[live], h[:, live]
            z = z[live] if z is not None else None
            memory = memory[live] if memory is not None else None
            if words is not None:
                words.keep(live)
    if logp_sum is not None:
        if rows.numel():  # rows cut at max_len: count the EOS that ends them
            logits, _ = step(model, tokens, z, h, memory)
            logp_sum[rows] += torch.log_softmax(logits.float(), dim=-1)[:, cfg.eos_id]
        scores.extend(logp_sum.tolist())
    return to_lists(out, cfg.eos_id, cfg.pad_id)


def greedy(model: SentenceVAE, z: torch.Tensor | None, *, max_len: int = 40, batch_size: int | None = None,
           words: WordFilter | None = None) -> list[list[int]]:
    """The most likely next token at every step (among those `words` allows)."""
    return _decode_loop(model, z, batch_size, max_len, lambda logits, rows, base=None: logits.argmax(dim=-1), words)


def sample(model: SentenceVAE, z: torch.Tensor | None, *, max_len: int = 40, temperature: float = 1.0,
           top_k: int = 0, top_p: float = 1.0, seed: int | None = None, generator: torch.Generator | None = None,
           batch_size: int | None = None, words: WordFilter | None = None,
           scores: list[float] | None = None, noise: RowNoise | None = None) -> list[list[int]]:
    """Ancestral sampling from softmax(logits / temperature), optionally restricted to top-k / top-p (and to
    the tokens `words` allows). Row r draws from its own stream: `noise`, by default RowNoise(stream_seed(seed,
    generator)) (rows keyed (r, 0)). scores: see _decode_loop."""
    noise = noise if noise is not None else RowNoise(stream_seed(seed, generator))

    def cuts(logits: torch.Tensor) -> torch.Tensor:  # temperature and top-k (top-p: by rejection, in draw_nucleus)
        logits = logits.float()
        return filter_logits(logits / temperature if temperature != 1.0 else logits, top_k=top_k)

    def pick(logits: torch.Tensor, rows: torch.Tensor, base: torch.Tensor | None = None) -> torch.Tensor:
        def uniforms(places: torch.Tensor) -> torch.Tensor:  # places in this pick's batch -> those rows' numbers
            return noise(rows[places])

        refused = None if base is None else (logits == float("-inf")) & (base > float("-inf"))  # (b, V)
        if refused is None or not bool(refused.any()):
            logits = cuts(logits)
            return draw(logits, uniforms) if top_p >= 1.0 else draw_nucleus(logits, top_p, uniforms)  # (b,)
        # The word filter refused some tokens: draw from this sampler's distribution on `base` less the refused
        # tokens (the nucleus stays base's); -1 where none of its tokens is left.
        own = cuts(base)  # (b, V)
        if top_p < 1.0:
            return draw_nucleus(own, top_p, uniforms, refused=refused)
        own = own.masked_fill(refused, float("-inf"))
        out = torch.full((len(own),), -1, dtype=torch.long, device=own.device)
        keep = (own > float("-inf")).any(dim=-1).nonzero()[:, 0]  # rows with a token left
        if keep.numel():
            out[keep] = draw(own[keep], lambda r: uniforms(keep[r]))
        return out

    return _decode_loop(model, z, batch_size, max_len, pick, words, scores, noise)


# ---------------------------------------------------------------------------- entry point
def check_options(strategy: str, max_len: int, temperature: float, top_k: int, top_p: float,
                  num_beams: int, candidates: int = 1, length_penalty: float = 1.0) -> dict[str, Any]:
    """Raise DecodingError (one line) for options that make no sense, or ask for more than the shared bounds
    (config.MAX_LEN, MAX_BEAMS, MAX_CANDIDATES: the command line's too). Returns the options by name as decoding
    computes with them: counts as Python ints, the rest as Python floats (a numpy or 0-d torch number, a Fraction
    or a Decimal is a number too, but not one every torch operation takes)."""
    temperature, top_p, length_penalty = (real(name, value, DecodingError) for name, value in
                                          (("temperature", temperature), ("top_p", top_p),
                                           ("length_penalty", length_penalty)))
    if not math.isfinite(length_penalty):
        raise DecodingError(f"length_penalty must be a finite number, got {length_penalty}")
    if strategy not in STRATEGIES:
        raise DecodingError(f"unknown strategy {strategy!r} (choose from {', '.join(STRATEGIES)})")
    candidates, max_len, top_k, num_beams = (
        whole(name, value, least, DecodingError, most) for name, value, least, most in
        (("candidates", candidates, 1, MAX_CANDIDATES), ("max_len", max_len, 1, MAX_LEN),
         ("top_k", top_k, 0, None), ("num_beams", num_beams, 1, MAX_BEAMS)))  # top_k 0: off
    if candidates > 1 and strategy in ("greedy", "beam"):
        raise DecodingError(f"candidates > 1 needs a sampling strategy: {strategy} writes one sentence per code")
    if not MIN_TEMPERATURE <= temperature < math.inf:  # logits / T must stay finite (NaN compares False too)
        raise DecodingError(f"temperature must be a finite number >= {MIN_TEMPERATURE}, got {temperature} "
                            "(use strategy='greedy' for argmax)")
    if not 0.0 < top_p <= 1.0:
        raise DecodingError(f"top_p must be in (0, 1], got {top_p}")
    if strategy == "top-k" and top_k < 1:
        raise DecodingError("strategy 'top-k' needs top_k >= 1")
    if strategy == "top-p" and top_p >= 1.0:
        raise DecodingError("strategy 'top-p' needs top_p < 1")
    return dict(max_len=max_len, temperature=temperature, top_k=top_k, top_p=top_p, num_beams=num_beams,
                candidates=candidates, length_penalty=length_penalty)


def check_seed(seed: int | None, error: type[Exception] = DecodingError) -> int | None:
    """A seed as a Python int: None (fresh randomness) or an integer (numpy's too) in [0, 2**63), which torch
    and numpy take as given; anything else is `error`."""
    return None if seed is None else seed_value(seed, error)


def stream_seed(seed: int | None, generator: torch.Generator | None = None,
                error: type[Exception] = DecodingError) -> int:
    """The seed of a sampling call's streams: one drawn from `generator` when given (so a generator used for
    several calls gives each its own), else `seed` (checked), else a fresh one from OS entropy. A bad seed or
    generator is `error` (the API's InputError where nothing is decoded: score, prior codes, posterior draws)."""
    if check_generator(generator, error) is not None:
        return int(torch.randint(MAX_SEED - 1, (1,), generator=generator, device=generator.device))
    seed = check_seed(seed, error)
    return seed if seed is not None else torch.Generator().seed() % MAX_SEED


def check_generator(generator: torch.Generator | None,
                    error: type[Exception] = DecodingError) -> torch.Generator | None:
    """`generator` itself: None or a torch.Generator (anything else, a seed given as generator=5 say, is
    `error`, not an AttributeError inside torch)."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise error(f"generator must be a torch.Generator, got {type(generator).__name__} "
                            f"(for a number, pass seed=)")
    return generator


def generate(model: SentenceVAE, z: torch.Tensor | None = None, *, strategy: str = "greedy", max_len: int = 40,
             temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, num_beams: int = 4,
             length_penalty: float = 1.0, seed: int | None = None, generator: torch.Generator | None = None,
             batch_size: int | None = None, words: WordFilter | None = None, candidates: int = 1) -> list[list[int]]:
    """Token ids (no BOS/EOS) for each row of z (B, Z), or for `batch_size` LM samples when z is None (a whole
    number, at most config.MAX_SAMPLES).

    strategy: "greedy"; "sample" (temperature, and top_k / top_p if set); "top-k" and "top-p"
    (sampling that requires that filter to be set); "beam" (num_beams, length_penalty).
    Sampling: row i's sentence depends on z[i], the seed and i alone (RowNoise), so the first k rows of a call
    are those of a call with z[:k], in chunks or not; `generator` instead of `seed` supplies the seed (one draw).
    Runs in eval mode under inference_mode.
    words: a seqvae.wordlist.WordFilter that holds every strategy to known words (None: any word).
    candidates: with a sampling strategy, draw this many sentences per row and keep the one the decoder
    finds likeliest per token (`best_of`, from the log-probabilities the sampler kept): more fluent, somewhat
    less varied (docs/results.md). Candidate c of row i draws from the stream (i, c), whatever `candidates` is:
    candidate 0 is the sentence candidates=1 gives.
    """
    opts = check_options(strategy, max_len, temperature, top_k, top_p, num_beams, candidates, length_penalty)
    check_seed(seed)  # whatever the strategy (greedy and beam draw nothing): a bad one is refused, not ignored
    check_generator(generator)
    if batch_size is not None:  # a language model's number of sentences: bounded as sample(n)'s
        batch_size = whole("batch_size", batch_size, 0, DecodingError, MAX_SAMPLES)
    with model.evaluating(), torch.inference_mode():
        return _generate(model, z, batch_size, opts.pop("candidates"), strategy=strategy, seed=seed,
                         generator=generator, words=words, **opts)


def best_of(ids: list[list[int]], logp: list[float], candidates: int) -> list[int]:
    """Of each run of `candidates` consecutive sentences (drawn from the same code), the index of the one with
    the highest log p(x|z) per token (EOS counted: len + 1 tokens), ties to the first."""
    per_token = [lp / (len(row) + 1) for row, lp in zip(ids, logp)]
    return [max(range(i, i + candidates), key=per_token.__getitem__) for i in range(0, len(ids), candidates)]


def _generate(model: SentenceVAE, z: torch.Tensor | None, batch_size: int | None, candidates: int, *,
              strategy: str, max_len: int, temperature: float, top_k: int, top_p: float, num_beams: int,
              length_penalty: float, seed: int | None, generator: torch.Generator | None,
              words: WordFilter | None) -> list[list[int]]:
    """generate's decoding of every code (or LM row), in chunks of about DECODE_ROWS decoded sequences (a beam
    or a candidate counts as one). With candidates > 1 a chunk decodes each of its codes `candidates` times
    (row r of the whole call samples from stream divmod(r, candidates)) and keeps each code's best (best_of),
    so memory holds one sentence per code, not `candidates` (n x K codes and sentences were held at once)."""
    if strategy not in ("greedy", "beam"):
        seed = stream_seed(seed, generator)

    def run(z_part, n_part, first=0):  # first: the chunk's first code
        if strategy == "greedy":
            return greedy(model, z_part, max_len=max_len, batch_size=n_part, words=words)
        if strategy == "beam":
            return beam(model, z_part, num_beams=num_beams, max_len=max_len, length_penalty=length_penalty,
                        batch_size=n_part, words=words)
        if candidates > 1:  # each code `candidates` times over (shapes and values are checked in start)
            z_part = z_part[None] if z_part is not None and z_part.dim() == 1 else z_part
            z_part = z_part.repeat_interleave(candidates, dim=0) if z_part is not None and z_part.dim() == 2 else z_part
            n_part = None if n_part is None else n_part * candidates
        logp: list[float] | None = [] if candidates > 1 else None  # each drawn sentence's log p(x|z), in row order
        noise = RowNoise(seed, first * candidates, candidates)
        drawn = sample(model, z_part, max_len=max_len, temperature=temperature, top_k=top_k, top_p=top_p,
                       batch_size=n_part, words=words, scores=logp, noise=noise)
        return drawn if logp is None else [drawn[i] for i in best_of(drawn, logp, candidates)]

    if z is not None:
        z = as_codes(z)
    codes = batch_size if z is None else (len(z) if z.dim() == 2 else None)
    chunk = max(1, DECODE_ROWS // (num_beams if strategy == "beam" else candidates))  # codes per pass
    if codes is None or codes <= chunk:  # one pass (bad shapes are reported there)
        return run(z, batch_size)
    out: list[list[int]] = []  # many codes: in chunks (each row keeps its stream)
    for first in range(0, codes, chunk):
        stop = min(first + chunk, codes)
        out += run(None, stop - first, first) if z is None else run(z[first:stop], None, first)
    return out
