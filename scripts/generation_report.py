"""Generation report for a checkpoint, as markdown: what the model writes, and how it uses z.

    python scripts/generation_report.py runs/ptb-vae --out runs/ptb-vae/generation.md

Sections:
  1. Prior samples (z ~ N(0, I)), n per decoding strategy, with
       distinct-1 / distinct-2  unique word n-grams / all word n-grams over the n samples (Li et al. 2016);
       self-BLEU                mean BLEU-4 of each sample against the other n-1 as references
                                (Zhu et al. 2018); lower = more diverse. Written here (`bleu`):
                                clipped n-gram precisions for n = 1..4, geometric mean, brevity
                                penalty against the closest reference length, add-one smoothing
                                of the n > 1 precisions (Lin & Och 2004);
       mean length              words per sample (whitespace split of the decoded text).
  2. Reconstructions (greedy decode of the posterior mean) of a few held-out sentences, with
     token accuracy: positions i where the reconstruction's token equals the input's, over
     max(len(input), len(reconstruction)) (model tokens, EOS not counted).
  3. Two interpolation paths between pairs of those sentences.
A language-model checkpoint gets section 1 only.

Sentences for 2 and 3 come from --sentences FILE (one per line), else the test split of the
data dir recorded in the checkpoint, else a few built-in examples.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter
from pathlib import Path
from typing import Sequence

from seqvae import atomic
from seqvae.api import InputError, SeqVAE
from seqvae.checkpoint import CheckpointError
from seqvae.generation import DecodingError

STRATEGIES = {  # label -> decode options
    "greedy": {"strategy": "greedy"},
    "sample T=1": {"strategy": "sample"},
    "sample T=0.7": {"strategy": "sample", "temperature": 0.7},
    "top-k 40": {"strategy": "top-k", "top_k": 40},
    "top-p 0.9": {"strategy": "top-p", "top_p": 0.9},
    "beam 4": {"strategy": "beam", "num_beams": 4},
}

EXAMPLES = [
    "the movie was great and the acting was wonderful",
    "i did not like this film at all",
    "the plot was slow but the ending was good",
    "this is one of the worst movies i have ever seen",
    "my friend and i laughed the whole time",
    "the director did a fine job",
]


# ---------------------------------------------------------------------------- metrics
def ngrams(words: Sequence[str], n: int) -> Counter:
    return Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def distinct_n(samples: list[list[str]], n: int) -> float:
    """Unique n-grams / total n-grams over all samples (0 when there are none)."""
    grams = Counter()
    for words in samples:
        grams.update(ngrams(words, n))
    total = sum(grams.values())
    return len(grams) / total if total else 0.0


def bleu(hyp: list[str], refs: list[list[str]], max_n: int = 4) -> float:
    """Sentence BLEU of hyp against refs, with add-one smoothing for n > 1 (see the module docstring)."""
    if not hyp or not refs:
        return 0.0
    log_p = 0.0
    for n in range(1, max_n + 1):
        h = ngrams(hyp, n)
        max_ref: Counter = Counter()
        for r in refs:
            max_ref |= ngrams(r, n)  # elementwise max of the reference counts
        clipped = sum(min(c, max_ref[g]) for g, c in h.items())
        total = sum(h.values())
        if n > 1:
            clipped, total = clipped + 1, total + 1
        if clipped == 0:
            return 0.0
        log_p += math.log(clipped / total) / max_n
    c = len(hyp)
    r = min((len(ref) for ref in refs), key=lambda L: (abs(L - c), L))  # closest reference length
    bp = 1.0 if c > r else math.exp(1 - r / c)
    return bp * math.exp(log_p)


def self_bleu(samples: list[list[str]]) -> float:
    """Mean BLEU of each sample against all the others."""
    if len(samples) < 2:
        return 0.0
    return sum(bleu(s, samples[:i] + samples[i + 1 :]) for i, s in enumerate(samples)) / len(samples)


def token_accuracy(ref: Sequence[int], hyp: Sequence[int]) -> float:
    denom = max(len(ref), len(hyp))
    return sum(a == b for a, b in zip(ref, hyp)) / denom if denom else 1.0


# ---------------------------------------------------------------------------- sentences
def held_out_sentences(vae: SeqVAE, path: str | None, n: int) -> tuple[list[str], str]:
    if path:
        lines = [ln.strip() for ln in Path(path).read_text(encoding="utf-8").splitlines() if ln.strip()]
        return lines[:n], path
    data_dir = (vae.config.get("data") or {}).get("data_dir")
    if data_dir:
        try:
            from seqvae.data import SentenceDataset

            test = SentenceDataset.from_dir(data_dir, "test")
            texts = [vae.tokenizer.decode(list(test[i])) for i in range(min(n, len(test)))]
            if texts:
                return texts, f"{data_dir} (test split)"
        except (OSError, ValueError) as e:  # data dir moved or unreadable: fall back to the examples
            print(f"note: could not read {data_dir}: {e}", file=sys.stderr)
    return EXAMPLES[:n], "built-in examples"


def md_escape(text: str) -> str:
    return text.replace("|", "\\|") if text else "*(empty)*"


# ---------------------------------------------------------------------------- report
def build_report(vae: SeqVAE, ckpt: str, *, n: int = 100, seed: int = 0, max_len: int = 40, show: int = 5,
                 sentences: str | None = None, num_recon: int = 8, method: str = "slerp", steps: int = 7) -> str:
    lines = [f"# Generation report: `{ckpt}`", "", f"{vae!r}", ""]
    lines += [f"## Prior samples ({n} per strategy, seed {seed}, max_len {max_len})", "",
              "| strategy | distinct-1 | distinct-2 | self-BLEU | mean length (words) |",
              "|---|---:|---:|---:|---:|"]
    shown = []
    for label, opts in STRATEGIES.items():
        texts = vae.sample(n, seed=seed, max_len=max_len, **opts)
        words = [t.split() for t in texts]
        mean_len = sum(map(len, words)) / max(1, len(words))
        lines.append(f"| {label} | {distinct_n(words, 1):.3f} | {distinct_n(words, 2):.3f} | "
                     f"{self_bleu(words):.3f} | {mean_len:.1f} |")
        shown.append((label, texts[:show]))
    lines.append("")
    for label, texts in shown:
        lines += [f"**{label}**", ""] + [f"- {md_escape(t)}" for t in texts] + [""]

    if not vae.latent:
        lines += ["*Language model checkpoint: no latent space, so no reconstructions or interpolations.*", ""]
        return "\n".join(lines)

    texts, source = held_out_sentences(vae, sentences, num_recon)
    ids = vae.tokenize(texts)
    rec_ids = vae.decode_ids(vae.encode(texts).mean, strategy="greedy", max_len=max_len)
    accs = [token_accuracy(r, h) for r, h in zip(ids, rec_ids)]
    lines += [f"## Reconstructions (greedy from the posterior mean; sentences: {source})", "",
              f"Mean token accuracy: **{sum(accs) / len(accs):.3f}**", "",
              "| input | reconstruction | token acc. |", "|---|---|---:|"]
    for t, r, a in zip(texts, vae.detokenize(rec_ids), accs):
        lines.append(f"| {md_escape(t)} | {md_escape(r)} | {a:.2f} |")
    lines.append("")

    pairs = [(texts[0], texts[1]), (texts[2], texts[3])] if len(texts) >= 4 else [(texts[0], texts[-1])]
    for i, (a, b) in enumerate(pairs, 1):
        _, path = vae.interpolate(a, b, steps=steps, method=method, strategy="greedy", max_len=max_len)
        lines += [f"## Interpolation {i} ({method}, {steps} steps, greedy)", "", "| t | sentence |", "|---:|---|"]
        lines += [f"| {k / (steps - 1):.2f} | {md_escape(t)} |" for k, t in enumerate(path)] + [""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="checkpoint dir, or a run dir (its best/)")
    p.add_argument("--out", required=True, help="markdown file to write")
    p.add_argument("-n", type=int, default=100, help="prior samples per strategy (default 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-len", type=int, default=40)
    p.add_argument("--show", type=int, default=5, help="samples listed per strategy (default 5)")
    p.add_argument("--sentences", help="file with one sentence per line for reconstructions/interpolations")
    p.add_argument("--num-recon", type=int, default=8)
    p.add_argument("--method", default="slerp", choices=["lerp", "slerp"])
    p.add_argument("--steps", type=int, default=7)
    p.add_argument("--device")
    args = p.parse_args(argv)
    try:
        vae = SeqVAE.from_pretrained(args.checkpoint, device=args.device)
        report = build_report(vae, args.checkpoint, n=args.n, seed=args.seed, max_len=args.max_len,
                              show=args.show, sentences=args.sentences, num_recon=args.num_recon,
                              method=args.method, steps=args.steps)
    except (CheckpointError, InputError, DecodingError, OSError) as e:
        print(f"generation_report: error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    out = atomic.write_text(args.out, report + "\n")  # parent dirs made as needed
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
