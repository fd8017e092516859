"""How good is a saved sentiment head? Accuracy, log-loss and calibration on labelled reviews,
whole and cut to k-sentence snippets: the numbers docs/results.md reports for the shipped heads.

    seqvae classify evaluate checkpoints/imdb --head set                    # 25,000 test reviews
    seqvae classify evaluate checkpoints/imdb --head set --snippets 1,3,8   # and short texts

A head scores a text as `predict` does: the text's units encoded to posterior means, the head's
logit, and with the head's length calibration (calibrate.py) that logit scaled by the text's
length. A k-sentence snippet is k random sentences of a review with at least k, in their order,
joined by spaces, and labelled with the review's label: a noisy label (one sentence is often plot
summary) that shows how sure a head may be of a short text. Each row reports, raw and calibrated:
accuracy (%; the same both ways, a positive scale never flips a verdict), log-loss (nats per
text), ECE (%, expected calibration error over ten equal bins of confidence in [0.5, 1]) and the
mean confidence (%).
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

from ..sentences import review_to_sentences
from .config import ClassifyError
from .features import sentence_features

ECE_BINS = 10


def snippet_texts(texts: Sequence[str], labels: np.ndarray, k: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """(k random sentences of each review with at least k, in order, joined by spaces; their
    reviews' labels). Seeded by (seed, k): the same snippets on every run."""
    return _snippets([review_to_sentences(t) for t in texts], labels, k, seed)


def _snippets(sentences: Sequence[list[str]], labels: np.ndarray, k: int, seed: int) -> tuple[list[str], np.ndarray]:
    """snippet_texts from the reviews' sentences, split once for every k."""
    if k < 1:
        raise ClassifyError(f"a snippet needs at least one sentence, got k={k}")
    rng = np.random.default_rng([seed, 6007, k])
    out, keep = [], []
    for i, sents in enumerate(sentences):
        if len(sents) >= k:
            out.append(" ".join(sents[j] for j in np.sort(rng.permutation(len(sents))[:k])))
            keep.append(i)
    return out, np.asarray(labels)[np.asarray(keep, dtype=np.int64)]


def logit_metrics(z: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """accuracy (%), log-loss (nats), ECE (%) and mean confidence (%) of positive-class logits z
    against labels y (0/1); a logit of exactly 0 reads as negative, as the heads' predict does."""
    z, y = np.asarray(z, dtype=np.float64), np.asarray(y)
    if not len(z):
        raise ClassifyError("nothing to score: no text with a label")
    p = 1.0 / (1.0 + np.exp(-z))
    conf, correct = np.maximum(p, 1.0 - p), (z > 0) == (y == 1)
    bins = np.minimum(((conf - 0.5) * 2 * ECE_BINS).astype(np.int64), ECE_BINS - 1)
    ece = sum(np.mean(bins == b) * abs(correct[bins == b].mean() - conf[bins == b].mean())
              for b in range(ECE_BINS) if np.any(bins == b))
    return {"accuracy": round(100 * float(correct.mean()), 3),
            "log_loss": round(float(np.mean(np.logaddexp(0.0, -z * (2 * y - 1)))), 4),
            "ece": round(100 * float(ece), 2), "confidence": round(100 * float(conf.mean()), 2)}


def evaluate_head(vae, head, texts: Sequence[str], labels: np.ndarray, *, snippets: Sequence[int] = (),
                  seed: int = 0, split: str = "test", model_id: str | None = None, cache_dir=None,
                  batch_size: int = 256, progress: bool = True) -> list[dict[str, Any]]:
    """One row per text set, the whole reviews first, then one per k in `snippets`: {"texts":
    "reviews" or k, "n": texts scored, "units_per_text", "raw": logit_metrics, "calibrated": the
    same after the head's length scales (None for a head without them), "seconds"}. The unit
    means are cached under `split` (snippets: split-k{k}) as every other feature is."""
    labels = np.asarray(labels)
    if len(labels) != len(texts):
        raise ClassifyError(f"{len(texts)} texts but {len(labels)} labels")
    calibrated = bool(head.meta.get("length_scales"))
    sentences = [review_to_sentences(t) for t in texts] if snippets else []
    longest = max(map(len, sentences), default=0)
    if too_long := [k for k in snippets if k > longest]:
        raise ClassifyError(f"--snippets {too_long[0]}: no review here has {too_long[0]} sentences "
                            f"(the longest has {longest})")
    rows = []
    for k in ["reviews", *snippets]:
        t0 = time.perf_counter()
        part, y = (list(texts), labels) if k == "reviews" else _snippets(sentences, labels, k, seed)
        S = sentence_features(vae, part, unit=head.unit, split=split if k == "reviews" else f"{split}-k{k}",
                              model_id=model_id, cache_dir=cache_dir, batch_size=batch_size, progress=progress)
        rows.append({"texts": k, "n": int(len(y)), "units_per_text": round(float(S.units_per_review().mean()), 2),
                     "raw": logit_metrics(head.logits(S), y),
                     "calibrated": logit_metrics(head.calibrated_logits(S), y) if calibrated else None,
                     "seconds": round(time.perf_counter() - t0, 1)})
    return rows


def evaluation_markdown(rows: Sequence[dict[str, Any]], unit: str = "sentence") -> str:
    """The rows as a markdown table, raw → calibrated where the head is calibrated."""
    def pair(r, key, fmt):
        raw = format(r["raw"][key], fmt)
        return raw if r["calibrated"] is None else f"{raw} → {format(r['calibrated'][key], fmt)}"

    lines = [f"| texts | n | {unit}s per text | accuracy | log-loss | ECE | mean confidence |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        what = "whole reviews" if r["texts"] == "reviews" else f"{r['texts']}-sentence snippets"
        lines.append(f"| {what} | {r['n']} | {r['units_per_text']:.1f} | {r['raw']['accuracy']:.2f} | "
                     f"{pair(r, 'log_loss', '.3f')} | {pair(r, 'ece', '.1f')} | {pair(r, 'confidence', '.1f')} |")
    return "\n".join(lines) + "\n"
