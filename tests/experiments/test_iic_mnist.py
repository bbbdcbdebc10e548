"""One-step smoke tests of the IIC and MINE experiments on tiny data, resume included."""

import gzip
import json
import struct

import numpy as np
import pytest

from experiments import _common, iic_mnist, mine_gaussian


def _write_idx(path, array, magic):
  header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
  with gzip.open(path, "wb") as f:
    f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def tiny_mnist(tmp_path_factory):
  """Synthetic MNIST-format files: blobs whose position encodes the label."""
  root = tmp_path_factory.mktemp("mnist")
  rng = np.random.default_rng(0)
  for prefix, n in (("train", 300), ("t10k", 220)):
    labels = rng.integers(0, 10, n)
    images = np.zeros((n, 28, 28), np.uint8)
    for i, c in enumerate(labels):
      r, q = divmod(int(c), 5)
      images[i, 4 + 10 * r:12 + 10 * r, 2 + 5 * q:7 + 5 * q] = 255
    _write_idx(root / f"{prefix}-images-idx3-ubyte.gz", images, 2051)
    _write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", labels, 2049)
  return str(root)


def test_iic_tiny_run_writes_results_and_resumes(tiny_mnist, tmp_path):
  record = tmp_path / "runs.json"
  workdir = tmp_path / "work"
  res = iic_mnist.run("tiny", data_dir=tiny_mnist, workdir=str(workdir), record=str(record),
                      progress=False)
  cfg = iic_mnist.CONFIGS["tiny"]
  assert res["final_step"] == cfg.num_steps
  for key in ("command", "wall_seconds", "machine", "config", "test_accuracy",
              "best_head_accuracy"):
    assert key in res, key
  assert 0.0 <= res["test_accuracy"] <= res["best_head_accuracy"] <= 1.0
  on_disk = json.loads((workdir / "results.json").read_text())
  assert on_disk["test_accuracy"] == res["test_accuracy"]
  assert (workdir / "confusion.png").read_bytes()[:4] == b"\x89PNG"
  runs = json.loads(record.read_text())["runs"]
  assert len(runs) == 1 and runs[0]["config"] == "tiny"
  assert len(runs[0]["head_accuracy"]) == cfg.num_heads
  # Rerunning the same command resumes from the final checkpoint: nothing left to train,
  # the same evaluation.
  again = iic_mnist.run("tiny", data_dir=tiny_mnist, workdir=str(workdir), progress=False,
                        record=str(record))
  assert again["final_step"] == cfg.num_steps
  assert again["test_accuracy"] == res["test_accuracy"]
  assert again["wall_seconds"] >= res["wall_seconds"]  # adds up across invocations
  assert len(json.loads(record.read_text())["runs"]) == 1  # nothing trained: not recorded


def test_iic_rejects_unknown_config(tiny_mnist, tmp_path):
  with pytest.raises(ValueError, match="config"):
    iic_mnist.run("nope", data_dir=tiny_mnist, workdir=str(tmp_path))


def test_mine_tiny_run(tmp_path):
  record = tmp_path / "mine.json"
  runs = mine_gaussian.run("tiny", workdir=str(tmp_path / "w"), rhos=(0.5,),
                           record=str(record), progress=False)
  (run,) = runs
  assert run["rho"] == 0.5 and run["analytic"] == pytest.approx(0.143841, abs=1e-6)
  assert np.isfinite(run["estimate"])
  stored = json.loads(record.read_text())["runs"]
  assert stored[0]["estimate"] == run["estimate"]
  for key in ("command", "wall_seconds", "machine"):
    assert key in stored[0]


def test_append_run_rejects_foreign_files(tmp_path):
  path = tmp_path / "x.json"
  path.write_text(json.dumps({"not_runs": 1}))
  with pytest.raises(ValueError, match="runs"):
    _common.append_run(path, {"a": 1})
