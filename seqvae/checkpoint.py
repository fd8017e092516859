"""Checkpoint directories: what a user can copy, inspect and load with no code of ours.

    <dir>/config.json          {"format", "model": ModelConfig, "train": TrainConfig, "data": prepared-data meta,
                               "save_id": a random id of this save}
    <dir>/model.safetensors    weights (fp32, or fp16/bf16 for shipped checkpoints)
    <dir>/tokenizer.model      sentencepiece model (or vocab.txt for the PTB word vocabulary)
    <dir>/metrics.json         evaluation results at save time
    <dir>/trainer_state.pt     optional: optimizer, step, RNG, sampler position (for --resume)
    <dir>/...                  added later: prior.*, words.txt, classifier heads, report.*, README.md, features/

A training run dir holds two such checkpoints, `best/` and `last/`. Every checkpoint is
written into a temporary sibling and renamed into place, so a crash never leaves a
half-written checkpoint where a reader would look. Readers change nothing on disk: between
the two renames of a replacement (or after a crash there) they read the parked previous
version, and load() starts again if the checkpoint was replaced while it read it. A save over a
checkpoint keeps the files added later while its weights file comes out the same (keep_extras).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import uuid
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import load_file, save_file
from torch.overrides import TorchFunctionMode

from . import atomic, faultpoint
from .config import ConfigError, ModelConfig, load_json, TrainConfig
from .model import SentenceVAE
from .tokenizer import Tokenizer, TokenizerError, load_tokenizer

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
RECORDS = ("format", "data", "save_id")  # config.json's records of the save, beside its model and train sections
WEIGHTS_FILE = "model.safetensors"
METRICS_FILE = "metrics.json"
STATE_FILE = "trainer_state.pt"
SHIPPED_DIR = "checkpoints"  # the repository's folder of shipped checkpoints (checkpoints/imdb, ...), not in the wheel
CACHE_DIR = "features"  # `seqvae classify`'s feature cache in a checkpoint dir (keyed by the weights' sha256)
STATE_KEYS = ("optimizer", "step", "epoch", "batch_pos", "best", "bad_evals", "data_dir")  # what --resume reads


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt or does not match its config (one-line message)."""


def resolve(path: str | Path) -> Path:
    """A checkpoint dir: `path` itself if it has config.json, else `path/best` (a run dir). Looked up again
    when a writer's two renames fell between the look at the dir and the look at its config."""
    for _ in range(atomic.READ_TRIES):
        p = atomic.current_dir(path)
        if (p / CONFIG_FILE).is_file():
            return p
        best = atomic.current_dir(p / "best")
        if (best / CONFIG_FILE).is_file():
            return best
    if not p.exists():
        raise CheckpointError(f"{p}: no such checkpoint directory{_not_found_hint(p)}")
    raise CheckpointError(f"{p}: not a checkpoint (no {CONFIG_FILE}, and no best/{CONFIG_FILE})")


def weights_sha256(path: str | Path) -> str:
    """Identity of a checkpoint's weights: sha256 of the model.safetensors of `path` (a checkpoint dir, or a run
    dir: its best/)."""
    return atomic.file_sha256(resolve(path) / WEIGHTS_FILE)


def _not_found_hint(p: Path) -> str:
    """For a missing relative path named like the README's (checkpoints/imdb) or like a hub name (imdb): where
    it was looked for, and that the shipped checkpoints are files of the repository, not of the installed package."""
    if p.is_absolute() or (len(p.parts) > 1 and p.parts[0] != SHIPPED_DIR):
        return ""
    return (f" in {Path.cwd()} (a checkpoint is named by its directory; the shipped ones in {SHIPPED_DIR}/ come "
            "with the seqvae repository, not with the installed package)")


