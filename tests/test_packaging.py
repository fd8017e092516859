"""seqvae as a user installs it: what pyproject.toml declares against what the code imports, the optional
packages kept optional, the version it reports, and what the wheel and the sdist carry (built from a copy of
the tree, a few seconds)."""

import ast
import importlib.metadata
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
PKG = ROOT / "seqvae"
OPTIONAL = ("triton", "matplotlib")  # extras the package must import and run without (`import seqvae`, the CLI)
OPTIONAL_MODULES = ("seqvae.kernels.triton_reparam_kl",)  # imported only when asked for; may need an extra at the top
SDIST_DIRS = ("tests", "scripts", "docs", "checkpoints")  # what the tests read beside the package (MANIFEST.in)


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _name(requirement: str) -> str:
    """A requirement's distribution name, normalized (PEP 503)."""
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement).group(0)).lower()


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _third_party_imports(path: Path) -> tuple[set[str], set[str]]:
    """(imported at module level, imported inside a function) top-level names other than stdlib and seqvae."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    inside = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
              for n in ast.walk(f) if n is not f}
    top, lazy = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots = [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            roots = [node.module.split(".")[0]]
        else:
            continue
        for r in roots:
            if r not in sys.stdlib_module_names and r != "seqvae" and r != "__future__":
                (lazy if id(node) in inside else top).add(r)
    return top, lazy


def test_every_third_party_import_is_declared():
    """A module-level import needs a core dependency (the triton kernel module, loaded only on demand, may use an
    extra's); an import inside a function may name an extra's package. Import names map to distributions through
    the installed metadata (sklearn -> scikit-learn), so nothing here is a hand-kept table."""
    project = _pyproject()["project"]
    core = {_name(r) for r in project["dependencies"]}
    extras = {_name(r) for reqs in project["optional-dependencies"].values() for r in reqs}
    dists = importlib.metadata.packages_distributions()
    missing = []
    for path in sorted(PKG.rglob("*.py")):
        top, lazy = _third_party_imports(path)
        allowed_top = core | extras if _module(path) in OPTIONAL_MODULES else core
        for root, allowed in [(r, allowed_top) for r in top] + [(r, core | extras) for r in lazy]:
            names = {_name(d) for d in dists.get(root, [root])}
            if not names & allowed:
                missing.append(f"{path.relative_to(ROOT)}: {root} ({', '.join(sorted(names))})")
    assert not missing, missing


OPTIONAL_RUN = """
import importlib, pkgutil, sys
blocked = set(sys.argv[1].split(","))
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Block())
import seqvae, torch
skip = set(sys.argv[2].split(","))
for m in pkgutil.walk_packages(seqvae.__path__, "seqvae."):
    if m.name not in skip:
        importlib.import_module(m.name)
from seqvae.cli import build_parser
from seqvae.kernels import reparameterize_kl
build_parser().format_help()
z, kl = reparameterize_kl(torch.zeros(2, 3), torch.zeros(2, 3), seed=0)
assert not blocked & set(m.split(".")[0] for m in sys.modules), sorted(blocked & set(sys.modules))
print("ok")
"""


def test_optional_packages_stay_optional():
    """Every module but the triton kernel's imports, the CLI builds and the CPU kernel path runs with triton and
    matplotlib uninstallable (a finder that refuses them, in a fresh interpreter)."""
    proc = subprocess.run([sys.executable, "-c", OPTIONAL_RUN, ",".join(OPTIONAL), ",".join(OPTIONAL_MODULES)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


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


LAZY_NAMES = """
import sys
import seqvae, seqvae.sentiment
from seqvae import ConfigError, InputError
light = sorted(m for m in ("torch", "numpy") if m in sys.modules)
from seqvae import Posterior, SentenceVAE, SeqVAE
from seqvae.api import Posterior as P, SeqVAE as S
from seqvae.model import SentenceVAE as M
assert (SeqVAE, Posterior, SentenceVAE) == (S, P, M)
for pkg in (seqvae, seqvae.sentiment):
    assert all(getattr(pkg, name) is not None for name in pkg.__all__) and set(pkg.__all__) <= set(dir(pkg))
    try:
        pkg.no_such_name
    except AttributeError:
        pass
    else:
        raise AssertionError(pkg)
print(light)
"""


def test_the_public_names_load_on_first_use():
    """`import seqvae` (and seqvae.sentiment), and `from seqvae import InputError, ConfigError`, load no torch or
    numpy; SeqVAE, Posterior, SentenceVAE and every name of __all__ still resolve, from the modules that define
    them, in a fresh interpreter."""
    proc = subprocess.run([sys.executable, "-c", LAZY_NAMES], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", (proc.stdout, proc.stderr[-2000:])
