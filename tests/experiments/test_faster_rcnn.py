"""The Faster R-CNN CLI end to end on tiny data: train, evaluate from the weights alone,
predict on files of any size."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from experiments import faster_rcnn
from jaxvision.inference import Detector
from tests.experiments._data import blob_digits


@pytest.fixture(scope="module")
def digits():
  return {"train": blob_digits(40, 0), "test": blob_digits(12, 1)}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, digits):
  root = tmp_path_factory.mktemp("frcnn")
  workdir, record = root / "work", root / "frcnn.json"
  # Score threshold 0: after 3 steps no class reaches 0.5 (see tests/experiments/test_ssd.py).
  results = faster_rcnn.main(["--config", "tiny", "--workdir", str(workdir), "--record",
                              str(record), "--score-threshold", "0", "--no-progress"],
                             digits=digits)
  return results, workdir, record


def test_train_writes_results_weights_png_and_record(trained):
  results, workdir, record = trained
  cfg = faster_rcnn.CONFIGS["tiny"]
  assert results["final_step"] == cfg.steps
  for key in ("map50", "map", "precision", "recall"):
    assert 0.0 <= results[key] <= 1.0, key
  assert results["recall"] > 0
  assert results["command"].startswith("python -m experiments.faster_rcnn")
  with Image.open(workdir / "predictions.png") as im:
    assert im.format == "PNG" and im.width >= 320
  assert json.loads(record.read_text())["runs"][0]["map50"] == results["map50"]
  det = Detector.load(workdir)
  assert det.two_stage and det.spec.model == "FasterRCNNTiny" and det.spec.nms == "per_class"
  assert det.spec.training["steps"] == cfg.steps


def test_evaluate_reproduces_the_trained_numbers(trained, digits, tmp_path):
  results, workdir, _ = trained
  again = faster_rcnn.main(["--evaluate", "--restore-weights", str(workdir), "--workdir",
                            str(tmp_path)], digits=digits)
  for key in ("map50", "map", "precision", "recall"):
    assert again[key] == pytest.approx(results[key], abs=1e-6), key


def test_predict_on_files_of_any_size(trained, tmp_path, capsys):
  _, workdir, _ = trained
  rng = np.random.default_rng(0)
  files = []
  for name, (h, w) in (("small.png", (30, 50)), ("big.jpg", (150, 100))):
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(tmp_path / name)
    files.append(str(tmp_path / name))
  out = faster_rcnn.main(["--predict", *files, "--restore-weights", str(workdir),
                          "--workdir", str(tmp_path / "pred")])
  assert json.loads(capsys.readouterr().out)["images"][0]["file"] == files[0]
  for entry, (h, w) in zip(out["images"], ((30, 50), (150, 100))):
    assert (entry["height"], entry["width"]) == (h, w)
    for d in entry["detections"]:
      x1, y1, x2, y2 = d["box_xyxy"]
      assert 0 <= x1 <= x2 <= w + 1e-3 and 0 <= y1 <= y2 <= h + 1e-3
