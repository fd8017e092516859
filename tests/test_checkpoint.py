import json
import os
import tempfile
from pathlib import Path

import pytest
import torch

from seqvae import checkpoint
from seqvae.config import ModelConfig
from seqvae.data import collate
from seqvae.model import SentenceVAE
from seqvae.tokenizer import build_word_tokenizer


@pytest.fixture()
def model_and_tok():
    tok = build_word_tokenizer(["the movie was great", "the plot was slow", "a fine film"])
    torch.manual_seed(0)
    model = SentenceVAE(ModelConfig(vocab_size=tok.vocab_size, embed_dim=8, hidden_dim=12, latent_dim=4)).eval()
    return model, tok


def outputs(model):
    b = collate([[4, 5, 6], [7]])
    torch.manual_seed(1)
    z = torch.randn(2, model.cfg.latent_dim)
    return model.encode(b.src, b.src_lens), model.token_nll(b.dec_in, b.target, z)


def test_save_load_identical_outputs(tmp_path, model_and_tok):
    model, tok = model_and_tok
    path = checkpoint.save(tmp_path / "ck", model, tok, metrics={"nll": 1.5})
    assert sorted(p.name for p in path.iterdir()) == sorted(
        ["config.json", "model.safetensors", "metrics.json"] + [tok.save(tmp_path).name])
    loaded, tok2, cfg = checkpoint.load(path)
    (mu1, lv1), nll1 = outputs(model)
    (mu2, lv2), nll2 = outputs(loaded)
    assert torch.equal(mu1, mu2) and torch.equal(lv1, lv2) and torch.equal(nll1, nll2)
    assert tok2.encode("the movie was slow") == tok.encode("the movie was slow")
    assert cfg["model"] == model.cfg.to_dict()
    assert checkpoint.read_metrics(path) == {"nll": 1.5}


def test_half_precision_weights_load(tmp_path, model_and_tok):
    model, tok = model_and_tok
    checkpoint.save(tmp_path / "ck", model, tok, dtype=torch.float16)
    loaded, _, _ = checkpoint.load(tmp_path / "ck")
    assert loaded.decoder.embedding.weight.dtype == torch.float32
    (mu1, _), _ = outputs(model)
    (mu2, _), _ = outputs(loaded)
    assert torch.allclose(mu1, mu2, atol=1e-2)


def test_run_dir_resolves_to_best(tmp_path, model_and_tok):
    model, tok = model_and_tok
    checkpoint.save(tmp_path / "run" / "best", model, tok)
    assert checkpoint.resolve(tmp_path / "run") == tmp_path / "run" / "best"


def test_a_missing_shipped_checkpoint_says_where_they_are(tmp_path, monkeypatch):
    """An installed package has no checkpoints/: the README's `checkpoints/imdb`, or a hub-style "imdb", run outside a
    clone said only "no such checkpoint directory"; it now names the dir looked in and where the shipped ones are."""
    monkeypatch.chdir(tmp_path)
    for name in ("checkpoints/imdb", "imdb"):
        with pytest.raises(checkpoint.CheckpointError, match="no such checkpoint") as e:
            checkpoint.resolve(name)
        assert str(tmp_path) in str(e.value) and "not with the installed package" in str(e.value)
    for other in (tmp_path / "checkpoints" / "imdb", Path("runs") / "x"):  # a full path or another relative one: plain
        with pytest.raises(checkpoint.CheckpointError) as e:
            checkpoint.resolve(other)
        assert str(e.value) == f"{other}: no such checkpoint directory"


def test_errors_are_clear(tmp_path, model_and_tok):
    model, tok = model_and_tok
    with pytest.raises(checkpoint.CheckpointError, match="no such checkpoint"):
        checkpoint.load(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(checkpoint.CheckpointError, match="not a checkpoint"):
        checkpoint.load(tmp_path / "empty")
    path = checkpoint.save(tmp_path / "ck", model, tok)
    # corrupt weights
    (path / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(checkpoint.CheckpointError, match="unreadable weights"):
        checkpoint.load(path)
    # config that does not match the weights names the keys
    path = checkpoint.save(tmp_path / "ck2", model, tok)
    cfg = json.loads((path / "config.json").read_text())
    cfg["model"]["num_layers"] = 2
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(checkpoint.CheckpointError, match="missing keys: .*l1"):
        checkpoint.load(path)
    cfg["model"]["num_layers"], cfg["model"]["latent"] = 1, False
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(checkpoint.CheckpointError, match="unexpected keys: .*encoder.gru"):
        checkpoint.load(path)
    cfg["model"]["latent"], cfg["model"]["hidden_dim"] = True, 13
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(checkpoint.CheckpointError, match="has shape"):
        checkpoint.load(path)
    (path / "config.json").write_text("{broken")
    with pytest.raises(checkpoint.CheckpointError, match="invalid JSON"):
        checkpoint.load(path)


def test_failed_save_keeps_previous_checkpoint(tmp_path, model_and_tok, monkeypatch):
    model, tok = model_and_tok
    path = checkpoint.save(tmp_path / "ck", model, tok, metrics={"v": 1})

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "save_file", boom)
    with pytest.raises(OSError):
        checkpoint.save(tmp_path / "ck", model, tok, metrics={"v": 2})
    assert checkpoint.read_metrics(path) == {"v": 1}
    checkpoint.load(path)  # still complete
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]  # no temp dirs left behind


