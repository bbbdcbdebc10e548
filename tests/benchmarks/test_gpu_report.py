"""benchmarks.gpu_report (the JSON of benchmarks/gpu_check.sh), on hand-written JUnit XML."""

import json

from benchmarks import gpu_report

# pytest -o junit_family=xunit1 (what gpu_check.sh writes): every testcase names its file.
# iou: every compiled test passed (interpret ones deselected); nms: one compiled failure among
# passes; iic: every compiled test skipped (no GPU), the lowering test passed.
_XUNIT1 = """<?xml version="1.0" encoding="utf-8"?>
<testsuites name="pytest tests"><testsuite name="pytest" errors="0" failures="1" skipped="3"
 tests="9">
<testcase classname="tests.kernels.test_iou.TestIoUKernelCompiled" name="test_a[1]"
 file="tests/kernels/test_iou.py" line="80" time="1.0"/>
<testcase classname="tests.kernels.test_iou.TestIoUKernelCompiled" name="test_a[2]"
 file="tests/kernels/test_iou.py" line="80" time="1.0"/>
<testcase classname="tests.kernels.test_iou" name="test_lowers_to_triton_for_gpu[iou]"
 file="tests/kernels/test_iou.py" line="219" time="0.5"/>
<testcase classname="tests.kernels.test_nms.TestNMSKernelCompiled" name="test_mask[1]"
 file="tests/kernels/test_nms.py" line="138" time="1.0"/>
<testcase classname="tests.kernels.test_nms.TestNMSKernelCompiled" name="test_mask[2]"
 file="tests/kernels/test_nms.py" line="138" time="1.0">
 <failure message="AssertionError: arrays differ">mask mismatch at [3, 7]</failure>
</testcase>
<testcase classname="tests.kernels.test_iic.TestIICKernelCompiled" name="test_joint[1]"
 file="tests/kernels/test_iic.py" line="71" time="0.0">
 <skipped type="pytest.skip" message="compiled kernels need a GPU">skip</skipped></testcase>
<testcase classname="tests.kernels.test_iic.TestIICKernelCompiled" name="test_joint[2]"
 file="tests/kernels/test_iic.py" line="71" time="0.0">
 <skipped type="pytest.skip" message="compiled kernels need a GPU">skip</skipped></testcase>
<testcase classname="tests.kernels.test_iic.TestIICKernelCompiled" name="test_vjp"
 file="tests/kernels/test_iic.py" line="84" time="0.0">
 <skipped type="pytest.skip" message="compiled kernels need a GPU">skip</skipped></testcase>
<testcase classname="tests.kernels.test_iic" name="test_lowers_to_triton_for_gpu[f32]"
 file="tests/kernels/test_iic.py" line="189" time="0.5"/>
</testsuite></testsuites>
"""

# pytest's default (xunit2): no file attribute. iou: compiled passes and an xfail; nms: a
# collection error (empty classname, the module as the name); iic: a compiled test errors
# in setup.
_XUNIT2 = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="2" failures="0" skipped="1" tests="6">
<testcase classname="tests.kernels.test_iou.TestIoUKernelCompiled" name="test_a[1]" time="1"/>
<testcase classname="tests.kernels.test_iou.TestIoUKernelCompiled" name="test_b" time="1">
 <skipped type="pytest.xfail" message="known">xfail</skipped></testcase>
<testcase classname="" name="tests.kernels.test_nms" time="0">
 <error message="collection failure">ImportError: no module named x</error></testcase>
<testcase classname="tests.kernels.test_iic.TestIICKernelCompiled" name="test_joint[1]"
 time="1"/>
<testcase classname="tests.kernels.test_iic.TestIICKernelCompiled" name="test_joint[2]"
 time="1"><error message="failed on setup">CUDA_ERROR_OUT_OF_MEMORY</error></testcase>
<testcase classname="tests.kernels.test_iic.TestIICKernelInterpret" name="test_joint[1]"
 time="1"/>
