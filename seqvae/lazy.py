"""Names a package exports but imports on first use (PEP 562), so that importing the package stays light:
`import seqvae.cli` and `seqvae --help` load no torch.

    __getattr__, __dir__ = lazy_names(__name__, globals(), {"SeqVAE": ".api", "SentenceVAE": ".model"})
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

# a package's own plumbing for this pattern, which dir(package) leaves out: the future import, the TYPE_CHECKING
# guard of its type-only imports, this function
PLUMBING = ("annotations", "TYPE_CHECKING", "lazy_names")


def lazy_names(package: str, namespace: dict[str, Any], names: dict[str, str],
               ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level (__getattr__, __dir__) of `package` (its __name__), whose globals are `namespace`:
    names[name] is the module (relative to the package, ".api") that defines `name`; it is imported when the
    name is first asked for, and the name is then kept in `namespace` (no second call). dir(package) lists the
    package's names less PLUMBING."""

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(names[name], package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted((set(namespace) - set(PLUMBING)) | set(names))

    return __getattr__, __dir__
