"""The sentence VAE: bi-GRU encoder -> q(z|x) -> reparameterization/KL kernel -> GRU decoder.

Reads top to bottom:
  Encoder      tokens -> (mu, logvar) of a diagonal Gaussian q(z|x); optionally (encoder_slots) from K
               attention reads of its outputs too
  Decoder      z -> initial state, and z concatenated to every input embedding -> next-token logits;
               optionally (z_slots) attention over K vectors computed from z at every step
  SentenceVAE  ties them together; with ModelConfig.latent=False it is the plain GRU
               language model used as the baseline (same decoder, no encoder, no z).
               With ModelConfig.bow_head it also has a linear z -> vocab head for the
               bag-of-words training loss (Zhao et al. 2017), unused when decoding.

Shapes: B batch, T tokens (+1 with BOS/EOS), E embedding, H hidden, Z latent, V vocab.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .config import ModelConfig
from .kernels import FreeBitsMean, reparameterize_kl


class Encoder(nn.Module):
    """Bidirectional GRU over the sentence; its final states (and, with model.encoder_slots, K attention reads
    of its outputs) map to mu and logvar."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        H, K = cfg.hidden_dim, cfg.encoder_slots
        self.gru = nn.GRU(cfg.embed_dim, H, cfg.num_layers, batch_first=True, bidirectional=True)
        self.queries = nn.Parameter(torch.randn(K, 2 * H) / (2 * H) ** 0.5) if K else None  # (K, 2H)
        self.read_proj = nn.Linear(2 * H, H // 2) if K else None  # each read, (2H) -> (H/2)
        self.to_stats = nn.Linear(2 * H + K * (H // 2), 2 * cfg.latent_dim)
        self.dropout = nn.Dropout(cfg.embed_dropout)

    def forward(self, emb: torch.Tensor, src_lens: torch.Tensor,
                pad: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """emb: (B, T, E) embedded sentence (the decoder's table), src_lens: (B,), best on the CPU
        (packing needs the lengths there; lengths on the GPU cost a device sync). pad: (B, T) True at
        padding, on emb's device (the slots' mask without a host-to-device copy); None: from src_lens."""
        x = self.dropout(emb)
        lens = src_lens.cpu().clamp(min=1)
        if bool((lens == x.shape[1]).all()):
            out, h = self.gru(x)  # no padding in this batch: skip packing
        else:
            # A batch already sorted by length (the trainer sorts its batches) packs without a reordering
            # index, whose host-to-device copy would synchronise a GPU.
            ordered = bool((lens[:-1] >= lens[1:]).all())
            out, h = self.gru(pack_padded_sequence(x, lens, batch_first=True, enforce_sorted=ordered))
            if self.queries is not None:
                out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        feats = torch.cat([h[-2], h[-1]], dim=-1)  # (B, 2H): last layer, forward and backward
        if self.queries is not None:
            B, T, _ = out.shape
            if pad is None:  # (B, T) True past each sentence's end
                pad = (torch.arange(T)[None, :] >= lens[:, None]).to(out.device)
            else:  # an empty sentence reads its first position, as lens clamped to 1 does
                pad = torch.cat([torch.zeros_like(pad[:, :1]), pad[:, 1:T]], dim=1)
            scores = (out @ self.queries.to(out.dtype).T).float() / out.shape[-1] ** 0.5  # (B, T, K)
            scores = scores.masked_fill(pad[:, :, None], float("-inf"))
            reads = torch.softmax(scores, dim=1).to(out.dtype).transpose(1, 2) @ out  # (B, K, 2H)
            feats = torch.cat([feats, self.read_proj(reads).flatten(1)], dim=-1)  # (B, 2H + K*H/2)
        mu, logvar = self.to_stats(feats).float().chunk(2, dim=-1)  # (B, Z) each
        return mu, logvar


class Decoder(nn.Module):
    """GRU decoder conditioned on z through its initial state and at every step.

    It owns the word embedding table; the encoder reads the same table.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.embed_dim, padding_idx=cfg.pad_id)
        z_in = cfg.latent_dim if cfg.latent else 0
        self.gru = nn.GRU(cfg.embed_dim + z_in, cfg.hidden_dim, cfg.num_layers, batch_first=True)
        self.init_state = nn.Linear(cfg.latent_dim, cfg.num_layers * cfg.hidden_dim) if cfg.latent else None
        self.z_skip = nn.Linear(cfg.latent_dim, cfg.hidden_dim, bias=False) if cfg.latent and cfg.z_skip else None
        self.slots = self.query = None
        if cfg.latent and cfg.z_slots:
            self.slots = nn.Linear(cfg.latent_dim, cfg.z_slots * cfg.hidden_dim)  # z -> K memory vectors of H
            self.query = nn.Linear(cfg.hidden_dim, cfg.hidden_dim, bias=False)
        self.dropout = nn.Dropout(cfg.embed_dropout)
        self.adaptive = None
        if cfg.softmax == "adaptive":
            # Frequent ids get a full-rank head; each rarer cluster a projection of H / 2^k dims.
            self.adaptive = nn.AdaptiveLogSoftmaxWithLoss(cfg.hidden_dim, cfg.vocab_size, cfg.cutoffs(), div_value=2.0)
            self.out = None
        elif cfg.tie_embeddings:
            # logits = proj(h) @ embedding.T + b; no second V x E matrix.
            self.out_proj = nn.Linear(cfg.hidden_dim, cfg.embed_dim) if cfg.hidden_dim != cfg.embed_dim else nn.Identity()
            self.out_bias = nn.Parameter(torch.zeros(cfg.vocab_size))
            self.out = None
        else:
            self.out = nn.Linear(cfg.hidden_dim, cfg.vocab_size)

    def initial_state(self, z: torch.Tensor | None, batch_size: int) -> torch.Tensor:
        """(L, B, H) initial hidden state: tanh(W z + b), or zeros for the language model."""
        L, H = self.cfg.num_layers, self.cfg.hidden_dim
        if z is None or self.init_state is None:
            return torch.zeros(L, batch_size, H, device=self.embedding.weight.device, dtype=self.embedding.weight.dtype)
        return torch.tanh(self.init_state(z)).view(-1, L, H).transpose(0, 1).contiguous()

    def inputs(self, tokens: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        """The GRU's inputs: tokens (B, T) -> embeddings (B, T, E), or (B, T, E+Z) with z (B, Z) appended to each."""
        x = self.dropout(self.embedding(tokens))  # (B, T, E)
        if z is not None and self.cfg.latent:
            x = torch.cat([x, z.to(x.dtype).unsqueeze(1).expand(-1, x.shape[1], -1)], dim=-1)  # (B, T, E+Z)
        return x

    def slot_memory(self, z: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
        """The K vectors the decoder attends over (model.z_slots), (B, K, H); None without slots or z.
        They depend on z alone: decoding computes them once per sentence, not once per step."""
        if z is None or self.slots is None:
            return None
        return self.slots(z.to(dtype)).view(z.shape[0], self.cfg.z_slots, self.cfg.hidden_dim)  # also for B = 0

    def readout(self, out: torch.Tensor, z: torch.Tensor | None, memory: torch.Tensor | None = None) -> torch.Tensor:
        """What the softmax layer reads from the GRU's outputs (B, T, H): the outputs, plus W z with model.z_skip,
        plus with model.z_slots what each position reads from the K vectors computed from z (dot-product attention,
        the output as the query, with z_skip's term already added). `memory` is `slot_memory(z)` if the caller has it
        already."""
        if z is None:
            return out
        if self.z_skip is not None:
            out = out + self.z_skip(z.to(out.dtype)).unsqueeze(1)
        if self.slots is not None:
            H = out.shape[-1]
            memory = self.slot_memory(z, out.dtype) if memory is None else memory.to(out.dtype)  # (B, K, H)
            scores = self.query(out) @ memory.transpose(1, 2) / H ** 0.5  # (B, T, K)
            out = out + torch.softmax(scores.float(), dim=-1).to(memory.dtype) @ memory  # (B, T, H)
        return out

    def forward(self, tokens: torch.Tensor, z: torch.Tensor | None,
                h: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """What the softmax reads at every position: (B, T, H) (`readout`), and the last GRU state (L, B, H).

        Trailing padding needs no packing here: the GRU is causal, so pads after a
        sentence's end never change its outputs; they are simply not scored.
        """
        if h is None:
            h = self.initial_state(z, tokens.shape[0])
        out, h = self.gru(self.inputs(tokens, z), h)
        return self.readout(out, z), h

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """(..., H) -> (..., V); for the adaptive softmax these are normalised log-probabilities."""
        hidden = self.dropout(hidden)
        if self.adaptive is not None:
            logp = self.adaptive.log_prob(hidden.reshape(-1, hidden.shape[-1]))  # (N, V)
            return logp.view(*hidden.shape[:-1], self.cfg.vocab_size)  # V named: with no rows, -1 is ambiguous
        if self.out is not None:
            return self.out(hidden)
        return F.linear(self.out_proj(hidden), self.embedding.weight, self.out_bias)

    def target_nll(self, hidden: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """-log p(target) at each position: hidden (N, H), target (N,) -> (N,) fp32.

        The adaptive softmax scores only the clusters the targets fall in (no (N, V) logits)."""
        if self.adaptive is None:
            return F.cross_entropy(self.logits(hidden).float(), target, reduction="none")
        # AdaptiveLogSoftmaxWithLoss.forward, with each cluster's log-softmax in fp32 (under bf16 autocast its
        # own forward mixes dtypes): log p(x) = log p_head(x) in the head, log p_head(cluster) + log p_cluster(x)
        ada, hidden = self.adaptive, self.dropout(hidden)
        head = F.log_softmax(ada.head(hidden).float(), dim=-1)  # (N, shortlist + clusters)
        logp = head.gather(1, target.clamp(max=ada.shortlist_size - 1)[:, None]).squeeze(1)  # (N,)
        for i, (lo, hi) in enumerate(zip(ada.cutoffs[:-1], ada.cutoffs[1:])):
            rows = torch.nonzero((target >= lo) & (target < hi)).squeeze(1)
            if rows.numel():
                tail = F.log_softmax(ada.tail[i](hidden.index_select(0, rows)).float(), dim=-1)
                inside = tail.gather(1, (target.index_select(0, rows) - lo)[:, None]).squeeze(1)
                logp = logp.index_copy(0, rows, head[rows, ada.shortlist_size + i] + inside)
        return -logp


@dataclass
class VAEOutput:
    """What SentenceVAE.forward returns: per-sentence loss terms and the posterior (None for the LM)."""

    rec: torch.Tensor      # (B,) reconstruction NLL per sentence, -log p(x|z), summed over tokens (EOS included)
    kl: torch.Tensor       # (B,) KL(q(z|x) || p(z)) per sentence (with free bits if asked for); zeros for the LM
    mu: torch.Tensor | None      # (B, Z)
    logvar: torch.Tensor | None  # (B, Z)
    z: torch.Tensor | None       # (B, Z)
    bow: torch.Tensor | None = None  # (B,) bag-of-words NLL of the target tokens given z alone (with a bow head)
    rec_mean: torch.Tensor | None = None  # (B,) -log p(x|mu): the reconstruction from the posterior mean (asked for)


class SentenceVAE(nn.Module):
    """Encoder + decoder sharing the decoder's embedding table. `cfg.latent=False` gives the GRU LM."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.decoder = Decoder(cfg)
        self.encoder = Encoder(cfg) if cfg.latent else None
        # Training aid only (Zhao et al. 2017): predicting the sentence's words from z, order ignored.
        self.bow = nn.Linear(cfg.latent_dim, cfg.vocab_size) if cfg.latent and cfg.bow_head else None
        # Which reparameterization + KL implementation forward() uses (seqvae.kernels): "auto" picks the
        # Triton kernel for CUDA tensors. A run-time choice (benchmarks, debugging), not saved with the model.
        self.kl_backend = "auto"

    @property
    def device(self) -> torch.device:
        return self.decoder.embedding.weight.device

    def encode(self, src: torch.Tensor, src_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior parameters (mu, logvar), each (B, Z), in fp32."""
        if self.encoder is None:
            raise RuntimeError("this model is a language model (latent=False): it has no encoder")
        return self.encoder(self.decoder.embedding(src), src_lens, src == self.cfg.pad_id)

    def token_nll(self, dec_in: torch.Tensor, target: torch.Tensor, z: torch.Tensor | None,
                  positions: torch.Tensor | None = None) -> torch.Tensor:
        """-log p(x|z) per sentence, (B,). Logits are computed only at the non-pad target positions.

        `positions` (N,): flat indices of those positions in (B*T) (Batch.positions, computed on the
        CPU); without it they are found from the target, which costs a device sync on a GPU.
        """
        hidden, _ = self.decoder(dec_in, z)  # (B, T, H)
        B, T, H = hidden.shape
        if positions is None:
            positions = torch.nonzero((target != self.cfg.pad_id).flatten()).squeeze(1)
        nll = self.decoder.target_nll(hidden.reshape(B * T, H).index_select(0, positions),
                                      target.flatten().index_select(0, positions))  # (N,)
        return torch.zeros(B * T, dtype=nll.dtype, device=nll.device).index_copy_(0, positions, nll).view(B, T).sum(1)

    def bow_nll(self, z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """-sum_t log softmax(W z + b)[x_t] over the non-pad target tokens, per sentence: (B,)."""
        if self.bow is None:
            raise RuntimeError("this model has no bag-of-words head (model.bow_head = false)")
        logp = F.log_softmax(self.bow(z).float(), dim=-1)  # (B, V)
        nll = -logp.gather(1, target)  # (B, T)
        return nll.masked_fill(target == self.cfg.pad_id, 0.0).sum(1)

    def forward(self, src: torch.Tensor, src_lens: torch.Tensor, dec_in: torch.Tensor, target: torch.Tensor, *,
                positions: torch.Tensor | None = None, sample: bool = True, free_bits: float = 0.0,
                seed: int | None = None, mean_rec: bool = False,
                free_bits_mean: FreeBitsMean | None = None) -> VAEOutput:
        """One pass: encode, draw z (fused kernel), decode. `dec_in` may carry word dropout. mean_rec: also
        decode from the posterior mean (`rec_mean`, a second decoder pass; train.mean_rec_weight).
        free_bits_mean: how free bits take the batch mean when the batch is split (seqvae.kernels)."""
        if self.encoder is None:
            rec = self.token_nll(dec_in, target, None, positions)
            return VAEOutput(rec, torch.zeros_like(rec), None, None, None)
        mu, logvar = self.encode(src, src_lens)
        z, kl = reparameterize_kl(mu, logvar, seed=seed, free_bits=free_bits, sample=sample, backend=self.kl_backend,
                                  free_bits_mean=free_bits_mean)
        rec = self.token_nll(dec_in, target, z, positions)
        bow = self.bow_nll(z, target) if self.bow is not None else None
        rec_mean = self.token_nll(dec_in, target, mu.to(z.dtype), positions) if mean_rec else None
        return VAEOutput(rec, kl, mu, logvar, z, bow, rec_mean)

    @contextlib.contextmanager
    def evaluating(self) -> Iterator["SentenceVAE"]:
        """Eval mode (no dropout) inside the block; the mode it had is restored after it, also on an error."""
        was_training = self.training
        self.eval()
        try:
            yield self
        finally:
            self.train(was_training)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
