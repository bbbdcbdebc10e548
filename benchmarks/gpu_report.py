"""The JSON of ``benchmarks/gpu_check.sh``: machine, compiled-kernel tests, GPU benchmark rows.

    python -m benchmarks.gpu_report preflight --out PREFLIGHT.json
    python -m benchmarks.gpu_report assemble --out REPORT.json --preflight PREFLIGHT.json \\
        --junit TESTS.xml --steps STEPS.tsv --bench iou=DIR --bench nms=DIR ... --started EPOCH

``preflight`` records the machine (``nvidia-smi``, JAX and jaxlib versions, JAX's devices) and
exits 2 unless JAX's default backend is ``"gpu"``. ``assemble`` writes the one JSON of a run:
per test file the passed / failed / errors / skipped counts read from pytest's JUnit XML, the
rows of each ``python -m benchmarks.run`` JSON, every step's exit status and time, and
``gpu_validated_candidates``: the kernels whose compiled tests all passed (see
:func:`gpu_validated_candidates`). It prints the ``GPU_VALIDATED`` line those candidates give;
it never edits ``kernels/__init__.py``.

Standard library only (``preflight`` imports JAX), so it runs with any Python.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

# The tests of a kernel's compiled (not interpreted) path are the methods of a test class
# whose name holds this (``TestIoUKernelCompiled``, ...): see tests/kernels.
COMPILED_MARKER = "Compiled"

OUTCOMES = ("passed", "failed", "errors", "skipped", "xfailed")

# The GPU rows issue 20 asks for: name -> (family, case regex, implementation compared).
ISSUE_ROWS = {
    "iou vs write-bandwidth floor": ("iou", r"^box_iou \d+x\d+$", "write-bandwidth floor"),
    "nms N=5000 vs torchvision CUDA": ("nms", r"^nms \w+ N=5000\b", "torchvision"),
    "nms N=20000 vs torchvision CUDA": ("nms", r"^nms \w+ N=20000\b", "torchvision"),
    "nms N=100000 vs torchvision CUDA": ("nms", r"^nms \w+ N=100000\b", "torchvision"),
    "nms batch 16x20000 vs torchvision CUDA loop": ("nms", r"^nms batch 16x20000\b",
                                                    "torchvision-loop"),
    "iic_loss 4096x50 vs torch CUDA": ("iic", r"^iic_loss .*\b4096x50$", "torch"),
}


# ---------------------------------------------------------------------------------------------
# JUnit XML (pytest --junitxml) -> per-file counts.


def _module_file(dotted: str) -> str | None:
  """``"tests.kernels.test_iou.TestX"`` -> ``"tests/kernels/test_iou.py"`` (None if no part
  of the dotted name looks like a test module)."""
  parts = dotted.split(".")
  for i in range(len(parts) - 1, -1, -1):
    if parts[i].startswith("test_") or parts[i].endswith("_test"):
      return "/".join(parts[: i + 1]) + ".py"
  return None


def testcase_file(case: ET.Element) -> str:
  """The test file of a ``<testcase>``: its ``file`` attribute (junit_family=xunit1), else
  derived from ``classname`` (xunit2), else from ``name`` (a collection error's testcase has
  an empty classname and the module as its name)."""
  file = case.get("file")
  if file:
    return pathlib.PurePath(file).as_posix()
  for dotted in (case.get("classname") or "", case.get("name") or ""):
    found = _module_file(dotted)
    if found:
      return found
  return case.get("classname") or case.get("name") or "?"


def testcase_outcome(case: ET.Element) -> str:
  """One of :data:`OUTCOMES` for a ``<testcase>`` element."""
  if case.find("failure") is not None:
    return "failed"
  if case.find("error") is not None:
    return "errors"
  skipped = case.find("skipped")
  if skipped is not None:
    return "xfailed" if skipped.get("type") == "pytest.xfail" else "skipped"
  return "passed"


def _root(source) -> ET.Element:
  if isinstance(source, ET.Element):
    return source
  text = str(source)
  if text.lstrip().startswith("<"):
    return ET.fromstring(text)
  return ET.parse(text).getroot()


def _zero() -> dict:
  return {k: 0 for k in OUTCOMES}


def parse_junit(source, compiled_marker: str = COMPILED_MARKER) -> dict[str, dict]:
  """Per test file, the count of each outcome, overall and for the compiled tests alone.

  ``source``: the XML text, a path to it, or a parsed element. Returns
  ``{file: {"passed": n, "failed": n, "errors": n, "skipped": n, "xfailed": n,
  "compiled": {same keys}}}``; a test counts as compiled when its class name contains
  ``compiled_marker``. A test with both a failure and an error (a teardown error after a
  failed call) is counted once, as failed.
  """
  out: dict[str, dict] = {}
  for case in _root(source).iter("testcase"):
    file = testcase_file(case)
    outcome = testcase_outcome(case)
    counts = out.setdefault(file, {**_zero(), "compiled": _zero()})
    counts[outcome] += 1
    if compiled_marker in (case.get("classname") or "").rsplit(".", 1)[-1]:
      counts["compiled"][outcome] += 1
  return out


def junit_failures(source, limit: int = 30, chars: int = 1500) -> list[dict]:
  """The failed and erroring tests (at most ``limit``), each with the start of its message."""
  out = []
  for case in _root(source).iter("testcase"):
    outcome = testcase_outcome(case)
    if outcome not in ("failed", "errors"):
      continue
    node = case.find("failure" if outcome == "failed" else "error")
    text = (node.get("message") or "") + "\n" + (node.text or "")
    out.append({"file": testcase_file(case), "test": f"{case.get('classname')}::{case.get('name')}",
                "outcome": outcome, "message": text.strip()[:chars]})
    if len(out) >= limit:
      break
  return out


def kernel_of(file: str) -> str:
  """``"tests/kernels/test_iou.py"`` -> ``"iou"``: the ``GPU_VALIDATED`` key it tests."""
  stem = pathlib.PurePosixPath(file).stem
  return stem[len("test_"):] if stem.startswith("test_") else stem


def gpu_validated_candidates(per_file: dict[str, dict]) -> list[str]:
  """The kernels that may go into ``GPU_VALIDATED`` after this run, sorted.

  A kernel (one test file) is a candidate when none of its selected tests failed or errored
  (a collection error counts) and at least one compiled test passed and none of those
  failed: a file whose compiled tests were all skipped (no GPU) or deselected is not.
  """
  out = []
  for file, c in per_file.items():
    compiled = c.get("compiled", _zero())
    if c["failed"] or c["errors"] or compiled["failed"] or compiled["errors"]:
      continue
    if compiled["passed"] == 0:
      continue
    out.append(kernel_of(file))
  return sorted(set(out))


def gpu_validated_line(candidates) -> str:
  """The line of ``kernels/__init__.py`` that records ``candidates``."""
  names = sorted(set(candidates))
  inner = "{" + ", ".join(f'"{n}"' for n in names) + "}" if names else ""
  return f"GPU_VALIDATED: frozenset[str] = frozenset({inner})"


# ---------------------------------------------------------------------------------------------
# Machine.


def nvidia_smi() -> list[dict] | str:
  """One dict per GPU (name, driver, memory, compute capability), or why there is none."""
  fields = ("name", "driver_version", "memory.total", "compute_cap")
  for query in (fields, fields[:3]):
    try:
      proc = subprocess.run(
          ["nvidia-smi", f"--query-gpu={','.join(query)}", "--format=csv,noheader"],
          capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as e:
      return f"nvidia-smi not usable: {e}"
    if proc.returncode == 0:
      return [dict(zip(query, (v.strip() for v in line.split(","))))
              for line in proc.stdout.splitlines() if line.strip()]
  return f"nvidia-smi failed: {(proc.stderr or proc.stdout).strip()[:300]}"


def machine() -> dict:
  """The machine as JAX sees it (imports JAX; initialises its backends)."""
  import jax  # pylint: disable=import-outside-toplevel
  import jaxlib  # pylint: disable=import-outside-toplevel
  return {
      "host": platform.node(),
      "gpus": nvidia_smi(),
      "python": sys.version.split()[0],
      "python_executable": sys.executable,
      "jax": jax.__version__,
      "jaxlib": getattr(jaxlib, "__version__", None),
      "jax_backend": jax.default_backend(),
      "jax_devices": [str(d) for d in jax.devices()],
      "env": {k: os.environ[k] for k in ("JAX_PLATFORMS", "CUDA_VISIBLE_DEVICES",
                                         "XLA_PYTHON_CLIENT_MEM_FRACTION", "GPU_CHECK_SHIMS")
              if k in os.environ},
  }


def preflight(out: pathlib.Path) -> int:
  """Writes :func:`machine` to ``out``; 0 when JAX's default backend is the GPU, else 2."""
  info = machine()
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps(info, indent=1))
  gpus = info["gpus"]
  print(f"GPU: {gpus if isinstance(gpus, str) else '; '.join(g.get('name', '?') for g in gpus)}"
        f" | jax {info['jax']} (jaxlib {info['jaxlib']}), backend {info['jax_backend']!r}, "
        f"devices {info['jax_devices']} | {info['python_executable']}")
  return 0 if info["jax_backend"] == "gpu" else 2


