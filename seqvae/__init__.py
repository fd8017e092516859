"""seqvae: sentence variational autoencoders that use their latent space."""

from .config import DataConfig, ModelConfig, RunConfig, TrainConfig
from .model import SentenceVAE
from .api import Posterior, SeqVAE

__version__ = "0.1.0"

__all__ = ["DataConfig", "ModelConfig", "RunConfig", "TrainConfig", "SentenceVAE", "SeqVAE", "Posterior", "__version__"]
