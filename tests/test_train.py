import json
import os
import shutil
import stat

import numpy as np
import pytest
import torch

from seqvae import checkpoint
from seqvae.config import ConfigError, ModelConfig, RunConfig, TrainConfig
from seqvae.data import collate
from seqvae.train import Trainer

TINY_MODEL = ModelConfig(embed_dim=16, hidden_dim=32, latent_dim=8)


def tiny_cfg(model=TINY_MODEL, **train):
    base = dict(batch_size=16, max_steps=20, eval_every=10, log_every=5, kl_schedule="logistic", kl_x0=10,
                kl_k=0.3, word_dropout=0.2, seed=0)
    return RunConfig(model=model, train=TrainConfig(**{**base, **train}))


@pytest.mark.parametrize("interrupt_at", [10, 17])
def test_resume_equals_uninterrupted(tiny_data_dir, tmp_path, interrupt_at):
    full = Trainer(tiny_cfg(), tiny_data_dir, tmp_path / "full", device="cpu", progress=False)
    full.fit()
    part = Trainer(tiny_cfg(), tiny_data_dir, tmp_path / "part", device="cpu", progress=False)
    # "interrupted" right after the step-10 checkpoint, or mid-interval: steps 11..17 are lost and redone
    part.fit(until_step=interrupt_at)
    if interrupt_at == 17:  # a crash can also leave a half-written log line
        with open(tmp_path / "part" / "metrics.jsonl", "a") as f:
            f.write('{"step": 18, "spl')
    resumed = Trainer.resume(tmp_path / "part", device="cpu", progress=False)
    assert resumed.step == 10
    resumed.fit()
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed training diverged from uninterrupted training"
    rows_full = [json.loads(x) for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    rows_res = [json.loads(x) for x in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    strip = lambda rows: [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in rows]  # noqa: E731
    assert strip(rows_full) == strip(rows_res)


def test_train_step_packs_length_sorted_batches(tiny_data_dir, tmp_path, monkeypatch):
    """The trainer sorts each batch longest first, so the encoder packs it without a reordering index
    (whose host-to-device copy would synchronise a GPU every step)."""
    import seqvae.model as model_mod

    seen = []
    real = model_mod.pack_padded_sequence

    def spy(x, lens, *, batch_first, enforce_sorted):
        seen.append(enforce_sorted)
        return real(x, lens, batch_first=batch_first, enforce_sorted=enforce_sorted)

    monkeypatch.setattr(model_mod, "pack_padded_sequence", spy)
    tr = Trainer(tiny_cfg(), tiny_data_dir, tmp_path / "run", device="cpu", progress=False)
    lengths = tr.train_set.lengths
    by_len = sorted(range(len(lengths)), key=lambda i: lengths[i])
    idx = by_len[:: max(1, len(by_len) // 16)][:16]  # a spread of lengths, shortest first: the worst order
    assert len(set(lengths[idx].tolist())) > 1
    stats, n_tokens = tr.train_step(idx)
    assert seen == [True] and n_tokens == int(lengths[idx].sum()) + len(idx)


def test_run_dir_layout_and_refusal_to_overwrite(tiny_data_dir, tmp_path):
    Trainer(tiny_cfg(max_steps=10), tiny_data_dir, tmp_path / "run", device="cpu", progress=False).fit()
    for sub in ("best", "last"):
        names = {p.name for p in (tmp_path / "run" / sub).iterdir()}
        assert {"config.json", "model.safetensors", "metrics.json", "vocab.txt"} <= names
    assert (tmp_path / "run" / "last" / "trainer_state.pt").exists()
    assert not (tmp_path / "run" / "best" / "trainer_state.pt").exists()
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert {r["split"] for r in rows} == {"train", "valid"}
    with pytest.raises(Exception, match="already holds a run"):
        Trainer(tiny_cfg(), tiny_data_dir, tmp_path / "run", device="cpu", progress=False)


def test_language_model_baseline_trains(tiny_data_dir, tmp_path):
    cfg = RunConfig(model=TINY_MODEL.replace(latent=False), train=tiny_cfg(max_steps=30).train)
    tr = Trainer(cfg, tiny_data_dir, tmp_path / "lm", device="cpu", progress=False)
    first = tr.validate()["nll"]
    tr.fit()
    assert tr.validate()["nll"] < first - 1.0
    model, _, _ = checkpoint.load(tmp_path / "lm")
    assert model.encoder is None


def test_tiny_vae_overfits_sixteen_sentences(tiny_data_dir, tmp_path):
    """With beta kept small, the latent carries the sentence: greedy reconstruction is near perfect."""
    cfg = RunConfig(model=ModelConfig(embed_dim=32, hidden_dim=64, latent_dim=16),
                    train=TrainConfig(batch_size=16, max_steps=250, eval_every=250, log_every=50,
                                      kl_schedule="constant", kl_max=0.01, lr=3e-3, seed=0))
    tr = Trainer(cfg, tiny_data_dir, tmp_path / "fit", device="cpu", progress=False)
    idx = list(range(16))
    for _ in range(cfg.train.max_steps):
        tr.train_step(idx)
    model = tr.model.eval()
    batch = collate([tr.train_set[i] for i in idx])
    with torch.no_grad():
        mu, _ = model.encode(batch.src, batch.src_lens)
        hidden, _ = model.decoder(batch.dec_in, mu)  # teacher-forced, z = posterior mean
        pred = model.decoder.logits(hidden).argmax(-1)
    mask = batch.target != 0
    acc = float((pred[mask] == batch.target[mask]).float().mean())
    assert acc > 0.97, f"token accuracy {acc:.3f}"


def test_resuming_a_finished_run_changes_nothing(tiny_data_dir, tmp_path):
    Trainer(tiny_cfg(max_steps=10), tiny_data_dir, tmp_path / "run", device="cpu", progress=False).fit()
    log = (tmp_path / "run" / "metrics.jsonl").read_text()
    best = (tmp_path / "run" / "best" / "model.safetensors").read_bytes()
    summary = Trainer.resume(tmp_path / "run", device="cpu", progress=False).fit()
    assert summary["step"] == 10
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == log  # no second evaluation row
    assert (tmp_path / "run" / "best" / "model.safetensors").read_bytes() == best


def test_early_stopping_survives_resume(tiny_data_dir, tmp_path, monkeypatch):
    # a validation score that never improves: patience 1 stops at the second evaluation (step 10)
    validate = Trainer.validate
    monkeypatch.setattr(Trainer, "validate", lambda self: {**validate(self), "nll": 100.0})
    cfg = tiny_cfg(max_steps=40, eval_every=5, patience=1)
    summary = Trainer(cfg, tiny_data_dir, tmp_path / "run", device="cpu", progress=False).fit()
    assert summary["stopped_early"] and summary["step"] == 10
    resumed = Trainer.resume(tmp_path / "run", device="cpu", progress=False)
    assert resumed.stopped_early
    assert resumed.fit()["step"] == 10
    # asked for more steps, it refuses (it exited 0 having trained none)
    with pytest.raises(ConfigError, match=r"stopped early at step 10 \(train.patience 1\); --max-steps cannot"):
        Trainer.resume(tmp_path / "run", max_steps=80, device="cpu", progress=False)


def test_overwrite_clears_the_earlier_run(tiny_data_dir, tmp_path):
    Trainer(tiny_cfg(max_steps=20), tiny_data_dir, tmp_path / "run", device="cpu", progress=False).fit()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    Trainer(tiny_cfg(max_steps=5, eval_every=5), tiny_data_dir, tmp_path / "run", device="cpu", progress=False,
            overwrite=True).fit()
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert max(r["step"] for r in rows) == 5
    for sub in ("best", "last"):
        assert json.loads((tmp_path / "run" / sub / "metrics.json").read_text())["step"] == 5
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"  # only the run's own files go


def test_checkpoint_files_get_ordinary_permissions(tiny_data_dir, tmp_path):
    old = os.umask(0o022)
    try:
        Trainer(tiny_cfg(max_steps=5, eval_every=5), tiny_data_dir, tmp_path / "run", device="cpu",
                progress=False).fit()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "run" / "best").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "run" / "best" / "model.safetensors").stat().st_mode) == 0o644


def test_bow_loss_is_added_and_logged_and_needs_the_head(tiny_data_dir, tmp_path):
    with pytest.raises(ConfigError, match="bow_head"):
        tiny_cfg(bow_weight=1.0)
    cfg = RunConfig(model=TINY_MODEL.replace(bow_head=True), train=tiny_cfg(max_steps=5, log_every=5).train)
    weights = {}
    for w in (0.0, 2.0):
        tr = Trainer(RunConfig(model=cfg.model, train=cfg.train.replace(bow_weight=w)), tiny_data_dir,
                     tmp_path / f"bow{w}", device="cpu", progress=False)
        tr.fit()
        row = json.loads((tmp_path / f"bow{w}" / "metrics.jsonl").read_text().splitlines()[0])
        assert row["bow"] > 0
        weights[w] = (row, tr.model.bow.weight.detach().clone())
    # same seed and batches: the weighted term is the only difference in the loss ...
    (r0, b0), (r2, b2) = weights[0.0], weights[2.0]
    assert r2["loss"] > r0["loss"] + r0["bow"]
    # ... and it is what trains the head (with weight 0 its gradient is zero)
    init = Trainer(RunConfig(model=cfg.model, train=cfg.train), tiny_data_dir, tmp_path / "init", device="cpu",
                   progress=False).model.bow.weight
    assert torch.equal(b0, init) and not torch.equal(b2, init)
    model, _, _ = checkpoint.load(tmp_path / "bow2.0" / "last")
    assert torch.equal(model.bow.weight, b2)  # saved and loaded with the model


def test_mean_rec_term_is_added_and_needs_a_vae(tiny_data_dir, tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="mean_rec_weight > 0 needs a VAE"):
        tiny_cfg(TINY_MODEL.replace(latent=False), mean_rec_weight=1.0)
    with pytest.raises(ConfigError, match="mean_rec_weight must be >= 0"):
        TrainConfig.from_dict({"mean_rec_weight": -1.0})
    from seqvae import model as model_module

    seen = []  # the training step's loss is the ELBO plus w * mean(-log p(x|mu)), from the same forward pass
    forward = model_module.SentenceVAE.forward

    def spy(self, *a, **kw):
        out = forward(self, *a, **kw)
        seen.append(out)
        return out

    monkeypatch.setattr(model_module.SentenceVAE, "forward", spy)
    losses = {}
    for w in (0.0, 2.0):
        seen.clear()
        Trainer(tiny_cfg(max_steps=1, log_every=1, kl_schedule="constant", mean_rec_weight=w), tiny_data_dir,
                tmp_path / f"m{w}",
                device="cpu", progress=False).fit()
        step = seen[0]
        assert (step.rec_mean is None) == (w == 0)
        losses[w] = json.loads((tmp_path / f"m{w}" / "metrics.jsonl").read_text().splitlines()[0])["loss"]
        if w:
            elbo = float((step.rec + step.kl).mean().detach())  # beta 1 (constant schedule), no free bits
            expected = elbo + w * float(step.rec_mean.mean().detach())
    assert losses[2.0] > losses[0.0]
    assert expected == pytest.approx(losses[2.0], rel=1e-4)


def spy_forward(monkeypatch) -> list:
    """A list that every SentenceVAE forward call appends its (src, src_lens, dec_in, target) to, cloned."""
    from seqvae import model as model_module

    seen = []
    forward = model_module.SentenceVAE.forward

    def spy(self, src, src_lens, dec_in, target, **kw):
        seen.append((src.clone(), src_lens.clone(), dec_in.clone(), target.clone()))
        return forward(self, src, src_lens, dec_in, target, **kw)

    monkeypatch.setattr(model_module.SentenceVAE, "forward", spy)
    return seen


def test_encoder_deletion_damages_only_the_encoders_input_and_resumes_exactly(tiny_data_dir, tmp_path,
                                                                            monkeypatch):
    with pytest.raises(ConfigError, match="encoder_deletion must be in"):
        TrainConfig.from_dict({"encoder_deletion": 1.0})
    with pytest.raises(ConfigError, match="encoder_deletion > 0 needs a VAE"):
        tiny_cfg(TINY_MODEL.replace(latent=False), encoder_deletion=0.2, word_dropout=0.0)
    seen = spy_forward(monkeypatch)
    cfg = tiny_cfg(encoder_deletion=0.5)
    tr = Trainer(cfg, tiny_data_dir, tmp_path / "run", device="cpu", progress=False)
    idx = list(range(16))
    tr.train_step(idx)
    src, src_lens, _, target = seen[0]
    whole = [tr.train_set[i] for i in idx]
    order = sorted(range(16), key=lambda j: -len(whole[j]))  # the trainer packs longest first
    expect = collate([whole[j] for j in order])
    assert torch.equal(target, expect.target)  # the decoder still writes every sentence whole
    assert (src_lens <= expect.src_lens).all() and src_lens.sum() < expect.src_lens.sum()
    for row, n, sent in zip(src, src_lens, (whole[j] for j in order)):
        kept, it = row[: int(n)].tolist(), iter(sent.tolist())
        assert all(tok in it for tok in kept)  # what the encoder read is the sentence with tokens left out
    monkeypatch.undo()
    full = Trainer(cfg, tiny_data_dir, tmp_path / "full", device="cpu", progress=False)
    full.fit()
    part = Trainer(cfg, tiny_data_dir, tmp_path / "part", device="cpu", progress=False)
    part.fit(until_step=15)
    resumed = Trainer.resume(tmp_path / "part", device="cpu", progress=False)
    resumed.fit()
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a), "the deletions were not replayed on resume"


