"""Whether and how `seqvae train --resume` may continue a run: the run dir's last/ checkpoint, the config it
goes on with (--max-steps, --threads), where its data is and whether it holds the run's sentences. Each
refusal is one line that says what to do instead; nothing here writes to the run dir.

    cfg, state = read_last("runs/ptb-vae")                     # last/'s config and trainer state
    cfg = resumed_config("runs/ptb-vae", cfg, state, max_steps=20000, num_threads=None)
    data_dir = resumed_data_dir("runs/ptb-vae", state, None)   # the run's data dir, its tokenizer checked

The Trainer (train.py) calls these, then check_sentences once it has read the data and check_unchanged
once it holds the run dir's lock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import atomic, checkpoint
from .config import ConfigError, RunConfig
from .prepare import META_FILE, describe_data_dir, locate_data_dir
from .tokenizer import same_tokenizer


def resumable(run_dir: Path) -> bool:
    """Whether run_dir has a last/ checkpoint (or its parked version) that --resume can continue from."""
    return (atomic.current_dir(run_dir / "last") / checkpoint.STATE_FILE).is_file()


def _has_best(run_dir: Path) -> bool:
    """Whether run_dir has a best/ checkpoint (or its parked version): a run that got to an evaluation."""
    return (atomic.current_dir(run_dir / "best") / checkpoint.CONFIG_FILE).is_file()


def not_resumable(run_dir: Path) -> str:
    """Why run_dir, which has no last/, cannot be resumed, and what to do instead (a one-line error)."""
    if (run_dir / checkpoint.CONFIG_FILE).is_file():  # a checkpoint dir, given for a run dir
        if (run_dir / checkpoint.STATE_FILE).is_file():
            return (f"{run_dir}: a checkpoint, not a run dir: --resume takes the run dir that holds it "
                    f"({run_dir.absolute().parent})")
        return (f"{run_dir}: a checkpoint with no trainer state, not a run dir; --init-from it starts a new run "
                "from its weights")
    if _has_best(run_dir):  # killed between an evaluation's two saves, or last/ removed
        return (f"{run_dir}: no last/ checkpoint to resume from, only best/ (no trainer state): start it over with "
                f"--overwrite, or start a new run from its weights with --init-from {run_dir / 'best'}")
    if (run_dir / "metrics.jsonl").is_file():
        return (f"{run_dir}: no last/ checkpoint to resume from (a run stopped before its first evaluation has none: "
                "start it over with --overwrite)")
    return f"{run_dir}: no last/ checkpoint to resume from (not a run dir?)"


def not_a_new_run_dir(out_dir: Path) -> str | None:
    """Why a new run may not start in out_dir, which is a checkpoint or a prepared data dir (its best/, last/ and
    log would go in among their files: a mistaken --out), or None."""
    if (out_dir / checkpoint.CONFIG_FILE).is_file():
        return (f"{out_dir}: a checkpoint dir, not a run dir: give --out a new dir "
                f"(--init-from {out_dir} starts a run from its weights)")
    if (out_dir / META_FILE).is_file():
        return f"{out_dir}: a prepared data dir, not a run dir: give --out a new dir"
    return None


def occupied(out_dir: Path) -> str:
    """Why a new run cannot start in out_dir, which holds one, and what to do instead (a one-line error)."""
    if resumable(out_dir):
        way = "resume it with --resume"
    elif _has_best(out_dir):
        way = "one with a best/ checkpoint and no last/ (nothing to resume); start it over with --overwrite"
    else:
        way = "one stopped before its first checkpoint (nothing to resume); start it over with --overwrite"
    return f"{out_dir} already holds a run: {way}, or pick a new --out"


def read_last(run_dir: str | Path) -> tuple[RunConfig, dict[str, Any]]:
    """The config and trainer state of run_dir's last/ checkpoint (or its parked version); the state's
    "_weights_dir" names the dir its weights are in, "_save_id" the save (check_unchanged). Read only: the
    run dir is not ours until locked."""
    last = atomic.current_dir(Path(run_dir) / "last")
    cfg_dict = checkpoint.read_config(last) if (last / checkpoint.CONFIG_FILE).is_file() else None
    if cfg_dict is None:
        raise checkpoint.CheckpointError(not_resumable(Path(run_dir)))
    state = checkpoint.load_trainer_state(last)
    cfg = RunConfig.from_dict({"model": cfg_dict["model"], "train": cfg_dict["train"]})
    state["_weights_dir"], state["_save_id"] = str(last), cfg_dict.get("save_id")
    return cfg, state


def resumed_config(run_dir: str | Path, cfg: RunConfig, state: dict[str, Any], *, max_steps: int | None,
                   num_threads: int | None) -> RunConfig:
    """The saved config with what --resume may change: the CPU threads, and max_steps where the run can
    still go on to it (not below its step, not past an early stop, not under a cyclical KL schedule, whose
    period it sets)."""
    changes: dict[str, int] = {} if num_threads is None else {"num_threads": num_threads}
    if max_steps is not None and max_steps < int(state["step"]):  # it would stop at once, having done nothing
        raise ConfigError(f"{run_dir}: --max-steps {max_steps} is below the step its last/ checkpoint is at "
                          f"({state['step']}); a resumed run can only go on from there")
    if max_steps is not None and max_steps != cfg.train.max_steps:
        if state.get("stopped_early"):  # it stays stopped: the new max_steps would go unused
            raise ConfigError(f"{run_dir}: stopped early at step {state['step']} (train.patience "
                              f"{cfg.train.patience}); --max-steps cannot extend it: start a new run from its "
                              "weights with --init-from")
        if cfg.train.kl_schedule == "cyclical" and cfg.model.latent:  # a language model has no KL term
            raise ConfigError(f"{run_dir}: a cyclical KL schedule's period depends on max_steps "
                              f"({cfg.train.max_steps}); it cannot be changed on resume")
        changes["max_steps"] = max_steps
    if changes:
        cfg = RunConfig(model=cfg.model, train=cfg.train.replace(**changes))
    return cfg


def resumed_data_dir(run_dir: str | Path, state: dict[str, Any], data_dir: str | Path | None) -> str | Path:
    """The data dir the run goes on with: `data_dir` (--data) or the one its state records, which must hold
    the run's tokenizer."""
    data_dir = data_dir or locate_data_dir(state)
    if data_dir is None:
        raise ConfigError(f"{run_dir}: its data dir {describe_data_dir(state)} is not there; pass --data DIR")
    if not same_tokenizer(state["_weights_dir"], data_dir):
        raise ConfigError(f"{run_dir}: the tokenizer in {data_dir} is not the run's (prepared again since?); "
                          "pass --data with the data dir it was trained on")
    return data_dir


