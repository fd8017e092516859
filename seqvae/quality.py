"""The latent-quality report: what a checkpoint writes, measured (`seqvae report CKPT`).

Statistics say whether z is used; text says whether it is useful. On N held-out sentences
(default 1,000 test sentences of 5-25 words from the checkpoint's data dir):

  reconstruction  decode each posterior mean, greedy and beam 4: corpus BLEU-4 (sacrebleu, on
                  detokenized text), exact match, word F1 (bag of lowercased words)
  interpolation   N/2 pairs (A, B), a 5-point straight path from mu_A to mu_B: BLEU of the first
                  point against A and of the last against B; the judge's perplexity of the inner points
  samples         z from each prior (aggregate, standard) x decoding strategy: the judge's perplexity
                  of the samples over that of the real held-out sentences, distinct-1/2 and self-BLEU
                  (of the first min(N, samples) texts of each row, the real sentences' beside), the invented-word rate (share of words seen < 5 times in the training sentences,
                  beside the same rate for the real sentences) and the copy rate (samples that are a
                  training sentence verbatim); beside them, as a reference, the held-out sentences'
                  posterior means decoded by top-p 0.9 (what a prior that hit the data's codes would give)
  latent          -ELBO / IW-NLL, KL, MI (with its standard error, never a bare negative number), AU,
                  and the IW-NLL's paired difference to the judge's exact NLL on the same sentences

The judge is a language model other than the VAE (seqvae.judge, which shows that it can tell real sentences from
corrupted ones); the text measures live in seqvae.textscores; the held-out sentences and the training words
come from the data dir through seqvae.splittext.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch

from .api import SeqVAE
from .data import SentenceDataset
from .display import format_mi
from .errors import InputError
from .interpolation import interpolate_codes
from .judge import Judge, ReportError
from .metrics import evaluate, paired_difference
from .refine import LR as REFINE_LR
from .refine import POSTERIOR_STEPS
from .refine import STEPS as REFINE_STEPS
from .refine import WEIGHT as REFINE_WEIGHT
from .splittext import TrainingText
from .textinput import texts_sha256
from .textscores import corpus_bleu, diversity, reconstruction_scores, scores_by_length

SAMPLE_STRATEGIES = {  # label -> decoding options
    "greedy": {"strategy": "greedy"},
    "top-p 0.9": {"strategy": "top-p", "top_p": 0.9},
    "top-p 0.9, best of 4": {"strategy": "top-p", "top_p": 0.9, "candidates": 4},
    "sample T=1": {"strategy": "sample"},
}
INTERPOLATION_STEPS = 5  # points on each interpolation path, endpoints included
MAX_TOKENS = 64  # tokens decoded at most for each text (reconstructions, paths, samples)
MARKDOWN_SHA = "markdown_sha256"  # report.json's field naming the report.md written with it (`seqvae report --out`)
REFINED = f"greedy, refined ({REFINE_STEPS} steps)"  # the reconstruction row decoded from SeqVAE.refine's codes


# ---------------------------------------------------------------------------- the report
def _decode(vae: SeqVAE, z: torch.Tensor, **opts) -> list[str]:
    return vae.decode(z, max_len=MAX_TOKENS, **opts)


def reconstruction(vae: SeqVAE, texts: Sequence[str], mu: torch.Tensor, refined: torch.Tensor,
                   show: int) -> dict[str, Any]:
    """Greedy and beam decoding of the posterior means mu (held to the checkpoint's word list if it has one,
    then greedy again without it), and greedy decoding of the refined codes (SeqVAE.refine); both (N, Z)."""
    out: dict[str, Any] = {}
    decodings = [("greedy", mu, {}), ("beam 4", mu, {"strategy": "beam", "num_beams": 4})]
    if vae.words is not None:
        decodings.append(("greedy, any word", mu, {"words": "any"}))
    decodings.append((REFINED, refined, {}))
    for label, z, opts in decodings:
        hyps = _decode(vae, z, **opts)
        out[label] = {**reconstruction_scores(hyps, texts),
                      "examples": [{"input": t, "output": h} for t, h in zip(texts[:show], hyps[:show])]}
        if label == "greedy":
            out[label]["by_length"] = scores_by_length(hyps, texts)
    return out


def interpolation(vae: SeqVAE, texts: Sequence[str], mu: torch.Tensor, refined: torch.Tensor, judge: Judge | None,
                  real_ppl: float | None, show: int) -> dict[str, Any]:
    """Paths between the posterior means mu of pairs of sentences (A = the even ones, B = the odd ones), and
    the same between their refined codes (under "refined")."""
    n = len(texts) // 2
    a, b = list(texts[0::2])[:n], list(texts[1::2])[:n]
    res = _paths(vae, mu[0::2][:n], mu[1::2][:n], a, b, judge, real_ppl, show)
    res["refined"] = _paths(vae, refined[0::2][:n], refined[1::2][:n], a, b, judge, real_ppl, 0)
    return res


def _paths(vae: SeqVAE, za: torch.Tensor, zb: torch.Tensor, a: list[str], b: list[str], judge: Judge | None,
           real_ppl: float | None, show: int) -> dict[str, Any]:
    """Decode INTERPOLATION_STEPS points from each za[i] (A's code) to zb[i] (B's) and score them."""
    n = len(a)
    path = torch.cat([interpolate_codes(za[i], zb[i], INTERPOLATION_STEPS) for i in range(n)])  # (n*S, Z)
    out_text = _decode(vae, path)
    rows = [out_text[i * INTERPOLATION_STEPS : (i + 1) * INTERPOLATION_STEPS] for i in range(n)]
    inner = [s for r in rows for s in r[1:-1]]
    res: dict[str, Any] = {"pairs": n, "steps": INTERPOLATION_STEPS,
                           "bleu_first_vs_a": corpus_bleu([r[0] for r in rows], a),
                           "bleu_last_vs_b": corpus_bleu([r[-1] for r in rows], b),
                           "inner_equal_to_an_endpoint": float(np.mean(
                               [s in (r[0], r[-1]) for r in rows for s in r[1:-1]])),
                           "examples": [{"a": x, "b": y, "path": r} for x, y, r in zip(a[:show], b[:show], rows)]}
    if judge is not None:
        res["inner_judge_ppl"] = judge.ppl(inner)
        res["inner_ppl_ratio"] = res["inner_judge_ppl"] / real_ppl
    return res


def samples(vae: SeqVAE, n: int, judge: Judge | None, real_ppl: float | None, train: TrainingText | None,
            seed: int, show: int, diverse_of: int) -> list[dict[str, Any]]:
    """Each prior and strategy of SAMPLE_STRATEGIES (held to the checkpoint's word list if it has one, and
    then top-p 0.9 without it); distinct-n and self-BLEU of the first `diverse_of` samples (`diversity`)."""
    rows = []
    for prior, label, opts, word in sample_rows(vae):
        texts = vae.sample(n, prior=prior, seed=seed, max_len=MAX_TOKENS, words=word, **opts)
        rows.append({"prior": prior, "strategy": label, "words": word, "n": n,
                     **_text_measures(texts, judge, real_ppl, train, show, diverse_of)})
    return rows


def sample_rows(vae: SeqVAE) -> list[tuple[str, str, dict[str, Any], str]]:
    """(prior, strategy label, decoding options, words) of each row `samples` draws."""
    priors = (["aggregate"] if vae.prior is not None else []) + ["standard"]
    words = ["known", "any"] if vae.words is not None else ["any"]
    return [(prior, label, opts, word) for prior in priors
            for label, opts, word in [(label, opts, words[0]) for label, opts in SAMPLE_STRATEGIES.items()]
            + [("top-p 0.9", SAMPLE_STRATEGIES["top-p 0.9"], w) for w in words[1:]]]


def decoder_reference(vae: SeqVAE, mu: torch.Tensor, judge: Judge | None, real_ppl: float | None,
                      train: TrainingText | None, seed: int, show: int, diverse_of: int) -> dict[str, Any]:
    """The held-out sentences' posterior means mu (N, Z) decoded by top-p 0.9, measured as the samples are:
    codes from where the training sentences' codes lie, which no fitted prior can beat by much. Its distance
    to the prior rows splits their disfluency into the prior's share (codes off the data) and the decoder's."""
    label = "top-p 0.9"
    words = "known" if vae.words is not None else "any"
    texts = _decode(vae, mu, seed=seed, words=words, **SAMPLE_STRATEGIES[label])
    return {"prior": "held-out means", "strategy": label, "words": words, "n": len(texts),
            **_text_measures(texts, judge, real_ppl, train, show, diverse_of)}


def _text_measures(texts: list[str], judge: Judge | None, real_ppl: float | None, train: TrainingText | None,
                   show: int, diverse_of: int) -> dict[str, Any]:
    row: dict[str, Any] = {"mean_words": float(np.mean([len(t.split()) for t in texts])), **diversity(texts, diverse_of)}
    if judge is not None:
        row["judge_ppl"] = judge.ppl(texts)
        row["ppl_ratio"] = row["judge_ppl"] / real_ppl
    if train is not None:
        row["invented_rate"] = train.invented_rate(texts)
        row["copy_rate"] = train.copy_rate(texts)
    row["examples"] = texts[:show]
    return row


def latent(vae: SeqVAE, texts: Sequence[str], judge: Judge | None, iw_samples: int, seed: int,
           iw_refine: int = 0, progress: bool = False) -> dict[str, Any]:
    """NLL / KL / MI / AU on the texts; iw_refine > 0 adds the IW-NLL with fitted proposals
    ("nll_refined"); with a judge, each IW-NLL minus the judge's NLL, paired by sentence."""
    ds = SentenceDataset.from_lists(vae.tokenize(texts))  # each sentence's draws keyed by its tokens: the figures
    res = evaluate(vae.model, ds, k=iw_samples, batch_size=32, seed=seed, refine_steps=iw_refine,  # follow no order
                   per_sentence=True, noise_by="tokens", progress=progress)
    per, per_refined = res.pop("per_sentence_nll"), res.pop("per_sentence_nll_refined", None)
    res.pop("au_variances", None)
    res.pop("sentences_sha256", None)  # of the token ids; the report names its texts (texts_sha256)
    if judge is not None:
        lm_nll, _ = judge.nll(texts)  # in input order, as evaluate's per-sentence NLLs
        res["vs_judge"] = paired_difference(per, lm_nll.tolist())
        if per_refined is not None:
            res["vs_judge_refined"] = paired_difference(per_refined, lm_nll.tolist())
        res["judge_nll"] = float(lm_nll.mean())
    return res