def test_word_dropout_replaces_only_the_decoders_input_at_its_rate(tiny_data_dir, tmp_path, monkeypatch):
    seen = spy_forward(monkeypatch)
    idx = list(range(32))
    for rate in (0.0, 0.5):
        seen.clear()
        tr = Trainer(tiny_cfg(word_dropout=rate), tiny_data_dir, tmp_path / f"wd{rate}", device="cpu", progress=False)
        tr.train_step(idx)
        whole = [tr.train_set[i] for i in idx]
        expect = collate([whole[j] for j in sorted(range(32), key=lambda j: -len(whole[j]))])  # longest first
        src, _, dec_in, target = seen[0]
        assert torch.equal(src, expect.src) and torch.equal(target, expect.target)  # encoder and targets whole
        unk = tr.cfg.model.unk_id
        changed = dec_in != expect.dec_in
        assert (dec_in[changed] == unk).all() and not changed[:, 0].any()  # only <unk>, never BOS
        real = (expect.dec_in != tr.cfg.model.pad_id) & (expect.dec_in != unk)
        real[:, 0] = False
        share = float(changed.sum()) / float(real.sum())
        assert (share == 0.0) if rate == 0 else (0.35 < share < 0.65), (rate, share)


def test_free_nats_per_token_and_free_bits_are_wired_into_the_step(tiny_data_dir, tmp_path):
    """A budget no tiny sentence (free nats) or dimension (free bits) reaches takes the KL out of the gradient:
    the same steps as beta = 0; a small one leaves some above theirs and the steps differ."""
    def weights(out, **train):
        tr = Trainer(tiny_cfg(kl_schedule="constant", **train), tiny_data_dir, tmp_path / out, device="cpu",
                     progress=False)
        for step in range(4):
            tr.train_step(list(range(16 * step, 16 * step + 16)))
        return tr.model.state_dict()

    free, zero = weights("free", kl_max=1.0, free_nats_per_token=1000.0), weights("zero", kl_max=0.0)
    assert all(torch.equal(free[k], zero[k]) for k in free)
    some = weights("some", kl_max=1.0, free_nats_per_token=0.01)
    assert not all(torch.equal(some[k], zero[k]) for k in some)
    bits = weights("bits", kl_max=1.0, free_bits=1000.0)
    assert all(torch.equal(bits[k], zero[k]) for k in bits)
    some = weights("some-bits", kl_max=1.0, free_bits=0.01)
    assert not all(torch.equal(some[k], zero[k]) for k in some)


