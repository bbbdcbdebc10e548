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


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory, digits):
  """``train(family)``: the family's tiny config trained once per module (lazily), with
  ``--record``; the FCN run is also the starting point of the fine-tuning test."""
  done = {}

  def train(family):
    if family not in done:
      root = tmp_path_factory.mktemp(family)
      workdir, record = root / "work", root / "runs.json"
      res = _CLIS[family].main(["--config", "tiny", "--workdir", str(workdir), "--record",
                                str(record), "--no-progress"], digits=digits)
      done[family] = (res, workdir, record)
    return done[family]

  return train


@pytest.mark.parametrize("family", sorted(_CLIS))
def test_tiny_cli_trains_evaluates_and_records(family, digits, tiny_runs, tmp_path):
  cli = _CLIS[family]
  res, workdir, record = tiny_runs(family)
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


def test_fine_tune_from_weights_and_predict(digits, tiny_runs, tmp_path, capsys):
  first = tiny_runs("fcn")[1]  # the tiny FCN run's workdir
  from jaxvision.inference import Detector  # pylint: disable=import-outside-toplevel
  with pytest.raises(ValueError, match="segmenter.*FCNTiny"):  # says what the file holds
    Detector.load(first)
  # --restore-weights when training: the starting point of a fresh run. (The tiny config's
  # step count, so that the training step is the program the first run compiled.)
  steps = fcn.CONFIGS["tiny"].steps
  res = fcn.main(["--config", "tiny", "--workdir", str(tmp_path / "second"),
                  "--restore-weights", str(first), "--no-progress"], digits=digits)
  assert res["final_step"] == steps
  assert res["resumed_from_step"] is None  # a fresh run from those weights, not a resumption
  assert Segmenter.load(tmp_path / "second").spec.training["restored_from"] == str(first)
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


@pytest.fixture(scope="module")
def book_run(tmp_path_factory):
  """FCN on the book's folder layout, with the recipe flags --model (the family's tiny
  variant, named) and --schedule (not the config's)."""
  root = tmp_path_factory.mktemp("book")
  folder = write_book_folder(root / "drinks", num_train=8, num_test=4)
  res = fcn.main(["--config", "tiny", "--model", "FCNTiny", "--schedule", "warmup_cosine",
                  "--dataset", f"book:{folder}", "--workdir", str(root / "w"), "--steps", "2",
                  "--no-progress"])
  return res, root / "w"


def test_train_and_evaluate_on_a_book_folder(book_run, tmp_path):
  res, workdir = book_run
  assert res["class_names"] == ["background", "water", "soda", "juice"]
  assert len(res["per_class_iou"]) == 4 and res["final_step"] == 2
  again = fcn.main(["--evaluate", "--restore-weights", str(workdir), "--workdir",
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


def _pet_records(n, seed):
  """Oxford-IIIT Pet records as TFDS serves them: images of several sizes, trimaps [H, W, 1]
  with TFDS' values (1 pet, 2 background, 3 border) -- a bright pet ellipse on a dark
  background, ringed by a border."""
  rng = np.random.default_rng(seed)
  records = []
  for _ in range(n):
    h, w = int(rng.integers(30, 50)), int(rng.integers(30, 60))
    yy, xx = np.mgrid[:h, :w]
    cy, cx, r = rng.uniform(0.35, 0.65) * h, rng.uniform(0.35, 0.65) * w, 0.3 * min(h, w)
    d = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
    trimap = np.where(d < r - 1.5, 1, np.where(d < r + 1.5, 3, 2)).astype(np.uint8)
    image = rng.integers(0, 60, (h, w, 3)).astype(np.uint8)
    image[trimap == 1] += 150
    records.append({"image": image, "segmentation_mask": trimap[..., None],
                    "label": int(rng.integers(0, 37)), "species": int(rng.integers(0, 2))})
  return records


def test_segnet_on_pets_through_tfds_mock_data(tmp_path):
  """``--dataset pets`` end to end: TFDS' own ``mock_data`` serves the records."""
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  splits = {"train": _pet_records(12, 0), "test": _pet_records(6, 1)}
  asked = []

  def serve(builder, split, **kwargs):
    del kwargs
    asked.append((builder.name, split))
    return splits[split]

  with tfds.testing.mock_data(as_data_source_fn=serve):
    res = segnet.main(["--config", "tiny", "--dataset", "pets", "--workdir", str(tmp_path / "w"),
                       "--steps", "4", "--no-progress"])
    again = segnet.main(["--evaluate", "--restore-weights", str(tmp_path / "w"), "--workdir",
                         str(tmp_path / "e")])
  assert ("oxford_iiit_pet", "train") in asked and ("oxford_iiit_pet", "test") in asked
  assert res["class_names"] == ["background", "pet", "border"]
  assert res["dataset"] == "pets" and len(res["per_class_iou"]) == 3
  assert res["final_step"] == 4 and 0.0 <= res["pixel_accuracy"] <= 1.0
  assert again["dataset"] == "pets" and again["evaluated_on"].startswith("6 test images")
  assert again["pixel_accuracy"] == pytest.approx(res["pixel_accuracy"], abs=1e-6)


def test_model_flag_picks_a_variant_of_the_family(book_run, digits, tmp_path, capsys):
  res, workdir = book_run  # trained with --model FCNTiny --schedule warmup_cosine
  assert res["model"] == "FCNTiny"
  assert res["experiment_config"]["model"] == "FCNTiny"
  assert res["experiment_config"]["schedule"] == "warmup_cosine"  # the config's is "book"
  assert Segmenter.load(workdir).spec.training["config"]["schedule"] == "warmup_cosine"
  with pytest.raises(SystemExit) as e:
    fcn.main(["--config", "tiny", "--model", "UNetTiny", "--workdir", str(tmp_path / "x"),
              "--steps", "1"], digits=digits)
  assert e.value.code == 2 and "--model must be one of" in capsys.readouterr().err