def check_unchanged(run_dir: Path, state: dict[str, Any]) -> None:
    """With the run dir's lock held: last/ is still the save read_last read. Another trainer may have replaced
    it before it let go of the lock, and the weights, read after the state, would then be the next save's."""
    try:
        same = checkpoint.read_config(run_dir / "last").get("save_id") == state["_save_id"]
    except checkpoint.CheckpointError:  # gone, or unreadable: not the save that was read
        same = False
    if not same:
        raise _replaced(run_dir)


def check_one_save(run_dir: Path, saves: list) -> None:
    """Under torchrun: every process read the same save of last/ (the "_save_id" each one's state has). Each
    reads it on its own before the first one locks the run dir, and one that read another save would go on
    from another step and optimizer state."""
    if len(set(saves)) > 1:
        raise _replaced(run_dir)


def _replaced(run_dir: Path) -> checkpoint.CheckpointError:
    return checkpoint.CheckpointError(f"{run_dir / 'last'} was replaced while --resume read it (another trainer "
                                      "wrote it meanwhile); run --resume again to go on from the new one")


def check_sentences(out_dir: Path, data_dir: Path, saved: dict[str, str] | None, ours: dict[str, str]) -> None:
    """A resumed run goes on with the sentences it began with: another data dir with the same tokenizer (one
    prepared with other options, another corpus) would put the batch position in another epoch's order and
    compare valid scores of other sentences with the best so far. `saved` and `ours` are the train and valid
    splits' fingerprints in the run's state and in data_dir (a new run, or a state from before this, has
    none: nothing to check)."""
    saved = saved or ours
    differ = [split for split in ("train", "valid") if saved.get(split) != ours[split]]
    if differ:
        raise ConfigError(f"{out_dir}: the {' and '.join(differ)} sentences in {data_dir} are not the "
                          "ones the run was trained on; pass --data with its data dir (to train its weights on "
                          "other sentences, start a new run with --init-from)")