def test_save_replaces_a_checkpoint_but_nothing_else(tmp_path, model_and_tok):
    model, tok = model_and_tok
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    with pytest.raises(checkpoint.CheckpointError, match="not a directory"):
        checkpoint.save(a_file, model, tok)
    assert a_file.read_text() == "mine"
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "src" / "code.py").write_text("x = 1")
    with pytest.raises(checkpoint.CheckpointError, match="not a seqvae checkpoint dir"):
        checkpoint.save(project, model, tok)
    (project / "config.json").write_text('{"model_type": "bert"}')  # another library's model dir
    with pytest.raises(checkpoint.CheckpointError, match="not a seqvae checkpoint dir"):
        checkpoint.save(project, model, tok)
    assert (project / "src" / "code.py").read_text() == "x = 1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "project"]  # no temp or parked dirs left
    (tmp_path / "empty").mkdir()
    checkpoint.save(tmp_path / "empty", model, tok)  # an empty dir is fine
    old = checkpoint.save(tmp_path / "ck", model, tok, metrics={"nll": 1.0})
    (old / "eval-test.json").write_text("{}")  # a file beside the weights: kept while the weights are the same
    checkpoint.save(old, model, tok, metrics={"nll": 2.0})
    assert checkpoint.read_metrics(old)["nll"] == 2.0 and (old / "eval-test.json").read_text() == "{}"
    with pytest.raises(checkpoint.CheckpointError, match="holds eval-test.json, made for the weights this save"):
        checkpoint.save(old, model, tok, dtype=torch.float16)  # other weights: not dropped unasked
    assert checkpoint.read_metrics(old)["nll"] == 2.0
    dropped = []
    checkpoint.save(old, model, tok, metrics={"nll": 3.0}, dtype=torch.float16, on_stale=dropped.extend)
    assert dropped == ["eval-test.json"] and not (old / "eval-test.json").exists()


def test_a_reader_sees_a_whole_checkpoint_while_a_writer_replaces_it(tmp_path, model_and_tok):
    """A writer keeps replacing ck with one of two models of different sizes; every load gets one of
    them whole (a config of one with the weights of the other would not load). Readers take no lock."""
    import threading

    model, tok = model_and_tok
    other = SentenceVAE(model.cfg.replace(hidden_dim=20)).eval()
    checkpoint.save(tmp_path / "ck", model, tok)
    stop, seen = threading.Event(), set()

    def write():
        i = 0
        while not stop.is_set():
            checkpoint.save(tmp_path / "ck", (model, other)[i % 2], tok, metrics={"i": i})
            i += 1

    writer = threading.Thread(target=write)
    writer.start()
    try:
        for _ in range(60):
            try:
                loaded, _, cfg = checkpoint.load(tmp_path / "ck")
            except checkpoint.CheckpointError as e:  # only if replaced READ_TRIES times during one read
                assert "while being read" in str(e)
                continue
            assert loaded.cfg.hidden_dim == cfg["model"]["hidden_dim"]
            seen.add(loaded.cfg.hidden_dim)
    finally:
        stop.set()
        writer.join()
    assert seen == {12, 20}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]


