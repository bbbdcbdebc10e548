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