def test_init_from_starts_from_the_checkpoint_weights_and_checks_it_fits(tiny_data_dir, tmp_path):
    Trainer(tiny_cfg(max_steps=5), tiny_data_dir, tmp_path / "base", device="cpu", progress=False).fit()
    base, _, _ = checkpoint.load(tmp_path / "base" / "last")
    tuned = Trainer(tiny_cfg(max_steps=5, seed=1, init_from=str(tmp_path / "base")), tiny_data_dir,
                    tmp_path / "tuned", device="cpu", progress=False)
    a, b = base.state_dict(), tuned.model.state_dict()
    assert tuned.step == 0 and all(torch.equal(a[k], b[k]) for k in a)
    fresh = Trainer(tiny_cfg(max_steps=5, seed=1), tiny_data_dir, tmp_path / "fresh", device="cpu", progress=False)
    assert not all(torch.equal(a[k], fresh.model.state_dict()[k]) for k in a)  # the weights came from base
    tuned.fit()
    assert checkpoint.read_config(tmp_path / "tuned" / "last")["train"]["init_from"] == str(tmp_path / "base")
    # a resumed fine-tuning run continues from its own last/, not from the checkpoint it started from
    resumed = Trainer.resume(tmp_path / "tuned", max_steps=5, device="cpu", progress=False)
    c = resumed.model.state_dict()
    assert all(torch.equal(c[k], tuned.model.state_dict()[k]) for k in c)

    other = RunConfig(model=TINY_MODEL.replace(hidden_dim=48), train=tiny_cfg(init_from=str(tmp_path / "base")).train)
    with pytest.raises(ConfigError, match="hidden_dim"):
        Trainer(other, tiny_data_dir, tmp_path / "other", device="cpu", progress=False)
    # same vocabulary size, two pieces swapped: the ids would mean other words
    swapped = tmp_path / "swapped"
    shutil.copytree(tiny_data_dir, swapped)
    lines = (swapped / "vocab.txt").read_text().splitlines()
    lines[-1], lines[-2] = lines[-2], lines[-1]
    (swapped / "vocab.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match="tokenizer"):
        Trainer(tiny_cfg(init_from=str(tmp_path / "base")), swapped, tmp_path / "sw", device="cpu", progress=False)
    assert not (tmp_path / "other").exists() and not (tmp_path / "sw").exists()


# ---------------------------------------------------------------------------- several processes (torchrun)
def _torchrun(args, nproc=2):
    """`seqvae train ARGS` in `nproc` CPU processes under torchrun (gloo), as a user launches it."""
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           "-m", "seqvae.cli", "train", "--device", "cpu", "--no-progress", *map(str, args)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-12000:]  # the children's tracebacks come before torchrun's summary
    return res