def test_a_reader_is_not_fooled_when_a_replacement_reuses_the_inode(tmp_path, model_and_tok, monkeypatch):
    """During one read the checkpoint is replaced twice (by the other model, then by the first again), and
    the file system hands the last version the first one's inode, as it may: the reader must still see
    that its config and weights came from different saves, and read again."""
    model, tok = model_and_tok
    other = SentenceVAE(model.cfg.replace(hidden_dim=20)).eval()
    ck = checkpoint.save(tmp_path / "ck", model, tok)
    real_stat, real_load_file = Path.stat, checkpoint.load_file

    def same_inode(self, **kw):  # every version of ck reports inode 1
        st = real_stat(self, **kw)
        if self != ck:
            return st
        return os.stat_result((st.st_mode, 1, st.st_dev, st.st_nlink, st.st_uid, st.st_gid, st.st_size,
                               int(st.st_atime), int(st.st_mtime), int(st.st_ctime)))

    calls = []

    def replaced_while_read(path):
        calls.append(path)
        if len(calls) == 1:  # the first read: its config is the first model's, its weights the other's
            checkpoint.save(ck, other, tok)
            weights = real_load_file(path)
            checkpoint.save(ck, model, tok)
            return weights
        return real_load_file(path)

    monkeypatch.setattr(Path, "stat", same_inode)
    monkeypatch.setattr(checkpoint, "load_file", replaced_while_read)
    loaded, _, cfg = checkpoint.load(ck)
    assert len(calls) == 2 and loaded.cfg.hidden_dim == cfg["model"]["hidden_dim"] == 12
    ids = {json.loads((ck / "config.json").read_text())["save_id"]}
    checkpoint.save(ck, model, tok)
    assert json.loads((ck / "config.json").read_text())["save_id"] not in ids  # each save has its own


def test_a_same_weights_save_carries_a_pair_cut_short_with_its_parked_half(tmp_path, model_and_tok):
    """A head whose re-save was killed between its two files (new weights, old JSON, old weights parked):
    a save of the same weights over the dir keeps the head loadable as its old version; temporary files of
    killed writers are not carried; a save of other weights names the head once, not its parked half."""
    from seqvae import atomic

    model, tok = model_and_tok
    d = checkpoint.save(tmp_path / "ck", model, tok)
    data, mark = d / "classifier.safetensors", d / "classifier.json"
    atomic.write_pair(data, lambda p: p.write_bytes(b"old"), mark, {})
    atomic.old_path(data).write_bytes(b"old")  # what a kill at the "pair" point leaves
    data.write_bytes(b"new")
    (d / ".classifier.x1.tmp.safetensors").write_bytes(b"half")  # a killed writer's temporary file
    checkpoint.save(d, model, tok)
    assert atomic.read_pair(data, mark)[1] == b"old"
    assert not (d / ".classifier.x1.tmp.safetensors").exists()
    dropped = []
    checkpoint.save(d, model, tok, dtype=torch.float16, on_stale=dropped.extend)
    assert dropped == ["classifier.json", "classifier.safetensors"]
    assert not [f for f in d.iterdir() if f.name.startswith("classifier") or f.name.startswith(".")]


def test_a_users_dot_files_named_like_tmp_are_kept_or_named_not_dropped(tmp_path, model_and_tok):
    """Only atomic's own temporary names count as a killed writer's leftovers (atomic.is_leftover): a user's
    `.tmp` dir or `.notes.tmp` in a checkpoint dir is kept by a same-weights save and named by a refusal of
    other weights (both went, silently, as 'temporary files': any dot name with '.tmp' in it)."""
    from seqvae import atomic

    model, tok = model_and_tok
    d = checkpoint.save(tmp_path / "ck", model, tok)
    (d / ".tmp").mkdir()
    (d / ".tmp" / "scratch.txt").write_text("mine\n")
    (d / ".notes.tmp").write_text("mine too\n")
    fd, killed = tempfile.mkstemp(prefix=".prior.", suffix=".tmp.safetensors", dir=d)  # what write_with names
    os.close(fd)
    assert atomic.is_leftover(killed) and not atomic.is_leftover(d / ".tmp")
    checkpoint.save(d, model, tok)
    assert (d / ".tmp" / "scratch.txt").read_text() == "mine\n" and (d / ".notes.tmp").is_file()
    assert not Path(killed).exists()
    with pytest.raises(checkpoint.CheckpointError, match=r"holds \.notes\.tmp, \.tmp, made for"):
        checkpoint.save(d, model, tok, dtype=torch.float16)


