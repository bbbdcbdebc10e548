"""The IIC CLI end to end on tiny synthetic MNIST: train, resume, evaluate saved weights, the
Python entry point the demo calls, and the shared flag vocabulary with its checks."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib

import numpy as np
import pytest
from PIL import Image

from experiments import iic_mnist
from jaxvision import experiment, weights
from tests.experiments._data import check_help, write_position_mnist

_SHARED_FLAGS = ("--train", "--evaluate", "--config", "--steps", "--batch-size", "--seed",
                 "--data-dir", "--workdir", "--restore-weights", "--record", "--distributed",
                 "--coordinator", "--num-processes", "--process-id", "--progress")


@pytest.fixture(scope="module")
def tiny_mnist(tmp_path_factory):
  """Synthetic MNIST-format files: blobs whose position encodes the label."""
  return write_position_mnist(tmp_path_factory.mktemp("mnist"))


def _mtime(path):
  path = pathlib.Path(path)
  return path.stat().st_mtime_ns if path.exists() else None


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_mnist):
  """2 steps without --record, then the whole tiny config (4 steps) with --record."""
  root = tmp_path_factory.mktemp("iic")
  workdir, record = root / "work", root / "runs.json"
  argv = ["--config", "tiny", "--data-dir", tiny_mnist, "--workdir", str(workdir),
          "--no-progress"]
  results_file = _mtime(iic_mnist.RESULTS_FILE)
  cwd = os.getcwd()
  os.chdir(root)
  try:
    first = iic_mnist.main(argv + ["--steps", "2"])
  finally:
    os.chdir(cwd)
  # Without --record nothing is written outside the workdir.
  assert sorted(os.listdir(root)) == ["work"]
  assert _mtime(iic_mnist.RESULTS_FILE) == results_file
  argv += ["--record", str(record)]
  return first, iic_mnist.main(argv), argv, workdir, record


def test_without_record_only_the_workdir_is_written(trained):
  first, _, _, workdir, _ = trained
  assert first["final_step"] == 2 and first["resumed_from_step"] is None
  assert json.loads((workdir / "results.json").read_text())["final_step"] == 4  # the rerun's


def _exit_message(capsys, argv) -> str:
  with pytest.raises(SystemExit) as e:
    iic_mnist.main(argv)
  assert e.value.code == 2
  return capsys.readouterr().err


def test_train_writes_results_weights_png_and_record(trained):
  _, results, _, workdir, record = trained
  cfg = iic_mnist.CONFIGS["tiny"]
  assert results["mode"] == "train" and results["final_step"] == cfg.steps
  assert results["resumed_from_step"] == 2
  assert results["command"].startswith("python -m experiments.iic_mnist --config tiny")
  for key in ("wall_seconds", "machine", "config_name", "lowest_loss_head", "nmi", "ari"):
    assert key in results, key
  assert 0.0 <= results["test_accuracy"] <= results["best_head_accuracy"] <= 1.0
  assert len(results["head_accuracy"]) == cfg.num_heads
  on_disk = json.loads((workdir / "results.json").read_text())
  assert on_disk["test_accuracy"] == results["test_accuracy"]
  with Image.open(workdir / "confusion.png") as im:
    assert im.format == "PNG"
  runs = json.loads(record.read_text())["runs"]
  assert len(runs) == 1 and runs[0]["config_name"] == "tiny"
  assert runs[0]["test_accuracy"] == results["test_accuracy"]
  assert runs[0]["experiment_config"]["steps"] == cfg.steps
  # The weights describe themselves.
  _, spec = weights.load_weights(workdir)
  assert spec["experiment"] == "iic_mnist" and spec["config_name"] == "tiny"
  assert spec["config"] == dataclasses.asdict(cfg)
  assert spec["training"]["steps"] == cfg.steps


def test_rerun_resumes_and_is_not_recorded_again(trained):
  _, results, argv, workdir, record = trained
  again = iic_mnist.main(argv)
  assert again["final_step"] == results["final_step"]
  assert again["test_accuracy"] == results["test_accuracy"]
  assert again["wall_seconds"] >= results["wall_seconds"]  # adds up across invocations
  assert len(json.loads(record.read_text())["runs"]) == 1  # nothing trained: not recorded


def test_evaluate_restored_weights(trained, tiny_mnist, tmp_path):
  _, results, _, workdir, _ = trained
  out = iic_mnist.main(["--evaluate", "--restore-weights", str(workdir), "--data-dir",
                        tiny_mnist, "--workdir", str(tmp_path)])
  assert out["mode"] == "evaluate" and out["config_name"] == "tiny"
  assert out["test_accuracy"] == results["test_accuracy"]
  assert out["head_accuracy"] == results["head_accuracy"]
  assert json.loads((tmp_path / "results.json").read_text())["mode"] == "evaluate"
  assert (tmp_path / "confusion.png").read_bytes()[:4] == b"\x89PNG"


def test_evaluate_refuses_flags_that_contradict_the_weights(trained, tiny_mnist, tmp_path,
                                                            capsys):
  _, _, _, workdir, _ = trained
  base = ["--evaluate", "--restore-weights", str(workdir), "--data-dir", tiny_mnist,
          "--workdir", str(tmp_path)]
  assert "--config cpu" in _exit_message(capsys, base + ["--config", "cpu"])
  assert "alpha" in _exit_message(capsys, base + ["--alpha", "5"])
  assert "--steps" in _exit_message(capsys, base + ["--steps", "3"])
  assert "--record" in _exit_message(capsys, base + ["--record", str(tmp_path / "r.json")])
  assert "no weights.msgpack in the directory" in _exit_message(
      capsys, ["--evaluate", "--data-dir", tiny_mnist, "--workdir", str(tmp_path)])


def test_help_lists_every_shared_flag_with_its_default(capsys):
  text, entries = check_help(capsys, iic_mnist.main, _SHARED_FLAGS + ("--alpha",))
  assert "(default: 0)" in entries["--seed"]
  assert "default: cpu" in entries["--config"]
  assert "experiments/results/iic_mnist.json" in entries["--record"]
  assert "--predict" not in entries and "--dataset" not in entries
  assert "python -m experiments.iic_mnist --workdir" in text  # the docstring, as written


@pytest.mark.parametrize("argv, flag", [
    (["--steps", "0"], "--steps"),
    (["--batch-size", "-1"], "--batch-size"),
    (["--alpha", "0"], "--alpha"),
    (["--coordinator", "localhost:1234"], "--distributed"),
])
def test_bad_flags_exit_2_naming_the_flag(argv, flag, tmp_path, capsys, tiny_mnist):
  err = _exit_message(capsys, ["--config", "tiny", "--data-dir", tiny_mnist, "--workdir",
                               str(tmp_path / "w")] + argv)
  assert flag in err
  assert not (tmp_path / "w").exists()


def test_workdir_is_required(capsys, tiny_mnist):
  assert "--workdir" in _exit_message(capsys, ["--config", "tiny", "--data-dir", tiny_mnist])


def test_run_rejects_unknown_config(tiny_mnist, tmp_path):
  with pytest.raises(ValueError, match="config"):
    iic_mnist.run("nope", data_dir=tiny_mnist, workdir=str(tmp_path))


def test_append_run_rejects_foreign_files(tmp_path):
  path = tmp_path / "x.json"
  path.write_text(json.dumps({"not_runs": 1}))
  with pytest.raises(ValueError, match="runs"):
    experiment.append_run(path, {"a": 1})