</testsuite></testsuites>
"""


def _counts(passed=0, failed=0, errors=0, skipped=0, xfailed=0):
  return {"passed": passed, "failed": failed, "errors": errors, "skipped": skipped,
          "xfailed": xfailed}


def test_parse_junit_counts_per_file_and_compiled():
  per_file = gpu_report.parse_junit(_XUNIT1)
  assert per_file == {
      "tests/kernels/test_iou.py": {**_counts(passed=3), "compiled": _counts(passed=2)},
      "tests/kernels/test_nms.py": {**_counts(passed=1, failed=1),
                                    "compiled": _counts(passed=1, failed=1)},
      "tests/kernels/test_iic.py": {**_counts(passed=1, skipped=3),
                                    "compiled": _counts(skipped=3)},
  }


def test_parse_junit_without_file_attribute_and_collection_error():
  per_file = gpu_report.parse_junit(_XUNIT2)
  assert set(per_file) == {"tests/kernels/test_iou.py", "tests/kernels/test_nms.py",
                           "tests/kernels/test_iic.py"}
  assert per_file["tests/kernels/test_iou.py"]["compiled"] == _counts(passed=1, xfailed=1)
  assert per_file["tests/kernels/test_nms.py"] == {**_counts(errors=1), "compiled": _counts()}
  iic = per_file["tests/kernels/test_iic.py"]
  assert iic == {**_counts(passed=2, errors=1), "compiled": _counts(passed=1, errors=1)}


def test_parse_junit_reads_a_file(tmp_path):
  path = tmp_path / "tests.xml"
  path.write_text(_XUNIT1)
  assert gpu_report.parse_junit(path) == gpu_report.parse_junit(_XUNIT1)


def test_candidates_exclude_any_failure_and_all_skipped():
  # iou: all compiled passed -> candidate. nms: one compiled failure -> not. iic: every
  # compiled test skipped (its lowering test passed) -> not.
  assert gpu_report.gpu_validated_candidates(gpu_report.parse_junit(_XUNIT1)) == ["iou"]
  # A collection error (nms) and a setup error (iic) disqualify; an xfail does not (iou).
  assert gpu_report.gpu_validated_candidates(gpu_report.parse_junit(_XUNIT2)) == ["iou"]
  # A failure outside the compiled class also disqualifies the file's kernel.
  per_file = {"tests/kernels/test_nms.py": {**_counts(passed=5, failed=1),
                                            "compiled": _counts(passed=5)},
              "tests/kernels/test_iic.py": {**_counts(passed=4), "compiled": _counts(passed=4)},
              "tests/kernels/test_iou.py": {**_counts(passed=2), "compiled": _counts()}}
  assert gpu_report.gpu_validated_candidates(per_file) == ["iic"]
  assert gpu_report.gpu_validated_candidates({}) == []


def test_gpu_validated_line_is_the_python_to_paste():
  for names in ([], ["nms", "iou"], ["iic", "iou", "nms"]):
    line = gpu_report.gpu_validated_line(names)
    assert line.startswith("GPU_VALIDATED: frozenset[str] = frozenset(")
    scope = {}
    exec(line, scope)  # noqa: S102 - the line must be valid Python that builds the set
    assert scope["GPU_VALIDATED"] == frozenset(names)
  assert gpu_report.gpu_validated_line([]) == "GPU_VALIDATED: frozenset[str] = frozenset()"


def test_junit_failures_name_the_test_and_message():
  failures = gpu_report.junit_failures(_XUNIT1)
  assert len(failures) == 1
  (f,) = failures
  assert f["file"] == "tests/kernels/test_nms.py" and f["outcome"] == "failed"
  assert f["test"].endswith("TestNMSKernelCompiled::test_mask[2]")
  assert "arrays differ" in f["message"] and "[3, 7]" in f["message"]


def _row(family, case, impl, median_s=0.001, met=None):
  return {"family": family, "case": case, "impl": impl, "median_s": median_s, "met": met}


def test_issue_rows_need_a_timed_row_of_each():
  rows = [_row("iou", "box_iou 20000x20000", "write-bandwidth floor"),
          _row("nms", "nms uniform N=5000 iou=0.5", "torchvision"),
          _row("nms", "nms uniform N=20000 iou=0.5", "jaxvision-xla"),  # not torchvision
          _row("nms", "nms clustered N=100000 iou=0.5", "torchvision", median_s=None),
          _row("nms", "nms batch 16x20000 clustered iou=0.5", "torchvision-loop"),
          _row("iic", "iic_loss fwd+bwd 4096x50", "torch")]
  assert gpu_report.issue_rows(rows) == {
      "iou vs write-bandwidth floor": True,
      "nms N=5000 vs torchvision CUDA": True,
      "nms N=20000 vs torchvision CUDA": False,
      "nms N=100000 vs torchvision CUDA": False,  # a "not installed" row has no time
      "nms batch 16x20000 vs torchvision CUDA loop": True,
      "iic_loss 4096x50 vs torch CUDA": True,
  }


def test_assemble_writes_counts_rows_steps_and_candidates(tmp_path):
  (tmp_path / "tests.xml").write_text(_XUNIT1)
  (tmp_path / "preflight.json").write_text(json.dumps({"jax_backend": "gpu"}))
  (tmp_path / "steps.tsv").write_text(
      "preflight\t0\t4\t60\ntests\t1\t90\t150\nbench-iou\t0\t30\t60\n"
      "bench-nms\t124\t150\t150\nbench-iic\tskipped\t0\t3\n")
  iou_dir, nms_dir = tmp_path / "bench-iou", tmp_path / "bench-nms"
  iou_dir.mkdir()
  nms_dir.mkdir()  # the NMS step timed out: the runner wrote nothing
  rows = [_row("iou", "box_iou 5000x5000", "jaxvision-pallas"),
          _row("iou", "box_iou 5000x5000", "write-bandwidth floor", met=False)]
  (iou_dir / "host-2026-01-01.json").write_text(
      json.dumps({"machine": {"device": "gpu"}, "rows": rows, "failures": []}))
  report = gpu_report.assemble(
      preflight_path=tmp_path / "preflight.json", junit_path=tmp_path / "tests.xml",
      steps_path=tmp_path / "steps.tsv", benches={"iou": iou_dir, "nms": nms_dir},
      mode="full", started=None)
  assert report["machine"] == {"jax_backend": "gpu"}
  assert report["tests"]["files"]["tests/kernels/test_nms.py"]["failed"] == 1
  assert report["gpu_validated_candidates"] == ["iou"]
  assert report["gpu_validated_line"] == 'GPU_VALIDATED: frozenset[str] = frozenset({"iou"})'
  assert report["rows"] == rows
  assert report["benchmarks"]["iou"]["rows"] == 2 and "note" in report["benchmarks"]["nms"]
  assert report["issue_rows"]["iou vs write-bandwidth floor"]
  assert report["goals_not_met"] == ["box_iou 5000x5000 / write-bandwidth floor"]
  assert report["steps"]["bench-nms"]["timed_out"]
  assert report["steps"]["bench-iic"]["rc"] == "skipped"
  assert gpu_report.exit_status(report) == 1
  json.dumps(report)  # serialisable


def test_exit_status_is_zero_only_for_a_clean_run(tmp_path):
  (tmp_path / "tests.xml").write_text(_XUNIT1.replace(
      '<failure message="AssertionError: arrays differ">mask mismatch at [3, 7]</failure>', ""))
  (tmp_path / "steps.tsv").write_text("preflight\t0\t4\t60\ntests\t0\t90\t150\n")
  report = gpu_report.assemble(preflight_path=None, junit_path=tmp_path / "tests.xml",
                               steps_path=tmp_path / "steps.tsv", benches={}, mode="quick",
                               started=None)
  assert report["gpu_validated_candidates"] == ["iou", "nms"]
  assert gpu_report.exit_status(report) == 0
  # No JUnit XML at all (the test step was stopped): never a clean run, no candidates.
  report = gpu_report.assemble(preflight_path=None, junit_path=tmp_path / "missing.xml",
                               steps_path=tmp_path / "steps.tsv", benches={}, mode="quick",
                               started=None)
  assert report["gpu_validated_candidates"] == [] and gpu_report.exit_status(report) == 1
