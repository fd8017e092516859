# Triton's CPU interpreter must be switched on before triton is first imported (kernel tests run on CPU).
import os; os.environ.setdefault("TRITON_INTERPRET", "1")  # noqa: E702

# ---------------------------------------------------------------------------------------------
# Shared tiny fixtures: a synthetic PTB-style corpus, prepared through the real pipeline.
import gzip  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

_SUBJECTS = ["the movie", "this film", "the plot", "the acting", "the ending", "my friend", "the director"]
_VERBS = ["was", "seemed", "felt", "is", "became"]
_ADJS = ["great", "awful", "boring", "wonderful", "slow", "funny", "sad", "brilliant", "terrible", "fine"]
_TAILS = ["", "to me", "at times", "in the end", "for a while", "and i loved it", "and i hated it"]


def synthetic_sentences(n: int, seed: int = 0) -> list[str]:
    """Short, varied, lower-cased sentences with a small vocabulary (PTB-like format)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = [rng.choice(_SUBJECTS), rng.choice(_VERBS), rng.choice(_ADJS), rng.choice(_TAILS)]
        out.append(" ".join(w for w in words if w))
    return out


def write_fake_ptb(root: Path, n_train: int = 240, n_eval: int = 40) -> Path:
    d = root / "ptb"
    d.mkdir(parents=True, exist_ok=True)
    for split, n, seed in (("train", n_train, 0), ("valid", n_eval, 1), ("test", n_eval, 2)):
        (d / f"ptb.{split}.txt").write_text("".join(f" {s} \n" for s in synthetic_sentences(n, seed)))
    return root


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory) -> Path:
    """A prepared data dir (word tokenizer) made by seqvae.prepare.prepare from synthetic PTB files."""
    from seqvae.config import DataConfig
    from seqvae.prepare import prepare

    root = write_fake_ptb(tmp_path_factory.mktemp("raw"))
    out = tmp_path_factory.mktemp("prepared") / "ptb"
    prepare(DataConfig(dataset="ptb", data_root=str(root)), out, progress=False)
    return out


# ---------------------------------------------------------------------------------------------
# A tiny VAE and GRU LM trained for a few dozen steps on 16 sentences (api and generation tests).
def train_tiny(latent: bool = True, **model_kw):
    """(model, tokenizer, its 16 training sentences): a tiny VAE (or LM) trained for 80 steps; model_kw: other
    ModelConfig fields (encoder_slots, softmax, ...)."""
    import torch

    from seqvae.config import ModelConfig
    from seqvae.data import collate
    from seqvae.model import SentenceVAE
    from seqvae.tokenizer import build_word_tokenizer

    sentences = synthetic_sentences(16, seed=3)
    tok = build_word_tokenizer(sentences)
    torch.manual_seed(0)
    model = SentenceVAE(ModelConfig(vocab_size=tok.vocab_size, embed_dim=16, hidden_dim=32, latent_dim=4,
                                    latent=latent, **model_kw))
    batch = collate([tok.encode(s) for s in sentences])
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: a second thread only adds contention on shared cores
    try:
        for step in range(80):
            out = model(batch.src, batch.src_lens, batch.dec_in, batch.target, seed=step)
            loss = (out.rec + 0.2 * out.kl).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval(), tok, sentences


@pytest.fixture(scope="session")
def trained_tiny_vae():
    """(SentenceVAE, tokenizer, its 16 training sentences)."""
    return train_tiny(latent=True)


@pytest.fixture(scope="session")
def trained_tiny_lm():
    return train_tiny(latent=False)


@pytest.fixture(scope="module")
def model(trained_tiny_vae):
    """The tiny trained VAE alone (decoding tests: generation, beam)."""
    return trained_tiny_vae[0]


@pytest.fixture(scope="module")
def z(model):
    """Six codes (6, Z) for it, the same every time."""
    import torch

    return torch.randn(6, model.cfg.latent_dim, generator=torch.Generator().manual_seed(0))


# A tiny untrained VAE whose sentences can all be listed (decoding tests by enumeration: generation, beam).
def random_vae(**kw):
    """An untrained VAE with 7 ids (4 that sentences are made of: <unk> and 4-6) and peaked next-token rows."""
    import torch

    from seqvae.config import ModelConfig
    from seqvae.model import SentenceVAE

    torch.manual_seed(0)
    model = SentenceVAE(ModelConfig(vocab_size=7, embed_dim=8, hidden_dim=8, latent_dim=3, **kw)).eval()
    with torch.no_grad():
        model.decoder.out.weight.mul_(3.0)
        model.decoder.out.bias.mul_(3.0)
    return model


def every_sentence(model, z, max_len):
    """Every sentence of at most max_len tokens -> its next-token log-probabilities (len + 1, V) from one
    teacher-forced pass of the decoder (not `step`), <pad> and BOS at -inf (never written)."""
    import itertools

    import torch

    cfg = model.cfg
    words = [t for t in range(cfg.vocab_size) if t not in (cfg.pad_id, cfg.bos_id, cfg.eos_id)]
    out = {}
    with torch.no_grad():
        for n in range(max_len + 1):
            seqs = list(itertools.product(words, repeat=n))
            inp = torch.tensor([[cfg.bos_id, *s] for s in seqs]).view(len(seqs), n + 1)
            hidden, _ = model.decoder(inp, z.expand(len(seqs), -1))
            logits = model.decoder.logits(hidden).double()
            logits[..., [cfg.pad_id, cfg.bos_id]] = float("-inf")
            out.update(zip(seqs, logits.log_softmax(-1)))
    return out


@pytest.fixture(scope="session")
def tiny_vae_ckpt(tmp_path_factory, trained_tiny_vae):
    from seqvae import checkpoint

    return checkpoint.save(tmp_path_factory.mktemp("ckpt") / "vae", *trained_tiny_vae[:2])


@pytest.fixture(scope="module")
def vae(tiny_vae_ckpt):
    """The tiny VAE checkpoint loaded through the API (modules may define their own `vae`)."""
    from seqvae import SeqVAE

    return SeqVAE.from_pretrained(tiny_vae_ckpt, device="cpu")


@pytest.fixture(scope="module")
def texts(trained_tiny_vae):
    """Six of the tiny VAE's training sentences."""
    return trained_tiny_vae[2][:6]