def _is_checkpoint_dir(d: Path) -> bool:
    """A config.json with a 'model' section: what save() writes (another library's config.json is not)."""
    try:
        cfg = json.loads((d / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(cfg, dict) and isinstance(cfg.get("model"), dict)


def check_replaceable(path: str | Path) -> Path:
    """`path` as a Path if a checkpoint may be written there: nothing there, an empty dir or a checkpoint
    dir (replaced whole); anything else is a one-line CheckpointError, before any work."""
    final = Path(path)
    if final.exists():
        if not final.is_dir():
            raise CheckpointError(f"{final}: exists and is not a directory; not replacing it with a checkpoint")
        if any(final.iterdir()) and not _is_checkpoint_dir(final):
            raise CheckpointError(f"{final}: exists and is not a seqvae checkpoint dir; not replacing it")
    return final


def save(path: str | Path, model: SentenceVAE, tokenizer: Tokenizer, *, train_cfg: TrainConfig | None = None,
         data_meta: dict | None = None, metrics: dict | None = None, trainer_state: dict | None = None,
         dtype: torch.dtype | None = None, extra: Callable[[Path], None] | None = None,
         on_stale: Callable[[list[str]], None] | None = None) -> Path:
    """Write a checkpoint dir atomically. `dtype` (e.g. torch.float16) shrinks the weights.
    `extra(dir)` writes more files into the new dir before it goes into place (e.g. a fitted prior).

    An existing checkpoint dir at `path` is replaced, and what it holds that this save does not write
    (classifier heads, a report, a model card) is handled by keep_extras: kept when the new weights file
    is the old one byte for byte, else refused (on_stale None) or dropped and named to on_stale(names).
    Anything else at `path`, a file or a directory with contents that is not a seqvae checkpoint, is
    refused, never replaced.

    Two saves to one `path` at once (two processes' save_pretrained, a user's save beside a trainer's) take
    turns: each fills its own temporary dir, then holds an flock on the parent dir (atomic.locked_dir) from
    keep_extras to the last rename, while another save there waits for it (seconds). `path` ends whole, the
    second save's; a save never meets another's half-done swap. The lock is the parent dir's own, not a lock
    file, so a caller that holds a writer's lock for the dir (a trainer's RunLock, an OutLock) is not refused
    by it; saves of other dirs in the same parent (best/ and last/) also take turns.
    """
    final = check_replaceable(path)
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise CheckpointError(f"dtype must be a floating torch.dtype (torch.float16, torch.bfloat16, ...), "
                              f"got {dtype!r}")
    tmp = atomic.temp_dir_for(final)
    try:
        config = {"format": FORMAT_VERSION, "model": model.cfg.to_dict(),
                  "train": train_cfg.to_dict() if train_cfg else None, "data": data_meta,
                  "save_id": uuid.uuid4().hex}  # tells readers one save from the next (see _identity)
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        weights = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().cpu().contiguous()
                   for k, v in model.state_dict().items()}
        if dtype is not None:
            _check_in_range(final, model.state_dict(), weights, dtype)
        save_file(weights, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        tokenizer.save(tmp)
        (tmp / METRICS_FILE).write_text(json.dumps(metrics or {}, indent=2) + "\n", encoding="utf-8")
        if trainer_state is not None:
            torch.save(trainer_state, tmp / STATE_FILE)
        if extra is not None:
            extra(tmp)
        with atomic.locked_dir(tmp.parent):  # another save of a dir here waits (see the docstring)
            keep_extras(final, tmp, on_stale)
            faultpoint.reached("checkpoint-filled")
            atomic.replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _check_in_range(final: Path, state: dict[str, torch.Tensor], cast: dict[str, torch.Tensor],
                    dtype: torch.dtype) -> None:
    """A CheckpointError if casting to `dtype` made a finite weight infinite (float16 ends at 65504): the file
    would hold another model (inf, then NaN outputs) with no word said."""
    for k, v in state.items():
        if v.is_floating_point() and not torch.isfinite(cast[k]).all() and torch.isfinite(v).all():
            name = str(dtype).removeprefix("torch.")
            raise CheckpointError(f"{final}: weight {k} has values up to {v.abs().max().item():.4g}, beyond "
                                  f"{name}'s range ({torch.finfo(dtype).max:.4g}): save it in bfloat16 or float32")


def keep_extras(final: str | Path, new: Path, on_stale: Callable[[list[str]], None] | None = None) -> None:
    """Before the filled dir `new` replaces checkpoint dir `final`: what `final` holds and `new` lacks
    (classifier heads, report.*, README.md, trainer_state.pt, a user's files) belongs to `final`'s weights.
    If `new`'s weights file is `final`'s byte for byte (a re-save in the same dtype) it is copied into
    `new`: it still fits. Otherwise it would be lost with the old weights: on_stale None refuses with a
    one-line CheckpointError naming it; a callable gets the names, and they are left out."""
    old = atomic.current_dir(final)
    if not old.is_dir():
        return
    names = sorted(e.name for e in old.iterdir() if not (new / e.name).exists() and not atomic.is_leftover(e.name))
    # a previous version parked by a two-file save under way (atomic.write_pair) goes with its pair
    names = [n for n in names if not atomic.is_parked(n) or n[1:-len(".old")] in names]
    if not names:
        return
    weights = old / WEIGHTS_FILE
    if weights.is_file() and atomic.file_sha256(weights) == atomic.file_sha256(new / WEIGHTS_FILE):
        for name in names:  # linked where the file system can: the old version is deleted once replaced
            if (old / name).is_dir() and not (old / name).is_symlink():
                shutil.copytree(old / name, new / name, symlinks=True, copy_function=_link_or_copy)
            else:
                _link_or_copy(old / name, new / name)
        return
    names = [n for n in names if n != CACHE_DIR and not atomic.is_parked(n)]  # a cache keyed by the weights
    if not names:
        return
    if on_stale is not None:
        on_stale(names)
        return
    was, now = _weights_dtype(weights), _weights_dtype(new / WEIGHTS_FILE)
    hint = f" (the weights there are {was}: the same model saved in {was} keeps them)" if was and was != now else ""
    raise CheckpointError(f"{final}: holds {', '.join(names)}, made for the weights this save replaces with others"
                          f"{hint}; save to another dir, or remove them first")


def _link_or_copy(src: str | Path, dst: str | Path) -> None:
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError:  # a file system without hard links
        shutil.copy2(src, dst, follow_symlinks=False)


def _weights_dtype(path: Path) -> str | None:
    """The floating dtype of a weights file ("float16"), None if unreadable."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}
    except Exception:  # safetensors' error types differ across versions; the hint is only a hint
        return None
    names = {"F16": "float16", "BF16": "bfloat16", "F32": "float32", "F64": "float64"}
    floats = [names[d] for d in dtypes if d in names]
    return floats[0] if len(floats) == 1 else None


def read_config(path: str | Path) -> dict[str, Any]:
    """A checkpoint's config.json as a dict (a run dir: its best/); a CheckpointError if it is missing, is not
    a JSON object with a model section, or has a format newer than this seqvae."""
    d = resolve(path)
    cfg = load_json(d / CONFIG_FILE, error=CheckpointError, expect_object=True)
    if "model" not in cfg:
        raise CheckpointError(f"{d / CONFIG_FILE}: no 'model' section")
    fmt = cfg.get("format", FORMAT_VERSION)
    if not isinstance(fmt, int) or isinstance(fmt, bool):
        raise CheckpointError(f"{d / CONFIG_FILE}: 'format' must be an integer, got {fmt!r}")
    if fmt > FORMAT_VERSION:
        raise CheckpointError(f"{d}: checkpoint format {cfg['format']} is newer than this seqvae ({FORMAT_VERSION})")
    if fmt < 1:
        raise CheckpointError(f"{d / CONFIG_FILE}: 'format' must be between 1 and {FORMAT_VERSION}, got {fmt}")
    # the records commands read later (save_pretrained the train section, fit-prior and report the data record):
    # checked here, where the file can be named, not met as a bare error or an AttributeError traceback there
    if cfg.get("data") is not None and not isinstance(cfg["data"], dict):
        raise CheckpointError(f"{d / CONFIG_FILE}: 'data' must be a JSON object or null, got {cfg['data']!r}")
    if cfg.get("train") is not None:
        try:
            TrainConfig.from_dict(cfg["train"])
        except ConfigError as e:
            raise CheckpointError(f"{d / CONFIG_FILE}: train section: {e}") from None
    return cfg




def _identity(d: Path) -> tuple[int, int, Any] | None:
    """Which save `d` is now: its inode and its config's save_id (None if the config is unreadable); None if
    `d` is not there (renamed away: a writer is between its two renames). The inode alone is not enough: a
    replacement gives `d` a new inode, but the file system reuses freed ones, so after two more
    replacements during one slow read `d` may have its first inode again (seen in a test, under load)."""
    try:
        st = d.stat()
    except OSError:
        return None
    try:
        save_id = json.loads((d / CONFIG_FILE).read_text(encoding="utf-8")).get("save_id")
    except (OSError, ValueError, AttributeError):
        save_id = None
    return st.st_dev, st.st_ino, save_id


def load(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[SentenceVAE, Tokenizer, dict[str, Any]]:
    """(model in eval mode, tokenizer, config dict). Strict: names missing and unexpected keys, and refuses a
    tokenizer whose vocabulary size or special ids are not those config.json's model section names.

    A whole checkpoint even while a trainer replaces it: if the directory read was renamed away
    during the read (its files may then come from two versions, or vanish), it reads again
    (atomic.read_steady, keyed by _identity); a checkpoint that fails to load while nothing moves
    is reported at once."""
    try:
        return atomic.read_steady(lambda: resolve(path), lambda d: _load_dir(d, map_location), _identity,
                                  (CheckpointError, OSError))
    except atomic.ReplacedError as e:
        raise CheckpointError(f"{path}: {e}") from None


class _ShapesOnly(TorchFunctionMode):
    """Inside it, torch.nn.init's functions leave their tensor as it is. For a model built on the meta device only
    to see its parameters' shapes: a random init there goes through a Python reference of normal_ whose first
    call imports torch._dynamo, several seconds of every `from_pretrained` for nothing."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__module__", None) == "torch.nn.init":
            return args[0] if args else kwargs["tensor"]  # every init function takes the tensor first
        return func(*args, **(kwargs or {}))


def _load_dir(d: Path, map_location: str | torch.device) -> tuple[SentenceVAE, Tokenizer, dict[str, Any]]:
    cfg = read_config(d)
    try:
        model_cfg = ModelConfig.from_dict(cfg["model"])
    except (ConfigError, TypeError) as e:
        raise CheckpointError(f"{d / CONFIG_FILE}: {e}") from None
    if not (d / WEIGHTS_FILE).is_file():
        raise CheckpointError(f"{d}: missing {WEIGHTS_FILE}")
    try:
        state = load_file(str(d / WEIGHTS_FILE))
    except Exception as e:  # safetensors raises its own error type, versions differ in its name
        raise CheckpointError(f"{d / WEIGHTS_FILE}: unreadable weights ({str(e).splitlines()[0]})") from None
    with torch.random.fork_rng(devices=[]), torch.device("meta"), _ShapesOnly():  # the shapes config.json implies,
        expected = SentenceVAE(model_cfg).state_dict()  # with no memory: hidden_dim 10**6 there is the line below,
                                                        # not a failed allocation deep in torch (or a 30 GB one) before it
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append("missing keys: " + ", ".join(missing[:6]) + (" ..." if len(missing) > 6 else ""))
        if unexpected:
            parts.append("unexpected keys: " + ", ".join(unexpected[:6]) + (" ..." if len(unexpected) > 6 else ""))
        raise CheckpointError(f"{d}: weights do not match config.json ({'; '.join(parts)})")
    for k, v in expected.items():
        if state[k].shape != v.shape:
            raise CheckpointError(f"{d}: weight {k} has shape {tuple(state[k].shape)}, config implies {tuple(v.shape)}")
        if state[k].is_floating_point() != v.is_floating_point():  # cast, int64 or bool weights loaded as another model
            raise CheckpointError(f"{d / WEIGHTS_FILE}: weight {k} is {str(state[k].dtype).removeprefix('torch.')}, "
                                  f"the model's is {str(v.dtype).removeprefix('torch.')} (seqvae saves float32, "
                                  "float16 or bfloat16 weights)")
    with torch.random.fork_rng(devices=[]):  # the random init, overwritten below, leaves the caller's RNG alone
        model = SentenceVAE(model_cfg).float()  # float32 whatever torch's default dtype (a caller's float64)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()}, strict=True)
    try:
        tokenizer = load_tokenizer(d)
    except TokenizerError as e:  # its message names the file
        raise CheckpointError(str(e)) from None
    if tokenizer.vocab_size != model_cfg.vocab_size:
        raise CheckpointError(f"{d}: tokenizer has {tokenizer.vocab_size} pieces, model expects {model_cfg.vocab_size}")
    names = ("pad_id", "unk_id", "bos_id", "eos_id")
    theirs, ours = tuple(getattr(tokenizer, n) for n in names), tuple(getattr(model_cfg, n) for n in names)
    if theirs != ours:  # else sampling ends at the wrong id and decodes text without a word of warning
        raise CheckpointError(f"{d}: the tokenizer's special ids (pad, unk, bos, eos) are {theirs}, "
                              f"config.json's model section says {ours}")
    model.to(map_location).eval()
    return model, tokenizer, cfg


def load_trainer_state(path: str | Path) -> dict[str, Any]:
    """What --resume needs besides the weights (trainer_state.pt of a last/ dir), loaded with weights_only;
    a CheckpointError if it is missing, unreadable, holds Python objects, or lacks one of STATE_KEYS."""
    p = Path(path) / STATE_FILE
    if not p.is_file():
        raise CheckpointError(f"{Path(path)}: no {STATE_FILE} to resume from")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # weights_only refused an object: loading it could run code
        raise CheckpointError(f"{p}: refused: it holds Python objects other than tensors and plain data, which "
                              "could run code when loaded; seqvae only writes plain state there") from None
    except Exception as e:  # torch raises many types for a corrupt pickle/zip
        raise CheckpointError(f"{p}: unreadable trainer state ({str(e).splitlines()[0]})") from None
    missing = [k for k in STATE_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise CheckpointError(f"{p}: not a seqvae trainer state (no {', '.join(missing)})")
    return state


def read_metrics(path: str | Path) -> dict[str, Any]:
    p = resolve(path) / METRICS_FILE
    return load_json(p, error=CheckpointError, expect_object=True) if p.is_file() else {}