def _config_file(path, cfg):
    path.write_text(json.dumps({"model": cfg.model.to_dict(), "train": cfg.train.to_dict()}))
    return path


def _rows(run):
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def test_two_processes_train_what_one_does(tiny_data_dir, tmp_path):
    """torchrun splits every batch over the processes and DDP averages the gradients with each
    process's share as weight: a deterministic model (the LM, no dropout) ends where one process
    ends, batch for batch, also when a batch (7 sentences) does not split evenly."""
    from safetensors.torch import load_file

    cfg = tiny_cfg(TINY_MODEL.replace(latent=False, embed_dropout=0.0), batch_size=7, max_steps=30,
                   word_dropout=0.0, lr=3e-3)
    Trainer(cfg, tiny_data_dir, tmp_path / "one", device="cpu", progress=False).fit()
    res = _torchrun(["--data", tiny_data_dir, "--out", tmp_path / "two",
                     "--config", _config_file(tmp_path / "lm.json", cfg)])
    assert "2 processes on cpu" in res.stderr and json.loads(res.stdout)["step"] == 30  # printed once
    one, two = (load_file(tmp_path / run / "last" / "model.safetensors") for run in ("one", "two"))
    for k in one:
        torch.testing.assert_close(two[k], one[k], rtol=1e-4, atol=1e-5)
    rows_one, rows_two = _rows(tmp_path / "one"), _rows(tmp_path / "two")
    assert [(r["step"], r["split"]) for r in rows_two] == [(r["step"], r["split"]) for r in rows_one]  # once each
    for a, b in zip(rows_one, rows_two):
        for key in ("loss", "rec", "nll"):
            if key in a:
                assert b[key] == pytest.approx(a[key], rel=1e-5), (a["step"], key)


def test_two_processes_resume_exactly(tiny_data_dir, tmp_path):
    """A VAE under torchrun (word dropout, z noise: each process its own RNG stream, all saved in
    last/) resumed at step 10 ends bit for bit where the uninterrupted run ends."""
    cfg = tiny_cfg(TINY_MODEL.replace(bow_head=True), max_steps=20, bow_weight=0.5)
    common = ["--config", _config_file(tmp_path / "vae.json", cfg), "--data", tiny_data_dir]
    _torchrun([*common, "--out", tmp_path / "full"])
    _torchrun([*common, "--out", tmp_path / "part", "--max-steps", "10"])
    state = checkpoint.load_trainer_state(tmp_path / "part" / "last")
    assert len(state["rng_ranks"]) == 2 and not torch.equal(state["rng_ranks"][0]["rng_cpu"],
                                                            state["rng_ranks"][1]["rng_cpu"])
    _torchrun(["--resume", tmp_path / "part", "--max-steps", "20"])
    full = (tmp_path / "full" / "last" / "model.safetensors").read_bytes()
    assert (tmp_path / "part" / "last" / "model.safetensors").read_bytes() == full
    strip = lambda rows: [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in rows]  # noqa: E731
    assert strip(_rows(tmp_path / "part")) == strip(_rows(tmp_path / "full"))


def no_noise(mu, seed):
    """z = μ: the VAE's one random draw left out (the processes draw their own noise), so that one process and
    two can be compared step for step."""
    return torch.zeros_like(mu, dtype=torch.float64 if mu.dtype == torch.float64 else torch.float32)


def steps_in_a_process(rank, cfg, data_dir, out, batches):
    """In process `rank` (of a group, or the only one): a Trainer's train_step on each batch, without z noise.
    Returns the weights."""
    from seqvae.kernels import reference

    reference.draw_eps = no_noise
    tr = Trainer(cfg, data_dir, out, device="cpu", progress=False)
    for idx in batches:
        tr.train_step(idx)
    return tr.model.state_dict()


def two_train_as_one(in_ranks, cfg, data_dir, tmp_path, batches):
    """steps_in_a_process in one process, then in each of two: both of the two end with the one's weights."""
    one = steps_in_a_process(0, cfg, data_dir, tmp_path / "one", batches)
    two = in_ranks(steps_in_a_process, cfg, data_dir, tmp_path / "two", batches)
    for rank in two:
        for name in one:
            torch.testing.assert_close(rank[name], one[name], rtol=1e-4, atol=1e-5)


