"""`seqvae sample | interpolate | reconstruct | score | encode | decode`: the commands that write or read
sentences with a checkpoint, their shared decoding options and the bounds that keep a typo from asking for
hours or gigabytes (registered by cli.py; errors reach the user as one line through it).

    seqvae sample runs/ptb-vae -n 10 --strategy top-p --top-p 0.9 --seed 0
    seqvae interpolate runs/ptb-vae "a sentence" "another one" --steps 8 --method slerp
    seqvae reconstruct runs/ptb-vae "a sentence" --refine 10     (or `-`: one sentence per stdin line)
    seqvae score runs/ptb-vae "a sentence" --refine 50
    seqvae encode runs/ptb-vae "a sentence" "another one" --out codes.npy   (codes: a float32 array (N, Z))
    seqvae decode runs/ptb-vae codes.npy --strategy beam                   (any such array, e.g. edited in numpy)
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from .config import (INTERPOLATION_METHODS, MAX_BEAMS, MAX_CANDIDATES, MAX_IW_SAMPLES, MAX_LEN, MAX_PATH_STEPS,
                     MAX_REFINE_STEPS, MAX_SAMPLES, SAMPLE_STRATEGY, SAMPLE_TOP_P, STRATEGIES, ConfigError, seed_arg,
                     whole)
from .display import one_line


DEVICE_HELP = "cpu, cuda, cuda:1 (default: cuda if available)"  # every command's --device


def _add_decoding_args(p, default_strategy: str, seeds: str = "seed of the sampling strategies") -> None:
    p.add_argument("checkpoint", help="checkpoint dir, or a run dir (its best/)")
    g = p.add_argument_group("decoding")
    g.add_argument("--strategy", default=default_strategy, choices=STRATEGIES, help=f"default: {default_strategy}")
    g.add_argument("--max-len", type=int, default=40, help="most tokens per sentence, EOS included (default 40)")
    g.add_argument("--temperature", type=float, default=1.0, help="softmax temperature for sampling (default 1)")
    g.add_argument("--top-k", type=int, default=0, help="sample among the k most likely tokens (default 0: off)")
    g.add_argument("--top-p", type=float, default=None,
                   help=f"sample in the nucleus of mass p (1 = off; default {SAMPLE_TOP_P} with --strategy top-p, else 1)")
    g.add_argument("--num-beams", type=int, default=4, help="beam width for --strategy beam (default 4)")
    g.add_argument("--length-penalty", type=float, default=1.0,
                   help="beam: rank by logp / length**L (0 = raw sum, default 1)")
    g.add_argument("--candidates", type=int, default=1,
                   help="sampling: draw K sentences per code and keep the one the decoder finds likeliest per "
                        "token (more fluent, less varied; default 1)")
    g.add_argument("--seed", type=seed_arg, default=None, help=f"{seeds} (default: fresh randomness)")
    g.add_argument("--words", choices=["known", "any"], default=None,
                   help="known: write only words of the checkpoint's word list (`seqvae words`); any: no list "
                        "(default: known when the checkpoint has one)")
    p.add_argument("--device", help=DEVICE_HELP)
    p.add_argument("--json", action="store_true", dest="as_json", help="print JSON instead of one line per sentence")


# The bounds that keep a typo (-n 1e12) from asking for hours or gigabytes: config's, which the API checks too.
def check_size(flag: str, value: int, low: int, high: int) -> None:
    whole(flag, value, low, ConfigError, high)


def _decoding_opts(args) -> dict[str, Any]:
    from .generation import top_p_default

    check_size("--max-len", args.max_len, 1, MAX_LEN)
    check_size("--num-beams", args.num_beams, 1, MAX_BEAMS)
    check_size("--candidates", args.candidates, 1, MAX_CANDIDATES)
    # --top-p left out: the prior samples' rule (0.9 for top-p), on every command; else off
    top_p = top_p_default({"strategy": args.strategy, "top_p": args.top_p}).get("top_p", 1.0)
    return {"strategy": args.strategy, "max_len": args.max_len, "temperature": args.temperature,
            "top_k": args.top_k, "top_p": top_p, "num_beams": args.num_beams,
            "length_penalty": args.length_penalty, "seed": args.seed, "words": args.words,
            "candidates": args.candidates}


def _shown_opts(vae, args) -> dict[str, Any]:
    """The decoding options as --json prints them: with the word list's use resolved."""
    return {**_decoding_opts(args), "words": vae.words_option(args.words)}


