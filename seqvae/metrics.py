"""Evaluation metrics, defined once.

  rec        E_q[-log p(x|z)] per sentence (one z sample), summed over tokens incl. EOS
  kl         KL(q(z|x) || N(0, I)) per sentence (no free bits)
  neg_elbo   rec + kl: an upper bound on -log p(x)
  nll        -log p(x) per sentence by importance sampling with k samples from q
             (Burda et al. 2016): log p(x) ~ logsumexp_k[log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log k.
             For the language model (no latent) it is the exact NLL.
  nll_refined  the same estimate with a proposal fitted per sentence (refine.refine_posterior):
             tighter where the encoder's q(z|x) is far from p(z|x); evaluate(refine_steps=N)
  ppl        exp(total nll / total target tokens), target tokens include one EOS per sentence
  mi         I(x; z) under q, estimated as in Hoffman & Johnson 2016 / He et al. 2019:
             E_x E_q[log q(z|x) - log q(z)], the aggregate q(z) a mixture over the evaluated
             sentences, both terms at one draw z per sentence (mutual_information_terms)
  au         active units: latent dims whose Cov_x(E_q[z|x]) = Var_x(mu) > 0.01 (Burda et al. 2016)
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .data import BucketBatchSampler, SentenceDataset, collate
from .kernels import gaussian_kl
from .model import SentenceVAE
from .refine import refine_posterior
from .streams import NOISE_FIT, NOISE_FIT_IW, NOISE_IW, NOISE_MI, NOISE_Z, sentence_noise

LOG_2PI = math.log(2 * math.pi)
ACTIVE_UNIT_THRESHOLD = 0.01


def log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))), summed over the last dim."""
    return -0.5 * ((z - mu) ** 2 * torch.exp(-logvar) + logvar + LOG_2PI).sum(-1)


def log_standard_normal(z: torch.Tensor) -> torch.Tensor:
    return -0.5 * (z**2 + LOG_2PI).sum(-1)


