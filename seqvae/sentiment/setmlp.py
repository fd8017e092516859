"""The set head: score each unit's μ with a small MLP, pool the scores per review, average members.

    logit(review) = mean over members of  b + Σ_s w_s f(μ_s)

f is a one-hidden-layer MLP on standardised unit posterior means, trained (AdamW, torch) on
review labels only. Averaging μ first (the linear head) sees only the mean code; scoring each
unit first lets a plainly positive clause count as such whatever else the review says. The
weights w_s: pool="mean" gives every unit of a review 1/n; pool="attention" learns them,
w = softmax over the review's units of g(μ_s) (a second small MLP), so that a clause that decides
the verdict can outweigh plot summary. A review with no unit gets the bias b alone. The shipped
recipe (HeadConfig(kind="set")): attention over clauses, five members, each refitted on all the
labels for the epochs chosen on a held-out 15%.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..checkpoint import CheckpointError
from .config import ClassifyError, HeadConfig
from .data import holdout_split
from .features import SentenceSet
from .head import Head


class SetMLP:
    """One member: f (and for attention g) and b in one torch module; standardisation stats."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, hidden: int = 256, pool: str = "mean",
                 dropout: float = 0.3, attention_hidden: int = 64):
        import torch

        if pool not in ("mean", "attention"):
            raise ClassifyError(f"the set classifier's pool must be one of mean, attention, got {pool!r}")
        self.mean, self.std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
        self.hidden, self.pool, self.meta = hidden, pool, {}
        nn = torch.nn
        self.net = nn.Module()  # its state_dict names (f.*, g.*, b) are the saved ones
        self.net.f = nn.Sequential(nn.Dropout(0.1), nn.Linear(len(mean), hidden), nn.GELU(), nn.Dropout(dropout),
                                   nn.Linear(hidden, 1))
        if pool == "attention":
            self.net.g = nn.Sequential(nn.Linear(len(mean), attention_hidden), nn.Tanh(),
                                       nn.Linear(attention_hidden, 1))
        self.net.b = nn.Parameter(torch.zeros(()))

    @property
    def b(self):
        return self.net.b

    def torch_logits(self, S: SentenceSet):
        """(n_reviews,) torch logits (with gradients in train mode)."""
        import torch

        mu, owner = torch.from_numpy(S.mu), torch.from_numpy(S.owner)
        x = (mu - torch.from_numpy(self.mean)) / torch.from_numpy(self.std)
        per = self.net.f(x).squeeze(1)
        zeros = torch.zeros(S.n_reviews, dtype=per.dtype)
        if self.pool == "attention":  # softmax of g within each review
            a = self.net.g(x).squeeze(1)
            top = torch.full_like(zeros, -torch.inf).scatter_reduce(0, owner, a.detach(), "amax")
            e = torch.exp(a - top[owner])
            return self.net.b + zeros.index_add(0, owner, e * per) / zeros.index_add(0, owner, e).clamp(min=1e-30)
        counts = torch.bincount(owner, minlength=S.n_reviews).clamp(min=1).to(per)
        return self.net.b + zeros.index_add(0, owner, per) / counts

    def logits(self, S: SentenceSet) -> np.ndarray:
        """(n_reviews,) float64 logits (eval mode, no gradients)."""
        import torch

        self.net.eval()
        with torch.no_grad():
            return self.torch_logits(S).numpy().astype(np.float64)

    def arrays(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        weights = {k: v.detach().cpu().numpy().copy() for k, v in self.net.state_dict().items()}
        weights.update(b=weights["b"].reshape(1), mean=self.mean, std=self.std)
        return weights, {"feature_dim": len(self.mean), "hidden": self.hidden, "pool": self.pool}

    @classmethod
    def from_arrays(cls, w: dict[str, np.ndarray], cfg: dict[str, Any], where: Path) -> "SetMLP":
        import torch

        try:
            # heads saved before attention pooling existed have no "pool": they are mean-pooled; the width of
            # the attention scorer g is not in the JSON: its first layer's weights (attention_hidden, Z) give it
            pool = cfg.get("pool", "mean")
            width = {"attention_hidden": int(w["g.0.weight"].shape[0])} if pool == "attention" else {}
            m = cls(w["mean"], w["std"], hidden=int(cfg["hidden"]), pool=pool, **width)
            state = {k: torch.from_numpy(v) for k, v in w.items() if k not in ("mean", "std")}
            m.net.load_state_dict({**state, "b": state["b"].reshape(())})
        except (KeyError, RuntimeError, ValueError, TypeError, ClassifyError) as e:
            raise CheckpointError(f"{where}: inconsistent set classifier head ({str(e).splitlines()[0]})") from None
        m.net.eval()
        return m


class SetHead(Head):
    """One or more SetMLP members (fitted with seeds seed, seed+1, ...) whose logits are averaged.
    Saved as set_classifier.*, member i's arrays under "m{i}."; unit and length calibration are
    the head's, in its meta."""

    kind, saved_kind = "set", "set_mlp"
    files = ("set_classifier.safetensors", "set_classifier.json")

    def __init__(self, members: Sequence[SetMLP], meta: dict[str, Any] | None = None):
        if not members:
            raise ClassifyError("a set head needs at least one member")
        self.members = list(members)
        self.pool, self.hidden = self.members[0].pool, self.members[0].hidden
        self.meta = dict(meta or {})

    @property
    def latent_dim(self) -> int:
        return len(self.members[0].mean)

    def logits(self, S: SentenceSet) -> np.ndarray:
        return np.mean([m.logits(S) for m in self.members], axis=0)

    def arrays(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        weights, cfg = {}, {"members": len(self.members), **self.meta}
        for i, m in enumerate(self.members):
            w, c = m.arrays()
            weights.update({f"m{i}.{k}": v for k, v in w.items()})
            cfg[f"m{i}"] = c
        return weights, cfg

    @classmethod
    def from_arrays(cls, w: dict[str, np.ndarray], cfg: dict[str, Any], where: Path) -> "SetHead":
        if "members" not in cfg:  # one head, as saved before bags existed
            member = SetMLP.from_arrays(w, cfg, where)
            return cls([member], {k: v for k, v in cfg.items() if k not in ("hidden", "pool")})
        try:
            n = int(cfg.pop("members"))
            members = [SetMLP.from_arrays({k[len(f"m{i}."):]: v for k, v in w.items() if k.startswith(f"m{i}.")},
                                          dict(cfg.pop(f"m{i}")), where) for i in range(n)]
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{where}: inconsistent bag of set classifier heads ({e})") from None
        return cls(members, cfg)

    @classmethod
    def fit(cls, S: SentenceSet, y: np.ndarray, cfg: HeadConfig = HeadConfig(kind="set")) -> "SetHead":
        """cfg.members members of fit_member (seeds cfg.seed, cfg.seed+1, ...)."""
        members = [fit_member(S, y, cfg.replace(seed=cfg.seed + i)) for i in range(cfg.members)]
        first = members[0].meta
        meta = {k: first[k] for k in ("n_train", "n_fit", "refit") if k in first}
        meta.update({f"{k}_per_member": [m.meta[k] for m in members] for k in ("val_accuracy", "epochs")
                     if k in first})
        return cls(members, meta)


def fit_member(S: SentenceSet, y: np.ndarray, cfg: HeadConfig) -> SetMLP:
    """Fit one SetMLP on the reviews of S with labels y.

    From cfg.min_holdout labels on, cfg.val_frac of them (stratified) are held out and the epoch
    with the best held-out accuracy (then loss) is chosen, stopping after cfg.patience epochs
    without one. cfg.refit then trains a fresh member (same seed) on all the labelled reviews for
    that many epochs, so that the held-out slice is not lost to the final head (+0.3 to +0.4
    points on a dev split of IMDB train). Fewer labels: a fixed number of epochs with stronger
    weight decay. meta["val_accuracy"] is the early-stopped member's on the held-out slice.
    Seeded, and leaves torch's global RNG as it was.
    """
    import torch

    y = np.asarray(y, dtype=np.int64)
    if len(y) != S.n_reviews or len(np.unique(y)) < 2:
        raise ClassifyError("the set classifier needs one label per review and both classes")
    early = len(y) >= cfg.min_holdout
    fit_idx, val_idx = holdout_split(y, cfg.val_frac, cfg.seed) if early else (np.arange(len(y)), np.zeros(0, np.int64))
    with torch.random.fork_rng(devices=[]):
        model, best_epoch, best = train_member(S, y, fit_idx, val_idx, cfg.epochs if early else max(cfg.epochs // 2, 1),
                                               cfg, weight_decay=1e-2 if early else 1e-1)
        if early and cfg.refit:  # best_epoch >= 1: the first epoch always beats the (-1, 0) start
            fit_idx = np.arange(len(y))
            model, _, _ = train_member(S, y, fit_idx, val_idx[:0], best_epoch, cfg, weight_decay=1e-2)
    model.meta.update({"n_train": len(y), "n_fit": int(len(fit_idx)),
                       **({"val_accuracy": best[0], "epochs": best_epoch, "refit": cfg.refit} if early else {})})
    return model


def train_member(S: SentenceSet, y: np.ndarray, fit_idx: np.ndarray, val_idx: np.ndarray, epochs: int,
                 cfg: HeadConfig, weight_decay: float) -> tuple[SetMLP, int, tuple[float, float]]:
    """One AdamW run on the reviews fit_idx, features standardised on their rows: (member in eval
    mode, best epoch, its (accuracy, -loss) on val_idx). With held-out reviews the member of the
    best epoch is kept and training stops cfg.patience epochs after it; without, all `epochs` run."""
    import torch

    bce = torch.nn.functional.binary_cross_entropy_with_logits
    train_rows = S[fit_idx].mu
    mean, std = train_rows.mean(0), train_rows.std(0) + 1e-6
    rng = np.random.default_rng([cfg.seed, 7919])
    torch.manual_seed(cfg.seed)
    model = SetMLP(mean, std, hidden=cfg.hidden, pool=cfg.pool, dropout=cfg.dropout,
                   attention_hidden=cfg.attention_hidden)
    opt = torch.optim.AdamW(model.net.parameters(), lr=cfg.lr, weight_decay=weight_decay)
    val, y_val = S[val_idx], torch.from_numpy(y[val_idx]).float()
    best, best_epoch, best_state, since = (-1.0, 0.0), epochs, None, 0
    for epoch in range(1, epochs + 1):
        model.net.train()
        order = rng.permutation(fit_idx)
        for start in range(0, len(order), cfg.batch_reviews):
            b = order[start : start + cfg.batch_reviews]
            loss = bce(model.torch_logits(S[b]), torch.from_numpy(y[b]).float())
            opt.zero_grad()
            loss.backward()
            opt.step()
        if not len(val_idx):
            continue
        model.net.eval()
        with torch.no_grad():
            lg = model.torch_logits(val)
            score = (float(((lg > 0).float() == y_val).float().mean()), -float(bce(lg, y_val)))
        if score > best:
            best, best_epoch, since = score, epoch, 0
            best_state = {k: v.clone() for k, v in model.net.state_dict().items()}
        else:
            since += 1
            if since >= cfg.patience:
                break
    if best_state is not None:
        model.net.load_state_dict(best_state)
    model.net.eval()
    return model, best_epoch, best