def add_sample(sub) -> None:
    p = sub.add_parser("sample", help="sentences from the prior: z from the aggregate prior or N(0, I), then decode")
    p.add_argument("-n", type=int, default=10, help="number of sentences (default 10)")
    p.add_argument("--prior", choices=["aggregate", "standard"], default=None,
                   help="where z comes from: the density fitted on training codes (`seqvae fit-prior`) or N(0, I) "
                        "(default: aggregate when the checkpoint has one)")
    _add_decoding_args(p, SAMPLE_STRATEGY, seeds="seed for z and sampling")
    p.set_defaults(func=_cmd_sample)


def _cmd_sample(args) -> int:
    from .api import SeqVAE

    check_size("-n", args.n, 1, MAX_SAMPLES)
    vae = SeqVAE.from_pretrained(args.checkpoint, device=args.device)
    texts = vae.sample(args.n, prior=args.prior, **_decoding_opts(args))
    if args.as_json:
        prior = None if not vae.latent else args.prior or ("aggregate" if vae.prior is not None else "standard")
        print(json.dumps({"checkpoint": args.checkpoint, "prior": prior, **_shown_opts(vae, args), "samples": texts},
                         indent=2))
    else:
        print("\n".join(texts))
    return 0


def add_interpolate(sub) -> None:
    p = sub.add_parser("interpolate", help="decode a path in latent space between two sentences")
    _add_decoding_args(p, "greedy")
    p.add_argument("a", help="first sentence")
    p.add_argument("b", help="second sentence")
    p.add_argument("--steps", type=int, default=8, help="points on the path, endpoints included (default 8)")
    p.add_argument("--method", default="lerp", choices=INTERPOLATION_METHODS,
                   help="lerp: the straight line (default); slerp: along the great circle, the norm linear "
                        "(stays where sentences' codes lie: docs/usage.md)")
    _add_refine_arg(p, "the path runs between the two sentences' refined codes")
    p.set_defaults(func=_cmd_interpolate)


def _cmd_interpolate(args) -> int:
    from .api import SeqVAE

    check_size("--steps", args.steps, 2, MAX_PATH_STEPS)
    check_size("--refine", args.refine, 0, MAX_REFINE_STEPS)
    vae = SeqVAE.from_pretrained(args.checkpoint, device=args.device)
    _, texts = vae.interpolate(args.a, args.b, steps=args.steps, method=args.method, refine=args.refine,
                               **_decoding_opts(args))
    ts = [i / (args.steps - 1) for i in range(args.steps)]
    decimals = max(2, math.ceil(math.log10(args.steps - 1)))  # neighbours 1/(steps-1) apart print apart
    if args.as_json:
        path = [{"t": round(t, max(4, decimals)), "text": text} for t, text in zip(ts, texts)]
        print(json.dumps({"checkpoint": args.checkpoint, "a": args.a, "b": args.b, "method": args.method,
                          **_shown_opts(vae, args), "path": path}, indent=2))
    else:
        print("\n".join(f"{t:.{decimals}f}  {text}" for t, text in zip(ts, texts)))
    return 0


def add_reconstruct(sub) -> None:
    p = sub.add_parser("reconstruct", help="encode sentences and decode their posterior means")
    _add_decoding_args(p, "greedy")
    p.add_argument("texts", nargs="*", metavar="TEXT", help="sentences; none or '-' reads one per line from stdin")
    _add_refine_arg(p, "decode refined codes instead of the posterior means")
    p.set_defaults(func=_cmd_reconstruct)


def _add_refine_arg(p, what: str) -> None:
    p.add_argument("--refine", type=int, default=0, metavar="STEPS",
                   help=f"{what}: STEPS Adam steps (step 0.1) from each posterior mean on log p(x|z) + 0.1 log q(z|x), "
                        "so that the decoder writes the sentence back more faithfully "
                        "(default 0: off; 10 is a good value)")