def test_two_processes_free_bits_on_the_whole_batch(tiny_data_dir, tmp_path, in_ranks, monkeypatch):
    """Free bits clamp the dimensions whose batch-mean KL is at or below λ. Under torchrun each process holds a
    share of the batch (here 4 + 3 sentences) and the mean is taken over all of them: a VAE trains what one
    process trains on the same batches. λ is put between the whole batch's mean and a share's in one dimension,
    so that deciding on a share would train otherwise."""
    from seqvae.data import collate
    from seqvae.kernels import reference

    batches = [list(range(7 * step, 7 * step + 7)) for step in range(3)]
    base = dict(batch_size=7, kl_schedule="constant", kl_max=1.0, word_dropout=0.0, lr=3e-3)
    probe = Trainer(tiny_cfg(**base), tiny_data_dir, tmp_path / "probe", device="cpu", progress=False)
    idx = sorted(batches[0], key=lambda i: -len(probe.train_set[i]))  # the order train_step splits in
    batch = collate([probe.train_set[i] for i in idx], pad_id=probe.cfg.model.pad_id)
    with torch.no_grad():
        k = reference.elementwise_kl(*probe.model.encode(batch.src, batch.src_lens))  # (7, Z)
    whole = k.mean(0)
    share = max((k[r::2].mean(0) for r in (0, 1)), key=lambda m: (m - whole).abs().max())
    j = int((share - whole).abs().argmax())
    free_bits = float(whole[j] + share[j]) / 2
    assert ((whole - free_bits).abs() > 1e-4).all()  # no dimension near the threshold: rounding cannot decide
    cfg = tiny_cfg(**base, free_bits=free_bits)

    monkeypatch.setattr(reference, "draw_eps", no_noise)
    two_train_as_one(in_ranks, cfg, tiny_data_dir, tmp_path, batches)


def test_two_processes_train_an_adaptive_softmax_as_one_does(tiny_data_dir, tmp_path, in_ranks, monkeypatch):
    """An adaptive softmax's tail cluster gets a gradient only from a step whose targets reach it. Under torchrun
    a share without such a target left its weights without a gradient in that process, and DDP stopped the
    run at the next step ("Expected to have finished reduction in the prior iteration"). Here the rarest
    cluster's words are in process 0's share, then in neither, then in process 1's: two processes train what
    one does (a cluster no process used is left alone, as one process leaves it)."""
    from seqvae.data import SentenceDataset
    from seqvae.kernels import reference

    model = TINY_MODEL.replace(latent=False, softmax="adaptive", adaptive_cutoffs=[10, 40])
    cfg = tiny_cfg(model, batch_size=2, word_dropout=0.0, lr=3e-3)
    train = SentenceDataset.from_dir(tiny_data_dir, "train")
    rare = [i for i in range(len(train)) if train[i].max() >= 40]
    common = [i for i in range(len(train)) if train[i].max() < 40]
    assert rare and len(common) >= 4
    longest = lambda ids: sorted(ids, key=lambda i: -len(train[i]))  # noqa: E731
    r, c = max(rare, key=lambda i: len(train[i])), longest(common)
    # train_step gives process 0 the longer sentence of a pair: (rare, common), (common, common), (common, rare)
    r_short = min(rare, key=lambda i: len(train[i]))
    assert len(train[r]) > len(train[c[-1]]) and len(train[c[0]]) > len(train[r_short])
    batches = [[r, c[-1]], [c[1], c[2]], [c[0], r_short]]
    monkeypatch.setattr(reference, "draw_eps", no_noise)
    two_train_as_one(in_ranks, cfg, tiny_data_dir, tmp_path, batches)


def steps_with_a_nan_loss(rank, cfg, data_dir, out, batches, nan_rank, nan_step):
    """In process `rank`: train_step on each batch, the loss of process `nan_rank` NaN at step `nan_step`.
    Returns the weights and each step's share of skipped steps."""
    from seqvae import train

    tr = Trainer(cfg, data_dir, out, device="cpu", progress=False)
    elbo = train.elbo_loss
    train.elbo_loss = lambda rec, kl, beta: elbo(rec, kl, beta) * (
        float("nan") if (rank, tr.step) == (nan_rank, nan_step) else 1.0)
    skipped = [float(tr.train_step(idx)[0][-1]) for idx in batches]
    return {"weights": tr.model.state_dict(), "skipped": skipped}


def test_a_nan_loss_in_one_process_skips_the_step_in_all(tiny_data_dir, tmp_path, in_ranks, monkeypatch):
    """The non-finite guard decides on the gradient norm under torchrun, the same in every process: a NaN loss
    in process 1 alone makes every process skip that step, as one process skips it on the whole batch."""
    cfg = tiny_cfg(TINY_MODEL.replace(latent=False), batch_size=7, word_dropout=0.0, lr=3e-3)
    batches = [list(range(7 * step, 7 * step + 7)) for step in range(3)]
    from seqvae import train

    monkeypatch.setattr(train, "elbo_loss", train.elbo_loss)  # put back after the test
    one = steps_with_a_nan_loss(0, cfg, tiny_data_dir, tmp_path / "one", batches, 0, 1)
    two = in_ranks(steps_with_a_nan_loss, cfg, tiny_data_dir, tmp_path / "two", batches, 1, 1)
    assert one["skipped"] == [0.0, 1.0, 0.0]
    assert [r["skipped"] for r in two] == [[0.0, 0.5, 0.0]] * 2  # each process counts its half of the step
    for rank in two:
        for name in one["weights"]:
            torch.testing.assert_close(rank["weights"][name], one["weights"][name], rtol=1e-4, atol=1e-5)


