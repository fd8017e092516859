"""The training loop: a Trainer object that a test can build, step and resume.

    trainer = Trainer(RunConfig(...), data_dir="data/ptb", out_dir="runs/ptb-vae")
    trainer.fit()                      # trains to cfg.train.max_steps, evaluating every eval_every
    Trainer.resume("runs/ptb-vae").fit()   # continues exactly where last/ left off (resume.py checks it may)

The run dir gets `best/` and `last/` checkpoints (see checkpoint.py) and `metrics.jsonl`,
one JSON row per log step (split "train") and per evaluation (split "valid").

Speed notes: batches come from length-sorted pools (little padding), logits are computed
only at real target positions, and nothing synchronises with the device between log steps
(running sums stay on the device; token counts come from CPU-side lengths).

Several devices: launched by torchrun (`torchrun --nproc_per_node 4 -m seqvae.cli train ...`), each
process takes 1/world of every batch (DistributedDataParallel averages the gradients), so
`batch_size` stays the sentences per optimisation step and a run on N devices follows the same
batches, steps and loss as on one (free bits decide on the whole batch: ranks.mean_over_ranks). Only the
first process evaluates, logs and writes checkpoints. What the processes do together (join the group, gather,
sum, leave) is in ranks.py; the Trainer says when.

Faults: a step whose loss or gradient norm is not finite makes no update (it is counted, and
train.max_bad_steps of them in a row stop the run with a TrainingError); the first process holds
the run dir's lock (runlock.py) while it may write there, so a second trainer on the same dir
stops with one line; a checkpoint that cannot be written (disk full, permission lost) is a
TrainingError that leaves the previous checkpoint whole. A SIGKILL at any moment leaves only whole
checkpoints, and --resume then ends where the uninterrupted run ends (tests/test_faults.py).
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from . import atomic, checkpoint, faultpoint, resume
from .config import ConfigError, ModelConfig, RunConfig
from .data import BucketBatchSampler, SentenceDataset, collate, delete_tokens, word_dropout
from .display import format_mi
from .kernels import gaussian_kl
from .losses import elbo_loss, kl_weight, length_free_kl
from .metrics import evaluate
from .model import SentenceVAE
from .prepare import data_dir_record, read_meta
from .ranks import (Ranks, from_main, gathered, join, leave, lost_others, process_device, sum_over_ranks,
                    whole_batch_mean)
from .runlock import RunLock
from .tokenizer import load_tokenizer, same_tokenizer


class TrainingError(RuntimeError):
    """Training cannot go on: steps that stay non-finite, a checkpoint or log that cannot be written
    (one-line message that says what was kept and what to try)."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during fit(): its message says at which step, and what the run dir keeps for --resume."""


def _with_data_ids(model: ModelConfig, vocab_size: int, meta: dict[str, Any]) -> ModelConfig:
    """The model config with the data's vocabulary size and special ids (pad, unk, bos, eos): they come from
    the data's tokenizer. An id set to another value than both the default and the data's is refused (it would
    train, say, a word as the end of every sentence)."""
    ids = {name: meta[name] for name in ("pad_id", "unk_id", "bos_id", "eos_id") if isinstance(meta.get(name), int)}
    default = ModelConfig()
    for name, value in ids.items():
        if getattr(model, name) not in (value, getattr(default, name)):
            raise ConfigError(f"model.{name} is {getattr(model, name)}, the data's tokenizer has {value}: "
                              "the special ids come from the data (leave them out)")
    return model.replace(vocab_size=vocab_size, **ids)