def build_report(vae: SeqVAE, texts: Sequence[str], *, judge: Judge | None = None, train: TrainingText | None = None,
                 n_samples: int = 500, iw_samples: int = 100, iw_refine: int = POSTERIOR_STEPS, seed: int = 0,
                 show: int = 5, note: str = "", progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Every measure of the module docstring, as a JSON-ready dict; progress(line) is told each stage as it
    starts ("[3/7] reconstruction: ..."; minutes each at the default sizes on a large model)."""
    if not vae.latent:
        raise InputError("this checkpoint is a language model (latent=False): it has no latent space to report on")
    texts = list(texts)
    if len(texts) < 2:
        raise ReportError(f"the report needs at least 2 held-out sentences, got {len(texts)}")
    if n_samples < 1 or iw_samples < 1 or iw_refine < 0:
        raise ReportError("--samples and --iw-samples must be >= 1, --iw-refine >= 0")
    rep: dict[str, Any] = {"sentences": len(texts), "texts_sha256": texts_sha256(texts), "note": note, "seed": seed,
                           "prior": vae.prior.meta if vae.prior is not None else None}
    n, total = len(texts), 6 + (judge is not None)
    count = iter(range(1, total + 1))

    def stage(what: str) -> None:
        if progress is not None:
            progress(f"[{next(count)}/{total}] {what}")

    real_ppl = None
    if judge is not None:
        stage(f"the judge's checks and perplexity of {n} real sentences")
        rep["judge"] = {"checkpoint": judge.name, "weights_sha256": judge.weights_sha256, **judge.checks(texts, seed)}
        real = rep["judge"]["real"]  # the checks leave out sentences of fewer than four words; the ratios may not
        real_ppl = real["ppl"] if real["sentences"] == len(texts) else judge.ppl(texts)
        rep["judge"]["held_out_ppl"] = real_ppl  # of every held-out sentence: what "x real" divides by
    if train is not None:
        rep["real_invented_rate"] = train.invented_rate(texts)
    diverse_of = min(len(texts), n_samples)  # every row's diversity on as many texts, the real sentences' too
    rep["real_diversity"] = diversity(texts, diverse_of)
    stage(f"encoding {n} sentences and refining their codes ({REFINE_STEPS} steps)")
    mu, refined = vae.encode(texts).mean, vae.refine(texts)  # (N, Z) each: both sections decode these
    rep["refine"] = {"steps": REFINE_STEPS, "lr": REFINE_LR, "weight": REFINE_WEIGHT}
    stage(f"reconstruction: {n} sentences decoded {3 + (vae.words is not None)} ways")
    rep["reconstruction"] = reconstruction(vae, texts, mu, refined, show)
    stage(f"interpolation: {n // 2} pairs, {INTERPOLATION_STEPS} points each, from the means and the refined codes")
    rep["interpolation"] = interpolation(vae, texts, mu, refined, judge, real_ppl, show=2)
    stage(f"samples: {len(sample_rows(vae))} sets of {n_samples}")
    rep["samples"] = samples(vae, n_samples, judge, real_ppl, train, seed, show, diverse_of)
    stage(f"the held-out means decoded by top-p 0.9 ({n})")
    rep["decoder_reference"] = decoder_reference(vae, mu, judge, real_ppl, train, seed, show, diverse_of)
    stage(f"latent: IW-NLL of {n} sentences with {iw_samples} samples"
          + (f", and with proposals fitted in {iw_refine} steps" if iw_refine else ""))
    rep["latent"] = latent(vae, texts, judge, iw_samples, seed, iw_refine, progress=progress is not None)
    return rep


def not_measured(*, judge: bool, train: bool, prior: bool) -> list[str]:
    """What a report made without a judge, the training sentences or an aggregate prior leaves out, each with how
    to add it (`seqvae report` says it on stderr, the markdown under its title)."""
    out = []
    if not judge:
        out.append("judged fluency (judge PPL, x real, IW-NLL - LM): add --judge LM_CKPT (a language model, "
                   "`seqvae train --lm` on the same data)")
    if not train:
        out.append("invented-word and copy rates: add --data DIR (the model's prepared data dir)")
    if not prior:
        out.append("aggregate-prior samples: run `seqvae fit-prior CKPT` first")
    return out


# ---------------------------------------------------------------------------- formatting
def _f(x: Any, fmt: str = ".1f") -> str:
    return "-" if x is None else format(x, fmt)


def _pct(x: float | None, fmt: str = ".1f") -> str:
    return "-" if x is None else format(100 * x, fmt) + "%"


def to_markdown(rep: dict[str, Any], title: str) -> str:
    """The report (the dict `seqvae report` writes as report.json) as report.md: its tables and examples."""
    lines = [f"# Quality report: {title}", "", f"{rep['sentences']} held-out sentences, seed {rep['seed']}."]
    if rep["note"]:
        lines.append(f"Note: {rep['note']}.")
    skipped = not_measured(judge="judge" in rep, train="real_invented_rate" in rep,
                           prior=rep.get("prior") is not None)
    if skipped:
        lines.append(f"Not measured: {'; '.join(skipped)}.")
    lat = rep["latent"]
    lines += ["", "## Latent", "", "| IW proposal | IW-NLL | -ELBO | KL | MI | AU | judge LM NLL | IW-NLL - LM (± se) |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    stats = (f"{lat['neg_elbo']:.2f} | {lat['kl']:.2f} | "
             f"{format_mi(lat['mi'], lat.get('mi_se'))} (max {lat.get('mi_max', 0):.2f}) | {lat['au']} | "
             f"{_f(lat.get('judge_nll'), '.2f')}")
    rows = [("q(z\\|x)", lat["nll"], lat.get("vs_judge"))]
    if "nll_refined" in lat:
        rows.append((f"fitted, {lat['refine_steps']} steps", lat["nll_refined"], lat.get("vs_judge_refined")))
    for label, nll, vs in rows:
        lines.append(f"| {label} | {nll:.2f} | {stats} | "
                     + (f"{vs['mean_diff']:+.2f} ± {vs['se']:.2f}" if vs else "-") + " |")
    lines += ["", f"IW-NLL with {lat['iw_samples']} samples; MI: the estimate on these N sentences, and log N (the "
              "'max' beside it), which the I(x; z) of N equally likely sentences cannot exceed, nor can its estimate: "
              "an MI at the max says that the codes tell these sentences apart, and that more of them would be needed "
              "to measure more."]
    if "nll_refined" in lat:
        lines.append("The fitted row draws them from a Gaussian fitted to each sentence's posterior (Adam on the "
                     "ELBO from q(z|x), the model fixed: `SeqVAE.score(refine=N)`): the same -log p(x), estimated "
                     "more tightly.")
    lines += ["", "## Reconstruction from the posterior mean", "", "| decoding | BLEU-4 | exact | word F1 |",
              "|---|---:|---:|---:|"]
    ref = rep.get("refine")
    for label, r in rep["reconstruction"].items():
        lines.append(f"| {label} | {r['bleu']:.1f} | {100 * r['exact']:.1f}% | {r['word_f1']:.3f} |")
    by_length = rep["reconstruction"]["greedy"].get("by_length")  # reports written before it have none
    if by_length:
        lines += ["", "Greedy from the mean, by the input's length in words: " + "; ".join(
            f"{b['words']}: BLEU {b['bleu']:.1f}, exact {100 * b['exact']:.1f}% ({b['sentences']})" for b in by_length)
            + "."]
    if ref:
        lines += ["", f"The refined row decodes codes that are not the posterior mean: from it, {ref['steps']} Adam "
                  f"steps (step {ref['lr']:g}) on log p(x|z) + {ref['weight']:g} log q(z|x) (`SeqVAE.refine`)."]
    lines += ["", "| input | greedy reconstruction |", "|---|---|"]
    lines += [f"| {_md(e['input'])} | {_md(e['output'])} |" for e in rep["reconstruction"]["greedy"]["examples"]]
    it = rep["interpolation"]
    lines += ["", "## Interpolation", "",
              f"{it['pairs']} pairs, {it['steps']} points each (lerp of the means, greedy): first point vs A "
              f"BLEU {it['bleu_first_vs_a']:.1f}, last vs B BLEU {it['bleu_last_vs_b']:.1f}; inner points: "
              + (f"judge perplexity {it['inner_judge_ppl']:.1f} (x{it['inner_ppl_ratio']:.2f} the real sentences'), "
                 if "inner_judge_ppl" in it else "")
              + f"{100 * it['inner_equal_to_an_endpoint']:.0f}% equal to an endpoint.", ""]
    if "refined" in it:
        r = it["refined"]
        lines += [f"Between the refined codes: first point vs A BLEU {r['bleu_first_vs_a']:.1f}, last vs B BLEU "
                  f"{r['bleu_last_vs_b']:.1f}; inner points: "
                  + (f"judge perplexity {r['inner_judge_ppl']:.1f} (x{r['inner_ppl_ratio']:.2f}), "
                     if "inner_judge_ppl" in r else "")
                  + f"{100 * r['inner_equal_to_an_endpoint']:.0f}% equal to an endpoint.", ""]
    for ex in it["examples"]:
        lines += [f"- A: {ex['a']}", f"- B: {ex['b']}"] + [f"  {i}. {s}" for i, s in enumerate(ex["path"])]
    lines += ["", "## Prior samples", ""]
    if "judge" in rep:
        j = rep["judge"]
        held_out = j.get("held_out_ppl", j["real"]["ppl"])  # reports written before it have none
        checked = j["real"].get("sentences", rep["sentences"])
        lines.append(f"Judge `{j['checkpoint']}`: perplexity {held_out:.1f} on the real sentences; "
                     + (f"on the {checked} of four or more words that the checks corrupt, {j['real']['ppl']:.1f}; "
                        if checked != rep["sentences"] else "")
                     + ", ".join(f"{k} {j[k]['ppl']:.1f} (real ranked higher {100 * j[k]['real_ranked_higher']:.0f}%)"
                                 for k in ("shuffled", "invented word", "spliced"))
                     + (" — it can tell." if j["passes"] else " — it CANNOT tell: the fluency figures mean little."))
    if "real_invented_rate" in rep:
        lines.append(f"Invented-word rate of the real sentences: {100 * rep['real_invented_rate']:.2f}%.")
    real_div = rep.get("real_diversity")  # reports written before it have none
    if real_div:
        lines.append(f"Diversity of the real sentences: distinct-1 {real_div['distinct_1']:.3f}, distinct-2 "
                     f"{real_div['distinct_2']:.3f}, self-BLEU {real_div['self_bleu']:.1f}; every row's, as these, of "
                     f"its first {real_div['diversity_of']} texts (distinct-n falls as a set grows).")
    lines += ["", "Words: `known` holds decoding to the checkpoint's word list (`seqvae words`), `any` does not.",
              "", "| prior | decoding | words | judge PPL | x real | invented | copies | distinct-1 | distinct-2 | "
              "self-BLEU | length |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    ref_row = rep.get("decoder_reference")  # reports written before it have none
    rows = rep["samples"] + ([ref_row] if ref_row else [])
    for r in rows:
        inv, cp = r.get("invented_rate"), r.get("copy_rate")
        lines.append(f"| {r['prior']} | {r['strategy']} | {r.get('words', 'any')} | {_f(r.get('judge_ppl'))} | "
                     f"{_f(r.get('ppl_ratio'), '.2f')} | "
                     f"{_pct(inv, '.2f')} | {_pct(cp)} | "
                     f"{r['distinct_1']:.3f} | {r['distinct_2']:.3f} | {r['self_bleu']:.1f} | {r['mean_words']:.1f} |")
    if ref_row:
        lines += ["", "The last row is a reference, not a prior: the held-out sentences' own posterior means, decoded "
                  "the same way. A prior that put its codes where the data's lie would come near it, so the gap "
                  "between a prior's row and it is the prior's share of the disfluency, and what it keeps is the "
                  "decoder's."]
    for r in rows:
        source = f"{r['prior']} prior" if r is not ref_row else "the held-out means (reference)"
        lines += ["", f"{source}, {r['strategy']}, {r.get('words', 'any')} words:"] + \
            [f"- {_md(s)}" for s in r["examples"]]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|")


DIVERSE = 0.8  # distinct-2 at or above which a sample set counts as diverse (the goal's bar)


def best_samples(rep: dict[str, Any]) -> dict[str, Any] | None:
    """The judged sample set closest to real text: the lowest perplexity ratio among the diverse sets
    (distinct-2 >= DIVERSE; greedy decoding is fluent but repeats itself), else among all."""
    judged = [r for r in rep["samples"] if "ppl_ratio" in r]
    diverse = [r for r in judged if r["distinct_2"] >= DIVERSE]
    return min(diverse or judged, key=lambda r: r["ppl_ratio"], default=None)


def summary_line(rep: dict[str, Any]) -> str:
    """The headline figures on one line."""
    best = best_samples(rep)
    lat, it = rep["latent"], rep["interpolation"]
    parts = [f"BLEU {rep['reconstruction']['greedy']['bleu']:.1f} (greedy from mu)",
             f"exact {100 * rep['reconstruction']['greedy']['exact']:.1f}%",
             f"interpolation endpoints {it['bleu_first_vs_a']:.1f}/{it['bleu_last_vs_b']:.1f}"]
    if "refined" in it:
        parts.append(f"refined codes: BLEU {rep['reconstruction'][REFINED]['bleu']:.1f}, endpoints "
                     f"{it['refined']['bleu_first_vs_a']:.1f}/{it['refined']['bleu_last_vs_b']:.1f}")
    parts += [f"KL {lat['kl']:.1f}", f"MI {format_mi(lat['mi'], lat.get('mi_se'))}", f"AU {lat['au']}"]
    if best is not None:
        parts.append(f"samples x{best['ppl_ratio']:.2f} real PPL, distinct-2 {best['distinct_2']:.2f} "
                     f"({best['prior']}, {best['strategy']})")
    if "vs_judge" in lat:
        parts.append(f"IW-NLL - LM {lat['vs_judge']['mean_diff']:+.2f}"
                     + (f" ({lat['vs_judge_refined']['mean_diff']:+.2f} with fitted proposals)"
                        if "vs_judge_refined" in lat else ""))
    return "; ".join(parts)
