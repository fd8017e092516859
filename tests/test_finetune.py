"""Fine-tuning the encoder under the set MLP head (seqvae.finetune), on tiny models and data."""

import json
import shutil

import numpy as np
import pytest
import torch

from seqvae import classify as C
from seqvae import features as Fe
from seqvae import finetune as F

_POS = ["great", "wonderful", "brilliant"]
_NEG = ["awful", "boring", "terrible"]
_SUBJ = ["the movie", "this film", "the plot", "the acting"]


def _reviews(n, seed):
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2)
    texts = []
    for label in y:
        words = _POS if label else _NEG
        k = rng.integers(1, 4)
        texts.append(" ".join(f"{_SUBJ[rng.integers(4)].capitalize()} was {words[rng.integers(3)]}." for _ in range(k)))
    return texts, y


@pytest.fixture(scope="module")
def blind(tmp_path_factory):
    """A SeqVAE whose encoder maps every sentence to μ = 0 (its μ/logσ² layer is zeroed): the frozen
    means carry nothing, so only fine-tuning can make them tell the classes apart."""
    from seqvae import checkpoint
    from seqvae.api import SeqVAE
    from seqvae.config import ModelConfig
    from seqvae.model import SentenceVAE
    from seqvae.tokenizer import build_word_tokenizer

    words = [f"{s} was {a}." for s in _SUBJ for a in _POS + _NEG]
    tok = build_word_tokenizer(words + [w.capitalize() for w in words])
    torch.manual_seed(0)
    model = SentenceVAE(ModelConfig(vocab_size=tok.vocab_size, embed_dim=8, hidden_dim=12, latent_dim=4))
    with torch.no_grad():
        model.encoder.to_stats.weight.zero_()
        model.encoder.to_stats.bias.zero_()
    ckpt = checkpoint.save(tmp_path_factory.mktemp("ft") / "ckpt", model, tok)
    return ckpt, SeqVAE.from_pretrained(ckpt, device="cpu")


def _encoder_state(vae):
    return {k: v.clone() for k, v in vae.model.encoder.state_dict().items()}


def test_tokenized_reviews_give_the_same_sentence_means_as_encode_reviews(blind):
    from seqvae.api import SeqVAE

    vae = SeqVAE.from_pretrained(blind[0], device="cpu")
    torch.manual_seed(3)
    with torch.no_grad():  # a non-blind encoder, so the means differ between sentences
        vae.model.encoder.to_stats.weight.normal_()
    texts = ["The movie was great. The plot was awful.", "", "This film was boring.", "The acting was great!"]
    reviews = F.tokenize_reviews(vae, texts)
    assert [len(r) for r in reviews] == [2, 0, 1, 1]
    sents, owner = F._flatten(reviews)
    with torch.no_grad():
        mu = F._sentence_mu(vae.model, sents, sub_batch=2).numpy()
    want = Fe.encode_reviews(vae, texts, progress=False).sentence_set()
    np.testing.assert_array_equal(owner.numpy(), want.owner)
    np.testing.assert_allclose(mu, want.mu, atol=1e-5)


def test_finetuning_learns_what_the_frozen_means_cannot_and_leaves_the_model_alone(blind):
    _, vae = blind
    before = _encoder_state(vae)
    texts, y = _reviews(240, seed=0)
    test_texts, y_test = _reviews(60, seed=1)
    frozen = C.fit_set_mlp(Fe.sentence_features(vae, texts, progress=False), y, seed=0)
    frozen_acc = (frozen.predict(Fe.sentence_features(vae, test_texts, progress=False)) == y_test).mean()
    assert frozen_acc == 0.5  # every μ is 0: the head sees one point
    ft = F.finetune_set_head(vae, texts, y, seed=0, epochs=6, lr=1e-2, head_lr=3e-3, progress=False)
    assert (ft.predict(vae, test_texts) == y_test).mean() >= 0.9
    m = ft.meta
    assert m["n_train"] == 240 and m["val_accuracy_frozen"] == 0.5 and m["best_epoch"] >= 1
    assert m["val_accuracy"] == max(m["val_history"]) == m["val_history"][m["best_epoch"]]
    for k, v in _encoder_state(vae).items():  # the checkpoint's own encoder is untouched
        assert torch.equal(v, before[k]), k
    tuned = ft.apply(vae).model.encoder.state_dict()
    assert not torch.equal(tuned["to_stats.weight"], before["to_stats.weight"])
    assert vae.model.decoder is not ft.apply(vae).model.decoder  # a copy, not a shared module