class Trainer:
    """One run: the model, its AdamW, the data and the place in training (step, epoch, batch) of one run dir.
    `fit` trains (and writes best/, last/ and metrics.jsonl); `resume` builds one from a run dir's last/."""

    def __init__(self, cfg: RunConfig, data_dir: str | Path, out_dir: str | Path, *,
                 device: str | torch.device | None = None, progress: bool = True, overwrite: bool = False,
                 _state: dict[str, Any] | None = None):
        self.data_dir, self.out_dir = Path(data_dir), atomic.check_dir_path(out_dir)
        self.ranks = Ranks.from_env()
        self.progress = progress and self.ranks.main
        self.device = process_device(device, self.ranks)
        tc = cfg.train
        if tc.num_threads:
            torch.set_num_threads(tc.num_threads)
        why_not = resume.not_a_new_run_dir(self.out_dir) if _state is None else None
        if why_not:
            raise ConfigError(why_not)
        clear = _state is None and self._holds_run()
        if clear and not overwrite:
            raise ConfigError(resume.occupied(self.out_dir))

        self.data_record = data_dir_record(self.data_dir)  # in the checkpoints' config and the resume state
        if _state is not None and Path(_state.get("data_dir_abs", "")) == Path(self.data_record["data_dir_abs"]):
            self.data_record["data_dir"] = _state["data_dir"]  # resumed from elsewhere: keep the form first given
        self.data_meta = {**read_meta(self.data_dir), **self.data_record}
        self.tokenizer = load_tokenizer(self.data_dir)
        cfg = RunConfig(model=_with_data_ids(cfg.model, self.tokenizer.vocab_size, self.data_meta), train=tc)
        self.cfg = cfg
        self.train_set = SentenceDataset.from_dir(self.data_dir, "train", self.tokenizer.vocab_size)
        self.valid_set = SentenceDataset.from_dir(self.data_dir, "valid", self.tokenizer.vocab_size)
        if len(self.train_set) == 0 or len(self.valid_set) == 0:
            raise ConfigError(f"{self.data_dir}: the train and valid splits must not be empty")
        self.data_sha256 = {"train": self.train_set.fingerprint(), "valid": self.valid_set.fingerprint()}
        resume.check_sentences(self.out_dir, self.data_dir, (_state or {}).get("data_sha256"), self.data_sha256)
        self.sampler = BucketBatchSampler(self.train_set.lengths, tc.batch_size, seed=tc.seed,
                                          bucket_size=tc.bucket_size)

        torch.manual_seed(tc.seed)
        self.model = SentenceVAE(cfg.model).to(self.device)
        # fused: one kernel per step for all parameters on CUDA (the step is launch-bound there)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay,
                                           fused=self.device.type == "cuda")
        # Position in training: the next batch is sampler.batches(epoch)[batch_pos].
        self.step, self.epoch, self.batch_pos = 0, 0, 0
        self.best: float = math.inf
        self.bad_evals = 0
        self.stopped_early = False
        self.train_time = 0.0
        self.saved_step: int | None = None  # the step last/ holds (None: no checkpoint yet)
        # Steps whose loss or gradient was not finite (skipped): in a row now, and the longest run since the
        # last check. Python ints when the host decides, 0-dim device tensors when the device does.
        self.bad_streak: int | torch.Tensor = 0
        self.worst_streak: int | torch.Tensor = 0
        self.lock = RunLock(self.out_dir)
        if _state is not None:
            self._load_state(_state)
        else:
            if tc.init_from:
                self._init_from(tc.init_from)
            if not self.ranks.main:  # the same initial weights everywhere, then each its own noise
                torch.manual_seed(self.ranks.seed(tc.seed, self.step))
        self.ddp = None  # under torchrun: self.model in DistributedDataParallel
        if self.ranks.world > 1:
            # An adaptive softmax's tail cluster has a gradient only in a step whose targets reach it: a process
            # whose share has none must tell DDP so (its zero joins the mean; a cluster that no process used keeps
            # no gradient and no AdamW step, as on one device). One walk of the graph per step, so only then.
            self.ddp = join(self.model, self.ranks, self.device, find_unused_parameters=cfg.model.softmax == "adaptive")
            if _state is not None:  # every process read last/ on its own: the same save?
                resume.check_one_save(self.out_dir, gathered(_state.get("_save_id")))
        # Nothing in the run dir changes before here (a bad flag leaves it as it was), and nothing after
        # without the lock. A new run's dir is created (and locked) here too, before `seqvae train` says what it
        # will do: a dir that cannot be made (/proc/x) is its one error line, with no start line before it.
        if self.ranks.main:
            self._take_run_dir()
            if clear:
                self._clear_run()
            if _state is not None:
                try:
                    resume.check_unchanged(self.out_dir, _state)  # resume() read it before the lock was ours
                except checkpoint.CheckpointError:
                    self.lock.release()
                    raise
                self._truncate_log(self.step)

    def close(self) -> None:
        """Leave torchrun's process group together (ranks.leave; a single process has nothing to do)."""
        if self.ddp is not None:
            leave()
        self.ddp = None

    # ------------------------------------------------------------------ run dir
    def _run_entries(self) -> list[Path]:
        """What a run writes in its dir: best/, last/ (and their versions parked by a save), the log."""
        dirs = [self.out_dir / "best", self.out_dir / "last"]
        return dirs + [atomic.old_path(d) for d in dirs] + [self.log_path]

    def _take_run_dir(self) -> None:
        """Lock the run dir (RunDirBusy if another trainer has it), then finish or drop what a killed
        writer left: a checkpoint parked between two renames comes back, temporary copies go."""
        self.lock.acquire()
        for d in (self.out_dir / "best", self.out_dir / "last"):
            atomic.recover_dir(d)
        for f in self._run_entries():
            atomic.remove_leftovers(f)

    def _holds_run(self) -> bool:
        return any(path.exists() for path in self._run_entries())

    def _clear_run(self) -> None:
        """--overwrite: remove what an earlier run wrote here (and nothing else)."""
        for path in self._run_entries():
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()

    # ------------------------------------------------------------------ resume
    @classmethod
    def resume(cls, run_dir: str | Path, *, data_dir: str | Path | None = None, max_steps: int | None = None,
               device: str | torch.device | None = None, num_threads: int | None = None,
               progress: bool = True) -> "Trainer":
        """The run in run_dir, ready to continue from last/. `num_threads` changes only the CPU threads (the
        result is then equal to the uninterrupted run's up to float rounding, not bit for bit)."""
        cfg, state = resume.read_last(run_dir)
        cfg = resume.resumed_config(run_dir, cfg, state, max_steps=max_steps, num_threads=num_threads)
        data_dir = resume.resumed_data_dir(run_dir, state, data_dir)
        return cls(cfg, data_dir, run_dir, device=device, progress=progress, _state=state)

    def _init_from(self, path: str) -> None:
        """Fine-tuning: the weights of checkpoint `path`, which must have this run's model and tokenizer."""
        model, _, _ = checkpoint.load(path)
        ours, theirs = self.cfg.model.to_dict(), model.cfg.to_dict()  # both with defaults filled in
        differ = sorted(k for k in ours if ours[k] != theirs[k])
        if differ:
            raise ConfigError(f"init_from {path}: the run's model config differs from the checkpoint's in "
                              + ", ".join(differ))
        if not same_tokenizer(checkpoint.resolve(path), self.data_dir):
            raise ConfigError(f"init_from {path}: its tokenizer is not the one in {self.data_dir}")
        self.model.load_state_dict(model.state_dict())

    def _load_state(self, state: dict[str, Any]) -> None:
        model, _, _ = checkpoint.load(state["_weights_dir"], map_location=self.device)
        self.model.load_state_dict(model.state_dict())
        saved = state["optimizer"]  # its groups' "fused" is the saving device's: this device's path must stay
        fused = self.optimizer.defaults.get("fused")
        self.optimizer.load_state_dict({**saved, "param_groups": [{**g, "fused": fused, "foreach": None}
                                                                   for g in saved["param_groups"]]})
        self.step, self.epoch, self.batch_pos = int(state["step"]), int(state["epoch"]), int(state["batch_pos"])
        self.best, self.bad_evals = float(state["best"]), int(state["bad_evals"])
        self.stopped_early = bool(state.get("stopped_early", False))
        self.train_time = float(state.get("train_time", 0.0))
        self.saved_step = self.step
        rngs = state.get("rng_ranks") or [{k: state[k] for k in ("rng_cpu", "rng_cuda") if k in state}]
        if len(rngs) == self.ranks.world:  # the same number of processes as the saved run: each its own RNG
            self._set_rng(rngs[self.ranks.rank])
        elif self.ranks.main:  # another number: the first process continues the saved (first) RNG, the others reseed
            self._set_rng(rngs[0])
        else:
            torch.manual_seed(self.ranks.seed(self.cfg.train.seed, self.step))
        self.bad_streak = int(state.get("bad_streak", 0))

    def _rng(self) -> dict[str, torch.Tensor]:
        rng = {"rng_cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["rng_cuda"] = torch.cuda.get_rng_state(self.device)
        return rng

    def _set_rng(self, rng: dict[str, torch.Tensor]) -> None:
        """Restore what _rng() returned (its CUDA part only on CUDA)."""
        torch.set_rng_state(rng["rng_cpu"])
        if self.device.type == "cuda" and "rng_cuda" in rng:
            torch.cuda.set_rng_state(rng["rng_cuda"], self.device)

    def _state(self) -> dict[str, Any]:
        """What --resume needs besides the weights. Under torchrun a collective: every process's RNG."""
        rng = self._rng()
        state = {"optimizer": self.optimizer.state_dict(), "step": self.step, "epoch": self.epoch,
                 "batch_pos": self.batch_pos, "best": self.best, "bad_evals": self.bad_evals,
                 "stopped_early": self.stopped_early, "train_time": self.train_time,
                 **self.data_record, "data_sha256": self.data_sha256, "bad_streak": int(self.bad_streak), **rng}
        if self.ranks.world > 1:
            state["rng_ranks"] = gathered({k: v.cpu() for k, v in rng.items()})
        return state

    # ------------------------------------------------------------------ logging
    @property
    def log_path(self) -> Path:
        return self.out_dir / "metrics.jsonl"

    def _log(self, row: dict[str, Any]) -> None:
        if not self.ranks.main:
            return
        try:
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
        except OSError as e:
            raise TrainingError(f"step {self.step}: cannot append to {self.log_path} ({e.strerror or e}); "
                                f"{self._kept()}") from None

    def _truncate_log(self, step: int) -> None:
        """Drop log rows written after the checkpoint we resume from (a crashed run's tail)."""
        if not self.log_path.exists():
            return
        kept = []
        for line in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by the crash
            if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= step:
                kept.append(line + "\n")
        atomic.write_text(self.log_path, "".join(kept))

    # ------------------------------------------------------------------ loop
    def _autocast(self):
        tc = self.cfg.train
        if (self.device.type == "cuda" and tc.amp) or (self.device.type == "cpu" and tc.cpu_bf16):
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def train_step(self, idx) -> tuple[torch.Tensor, int]:
        """One optimisation step on the sentences `idx`. Returns (device-side stats, target tokens).

        A step whose loss or gradient norm is not finite changes neither the weights nor the optimizer
        state; it counts as a step (the batch is used up, the KL schedule moves on) and in bad_streak."""
        tc, mc, world = self.cfg.train, self.cfg.model, self.ranks.world
        idx = np.asarray(idx)
        idx = idx[np.argsort(-self.train_set.lengths[idx], kind="stable")]  # longest first: packs without a sync
        n_step = len(idx)  # sentences in this optimisation step, over all processes
        share = self.ranks.share(idx)
        # A step of fewer sentences than processes (an epoch's short batch) leaves some with none; DDP needs every
        # process's backward, so such a process decodes the step's first sentence, weighed 0 and counted nowhere.
        idx = share if len(share) else idx[:1]
        cpu_batch = collate([self.train_set[i] for i in idx], pad_id=mc.pad_id, bos_id=mc.bos_id, eos_id=mc.eos_id)
        n_tokens = cpu_batch.num_target_tokens if len(share) else 0
        if tc.encoder_deletion > 0:  # the encoder reads a damaged copy; the decoder's input and target stay whole
            src, src_lens = delete_tokens(cpu_batch.src, cpu_batch.src_lens, tc.encoder_deletion, pad_id=mc.pad_id)
            cpu_batch = replace(cpu_batch, src=src, src_lens=src_lens)
        batch = cpu_batch.to(self.device)
        dec_in = word_dropout(batch.dec_in, tc.word_dropout, unk_id=mc.unk_id, pad_id=mc.pad_id)
        beta = kl_weight(self.step, tc)
        with self._autocast():
            out = (self.ddp or self.model)(batch.src, batch.src_lens, dec_in, batch.target, positions=batch.positions,
                                           free_bits=tc.free_bits, mean_rec=tc.mean_rec_weight > 0,
                                           # free bits decide on the whole step's batch, not this process's share
                                           free_bits_mean=whole_batch_mean(self.ranks, len(share) > 0))
            kl = out.kl
            if tc.free_nats_per_token > 0:  # each sentence's KL budget by its length (targets: EOS included)
                kl = length_free_kl(kl, (batch.target != mc.pad_id).sum(1), tc.free_nats_per_token)
            loss = elbo_loss(out.rec, kl, beta)
            if out.rec_mean is not None:
                loss = loss + tc.mean_rec_weight * out.rec_mean.mean()
            if tc.bow_weight > 0 or (world > 1 and out.bow is not None):  # DDP waits for every parameter's grad
                loss = loss + tc.bow_weight * out.bow.mean()
            if world > 1:  # DDP averages the processes' gradients: weigh each by its share of the step
                loss = loss * (len(share) * world / n_step)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if tc.grad_clip > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), tc.grad_clip)
        else:
            grad_norm = torch.nn.utils.get_total_norm([p.grad for p in self.model.parameters() if p.grad is not None])
        # The norm is the same in every process (DDP averaged the gradients), the loss is each one's own:
        # under torchrun the norm alone decides, so that all processes skip the same steps.
        finite = grad_norm.isfinite() if world > 1 else grad_norm.isfinite() & loss.detach().isfinite()
        faultpoint.reached("step")
        ok = self._guarded_update(finite)
        self.step += 1
        with torch.no_grad():
            raw_kl = gaussian_kl(out.mu, out.logvar) if out.mu is not None else out.kl
            bow = out.bow.detach().float().sum() if out.bow is not None else torch.zeros((), device=loss.device)
            # (loss sum, rec sum, kl sum, bow sum, sentences): summed on the device, read at log steps only
            # (torch.full, not torch.tensor: a host-to-device copy would synchronise on a GPU). The loss is a mean
            # over the step's sentences; as a sum it is logged per sentence, as rec and kl are (a short batch
            # weighs as its sentences, not as a whole step). Under torchrun each process holds the loss sum of
            # its own sentences, summed over the processes at log steps
            stats = torch.stack([loss.detach().float() * (n_step / world), out.rec.detach().float().sum(),
                                 raw_kl.detach().float().sum(), bow,
                                 torch.full((), float(batch.size), device=loss.device)])
            stats = stats if len(share) else torch.zeros_like(stats)  # a stand-in sentence adds nothing
            # a skipped step adds nothing to the sums above (NaN * 0 is NaN: select, do not multiply),
            # and 1 (its share: 1/world) to a sixth entry, the skipped steps
            if isinstance(ok, bool):
                stats = stats if ok else torch.zeros_like(stats)
                skipped = torch.full((1,), 0.0 if ok else 1.0 / world, device=loss.device)
            else:
                stats = torch.where(ok, stats, torch.zeros_like(stats))
                skipped = (~ok).float().reshape(1) / world
        return torch.cat([stats, skipped]), n_tokens

    def _guarded_update(self, finite: torch.Tensor) -> bool | torch.Tensor:
        """optimizer.step() if `finite` (a 0-dim bool tensor), else nothing; counts bad_streak.

        Two ways to decide, one per kind of optimizer:
        - plain AdamW (CPU): on the host. Reading a CPU scalar costs nothing, and skipping the step
          leaves everything as it was, so --resume stays bit-exact. Returns a bool.
        - fused AdamW (CUDA): on the device, as torch.amp.GradScaler does: the fused kernel reads
          `found_inf` and, where it is 1, leaves the weights, moments and step count unchanged. No
          host sync per step; bad_streak is a device tensor that fit() reads at log steps only (so a
          run that went bad stops up to log_every steps later than on CPU). Returns the tensor.
        """
        if not self.optimizer.defaults.get("fused"):
            ok = bool(finite)
            if ok:
                self.optimizer.step()
            self.bad_streak = 0 if ok else int(self.bad_streak) + 1
            self.worst_streak = max(int(self.worst_streak), self.bad_streak)
            return ok
        self.optimizer.found_inf = (~finite).float()
        try:
            self.optimizer.step()
        finally:
            del self.optimizer.found_inf
        self.bad_streak = torch.where(finite, 0, self.bad_streak + 1)
        self.worst_streak = torch.maximum(self.bad_streak, torch.as_tensor(self.worst_streak, device=finite.device))
        return finite

    def _check_bad_steps(self) -> None:
        """TrainingError once max_bad_steps steps in a row were not finite. A host sync where the
        device decides (fit calls it at log and evaluation steps only, then)."""
        worst, limit = int(self.worst_streak), self.cfg.train.max_bad_steps
        self.worst_streak = self.bad_streak
        if worst < limit:
            return
        last = self.out_dir / "last"
        again = (f"--init-from {last} starts one from its weights" if resume.resumable(self.out_dir)
                 else "--overwrite starts this one over")
        raise TrainingError(
            f"step {self.step}: {worst} steps in a row with a loss or gradient that is not finite (each skipped; "
            f"train.max_bad_steps is {limit}); {self._kept()}. Try a lower --lr, a smaller train.grad_clip, "
            f"or fp32 (no --cpu-bf16 / train.amp) in a new run (--resume keeps this one's config and meets the "
            f"same steps; {again})")

    def _kept(self) -> str:
        """What a stopped run leaves for --resume (for its one-line error)."""
        return (f"{self.out_dir / 'last'} holds the last good checkpoint" if resume.resumable(self.out_dir)
                else "no checkpoint was written yet")

    def _interrupted(self) -> str:
        """What a Ctrl-C at this step leaves: the step last/ holds and how to go on (one line)."""
        if self.saved_step is None:
            return (f"at step {self.step}, before the first checkpoint (step "
                    f"{min(self.cfg.train.eval_every, self.cfg.train.max_steps)}): {self.out_dir} has nothing to "
                    "resume; start it over with --overwrite")
        return (f"at step {self.step}; {self.out_dir / 'last'} holds step {self.saved_step}: `seqvae train --resume "
                f"{self.out_dir}` goes on from there")

    def validate(self) -> dict[str, Any]:
        """metrics.evaluate on the valid split (at most eval_batches batches; no importance sampling)."""
        tc = self.cfg.train
        max_sent = tc.eval_batches * tc.batch_size if tc.eval_batches else 0
        return evaluate(self.model, self.valid_set, k=0, batch_size=tc.batch_size, max_sentences=max_sent,
                        seed=tc.seed)

    def _evaluate_and_save(self) -> None:
        res = self.validate() if self.ranks.main else None  # the others wait: the weights are the same
        if self.ranks.world > 1:
            res = from_main(res)
        score = res["nll"]  # exact NLL for the LM, -ELBO (beta = 1, no free bits) for the VAE
        improved = score < self.best
        if improved:
            self.best, self.bad_evals = score, 0
        else:
            self.bad_evals += 1
        row = {"step": self.step, "split": "valid", **{k: v for k, v in res.items() if k != "au_variances"}}
        self._log(row)
        if self.cfg.train.patience and self.bad_evals >= self.cfg.train.patience:
            self.stopped_early = True  # before last/ is written, so that a resume stays stopped
        meta = {"step": self.step, "valid": res}
        state = self._state()  # every process takes part (its RNG), the first one writes
        if not self.ranks.main:  # what last/ holds once the first one has written it (it stops all if it cannot)
            self.saved_step = self.step
            return
        kept = self._kept()
        try:
            if improved:
                checkpoint.save(self.out_dir / "best", self.model, self.tokenizer, train_cfg=self.cfg.train,
                                data_meta=self.data_meta, metrics=meta, on_stale=self._dropped("best"))
            checkpoint.save(self.out_dir / "last", self.model, self.tokenizer, train_cfg=self.cfg.train,
                            data_meta=self.data_meta, metrics=meta, trainer_state=state, on_stale=self._dropped("last"))
            self.saved_step = self.step
        except OSError as e:  # disk full, permission lost: save() removed its temporary dir
            raise TrainingError(f"step {self.step}: cannot write a checkpoint in {self.out_dir} "
                                f"({e.strerror or e}); {kept}") from None
        if self.progress:
            figures = (f"valid nll {res['nll']:.2f} rec {res['rec']:.2f} kl {res['kl']:.2f} ppl {res['ppl']:.1f} "
                       f"au {res['au']} mi {format_mi(res['mi'], res['mi_se'])}" if self.cfg.model.latent
                       else f"valid nll {res['nll']:.2f} ppl {res['ppl']:.1f}")  # an LM: no z to measure
            tqdm.write(file=sys.stderr, s=f"step {self.step}: {figures}" + ("  (best)" if improved else ""))

    def _dropped(self, name: str):
        """What checkpoint.save calls with the files a replaced best/ or last/ held besides the checkpoint (a
        prior, heads, a report fitted on the old weights): they are left out of the new one, and said so."""
        def note(names: list[str]) -> None:
            print(f"seqvae train: note: step {self.step}: {self.out_dir / name} replaced without {', '.join(names)} "
                  "(made for its previous weights)", file=sys.stderr)
        return note

    def fit(self, until_step: int | None = None) -> dict[str, Any]:
        """Train to max_steps (or stop after `until_step`, as if interrupted). Returns a summary.

        Holds the run dir's lock meanwhile (RunDirBusy if another trainer has it)."""
        if self.ranks.main and not self.lock.held:  # __init__ took it; a later fit() (it releases) takes it again
            self._take_run_dir()
        bar = tqdm(total=self.cfg.train.max_steps, initial=self.step, disable=None if self.progress else True,
                   desc="train", unit="step", dynamic_ncols=True)
        try:
            self._loop(self.cfg.train.max_steps if until_step is None else min(self.cfg.train.max_steps, until_step),
                       bar)
        except KeyboardInterrupt:
            raise TrainingInterrupted(self._interrupted()) from None
        except RuntimeError as e:
            lost = lost_others(e, self.ranks)  # the cause is the other process's error, not this one's
            if lost:
                raise TrainingError(f"step {self.step}: {lost}; {self._kept()}") from None
            raise
        finally:
            bar.close()
            self.lock.release()
        return {"step": self.step, "best_valid_nll": self.best, "stopped_early": self.stopped_early,
                "train_time_s": self.train_time, "run_dir": str(self.out_dir)}

    def _loop(self, stop: int, bar) -> None:
        tc = self.cfg.train
        host_decides = not self.optimizer.defaults.get("fused")  # see _guarded_update
        self.model.train()
        acc = None
        tokens, t_log, skipped = 0, time.perf_counter(), 0
        while self.step < stop and not self.stopped_early:
            batches = self.sampler.batches(self.epoch)
            while self.batch_pos < len(batches) and self.step < stop and not self.stopped_early:
                idx = batches[self.batch_pos]
                self.batch_pos += 1  # a batch of fewer sentences than processes too (train_step's stand-in)
                t = time.perf_counter()
                stats, n_tok = self.train_step(idx)
                self.train_time += time.perf_counter() - t
                acc = stats if acc is None else acc + stats
                tokens += n_tok
                bar.update(1)
                eval_now = self.step % tc.eval_every == 0 or self.step == tc.max_steps
                log_now = self.step % tc.log_every == 0 or eval_now  # no steps go unlogged before an evaluation
                if host_decides and self.bad_streak >= tc.max_bad_steps:
                    log_now = True  # the row with the skipped steps goes to the log before the error
                if log_now and acc is not None:
                    if self.ranks.world > 1:
                        acc, tokens = sum_over_ranks(acc, tokens)
                    now = time.perf_counter()
                    loss_sum, rec, kl, bow, n, bad = acc.tolist()  # the only device sync between evaluations
                    row = {"step": self.step, "split": "train", "loss": loss_sum / n if n else None,
                           "rec": rec / n if n else None, "kl": kl / n if n else None,
                           "beta": kl_weight(self.step - 1, tc), "tokens_per_s": tokens / (now - t_log),
                           "epoch": self.epoch}
                    if self.model.bow is not None:
                        row["bow"] = bow / n if n else None
                    if bad:
                        row["nonfinite_steps"] = round(bad)  # skipped: no update (only present when some were)
                    self._log(row)
                    skipped += round(bad)
                    bar.set_postfix(loss=_fmt(row["loss"]), rec=_fmt(row["rec"]), kl=_fmt(row["kl"]),
                                    beta=f"{row['beta']:.2f}", tok_s=f"{row['tokens_per_s']:.0f}",
                                    **({"nonfinite": skipped} if skipped else {}))
                    acc, tokens, t_log = None, 0, now
                    self._check_bad_steps()
                if eval_now:
                    self._check_bad_steps()  # where the device decides: a sync, as the evaluation is anyway
                    self._evaluate_and_save()
                    faultpoint.reached("evaluated")
                    acc, tokens, t_log = None, 0, time.perf_counter()
            if self.batch_pos >= len(batches):
                self.epoch, self.batch_pos = self.epoch + 1, 0


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"

