"""Smoke tests of the SSD experiment (``experiments/ssd.py``) on tiny synthetic data.

The ``tiny`` config (48 x 64 scenes, 32 train / 8 test, 3 steps of 8) on a pool of synthetic
"digits" (random blobs, so no MNIST is read): the results keys, the detections PNG, the
record file, the ``--evaluate --restore-weights`` path reproducing the trained run's metrics,
and the CLI's argument checks. ``make_targets`` is checked as a round trip through
``ops.decode_boxes``.
"""

from __future__ import annotations

import dataclasses
import json

import jax.numpy as jnp
import numpy as np
import pytest

from experiments import ssd
from jaxvision import ops


def _pool(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """``n`` uint8 [28, 28] blobs (a filled ellipse with a soft edge) and labels 0..9."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[:28, :28]
  images = np.zeros((n, 28, 28), np.uint8)
  for i in range(n):
    cy, cx = rng.uniform(10, 18, 2)
    ry, rx = rng.uniform(4, 10), rng.uniform(3, 9)
    r = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
    images[i] = np.clip((1.3 - r) * 255 / 0.6, 0, 255).astype(np.uint8)
  return images, rng.integers(0, 10, n)


@pytest.fixture(scope="module")
def digits():
  return {"train": _pool(60, 0), "test": _pool(30, 1)}


# The tiny config with every anchor a candidate detection: after 3 steps no class
# probability reaches the book's 0.5, and metrics that are all 0 would make the comparison of
# the trained and the restored evaluation vacuous.
_CONFIG = dataclasses.replace(ssd.CONFIGS["tiny"], class_threshold=0.0, map_class_threshold=0.0)
_OPTS = ssd.LossOptions(normalize=True, improved_loss=True)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, digits):
  root = tmp_path_factory.mktemp("ssd")
  workdir, image_file, record = root / "work", root / "dets.png", root / "ssd.json"
  results = ssd.run("tiny", _OPTS, data_dir=None, workdir=str(workdir), digits=digits,
                    image_file=str(image_file), record=str(record), progress=False,
                    config=_CONFIG)
  return results, workdir, image_file, record


def test_tiny_run_writes_results_png_and_record(trained):
  results, workdir, image_file, record = trained
  cfg = _CONFIG
  for key in ("map50", "map", "miou", "precision", "recall", "image_size", "epochs",
              "wall_seconds", "command", "machine"):
    assert key in results, key
  for key in ("map50", "map", "miou", "precision", "recall"):
    assert 0.0 <= results[key] <= 1.0, (key, results[key])
  assert results["final_step"] == cfg.num_steps
  assert results["image_size"] == list(cfg.image_size)
  assert results["epochs"] == pytest.approx(cfg.num_steps * cfg.batch_size / cfg.train_scenes,
                                            abs=0.01)
  assert results["config"] == "normalized+smooth_l1+focal" and results["config_name"] == "tiny"
  assert results["miou"] > 0 and results["recall"] > 0  # there are detections to compare
  assert results["wall_seconds"] > 0 and results["command"].startswith("python -m")
  on_disk = json.loads((workdir / "results.json").read_text())
  assert on_disk["map50"] == results["map50"]
  assert (workdir / "weights.msgpack").is_file()
  assert image_file.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  runs = json.loads(record.read_text())["runs"]
  assert len(runs) == 1
  for key in ("config", "map50", "map", "miou", "image_size", "epochs", "wall_seconds",
              "command", "machine"):
    assert runs[0][key] == results[key], key


def test_evaluate_restored_weights_reproduces_the_metrics(trained, digits, tmp_path):
  results, workdir, image_file, _ = trained
  image_again = tmp_path / "dets.png"
  again = ssd.run("tiny", _OPTS, data_dir=None, workdir=str(tmp_path / "eval"), digits=digits,
                  train=False, restore_weights=str(workdir), record=str(tmp_path / "r.json"),
                  image_file=str(image_again), progress=False, config=_CONFIG)
  assert again["restored_from"] == str(workdir)
  for key in ("map50", "map", "miou", "precision", "recall"):
    assert again[key] == pytest.approx(results[key], abs=1e-6), key
  for key, value in results["eval"].items():
    assert again["eval"][key] == pytest.approx(value, abs=1e-6), key
  # The same detections (boxes, classes, scores to 2 decimals) drawn on the same scenes.
  assert image_again.read_bytes() == image_file.read_bytes()
  assert not (tmp_path / "r.json").exists()  # nothing trained: nothing recorded


def test_main_argument_checks(tmp_path):
  with pytest.raises(SystemExit):  # --train or --evaluate is required
    ssd.main(["--workdir", str(tmp_path)])
  with pytest.raises(SystemExit):  # ... and they exclude each other
    ssd.main(["--train", "--evaluate", "--workdir", str(tmp_path)])
  with pytest.raises(SystemExit):
    ssd.main(["--train", "--workdir", str(tmp_path), "--config", "nope"])
  with pytest.raises(SystemExit):  # --workdir is required to train or evaluate
    ssd.main(["--train", "--config", "tiny"])
  with pytest.raises(ValueError, match="config"):
    ssd.run("nope", ssd.LossOptions(), data_dir=None, workdir=str(tmp_path))


def test_evaluate_needs_restore_weights(digits, tmp_path):
  with pytest.raises(ValueError, match="restore-weights"):
    ssd.run("tiny", ssd.LossOptions(), data_dir=None, workdir=str(tmp_path), train=False,
            digits=digits)


def test_main_evaluate_needs_restore_weights_before_loading_data(tmp_path, monkeypatch, capsys):
  # The check must come before any data is read: no MNIST, no TFDS here.
  def no_data(*args, **kwargs):
    raise AssertionError("the data was loaded before the arguments were checked")

  monkeypatch.setattr(ssd, "make_task", no_data)
  with pytest.raises(SystemExit):
    ssd.main(["--evaluate", "--workdir", str(tmp_path), "--config", "tiny"])
  assert "--restore-weights" in capsys.readouterr().err


def test_main_table_prints_the_recorded_run(trained, capsys):
  results, _, _, record = trained
  ssd.main(["--table", str(record)])
  table = capsys.readouterr().out
  assert "normalized+smooth_l1+focal" in table and f"{results['miou']:.3f}" in table
  assert "(0.51)" in table  # the book's mIoU for that configuration


# ---------------------------------------------------------------------------------------------
# make_targets.


@pytest.mark.parametrize("variances", [None, (0.1, 0.2)], ids=["raw", "normalize"])
def test_make_targets_round_trip(variances):
  cfg = ssd.CONFIGS["tiny"]
  model = ssd.build_model(cfg)
  anchors = ssd.make_anchors(model, cfg)
  boxes = jnp.array([[[3.0, 5.0, 20.0, 30.0], [30.0, 10.0, 60.0, 44.0], [0.0] * 4],
                     [[10.0, 12.0, 14.0, 20.0], [0.0] * 4, [0.0] * 4],
                     [[1.0, 1.0, 63.0, 47.0], [40.0, 30.0, 50.0, 40.0],
                      [41.0, 31.0, 49.0, 39.0]]])
  classes = jnp.array([[3, 7, 0], [10, 0, 0], [1, 2, 2]])
  num_boxes = jnp.array([2, 1, 3])
  labels, targets = ssd.make_targets(anchors, boxes, classes, num_boxes,
                                     threshold=cfg.threshold, variances=variances)
  assert labels.shape == (3, anchors.shape[0]) and labels.dtype == jnp.int32
  assert targets.shape == (3, anchors.shape[0], 4)
  decoded = np.asarray(ops.decode_boxes(targets, anchors, variances=variances))
  labels, boxes, classes = np.asarray(labels), np.asarray(boxes), np.asarray(classes)
  for b in range(3):
    n = int(num_boxes[b])
    positive = labels[b] > 0
    assert set(labels[b][positive]) <= set(classes[b, :n])
    # Every positive anchor's decoded target is one of the image's valid GT boxes of its
    # label ...
    for a in np.flatnonzero(positive):
      dist = np.abs(boxes[b, :n] - decoded[b, a]).max(axis=-1)
      g = int(np.argmin(dist))
      assert dist[g] < 1e-3 and classes[b, g] == labels[b, a], (b, a, decoded[b, a])
    # ... and every valid GT gets at least one positive anchor that decodes to it.
    for g in range(n):
      dist = np.abs(decoded[b][positive] - boxes[b, g]).max(axis=-1)
      assert (dist < 1e-3).any(), (b, g)
    # Background anchors decode to themselves.
    np.testing.assert_allclose(decoded[b][~positive], np.asarray(anchors)[~positive],
                               atol=1e-3)