def steps_and_sums(rank, cfg, data_dir, out, batches):
    """In process `rank`: train_step on each batch without z noise. Returns the weights and each step's sums
    (loss, rec, kl, bow, sentences, skipped) and target tokens."""
    from seqvae.kernels import reference

    reference.draw_eps = no_noise
    tr = Trainer(cfg, data_dir, out, device="cpu", progress=False)
    sums = []
    for idx in batches:
        stats, tokens = tr.train_step(idx)
        sums.append([*stats.tolist(), tokens])
    return {"weights": tr.model.state_dict(), "sums": torch.tensor(sums)}


def test_a_step_of_fewer_sentences_than_processes(tiny_data_dir, tmp_path, in_ranks, monkeypatch):
    """An epoch's last batch may hold fewer sentences than there are processes: a process with none trains on a
    stand-in sentence weighed 0 and counted nowhere (it ended in 'mu must have B >= 1' and stopped the run), so
    two processes train and log what one does, free bits included."""
    from seqvae.kernels import reference

    cfg = tiny_cfg(batch_size=7, word_dropout=0.0, lr=3e-3, free_bits=0.02, bow_weight=0.5,
                   model=TINY_MODEL.replace(bow_head=True))
    batches = [[0, 1, 2, 3, 4], [5], [6, 7, 8]]  # the second step: one sentence, process 1 has none
    monkeypatch.setattr(reference, "draw_eps", no_noise)
    one = steps_and_sums(0, cfg, tiny_data_dir, tmp_path / "one", batches)
    two = in_ranks(steps_and_sums, cfg, tiny_data_dir, tmp_path / "two", batches)
    torch.testing.assert_close(two[0]["sums"] + two[1]["sums"], one["sums"], rtol=1e-4, atol=1e-4)
    assert two[1]["sums"][1].abs().sum() == 0  # the stand-in adds nothing to the sums
    for rank in two:
        for name in one["weights"]:
            torch.testing.assert_close(rank["weights"][name], one["weights"][name], rtol=1e-4, atol=1e-5)


def fit_on_batches(rank, cfg, data_dir, out, batches):
    """In process `rank`: Trainer.fit with the sampler giving `batches` in every epoch. Returns the weights and
    the batches train_step was given, in order."""
    tr = Trainer(cfg, data_dir, out, device="cpu", progress=False)
    tr.sampler.batches = lambda epoch: [np.asarray(b) for b in batches]
    seen, step = [], tr.train_step
    tr.train_step = lambda idx: seen.append(sorted(int(i) for i in idx)) or step(idx)
    tr.fit()
    return {"weights": tr.model.state_dict(), "seen": seen}


def test_fit_trains_an_epochs_batch_of_fewer_sentences_than_processes(tiny_data_dir, tmp_path, in_ranks):
    """The loop hands a batch of fewer sentences than processes to train_step (whose stand-in covers the
    process with none) as one process does: it skipped it, so torchrun dropped that batch's sentences from
    the epoch and followed other batches than one process from there on."""
    cfg = tiny_cfg(TINY_MODEL.replace(latent=False, embed_dropout=0.0), batch_size=5, max_steps=4,
                   eval_every=4, word_dropout=0.0, lr=3e-3)
    batches = [[0, 1, 2, 3, 4], [5], [6, 7, 8]]  # the second: one sentence for two processes
    one = fit_on_batches(0, cfg, tiny_data_dir, tmp_path / "one", batches)
    two = in_ranks(fit_on_batches, cfg, tiny_data_dir, tmp_path / "two", batches)
    assert one["seen"] == [*batches, batches[0]]
    for rank in two:
        assert rank["seen"] == one["seen"]
        for name in one["weights"]:
            torch.testing.assert_close(rank["weights"][name], one["weights"][name], rtol=1e-4, atol=1e-5)


def fit_where_process_0_vanishes(rank, cfg, data_dir, out, result_dir):
    """In process `rank`: Trainer.fit; process 0 exits at its third step (as one that failed or was killed: its
    own error is its own). Returns what fit raised in process 1, by type and message."""
    tr = Trainer(cfg, data_dir, out, device="cpu", progress=False)
    if rank == 0:
        step = tr.train_step

        def vanish_at_3(idx):
            if tr.step == 2:
                torch.save({}, result_dir / "rank0.pt")  # what in_ranks reads back from each process
                os._exit(0)  # 0: torch.multiprocessing.spawn leaves process 1 alone
            return step(idx)
        tr.train_step = vanish_at_3
    try:
        tr.fit()
    except Exception as e:  # noqa: BLE001 - the test looks at which
        return {"type": type(e).__name__, "message": str(e)}
    return {"type": None}


def test_a_process_that_loses_the_others_says_so_in_one_line(tiny_data_dir, tmp_path, in_ranks):
    """When one process stops (its error, a kill), the others fail in their next collective. That was gloo's
    RuntimeError ("Connection closed by peer"), a 60-line traceback per process printed after the one line that
    says why; it is a TrainingError (one line) that names the step and says where the cause is."""
    cfg = tiny_cfg(max_steps=20, eval_every=20, free_bits=0.0)
    res = in_ranks(fit_where_process_0_vanishes, cfg, tiny_data_dir, tmp_path / "run",
                   tmp_path / "ranks-fit_where_process_0_vanishes")
    assert res[1]["type"] == "TrainingError", res[1]
    assert "step 2: process 1 of 2 lost" in res[1]["message"] and "\n" not in res[1]["message"]


def fit_interrupted_at_15(rank, cfg, data_dir, out):
    """In process `rank`: Trainer.fit, with a Ctrl-C at step 15 (torchrun passes SIGINT to every process); the
    line each one's interruption says."""
    tr = Trainer(cfg, data_dir, out, device="cpu", progress=False)
    step = tr.train_step

    def ctrl_c_at_15(idx):
        if tr.step == 15:
            raise KeyboardInterrupt
        return step(idx)
    tr.train_step = ctrl_c_at_15
    try:
        tr.fit()
    except KeyboardInterrupt as e:
        return {"message": str(e)}
    return {"message": None}


