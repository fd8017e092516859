"""The package's shape: the core never imports the sentiment layer (only cli.py registers its
commands), no seqvae modules import each other in a circle or import another module's private
names, and each sentiment module stays under 500 lines."""

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "seqvae"
SENTIMENT = PKG / "sentiment"


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(absolute module, imported names) of every import in a seqvae source file."""
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    package = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            names = [a.name for a in node.names]
            if not node.module:  # `from . import x`: each x is a module
                out += [(f"{mod}.{n}", []) for n in names]
            else:
                out.append((mod, names))
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
    return out


def test_no_core_module_imports_the_sentiment_layer():
    core = [p for p in PKG.rglob("*.py") if SENTIMENT not in p.parents and p.name != "cli.py"]
    assert len(core) > 10
    bad = [(p.name, m) for p in core for m, _ in _imports(p) if m.startswith("seqvae.sentiment")]
    assert not bad, bad


def test_modules_form_no_circle_and_share_no_private_names():
    """Across the whole package (lazy imports inside functions count too)."""
    graph = {}
    for p in PKG.rglob("*.py"):
        parts = p.relative_to(PKG.parent).with_suffix("").parts
        mod = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        deps = _imports(p)
        private = [(m, n) for m, names in deps for n in names if n.startswith("_") and m.startswith("seqvae")]
        assert not private, (p.name, private)
        graph[mod] = {m for m, _ in deps if m.startswith("seqvae.") and m != mod}
    assert {"seqvae.sentences", "seqvae.corpus", "seqvae.prepare", "seqvae.sentiment.head"} <= set(graph)
    state = {}

    def visit(m, path):
        assert state.get(m) != "open", " -> ".join(path + [m])
        if state.get(m) is None:
            state[m] = "open"
            for d in graph.get(m, ()):
                visit(d, path + [m])
            state[m] = "done"

    for m in graph:
        visit(m, [])


def test_no_module_reads_a_private_name_through_another_module():
    """`from . import atomic` then `atomic._x` is the same reach as `from .atomic import _x`."""
    bad = []
    for p in PKG.rglob("*.py"):
        tree = ast.parse(p.read_text(encoding="utf-8"))
        modules = {m.rsplit(".", 1)[-1] for m, names in _imports(p) if m.startswith("seqvae") and not names}
        modules |= {n for m, names in _imports(p) if m.startswith("seqvae") for n in names  # from seqvae.kernels
                    if (PKG.parent / m.replace(".", "/") / f"{n}.py").is_file()}  # import reference
        modules |= {a.asname for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
                    if a.asname and a.name.startswith("seqvae")}
        bad += [(p.name, f"{n.value.id}.{n.attr}") for n in ast.walk(tree)
                if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in modules
                and n.attr.startswith("_") and not n.attr.startswith("__")]
    assert not bad, bad


def test_sentiment_modules_are_small():
    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in SENTIMENT.glob("*.py")}
    assert max(sizes.values()) < 500, sizes


def test_the_readme_layout_names_every_core_module():
    """README's layout block lists each seqvae/*.py module (streams.py, added by one change, was left out)."""
    listed = (PKG.parent / "README.md").read_text(encoding="utf-8")
    missing = [p.name for p in PKG.glob("*.py") if p.name != "__init__.py" and f"\nseqvae/{p.name} " not in listed]
    assert not missing, missing
