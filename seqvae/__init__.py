"""seqvae: sentence variational autoencoders that use their latent space.

The model and the api (torch) load on first use of their names, so `import seqvae.cli` and `seqvae --help`
stay light (PEP 562)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .config import ConfigError, DataConfig, ModelConfig, RunConfig, TrainConfig
from .errors import InputError
from .lazy import lazy_names

if TYPE_CHECKING:
    from .api import SeqVAE
    from .checkpoint import CheckpointError
    from .decodestep import DecodingError
    from .model import SentenceVAE
    from .posterior import Posterior

__version__ = "0.1.0"

# The errors the API raises for bad input, all ValueErrors with a one-line message: InputError (sentences, sizes,
# a method a language model lacks), DecodingError (decoding options and codes), CheckpointError (a path that holds
# no valid checkpoint), ConfigError (a device this machine lacks, a bad config value).
__all__ = ["DataConfig", "ModelConfig", "RunConfig", "TrainConfig", "SentenceVAE", "SeqVAE", "Posterior",
           "InputError", "DecodingError", "CheckpointError", "ConfigError", "__version__"]


__getattr__, __dir__ = lazy_names(__name__, globals(),
                                  {"SentenceVAE": ".model", "SeqVAE": ".api", "Posterior": ".posterior",
                                   "DecodingError": ".decodestep", "CheckpointError": ".checkpoint"})
