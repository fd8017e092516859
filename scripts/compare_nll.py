"""Paired comparison of two models' NLL on the same sentences.

    seqvae evaluate runs/ptb-6k/vae-fb --split test --samples 500 --per-sentence --json vae.json
    seqvae evaluate runs/ptb-6k/lm --split test --per-sentence --json lm.json
    python scripts/compare_nll.py vae.json lm.json

Reads two `seqvae evaluate --per-sentence` JSON files made on the same sentences (files that do not hold
the same sentences in the same order are refused: see check_same_sentences), and prints
the mean per-sentence difference A - B in nats with its standard error and a 95% interval, and
how often A is the lower of the two. A difference whose interval excludes 0 is more than noise
of the sentence sample (the importance-sampling noise of each estimate is included in it too).
A file made with `seqvae evaluate --refine N` also holds the tighter estimate from proposals fitted
per sentence; that one is used, and the output says so.
"""

import argparse
import json
import os
import sys
from pathlib import Path

from seqvae.reporting import reporting_errors
from seqvae.config import ConfigError, load_json
from seqvae.metrics import paired_difference


def per_sentence(path: str) -> tuple[dict, list[float], str]:
    """(results, per-sentence NLLs, which estimate): the fitted proposals' where the file has them."""
    res = load_json(Path(path), error=ConfigError, expect_object=True)
    if "per_sentence_nll" not in res:
        raise ConfigError(f"{path}: no per_sentence_nll (run seqvae evaluate with --per-sentence)")
    k = res.get("iw_samples")
    iw = f"IW-NLL (k = {k})" if k else "IW-NLL"
    if "per_sentence_nll_refined" in res:
        key, what = "per_sentence_nll_refined", f"{iw} from proposals fitted in {res.get('refine_steps', '?')} steps"
    elif res.get("nll_is_bound"):  # a VAE evaluated with --samples 0: the ELBO alone
        key, what = "per_sentence_nll", "-ELBO, an upper bound on the NLL (evaluated with --samples 0)"
    elif res.get("latent") is False or k == 0:  # a language model (files before 2026-12-07 have no "latent")
        key, what = "per_sentence_nll", "exact NLL of a language model"
    else:
        key, what = "per_sentence_nll", iw if k else "NLL"
    values = res[key]
    if not (isinstance(values, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                             for v in values)):
        raise ConfigError(f"{path}: {key} is not a list of numbers")
    return res, values, what


def same_data(a: str | None, b: str | None) -> bool:
    """Two evaluations' data dirs name the same dir. Files before 2026-12-07 recorded it as typed, relative to
    wherever `evaluate` ran: such a path matches an absolute one that ends in it."""
    if a is None or b is None or a == b:
        return a == b
    pa, pb = Path(os.path.normpath(a)), Path(os.path.normpath(b))
    if pa.is_absolute() and pb.is_absolute():
        return pa.resolve() == pb.resolve()
    rel, other = (pa, pb) if not pa.is_absolute() else (pb, pa)
    return other.parts[-len(rel.parts):] == rel.parts if other.is_absolute() else rel == other


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", help="evaluate JSON of model A")
    ap.add_argument("b", help="evaluate JSON of model B")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    args = ap.parse_args(argv)
    return reporting_errors("compare_nll", lambda: compare(args))  # one line for bad input; `| head` is no error


def check_same_sentences(ra: dict, rb: dict) -> None:
    """The NLLs pair by place, so the two files must hold the same sentences in the same order: files that name them
    (sentences_sha256, evaluate since 2026-12) by that, wherever the data dir stands; older ones by data dir, split
    and token count (a data dir prepared again between the two evaluations has other sentences under one path)."""
    sha_a, sha_b = ra.get("sentences_sha256"), rb.get("sentences_sha256")
    if sha_a and sha_b:
        if sha_a != sha_b:
            n_a, n_b = ra.get("sentences"), rb.get("sentences")
            counts = (f": {n_a} sentences against {n_b} (another --max-sentences?)"
                      if None not in (n_a, n_b) and n_a != n_b else "")
            raise ConfigError(f"not the same sentences: A scored {ra.get('data')}/{ra.get('split')}, B "
                              f"{rb.get('data')}/{rb.get('split')}, and their sentences_sha256 differ{counts}")
        return
    if ra.get("split") != rb.get("split") or not same_data(ra.get("data"), rb.get("data")):
        raise ConfigError(f"not the same sentences: {ra.get('data')}/{ra.get('split')} vs {rb.get('data')}/{rb.get('split')}")
    if None not in (ra.get("tokens"), rb.get("tokens")) and ra["tokens"] != rb["tokens"]:
        raise ConfigError(f"not the same sentences: A scored {ra.get('sentences', '?')} sentences of {ra['tokens']} "
                          f"tokens, B {rb.get('sentences', '?')} of {rb['tokens']} (other --max-sentences, or the "
                          "data dir prepared again between the two?)")


def compare(args) -> int:
    (ra, a, what_a), (rb, b, what_b) = per_sentence(args.a), per_sentence(args.b)
    check_same_sentences(ra, rb)
    try:
        res = paired_difference(a, b)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    res["estimates"] = [what_a, what_b]
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        lo, hi = res["ci95"]
        print(f"A - B = {res['mean_diff']:+.3f} nats/sentence (SE {res['se']:.3f}, 95% CI [{lo:+.3f}, {hi:+.3f}]) "
              f"over {res['sentences']} {ra.get('split', '')} sentences; A lower on {100 * res['frac_a_lower']:.1f}% of them "
              f"(A: {what_a}; B: {what_b})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