def _input_texts(texts: list[str], command: str) -> list[str]:
    """The sentences given on the command line, or one per stdin line when there are none or '-'."""
    from .textinput import read_lines

    texts = list(texts)
    if not texts or texts == ["-"]:
        texts = read_lines(sys.stdin, "stdin")
        if not texts:
            raise ConfigError(f"{command}: no sentences on stdin")
    return texts


def _cmd_reconstruct(args) -> int:
    from .api import SeqVAE

    check_size("--refine", args.refine, 0, MAX_REFINE_STEPS)
    texts = _input_texts(args.texts, "reconstruct")
    vae = SeqVAE.from_pretrained(args.checkpoint, device=args.device)
    outs = vae.reconstruct(texts, refine=args.refine, **_decoding_opts(args))
    if args.as_json:
        print(json.dumps([{"input": t, "output": o} for t, o in zip(texts, outs)], indent=2))
    else:
        print("\n".join(outs))
    return 0


def add_score(sub) -> None:
    p = sub.add_parser("score", help="-log p(x) of sentences in nats (a VAE: importance-weighted estimate; "
                                     "a language model: exact)")
    p.add_argument("checkpoint", help="checkpoint dir, or a run dir (its best/)")
    p.add_argument("texts", nargs="*", metavar="TEXT", help="sentences; none or '-' reads one per line from stdin")
    p.add_argument("--samples", type=int, default=100, help="importance samples per sentence (default 100)")
    p.add_argument("--refine", type=int, default=0, metavar="STEPS",
                   help="draw them from a Gaussian fitted to each sentence's posterior in STEPS Adam steps instead "
                        "of from q(z|x): a tighter estimate of the same -log p(x) (default 0: off; 50 is a good value)")
    p.add_argument("--seed", type=seed_arg, default=0,
                   help="seed of the draws (default 0); each sentence draws its own, so its score does not depend "
                        "on the other sentences given")
    p.add_argument("--device", help=DEVICE_HELP)
    p.add_argument("--json", action="store_true", dest="as_json", help="print JSON instead of one line per sentence")
    p.set_defaults(func=_cmd_score)


def _cmd_score(args) -> int:
    import math

    from .api import SeqVAE

    check_size("--samples", args.samples, 1, MAX_IW_SAMPLES)
    check_size("--refine", args.refine, 0, MAX_REFINE_STEPS)
    texts = _input_texts(args.texts, "score")
    vae = SeqVAE.from_pretrained(args.checkpoint, device=args.device)
    nll = vae.score(texts, samples=args.samples, refine=args.refine, seed=args.seed).tolist()
    tokens = [len(ids) + 1 for ids in vae.tokenize(texts)]  # what score counts: EOS included
    rows = [{"text": t, "nll": n, "tokens": k, "ppl": math.exp(n / k)} for t, n, k in zip(texts, nll, tokens)]
    if args.as_json:
        print(json.dumps(rows, indent=2))
    else:
        print("\n".join(f"{r['nll']:8.2f} nats  {r['ppl']:8.1f} ppl  {r['text']}" for r in rows))
    return 0


def add_encode(sub) -> None:
    p = sub.add_parser("encode", help="sentences to codes: the posterior means (N, Z) as a float32 .npy file that "
                                      "`seqvae decode` and numpy read")
    p.add_argument("checkpoint", help="checkpoint dir, or a run dir (its best/)")
    p.add_argument("texts", nargs="*", metavar="TEXT", help="sentences; none or '-' reads one per line from stdin")
    p.add_argument("--out", help="write the codes here (a .npy file, replaced atomically)")
    _add_refine_arg(p, "write refined codes instead of the posterior means")
    p.add_argument("--device", help=DEVICE_HELP)
    p.add_argument("--json", action="store_true", dest="as_json",
                   help="print each sentence's code, mu and logvar as JSON (with or without --out)")
    p.set_defaults(func=_cmd_encode)