# ---------------------------------------------------------------------------------------------
# Benchmark rows and the report.


def load_bench(directory: pathlib.Path) -> dict:
  """The JSON ``python -m benchmarks.run --out directory`` wrote (``{}`` when it wrote none:
  the run was stopped or failed before the end)."""
  found = sorted(pathlib.Path(directory).glob("*.json"), key=lambda p: p.stat().st_mtime)
  if not found:
    return {}
  data = json.loads(found[-1].read_text())
  data["file"] = found[-1].name
  return data


def issue_rows(rows: list[dict]) -> dict[str, bool]:
  """For each row of :data:`ISSUE_ROWS`, whether a timed row of it is among ``rows``."""
  out = {}
  for label, (family, case_re, impl) in ISSUE_ROWS.items():
    out[label] = any(r.get("family") == family and re.search(case_re, r.get("case", ""))
                     and r.get("impl") == impl and r.get("median_s") is not None for r in rows)
  return out


def read_steps(path: pathlib.Path) -> dict[str, dict]:
  """``name<TAB>rc<TAB>wall_s<TAB>budget_s`` lines (written by gpu_check.sh) -> dict.

  rc 124 / 137 is ``timeout``'s (stopped at the step's budget); rc ``skipped`` means the run's
  time was spent before the step could start."""
  steps = {}
  if not path or not pathlib.Path(path).exists():
    return steps
  for line in pathlib.Path(path).read_text().splitlines():
    if not line.strip():
      continue
    name, rc, wall, budget = (line.split("\t") + ["", "", "", ""])[:4]
    rc_value = int(rc) if rc.lstrip("-").isdigit() else rc
    steps[name] = {"rc": rc_value, "timed_out": rc_value in (124, 137),
                   "wall_s": float(wall) if wall else None,
                   "budget_s": int(budget) if budget.isdigit() else None}
  return steps