def test_a_read_that_began_between_a_writers_two_renames_is_read_again(tmp_path, model_and_tok, monkeypatch):
    """The dir resolve() found is renamed away before load() takes its identity, and is still away after the
    failed read (a writer replacing it twice meanwhile, seen under load): nothing says the read was of one
    whole version, so it reads again instead of reporting what it saw as a broken checkpoint."""
    model, tok = model_and_tok
    ck, away = tmp_path / "ck", tmp_path / "elsewhere"
    checkpoint.save(ck, model, tok)
    real_resolve, calls = checkpoint.resolve, []

    def resolve(path):
        calls.append(path)
        if len(calls) == 1:
            found = real_resolve(path)
            ck.rename(away)  # gone right after it was found
            return found
        if away.exists():
            away.rename(ck)  # back in place for the second read
        return real_resolve(path)

    real_load_dir, reads = checkpoint._load_dir, []

    def load_dir(d, map_location):  # the first read finds the dir renamed away
        reads.append(d)
        if len(reads) == 1:
            raise checkpoint.CheckpointError(f"{d}: missing {checkpoint.WEIGHTS_FILE}")
        return real_load_dir(d, map_location)

    monkeypatch.setattr(checkpoint, "resolve", resolve)
    monkeypatch.setattr(checkpoint, "_load_dir", load_dir)
    loaded, _, _ = checkpoint.load(ck)
    assert len(reads) == 2 and loaded.cfg.hidden_dim == model.cfg.hidden_dim


def test_a_checkpoint_whose_config_is_unreadable_is_reported_as_such_not_as_replaced(tmp_path, model_and_tok):
    """An unreadable config gives the checkpoint's own error at once (its identity is still its inode)."""
    model, tok = model_and_tok
    checkpoint.save(tmp_path / "ck", model, tok)
    (tmp_path / "ck" / checkpoint.WEIGHTS_FILE).unlink()
    with pytest.raises(checkpoint.CheckpointError, match="missing model.safetensors"):
        checkpoint.load(tmp_path / "ck")


def test_a_tokenizer_that_disagrees_with_the_config_is_refused_in_one_line(tmp_path, model_and_tok):
    # config.json's model section names the vocabulary size and special ids the weights were trained with; a
    # tokenizer (or an edited config) with others would end samples at the wrong id: refused, one line each
    model, tok = model_and_tok
    path = checkpoint.save(tmp_path / "ck", model, tok)
    good = json.loads((path / "config.json").read_text())
    for key, value, match in (("vocab_size", tok.vocab_size + 1, r"has \d+ pieces, model expects"),
                              ("eos_id", 5, r"special ids \(pad, unk, bos, eos\) are \(0, 1, 2, 3\), "
                                            r"config.json's model section says \(0, 1, 2, 5\)"),
                              ("bos_id", 3, "special ids")):
        cfg = json.loads(json.dumps(good))
        cfg["model"][key] = value
        if key == "vocab_size":  # the weights' shapes follow the vocabulary: a model of that size, this tokenizer
            torch.manual_seed(0)
            other = SentenceVAE(ModelConfig(**{**model.cfg.to_dict(), "vocab_size": value}))
            checkpoint.save(path, other, tok)
        else:
            checkpoint.save(path, model, tok)
            (path / "config.json").write_text(json.dumps(cfg))
        with pytest.raises(checkpoint.CheckpointError, match=match) as e:
            checkpoint.load(path)
        assert "\n" not in str(e.value)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool, torch.uint8])
def test_weights_of_a_non_floating_dtype_are_refused_not_cast(tmp_path, model_and_tok, dtype):
    """An int64 or bool tensor under a weight's name was cast to float32 and loaded: another model, no word said.
    bfloat16 and float64 weights still load (tested beside: the same key, cast back)."""
    from safetensors.torch import load_file, save_file

    model, tok = model_and_tok
    path = checkpoint.save(tmp_path / "ck", model, tok)
    key = "decoder.embedding.weight"
    state = load_file(str(path / "model.safetensors"))
    for other, ok in ((torch.bfloat16, True), (torch.float64, True), (dtype, False)):
        save_file({**state, key: (state[key] * 3).to(other)}, str(path / "model.safetensors"))
        if ok:
            loaded, _, _ = checkpoint.load(path)
            assert torch.equal(loaded.state_dict()[key], (state[key] * 3).to(other).float())
            continue
        name = str(dtype).removeprefix("torch.")
        with pytest.raises(checkpoint.CheckpointError, match=rf"model\.safetensors: weight {key} is {name}, "
                                                             r"the model's is float32"):
            checkpoint.load(path)


