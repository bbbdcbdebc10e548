"""The MINE CLI on the tiny config: one network per rho, results and records, resume, and the
shared flag vocabulary with its checks."""

from __future__ import annotations

import json
import os
import pathlib
import re

import numpy as np
import pytest

from experiments import mine_gaussian
from tests.experiments._data import check_help

_SHARED_FLAGS = ("--train", "--evaluate", "--config", "--steps", "--batch-size", "--seed",
                 "--workdir", "--record", "--distributed", "--coordinator", "--num-processes",
                 "--process-id", "--progress")


def _mtime(path):
  path = pathlib.Path(path)
  return path.stat().st_mtime_ns if path.exists() else None


def _exit_message(capsys, argv) -> str:
  with pytest.raises(SystemExit) as e:
    mine_gaussian.main(argv)
  assert e.value.code == 2
  return capsys.readouterr().err


def test_tiny_run_writes_results_records_and_resumes(tmp_path, capsys):
  workdir, record = tmp_path / "w", tmp_path / "mine.json"
  argv = ["--config", "tiny", "--workdir", str(workdir), "--rho", "0.5", "--steps", "3",
          "--record", str(record), "--no-progress"]
  (run,) = mine_gaussian.main(argv)
  assert run["rho"] == 0.5 and run["analytic"] == pytest.approx(0.143841, abs=1e-6)
  assert np.isfinite(run["estimate"]) and run["final_step"] == 3
  assert run["experiment_config"]["steps"] == 3
  assert run["command"] == "python -m experiments.mine_gaussian " + " ".join(argv)
  assert re.search(r"estimate -?\d+\.\d{4}, analytic 0\.1438", capsys.readouterr().out)
  summary = json.loads((workdir / "results.json").read_text())
  assert [r["estimate"] for r in summary["runs"]] == [run["estimate"]]
  assert json.loads((workdir / "rho0.5" / "results.json").read_text())["estimate"] == (
      run["estimate"])
  stored = json.loads(record.read_text())["runs"]
  assert len(stored) == 1 and stored[0]["estimate"] == run["estimate"]
  for key in ("command", "wall_seconds", "machine", "config_name"):
    assert key in stored[0], key
  # A rerun resumes at the last step: the same network scored again, not recorded again.
  (again,) = mine_gaussian.main(argv)
  assert again["estimate"] == run["estimate"] and again["resumed_from_step"] == 3
  assert len(json.loads(record.read_text())["runs"]) == 1


def test_without_record_only_the_workdir_is_written(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  before = _mtime(mine_gaussian.RESULTS_FILE)
  runs = mine_gaussian.run("tiny", workdir=str(tmp_path / "w"), rhos=(0.8,), steps=2,
                           progress=False)
  assert runs[0]["final_step"] == 2
  assert runs[0]["command"].startswith("python -m experiments.mine_gaussian --config tiny")
  assert sorted(os.listdir(tmp_path)) == ["w"]
  assert sorted(os.listdir(tmp_path / "w")) == ["results.json", "rho0.8"]
  assert _mtime(mine_gaussian.RESULTS_FILE) == before


def test_help_lists_every_shared_flag_with_its_default(capsys):
  _, entries = check_help(capsys, mine_gaussian.main, _SHARED_FLAGS + ("--rho",))
  assert "(default: [0.2, 0.5, 0.8, 0.9])" in entries["--rho"]
  assert "default: book" in entries["--config"]
  assert "experiments/results/mine_gaussian.json" in entries["--record"]
  for absent in ("--data-dir", "--restore-weights", "--dataset", "--predict"):
    assert absent not in entries, absent


@pytest.mark.parametrize("argv, flag", [
    (["--steps", "0"], "--steps"),
    (["--batch-size", "0"], "--batch-size"),
    (["--rho", "1.0"], "--rho"),
    (["--evaluate"], "--evaluate"),
    (["--num-processes", "2"], "--distributed"),
])
def test_bad_flags_exit_2_naming_the_flag(argv, flag, tmp_path, capsys):
  err = _exit_message(capsys, ["--config", "tiny", "--workdir", str(tmp_path / "w")] + argv)
  assert flag in err
  assert not (tmp_path / "w").exists()


def test_workdir_is_required(capsys):
  assert "--workdir" in _exit_message(capsys, ["--config", "tiny"])


def test_no_data_dir_flag(capsys, tmp_path):
  assert "--data-dir" in _exit_message(capsys, ["--workdir", str(tmp_path), "--data-dir", "x"])
