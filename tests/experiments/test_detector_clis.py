"""The Faster R-CNN and YOLO CLIs end to end on tiny data: train, evaluate from the weights
alone, predict on files of any size; and the detectors' comparison table."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from experiments import detectors, faster_rcnn, yolo
from jaxvision.inference import Detector
from tests.experiments._data import blob_digits

# id -> (CLI module, config, model). experiments.faster_rcnn's Faster R-CNN configs run the
# same CLI and box machinery as its mask_tiny (a FasterRCNN subclass plus the mask head); the
# plain `tiny` config is left out for CI time (it is the one the experiments' defaults use,
# and tests/models/test_faster_rcnn.py covers the model, its Detector and the task's loss).
_CLIS = {"mask_rcnn": (faster_rcnn, "mask_tiny", "MaskRCNNTiny"),
         "yolo": (yolo, "tiny", "YOLOTiny")}


@pytest.fixture(scope="module")
def digits():
  return {"train": blob_digits(40, 0), "test": blob_digits(12, 1)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, digits):
  """``train(id)``: the id's tiny config trained once per module (lazily)."""
  done = {}

  def train(name):
    if name not in done:
      cli, config, model = _CLIS[name]
      root = tmp_path_factory.mktemp(name)
      workdir, record = root / "work", root / "record.json"
      # Score threshold 0: after 3 steps no class reaches 0.5 (see tests/experiments/test_ssd.py).
      results = cli.main(["--config", config, "--workdir", str(workdir), "--record",
                          str(record), "--score-threshold", "0", "--no-progress"],
                         digits=digits)
      done[name] = (config, cli, model, results, workdir, record)
    return done[name]

  return train


@pytest.fixture(params=sorted(_CLIS))
def trained(request, runs):
  return runs(request.param)


def test_train_writes_results_weights_png_and_record(trained):
  config, cli, model, results, workdir, record = trained
  assert results["final_step"] == cli.CONFIGS[config].steps
  for key in ("map50", "map", "precision", "recall"):
    assert 0.0 <= results[key] <= 1.0, key
  assert results["command"].startswith(f"python -m {cli.__name__}")
  assert ("mask_map50" in results) == (model == "MaskRCNNTiny")
  with Image.open(workdir / "predictions.png") as im:
    assert im.format == "PNG" and im.width >= 320
  assert json.loads(record.read_text())["runs"][0]["map50"] == results["map50"]
  det = Detector.load(workdir)
  assert det.end_to_end and det.spec.model == model and det.spec.nms == "per_class"
  assert det.spec.training["steps"] == cli.CONFIGS[config].steps


def test_evaluate_reproduces_the_trained_numbers(runs, digits, tmp_path):
  # The driver's path is the same for every detector; Mask R-CNN's also evaluates masks.
  _, cli, _, results, workdir, _ = runs("mask_rcnn")
  again = cli.main(["--evaluate", "--restore-weights", str(workdir), "--workdir",
                    str(tmp_path)], digits=digits)
  for key in ("map50", "map", "precision", "recall", "miou", "mask_map50"):
    assert again.get(key) == pytest.approx(results.get(key), abs=1e-6), key


def test_predict_on_files_of_any_size(trained, tmp_path, capsys):
  _, cli, _, _, workdir, _ = trained
  rng = np.random.default_rng(0)
  files = []
  for name, (h, w) in (("small.png", (30, 50)), ("big.jpg", (150, 100))):
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(tmp_path / name)
    files.append(str(tmp_path / name))
  out = cli.main(["--predict", *files, "--restore-weights", str(workdir), "--workdir",
                  str(tmp_path / "pred")])
  assert json.loads(capsys.readouterr().out)["images"][0]["file"] == files[0]
  for entry, (h, w) in zip(out["images"], ((30, 50), (150, 100))):
    assert (entry["height"], entry["width"]) == (h, w)
    assert len(entry["detections"]) > 0  # score threshold 0 in these weights
    for d in entry["detections"]:
      x1, y1, x2, y2 = d["box_xyxy"]
      assert 0 <= x1 <= x2 <= w + 0.1 and 0 <= y1 <= y2 <= h + 0.1


def test_detector_card_and_table(runs):
  _, _, model, _, workdir, _ = runs("yolo")
  det = Detector.load(workdir)
  images = np.random.default_rng(0).integers(0, 255, (16, 48, 64, 3), dtype=np.uint8)
  card = detectors.detector_card(det, images, batch_size=8, repeats=1)
  assert card["model"] == model and card["params"] > 1000
  assert card["inference_images_per_s"] > 0 and card["train_steps"] == 3
  assert card["train_images_per_s"] == pytest.approx(
      3 * 4 / det.spec.training["wall_seconds"])
  card.update(name="x", metrics={"map50": 0.5, "map": 0.25, "precision": 1, "recall": 0.5})
  text = detectors.table([card])
  assert f"| x | {model} | {card['params']:,} |" in text
  assert "| 0.500 | 0.250 | 1.000 | 0.500 | - |" in text  # no mask AP for a box detector
  with pytest.raises(ValueError, match="`images`"):
    detectors.detector_card(det, images[:3], batch_size=8)
