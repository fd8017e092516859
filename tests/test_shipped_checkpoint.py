"""The checkpoint(s) shipped in checkpoints/ load, match their config, and produce sentences."""

import json
from pathlib import Path

import pytest
import torch

from seqvae import SeqVAE, checkpoint

SHIPPED = sorted(p for p in (Path(__file__).resolve().parent.parent / "checkpoints").iterdir() if p.is_dir())


def test_a_checkpoint_is_shipped():
    assert SHIPPED, "checkpoints/ holds no checkpoint directory"


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_checkpoint_loads_and_generates(path):
    for name in ("config.json", "model.safetensors", "metrics.json", "README.md"):
        assert (path / name).is_file(), f"{path.name} lacks {name}"
    assert (path / "model.safetensors").stat().st_size < 15 * 2**20
    model, tok, cfg = checkpoint.load(path)  # strict: config and weights agree key by key and shape by shape
    assert cfg["model"]["vocab_size"] == tok.vocab_size
    metrics = json.loads((path / "metrics.json").read_text())
    assert "test" in metrics and metrics["test"]["sentences"] > 0

    vae = SeqVAE.from_pretrained(path, device="cpu")
    torch.set_num_threads(1)
    samples = vae.sample(4, strategy="greedy", seed=0, max_len=30)
    assert len(samples) == 4 and all(isinstance(s, str) for s in samples)
    assert sum(len(s.split()) for s in samples) > 4  # not empty strings
    assert samples == vae.sample(4, strategy="greedy", seed=0, max_len=30)
    if not vae.latent:  # the shipped GRU-LM baseline: it samples and scores, it has no encoder
        assert torch.isfinite(vae.score(["a dull , boring film ."])).all()
        return
    if vae.prior is not None:  # a shipped aggregate prior: strictly loaded, and the default for sampling
        assert samples == vae.sample(4, strategy="greedy", seed=0, max_len=30, prior="aggregate")
    post = vae.encode(["the acting was wonderful and the story moved me .", "a dull , boring film ."])
    assert post.mean.shape == (2, cfg["model"]["latent_dim"]) and torch.isfinite(post.mean).all()


HEADS = [(p, kind) for p in SHIPPED for kind in ("linear", "set")
         if (p / {"linear": "classifier.json", "set": "set_classifier.json"}[kind]).is_file()]


@pytest.mark.parametrize("path,kind", HEADS, ids=[f"{p.name}-{k}" for p, k in HEADS])
def test_shipped_sentiment_head_fits_its_weights(path, kind):
    """Every head a shipped checkpoint holds (none is skipped: the list is of heads that exist)."""
    from seqvae.sentiment.features import checkpoint_id
    from seqvae.sentiment.heads import load_head

    head = load_head(path, kind, model_id=checkpoint_id(path))  # fitted on these weights, or a one-line error
    scales = head.meta.get("length_scales")  # shipped heads are calibrated for short texts (calibrate.py)
    assert scales and all(s > 0 for s in scales) and scales[0] < scales[-1], "no length calibration: calibrate"
    vae = SeqVAE.from_pretrained(path, device="cpu")
    torch.set_num_threads(1)
    pos = ["A wonderful film, moving and beautifully acted.", "I loved this movie, it is a masterpiece.",
           "One of the best films of the year.", "Great performances and a beautiful story."]
    neg = ["A dull, boring mess and a waste of time.", "This is the worst movie I have ever seen.",
           "Terrible acting and an awful script.", "Avoid this film at all costs."]
    p_pos = [p["p_positive"] for p in head.predict_texts(vae, pos + neg)]
    # a small probe is not right on every sentence, but it must rank plain praise above plain pans
    assert sum(p_pos[:4]) / 4 > sum(p_pos[4:]) / 4 + 0.2, p_pos
