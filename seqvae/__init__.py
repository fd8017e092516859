"""seqvae: sentence variational autoencoders that use their latent space.

The model and the api (torch) load on first use of their names, so `import seqvae.cli` and `seqvae --help`
stay light (PEP 562)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .config import DataConfig, ModelConfig, RunConfig, TrainConfig
from .lazy import lazy_names

if TYPE_CHECKING:
    from .api import Posterior, SeqVAE
    from .model import SentenceVAE

__version__ = "0.1.0"

__all__ = ["DataConfig", "ModelConfig", "RunConfig", "TrainConfig", "SentenceVAE", "SeqVAE", "Posterior", "__version__"]


__getattr__, __dir__ = lazy_names(__name__, globals(),
                                  {"SentenceVAE": ".model", "SeqVAE": ".api", "Posterior": ".api"})
