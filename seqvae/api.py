"""The user-facing API: load a checkpoint, then encode, decode, sample, reconstruct, interpolate, score.

    from seqvae import SeqVAE
    vae = SeqVAE.from_pretrained("checkpoints/ptb-vae")          # a checkpoint dir, or a run dir (its best/)
    post = vae.encode(["the movie was great", "i hated it"])      # Posterior: .mean (N, Z), .std, .sample(n)
    vae.decode(post.mean, strategy="beam", num_beams=4)           # -> list[str]
    vae.sample(5, strategy="top-p", top_p=0.9, seed=0)            # z ~ the aggregate prior (if fitted) or N(0, I)
    vae.reconstruct(["the movie was great"])                      # posterior mean -> greedy decode
    vae.refine(["the movie was great"], steps=10)                 # (N, Z) codes refined per sentence (seqvae.refine)
    z, texts = vae.interpolate("the movie was great", "i hated it", steps=8, method="slerp")
    vae.score(["the movie was great"], samples=100)               # (N,) importance-weighted NLL in nats

Decoding options (every method that decodes takes them; see seqvae.generation):
    strategy="greedy"|"sample"|"top-k"|"top-p"|"beam" (default greedy; sample: top-p), max_len=40 (tokens,
    EOS included), temperature=1.0, top_k=0, top_p=1.0 (0.9 with strategy="top-p"), num_beams=4,
    length_penalty=1.0, candidates=1 (sampling: the best of K draws per code), seed=None (or generator),
    words="known"|"any" (default: "known" when the checkpoint has a word list, `seqvae words`:
    no word outside it is written; seqvae.wordlist).
Sizes have the command line's bounds (seqvae.config): n <= MAX_SAMPLES (10**6) samples or draws per sentence,
steps <= MAX_PATH_STEPS (10**4), samples <= MAX_IW_SAMPLES (10**4), refine steps <= MAX_REFINE_STEPS (10**4),
max_len <= MAX_LEN (1024), num_beams <= MAX_BEAMS and candidates <= MAX_CANDIDATES (256): a size past one is an
InputError (DecodingError for decoding options) at once, before anything is drawn or decoded.
A language-model checkpoint (trained with --lm, no latent space) can `sample` and `score`;
`encode`, `decode(z)`, `reconstruct`, `refine`, `interpolate` and `fit_prior` raise InputError.
Beside SeqVAE: Posterior (seqvae.posterior), the paths between two codes (seqvae.interpolation.interpolate_codes)
and InputError (seqvae.errors); each is importable from here too.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Sequence

import torch

from . import checkpoint, generation, textinput
from .config import (MAX_IW_SAMPLES, MAX_PATH_STEPS, MAX_REFINE_STEPS, MAX_SAMPLES, TrainConfig, resolve_device,
                     seed_value, whole)
from .data import collate
from .errors import InputError
from .interpolation import check_method, interpolate_codes
from .metrics import iw_log_likelihood
from .model import SentenceVAE
from .posterior import Posterior
from .prior import PRIORS, AggregatePrior, PriorError, check_fit_size, load_prior
from .refine import LR as REFINE_LR
from .refine import STEPS as REFINE_STEPS
from .refine import WEIGHT as REFINE_WEIGHT
from .refine import RefineError, check_refine, refine_codes, refine_posterior
from .streams import NOISE_FIT, NOISE_FIT_IW, NOISE_IW, NOISE_PRIOR, sentence_noise
from .wordlist import KnownWords, WordFilter, WordListError, load_words

MAX_TOKENS = 256  # longer inputs are cut to their first MAX_TOKENS tokens before encoding or scoring
WORDS = ("known", "any")  # the `words` decoding option


class SeqVAE:
    """A trained sentence VAE (or GRU language model) with its tokenizer: the object users hold.

        vae = SeqVAE.from_pretrained("checkpoints/imdb", device="cpu")
        post = vae.encode(texts)                    # Posterior: .mean, .std (N, Z), .sample(n, seed=0)
        vae.decode(post.mean)                       # list[str], one per row of z
        vae.sample(5, seed=0)                       # prior samples (top-p 0.9 unless told)
        vae.reconstruct(texts); vae.interpolate(a, b, steps=8); vae.score(texts); vae.refine(texts)

    Sentences (`texts`) are a str (one sentence) or a list (any iterable) of str; each is cut to MAX_TOKENS (256)
    tokens. Codes and scores are float32 tensors: codes (`encode`, `refine`, `prior_codes`, `interpolate`) on
    the model's device (`vae.device`), scores (`score`) on the CPU. `batch_size` (encode, refine, score) is the
    number of sentences per forward pass; it changes speed and memory, not results (up to float rounding).

    Decoding options, the same keywords for every method that decodes (decode, decode_ids, reconstruct,
    interpolate, sample, sample_ids; seqvae.generation.generate):
        strategy      "greedy" | "sample" | "top-k" | "top-p" | "beam"; default "greedy", but "top-p" for sample
        max_len       tokens per sentence, EOS included (default 40, at most 1024)
        temperature   softmax temperature for sampling (default 1.0, at least 1e-3)
        top_k         keep the k likeliest tokens (default 0: off; "top-k" needs >= 1)
        top_p         nucleus mass in (0, 1] (default 1.0: off; 0.9 when strategy is "top-p" and it is not given)
        num_beams, length_penalty   beam search (defaults 4 and 1.0: the mean log p per token)
        candidates    sampling: best of K draws per code by log p(x|z) per token (default 1, at most 256)
        seed          int in [0, 2**63), or None for fresh randomness; or generator=torch.Generator to draw it
        words         "known" (only the checkpoint's word list, `seqvae words`) | "any"; default known if it has one
    Row i of a sampled decoding depends on z[i], the seed and i alone; the global RNG is never touched.

    Errors (all ValueErrors with a one-line message, exported by `seqvae`): InputError for sentences, sizes and
    other arguments (and for a latent method on a language model), DecodingError for decoding options (an
    unknown keyword too) and codes, CheckpointError for a path that is no checkpoint, ConfigError for a device
    this machine lacks. A language-model checkpoint (latent=False) can `sample` and `score`; encode, decode(z),
    reconstruct, refine, interpolate, fit_prior and prior_codes raise InputError.
    """

    def __init__(self, model: SentenceVAE, tokenizer, config: dict[str, Any] | None = None,
                 prior: AggregatePrior | None = None, words: KnownWords | None = None):
        """Wrap an in-memory SentenceVAE and its tokenizer (from_pretrained is the usual way in); config: the
        checkpoint's config sections (default: the model's), prior: an aggregate prior, words: a word list."""
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.config = config or {"model": model.cfg.to_dict(), "train": None, "data": None}
        self.metrics: dict[str, Any] = {}
        self.prior = prior.to(self.device) if prior is not None else None  # aggregate posterior density, if fitted
        self.words = words  # the words decoding may write (words="known"), if the checkpoint has a list
        self._filter: tuple[KnownWords, WordFilter] | None = None  # the word filter's tables, built once per list

    # ------------------------------------------------------------------ loading and saving
    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device | None = None, *,
                        with_prior: bool = True) -> "SeqVAE":
        """Load a checkpoint dir (or a run dir: its best/), with its aggregate prior and word list if it has them.

        path: a str or Path. device: "cpu", "cuda", "cuda:N" or a torch.device; None (default) means CUDA if
        available, else CPU. The weights are float32 whatever dtype they were saved in. with_prior=False leaves a
        saved aggregate prior unread (`seqvae fit-prior`, which replaces it: a broken one is then no obstacle to
        fitting it again).

        Raises CheckpointError for a path that is not a valid checkpoint, InputError for a path that is not a str
        or Path, ConfigError for a device this machine does not have.
        """
        device = resolve_device(device)
        d = checkpoint.resolve(_checked_path(path))
        model, tokenizer, config = checkpoint.load(d, map_location=device)
        prior = None
        try:
            if model.cfg.latent and with_prior:
                prior = load_prior(d, model.cfg.latent_dim)
            words = load_words(d)
        except (PriorError, WordListError) as e:
            raise checkpoint.CheckpointError(str(e)) from None
        vae = cls(model, tokenizer, config, prior, words)
        vae.metrics = checkpoint.read_metrics(d)
        return vae

    def save_pretrained(self, path: str | Path, dtype: torch.dtype | None = None) -> Path:
        """Write a checkpoint dir at `path` (a str or Path) and return it as a Path: config, weights, tokenizer,
        metrics, and the prior and word list if it has them. dtype: the weights' floating dtype on disk (default:
        the model's, float32); torch.float16 halves the file. A file or a non-checkpoint dir at `path` is a
        CheckpointError, so is a dtype that is not a floating torch.dtype; a path that is no str or Path an
        InputError.

        An existing checkpoint at `path` (the one this model was loaded from, say) is replaced; what it holds
        besides (classifier heads, report, model card) is kept when the weights written are its own byte for
        byte (the same model saved in the dtype it was loaded from), and otherwise, being made for weights that
        are no longer there, a CheckpointError that names it, with nothing changed. A metrics.json record of the
        weights' dtype (a shipped checkpoint's weights_dtype) names the dtype written; its numbers are the loaded
        weights', which a narrower dtype (bfloat16 from float16) rounds further."""
        path = _checked_path(path)
        train = self.config.get("train")
        metrics = self.metrics
        if isinstance(metrics, dict) and "weights_dtype" in metrics:  # a shipped checkpoint's record of its file
            written = dtype if dtype is not None else next(self.model.parameters()).dtype
            metrics = {**metrics, "weights_dtype": str(written).removeprefix("torch.")}
        return checkpoint.save(path, self.model, self.tokenizer,
                               train_cfg=TrainConfig.from_dict(train) if train else None,
                               data_meta=self.config.get("data"), metrics=metrics, dtype=dtype,
                               extra=self.save_extras)

    def save_extras(self, directory: str | Path) -> None:
        """Write what the checkpoint holds beside the model into `directory`: the aggregate prior and the word
        list, each if present (each file atomically)."""
        if self.prior is not None:
            self.prior.save(directory)
        if self.words is not None:
            self.words.save(directory)

    @property
    def device(self) -> torch.device:
        """Where the model (and the codes it returns) live; `to(device)` moves it."""
        return self.model.device

    @property
    def latent(self) -> bool:
        """False for a language model checkpoint (no encoder, no z)."""
        return bool(self.model.cfg.latent)

    @property
    def latent_dim(self) -> int:
        """The width of z (an InputError for a language model, which has none)."""
        self._need_latent("latent_dim")
        return self.model.cfg.latent_dim

    def to(self, device: str | torch.device) -> "SeqVAE":
        """Move the model (and its prior) to `device` ("cpu", "cuda", "cuda:N", a torch.device, or None: CUDA if
        available) and return self. The weights stay in float32: a dtype is an InputError; a device this machine
        lacks is a ConfigError."""
        if isinstance(device, torch.dtype):
            raise InputError(f"SeqVAE.to takes a device, not a dtype ({device}): the API computes in float32")
        device = resolve_device(device)
        self.model.to(device)
        if self.prior is not None:
            self.prior.to(device)
        return self

    def __repr__(self) -> str:
        c = self.model.cfg
        kind = f"VAE z={c.latent_dim}" if c.latent else "LM"
        return (f"SeqVAE({kind}, vocab={c.vocab_size}, hidden={c.hidden_dim}, layers={c.num_layers}, "
                f"device={self.device})")

    # ------------------------------------------------------------------ text <-> ids
    def tokenize(self, texts: str | Sequence[str]) -> list[list[int]]:
        """Token ids per sentence (no BOS/EOS) as list[list[int]], each cut to MAX_TOKENS; a str is one sentence.
        No sentences, an empty (or blank) sentence, one that is not a str, or holds NUL or non-UTF-8 characters,
        is an InputError naming it."""
        texts = _as_list(texts)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise InputError(f"sentence {i}: expected a string, got {type(text).__name__}")
            if textinput.problem(text):
                raise InputError(f"sentence {i} {textinput.problem(text)}")
        ids = self.tokenizer.encode_batch([text.strip() for text in texts])
        for i, toks in enumerate(ids):
            if not toks:
                raise InputError(f"sentence {i} is empty (after stripping whitespace)")
        return [toks[:MAX_TOKENS] for toks in ids]

    def detokenize(self, ids: Sequence[Sequence[int]]) -> list[str]:
        """The text of each sentence of token ids (a list of lists of ints, as tokenize, decode_ids and sample_ids
        give; a 2-D array or tensor too), one str per row; padding, BOS and EOS ids are dropped, an empty row is
        "". A row that is not a list of integer ids in the vocabulary is an InputError."""
        return [self.tokenizer.decode(arr.tolist()) for arr in self._vocab_rows(ids)]

    def _vocab_rows(self, ids: Sequence[Sequence[int]]) -> list:
        """_id_rows(ids), each id checked to lie in the vocabulary [0, V) (an InputError naming it)."""
        V = self.model.cfg.vocab_size
        rows = _id_rows(ids)
        for i, arr in enumerate(rows):
            if len(arr) and (arr.min() < 0 or arr.max() >= V):
                raise InputError(f"sentence {i}: token id {int(arr.min() if arr.min() < 0 else arr.max())} is "
                                 f"outside the vocabulary [0, {V})")
        return rows

    def _batches(self, ids: list[list[int]], batch_size: int):
        """(positions, Batch) in length-sorted batches: little padding; callers restore input order.

        Ties are sorted by the ids themselves, so the batches do not depend on the order of the input
        (`score`'s draws do not depend on the batches at all: each sentence has its own, streams.sentence_noise).
        """
        batch_size = whole("batch_size", batch_size, 1, InputError)  # a float or bool too: not a TypeError, not 1
        cfg = self.model.cfg
        order = sorted(range(len(ids)), key=lambda i: (len(ids[i]), ids[i]))
        for s in range(0, len(order), batch_size):
            pos = order[s : s + batch_size]
            batch = collate([ids[i] for i in pos], pad_id=cfg.pad_id, bos_id=cfg.bos_id, eos_id=cfg.eos_id)
            yield torch.tensor(pos), batch.to(self.device)

    def _need_latent(self, what: str) -> None:
        if not self.latent:
            raise InputError(f"{what} needs a latent space, and this checkpoint is a language model (latent=False)")

    # ------------------------------------------------------------------ encoder side
    @torch.no_grad()  # not inference_mode: callers may feed the means to a model they train
    def encode(self, texts: str | Sequence[str], batch_size: int = 256) -> Posterior:
        """q(z|x) for each sentence, in input order: a Posterior whose mu and logvar are (N, Z) float32 on the
        model's device. A str is one sentence (N = 1).

        Sentences are tokenized, cut to MAX_TOKENS (256) tokens, and encoded in length-sorted batches of
        `batch_size` sentences (default 256; any size gives the same codes up to float rounding). Bad sentences
        are InputErrors (tokenize), as is a batch_size that is not a whole number >= 1.
        """
        self._need_latent("encode")
        return self.encode_ids(self.tokenize(texts), batch_size)

    @torch.no_grad()
    def encode_ids(self, ids: Sequence[Sequence[int]], batch_size: int = 256) -> Posterior:
        """q(z|x) for sentences given as token ids (no BOS/EOS; a list of lists of ints, or a 2-D integer array or
        tensor), in input order, as encode. An empty row, an id outside the vocabulary or a padding / BOS / EOS id
        is an InputError."""
        self._need_latent("encode")
        ids = self._checked_ids(ids)
        Z = self.latent_dim
        mu = torch.empty(len(ids), Z, device=self.device, dtype=torch.float32)  # model.encode's dtype
        logvar = torch.empty(len(ids), Z, device=self.device, dtype=torch.float32)
        with self.model.evaluating():  # no dropout, whatever mode a caller left the model in
            for pos, batch in self._batches(ids, batch_size):
                m, lv = self.model.encode(batch.src, batch.src_lens)  # (b, Z) each
                mu[pos.to(self.device)], logvar[pos.to(self.device)] = m, lv
        return Posterior(mu, logvar)

    def _checked_ids(self, ids: Sequence[Sequence[int]]) -> list[list[int]]:
        """Sentences of token ids as lists of ints, each cut to MAX_TOKENS; anything else is an InputError."""
        cfg = self.model.cfg
        out = []
        special = {cfg.pad_id: "<pad>", cfg.bos_id: "<s>", cfg.eos_id: "</s>"}  # the model adds BOS/EOS itself
        for i, arr in enumerate(self._vocab_rows(ids)):
            if not len(arr):
                raise InputError(f"sentence {i}: expected a non-empty list of token ids, got shape {arr.shape}")
            if inner := [t for t in arr.tolist() if t in special]:
                raise InputError(f"sentence {i}: token id {inner[0]} is {special[inner[0]]}, which a sentence's "
                                 f"ids may not hold (no padding, BOS or EOS: the model adds them)")
            out.append(arr[:MAX_TOKENS].tolist())
        if not out:
            raise InputError("encode_ids needs at least one sentence")
        return out

    @torch.no_grad()
    def score(self, texts: str | Sequence[str], samples: int = 100, batch_size: int = 32,
              seed: int = 0, refine: int = 0) -> torch.Tensor:
        """-log p(x) per sentence in nats, (N,) float32 on the CPU, in input order.

        samples: importance samples per sentence (1 to 10,000); batch_size: sentences per pass (default 32:
        each holds `samples` decoder rows); seed: an int, or None for fresh randomness; refine: proposal-fitting
        steps (0 to 10,000). Bad sentences or arguments are InputErrors.

        VAE: importance-weighted estimate with `samples` draws from q(z|x) (metrics.iw_log_likelihood),
        or, with refine=N, from a Gaussian fitted to each sentence's posterior in N steps
        (refine.refine_posterior: a tighter estimate, about N decoder passes more per sentence).
        Each sentence draws its noise from its own generator, seeded by `seed` and its tokens: its score
        depends on the sentence and `seed` alone, not on the other sentences, their order or batch_size
        (up to float rounding); a sentence given twice gets one score. seed=None: fresh randomness per call.
        Language model: the exact NLL (samples and refine are ignored).
        Sentences are cut to MAX_TOKENS tokens. Scores count the EOS token.
        """
        whole("samples", samples, 1, InputError, MAX_IW_SAMPLES)
        whole("refine", refine, 0, InputError, MAX_REFINE_STEPS)
        ids = self.tokenize(texts)
        seed = generation.stream_seed(seed, error=InputError)  # the seed itself (checked), or a fresh one for None
        # eval mode whatever the caller left; refining needs autograd even inside a caller's inference_mode
        with self.model.evaluating(), torch.inference_mode(False), torch.no_grad():
            nll = torch.empty(len(ids), dtype=torch.float32)
            self._score_batches(ids, samples, batch_size, seed, refine, nll)
        return nll

    def _score_batches(self, ids: list[list[int]], samples: int, batch_size: int, seed: int,
                       refine: int, nll: torch.Tensor) -> None:
        for pos, batch in self._batches(ids, batch_size):
            if self.latent:
                keys = [ids[i] for i in pos.tolist()]  # a sentence's noise follows from the seed and its tokens
                proposal = None
                if refine:
                    mu, logvar = self.model.encode(batch.src, batch.src_lens)
                    fit_noise = sentence_noise(seed, NOISE_FIT, keys, (refine, self.latent_dim), self.device)
                    proposal = refine_posterior(self.model, batch, mu, logvar, steps=refine, noise=fit_noise)
                noise = sentence_noise(seed, NOISE_FIT_IW if refine else NOISE_IW, keys, (samples, self.latent_dim),
                                       self.device)  # (b, samples, Z)
                nll[pos] = -iw_log_likelihood(self.model, batch, samples, proposal=proposal,
                                              noise=noise).float().cpu()
            else:
                nll[pos] = self.model.token_nll(batch.dec_in, batch.target, None).float().cpu()

    # ------------------------------------------------------------------ decoder side
    def words_option(self, words: str | None = None) -> str:
        """The `words` decoding option resolved: "known" (the checkpoint's word list) or "any"; None means
        known if the checkpoint has a list. Unknown values, and "known" without a list, are InputErrors."""
        if words is None:
            words = "known" if self.words is not None else "any"
        if words not in WORDS:
            raise InputError(f"unknown words option {words!r} (choose from {', '.join(WORDS)})")
        if words == "known" and self.words is None:
            raise InputError("this checkpoint has no word list (add one with `seqvae words`)")
        return words

    def _word_filter(self, words: str | None) -> WordFilter | None:
        """The decoding filter for the `words` option (words_option), None for "any"."""
        if self.words_option(words) == "any":
            return None
        if self._filter is None or self._filter[0] is not self.words:
            self._filter = (self.words, self.words.filter(self.tokenizer.piece_texts(), self.tokenizer.eos_id))
        return self._filter[1].fresh()

    def decode_ids(self, z: torch.Tensor, *, words: str | None = None, **opts) -> list[list[int]]:
        """Token ids (no BOS/EOS) as list[list[int]], one per code; z and options as in decode."""
        self._need_latent("decode(z)")
        opts = generation.top_p_default(opts)
        return generation.generate(self.model, z, words=self._word_filter(words), **opts)

    def decode(self, z: torch.Tensor, **opts) -> list[str]:
        """One sentence (str) per row of z, in order. z: codes (B, Z), or one code (Z,); a tensor on any device,
        a numpy array, nested lists of numbers, or a list of (Z,) tensors; B = 0 gives []. Options: the decoding
        options (see SeqVAE; default greedy; strategy="top-p" without top_p means top_p=0.9, as for sample).
        Codes of the wrong shape, not finite, or an empty list, and bad or unknown options, are DecodingErrors;
        a bad `words` an InputError."""
        return self.detokenize(self.decode_ids(z, **opts))

    def fit_prior(self, sentences: Sequence[str] | Sequence[Sequence[int]], components: int = 32,
                  seed: int = 0) -> AggregatePrior:
        """Fit the aggregate prior (a Gaussian mixture, seqvae.prior) on the posterior means of
        `sentences` (texts, or token-id lists as encode_ids takes them), use it from now on, and return it. Save it
        with `vae.prior.save(checkpoint_dir)` or `save_pretrained`. components: mixture components (default 32);
        seed: an int (default 0; not None: a fit is meant to be repeatable). The components, seed and number of
        sentences (at least two per component) are checked before anything is encoded; each is an InputError."""
        self._need_latent("fit_prior")
        whole("components", components, 1, InputError)
        seed_value(seed, InputError)
        sentences = _as_list(sentences)  # a str is one sentence, not a list of characters
        ids = self.tokenize(sentences) if isinstance(sentences[0], str) else sentences
        try:
            check_fit_size(len(ids), components)  # before the encoding, which takes minutes for 20,000 sentences
            self.prior = AggregatePrior.fit(self.encode_ids(ids).mean, components=components, seed=seed).to(self.device)
        except PriorError as e:
            raise InputError(str(e)) from None
        return self.prior

    def prior_codes(self, n: int, prior: str | None = None, *, seed: int | None = None,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        """n codes (n, Z) from `prior`: "aggregate" (the density fitted on training codes, `seqvae fit-prior`),
        "standard" (N(0, I)), or None: aggregate when the checkpoint has one, else standard.

        Code i comes from noise of its own, keyed by the seed and i (streams.NOISE_PRIOR), so the first k of n
        codes are the k codes of the same seed. `generator` instead of `seed`: the seed is drawn from it; seed=None:
        fresh randomness. Returns float32 on the model's device. A bad n, prior, seed or generator is an
        InputError."""
        self._need_latent("prior_codes")
        n = whole("n", n, 0, InputError, MAX_SAMPLES)
        prior = prior or ("aggregate" if self.prior is not None else "standard")
        if prior not in PRIORS:
            raise InputError(f"unknown prior {prior!r} (choose from {', '.join(PRIORS)})")
        if prior == "aggregate" and self.prior is None:
            raise InputError("this checkpoint has no aggregate prior (fit one with `seqvae fit-prior`)")
        # per code: Z + 1 standard normals; the first, through the normal CDF, is the uniform that picks the
        # aggregate prior's component, the other Z are the point
        seed = generation.stream_seed(seed, generator, InputError)
        noise = sentence_noise(seed, NOISE_PRIOR, range(n), (self.latent_dim + 1,))
        if prior == "aggregate":
            return self.prior.from_noise(torch.special.ndtr(noise[:, 0].double()), noise[:, 1:])
        return noise[:, 1:].to(self.device)  # (n, Z)

    def sample_ids(self, n: int, *, prior: str | None = None, seed: int | None = None,
                   generator: torch.Generator | None = None, words: str | None = None, **opts) -> list[list[int]]:
        """n samples as token ids: z from `prior` (see prior_codes), then decode: decode(prior_codes(n, seed=s),
        seed=s) with the defaults of sample (one seed for both, drawn from `generator` if one is given).
        Returns list[list[int]]."""
        n = whole("n", n, 0, InputError, MAX_SAMPLES)
        seed = generation.stream_seed(seed, generator)
        filt = self._word_filter(words)
        opts = generation.sampling_defaults(opts)
        if not self.latent:
            if prior is not None:
                raise InputError("a language model has no latent prior to choose")
            return generation.generate(self.model, None, batch_size=n, seed=seed, words=filt, **opts)
        z = self.prior_codes(n, prior, seed=seed)
        return generation.generate(self.model, z, seed=seed, words=filt, **opts)

    def sample(self, n: int, **opts) -> list[str]:
        """n sentences: z from the prior (prior="aggregate" | "standard"; default the aggregate one when
        the checkpoint has it), then decoded (language model: from the LM). Same seed, same sentences, and
        sentence i depends on the seed and i alone: the first k of sample(n, seed=s) are sample(k, seed=s).
        n: 0 to 10**6. Decoding options as for decode (see SeqVAE); by default top-p sampling at p = 0.9
        (config.SAMPLE_TOP_P), e.g. strategy="sample" for plain sampling, candidates=4 for the best of 4 draws
        per code. Returns list[str] of n. A bad n or prior is an InputError; a bad seed, generator or other
        decoding option a DecodingError."""
        return self.detokenize(self.sample_ids(n, **opts))

    def refine(self, texts: str | Sequence[str], steps: int = REFINE_STEPS, lr: float = REFINE_LR,
               weight: float = REFINE_WEIGHT, batch_size: int = 256) -> torch.Tensor:
        """Codes (N, Z), in input order, that the decoder turns back into the sentences more faithfully than
        their posterior means: from each mean, `steps` Adam steps (step size `lr`) on log p(x|z) + weight *
        log q(z|x) (seqvae.refine). steps=0 gives the means. Returns float32 (N, Z) on the model's device.
        steps: 0 to 10,000 (default 10); lr > 0 (default 0.1); weight >= 0 (default 0.1); batch_size: sentences
        per pass (default 256). Bad sentences or arguments are InputErrors."""
        self._need_latent("refine")
        try:
            check_refine(steps, lr, weight)
        except RefineError as e:
            raise InputError(str(e)) from None
        ids = self.tokenize(texts)
        with self.model.evaluating(), torch.inference_mode(False), torch.no_grad():  # refine_codes: grads in z
            out = torch.empty(len(ids), self.latent_dim, device=self.device, dtype=torch.float32)
            for pos, batch in self._batches(ids, batch_size):
                mu, logvar = self.model.encode(batch.src, batch.src_lens)
                out[pos.to(self.device)] = refine_codes(self.model, batch, mu, logvar, steps=steps, lr=lr,
                                                        weight=weight)
        return out

    def _codes(self, texts: Sequence[str], refine_steps: int) -> torch.Tensor:
        """The posterior means, or refined codes (with the default lr and weight) when refine_steps > 0."""
        return self.refine(texts, steps=refine_steps) if refine_steps else self.encode(texts).mean

    def reconstruct(self, texts: str | Sequence[str], refine: int = 0, **opts) -> list[str]:
        """One sentence (str) per input sentence: its posterior mean decoded (greedy unless the decoding options,
        see SeqVAE, say otherwise); refine=N decodes the code after N refinement steps instead (SeqVAE.refine).
        Bad sentences or refine are InputErrors, bad decoding options DecodingErrors."""
        self._need_latent("reconstruct")  # before encode or refine would name themselves to a language model
        return self.decode(self._codes(_as_list(texts), refine), **opts)

    def interpolate(self, a: str, b: str, steps: int = 8, method: str = "lerp", refine: int = 0,
                    **opts) -> tuple[torch.Tensor, list[str]]:
        """A path of `steps` codes from a's posterior mean to b's (both included, exactly), and its sentences.

        a, b: one sentence each (str). steps: 2 to 10,000 (default 8). Decoding options as for decode (see
        SeqVAE). A bad sentence, steps or method is an InputError, a bad decoding option a DecodingError.

        method="lerp": straight line. method="slerp": the direction moves along the great
        circle between the two means while the norm moves linearly from |mu_a| to |mu_b|
        (plain slerp of the two vectors would rescale the norm by sin-weights). Codes of
        sentences share a norm (flagship: 6.3 +- 0.5) and two of them are nearly orthogonal,
        so a straight line's middle is a shorter code (4.5) in the denser centre of the
        aggregate prior, where no sentence's code lies, and decodes to blander sentences; slerp's
        inner points have the codes' own prior density (docs/usage.md, "Interpolation").
        Vectors within ~0.06 degrees of (anti)parallel fall back to lerp (the great circle is
        then undefined or numerically unstable: opposite codes' path runs through 0).
        refine=N: the path runs between the two sentences' refined codes (SeqVAE.refine) instead.
        Decoded greedily (the default) or by beam, the first and last sentences are reconstruct(a) and
        reconstruct(b) (with the same refine). With a sampling strategy point i draws from the stream of row i
        (generation.sample), so the last point is not reconstruct(b, seed=s), which draws from row 0's.
        Returns (z (steps, Z), list of steps sentences).
        """
        self._need_latent("interpolate")
        whole("steps", steps, 2, InputError, MAX_PATH_STEPS)
        check_method(method)  # before the encoding or refinement, which may take a while
        mu = self._codes([a, b], refine)
        z = interpolate_codes(mu[0], mu[1], steps, method)
        return z, self.decode(z, **opts)


# ---------------------------------------------------------------------------- helpers
def _checked_path(path: str | os.PathLike) -> str | os.PathLike:
    """`path` itself if it is a str or a Path; anything else (None, a number) is an InputError, not pathlib's
    TypeError."""
    if not isinstance(path, (str, os.PathLike)):
        raise InputError(f"path must be a checkpoint directory (str or Path), got {type(path).__name__}")
    return path


def _id_rows(ids: Sequence[Sequence[int]]) -> list:
    """Sentences of token ids (a list of lists, a 2-D array or tensor) as 1-D integer numpy arrays, each row
    checked to be one; anything else (None, a flat list, a str, floats) is an InputError naming the row."""
    import numpy as np

    if isinstance(ids, (str, bytes, bytearray)) or not isinstance(ids, Iterable):
        raise InputError(f"token ids must be a list of sentences, got {type(ids).__name__}")
    rows = []
    for i, row in enumerate(ids):
        if isinstance(row, str):
            raise InputError(f"sentence {i}: expected token ids, got a string (encode takes texts)")
        arr = np.asarray(row.detach().cpu() if isinstance(row, torch.Tensor) else row)
        if arr.ndim != 1:
            raise InputError(f"sentence {i}: expected a list of token ids, got shape {arr.shape}")
        if len(arr) and arr.dtype.kind not in "iu":
            raise InputError(f"sentence {i}: token ids must be integers, got {arr.dtype} values")
        rows.append(arr.astype(np.int64))
    return rows


def _as_list(texts: str | Sequence[str]) -> list[str]:
    """A str is one sentence; a list (tuple, array, iterable) of them, as a list. Bytes, None, a number are
    InputErrors that say what was given (bytes were read as a list of numbers, None or a number ended in a
    bare `object is not iterable`)."""
    if isinstance(texts, str):
        return [texts]
    if isinstance(texts, (bytes, bytearray)) or not isinstance(texts, Iterable):
        raise InputError(f"texts must be a string or a list of strings, got {type(texts).__name__}"
                         + (" (decode bytes to str first)" if isinstance(texts, (bytes, bytearray)) else ""))
    texts = list(texts)
    if not texts:
        raise InputError("no sentences given")
    return texts

