"""Sentiment from a sentence VAE's posterior means: one Head interface, two heads a user picks.

    config.py     HeadConfig (the shipped recipes as defaults), ClassifyError
    units.py      a review -> sentences or clauses
    features.py   units -> posterior means (SentenceSet), cached; identities of weights
    data.py       IMDB reviews and labels; stratified draws
    calibrate.py  length calibration: how sure a head may be of a text of n units
    head.py       the Head interface: logits / predict_texts / save / load
    linear.py     LinearHead: logistic regression on the review's mean μ
    setmlp.py     SetHead: an MLP per unit, pooled (attention), members averaged
    heads.py      load_head (any saved head), fit_head (texts -> fitted, calibrated head)
    evaluate.py   a saved head on labelled reviews and snippets: accuracy, log-loss, ECE
    curve.py      accuracy against the label budget, with baselines
    steer.py      moving a sentence along the linear head's direction
    cli.py        `seqvae classify ACTION` and `seqvae steer`

The layer sits above the api: nothing in the core package imports it, except cli.py to register
its commands (tests/test_layering.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_names
from .config import ClassifyError, HeadConfig

if TYPE_CHECKING:
    from .heads import Head, LinearHead, SetHead, fit_head, load_head

__all__ = ["ClassifyError", "Head", "HeadConfig", "LinearHead", "SetHead", "fit_head", "load_head"]


# the heads (numpy, torch) load when first asked for: `seqvae --help` registers cli.py's commands without them
__getattr__, __dir__ = lazy_names(__name__, globals(),
                                  dict.fromkeys(["Head", "LinearHead", "SetHead", "fit_head", "load_head"], ".heads"))
