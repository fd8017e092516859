"""seqvae: sentence variational autoencoders that use their latent space.

The model and the api (torch) load on first use of their names, so `import seqvae.cli` and `seqvae --help`
stay light (PEP 562)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import DataConfig, ModelConfig, RunConfig, TrainConfig

if TYPE_CHECKING:
    from .api import Posterior, SeqVAE
    from .model import SentenceVAE

__version__ = "0.1.0"

__all__ = ["DataConfig", "ModelConfig", "RunConfig", "TrainConfig", "SentenceVAE", "SeqVAE", "Posterior", "__version__"]


def __getattr__(name: str) -> Any:
    """SentenceVAE, SeqVAE, Posterior: imported (with torch) when first asked for."""
    if name == "SentenceVAE":
        from . import model as module
    elif name in ("SeqVAE", "Posterior"):
        from . import api as module
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