def test_finetuning_is_reproducible_and_keeps_the_frozen_start_when_nothing_helps(blind):
    _, vae = blind
    texts, y = _reviews(200, seed=2)
    a = F.finetune_set_head(vae, texts, y, seed=5, epochs=2, lr=1e-2, progress=False)
    b = F.finetune_set_head(vae, texts, y, seed=5, epochs=2, lr=1e-2, progress=False)
    for k in a.encoder_state:
        assert torch.equal(a.encoder_state[k], b.encoder_state[k]), k
    # a step so large that training diverges: held-out accuracy never beats the start, which is kept
    c = F.finetune_set_head(vae, texts, y, seed=5, epochs=2, lr=1e6, head_lr=1e6, patience=1, progress=False)
    if c.meta["best_epoch"] == 0:
        for k, v in _encoder_state(vae).items():
            assert torch.equal(c.encoder_state[k], v), k
        assert c.meta["neg_elbo_tuned"] == c.meta["neg_elbo_frozen"]  # the same encoder, the same bound
    assert c.meta["val_accuracy"] >= c.meta["val_accuracy_frozen"]
    # below 200 labels nothing is held out: half the epochs, the last one kept
    small = F.finetune_set_head(vae, texts[90:110], y[90:110], seed=0, epochs=4, lr=1e-2, progress=False)
    assert small.meta["epochs_run"] == small.meta["best_epoch"] == 2 and "val_accuracy" not in small.meta
    with pytest.raises(C.ClassifyError, match="both classes"):
        F.finetune_set_head(vae, texts[:50], y[:50], progress=False)
    with pytest.raises(C.ClassifyError, match="epochs >= 1"):
        F.finetune_set_head(vae, texts, y, epochs=0, progress=False)


def test_the_elbo_term_keeps_the_tuned_encoder_a_posterior_of_the_decoder(blind):
    """Each fit reports the bound of the same held-out sentences under the frozen and the tuned
    encoder; the ELBO term (decoder frozen) keeps the tuned one closer to the frozen start."""
    _, vae = blind
    before = _encoder_state(vae)
    texts, y = _reviews(240, seed=0)
    kw = dict(seed=0, epochs=3, lr=1e-1, head_lr=3e-3, progress=False)
    plain = F.finetune_set_head(vae, texts, y, **kw)
    held = plain.meta
    assert held["check_sentences"] > 0 and held["elbo_weight"] == 0.0
    assert held["neg_elbo_frozen"] == pytest.approx(held["rec_frozen"] + held["kl_frozen"], abs=2e-3)
    assert held["kl_frozen"] < 1e-6  # μ = 0, logσ² = 0: q is the prior
    # tuning for the labels spreads the means: KL, and with an untrained decoder the bound, grow
    assert held["best_epoch"] >= 1 and held["kl_tuned"] > 1.0 and held["neg_elbo_tuned"] > held["neg_elbo_frozen"]
    kept = F.finetune_set_head(vae, texts, y, elbo_weight=1.0, **kw)
    assert kept.meta["elbo_weight"] == 1.0
    assert kept.meta["neg_elbo_frozen"] == held["neg_elbo_frozen"]  # same sentences, same draws
    assert kept.meta["kl_tuned"] < 0.5 * held["kl_tuned"]
    assert kept.meta["neg_elbo_tuned"] < held["neg_elbo_tuned"]
    for k, v in _encoder_state(vae).items():  # the ELBO term trains the copy's encoder only
        assert torch.equal(v, before[k]), k
    with pytest.raises(C.ClassifyError, match="elbo_weight >= 0"):
        F.finetune_set_head(vae, texts, y, elbo_weight=-1.0, progress=False)


def test_save_load_round_trip_and_cli(blind, tmp_path, capsys):
    from seqvae.checkpoint import CheckpointError
    from seqvae.cli import main

    ckpt = tmp_path / "ckpt"
    shutil.copytree(blind[0], ckpt)
    _, vae = blind
    with pytest.raises(CheckpointError, match="--head finetuned"):
        F.FinetunedHead.load(ckpt)
    texts, y = _reviews(200, seed=4)
    ft = F.finetune_set_head(vae, texts, y, seed=0, epochs=2, lr=1e-2, progress=False)
    ft.meta["model_sha256"] = "x"
    ft.save(ckpt)
    back = F.FinetunedHead.load(ckpt)
    assert back.meta == json.loads(json.dumps(ft.meta)) and back.head.meta == {}
    probe = ["The plot was great. The acting was awful.", "This film was boring."]
    np.testing.assert_allclose(back.predict_proba(vae, probe), ft.predict_proba(vae, probe), atol=1e-6)

    attn = F.finetune_set_head(vae, texts, y, seed=0, epochs=1, lr=1e-2, pool="attention", progress=False)
    (tmp_path / "attn").mkdir()
    attn.save(tmp_path / "attn")
    attn_back = F.FinetunedHead.load(tmp_path / "attn")
    assert attn.head.pool == attn_back.head.pool == "attention" and attn.meta["epochs_run"] == 1
    np.testing.assert_allclose(attn_back.predict_proba(vae, probe), attn.predict_proba(vae, probe), atol=1e-6)

    other = C.SetMLP.load  # the set head's files are not touched by the fine-tuned head
    with pytest.raises(CheckpointError, match="--head set"):
        other(ckpt)
    assert main(["classify", str(ckpt), "--head", "finetuned", "--texts", *probe, "--json"]) == 0
    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    assert "other weights" in captured.err  # model_sha256 "x" is not this checkpoint's
    np.testing.assert_allclose([r["p_positive"] for r in rows], ft.predict_proba(vae, probe)[:, 1], atol=1e-6)

    # a head whose encoder does not fit the model: one clear error
    from seqvae.api import SeqVAE
    from seqvae.config import ModelConfig
    from seqvae.model import SentenceVAE

    wide = SeqVAE(SentenceVAE(ModelConfig(vocab_size=vae.model.cfg.vocab_size, embed_dim=8, hidden_dim=16,
                                          latent_dim=4)), vae.tokenizer)
    with pytest.raises(C.ClassifyError, match="does not fit this model"):
        back.apply(wide)


