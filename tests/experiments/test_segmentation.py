"""The segmentation CLIs (FCN, SegNet, U-Net) end to end on tiny data: train, evaluate from
the self-describing weights, predict on image files, the book's folder layout. No MNIST:
scenes are drawn from blocky stand-in digits."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from experiments import fcn, segnet, unet
from jaxvision.tasks import segmentation_table
from jaxvision.inference import Segmenter
from tests.experiments._data import write_book_folder

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
  workdir, record = tmp_path / "work", tmp_path / "runs.json"
  res = cli.main(["--config", "tiny", "--workdir", str(workdir), "--record", str(record),
                  "--no-progress"], digits=digits)
  cfg = cli.CONFIGS["tiny"]
  assert res["final_step"] == res["steps"] == cfg.steps
  for key in ("miou", "pixel_accuracy", "dataset_miou", "dataset_pixel_accuracy"):
    assert 0.0 <= res[key] <= 1.0, key
  assert len(res["per_class_iou"]) == 11
  assert res["model"] == cfg.model and res["model"].endswith("Tiny") and res["params"] > 0
  assert json.loads((workdir / "results.json").read_text())["miou"] == res["miou"]
  with Image.open(workdir / "predictions.png") as im:
    assert im.format == "PNG" and im.height > cfg.pictures * cfg.image_size[0]
  runs = json.loads(record.read_text())["runs"]
  assert len(runs) == 1 and runs[0]["model"] == res["model"]
  table = segmentation_table(runs)
  assert res["model"] in table and f"{res['miou']:.3f}" in table

  # The weights alone rebuild the model and its evaluation: no --config, no --dataset.
  seg = Segmenter.load(workdir)
  assert seg.spec.model == cfg.model and seg.spec.image_size == cfg.image_size
  again = cli.main(["--evaluate", "--restore-weights", str(workdir / "weights.msgpack"),
                    "--workdir", str(tmp_path / "eval")], digits=digits)
  for key in ("miou", "pixel_accuracy", "dataset_miou"):
    assert again[key] == pytest.approx(res[key], abs=1e-6), key


def test_fine_tune_from_weights_and_predict(digits, tmp_path, capsys):
  first = tmp_path / "first"
  fcn.main(["--config", "tiny", "--workdir", str(first), "--steps", "1", "--no-progress"],
           digits=digits)
  from jaxvision.inference import Detector  # pylint: disable=import-outside-toplevel
  with pytest.raises(ValueError, match="segmenter.*FCNTiny"):  # says what the file holds
    Detector.load(first)
  # --restore-weights when training: the starting point of a fresh run.
  res = fcn.main(["--config", "tiny", "--workdir", str(tmp_path / "second"), "--steps", "1",
                  "--restore-weights", str(first), "--no-progress"], digits=digits)
  assert res["final_step"] == 1
  with pytest.raises(SystemExit) as e:  # FCNTiny weights, FCNSmall config: refused up front
    fcn.main(["--workdir", str(tmp_path / "third"), "--restore-weights", str(first)])
  assert e.value.code == 2 and "FCNTiny" in capsys.readouterr().err
  capsys.readouterr()
  rng = np.random.default_rng(1)
  image = tmp_path / "photo.png"
  Image.fromarray(rng.integers(0, 255, (45, 70, 3), dtype=np.uint8)).save(image)
  out = fcn.main(["--predict", str(image), "--restore-weights", str(tmp_path / "second"),
                  "--workdir", str(tmp_path / "pred")])
  entry = out["images"][0]
  assert (entry["height"], entry["width"]) == (45, 70)
  assert sum(entry["pixels_per_class"].values()) == 45 * 70
  assert json.loads(capsys.readouterr().out)["images"][0]["file"] == str(image)
  with Image.open(entry["png"]) as im:
    assert im.format == "PNG"


def test_train_and_evaluate_on_a_book_folder(tmp_path):
  folder = write_book_folder(tmp_path / "drinks", num_train=8, num_test=4)
  res = fcn.main(["--config", "tiny", "--dataset", f"book:{folder}", "--workdir",
                  str(tmp_path / "w"), "--steps", "2", "--no-progress"])
  assert res["class_names"] == ["background", "water", "soda", "juice"]
  assert len(res["per_class_iou"]) == 4 and res["final_step"] == 2
  again = fcn.main(["--evaluate", "--restore-weights", str(tmp_path / "w"), "--workdir",
                    str(tmp_path / "e")])
  assert again["miou"] == pytest.approx(res["miou"], abs=1e-6)
  assert again["evaluated_on"].startswith("4 test images")


def test_help_shows_the_shared_flags(capsys):
  with pytest.raises(SystemExit):
    unet.main(["--help"])
  text = capsys.readouterr().out
  for flag in ("--config", "--steps", "--batch-size", "--dataset", "--predict", "--record",
               "--distributed", "--learning-rate"):
    assert flag in text, flag
