"""The sequence CLIs on tiny settings: sequential MNIST, the text CNN, video, VQA and the
WaveNet tones (train, evaluate from the weights, results and pictures, --table, bad flags)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from experiments import seq_mnist, text_cnn, video, vqa, wavenet_tones
from jaxvision import audio
from tests.experiments._data import write_position_mnist


@pytest.fixture(scope="module")
def tiny_mnist(tmp_path_factory):
  return write_position_mnist(tmp_path_factory.mktemp("mnist"), (("train", 120), ("t10k", 80)))


def test_seq_mnist_cli(tmp_path, tiny_mnist):
  out = seq_mnist.main(["--config", "tiny", "--data-dir", tiny_mnist, "--workdir",
                        str(tmp_path), "--no-progress"])
  assert out["steps"] == 6 and 0 <= out["test_accuracy"] <= 1
  assert out["process_cpu_seconds"] > 0
  assert (tmp_path / "seq_mnist_reading.png").stat().st_size > 1000


def test_text_cli_trains_evaluates_and_tabulates(tmp_path, capsys):
  record = tmp_path / "runs.json"
  out = text_cnn.main(["--config", "tiny", "--workdir", str(tmp_path / "w"), "--record",
                       str(record), "--no-progress"])
  assert set(out["group_accuracy"]) == {"plain", "negated", "contrast"}
  assert out["params"] > 0 and (tmp_path / "w" / "text_report.png").exists()
  again = text_cnn.main(["--evaluate", "--workdir", str(tmp_path / "w")])
  assert again["test_accuracy"] == pytest.approx(out["test_accuracy"], abs=1e-6)
  assert "wall_seconds" not in again and len(json.loads(record.read_text())["runs"]) == 1
  capsys.readouterr()
  table = text_cnn.main(["--table", "--record", str(record)])["table"]
  assert "| tiny | TextCNNTiny |" in table and "contrast" in table
  with pytest.raises(SystemExit) as e:
    text_cnn.main(["--config", "tiny", "--workdir", str(tmp_path / "x"), "--steps", "0"])
  assert e.value.code == 2 and "--steps" in capsys.readouterr().err


def test_video_cli(tmp_path, tiny_mnist):
  out = video.main(["--config", "tiny", "--data-dir", tiny_mnist, "--workdir", str(tmp_path),
                    "--no-progress"])
  for key in ("digit_accuracy", "motion_accuracy", "test_accuracy"):
    assert 0 <= out[key] <= 1
  assert len(out["motion_accuracy_per_motion"]) >= 5
  assert (tmp_path / "video_predictions.png").stat().st_size > 1000


def test_vqa_cli_and_a_missing_data_dir(tmp_path, tiny_mnist, capsys):
  out = vqa.main(["--config", "tiny", "--data-dir", tiny_mnist, "--workdir", str(tmp_path),
                  "--no-progress"])
  assert set(out["group_accuracy"]) == {"count", "exists", "left_of", "colour"}
  assert (tmp_path / "vqa_answers.png").stat().st_size > 1000
  with pytest.raises(SystemExit) as e:
    vqa.main(["--config", "tiny", "--data-dir", str(tmp_path / "nothing"), "--workdir",
              str(tmp_path / "y")])
  assert e.value.code == 2 and "--data-dir" in capsys.readouterr().err


def test_wavenet_cli_writes_wavs_and_a_spectrogram(tmp_path):
  out = wavenet_tones.main(["--config", "tiny", "--workdir", str(tmp_path), "--no-progress"])
  assert out["uniform_bits"] == 8.0 and 0 < out["test_bits_per_sample"] < 10
  assert out["receptive_field"] == 16
  for wav in out["wavs"]:
    x, rate = audio.read_wav(wav)
    assert rate == audio.SAMPLE_RATE and x.size == 80 and np.all(np.abs(x) <= 1)
  assert (tmp_path / "wavenet_tones.png").stat().st_size > 1000
  again = wavenet_tones.main(["--evaluate", "--workdir", str(tmp_path)])
  assert again["test_bits_per_sample"] == pytest.approx(out["test_bits_per_sample"], abs=1e-4)
