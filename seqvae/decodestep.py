"""The decoder one token at a time, as every decoding strategy runs it (seqvae.generation, seqvae.beam).

    z, h, tokens = start(model, z, batch_size)      # codes checked: z (B, Z) or None, h (L, B, H), BOS tokens (B,)
    logits, h = step(model, tokens, z, h, memory)   # one GRU step for the b rows still writing: (b, V), (L, b, H)
    ids = to_lists(out, eos_id, pad_id)             # (B, T) token matrix -> list[list[int]], cut at EOS

Codes that cannot be decoded are a DecodingError (one line), whatever the strategy.
"""

from __future__ import annotations

import torch

from .model import SentenceVAE


class DecodingError(ValueError):
    """Bad decoding arguments (one-line message)."""


def as_codes(z) -> torch.Tensor:
    """Codes as one tensor: a tensor, a numpy array, nested lists of numbers, or a list of (Z,) tensors; real
    numbers (integers too), not bools (a mask passed by mistake) nor complex numbers."""
    if isinstance(z, (list, tuple)) and not len(z):
        raise DecodingError("no codes given (an empty list)")
    if isinstance(z, (list, tuple)) and all(isinstance(row, torch.Tensor) for row in z):
        if len({tuple(row.shape) for row in z}) > 1:
            raise DecodingError(f"codes of different shapes: {sorted({tuple(row.shape) for row in z})}")
        z = torch.stack([row.detach().cpu() for row in z])
    else:
        try:
            z = torch.as_tensor(z)
        except (TypeError, ValueError, RuntimeError) as e:
            raise DecodingError(f"z must be a tensor or array of codes ({str(e).splitlines()[0]})") from None
    if z.dtype == torch.bool or z.is_complex():
        raise DecodingError(f"z must be real numbers, got {z.dtype}")
    return z


def start(model: SentenceVAE, z: torch.Tensor | None,
          batch_size: int | None) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """Check z and build the initial state: (z (B, Z) or None, h (L, B, H), BOS tokens (B,))."""
    cfg, device = model.cfg, model.device
    if cfg.latent:
        if z is None:
            raise DecodingError("this model has a latent space: decoding needs z of shape (B, latent_dim)")
        z = as_codes(z)
        given = tuple(z.shape)
        if z.dim() == 1:
            z = z[None]
        if z.dim() != 2 or z.shape[1] != cfg.latent_dim:
            raise DecodingError(f"z must have shape (B, {cfg.latent_dim}) or ({cfg.latent_dim},), got {given}")
        if not bool(torch.isfinite(z).all()):  # NaN / inf would decode to a string of <unk>, silently
            raise DecodingError("z must be finite (it has NaN or inf entries)")
        z = z.to(device=device, dtype=model.decoder.embedding.weight.dtype)
        B = z.shape[0]
    else:
        if z is not None:
            raise DecodingError("this model is a language model (latent=False): decode with z=None and batch_size=N")
        if batch_size is None or batch_size < 0:
            raise DecodingError("a language model needs batch_size >= 0 (the number of sentences)")
        B = batch_size
    h = model.decoder.initial_state(z, B)  # (L, B, H)
    tokens = torch.full((B,), cfg.bos_id, dtype=torch.long, device=device)  # (B,)
    return z, h, tokens


def step(model: SentenceVAE, tokens: torch.Tensor, z: torch.Tensor | None, h: torch.Tensor,
         memory: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One decoder step for every row at once.

    tokens (b,) previous token per row, z (b, Z) or None, h (L, b, H) -> logits (b, V), h (L, b, H).
    memory: the decoder's slot vectors for these rows (`Decoder.slot_memory(z)`), computed once per sentence
    by the caller; without it they are computed from z here.
    """
    dec = model.decoder
    x = dec.inputs(tokens[:, None], z)  # (b, 1, E[+Z])
    out, h = dec.gru(x, h)  # (b, 1, H), (L, b, H)
    logits = dec.logits(dec.readout(out, z, memory)[:, 0])  # (b, V)
    logits[:, model.cfg.pad_id] = float("-inf")  # never targets in training: never generated
    logits[:, model.cfg.bos_id] = float("-inf")
    return logits, h


def to_lists(out: torch.Tensor, eos_id: int, pad_id: int) -> list[list[int]]:
    """(B, T) token matrix -> one list per row, cut before the first EOS, padding dropped."""
    rows = []
    for row in out.tolist():
        if eos_id in row:
            row = row[: row.index(eos_id)]
        rows.append([t for t in row if t != pad_id])
    return rows
