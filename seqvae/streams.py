"""Random streams keyed by (seed, stream, key): each row of a computation draws from a generator of its own, so
what a row gets depends on the seed, the stream and its key alone, never on the other rows, their number or order,
or the batch it is computed in.

    g = key_generator(seed, NOISE_IW, 3)                        # a CPU torch.Generator of its own
    eps = sentence_noise(seed, NOISE_IW, keys, (k, Z))          # (len(keys), k, Z) standard normal, row j keyed keys[j]
    eps = draw_noise(seed, NOISE_POSTERIOR, keys, n, (Z,))      # the same, drawn one (Z,) at a time: any n's first k
                                                                # draws of a row are its draws for n = k

A key is a row's place (a sentence's index in a dataset, evaluate; a prior sample's index; (code, candidate)
when sampling; a sentence's row in a Posterior) or its content (a sentence's token ids, SeqVAE.score and
evaluate(noise_by="tokens"), which the report uses: the same sentence gets the same draws wherever it stands).
The global RNG is never touched.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

# The streams: each use of a row's noise has its own, so that its draws are independent of the others'.
# evaluate and SeqVAE.score: the one-sample z, the IW samples, the proposal's fitting steps, the IW samples from it,
# (evaluate) the mutual information's draw;
# sampling: a prior code's noise (SeqVAE.prior_codes), the uniforms a decoded row draws its tokens with
# (sampler.RowNoise); a posterior's draws (Posterior.sample, keyed by the sentence's row in it).
# New streams go at the end: a number once given keeps its meaning, so seeded results stay as they were.
NOISE_Z, NOISE_IW, NOISE_FIT, NOISE_FIT_IW, NOISE_PRIOR, NOISE_DECODE, NOISE_MI, NOISE_POSTERIOR = range(8)


def key_generator(seed: int, stream: int, key: int | Sequence[int]) -> torch.Generator:
    """A CPU generator of its own for (seed, stream, key), seeded through numpy's SeedSequence (which mixes
    every bit of the seed and the key, so neighbouring keys give unrelated streams)."""
    key = [int(t) for t in key] if isinstance(key, (list, tuple)) else [int(key)]
    state = np.random.SeedSequence([seed, stream, len(key), *key]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 31 | int(state[1]) >> 1)  # 63 bits


def sentence_noise(seed: int, stream: int, keys: Sequence[int | Sequence[int]], shape: tuple[int, ...],
                   device: torch.device | str = "cpu") -> torch.Tensor:
    """Standard normal noise (len(keys), *shape): row j from key_generator(seed, stream, keys[j]), so that a
    sentence's draws are the same whichever batch, and batch size, it is evaluated in. float32, whatever torch's
    default dtype (float64 would draw other numbers from the same generator). Row j is one draw of `shape`:
    draw_noise's n = 1."""
    return draw_noise(seed, stream, keys, 1, shape, device)[:, 0]


def draw_noise(seed: int, stream: int, keys: Sequence[int | Sequence[int]], n: int, shape: tuple[int, ...],
               device: torch.device | str = "cpu") -> torch.Tensor:
    """Standard normal noise (len(keys), n, *shape): row j's n draws of `shape`, one after another from the one
    generator key_generator(seed, stream, keys[j]), so that its first k draws are the same for every n >= k (a
    sentence_noise(..., (n, *shape)) row is one draw of n * prod(shape) numbers, whose values torch computes
    another way once there are 16 or more, so its first k do not always match n = k's). n = 1 is
    sentence_noise. float32, whatever torch's default dtype. The price is a call per draw, 3 to 6 us on one CPU
    thread (a row of n = 10**4 draws of 64: 34 ms, against 5 ms drawn at once)."""
    noise = torch.empty(len(keys), n, *shape, dtype=torch.float32)
    for key, row in zip(keys, noise):
        g = key_generator(seed, stream, key)
        for draw in row:
            draw.normal_(generator=g)
    return noise.to(device)
