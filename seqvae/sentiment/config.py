"""The sentiment layer's settings and its error type.

HeadConfig holds every setting of a sentiment head, with its meaning and default, as
seqvae/config.py does for the VAE. `HeadConfig()` is the linear head a user gets by default;
`HeadConfig(kind="set")` the set head shipped as the best head on frozen posterior means.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from ..config import ConfigError

CLASSES = ("negative", "positive")  # IMDB labels 0 and 1
KINDS = ("linear", "set")           # the heads behind the Head interface (heads.py)
UNITS = ("sentence", "clause")      # what a review is cut into before encoding (units.py)
SET_POOLS = ("mean", "attention")   # how the set head weighs a review's unit scores
C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)  # LR's C on standardised latent features


class ClassifyError(ConfigError):
    """Bad input to the sentiment layer (one-line message; the CLI exits 2)."""


@dataclass(frozen=True)
class HeadConfig:
    """How a sentiment head is fitted. The defaults are the shipped recipes."""

    kind: str = "linear"         # linear: logistic regression on the review's mean μ (steering uses it);
                                 # set: an MLP scores each unit's μ, the scores are pooled per review
    unit: str | None = None      # sentence | clause; None: the kind's recipe (linear: sentence, set: clause)
    seed: int = 0                # every random choice (folds, held-out slice, init, order) follows it
    # -- linear
    c_grid: tuple[float, ...] = C_GRID  # candidate inverse regularisation strengths
    c_folds: int = 5             # C is picked by this many stratified folds' cross-validated log-loss
    # -- set
    pool: str = "attention"      # mean: every unit weighs 1/n; attention: softmax of a learned score per unit
    members: int = 5             # heads averaged (their logits), fitted with seeds seed, seed+1, ...
    hidden: int = 256            # hidden units of the per-unit scorer f
    attention_hidden: int = 64   # hidden units of the attention scorer g
    dropout: float = 0.3         # dropout before f's output layer (0.1 on its input)
    epochs: int = 40             # most epochs; half of them below `min_holdout` labels
    batch_reviews: int = 128     # reviews per AdamW step
    lr: float = 1e-3             # AdamW learning rate
    patience: int = 6            # stop this many epochs after the best held-out one
    val_frac: float = 0.15       # held-out share of the labels that picks the epoch
    min_holdout: int = 200       # fewer labels: nothing held out, a fixed number of epochs, weight decay 0.1
    refit: bool = True           # refit on all labels for the chosen epochs (False: keep the early-stopped head)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ClassifyError(f"head kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.unit is None:
            object.__setattr__(self, "unit", "sentence" if self.kind == "linear" else "clause")
        if self.unit not in UNITS:
            raise ClassifyError(f"unit must be one of {', '.join(UNITS)}, got {self.unit!r}")
        if self.pool not in SET_POOLS:
            raise ClassifyError(f"the set head's pool must be one of {', '.join(SET_POOLS)}, got {self.pool!r}")
        if self.members < 1:
            raise ClassifyError(f"a set head needs at least one member, got {self.members}")
        if self.seed < 0 or self.epochs < 1 or self.c_folds < 2 or not self.c_grid:
            raise ClassifyError("seed must be >= 0, epochs >= 1, c_folds >= 2 and c_grid not empty")

    def replace(self, **changes) -> "HeadConfig":
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)