def assemble(*, preflight_path, junit_path, steps_path, benches: dict[str, pathlib.Path],
             mode: str, started: float | None, command: str = "") -> dict:
  """The report of one run (see the module docstring)."""
  report: dict = {
      "schema": "jaxvision-gpu-check/1",
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "command": command,
      "mode": mode,
  }
  pre = pathlib.Path(preflight_path) if preflight_path else None
  report["machine"] = json.loads(pre.read_text()) if pre and pre.exists() else {}
  report["steps"] = read_steps(steps_path)
  junit = pathlib.Path(junit_path) if junit_path else None
  if junit and junit.exists() and junit.stat().st_size:
    per_file = parse_junit(junit)
    report["tests"] = {"files": per_file, "failures": junit_failures(junit)}
  else:
    per_file = {}
    report["tests"] = {"files": {}, "failures": [],
                       "note": "no JUnit XML: the test step did not run or did not finish"}
  rows, bench = [], {}
  for family, directory in benches.items():
    data = load_bench(directory)
    bench[family] = {"file": data.get("file"), "machine": data.get("machine"),
                     "failures": data.get("failures"), "rows": len(data.get("rows", []))}
    if not data:
      bench[family]["note"] = "no JSON: the benchmark step was stopped or failed (see steps)"
    rows.extend(data.get("rows", []))
  report["benchmarks"] = bench
  report["rows"] = rows
  report["issue_rows"] = issue_rows(rows)
  report["goals_not_met"] = [f"{r['case']} / {r['impl']}" for r in rows if r.get("met") is False]
  candidates = gpu_validated_candidates(per_file)
  report["gpu_validated_candidates"] = candidates
  report["gpu_validated_line"] = gpu_validated_line(candidates)
  report["wall_s"] = None if started is None else round(time.time() - started, 1)
  return report


