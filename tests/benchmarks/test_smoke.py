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
  assert list(tmp_path.glob("*-nms.png"))


def test_only_rejects_unknown_family(capsys):
  import pytest
  with pytest.raises(SystemExit):
    run.main(["--only", "nope"])
  assert "unknown families" in capsys.readouterr().err