@torch.no_grad()
def iw_log_likelihood(model: SentenceVAE, batch, k: int, *, max_logits: int = 2**27,
                      generator: torch.Generator | None = None,
                      proposal: tuple[torch.Tensor, torch.Tensor] | None = None,
                      noise: torch.Tensor | None = None) -> torch.Tensor:
    """Importance-weighted estimate of log p(x) per sentence, (B,), with k samples from q(z|x), or from
    the diagonal Gaussians `proposal` = (mu, logvar), (B, Z) each (refine.refine_posterior's).
    The samples' standard normal noise is drawn from `generator`, or given: `noise` (B, k, Z).

    Samples are drawn in chunks so that one decoded chunk holds at most `max_logits` logits
    (copies x length x vocab; 2**27 floats = 512 MiB), at least one sample per sentence. The
    estimate does not depend on the budget: all k x Z noise is drawn before chunking (from
    `generator`, or given as `noise`, (B, k, Z) standard normal draws: see sentence_noise).
    """
    if k < 1:
        raise ValueError("k must be >= 1")
    mu, logvar = proposal if proposal is not None else model.encode(batch.src, batch.src_lens)  # (B, Z)
    B, Z = mu.shape
    std = torch.exp(0.5 * logvar)
    logits_per_copy = batch.target.shape[1] * model.cfg.vocab_size
    chunk = max(1, min(k, max_logits // (B * logits_per_copy)))
    if noise is not None and tuple(noise.shape) != (B, k, Z):
        raise ValueError(f"noise must have shape {(B, k, Z)}, got {tuple(noise.shape)}")
    # drawn at once: chunking changes no number
    all_eps = torch.randn(B, k, Z, device=mu.device, generator=generator) if noise is None else noise.to(mu)
    log_w = []
    for start in range(0, k, chunk):
        eps = all_eps[:, start : start + chunk]  # (B, kc, Z)
        kc = eps.shape[1]
        z = mu[:, None] + std[:, None] * eps
        log_q = -0.5 * (eps**2 + logvar[:, None] + LOG_2PI).sum(-1)  # (B, kc)
        log_p = log_standard_normal(z)  # (B, kc)
        rec = model.token_nll(batch.dec_in.repeat_interleave(kc, 0), batch.target.repeat_interleave(kc, 0),
                              z.reshape(B * kc, Z)).view(B, kc)
        log_w.append(-rec + log_p - log_q)
    return torch.logsumexp(torch.cat(log_w, 1), dim=1) - math.log(k)


def mutual_information_terms(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None,
                             chunk: int = 1024, noise: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sentence terms log q(z_i|x_i) - log q(z_i), z_i ~ q(z|x_i), whose mean estimates I(x; z);
    q(z) is the mixture of the N posteriors given, (N, Z) each. Returns (N,) float64. The draws' standard
    normal noise comes from `generator`, or is given: `noise` (N, Z).

    Both log densities are taken at the same draw z_i. Its mean is that of -entropy(q(z|x_i)) - log q(z_i)
    (He et al. 2019's form, the entropy in closed form), but that form keeps the draw's own deviation,
    1/2 sum(eps^2 - 1), a chi-square noise of variance Z/2 per sentence, which this one cancels: here each
    term is at most log N (q(z_i) >= q(z_i|x_i) / N), and 0 (to rounding) for identical posteriors."""
    mu, logvar = mu.double(), logvar.double()
    N, Z = mu.shape
    if N < 2:
        return torch.zeros(N, dtype=torch.float64)
    if noise is not None and tuple(noise.shape) != (N, Z):
        raise ValueError(f"noise must have shape {(N, Z)}, got {tuple(noise.shape)}")
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype) if noise is None else noise.to(mu)
    z = mu + torch.exp(0.5 * logvar) * eps
    inv_var = torch.exp(-logvar)  # (N, Z)
    const = (mu**2 * inv_var + logvar + LOG_2PI).sum(-1)  # (N,)
    terms = []
    for s in range(0, N, chunk):
        zi = z[s : s + chunk]  # (C, Z)
        # sum_z (z_i - mu_j)^2 / var_j expanded into matrix products: (C, N)
        quad = (zi**2) @ inv_var.T - 2 * zi @ (mu * inv_var).T
        log_q_ij = -0.5 * (quad + const[None, :])  # log q(z_i|x_j)
        rows = torch.arange(len(zi), device=z.device)
        own = log_q_ij[rows, rows + s]  # (C,) log q(z_i|x_i), from the same sums as the mixture's,
        terms.append(own - (torch.logsumexp(log_q_ij, dim=1) - math.log(N)))  # so that no term passes log N
    return torch.cat(terms).cpu()


def mutual_information(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None,
                       chunk: int = 1024) -> float:
    """I(x; z) estimate from posterior parameters of N sentences, each (N, Z): E[log q(z|x)]
    minus E[log q(z)] (the aggregate posterior of the N), both at one draw per sentence (mutual_information_terms).
    The I(x; z) of N equally likely sentences is at most log N, and so is this unbiased estimate."""
    if mu.shape[0] < 2:
        return 0.0
    return float(mutual_information_terms(mu, logvar, generator, chunk).mean())


def active_units(mu: torch.Tensor, threshold: float = ACTIVE_UNIT_THRESHOLD) -> tuple[int, list[float]]:
    """Number of dims with Var_x(mu) > threshold, and the per-dim variances."""
    if mu.shape[0] < 2:
        return 0, [0.0] * mu.shape[1]
    var = mu.double().var(dim=0, unbiased=True)
    return int((var > threshold).sum()), [float(v) for v in var]


@torch.no_grad()
def evaluate(model: SentenceVAE, dataset: SentenceDataset, *, k: int = 0, batch_size: int = 64,
             max_sentences: int = 0, mi_sentences: int = 10000, seed: int = 0, refine_steps: int = 0,
             per_sentence: bool = False, progress: bool = False, noise_by: str = "place") -> dict[str, Any]:
    """All metrics on a dataset. k = 0 skips importance sampling (nll is then neg_elbo's bound).

    refine_steps > 0 (with k > 0, a VAE) adds "nll_refined": the IW-NLL again, with k samples from a
    proposal fitted per sentence in that many steps (refine.refine_posterior); "nll" is unchanged.
    per_sentence=True adds "per_sentence_nll" (and "per_sentence_nll_refined"): each sentence's NLL
    in dataset order, for paired comparisons of two models on the same sentences ("sentences_sha256", the
    evaluated sentences' SentenceDataset.fingerprint, says which they are).
    Deterministic under `seed`; does not touch the global RNG. Each sentence's noise comes from its own
    generators (sentence_noise), so the numbers do not depend on batch_size beyond float rounding.
    noise_by: what keys those generators: "place", the sentence's index in the dataset, or "tokens", its token
    ids (as SeqVAE.score's), so that the numbers do not depend on the sentences' order either.
    """
    if noise_by not in ("place", "tokens"):
        raise ValueError(f"noise_by must be 'place' or 'tokens', got {noise_by!r}")
    device = model.device
    if max_sentences:
        dataset = dataset.subset(max_sentences)

    def keys(idx: Sequence[int]) -> list:  # each sentence's key for sentence_noise
        return list(idx) if noise_by == "place" else [dataset[i].tolist() for i in idx]
    cfg = model.cfg
    refined = bool(cfg.latent and k > 0 and refine_steps > 0)
    tot = {"rec": 0.0, "kl": 0.0, "nll": 0.0, "nll_refined": 0.0}
    n_sent, n_tok = 0, 0
    mus = torch.zeros(len(dataset), cfg.latent_dim)  # posterior parameters in dataset order, (N, Z)
    logvars = torch.zeros(len(dataset), cfg.latent_dim)
    nll_of = torch.full((len(dataset),), float("nan"), dtype=torch.float64)  # per sentence, dataset order
    refined_of = nll_of.clone()
    batches = BucketBatchSampler(dataset.lengths, batch_size, shuffle=False).batches()
    with model.evaluating():
        for idx in tqdm(batches, desc="eval", disable=None if progress else True, leave=False):
            batch = collate([dataset[i] for i in idx], pad_id=cfg.pad_id, bos_id=cfg.bos_id,
                            eos_id=cfg.eos_id).to(device)
            n_sent += batch.size
            n_tok += batch.num_target_tokens
            if not cfg.latent:
                rec = model.token_nll(batch.dec_in, batch.target, None)
                tot["rec"] += float(rec.sum())
                tot["nll"] += float(rec.sum())
                nll_of[torch.as_tensor(idx)] = rec.double().cpu()
                continue
            Z, key = cfg.latent_dim, keys(idx)
            mu, logvar = model.encode(batch.src, batch.src_lens)
            z = mu + torch.exp(0.5 * logvar) * sentence_noise(seed, NOISE_Z, key, (Z,), device)
            rec = model.token_nll(batch.dec_in, batch.target, z)
            kl = gaussian_kl(mu, logvar)
            tot["rec"] += float(rec.sum())
            tot["kl"] += float(kl.sum())
            nll = -iw_log_likelihood(model, batch, k, noise=sentence_noise(seed, NOISE_IW, key, (k, Z), device)) \
                if k > 0 else rec + kl
            tot["nll"] += float(nll.sum())
            nll_of[torch.as_tensor(idx)] = nll.double().cpu()
            if refined:
                steps_noise = sentence_noise(seed, NOISE_FIT, key, (refine_steps, Z), device)  # (B, steps, Z)
                fitted = refine_posterior(model, batch, mu, logvar, steps=refine_steps, noise=steps_noise)
                nll = -iw_log_likelihood(model, batch, k, proposal=fitted,
                                         noise=sentence_noise(seed, NOISE_FIT_IW, key, (k, Z), device))
                tot["nll_refined"] += float(nll.sum())
                refined_of[torch.as_tensor(idx)] = nll.double().cpu()
            mus[torch.as_tensor(idx)] = mu.float().cpu()
            logvars[torch.as_tensor(idx)] = logvar.float().cpu()
    if n_sent == 0:
        raise ValueError("cannot evaluate on an empty dataset")

    res: dict[str, Any] = {"sentences": n_sent, "tokens": n_tok, "latent": bool(cfg.latent), "seed": seed}
    res["rec"] = tot["rec"] / n_sent
    res["kl"] = tot["kl"] / n_sent
    res["neg_elbo"] = res["rec"] + res["kl"]
    nll_total = tot["nll"]
    res["nll"] = nll_total / n_sent
    res["nll_is_bound"] = bool(cfg.latent and k == 0)  # True: nll is -ELBO, not an IW estimate
    res["iw_samples"] = k if cfg.latent else 0
    res["nll_per_token"] = nll_total / n_tok
    if refined:
        res["nll_refined"], res["refine_steps"] = tot["nll_refined"] / n_sent, refine_steps
    res["ppl"] = math.exp(min(nll_total / n_tok, 700.0))
    if cfg.latent:
        mu_all, logvar_all = mus, logvars
        res["au"], res["au_variances"] = active_units(mu_all)
        pick = torch.arange(len(mu_all))
        if mi_sentences and len(mu_all) > mi_sentences:
            pick = torch.from_numpy(np.random.default_rng(seed).choice(len(mu_all), mi_sentences, replace=False))
            mu_all, logvar_all = mu_all[pick], logvar_all[pick]
        noise = sentence_noise(seed, NOISE_MI, keys(pick.tolist()), (cfg.latent_dim,))  # (N, Z)
        terms = mutual_information_terms(mu_all, logvar_all, noise=noise)
        res["mi"] = float(terms.mean()) if len(terms) > 1 else 0.0
        res["mi_se"] = float(terms.std() / math.sqrt(len(terms))) if len(terms) > 1 else 0.0
        res["mi_max"] = math.log(len(terms))  # the estimator's ceiling (see mutual_information)
    else:
        res["au"], res["au_variances"], res["mi"], res["mi_se"] = 0, [], 0.0, 0.0
    if per_sentence:
        res["sentences_sha256"] = dataset.fingerprint()  # which sentences they are: compare_nll pairs by it
        res["per_sentence_nll"] = nll_of.tolist()
        if refined:
            res["per_sentence_nll_refined"] = refined_of.tolist()
    return res


def paired_difference(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Per-sentence NLLs of two models on the same sentences: mean of a - b, its standard error,
    a normal 95% interval, and the fraction of sentences where a is lower (better)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError(f"need two equally long lists of at least 2 sentences, got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("per-sentence NLLs must be finite")
    d = a - b
    mean, se = float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d)))
    return {"sentences": len(d), "mean_diff": mean, "se": se, "ci95": [mean - 1.96 * se, mean + 1.96 * se],
            "frac_a_lower": float((d < 0).mean())}
