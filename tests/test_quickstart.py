"""scripts/quickstart.sh: every command in its smoke form (QUICK=1) on small IMDB-like files, a shipped
checkpoint standing in for the flagship; and the guard when the flagship is missing."""

import gzip
import json
import math
import os
import random
import subprocess
from pathlib import Path

from conftest import synthetic_sentences

ROOT = Path(__file__).resolve().parents[1]
FLAGSHIP = ROOT / "checkpoints" / "imdb"


def write_reviews(root: Path) -> Path:
    """imdb/{train,test,unsup}.jsonl.gz of 2-4 sentence reviews, varied enough that the held-out
    reviews keep sentences the train split does not have."""
    rng = random.Random(0)
    sentences = iter(synthetic_sentences(1000, seed=5))
    (root / "imdb").mkdir(parents=True)
    for split, n in (("train", 60), ("test", 20), ("unsup", 40)):
        rows = [{"text": "<br /><br />".join(next(sentences).capitalize() + "." for _ in range(rng.randint(2, 4))),
                 "label": -1 if split == "unsup" else i % 2} for i in range(n)]
        with gzip.open(root / "imdb" / f"{split}.jsonl.gz", "wt", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    return root


def quickstart(tmp_path, **env) -> subprocess.CompletedProcess:
    env = {**os.environ, "QUICK": "1", "DATA": str(tmp_path / "data"), "OUT": str(tmp_path / "run"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1",
           **env}
    return subprocess.run(["bash", "scripts/quickstart.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)


def sections(stdout: str) -> list[tuple[str, list[str]]]:
    """The script's `-- ...` headings, each with the lines printed under it."""
    out: list[tuple[str, list[str]]] = []
    for line in stdout.splitlines():
        if line.startswith(("-- ", "== ")):
            out.append((line, []))
        elif out:
            out[-1][1].append(line)
    return [(head, lines) for head, lines in out if head.startswith("-- ")]


def test_quickstart_runs_every_command(tmp_path):
    proc = quickstart(tmp_path, DATA_ROOT=str(write_reviews(tmp_path / "raw")), FLAGSHIP=str(FLAGSHIP))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "data" / "meta.json").is_file()
    assert (tmp_path / "run" / "best" / "model.safetensors").is_file()
    assert json.loads((tmp_path / "run" / "last" / "metrics.json").read_text())["step"] == 20
    assert (tmp_path / "run" / "best" / "words.txt").is_file()  # `seqvae words`: the tiny model's samples keep to it
    # the flagship's samples, reconstructions (from the means, then refined) and interpolation, then the tiny
    # model's samples and reconstructions
    parts = sections(proc.stdout)
    assert [len(lines) for _, lines in parts] == [5, 3, 3, 6, 5, 3], parts
    assert parts[3][1][0].startswith("0.00  ") and parts[3][1][-1].startswith("1.00  ")
    assert all(line.strip() for line in parts[0][1] + parts[1][1] + parts[2][1])  # a trained model writes something
    # the evaluation table's row: NLL NLL/tok PPL -ELBO rec KL MI AU, MI never a bare negative number
    row = next(line for line in proc.stdout.splitlines() if line.startswith("run ")).split()
    assert all(math.isfinite(float(x)) for x in row[1:7]) and not row[7].startswith("-"), row


def test_a_missing_flagship_is_skipped_with_a_message(tmp_path):
    proc = quickstart(tmp_path, DATA_ROOT=str(tmp_path / "no-data"), FLAGSHIP=str(tmp_path / "no-flagship"))
    err = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "no checkpoint at" in err[0] and "skipping its demonstration" in err[0]
    # then on to training, here stopped by the missing corpus: one line, exit 2, nothing left behind
    assert proc.returncode == 2 and len(err) == 2 and err[1].startswith("seqvae: error:") and "no-data" in err[1]
    assert not (tmp_path / "data").exists()
