"""Text measured against text, as the quality report measures it: words, corpus BLEU-4 (sacrebleu), exact
match, word F1 (also by the reference's length), distinct-n and self-BLEU."""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any, Sequence

import numpy as np
import sacrebleu
from sacrebleu.metrics.helpers import extract_all_word_ngrams

from .wordlist import WORD

LENGTH_BUCKETS = ((1, 8), (9, 12), (13, 17), (18, math.inf))  # words (inclusive): greedy BLEU from mu by length


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


def norm_spaces(text: str) -> str:
    return " ".join(text.split())


def reconstruction_scores(hyps: Sequence[str], refs: Sequence[str]) -> dict[str, float]:
    return {"bleu": corpus_bleu(hyps, refs),
            "exact": float(np.mean([norm_spaces(h) == norm_spaces(r) for h, r in zip(hyps, refs)])),
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
