"""``python -m experiments.segmentation_diagnosis`` end to end on a tiny model trained on a
folder in the book's layout: the report's numbers agree with each other and with the
segmenter's evaluation; learning curves come from the logged evaluations."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from experiments import fcn, segmentation_diagnosis
from tests.experiments._data import write_book_folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  root = tmp_path_factory.mktemp("diag")
  folder = write_book_folder(root / "drinks", num_train=8, num_test=5)
  workdir = root / "w"
  res = fcn.main(["--config", "tiny", "--dataset", f"book:{folder}", "--workdir", str(workdir),
                  "--steps", "2", "--eval-every", "1", "--no-progress"])
  return folder, workdir, res


def test_report_numbers_are_consistent(trained, tmp_path, capsys):
  folder, workdir, res = trained
  out_md, out_json = tmp_path / "d.md", tmp_path / "d.json"
  numbers = segmentation_diagnosis.main(["--restore-weights", str(workdir), "--output",
                                         str(out_md), "--json", str(out_json)])
  assert numbers["num_images"] == 5
  # Same test split (rebuilt from the weights' record): same numbers as the training's eval.
  assert numbers["miou"] == pytest.approx(res["miou"], abs=1e-6)
  e = numbers["errors"]
  cm = np.asarray(e["confusion"])
  assert cm.shape == (4, 4) and e["pixels"] == cm.sum()
  assert e["errors"] == cm.sum() - np.trace(cm)
  assert sum(v for kind in e["counts"].values() for v in kind.values()) == e["errors"]
  objects = np.asarray(numbers["object_confusion"])
  assert objects.shape == (4, 4) and objects[0].sum() == 0 and objects[1:].sum() >= 5
  text = out_md.read_text()
  assert "### Per class" in text and "water" in text and "boundary band" in text
  assert json.loads(out_json.read_text())["command"].startswith(
      "python -m experiments.segmentation_diagnosis")
  assert "### Whole digits read as another" in capsys.readouterr().out


def test_learning_curves(trained, tmp_path):
  _, workdir, _ = trained
  png = tmp_path / "curves.png"
  curves = segmentation_diagnosis.main(["--learning-curves", str(workdir), "--curve-png",
                                        str(png)])
  steps = [p["step"] for p in curves[workdir.name]]
  assert steps == [1, 2]
  assert all(0.0 <= p["miou"] <= 1.0 for p in curves[workdir.name])
  with Image.open(png) as im:
    assert im.format == "PNG"


def test_bad_flags(tmp_path, capsys):
  with pytest.raises(SystemExit) as e:
    segmentation_diagnosis.main([])
  assert e.value.code == 2 and "--restore-weights is required" in capsys.readouterr().err
  with pytest.raises(SystemExit) as e:
    segmentation_diagnosis.main(["--restore-weights", str(tmp_path / "nothing")])
  assert e.value.code == 2 and "nothing" in capsys.readouterr().err
  with pytest.raises(SystemExit) as e:
    segmentation_diagnosis.main(["--learning-curves", str(tmp_path / "nothing")])
  assert e.value.code == 2 and "metrics.jsonl" in capsys.readouterr().err
