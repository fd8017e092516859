"""Latent steering: move a sentence's posterior mean along a sentiment classifier's direction in z,
decode it, and check whether the classifier's label flips while the sentence stays close.

    seqvae steer checkpoints/imdb "The plot was dull." --to positive --strength 2
    seqvae steer checkpoints/imdb --report 200 --out results/steer_report.json   # flip rate vs closeness

z' = μ ± strength · unit · direction, where the direction is the saved linear head's weights
mapped back to latent space (LinearHead.latent_direction) and the unit the spread of training
sentences' codes along it; both codes are decoded greedily and the steered sentence is encoded
and classified again. The head comes from `seqvae classify fit CKPT`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .calibrate import length_scale
from .config import ClassifyError
from .data import load_reviews
from .head import scaled_proba
from .heads import check_width
from .linear import LinearHead

MAX_STRENGTH = 1000.0  # in units of the codes' spread (or of the prior's std): a thousand is far off any sentence


def unigram_f1(a: Sequence[str], b: Sequence[str]) -> float:
    """Token overlap of two token lists: F1 of clipped unigram matches (1.0 for two empty lists)."""
    if not a and not b:
        return 1.0
    common = sum((Counter(a) & Counter(b)).values())
    if common == 0:
        return 0.0
    p, r = common / len(a), common / len(b)
    return 2 * p * r / (p + r)


@dataclass
class SteerResult:
    text: str                 # the input sentence (as the corpus cleans it)
    to: str                   # target class
    strength: float           # how far, in `unit`s
    unit: str                 # "std" or "l2"
    distance: float           # L2 length of the move in z-space
    reconstruction: str       # greedy decode of μ
    steered: str              # greedy decode of μ ± distance · direction (toward `to`)
    label_before: str         # classifier on μ
    p_target_before: float    # p(to) of the classifier on μ
    p_target_latent: float    # classifier on the moved code itself
    label_after: str          # classifier on the steered sentence, encoded again
    p_target_after: float     # p(to) of the steered sentence, encoded again
    flipped: bool             # label_after != label_before
    overlap_f1: float         # unigram F1 of steered vs reconstruction

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def steer(vae, head: LinearHead, text: str, *, to: str | None = "positive", strength: float = 2.0,
          unit: str = "std", max_len: int = 40) -> SteerResult:
    """Move a sentence's posterior mean toward class `to` (None: the class the head does not give
    the posterior mean) along the classifier's latent direction.

    z' = μ ± strength · u · d, where d is the unit vector of the LR weights mapped back to
    (unstandardised) latent space and u is the unit: "std" = the std of training sentences'
    posterior means along d (so strength 2 moves two typical spreads), "l2" = 1 (plain L2
    distance in z, which is also the prior's std along any direction). Both codes are decoded
    greedily; the steered sentence is encoded again and classified to see whether its label flipped.
    The probabilities are those of one sentence: with the head's length calibration (calibrate.py)
    when it has one, as `seqvae classify predict` gives them.
    """
    import torch

    from ..sentences import review_to_sentences

    if to is not None and to not in head.classes:
        raise ClassifyError(f"--to must be one of {', '.join(head.classes)}, got {to!r}")
    if unit not in ("std", "l2"):
        raise ClassifyError(f"unit must be 'std' or 'l2', got {unit!r}")
    if not (np.isfinite(strength) and 0 <= strength <= MAX_STRENGTH):
        raise ClassifyError(f"strength must be a number in [0, {MAX_STRENGTH:g}] (--to gives the direction), "
                            f"got {strength}")
    sentence = " ".join(review_to_sentences(text)) or text.strip()
    if not sentence:
        raise ClassifyError("nothing to steer: the text is empty")
    check_width(head, vae)
    mu = vae.encode([sentence]).mu.float().cpu().numpy()  # (1, Z)
    d = head.latent_direction()  # (Z,) toward the positive class
    s1 = float(length_scale(head.meta.get("length_scales"), np.ones(1))[0])  # one sentence (calibrate.py)

    def proba(codes: np.ndarray) -> np.ndarray:  # (N, 2) for N one-sentence codes: their mean μ is μ
        return scaled_proba(head.decision(codes), s1)

    p_classes = proba(mu)[0]  # (2,) for μ
    if to is None:
        to = head.classes[0] if p_classes[1] > 0.5 else head.classes[1]
    sign = 1.0 if head.classes.index(to) == 1 else -1.0
    scale = head.meta.get("direction_std") if unit == "std" else 1.0
    if scale is None:
        raise ClassifyError("the classifier head has no direction_std (refit it with `seqvae classify fit`) "
                            "or use unit='l2'")
    distance = float(strength * scale)
    z = np.concatenate([mu, mu + sign * distance * d[None].astype(np.float32)])  # (2, Z): original, steered
    rec, steered = vae.decode(torch.from_numpy(z).to(vae.device), strategy="greedy", max_len=max_len)

    def p_target(codes: np.ndarray) -> float:
        return float(proba(codes)[0, head.classes.index(to)])

    p_before = float(p_classes[head.classes.index(to)])
    p_latent = p_target(z[1:])
    if steered.strip():
        p_after = p_target(vae.encode([steered]).mu.float().cpu().numpy())
    else:
        p_after = float(p_latent)  # nothing decoded: nothing to re-encode, fall back to the code's label
    label = lambda p: to if p > 0.5 else head.classes[1 - head.classes.index(to)]  # noqa: E731
    return SteerResult(sentence, to, float(strength), unit, distance, rec, steered, label(p_before),
                       float(p_before), float(p_latent), label(p_after), p_after, label(p_after) != label(p_before),
                       unigram_f1(steered.split(), rec.split()))


def report_sentences(n: int, *, seed: int = 0, source: str = "local", data_root: str | Path | None = None,
                     min_words: int = 5, max_words: int = 30) -> list[str]:
    """n test sentences for a steering report: the first sentence of min..max words from each of a
    stratified draw of test reviews (half negative, half positive reviews), in a seeded order."""
    from ..sentences import review_to_sentences

    texts, _ = load_reviews("test", source=source, data_root=data_root, max_reviews=min(3 * n, 25000), seed=seed)
    order = np.random.default_rng([seed, 8191]).permutation(len(texts))  # the draw comes in file order: negatives first
    out = []
    for text in (texts[i] for i in order):
        first = next((s for s in review_to_sentences(text) if min_words <= len(s.split()) <= max_words), None)
        if first is not None:
            out.append(first)
        if len(out) == n:
            return out
    raise ClassifyError(f"only {len(out)} test reviews have a sentence of {min_words}-{max_words} words; asked for {n}")


def steering_report(vae, head: LinearHead, sentences: Sequence[str], *,
                    strengths: Sequence[float] = (0.0, 1.0, 2.0, 4.0),
                    unit: str = "std", max_len: int = 40, close_f1: float = 0.5) -> dict[str, Any]:
    """How often steering flips the classifier's label while the sentence stays close.

    Each sentence is steered toward the class the head does not give its posterior mean, at every
    strength. Per strength: the flip rate (label of the re-encoded steered sentence differs), the
    mean unigram F1 between steered sentence and reconstruction, and the rate of flips that stay
    close (F1 >= close_f1). Strength 0 decodes the posterior mean itself: its flips (the label
    changes by reconstruction alone) are the floor the other strengths are read against.
    """
    if not sentences:
        raise ClassifyError("no sentences to steer")
    rows = [[steer(vae, head, text, to=None, strength=float(st), unit=unit, max_len=max_len) for st in strengths]
            for text in sentences]
    summary = {}
    for j, st in enumerate(strengths):
        col = [r[j] for r in rows]
        summary[f"{float(st):g}"] = {
            "flip_rate": float(np.mean([r.flipped for r in col])),
            "mean_overlap_f1": float(np.mean([r.overlap_f1 for r in col])),
            "flipped_and_close_rate": float(np.mean([r.flipped and r.overlap_f1 >= close_f1 for r in col])),
            "mean_p_target_after": float(np.mean([r.p_target_after for r in col])),
        }
    return {"sentences": len(rows), "unit": unit, "close_f1": close_f1, "strengths": summary,
            "examples": [[r.to_dict() for r in row] for row in rows]}


def steering_markdown(report: dict[str, Any]) -> str:
    lines = [f"| strength ({report['unit']}) | label flipped | mean unigram F1 vs reconstruction | "
             f"flipped with F1 >= {report['close_f1']:g} | mean p(target) after |", "|---:|---:|---:|---:|---:|"]
    for st, r in report["strengths"].items():
        lines.append(f"| {st} | {100 * r['flip_rate']:.1f}% | {r['mean_overlap_f1']:.2f} | "
                     f"{100 * r['flipped_and_close_rate']:.1f}% | {r['mean_p_target_after']:.2f} |")
    lines += ["", f"{report['sentences']} test sentences, each steered toward the class the head does not give it; "
              "the steered sentence is encoded again and classified."]
    return "\n".join(lines) + "\n"
