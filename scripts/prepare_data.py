"""Prepare a corpus for training: read IMDB or PTB, split sentences, train the tokenizer, write arrays.

    python scripts/prepare_data.py --dataset imdb --out data/imdb

Writes <out>/{tokenizer.model|vocab.txt, train.npz, valid.npz, test.npz, meta.json, samples.txt}
atomically (see seqvae/corpus.py) and prints a table of corpus statistics. Same flags as
`seqvae prepare`. Bad input -> one line on stderr, exit status 2, nothing written.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from seqvae.corpus import USER_ERRORS, add_prepare_args, run_prepare  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_prepare_args(parser)
    args = parser.parse_args(argv)
    try:
        return run_prepare(args)
    except USER_ERRORS as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"prepare_data: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("prepare_data: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
