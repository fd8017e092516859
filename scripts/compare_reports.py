"""Side-by-side table of several `seqvae report` results (their report.json files), as markdown.

    python scripts/compare_reports.py checkpoints/imdb/report.json results/reports/slots-fb04/report.json

One row per report: reconstruction BLEU (greedy and beam) and exact match, interpolation endpoint
BLEU, the same two from refined codes (reports since refinement), the best prior sample set's judged
perplexity ratio (quality.best_samples: the lowest among the diverse sets) with its distinct-2 and
invented-word rate, KL, MI, AU and the IW-NLL gap to the judge language model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from seqvae.display import format_mi
from seqvae.quality import REFINED, best_samples


def row(rep: dict, name: str) -> str:
    rec, it, lat = rep["reconstruction"], rep["interpolation"], rep["latent"]
    best = best_samples(rep)
    vs, vs_fit = lat.get("vs_judge"), lat.get("vs_judge_refined")
    ref = it.get("refined")
    cells = [name, f"{rec['greedy']['bleu']:.1f}", f"{rec['beam 4']['bleu']:.1f}",
             f"{100 * rec['greedy']['exact']:.1f}%", f"{it['bleu_first_vs_a']:.1f} / {it['bleu_last_vs_b']:.1f}",
             f"{rec[REFINED]['bleu']:.1f}; {ref['bleu_first_vs_a']:.1f} / {ref['bleu_last_vs_b']:.1f}"
             if ref and REFINED in rec else "-",
             f"{best['ppl_ratio']:.2f} ({best['prior']}, {best['strategy']})" if best else "-",
             f"{best['distinct_2']:.2f}" if best else "-",
             f"{100 * best['invented_rate']:.2f}%" if best and "invented_rate" in best else "-",
             f"{lat['kl']:.1f}", format_mi(lat["mi"], lat.get("mi_se")), str(lat["au"]),
             f"{vs['mean_diff']:+.1f} ± {vs['se']:.1f}" if vs else "-",
             f"{vs_fit['mean_diff']:+.1f} ± {vs_fit['se']:.1f}" if vs_fit else "-"]
    return "| " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("reports", nargs="+", help="report.json files (from seqvae report --out DIR)")
    args = ap.parse_args(argv)
    rows = []
    for path in args.reports:
        try:
            rep = json.loads(Path(path).read_text(encoding="utf-8"))
            if not isinstance(rep, dict):
                raise ValueError(f"a JSON {type(rep).__name__}, not a report (an object)")
            rows.append(row(rep, str(rep.get("checkpoint") or path)))
        except KeyError as e:
            print(f"compare_reports: error: {path}: not a report of `seqvae report`: it has no {e.args[0]!r}",
                  file=sys.stderr)
            return 2
        except (OSError, ValueError, TypeError, AttributeError) as e:
            print(f"compare_reports: error: {path}: {e!r}", file=sys.stderr)
            return 2
    print("| checkpoint | BLEU greedy | BLEU beam | exact | interp. A / B | refined: BLEU; A / B | "
          "samples x real PPL (best) | distinct-2 | invented | KL | MI | AU | IW-NLL - LM | fitted proposals |")
    print("|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
