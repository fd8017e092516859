"""Prepare a corpus for training: read IMDB or PTB, split sentences, train the tokenizer, write arrays.

    python scripts/prepare_data.py --dataset imdb --out data/imdb

Writes <out>/{tokenizer.model|vocab.txt, train.npz, valid.npz, test.npz, meta.json, samples.txt}
atomically (see seqvae/corpus.py) and prints a table of corpus statistics. Same flags as
`seqvae prepare` (this file is a thin wrapper). Bad input -> one line on stderr, exit status 2,
nothing written.
"""

import sys

from seqvae import cli


def main(argv: list[str] | None = None) -> int:
    return cli.main(["prepare", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
