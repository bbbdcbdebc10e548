"""The benchmark suite runs end to end on one tiny case per family."""

import json

from benchmarks import run


def test_smoke_run_writes_json_table_and_plots(tmp_path):
  assert run.main(["--smoke", "--out", str(tmp_path)]) == 0
  (json_path,) = tmp_path.glob("*.json")
  result = json.loads(json_path.read_text())
  assert {"cpu", "cores", "versions", "command", "wall_seconds"} <= set(result["machine"])
  assert result["failures"] == []
  rows = result["rows"]
  assert {r["family"] for r in rows} == set(run.FAMILIES)
  for r in rows:
    assert {"case", "impl", "comparator", "median_s", "min_s", "ratio", "goal", "met"} <= set(r)
    if r.get("note") == "comparator not installed":
      assert r["median_s"] is None and r["met"] is None
    elif r["comparator"] is not None:  # a timed comparator row: ratio from interleaved pairs
      assert r["ratio"] > 0 and r["median_s"] > 0
      assert r["met"] is None if r["goal"] is None else r["met"] == (r["ratio"] >= r["goal"])
  table = next(tmp_path.glob("*.md")).read_text()
  assert "| case | implementation |" in table
  # A plot per family that has a series measured at two sizes or more; none of one point.
  plotted = {p.stem.rsplit("-", 1)[1] for p in tmp_path.glob("*.png")}
  assert plotted == {f for f in run.FAMILIES
                     if any(len(xs) > 1 for xs, _ in run.plot_series(rows, f).values())}


def test_only_rejects_unknown_family(capsys):
  import pytest
  with pytest.raises(SystemExit):
    run.main(["--only", "nope"])
  assert "unknown families" in capsys.readouterr().err


def test_benchmarks_import_only_jaxvision():
  """benchmarks/ (the SSD recipe included) builds on jaxvision, never on experiments/."""
  import ast
  import pathlib
  for path in pathlib.Path(run.__file__).parent.glob("*.py"):
    for node in ast.walk(ast.parse(path.read_text())):
      names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
               [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
      assert not any(n.split(".")[0] == "experiments" for n in names), path


def test_isolated_method_times_each_implementation_in_its_own_process(tmp_path):
  """--method both: every implementation in its own worker (alternating rounds), plus the
  in-process ratio as a second column; thread settings recorded per implementation."""
  assert run.main(["--smoke", "--only", "iou", "--method", "both", "--out", str(tmp_path),
                   "--no-plots"]) == 0
  result = json.loads(next(tmp_path.glob("*.json")).read_text())
  assert result["failures"] == [] and result["machine"]["method"] == "both"
  timed = [r for r in result["rows"] if r["median_s"] is not None]
  assert {r["case"] for r in timed} == {"box_iou 64x64", "generalized_box_iou 64x64"}
  assert all(r["method"] == "isolated" and r["threads"]["cpu_count"] >= 1 for r in timed)
  for r in timed:
    if r["comparator"] is not None:
      assert r["ratio"] > 0 and r["inprocess_ratio"] > 0 and r["inprocess_median_s"] > 0
  assert set(result["machine"]["threads"]) >= {"jaxvision", "numpy-reference"}
  table = next(tmp_path.glob("*.md")).read_text()
  assert "| in-process |" in table and "own worker process" in table


def test_inputs_are_shared_through_one_file(tmp_path, monkeypatch):
  from benchmarks import data
  monkeypatch.setenv("JAXVISION_BENCH_INPUTS", str(tmp_path))
  first = data.clustered_boxes(50, seed=3)
  (path,) = tmp_path.glob("clustered_boxes-50-seed=3.npz")
  # A second call reads the file: overwrite it and the call returns the file's arrays.
  import numpy as np
  np.savez(path, a0=first[0] + 1, a1=first[1])
  again = data.clustered_boxes(50, seed=3)
  np.testing.assert_array_equal(again[0], first[0] + 1)
  monkeypatch.delenv("JAXVISION_BENCH_INPUTS")
  np.testing.assert_array_equal(data.clustered_boxes(50, seed=3)[0], first[0])


def test_wait_quiet_returns_once_a_process_is_idle():
  import subprocess
  import sys
  from benchmarks import isolated
  busy = subprocess.Popen([sys.executable, "-c", "import time\nt=time.time()\n"
                           "while time.time()-t<0.3: pass\ntime.sleep(30)"])
  try:
    waited = isolated.wait_quiet(busy.pid, max_s=5.0)
    assert 0.2 <= waited < 2.0  # it waited out the busy 0.3 s, then returned
    assert isolated.wait_quiet(busy.pid, max_s=5.0) < 0.2  # already idle
  finally:
    busy.kill()
