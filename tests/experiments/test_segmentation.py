"""Smoke tests of the segmentation experiments (FCN, SegNet, U-Net) on tiny synthetic scenes.

The scenes are drawn from random synthetic "digits" (``SceneSource(digits=...)``), so the
tests never need MNIST; each CLI trains its tiny model for a few steps, evaluates, writes
results, triptychs and a record, and evaluates its saved weights again.
"""

import json

import jax
import numpy as np
import pytest
from PIL import Image

from experiments import _segmentation, fcn, segnet, unet

_CLIS = {"fcn": fcn, "segnet": segnet, "unet": unet}


@pytest.fixture(scope="module")
def digits():
  """Blocky stand-ins for MNIST digits: a fixed random 7 x 7 pattern per class, scaled to 28."""
  rng = np.random.default_rng(0)
  patterns = rng.random((10, 7, 7)) > 0.5
  pools = {}
  for split, n in (("train", 40), ("test", 20)):
    labels = rng.integers(0, 10, n)
    images = np.kron(patterns[labels], np.ones((4, 4))).astype(np.uint8) * 255
    pools[split] = (images, labels)
  return pools


@pytest.mark.parametrize("family", sorted(_CLIS))
def test_tiny_cli_trains_evaluates_and_records(family, digits, tmp_path):
  cli = _CLIS[family]
  workdir, record, png = tmp_path / "work", tmp_path / "runs.json", tmp_path / "fig.png"
  res = cli.main(["--train", "--config", "tiny", "--workdir", str(workdir), "--record",
                  str(record), "--image-file", str(png), "--no-progress"], digits=digits)
  cfg = cli.CONFIGS["tiny"]
  assert res["final_step"] == res["steps"] == cfg.num_steps
  for key in ("miou", "pixel_accuracy", "dataset_miou", "dataset_pixel_accuracy"):
    assert 0.0 <= res[key] <= 1.0, key
  assert len(res["per_class_iou"]) == _segmentation.NUM_CLASSES
  assert res["model"].endswith("Tiny") and res["params"] > 0
  on_disk = json.loads((workdir / "results.json").read_text())
  assert on_disk["miou"] == res["miou"]
  n = cfg.triptychs
  for path in (png, workdir / _segmentation.TRIPTYCH_FILE):
    with Image.open(path) as im:
      assert im.format == "PNG" and im.height > n * cfg.image_size[0]
      assert im.width >= 3 * cfg.image_size[1]
  (run,) = json.loads(record.read_text())["runs"]
  for key in ("model", "miou", "pixel_accuracy", "dataset_miou", "per_class_iou", "params",
              "image_size", "epochs", "steps", "wall_seconds", "command", "machine", "config"):
    assert key in run, key
  assert run["config"] == "tiny" and run["image_size"] == list(cfg.image_size)
  # --evaluate of the saved weights reproduces the final evaluation exactly.
  again = cli.run("tiny", train=False, restore_weights=str(workdir), data_dir=None,
                  workdir=str(tmp_path / "eval"), digits=digits)
  assert again["miou"] == res["miou"]
  assert again["per_class_iou"] == res["per_class_iou"]
  assert len(json.loads(record.read_text())["runs"]) == 1  # evaluation is not recorded
  # A workdir without weights.msgpack (a killed run) is restored from its orbax checkpoint.
  (workdir / "weights.msgpack").unlink()
  from_ckpt = cli.run("tiny", train=False, restore_weights=str(workdir / "checkpoints"),
                      data_dir=None, workdir=str(tmp_path / "eval2"), digits=digits)
  assert from_ckpt["miou"] == res["miou"]


def test_rejects_unknown_config(tmp_path):
  with pytest.raises(ValueError, match="config"):
    segnet.run("nope", data_dir=None, workdir=str(tmp_path))


def test_book_schedule_matches_the_book():
  cfg = _segmentation.SegConfig(num_steps=100)
  lr = _segmentation.learning_rate(cfg)
  got = [float(lr(s)) for s in (0, 39, 40, 59, 60, 79, 80, 99)]
  np.testing.assert_allclose(got, [1e-3, 1e-3, 5e-4, 5e-4, 1e-4, 1e-4, 5e-5, 5e-5], rtol=1e-6)


def test_triptychs_use_fixed_class_colours(tmp_path):
  images = np.zeros((2, 8, 10, 3), np.uint8)
  labels = np.zeros((2, 8, 10), np.uint8)
  labels[0, 2:4, 3:5] = 4
  preds = labels.copy()
  path = tmp_path / "t.png"
  _segmentation.save_triptychs(path, images, labels, preds, scale=1)
  pixels = np.asarray(Image.open(path).convert("RGB"))
  colour = _segmentation.scenes.class_colours(11)[4]
  assert (pixels == colour).all(axis=-1).sum() >= 2 * 4  # ground truth + prediction tiles


def test_restored_weights_are_the_starting_point(digits):
  cfg = unet.CONFIGS["tiny"]
  model = _segmentation.build_model("unet", cfg)
  weights = jax.jit(_segmentation.make_init(model, cfg))(jax.random.key(1))
  task, _ = _segmentation.make_task("unet", cfg, None, digits=digits, initial_weights=weights)
  start = task.init(jax.random.key(2))
  for a, b in zip(jax.tree.leaves(start), jax.tree.leaves(weights)):
    np.testing.assert_array_equal(a, b)
  fresh, _ = _segmentation.make_task("unet", cfg, None, digits=digits)
  assert any(not np.array_equal(a, b) for a, b in zip(
      jax.tree.leaves(fresh.init(jax.random.key(2))), jax.tree.leaves(weights)))


def test_results_table_lists_each_run():
  runs = [{"model": m, "params": p, "image_size": [120, 160], "steps": 10, "epochs": 0.1,
           "miou": iou, "pixel_accuracy": 0.9512, "dataset_miou": 0.2, "wall_seconds": 5.0,
           "command": f"python -m experiments.{m.lower()}"}
          for m, p, iou in (("FCNSmall", 1234, 0.4187), ("UNetSmall", 99, 0.5))]
  table = _segmentation.results_table(runs)
  rows = [line for line in table.splitlines() if line.startswith("| ")]
  assert len(rows) == 4  # header + 2 runs + the book's reference row
  assert "| FCNSmall | 1,234 | 120x160 | 10 (0.1) | 0.419 | 95.12% |" in table
  assert "`python -m experiments.unetsmall`" in table
