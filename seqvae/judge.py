"""The quality report's judge: a language model other than the VAE that scores text (perplexity per token, EOS
included). It is a `--lm` checkpoint (checkpoints/imdb-lm is the same-budget subword GRU-LM; it saw the training
sentences, none of the held-out ones). The report shows that it can tell: real sentences must score a lower
perplexity than the same sentences word-shuffled, with one word replaced by an invented string of subword pieces,
and two half sentences spliced together.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch

from .api import SeqVAE
from .checkpoint import weights_sha256
from .data import collate
from .tokenizer import WordTokenizer

JUDGED_LISTS = 64  # lists of texts whose judge scores are kept for a second call (then forgotten all at once)


class ReportError(ValueError):
    """The report cannot run as asked (one-line message)."""


class Judge:
    """A language-model checkpoint that scores text: perplexity per token, EOS included."""

    def __init__(self, lm: SeqVAE, name: str, weights_sha256: str | None = None):
        """name: how the report names it (its path); weights_sha256: its weights' identity, where known (`load`):
        two reports' judged figures compare only under the same judge."""
        if lm.latent:
            raise ReportError(f"{name}: the judge must be a language model checkpoint (trained with --lm)")
        self.lm, self.name, self.weights_sha256 = lm, name, weights_sha256
        self._scored: dict[tuple[str, ...], tuple[np.ndarray, np.ndarray]] = {}  # nll's answers (see nll)
        tok = lm.tokenizer
        self._pieces = [p for p in (tok.id_to_piece(i).lstrip("\u2581") for i in range(4, len(tok)))
                        if p.isalpha() and len(p) >= 2]

    @classmethod
    def load(cls, path: str, device: str | None = None) -> "Judge":
        """The language-model checkpoint at `path` (a checkpoint dir or a run dir), named by its path and weights."""
        sha = weights_sha256(path)  # raises as from_pretrained would for a path that is no checkpoint
        return cls(SeqVAE.from_pretrained(path, device=device), path, sha)

    def nll(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(NLL in nats, tokens incl. EOS) per text; an empty text (a decode that ended at once) scores as
        EOS alone: -log p(EOS | BOS), one token. The same texts again (the report scores its held-out sentences
        for the checks, the ratios' denominator and the latent section) are answered from the first call: the
        LM's score of a list is the same every time."""
        texts = list(texts)
        key = tuple(texts)
        if key not in self._scored:
            if len(self._scored) >= JUDGED_LISTS:
                self._scored.clear()
            self._scored[key] = self._nll(texts)
        nll, tok = self._scored[key]
        return nll.copy(), tok.copy()

    def _nll(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        nll, tok = np.full(len(texts), np.nan), np.ones(len(texts))
        full = [i for i, t in enumerate(texts) if t.strip()]
        if full:
            kept = [texts[i] for i in full]
            nll[full] = self.lm.score(kept).double().numpy()
            tok[full] = [len(i) + 1 for i in self.lm.tokenize(kept)]
        if len(full) < len(texts):
            nll[[i for i, t in enumerate(texts) if not t.strip()]] = self._eos_alone()
        return nll, tok

    def _eos_alone(self) -> float:
        cfg, model = self.lm.model.cfg, self.lm.model
        batch = collate([[]], pad_id=cfg.pad_id, bos_id=cfg.bos_id, eos_id=cfg.eos_id).to(model.device)
        with torch.no_grad(), model.evaluating():
            return float(model.token_nll(batch.dec_in, batch.target, None)[0])

    def ppl(self, texts: Sequence[str]) -> float:
        nll, tok = self.nll(texts)
        return math.exp(nll.sum() / tok.sum())

    def invented_word(self, rng: np.random.Generator) -> str:
        """A string of 2-3 subword pieces of letters glued into one word the corpus never had. A word-level
        judge would read any such string as its unknown word, a frequent token: it gets a random word of its
        vocabulary instead (mostly rare ones), a corruption it can see."""
        if isinstance(self.lm.tokenizer, WordTokenizer):
            return str(rng.choice(self._pieces))
        return "".join(rng.choice(self._pieces, size=int(rng.integers(2, 4))))

    def checks(self, sentences: Sequence[str], seed: int = 0) -> dict[str, Any]:
        """The judge's perplexity on real sentences and three corruptions of them, and for each corruption
        the share of sentences it ranks below the real one (per-token NLL); all on the sentences of four or more
        words ("sentences" under "real" says how many)."""
        rng = np.random.default_rng(seed)
        real = checked_sentences(sentences)
        split = [s.split() for s in real]
        corrupt = {
            "shuffled": [" ".join(rng.permutation(w)) for w in split],
            "invented word": [" ".join(w[:j] + [self.invented_word(rng)] + w[j + 1 :])
                              for w in split for j in [int(rng.integers(len(w)))]],
            "spliced": [" ".join(a[: len(a) // 2] + b[len(b) // 2 :]) for a, b in zip(split, split[1:] + split[:1])],
        }
        nll, tok = self.nll(real)
        out: dict[str, Any] = {"real": {"ppl": math.exp(nll.sum() / tok.sum()), "sentences": len(real)}}
        for name, texts in corrupt.items():
            c_nll, c_tok = self.nll(texts)
            out[name] = {"ppl": math.exp(c_nll.sum() / c_tok.sum()),
                         "real_ranked_higher": float(np.mean(nll / tok < c_nll / c_tok))}
        out["passes"] = all(out[k]["ppl"] > out["real"]["ppl"] for k in corrupt)
        return out


def checked_sentences(sentences: Sequence[str], where: str = "the held-out sentences") -> list[str]:
    """The sentences the judge checks corrupt: those of four or more words (a shuffle or a splice of fewer
    says little); fewer than two of them is a ReportError, which callers can raise before loading anything."""
    real = [s for s in sentences if len(s.split()) >= 4]
    if len(real) < 2:
        raise ReportError(f"the judge checks need at least two sentences of four or more words ({where}: {len(real)})")
    return real