def exit_status(report: dict) -> int:
  """0 when every step ran to the end with status 0 and no test failed; 1 otherwise."""
  if any(s["rc"] != 0 for s in report["steps"].values()):
    return 1
  files = report["tests"]["files"]
  if not files or any(c["failed"] or c["errors"] for c in files.values()):
    return 1
  return 0


def summary(report: dict) -> str:
  lines = ["", "== GPU check summary =="]
  for name, s in report["steps"].items():
    lines.append(f"step {name:<12} rc={s['rc']!s:<8} {s['wall_s']} s of {s['budget_s']} s"
                 + ("  (TIMED OUT)" if s["timed_out"] else ""))
  for file, c in report["tests"]["files"].items():
    comp = c["compiled"]
    lines.append(f"{file}: {c['passed']} passed, {c['failed']} failed, {c['errors']} errors, "
                 f"{c['skipped']} skipped (compiled: {comp['passed']} passed, "
                 f"{comp['failed'] + comp['errors']} failed, {comp['skipped']} skipped)")
  for label, present in report["issue_rows"].items():
    lines.append(f"row {label}: {'present' if present else 'MISSING'}")
  if report["goals_not_met"]:
    lines.append("goals not met: " + "; ".join(report["goals_not_met"]))
  lines.append(f"wall time: {report['wall_s']} s")
  if report["gpu_validated_candidates"]:
    lines.append("Kernels whose compiled tests all passed. To record this run, put this line in "
                 "kernels/__init__.py (this script does not edit it):")
    lines.append("  " + report["gpu_validated_line"])
  else:
    lines.append("No kernel passed all its compiled tests: leave GPU_VALIDATED as it is.")
  return "\n".join(lines)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  sub = p.add_subparsers(dest="cmd", required=True)
  pre = sub.add_parser("preflight", help="record the machine; exit 2 unless JAX is on a GPU")
  pre.add_argument("--out", type=pathlib.Path, required=True)
  asm = sub.add_parser("assemble", help="write the run's JSON")
  asm.add_argument("--out", type=pathlib.Path, required=True)
  asm.add_argument("--preflight", type=pathlib.Path)
  asm.add_argument("--junit", type=pathlib.Path)
  asm.add_argument("--steps", type=pathlib.Path)
  asm.add_argument("--bench", action="append", default=[], metavar="FAMILY=DIR")
  asm.add_argument("--mode", default="full")
  asm.add_argument("--started", type=float, help="the run's start, seconds since the epoch")
  asm.add_argument("--command", default="")
  args = p.parse_args(argv)
  if args.cmd == "preflight":
    return preflight(args.out)
  benches = dict(b.split("=", 1) for b in args.bench)
  report = assemble(preflight_path=args.preflight, junit_path=args.junit,
                    steps_path=args.steps, benches=benches, mode=args.mode,
                    started=args.started, command=args.command)
  args.out.parent.mkdir(parents=True, exist_ok=True)
  args.out.write_text(json.dumps(report, indent=1))
  print(summary(report))
  print(f"\nwrote {args.out}")
  return exit_status(report)


if __name__ == "__main__":
  sys.exit(main())