def test_a_ctrl_c_under_torchrun_says_the_same_in_every_process(tiny_data_dir, tmp_path, in_ranks):
    """Each process prints its interruption's line. Only the first one writes last/, and only it knew the step
    last/ holds: the others said `before the first checkpoint ...: RUN has nothing to resume; start it over with
    --overwrite` beside the first one's `RUN/last holds step 10: ... --resume ...` (--overwrite deletes it)."""
    run = tmp_path / "run"
    res = in_ranks(fit_interrupted_at_15, tiny_cfg(max_steps=30, eval_every=10), tiny_data_dir, run)
    assert res[0]["message"] == res[1]["message"], res
    assert res[0]["message"].startswith(f"at step 15; {run / 'last'} holds step 10: "), res


def test_a_token_id_outside_the_vocabulary_is_one_line_before_training(tiny_data_dir, tmp_path, one_line):
    """A prepared split whose ids reach past the tokenizer's vocabulary (a damaged or mixed-up data dir) is
    refused when the trainer loads it, as one line, the same in every torchrun process. It ended in a traceback
    (IndexError in the embedding) at the step that drew the sentence, in one process only under torchrun."""
    bad = tmp_path / "bad"
    shutil.copytree(tiny_data_dir, bad)
    for split in ("valid", "train"):
        with np.load(bad / f"{split}.npz") as z:
            arrays = {k: z[k] for k in z.files}
        arrays["ids"] = arrays["ids"].copy()
        arrays["ids"][-1] = 10**6
        np.savez(bad / f"{split}.npz", **arrays)
        one_line(["train", "--data", bad, "--out", tmp_path / "run", "--preset", "tiny", "--max-steps", "1",
                  "--device", "cpu", "--no-progress"], f"{split}.npz: token id 1000000 is outside the vocabulary")
    assert not (tmp_path / "run").exists()


def read_as_another_save(other_save):
    """From now on in this process, last/ reads as if it were another save (`other_save`, as when another trainer
    replaced it between the processes' reads)."""
    from seqvae import resume

    read = resume.read_last
    resume.read_last = lambda run_dir: (lambda cfg, state: (cfg, {**state, "_save_id": other_save}))(*read(run_dir))


def resume_in_a_process(rank, run, other_save):
    """In process `rank`: Trainer.resume(run); process 1 reads last/ as another save (read_as_another_save).
    Returns the error, if one."""
    if rank == 1:
        read_as_another_save(other_save)
    try:
        Trainer.resume(run, device="cpu", progress=False)
    except checkpoint.CheckpointError as e:
        return {"error": str(e)}
    return {"error": None}


def test_processes_that_read_different_saves_do_not_resume(tiny_data_dir, tmp_path, in_ranks):
    """Under torchrun every process reads last/ on its own, before the first one locks the run dir (and checks
    that last/ is still the save it read): a process that read another save would go on from another step,
    batch and optimizer state, its weights overwritten by DDP with the first one's, silently. Every process
    stops with the same one line instead."""
    Trainer(tiny_cfg(max_steps=2, eval_every=2), tiny_data_dir, tmp_path / "run", device="cpu", progress=False).fit()
    res = in_ranks(resume_in_a_process, tmp_path / "run", "another save")
    assert [r["error"] is not None and "was replaced while --resume read it" in r["error"] for r in res] == [True] * 2


def resume_command_in_a_process(rank, run, other_save):
    """In process `rank`: `seqvae train --resume RUN`, process 1 reading another save (read_as_another_save)."""
    from seqvae.cli import main

    if rank == 1:
        read_as_another_save(other_save)
    return main(["train", "--resume", str(run), "--device", "cpu", "--no-progress"])


def test_a_process_in_a_group_ends_with_its_exit_code(tiny_data_dir, tmp_path, in_ranks, capfd):
    """A process in torchrun's group ends in seqvae.cli.main with its exit code, not through Python's shutdown,
    where a gloo thread dropping a finished all_gather_object's tensors aborted it now and then (SIGABRT, once
    in CI after this very error). Here: the one error line in each process, and exit code 2."""
    from torch.multiprocessing import ProcessExitedException

    Trainer(tiny_cfg(max_steps=2, eval_every=2), tiny_data_dir, tmp_path / "run", device="cpu", progress=False).fit()
    with pytest.raises(ProcessExitedException) as e:
        in_ranks(resume_command_in_a_process, tmp_path / "run", "another save")
    assert e.value.exit_code == 2
    err = capfd.readouterr().err
    assert err.count("seqvae: error: ") >= 1 and "was replaced while --resume read it" in err


def test_bad_torchrun_environment_is_a_config_error(monkeypatch):
    from seqvae.ranks import Ranks

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ConfigError, match="RANK 2, WORLD_SIZE 2"):
        Ranks.from_env()
    monkeypatch.setenv("RANK", "one")
    with pytest.raises(ConfigError, match="must be integers"):
        Ranks.from_env()
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert Ranks.from_env() == Ranks(1, 2, 1) and not Ranks.from_env().main


def test_world_size_without_torchrun_is_a_one_line_error(tiny_data_dir, tmp_path, monkeypatch, capsys):
    from seqvae.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    assert main(["train", "--data", str(tiny_data_dir), "--out", str(tmp_path / "run"), "--preset", "tiny",
                 "--device", "cpu", "--no-progress"]) == 2
    assert "MASTER_ADDR is not set" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------- a review of training as a user
