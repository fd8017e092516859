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

The judge is a language model other than the VAE: a `--lm` checkpoint (checkpoints/imdb-lm is the
same-budget subword GRU-LM; it saw the training sentences, none of the held-out ones). The report
shows that it can tell: real sentences must score a lower perplexity than the same sentences
word-shuffled, with one word replaced by an invented string of subword pieces, and two half
sentences spliced together.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import sacrebleu
import torch
from sacrebleu.metrics.helpers import extract_all_word_ngrams

from . import atomic
from .api import InputError, SeqVAE, interpolate_codes
from .data import SentenceDataset, collate
from .display import format_mi
from .metrics import evaluate, paired_difference
from .prepare import WORDS_CACHE  # written into the data dir: training word counts and sentence hashes
from .refine import LR as REFINE_LR
from .refine import POSTERIOR_STEPS
from .refine import STEPS as REFINE_STEPS
from .refine import WEIGHT as REFINE_WEIGHT
from .tokenizer import WordTokenizer, load_tokenizer
from .wordlist import MIN_COUNT, WORD, KnownWords

SAMPLE_STRATEGIES = {  # label -> decoding options
    "greedy": {"strategy": "greedy"},
    "top-p 0.9": {"strategy": "top-p", "top_p": 0.9},
    "top-p 0.9, best of 4": {"strategy": "top-p", "top_p": 0.9, "candidates": 4},
    "sample T=1": {"strategy": "sample"},
}
INVENTED_BELOW = MIN_COUNT  # a word seen fewer times than this in the training sentences is "invented"
LENGTH_BUCKETS = ((1, 8), (9, 12), (13, 17), (18, math.inf))  # words (inclusive): greedy BLEU from mu by length
INTERPOLATION_STEPS = 5  # points on each interpolation path, endpoints included
JUDGED_LISTS = 64  # lists of texts whose judge scores are kept for a second call (then forgotten all at once)
MARKDOWN_SHA = "markdown_sha256"  # report.json's field naming the report.md written with it (`seqvae report --out`)
REFINED = f"greedy, refined ({REFINE_STEPS} steps)"  # the reconstruction row decoded from SeqVAE.refine's codes


class ReportError(ValueError):
    """The report cannot run as asked (one-line message)."""


# ---------------------------------------------------------------------------- text measures
def words(text: str) -> list[str]:
    """Lowercased words: runs of letters (with an inner apostrophe), digits, or other single symbols."""
    return re.findall(rf"{WORD}|\d+|[^\sa-z\d]", text.lower())


def alpha_words(text: str) -> list[str]:
    return [w for w in words(text) if w[0].isalpha()]


def corpus_bleu(hyps: Sequence[str], refs: Sequence[str]) -> float:
    """Corpus BLEU-4 of hypotheses against one reference each (sacrebleu, 13a tokenization)."""
    if len(hyps) != len(refs) or not hyps:
        raise ValueError("corpus_bleu needs as many hypotheses as references, at least one")
    return float(sacrebleu.corpus_bleu(list(hyps), [list(refs)]).score)


def word_f1(hyp: str, ref: str) -> float:
    h, r = Counter(words(hyp)), Counter(words(ref))
    overlap = sum((h & r).values())
    if not overlap:
        return 0.0
    p, q = overlap / sum(h.values()), overlap / sum(r.values())
    return 2 * p * q / (p + q)


def _norm(text: str) -> str:
    return " ".join(text.split())


def reconstruction_scores(hyps: Sequence[str], refs: Sequence[str]) -> dict[str, float]:
    return {"bleu": corpus_bleu(hyps, refs),
            "exact": float(np.mean([_norm(h) == _norm(r) for h, r in zip(hyps, refs)])),
            "word_f1": float(np.mean([word_f1(h, r) for h, r in zip(hyps, refs)]))}


