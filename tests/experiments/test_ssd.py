"""The SSD CLI end to end on tiny data: train, evaluate, predict, the book's folder layout,
the flag vocabulary and its checks. No MNIST: scenes are drawn from synthetic blob "digits"
and the book-format folder is written by the test."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from experiments import ssd
from jaxvision.inference import Detector
from tests.experiments._data import blob_digits, write_book_folder

_SHARED_FLAGS = ("--config", "--steps", "--batch-size", "--seed", "--data-dir", "--dataset",
                 "--workdir", "--restore-weights", "--evaluate", "--predict", "--record",
                 "--distributed", "--progress")


@pytest.fixture(scope="module")
def digits():
  return {"train": blob_digits(60, 0), "test": blob_digits(30, 1)}


# The tiny config trained once per module, with the improved loss and every recipe flag:
# anchors (aspect ratios, their unit), matching (match / ignore IoU), zoom augmentation and a
# learning curve (an evaluation every step). Every anchor a candidate (score threshold 0):
# after 3 steps no class reaches 0.5, and all-zero metrics would make the comparisons below
# vacuous.
_RECIPE_FLAGS = ["--improved-loss", "--aspect-ratios", "1", "0.5", "--aspect-ratio-unit",
                 "pixels", "--ignore-iou", "0.3", "--match-iou", "0.5", "--zoom", "0.7", "1.4",
                 "--eval-every", "1", "--score-threshold", "0", "--no-progress"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, digits):
  root = tmp_path_factory.mktemp("ssd")
  workdir, record = root / "work", root / "ssd.json"
  results = ssd.main(["--config", "tiny", "--workdir", str(workdir), "--record", str(record),
                      *_RECIPE_FLAGS], digits=digits)
  # The learning curve as this run wrote it (test_resume_... appends to the workdir's log).
  shutil.copy(workdir / "metrics.jsonl", root / "metrics_of_the_training_run.jsonl")
  return results, workdir, record


def test_train_writes_results_weights_png_and_record(trained):
  results, workdir, record = trained
  cfg = ssd.CONFIGS["tiny"]
  assert results["final_step"] == results["steps"] == cfg.steps
  for key in ("map50", "map", "miou", "precision", "recall"):
    assert 0.0 <= results[key] <= 1.0, key
  assert results["recall"] > 0  # there are detections to compare
  assert results["recipe"] == "normalized+smooth_l1+focal"
  assert results["command"].startswith("python -m experiments.ssd")
  assert json.loads((workdir / "results.json").read_text())["map50"] == results["map50"]
  with Image.open(workdir / "predictions.png") as im:
    assert im.format == "PNG" and im.width >= 320
  runs = json.loads(record.read_text())["runs"]
  assert len(runs) == 1 and runs[0]["map50"] == results["map50"]
  # The weights describe themselves.
  det = Detector.load(workdir)
  assert det.spec.model == "SSDTiny" and det.spec.image_size == cfg.image_size
  assert det.spec.score_threshold == 0.0 and det.spec.variances == (0.1, 0.2)
  assert det.class_names == ("background",) + tuple(str(d) for d in range(10))
  assert det.spec.training["config"]["classification"] == "focal"
  assert det.spec.training["steps"] == cfg.steps


def test_evaluate_reproduces_the_trained_numbers_without_any_flag(trained, digits, tmp_path):
  results, workdir, _ = trained
  again = ssd.main(["--evaluate", "--restore-weights", str(workdir), "--workdir",
                    str(tmp_path)], digits=digits)
  for key in ("map50", "map", "miou", "precision", "recall"):
    assert again[key] == pytest.approx(results[key], abs=1e-6), key
  assert again["config_name"] == "tiny"


def test_evaluate_refuses_flags_that_contradict_the_weights(trained, digits, tmp_path, capsys):
  _, workdir, _ = trained
  with pytest.raises(SystemExit):
    ssd.main(["--evaluate", "--restore-weights", str(workdir), "--workdir", str(tmp_path),
              "--no-normalize"], digits=digits)
  err = capsys.readouterr().err
  assert "normalize" in err and "False" in err and "True" in err
  with pytest.raises(SystemExit):
    ssd.main(["--evaluate", "--restore-weights", str(workdir), "--workdir", str(tmp_path),
              "--config", "cpu"], digits=digits)
  assert "'tiny'" in capsys.readouterr().err


def test_resume_prints_and_does_not_record(trained, digits, capsys):
  _, workdir, record = trained
  ssd.main(["--config", "tiny", "--workdir", str(workdir), "--record", str(record),
            *_RECIPE_FLAGS], digits=digits)
  out = capsys.readouterr().out
  assert "Resumed from step 3" in out and "not recording" in out
  assert len(json.loads(record.read_text())["runs"]) == 1


def test_predict_on_files_of_any_size(trained, tmp_path, capsys):
  _, workdir, _ = trained
  rng = np.random.default_rng(0)
  files = []
  for name, (h, w) in (("small.png", (30, 50)), ("big.jpg", (200, 120))):
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(tmp_path / name)
    files.append(str(tmp_path / name))
  out = ssd.main(["--predict", *files, "--restore-weights", str(workdir), "--workdir",
                  str(tmp_path / "pred")])
  printed = json.loads(capsys.readouterr().out)
  assert printed == json.loads((tmp_path / "pred" / "predictions.json").read_text())
  assert [e["file"] for e in out["images"]] == files
  for entry, (h, w) in zip(out["images"], ((30, 50), (200, 120))):
    assert (entry["height"], entry["width"]) == (h, w)
    assert len(entry["detections"]) > 0  # score threshold 0 in these weights
    for d in entry["detections"]:
      assert d["name"] == str(d["class"] - 1) and 0 <= d["score"] <= 1
    with Image.open(entry["png"]) as im:
      assert im.format == "PNG"


def test_train_and_evaluate_on_a_book_folder(tmp_path):
  folder = write_book_folder(tmp_path / "drinks", num_train=12, num_test=4)
  res = ssd.main(["--config", "tiny", "--dataset", f"book:{folder}", "--workdir",
                  str(tmp_path / "w"), "--steps", "2", "--batch-size", "4", "--no-progress"])
  assert res["dataset"] == f"book:{folder}" and res["num_classes"] == 4
  assert res["class_names"] == ["background", "water", "soda", "juice"]
  assert res["final_step"] == 2
  det = Detector.load(tmp_path / "w")
  assert det.class_names == ("background", "water", "soda", "juice")
  again = ssd.main(["--evaluate", "--restore-weights", str(tmp_path / "w"), "--workdir",
                    str(tmp_path / "e")])
  assert again["dataset"] == f"book:{folder}" and again["map50"] == res["map50"]


def test_help_lists_every_shared_flag_with_defaults(capsys):
  with pytest.raises(SystemExit) as e:
    ssd.main(["--help"])
  assert e.value.code == 0
  text = capsys.readouterr().out
  for flag in _SHARED_FLAGS:
    assert flag in text, flag
  assert "(default: 0)" in text  # --seed


@pytest.mark.parametrize("argv, message", [
    (["--config", "tiny"], "--workdir"),
    (["--predict", "x.png"], "--restore-weights"),
    (["--config", "nope", "--workdir", "w"], "invalid choice"),
    (["--config", "tiny", "--workdir", "w", "--steps", "0"], "--steps"),
    (["--config", "tiny", "--workdir", "w", "--coordinator", "h:1"], "--distributed"),
    (["--evaluate", "--predict", "x.png"], "not allowed"),
])
def test_bad_flags_exit_2_naming_the_flag(argv, message, capsys, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  with pytest.raises(SystemExit) as e:
    ssd.main(argv)
  assert e.value.code == 2
  assert message in capsys.readouterr().err


def test_table_prints_the_recorded_run(trained, capsys):
  results, _, record = trained
  ssd.main(["--table", str(record)])
  table = capsys.readouterr().out
  assert "normalized+smooth_l1+focal" in table and f"{results['miou']:.3f}" in table
  assert "(0.51)" in table  # the book's mIoU for that configuration


def test_recipe_names_follow_the_book():
  cfg = ssd.CONFIGS["cpu"]
  assert ssd.recipe_name(cfg) == "normalized+smooth_l1"
  raw = dataclasses.replace(cfg, normalize=False, localization="l1")
  assert ssd.recipe_name(raw) == "raw"


def test_new_recipe_flags_learning_curve_diagnosis_and_a_second_style(trained, digits,
                                                                     tmp_path, capsys):
  from experiments import scenes as scenes_cli  # pylint: disable=import-outside-toplevel
  from experiments import ssd_diagnosis  # pylint: disable=import-outside-toplevel
  _, workdir, _ = trained  # trained with the recipe flags (_RECIPE_FLAGS)
  det = Detector.load(workdir)
  assert det.spec.aspect_ratios == (1.0, 0.5) and det.spec.aspect_ratio_unit == "pixels"
  assert det.model.anchors_per_point == 3
  assert det.spec.training["config"]["zoom"] == [0.7, 1.4]
  log = workdir.parent / "metrics_of_the_training_run.jsonl"  # a copy made by `trained`
  lines = [json.loads(x) for x in log.read_text().splitlines()]
  evals = [x["step"] for x in lines if x.get("split") == "eval"]
  assert evals == [1, 2, 3], lines  # the learning curve: every step of 3, the end once
  # A second scene style in the book's layout, read back by the CLI's book reader.
  style_dir = tmp_path / "shapes"
  scenes_cli.main(["--out", str(style_dir), "--image-size", "48", "64", "--test-scenes", "6",
                   "--num-digits", "1", "3"], digits=digits["test"])
  assert (style_dir / "labels_test.csv").exists() and (style_dir / "preview.png").exists()
  ev = ssd.main(["--evaluate", "--restore-weights", str(workdir), "--workdir",
                 str(tmp_path / "ev"), "--dataset", f"book:{style_dir}"])
  assert ev["num_images"] == 6 and 0.0 <= ev["map50"] <= 1.0
  capsys.readouterr()
  numbers = ssd_diagnosis.main(["--restore-weights", str(workdir), "--dataset",
                                f"book:{style_dir}", "--anchor-designs",
                                "--json", str(tmp_path / "d.json")])
  out = capsys.readouterr().out
  assert "### Anchor coverage" in out and "### Detection" in out
  assert numbers["boxes"] == sum(numbers["coverage"]["positives_hist"].values())
  assert sum(numbers["misses"].values()) <= numbers["boxes"]
  assert json.loads((tmp_path / "d.json").read_text())["boxes"] == numbers["boxes"]