def test_bad_seeds_and_special_ids_are_one_line_before_an_overwrite(tiny_data_dir, tmp_path, one_line, capsys):
    from seqvae.cli import main

    run = tmp_path / "run"
    Trainer(tiny_cfg(max_steps=5, eval_every=5), tiny_data_dir, run, device="cpu", progress=False).fit()
    before = (run / "metrics.jsonl").read_text()
    opts = ["train", "--data", tiny_data_dir, "--out", run, "--overwrite", "--embed-dim", "16", "--hidden-dim", "32",
            "--latent-dim", "4", "--max-steps", "2", "--eval-every", "2", "--threads", "1", "--no-progress"]
    one_line([*opts, "--set", "train.seed=-5"], "seed must be in [0, 2**63)")
    conf = tmp_path / "c.json"
    conf.write_text(json.dumps({"train": {"seed": 2**64}}))
    one_line([*opts, "--config", conf], "seed must be in [0, 2**63)")
    with pytest.raises(SystemExit):  # argparse's seed_arg, as every other --seed
        main([str(a) for a in opts] + ["--seed", "-1"])
    assert "argument --seed: must be in [0, 2**63)" in capsys.readouterr().err
    one_line([*opts, "--set", "model.eos_id=5"], "model.eos_id is 5, the data's tokenizer has 3")
    conf.write_text(json.dumps({"model": {"adaptive_cutoffs": [1.5, 2]}}))
    one_line([*opts, "--config", conf], "adaptive_cutoffs must be a list of integer ids")
    assert (run / "metrics.jsonl").read_text() == before and (run / "best").is_dir()  # nothing touched


def test_set_parses_a_list_and_init_from_checks_a_config_files_model(tiny_data_dir, tmp_path, one_line):
    from seqvae.traincli import apply_sets

    for value in ("10,20", "[10, 20]"):  # a list field: comma-separated, or as JSON writes it
        cfg = apply_sets(tiny_cfg(), ["model.softmax=adaptive", f"model.adaptive_cutoffs={value}"])
        assert cfg.model.adaptive_cutoffs == [10, 20]
    Trainer(tiny_cfg(max_steps=2, eval_every=2), tiny_data_dir, tmp_path / "base", device="cpu", progress=False).fit()
    conf = tmp_path / "ft.json"
    conf.write_text(json.dumps({"model": {"hidden_dim": 999}, "train": {"batch_size": 8}}))
    one_line(["train", "--data", tiny_data_dir, "--out", tmp_path / "ft", "--init-from", tmp_path / "base",
              "--config", conf, "--max-steps", "2", "--no-progress"], "hidden_dim")
    assert not (tmp_path / "ft").exists()


def test_a_cyclical_language_model_extends_on_resume_and_no_step_goes_unlogged(tiny_data_dir, tmp_path):
    lm = tiny_cfg(max_steps=6, eval_every=6, kl_schedule="cyclical")
    lm = RunConfig(model=lm.model.replace(latent=False), train=lm.train)
    Trainer(lm, tiny_data_dir, tmp_path / "lm", device="cpu", progress=False).fit()
    assert Trainer.resume(tmp_path / "lm", max_steps=8, device="cpu", progress=False).fit()["step"] == 8
    Trainer(tiny_cfg(max_steps=20, eval_every=10, log_every=7), tiny_data_dir, tmp_path / "log", device="cpu",
            progress=False).fit()
    assert [r["step"] for r in _rows(tmp_path / "log") if r["split"] == "train"] == [7, 10, 14, 20]


def test_a_cpu_run_resumes_under_a_fused_optimizer(tiny_data_dir, tmp_path, monkeypatch):
    """What a CUDA device does with a run trained on the CPU: its AdamW is fused, the saved one was not (the
    saved groups' flag came back with load_state_dict and broke the fused step's found_inf path)."""
    Trainer(tiny_cfg(max_steps=4, eval_every=4), tiny_data_dir, tmp_path / "run", device="cpu", progress=False).fit()
    real = torch.optim.AdamW
    monkeypatch.setattr(torch.optim, "AdamW", lambda params, **kw: real(params, **{**kw, "fused": True}))
    resumed = Trainer.resume(tmp_path / "run", max_steps=6, device="cpu", progress=False)
    assert resumed.optimizer.param_groups[0]["fused"] is True
    assert resumed.fit()["step"] == 6


def test_the_slots_mask_from_the_ids_is_the_mask_from_the_lengths():
    from seqvae.model import SentenceVAE

    torch.manual_seed(0)
    model = SentenceVAE(TINY_MODEL.replace(vocab_size=30, encoder_slots=3)).eval()
    batch = collate([[5, 6, 7, 8], [9, 10], [11]], pad_id=0, bos_id=2, eos_id=3)
    with torch.no_grad():
        by_ids = model.encode(batch.src, batch.src_lens)
        by_lens = model.encoder(model.decoder.embedding(batch.src), batch.src_lens)
    assert all(torch.allclose(a, b) for a, b in zip(by_ids, by_lens))


def test_a_train_row_averages_the_loss_per_sentence_as_it_does_rec_and_kl(tiny_data_dir, tmp_path):
    """One row over an epoch whose last batch is short: its loss is the mean over sentences of rec + beta * KL
    (beta 1, no free bits), the same average as its rec and kl, not the mean of the steps' batch means."""
    from seqvae.data import SentenceDataset

    n = len(SentenceDataset.from_dir(tiny_data_dir, "train"))
    batch = next(b for b in range(16, 4, -1) if n % b >= 4)  # the epoch ends with a short batch
    steps = -(-n // batch)
    Trainer(tiny_cfg(batch_size=batch, max_steps=steps, log_every=steps, eval_every=steps, kl_schedule="constant"),
            tiny_data_dir, tmp_path / "run", device="cpu", progress=False).fit()
    row = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert row["split"] == "train" and row["step"] == steps and row["beta"] == 1.0
    assert row["loss"] == pytest.approx(row["rec"] + row["kl"], rel=1e-5)