def scores_by_length(hyps: Sequence[str], refs: Sequence[str]) -> list[dict[str, Any]]:
    """reconstruction_scores per LENGTH_BUCKETS of the reference's whitespace words (empty buckets left out):
    a model that keeps a short sentence and only the gist of a long one shows it here."""
    out = []
    for lo, hi in LENGTH_BUCKETS:
        pick = [i for i, r in enumerate(refs) if lo <= len(r.split()) <= hi]
        if pick:
            label = f"{lo}+" if hi == math.inf else f"{lo}-{hi}"
            out.append({"words": label, "sentences": len(pick),
                        **reconstruction_scores([hyps[i] for i in pick], [refs[i] for i in pick])})
    return out


def distinct_n(texts: Sequence[str], n: int) -> float:
    grams = [tuple(w[i : i + n]) for w in map(words, texts) for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def diversity(texts: Sequence[str], most: int) -> dict[str, Any]:
    """distinct-1/2 and self-BLEU of the first `most` texts, and how many that is: distinct-n falls as a set grows
    (the flagship's real held-out sentences: distinct-2 0.80 of 500, 0.74 of 1,000), so each row of the report is
    measured on as many texts."""
    texts = list(texts)[:most]
    return {"distinct_1": distinct_n(texts, 1), "distinct_2": distinct_n(texts, 2), "self_bleu": self_bleu(texts),
            "diversity_of": len(texts)}


def self_bleu(texts: Sequence[str], most: int = 200) -> float:
    """Mean sentence BLEU of each of the first `most` texts against the others (Zhu et al. 2018)."""
    texts = list(texts)[:most]
    if len(texts) < 2:
        return 0.0
    return float(np.mean(leave_one_out_bleu(texts)))


def leave_one_out_bleu(texts: Sequence[str]) -> list[float]:
    """sacrebleu.sentence_bleu(texts[i], every other text).score for each i (at least two texts), the same
    numbers from each text tokenized and counted once: sentence_bleu itself tokenizes its N - 1 references on
    every call (N^2 tokenizations). A reference set's count of an n-gram is its largest count in one of them,
    so each n-gram keeps its two largest counts and the text with the largest; its reference length, the
    closest to the hypothesis' (the shorter on a tie), as sacrebleu picks it."""
    bleu = sacrebleu.BLEU(tokenize=sacrebleu.BLEU.TOKENIZER_DEFAULT, effective_order=True)  # sentence_bleu's
    order = bleu.max_ngram_order
    counted = [extract_all_word_ngrams(bleu.tokenizer(t.rstrip()), 1, order) for t in texts]  # (Counter, length)
    top: dict[tuple[str, ...], list[int]] = {}  # n-gram -> [largest count, its text, second largest count]
    for i, (grams, _) in enumerate(counted):
        for gram, c in grams.items():
            t = top.get(gram)
            if t is None:
                top[gram] = [c, i, 0]
            elif c > t[0]:
                top[gram] = [c, i, t[0]]
            elif c > t[2]:
                t[2] = c
    lengths = [n for _, n in counted]
    scores = []
    for i, (grams, n) in enumerate(counted):
        correct, total = [0] * order, [0] * order
        for gram, c in grams.items():
            best, where, second = top[gram]
            total[len(gram) - 1] += c
            correct[len(gram) - 1] += min(c, second if where == i else best)
        ref_len = min((abs(n - m), m) for j, m in enumerate(lengths) if j != i)[1]
        scores.append(bleu.compute_bleu(correct, total, n, ref_len, smooth_method=bleu.smooth_method,
                                        smooth_value=bleu.smooth_value, effective_order=bleu.effective_order,
                                        max_ngram_order=order).score)
    return scores


# ---------------------------------------------------------------------------- the judge
class Judge:
    """A language-model checkpoint that scores text: perplexity per token, EOS included."""

    def __init__(self, lm: SeqVAE, name: str):
        if lm.latent:
            raise ReportError(f"{name}: the judge must be a language model checkpoint (trained with --lm)")
        self.lm, self.name = lm, name
        self._scored: dict[tuple[str, ...], tuple[np.ndarray, np.ndarray]] = {}  # nll's answers (see nll)
        tok = lm.tokenizer
        self._pieces = [p for p in (tok.id_to_piece(i).lstrip("\u2581") for i in range(4, len(tok)))
                        if p.isalpha() and len(p) >= 2]

    def nll(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(NLL in nats, tokens incl. EOS) per text; an empty text (a decode that ended at once) scores as
        EOS alone: -log p(EOS | BOS), one token. The same texts again (the report scores its held-out sentences
        for the checks, the ratios' denominator and the latent section) are answered from the first call: the
        LM's score of a list is the same every time."""
        texts = list(texts)
        key = tuple(texts)
        if key not in self._scored:
            if len(self._scored) >= JUDGED_LISTS:
                self._scored.clear()
            self._scored[key] = self._nll(texts)
        nll, tok = self._scored[key]
        return nll.copy(), tok.copy()

    def _nll(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        nll, tok = np.full(len(texts), np.nan), np.ones(len(texts))
        full = [i for i, t in enumerate(texts) if t.strip()]
        if full:
            kept = [texts[i] for i in full]
            nll[full] = self.lm.score(kept).double().numpy()
            tok[full] = [len(i) + 1 for i in self.lm.tokenize(kept)]
        if len(full) < len(texts):
            nll[[i for i, t in enumerate(texts) if not t.strip()]] = self._eos_alone()
        return nll, tok

    def _eos_alone(self) -> float:
        cfg, model = self.lm.model.cfg, self.lm.model
        batch = collate([[]], pad_id=cfg.pad_id, bos_id=cfg.bos_id, eos_id=cfg.eos_id).to(model.device)
        with torch.no_grad(), model.evaluating():
            return float(model.token_nll(batch.dec_in, batch.target, None)[0])

    def ppl(self, texts: Sequence[str]) -> float:
        nll, tok = self.nll(texts)
        return math.exp(nll.sum() / tok.sum())

    def invented_word(self, rng: np.random.Generator) -> str:
        """A string of 2-3 subword pieces of letters glued into one word the corpus never had. A word-level
        judge would read any such string as its unknown word, a frequent token: it gets a random word of its
        vocabulary instead (mostly rare ones), a corruption it can see."""
        if isinstance(self.lm.tokenizer, WordTokenizer):
            return str(rng.choice(self._pieces))
        return "".join(rng.choice(self._pieces, size=int(rng.integers(2, 4))))

    def checks(self, sentences: Sequence[str], seed: int = 0) -> dict[str, Any]:
        """The judge's perplexity on real sentences and three corruptions of them, and for each corruption
        the share of sentences it ranks below the real one (per-token NLL); all on the sentences of four or more
        words ("sentences" under "real" says how many)."""
        rng = np.random.default_rng(seed)
        real = checked_sentences(sentences)
        split = [s.split() for s in real]
        corrupt = {
            "shuffled": [" ".join(rng.permutation(w)) for w in split],
            "invented word": [" ".join(w[:j] + [self.invented_word(rng)] + w[j + 1 :])
                              for w in split for j in [int(rng.integers(len(w)))]],
            "spliced": [" ".join(a[: len(a) // 2] + b[len(b) // 2 :]) for a, b in zip(split, split[1:] + split[:1])],
        }
        nll, tok = self.nll(real)
        out: dict[str, Any] = {"real": {"ppl": math.exp(nll.sum() / tok.sum()), "sentences": len(real)}}
        for name, texts in corrupt.items():
            c_nll, c_tok = self.nll(texts)
            out[name] = {"ppl": math.exp(c_nll.sum() / c_tok.sum()),
                         "real_ranked_higher": float(np.mean(nll / tok < c_nll / c_tok))}
        out["passes"] = all(out[k]["ppl"] > out["real"]["ppl"] for k in corrupt)
        return out


def checked_sentences(sentences: Sequence[str], where: str = "the held-out sentences") -> list[str]:
    """The sentences the judge checks corrupt: those of four or more words (a shuffle or a splice of fewer
    says little); fewer than two of them is a ReportError, which callers can raise before loading anything."""
    real = [s for s in sentences if len(s.split()) >= 4]
    if len(real) < 2:
        raise ReportError(f"the judge checks need at least two sentences of four or more words ({where}: {len(real)})")
    return real


# ---------------------------------------------------------------------------- training vocabulary
class TrainingText:
    """Word counts and sentence hashes of a data dir's train split (cached in the data dir)."""

    def __init__(self, counts: dict[str, int], hashes: np.ndarray):
        hashes = np.asarray(hashes, dtype=np.uint64)
        if not (hashes[1:] > hashes[:-1]).all():  # copy_rate looks them up in order (a data dir's cache is)
            hashes = np.unique(hashes)
        self.counts, self.hashes = counts, hashes

    @staticmethod
    def _hash(texts: Sequence[str]) -> np.ndarray:
        return np.array([int.from_bytes(hashlib.blake2b(_norm(t).lower().encode(), digest_size=8).digest(), "little")
                         for t in texts], dtype=np.uint64)

    @classmethod
    def from_data_dir(cls, data_dir: str | Path) -> "TrainingText":
        """The word counts and sentence hashes of a prepared data dir's train split, cached in the data dir
        (prepare.WORDS_CACHE) and counted again when train.npz is newer than the cache."""
        d = Path(data_dir)
        cache = d / WORDS_CACHE
        if cache.is_file() and cache.stat().st_mtime >= (d / "train.npz").stat().st_mtime:
            z = np.load(cache, allow_pickle=False)
            return cls(dict(zip(z["words"].tolist(), z["counts"].tolist())), z["hashes"])
        tok, train = load_tokenizer(d), SentenceDataset.from_dir(d, "train")
        texts = [tok.decode(train[i].tolist()) for i in range(len(train))]
        counts = Counter(w for t in texts for w in alpha_words(t))
        hashes = np.unique(cls._hash(texts))
        keys = sorted(counts)

        def write(path: Path) -> None:
            with open(path, "wb") as f:
                np.savez_compressed(f, words=np.array(keys), counts=np.array([counts[k] for k in keys]), hashes=hashes)

        atomic.write_with(cache, write)
        return cls(dict(counts), hashes)

    def invented_rate(self, texts: Sequence[str]) -> float:
        ws = [w for t in texts for w in alpha_words(t)]
        return float(np.mean([self.counts.get(w, 0) < INVENTED_BELOW for w in ws])) if ws else 0.0

    def copy_rate(self, texts: Sequence[str]) -> float:
        """The share of texts that are a training sentence (by hash), looked up by bisection in the sorted hashes
        (np.isin sorted all the training hashes again on every call: 0.7 s for IMDB's 843,002, 12 calls a report)."""
        if not texts or not len(self.hashes):
            return 0.0
        h = self._hash(texts)
        at = np.minimum(np.searchsorted(self.hashes, h), len(self.hashes) - 1)  # where each would stand
        return float((self.hashes[at] == h).mean())

    def known_words(self, min_count: int = MIN_COUNT) -> KnownWords:
        """The words used at least `min_count` times: the list a checkpoint's decoding keeps to."""
        return KnownWords.from_counts(self.counts, min_count)


# ---------------------------------------------------------------------------- held-out sentences
def held_out(data_dir: str | Path, n: int, seed: int = 0, min_words: int = 5,
             max_words: int = 25) -> tuple[list[str], str]:
    """n test sentences of min..max words (shuffled with seed), and a note when fewer exist."""
    d = Path(data_dir)
    tok, test = load_tokenizer(d), SentenceDataset.from_dir(d, "test")
    texts = [tok.decode(test[i].tolist()) for i in range(len(test))]
    texts = [t for t in texts if min_words <= len(t.split()) <= max_words]
    rng = np.random.default_rng(seed)
    texts = [texts[i] for i in rng.permutation(len(texts))]
    note = ""
    if len(texts) < n:
        note = f"asked for {n} sentences, the test split has {len(texts)} of {min_words}-{max_words} words: using all"
    return texts[:n], note


# ---------------------------------------------------------------------------- the report
def _decode(vae: SeqVAE, z: torch.Tensor, **opts) -> list[str]:
    return vae.decode(z, max_len=64, **opts)


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
    priors = (["aggregate"] if vae.prior is not None else []) + ["standard"]
    words = ["known", "any"] if vae.words is not None else ["any"]
    rows = []
    for prior in priors:
        for label, opts, word in [(label, opts, words[0]) for label, opts in SAMPLE_STRATEGIES.items()] + \
                [("top-p 0.9", SAMPLE_STRATEGIES["top-p 0.9"], w) for w in words[1:]]:
            texts = vae.sample(n, prior=prior, seed=seed, max_len=64, words=word, **opts)
            rows.append({"prior": prior, "strategy": label, "words": word, "n": n,
                         **_text_measures(texts, judge, real_ppl, train, show, diverse_of)})
    return rows


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
           iw_refine: int = 0) -> dict[str, Any]:
    """NLL / KL / MI / AU on the texts; iw_refine > 0 adds the IW-NLL with fitted proposals
    ("nll_refined"); with a judge, each IW-NLL minus the judge's NLL, paired by sentence."""
    ds = SentenceDataset.from_lists(vae.tokenize(texts))  # each sentence's draws keyed by its tokens: the figures
    res = evaluate(vae.model, ds, k=iw_samples, batch_size=32, seed=seed, refine_steps=iw_refine,  # follow no order
                   per_sentence=True, noise_by="tokens")
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


def texts_sha256(texts: Sequence[str]) -> str:
    """sha256 of the held-out sentences, in order: reports set side by side must have been measured on the same."""
    return hashlib.sha256(json.dumps(list(texts), ensure_ascii=False).encode("utf-8")).hexdigest()


def build_report(vae: SeqVAE, texts: Sequence[str], *, judge: Judge | None = None, train: TrainingText | None = None,
                 n_samples: int = 500, iw_samples: int = 100, iw_refine: int = POSTERIOR_STEPS, seed: int = 0,
                 show: int = 5, note: str = "") -> dict[str, Any]:
    """Every measure of the module docstring, as a JSON-ready dict."""
    if not vae.latent:
        raise InputError("this checkpoint is a language model (latent=False): it has no latent space to report on")
    texts = list(texts)
    if len(texts) < 2:
        raise ReportError(f"the report needs at least 2 held-out sentences, got {len(texts)}")
    if n_samples < 1 or iw_samples < 1 or iw_refine < 0:
        raise ReportError("--samples and --iw-samples must be >= 1, --iw-refine >= 0")
    rep: dict[str, Any] = {"sentences": len(texts), "texts_sha256": texts_sha256(texts), "note": note, "seed": seed,
                           "prior": vae.prior.meta if vae.prior is not None else None}
    real_ppl = None
    if judge is not None:
        rep["judge"] = {"checkpoint": judge.name, **judge.checks(texts, seed)}
        real = rep["judge"]["real"]  # the checks leave out sentences of fewer than four words; the ratios may not
        real_ppl = real["ppl"] if real["sentences"] == len(texts) else judge.ppl(texts)
        rep["judge"]["held_out_ppl"] = real_ppl  # of every held-out sentence: what "x real" divides by
    if train is not None:
        rep["real_invented_rate"] = train.invented_rate(texts)
    diverse_of = min(len(texts), n_samples)  # every row's diversity on as many texts, the real sentences' too
    rep["real_diversity"] = diversity(texts, diverse_of)
    mu, refined = vae.encode(texts).mean, vae.refine(texts)  # (N, Z) each: both sections decode these
    rep["refine"] = {"steps": REFINE_STEPS, "lr": REFINE_LR, "weight": REFINE_WEIGHT}
    rep["reconstruction"] = reconstruction(vae, texts, mu, refined, show)
    rep["interpolation"] = interpolation(vae, texts, mu, refined, judge, real_ppl, show=2)
    rep["samples"] = samples(vae, n_samples, judge, real_ppl, train, seed, show, diverse_of)
    rep["decoder_reference"] = decoder_reference(vae, mu, judge, real_ppl, train, seed, show, diverse_of)
    rep["latent"] = latent(vae, texts, judge, iw_samples, seed, iw_refine)
    return rep


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
