"""The generative CLIs on tiny settings: the 1-D GAN warm-up, DCGAN (train, evaluate, table,
bad flags), the Frechet feature net, style transfer and DeepDream."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from experiments import dcgan, deepdream, gan_gaussian, mnist_features, style_transfer
from tests.experiments._data import write_position_mnist


@pytest.fixture(scope="module")
def tiny_mnist(tmp_path_factory):
  return write_position_mnist(tmp_path_factory.mktemp("mnist"),
                              (("train", 300), ("t10k", 200)), noise=True)


def test_gan_gaussian_cli(tmp_path):
  out = gan_gaussian.main(["--workdir", str(tmp_path), "--steps", "300"])
  assert out["warmup"]["steps"] == 300 and np.isfinite(out["warmup"]["final_mean"])
  sat = out["saturation"]
  # After 300 steps the saturating generator is still far from the target; the other is not.
  assert sat["saturating"]["final_mean"] < sat["non-saturating"]["final_mean"]
  for name in ("gan_gaussian.png", "gan_gaussian_saturation.png", "results.json"):
    assert (tmp_path / name).exists(), name


def test_dcgan_cli_trains_evaluates_and_tabulates(tmp_path, tiny_mnist, capsys):
  work, record = tmp_path / "w", tmp_path / "runs.json"
  out = dcgan.main(["--config", "tiny", "--data-dir", tiny_mnist, "--workdir", str(work),
                    "--record", str(record), "--steps", "4", "--eval-every", "2",
                    "--samples", "64", "--no-progress"])
  assert out["frechet_distance"] >= 0 and out["floor"] >= 0 and len(out["class_fractions"]) == 10
  assert out["frechet_distance_raw_generator"] >= 0          # the tiny config keeps an EMA
  assert [c["step"] for c in out["curve"]] == [2, 4]
  for name in ("samples.png", "interpolation.png", "class_histogram.png", "weights.msgpack",
               "samples_step000002.png", "samples_step000004.png"):
    assert (work / name).exists(), name
  assert Image.open(work / "interpolation.png").size[0] > 300
  ev = dcgan.main(["--evaluate", "--restore-weights", str(work), "--data-dir", tiny_mnist,
                   "--workdir", str(tmp_path / "e"), "--samples", "64"])
  assert ev["config_name"] == "tiny" and ev["frechet_distance"] >= 0
  text = dcgan.main(["--table", "--record", str(record)])["table"]
  assert "| tiny | 4 (" in text
  with pytest.raises(SystemExit):
    dcgan.main(["--config", "folder", "--workdir", str(tmp_path / "f")])
  assert "--data-dir" in capsys.readouterr().err
  with pytest.raises(SystemExit):
    dcgan.main(["--config", "tiny", "--data-dir", tiny_mnist, "--workdir", str(tmp_path / "g"),
                "--feature-net", str(tmp_path / "missing.msgpack")])
  assert "--feature-net" in capsys.readouterr().err


def test_mnist_features_cli(tmp_path, tiny_mnist):
  out = mnist_features.main(["--config", "tiny", "--data-dir", tiny_mnist,
                             "--workdir", str(tmp_path), "--no-progress"])
  assert out["model"] == "MnistFeatureNetTiny" and 0 <= out["test_accuracy"] <= 1


def test_style_transfer_cli(tmp_path, capsys):
  photo = tmp_path / "p.png"
  Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), np.uint8)).save(photo)
  out = style_transfer.main(["--workdir", str(tmp_path), "--content", str(photo),
                             "--style", "brick", "--size", "32", "--steps", "2",
                             "--features", "fcn-backbone"])
  assert out["history"]["total"][-1] < out["history"]["total"][0]
  assert (tmp_path / "style_transfer.png").exists()
  with pytest.raises(SystemExit):
    style_transfer.main(["--workdir", str(tmp_path), "--content", "nope.png"])
  assert "nope.png" in capsys.readouterr().err


def test_deepdream_cli(tmp_path, tiny_mnist, capsys):
  out = deepdream.main(["--workdir", str(tmp_path), "--data-dir", tiny_mnist, "--steps", "2",
                        "--mnist-scale", "2", "--size", "24"])
  assert out["objective_rises_every_octave"] is True
  assert len(out["dreams"]) == 8      # 3 digits x 2 layer sets + 2 VGG dreams
  for name in ("deepdream_mnist.png", "deepdream_vgg.png"):
    assert (tmp_path / name).exists(), name
  with pytest.raises(SystemExit):
    deepdream.main(["--workdir", str(tmp_path), "--networks", "resnet"])
  assert "--networks" in capsys.readouterr().err