def test_cli_train_and_curve(tiny, tmp_path, capsys):
    from seqvae.api import SeqVAE
    from seqvae.cli import main

    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny[0], ckpt)
    root = tiny[1]
    base = ["classify", str(ckpt), "--data-root", str(root), "--no-progress", "--no-cache"]
    assert main(base + ["--train", "--head", "finetuned", "--finetune-epochs", "2"]) == 0
    saved = json.loads(capsys.readouterr().out)
    assert saved["n_train"] == 40 and saved["epochs_run"] == 1 and len(saved["saved"]) == 2
    assert (ckpt / F.FT_HEAD_WEIGHTS).exists() and not (ckpt / C.SET_HEAD_WEIGHTS).exists()
    # the length calibration is fitted through the tuned encoder and applied by --texts
    ft = F.FinetunedHead.load(ckpt)
    assert ft.meta["length_scales"] == saved["length_scales"] and len(saved["length_scales"]) >= 1
    texts = ["The movie was great.", "The plot was dull. The acting was boring."]
    assert main(["classify", str(ckpt), "--head", "finetuned", "--texts", *texts, "--json"]) == 0
    cap = capsys.readouterr()
    assert "no length calibration" not in cap.err
    tuned = ft.apply(SeqVAE.from_pretrained(ckpt))
    z = ft.head.logits(Fe.sentence_features(tuned, texts, progress=False)).detach().numpy()
    s = saved["length_scales"]
    want = 1 / (1 + np.exp(-np.array([s[0], s[min(2, len(s)) - 1]]) * z))
    np.testing.assert_allclose([r["p_positive"] for r in json.loads(cap.out)], want, atol=1e-6)

    out = tmp_path / "curve"
    assert main(base + ["--curve", "--out", str(out), "--budgets", "10,1000", "--draws", "2", "--no-baselines",
                        "--no-mlp", "--no-set", "--finetune", "--finetune-epochs", "2"]) == 0
    res = json.loads((out / "curve.json").read_text())
    assert set(res["methods"]) == {"vae_lr", "vae_finetuned"} and res["finetune"] == {"epochs": 2, "lr": 1e-4, "elbo_weight": 0.0}
    fits = res["methods"]["vae_finetuned"]["budgets"]
    assert [len(fits[b]["runs"]) for b in ("10", "40")] == [2, 1]
    assert all(f["epochs_run"] == 1 and f["neg_elbo_tuned"] > 0 for b in fits.values() for f in b["fit"])
    assert "fine-tuned encoder" in (out / "curve.md").read_text()

    capsys.readouterr()
    assert main(base + ["--curve", "--finetune", "--finetune-epochs", "0"]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "--finetune-epochs" in err[0]


def test_bound_script_scores_both_encoders_on_the_same_sentences(tiny, tmp_path, capsys):
    import runpy
    from pathlib import Path

    main = runpy.run_path(str(Path(__file__).resolve().parents[1] / "scripts" / "finetuned_bound.py"))["main"]
    ckpt, root = tmp_path / "ckpt", tiny[1]
    shutil.copytree(tiny[0], ckpt)
    args = [str(ckpt), "--data-root", str(root), "--sentences", "30"]
    assert main(args) == 2  # no fine-tuned head yet: one line, no output file
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "--head finetuned" in err[0]

    from seqvae.api import SeqVAE

    vae = SeqVAE.from_pretrained(ckpt, device="cpu")
    texts, y = _reviews(200, seed=4)
    F.finetune_set_head(vae, texts, y, seed=0, epochs=2, lr=1e-1, elbo_weight=0.5, progress=False).save(ckpt)
    assert main(args + ["--samples", "3", "--json", str(tmp_path / "b.json")]) == 0
    res = json.loads((tmp_path / "b.json").read_text())
    own, tuned = res[f"{ckpt}:encoder"], res[f"{ckpt}:fine-tuned encoder"]
    assert own["sentences"] == tuned["sentences"] == 30 and own["tokens"] == tuned["tokens"]
    assert tuned["elbo_weight"] == 0.5 and own["kl"] != tuned["kl"]  # two encoders, one decoder
    assert own["nll"] <= own["neg_elbo"] + 1e-3 and tuned["nll"] <= tuned["neg_elbo"] + 1e-3
    assert "fine-tuned encoder" in capsys.readouterr().out