@pytest.fixture(scope="session")
def tiny_lm_ckpt(tmp_path_factory, trained_tiny_lm):
    from seqvae import checkpoint

    return checkpoint.save(tmp_path_factory.mktemp("ckpt") / "lm", *trained_tiny_lm[:2])


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny models gain nothing from threads, and spinning OpenMP threads hurt on a busy machine."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

# ---------------------------------------------------------------------------------------------
# Tiny IMDB files and an untrained checkpoint for them (the sentiment tests).
IMDB_POS = ["great", "wonderful", "brilliant", "funny", "moving"]
IMDB_NEG = ["awful", "boring", "terrible", "dull", "slow"]
IMDB_SUBJ = ["the movie", "this film", "the plot", "the acting", "the ending", "the music"]


def _imdb_review(rng, label):
    adjs = IMDB_POS if label else IMDB_NEG
    sents = [f"{IMDB_SUBJ[rng.integers(len(IMDB_SUBJ))]} was {adjs[rng.integers(len(adjs))]} ." for _ in range(rng.integers(1, 4))]
    return "<br /><br />".join(s.capitalize() for s in sents)


def write_fake_imdb(root, n_train=40, n_test=20, n_unsup=30):
    """imdb/{train,test,unsup}.jsonl.gz of 1-3 sentence reviews whose adjective tells the label.
    The unlabelled reviews (label -1) alternate between the two kinds, as the real unsup split mixes them."""
    rng = np.random.default_rng(0)
    (root / "imdb").mkdir(parents=True)
    for split, n in (("train", n_train), ("test", n_test), ("unsup", n_unsup)):
        labels = [-1] * n if split == "unsup" else [0] * (n // 2) + [1] * (n // 2)
        rows = [{"text": _imdb_review(rng, i % 2 if lab < 0 else lab), "label": lab} for i, lab in enumerate(labels)]
        with gzip.open(root / "imdb" / f"{split}.jsonl.gz", "wt", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    return root


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(checkpoint dir, data root) with a word tokenizer and an untrained Z=4 VAE (classify tests)."""
    import torch

    from seqvae import checkpoint
    from seqvae.config import ModelConfig
    from seqvae.model import SentenceVAE
    from seqvae.tokenizer import build_word_tokenizer

    base = tmp_path_factory.mktemp("classify")
    root = write_fake_imdb(base / "data")
    words = [f"{s} was {a} ." for s in IMDB_SUBJ for a in IMDB_POS + IMDB_NEG]
    tok = build_word_tokenizer(words + [w.capitalize() for w in words])
    torch.manual_seed(1)  # not the untrained baseline's seed (0), so the two encoders differ
    model = SentenceVAE(ModelConfig(vocab_size=tok.vocab_size, embed_dim=8, hidden_dim=12, latent_dim=4))
    ckpt = checkpoint.save(base / "ckpt", model, tok)
    return ckpt, root


@pytest.fixture
def one_line(capsys):
    """one_line(argv, pattern): `seqvae ARGV` exits 2 with one stderr line, "seqvae: error: ..." with `pattern`."""
    from seqvae.cli import main

    def check(argv, pattern):
        assert main([str(a) for a in argv]) == 2
        lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("seqvae: error:") and pattern in lines[0], lines

    return check


def run_script(name: str):
    """scripts/NAME.py's main() as a function run in this process: argv in, (exit code, stdout, stderr) out."""
    import contextlib
    import importlib.util
    import io
    import sys

    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def run(*argv):
        out, err, old = io.StringIO(), io.StringIO(), sys.argv
        sys.argv = [name, *map(str, argv)]
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
                rc = module.main()
        finally:
            sys.argv = old
        return rc, out.getvalue(), err.getvalue()

    run.module = module
    return run


# ---------------------------------------------------------------------------------------------
# Several processes in one gloo group on CPU, as torchrun makes them (a function run in each).
def _rank_main(rank, world, store, fn, args, out):
    """One process of `world`: torchrun's environment, the group joined (a file store: no port to pick), fn run."""
    import datetime
    import os

    import torch
    import torch.distributed as dist

    from seqvae.ranks import exit_joined

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    # a collective that one process never joins (it failed) fails the others after 5 minutes, not 30
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(minutes=5))
    torch.save(fn(rank, *args), Path(out) / f"rank{rank}.pt")
    exit_joined(0)  # as `seqvae` ends a process in a group (Python's shutdown can abort it: see exit_joined)


@pytest.fixture
def in_ranks(tmp_path):
    """in_ranks(fn, *args, world=2): fn(rank, *args) in `world` fresh CPU processes joined in one gloo process
    group, with RANK, WORLD_SIZE and LOCAL_RANK set; their results (tensors, dicts, lists) in rank order.
    fn must be a module-level function of a test module (the processes are spawned, not forked)."""
    import torch
    import torch.multiprocessing as mp

    def run(fn, *args, world=2):
        out = tmp_path / f"ranks-{fn.__name__}"
        out.mkdir()
        mp.spawn(_rank_main, args=(world, out / "store", fn, args, out), nprocs=world, join=True)
        return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(world)]

    return run