@pytest.mark.parametrize("key, value, msg", [
    ("train", {"lr": "1e-3"}, "train section: TrainConfig.lr: expected float, got '1e-3'"),
    ("train", {"no_such_field": 1}, "train section: TrainConfig: unknown key(s) no_such_field"),
    ("train", [], "train section: TrainConfig: expected a JSON object, got list"),
    ("data", "imdb", "'data' must be a JSON object or null, got 'imdb'"),
    ("data", 3, "'data' must be a JSON object or null, got 3"),
    ("format", 0, "'format' must be between 1 and 1, got 0"),
])
def test_config_records_of_the_wrong_kind_are_named_at_load(tmp_path, model_and_tok, key, value, msg):
    """A train section save_pretrained could not read back (a ConfigError naming no file, after the work), or a
    data record that is no object (fit-prior and report ended in an AttributeError traceback): refused at load,
    with the file named. A null train or data record (a checkpoint saved without one) still loads."""
    import re

    from seqvae.api import SeqVAE

    model, tok = model_and_tok
    path = checkpoint.save(tmp_path / "ck", model, tok)
    cfg = json.loads((path / "config.json").read_text())
    assert cfg["train"] is None and cfg["data"] is None
    checkpoint.load(path)
    cfg["train"], cfg["data"] = {"lr": 0.01}, {"data_dir": "x"}
    (path / "config.json").write_text(json.dumps(cfg))
    SeqVAE.from_pretrained(path, device="cpu").save_pretrained(tmp_path / "copy")
    assert json.loads((tmp_path / "copy" / "config.json").read_text())["train"]["lr"] == 0.01
    cfg[key] = value
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(checkpoint.CheckpointError, match=re.escape(f"{path / 'config.json'}: {msg}")):
        SeqVAE.from_pretrained(path, device="cpu")


def test_a_save_in_a_dtype_too_narrow_for_a_weight_is_refused(tmp_path, model_and_tok):
    """float16 ends at 65504: a larger weight was written as inf, and the checkpoint loaded as another model
    (inf, then NaN). Now a CheckpointError naming the weight and nothing written; bfloat16 holds it."""
    model, tok = model_and_tok
    key = "decoder.embedding.weight"
    with torch.no_grad():
        model.state_dict()[key][0, 0] = 1e5
    with pytest.raises(checkpoint.CheckpointError, match=rf"weight {key} has values up to 1e\+05, beyond float16's "
                                                         r"range \(6\.55e\+04\): save it in bfloat16 or float32"):
        checkpoint.save(tmp_path / "ck", model, tok, dtype=torch.float16)
    assert not (tmp_path / "ck").exists() and list(tmp_path.iterdir()) == []
    checkpoint.save(tmp_path / "ck", model, tok, dtype=torch.bfloat16)
    loaded, _, _ = checkpoint.load(tmp_path / "ck")
    assert torch.equal(loaded.state_dict()[key], model.state_dict()[key].bfloat16().float())
    assert torch.isfinite(loaded.state_dict()[key]).all()


def test_a_config_edited_to_a_huge_size_is_a_shape_mismatch_not_an_allocation(tmp_path, model_and_tok):
    """config.json edited to hidden_dim 10**8 built the model first: torch tried to allocate 10**17 bytes and
    ended in a RuntimeError traceback (a size that fits, 30 GB, would be allocated). The shapes the config implies
    are now taken with no memory, and the weights file's shapes are checked against them first."""
    model, tok = model_and_tok
    path = checkpoint.save(tmp_path / "ck", model, tok)
    cfg = json.loads((path / "config.json").read_text())
    cfg["model"]["hidden_dim"] = 10**8
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(checkpoint.CheckpointError, match=r"weight \S+ has shape \(\d+(, \d+)*\), config implies "
                                                         r"\((\d+, )*[1-9]0{8}\b"):
        checkpoint.load(path)
    cfg["model"]["hidden_dim"] = model.cfg.hidden_dim
    (path / "config.json").write_text(json.dumps(cfg))
    loaded, _, _ = checkpoint.load(path)
    assert not any(t.is_meta for t in loaded.state_dict().values())
    (mu1, lv1), nll1 = outputs(model)
    (mu2, lv2), nll2 = outputs(loaded)
    assert torch.equal(mu1, mu2) and torch.equal(nll1, nll2)


def test_loading_builds_the_shape_check_model_without_importing_torch_dynamo(tmp_path, model_and_tok):
    """The model built on the meta device for the shape check ran torch.nn.init's normal_ there, whose first call
    imports torch._dynamo: seconds of every load (4.7 s of 5.3 s for the flagship, one thread). The init is
    skipped there now; the shapes and float-ness it checks come out the same (the test above)."""
    import subprocess
    import sys

    model, tok = model_and_tok
    path = checkpoint.save(tmp_path / "ck", model, tok)
    code = ("import sys; from seqvae import checkpoint; checkpoint.load(sys.argv[1]); "
            "print('torch._dynamo' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": str(Path(checkpoint.__file__).parents[1])}
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "False", out.stderr
