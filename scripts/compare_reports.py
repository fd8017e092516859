"""Side-by-side table of several `seqvae report` results (their report.json files), as markdown.

    python scripts/compare_reports.py checkpoints/imdb/report.json results/reports/slots-fb04/report.json

One row per report: reconstruction BLEU (greedy and beam) and exact match, interpolation endpoint
BLEU, the same two from refined codes (reports since refinement), the best prior sample set's judged
perplexity ratio (quality.best_samples: the lowest among the diverse sets) with its distinct-2 and
invented-word rate, KL, MI, AU and the IW-NLL gap to the judge language model. Reports measured on other
held-out sentences (another count, or other texts) are refused: their rows would not compare. The judged columns
depend on the judge (report.json's judge weights_sha256) and the IW-NLL ones on its sample count (and the fitted
one on its steps): where the reports differ in these, or a report does not say (written before it did), those
cells are marked `*` and a line under the table says which reports differ. Bad input is one line on stderr and
exit code 2.
"""

from __future__ import annotations

import argparse
import math
import sys

from seqvae.config import ConfigError, load_json
from seqvae.display import format_mi, one_line
from seqvae.quality import REFINED, best_samples
from seqvae.reporting import reporting_errors


HEADER = ["checkpoint", "BLEU greedy", "BLEU beam", "exact", "interp. A / B", "refined: BLEU; A / B",
          "samples x real PPL (best)", "distinct-2", "invented", "KL", "MI", "AU", "IW-NLL - LM", "fitted proposals"]
SETTINGS = [  # what a report's judged columns depend on: (what, columns, its value in a report: None = not said)
    ("judge", HEADER[6:7] + HEADER[12:], lambda r: (r["judge"].get("weights_sha256") or None)
     if isinstance(r.get("judge"), dict) else None),
    ("number of IW samples", HEADER[12:], lambda r: r["latent"].get("iw_samples")),
    ("number of fitted-proposal steps", HEADER[13:], lambda r: r["latent"].get("refine_steps")),
]


def row(rep: dict, name: str) -> list[str]:
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
    return cells


def comparability(reps: list[tuple[str, dict, list[str]]]) -> list[str]:
    """Mark `*` the cells of the judged columns whose reports (name, report, cells) used other settings (SETTINGS), or
    do not say which; the lines that say why."""
    notes = []
    for what, columns, setting in SETTINGS:
        cols = [HEADER.index(c) for c in columns]
        used = [(name, setting(r), cells) for name, r, cells in reps if any(cells[i] != "-" for i in cols)]
        known = {v for _, v, _ in used if v is not None}
        unknown = [name for name, v, _ in used if v is None]
        if len(used) < 2 or (len(known) < 2 and not unknown):
            continue
        for _, _, cells in used:
            for i in cols:
                cells[i] += " *" if cells[i] != "-" and not cells[i].endswith(" *") else ""
        said = ", ".join(f"{name}: {'unknown' if v is None else str(v)[:12]}" for name, v, _ in used)
        notes.append(f"* {', '.join(columns)}: " + (f"not comparable: the {what} differs ({said})" if len(known) > 1
                     else f"may not compare: the {what} is unknown for {', '.join(unknown)} (a report.json from "
                          "before it was recorded)"))
    return notes


def same_sentences(a: dict, b: dict) -> bool:
    """Two reports measured on the same held-out sentences: their count, and their texts' sha256 where both name it
    (reports since 2026-12), else the real sentences' diversity where both have it on as many (a function of the
    texts alone)."""
    if a.get("sentences") != b.get("sentences"):
        return False
    if a.get("texts_sha256") and b.get("texts_sha256"):
        return a["texts_sha256"] == b["texts_sha256"]
    da, db = a.get("real_diversity"), b.get("real_diversity")
    if isinstance(da, dict) and isinstance(db, dict) and da.get("diversity_of") == db.get("diversity_of"):
        return all(math.isclose(da[k], db[k], rel_tol=1e-6, abs_tol=1e-9) for k in da.keys() & db.keys()
                   if isinstance(da[k], (int, float)) and isinstance(db[k], (int, float)))
    return True


def table(paths: list[str]) -> str:
    """The markdown table of the reports at `paths`; bad input raises ConfigError (one line)."""
    reps, first = [], None
    for path in paths:
        rep = load_json(path, error=ConfigError, expect_object=True)
        name = str(rep.get("checkpoint") or path)
        try:
            reps.append((name, rep, row(rep, name)))
            for _, _, setting in SETTINGS:  # a part of another shape fails here, not in comparability
                setting(rep)
        except KeyError as e:
            raise ConfigError(f"{path}: not a report of `seqvae report`: it has no {e.args[0]!r}") from None
        except (ValueError, TypeError, AttributeError, IndexError) as e:  # a part of another shape (another version)
            raise ConfigError(f"{path}: not a report of `seqvae report` (this version's): {one_line(e)}") from None
        if first is None:
            first = (path, rep)
        elif not same_sentences(first[1], rep):
            n, m = first[1].get("sentences"), rep.get("sentences")
            raise ConfigError(f"{first[0]} and {path} were not measured on the same held-out sentences "
                              f"({f'{n} and {m}' if n != m else f'{n} each, other texts'}): make both reports on one "
                              "set (the same --texts FILE, or the same data, -n and --seed)")
    notes = comparability(reps)
    rule = "|---|" + "---:|" * 5 + "---|" + "---:|" * 7
    rows = ["| " + " | ".join(cells) + " |" for _, _, cells in reps]
    return "\n".join(["| " + " | ".join(HEADER) + " |", rule, *rows, *([""] + notes if notes else [])])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("reports", nargs="+", help="report.json files (from seqvae report --out DIR)")
    args = ap.parse_args(argv)
    return reporting_errors("compare_reports", lambda: print(table(args.reports)))  # one line; `| head` no error


if __name__ == "__main__":
    sys.exit(main())
