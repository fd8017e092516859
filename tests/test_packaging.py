"""seqvae as a user installs it: the version it reports, and what the wheel and the sdist carry (built from a
copy of the tree, a few seconds)."""

import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import seqvae

ROOT = Path(__file__).resolve().parents[1]
SDIST_DIRS = ("tests", "scripts", "docs", "checkpoints")  # what the tests read beside the package (MANIFEST.in)


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A wheel and an sdist built by setuptools from a copy of the tree (a clean clone's files; a classify feature
    cache added to the copy, as a user's checkpoint may hold one): (copy, wheel path, sdist path)."""
    pytest.importorskip("setuptools", minversion="77")  # pyproject's build-system requires
    base = tmp_path_factory.mktemp("pkg")
    src = base / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "features")
    for d in ("seqvae",) + SDIST_DIRS:
        shutil.copytree(ROOT / d, src / d, ignore=ignore)
    for f in ("pyproject.toml", "README.md", "MANIFEST.in"):
        if (ROOT / f).is_file():
            shutil.copy2(ROOT / f, src / f)
    cache = src / "checkpoints" / "imdb" / "features"
    cache.mkdir()
    (cache / "cache.npy").write_bytes(b"x")
    out = base / "dist"
    # The dir in the code, not in sys.argv: setuptools reads sys.argv as a command line.
    build = f"from setuptools import build_meta as b; b.build_wheel({str(out)!r}); b.build_sdist({str(out)!r})"
    proc = subprocess.run([sys.executable, "-c", build], cwd=src, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,), (sdist,) = out.glob("*.whl"), out.glob("*.tar.gz")
    return src, wheel, sdist


def test_the_wheel_is_the_package_and_its_command(built):
    src, wheel, _ = built
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = z.read(info).decode()
        entry_points = z.read(info.replace("METADATA", "entry_points.txt")).decode()
    sources = {p.relative_to(src).as_posix() for p in (src / "seqvae").rglob("*.py")}
    assert sources <= names, sorted(sources - names)
    assert {n.split("/")[0] for n in names} == {"seqvae", Path(info).parent.name}  # no tests, checkpoints, ...
    assert re.search(r"^seqvae = seqvae\.cli:main$", entry_points, re.M), entry_points
    assert f"\nVersion: {seqvae.__version__}\n" in metadata


def test_the_sdist_carries_what_the_tests_read(built):
    """setuptools puts tests/test_*.py into an sdist by itself, but not conftest.py, nor the scripts, docs and
    checkpoints the tests read: an unpacked sdist's tests all failed. MANIFEST.in grafts them, a feature cache
    left out."""
    src, _, sdist = built
    with tarfile.open(sdist) as t:
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
        top = t.getnames()[0].split("/")[0]
        pkg_info = t.extractfile(f"{top}/PKG-INFO").read().decode()
    wanted = {p.relative_to(src).as_posix() for d in ("seqvae",) + SDIST_DIRS for p in (src / d).rglob("*")
              if p.is_file() and "features" not in p.parts}
    assert "tests/conftest.py" in wanted and "checkpoints/imdb/model.safetensors" in wanted
    assert wanted <= names, sorted(wanted - names)
    assert "checkpoints/imdb/features/cache.npy" not in names
    assert f"\nVersion: {seqvae.__version__}\n" in pkg_info


def test_version_is_the_package_version(capsys):
    """`seqvae --version` prints seqvae.__version__, which pyproject.toml reads (one place to change it)."""
    from seqvae.cli import main

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out == f"seqvae {seqvae.__version__}\n"
    assert _pyproject()["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "seqvae.__version__"}