def _cmd_encode(args) -> int:
    import numpy as np

    from . import atomic
    from .api import SeqVAE

    if not args.out and not args.as_json:
        raise ConfigError("encode: give --out FILE.npy, --json, or both")
    if args.out and (not args.out.endswith(".npy") or Path(args.out).name == ".npy"):
        raise ConfigError(f"encode: --out {args.out}: the codes are written as a .npy file; end the name in .npy")
    check_size("--refine", args.refine, 0, MAX_REFINE_STEPS)
    out = atomic.check_file_path(args.out) if args.out else None  # before the work
    texts = _input_texts(args.texts, "encode")
    vae = SeqVAE.from_pretrained(args.checkpoint, device=args.device)
    post = vae.encode(texts) if args.as_json or not args.refine else None
    codes = (vae.refine(texts, steps=args.refine) if args.refine else post.mean).float().cpu().numpy()
    if out is not None:
        atomic.write_with(out, lambda tmp: np.save(tmp, codes))  # tmp ends in .npy: np.save adds no suffix
    if args.as_json:
        mu, logvar = post.mean.float().cpu().tolist(), post.logvar.float().cpu().tolist()
        print(json.dumps([{"text": t, "code": c, "mu": m, "logvar": v}
                          for t, c, m, v in zip(texts, codes.tolist(), mu, logvar)]))
    else:
        what = f"codes refined in {args.refine} steps" if args.refine else "posterior means"
        print(f"{out}: {len(texts)} {what} of dimension {codes.shape[1]} (float32)")
    return 0


def add_decode(sub) -> None:
    p = sub.add_parser("decode", help="codes to sentences: each row of a .npy array (N, Z) or (Z,), e.g. from "
                                      "`seqvae encode`, decoded")
    _add_decoding_args(p, "greedy")
    p.add_argument("codes", help="a .npy file of float codes, one per row")
    p.set_defaults(func=_cmd_decode)


def _read_codes(path: str, latent_dim: int):
    """(N, Z) float32 tensor from a .npy file; anything else is a ConfigError naming what is wrong."""
    import numpy as np
    import torch

    try:
        with open(path, "rb") as f:
            magic = f.read(6)
            f.seek(0)
            arr = np.load(f, allow_pickle=False) if magic == b"\x93NUMPY" else None  # the format's magic string
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: a directory, not a .npy file") from None
    except (ValueError, OSError, EOFError) as e:  # a damaged or cut file, or an array of Python objects
        raise ConfigError(f"{path}: unreadable .npy file ({one_line(e)})") from None
    if arr is None:
        raise ConfigError(f"{path}: not a .npy file (write codes with np.save or `seqvae encode --out`)")
    if arr.dtype.kind not in "fiu":
        raise ConfigError(f"{path}: codes must be numbers, got dtype {arr.dtype}")
    shape, arr = arr.shape, arr[None, :] if arr.ndim == 1 else arr
    if arr.ndim != 2 or arr.shape[1] != latent_dim or arr.shape[0] < 1:
        raise ConfigError(f"{path}: expected codes of shape (N, {latent_dim}) or ({latent_dim},) with N >= 1, "
                          f"got {shape}")
    check_size("codes", arr.shape[0], 1, MAX_SAMPLES)
    codes = torch.from_numpy(arr.astype(np.float32))
    bad = (~torch.isfinite(codes)).any(1).nonzero()
    if len(bad):
        raise ConfigError(f"{path}: row {int(bad[0])} is not finite (nan or inf)")
    return codes


def _cmd_decode(args) -> int:
    from .api import SeqVAE

    opts = _decoding_opts(args)  # checked before the model loads
    vae = SeqVAE.from_pretrained(args.checkpoint, device=args.device)
    if not vae.latent:
        raise ConfigError(f"{args.checkpoint}: a language model has no latent space to decode from")
    texts = vae.decode(_read_codes(args.codes, vae.latent_dim).to(vae.device), **opts)
    if args.as_json:
        print(json.dumps({"checkpoint": args.checkpoint, "codes": args.codes, **_shown_opts(vae, args),
                          "texts": texts}, indent=2))
    else:
        print("\n".join(texts))
    return 0
