"""The classification CLIs on tiny configs: CapsNet (train, evaluate, predict, pictures),
the conv zoo (train + table), classification + localisation, and the transfer study."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from experiments import capsnet, conv_zoo, finetune, localization
from tests.experiments._data import write_position_mnist


@pytest.fixture(scope="module")
def tiny_mnist(tmp_path_factory):
  return write_position_mnist(tmp_path_factory.mktemp("mnist"),
                              (("train", 600), ("t10k", 300)), noise=True)


def test_capsnet_cli_trains_evaluates_predicts(tmp_path, tiny_mnist, capsys):
  work, record = tmp_path / "w", tmp_path / "runs.json"
  # 3 steps, not the config's 30: this checks the CLI's plumbing (files, record, reload), not
  # what CapsNet learns (tests/models covers the model and its loss).
  out = capsnet.main(["--config", "tiny", "--steps", "3", "--data-dir", tiny_mnist,
                      "--workdir", str(work), "--record", str(record), "--no-progress"])
  assert out["model"] == "CapsNetTiny" and 0.0 <= out["test_accuracy"] <= 1.0
  assert out["steps"] == 3 and out["wall_seconds"] > 0 and out["params"] > 0
  for name in ("reconstructions.png", "perturbations.png", "weights.msgpack", "results.json"):
    assert (work / name).exists(), name
  assert Image.open(work / "perturbations.png").size[1] > 300
  assert json.loads(record.read_text())["runs"][0]["test_accuracy"] == out["test_accuracy"]
  ev = capsnet.main(["--evaluate", "--restore-weights", str(work), "--data-dir", tiny_mnist,
                     "--workdir", str(tmp_path / "e")])
  assert ev["test_accuracy"] == out["test_accuracy"] and ev["config_name"] == "tiny"
  digit = tmp_path / "d.png"
  Image.fromarray(np.full((40, 30, 3), 200, np.uint8)).save(digit)
  pred = capsnet.main(["--predict", str(digit), "--restore-weights", str(work / "weights.msgpack")])
  assert len(pred["predictions"]) == 1 and len(pred["predictions"][0]["scores"]) == 10
  with pytest.raises(SystemExit):
    capsnet.main(["--evaluate", "--restore-weights", str(tmp_path / "missing"),
                  "--workdir", str(tmp_path / "e2")])
  assert "--restore-weights" in capsys.readouterr().err


def test_conv_zoo_cli_and_table(tmp_path, tiny_mnist, capsys):
  record = tmp_path / "zoo.json"
  for config in ("mobilenet_tiny", "plain_tiny"):
    out = conv_zoo.main(["--config", config, "--data-dir", tiny_mnist,
                         "--workdir", str(tmp_path / config), "--record", str(record)])
    assert out["forward_flops_per_image"] is None or out["forward_flops_per_image"] > 0
    assert out["inference_images_per_sec"] > 0
  runs = json.loads(record.read_text())["runs"]
  assert runs[0]["params"] < runs[1]["params"]        # separable < plain at equal widths
  text = conv_zoo.main(["--table", "--record", str(record)])["table"]
  assert "mobilenet_tiny" in text and "plain_tiny" in text


def test_localization_cli(tmp_path, tiny_mnist):
  out = localization.main(["--config", "tiny", "--data-dir", tiny_mnist,
                           "--workdir", str(tmp_path / "loc"), "--record",
                           str(tmp_path / "loc.json")])
  ev = out["evaluation"]
  assert ev["num_images"] == 64 and 0 <= ev["mean_iou"] <= 1
  assert (tmp_path / "loc" / "localization.png").exists()
  again = localization.main(["--evaluate", "--workdir", str(tmp_path / "loc"), "--data-dir",
                             tiny_mnist])
  assert again["evaluation"] == ev
  assert "IoU > 0.5" in localization.main(["--table", "--record",
                                           str(tmp_path / "loc.json")])["table"]


def test_finetune_cli_keeps_the_frozen_trunk(tmp_path, tiny_mnist):
  out = finetune.main(["--config", "tiny", "--data-dir", tiny_mnist,
                       "--workdir", str(tmp_path / "ft"), "--record", str(tmp_path / "ft.json")])
  modes = {(r["mode"], r["labels_per_class"]) for r in out["runs"]}
  assert modes == {(m, 4) for m in finetune.MODES}
  assert all(r["trunk_bit_identical"] for r in out["runs"] if r["mode"] == "frozen")
  assert out["pictures"] == []          # one labels_per_class: no curve to draw
  assert "frozen" in finetune.main(["--table", "--record", str(tmp_path / "ft.json")])["table"]
