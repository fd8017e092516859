"""seqvae as a user installs it: the version it reports and the one its metadata carries."""

from pathlib import Path

import pytest

import seqvae

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_version_is_the_package_version(capsys):
    """`seqvae --version` prints seqvae.__version__, which pyproject.toml reads (one place to change it)."""
    from seqvae.cli import main

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out == f"seqvae {seqvae.__version__}\n"
    assert _pyproject()["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "seqvae.__version__"}
