"""One command that times jaxvision against NumPy, torchvision and TensorFlow.

    python -m benchmarks.run [--quick] [--only iou,nms,...] [--device cpu|gpu] [--out DIR]

Comparators are used when importable (``pip install -e .[bench]``); a missing one gets a row
that says "comparator not installed". Writes ``<out>/<host>-<date>.json``, a Markdown table
next to it, a log-log plot of time against N per op family, and — for a full run into the
default directory — ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import re
import sys
import tempfile
import time
import traceback

FAMILIES = ("iou", "nms", "soft_nms", "multiclass_nms", "matching", "iic", "ssd", "roi",
            "conv")
DEFAULT_OUT = pathlib.Path(__file__).resolve().parent / "results"


def _parse(argv):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--quick", action="store_true", help="small sizes; under 3 minutes on 2 cores")
  p.add_argument("--smoke", action="store_true", help="one tiny case per family (CI)")
  p.add_argument("--only", default="", help=f"comma-separated families from {FAMILIES}")
  p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
  p.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT)
  p.add_argument("--no-plots", action="store_true")
  p.add_argument("--method", choices=("isolated", "inprocess", "both"), default=None,
                 help="isolated: each implementation in its own worker process, alternating "
                      "rounds (default, except --smoke); inprocess: all in this process, "
                      "interleaved; both: isolated, plus the in-process times as a second "
                      "column")
  args = p.parse_args(argv)
  only = [f for f in args.only.split(",") if f]
  unknown = sorted(set(only) - set(FAMILIES))
  if unknown:
    p.error(f"--only: unknown families {unknown}; choose from {FAMILIES}")
  args.only = only or list(FAMILIES)
  args.mode = "smoke" if args.smoke else "quick" if args.quick else "full"
  if args.method is None:
    args.method = "inprocess" if args.smoke else "isolated"
  return args


def machine_info(device: str) -> dict:
  """``jaxvision.experiment.machine()`` under the keys the benchmark results use, plus the
  date, the ``--device``, the JAX devices by name and the comparators' versions."""
  import jax
  import numpy as np
  from benchmarks import comparators
  from jaxvision import experiment
  machine = experiment.machine()
  return {
      "host": machine["host"],
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "cpu": machine["cpu"],
      "cores": machine["cpu_cores"],
      "device": device,
      "jax_devices": [str(d) for d in jax.devices()],
      "python": machine["python"],
      "versions": {"jax": machine["jax"], "numpy": np.__version__, **comparators.versions()},
  }


def build_family(family, mode, device):
  """The cases of one family (each benchmark module builds its own inputs and callables)."""
  from benchmarks import conv, iic, iou, matching, nms, roi, ssd
  builders = {
      "iic": lambda: iic.cases(mode, device),
      "iou": lambda: iou.cases(mode, device),
      "nms": lambda: nms.greedy_cases(mode, device) + nms.batch_cases(mode, device),
      "soft_nms": lambda: nms.soft_cases(mode),
      "multiclass_nms": lambda: nms.multiclass_cases(mode),
      "matching": lambda: matching.cases(mode),
      "ssd": lambda: ssd.cases(mode, device),
      "roi": lambda: roi.cases(mode, device),
      "conv": lambda: conv.cases(mode, device),
  }
  return builders[family]()


_BUDGET = {"smoke": (2, 0.0, 2.0), "quick": (3, 0.2, 10.0)}


def _budget(reps, mode):
  """(rounds at least, seconds at least, seconds at most) of a case's timing; ``reps`` is
  the case's own rounds for a full run."""
  return _BUDGET.get(mode, (reps, 0.5, 40.0))


def _rows(case_name, family, size, subject, goals, missing, times, compile_s, peak_mb,
          inprocess=None):
  """Result rows of one case: the subject's, then one per comparator with its paired ratio
  (``inprocess``: the same implementations' times measured in one process, if taken)."""
  from benchmarks.common import Timing, device_peak_mb, paired_ratio
  timings = {name: Timing(name, t, compile_s[name]) for name, t in times.items()}
  same = None if inprocess is None else {name: Timing(name, t, 0.0)
                                         for name, t in inprocess.items()}
  sub = timings[subject]
  base = {"case": case_name, "family": family, "size": size, "peak_rss_mb": round(peak_mb, 1),
          "device_peak_mb": device_peak_mb()}
  rows = [{**base, "impl": subject, "comparator": None, "median_s": sub.median_s,
           "min_s": sub.min_s, "compile_s": sub.compile_s, "ratio": None, "goal": None,
           "met": None}]
  if same is not None:
    rows[0]["inprocess_median_s"] = same[subject].median_s
  for name, t in timings.items():
    if name == subject:
      continue
    goal = goals.get(name)
    ratio = paired_ratio(t, sub)
    row = {**base, "impl": name, "comparator": subject, "median_s": t.median_s,
           "min_s": t.min_s, "compile_s": t.compile_s, "ratio": ratio, "goal": goal,
           "met": None if goal is None else bool(ratio >= goal)}
    if same is not None:
      row["inprocess_median_s"] = same[name].median_s
      row["inprocess_ratio"] = paired_ratio(same[name], same[subject])
    rows.append(row)
  for name in missing:
    rows.append({**base, "impl": name, "comparator": subject, "median_s": None,
                 "min_s": None, "compile_s": None, "ratio": None, "goal": goals.get(name),
                 "met": None, "note": "comparator not installed"})
  return rows


def run_case(case, mode):
  """All implementations of ``case`` timed in this process, interleaved (``--method
  inprocess``)."""
  from benchmarks.common import MemorySampler, time_interleaved
  reps, min_time, max_time = _budget(case.reps, mode)
  with MemorySampler() as memory:
    timings = time_interleaved(case.impls, reps=reps, min_time_s=min_time,
                               max_time_s=max_time)
  if case.check:
    case.check({name: fn() for name, fn in case.impls.items()})
  return _rows(case.name, case.family, case.size, case.subject, case.goals, case.missing,
               {n: t.times for n, t in timings.items()},
               {n: t.compile_s for n, t in timings.items()}, memory.peak_mb)


def run_family_isolated(family, mode, device, inputs_dir, *, inprocess):
  """Every case of ``family`` with each implementation in its own process (``--method
  isolated``; ``--method both`` adds the in-process times as a second column). Yields
  ``(case name, rows or None, failure or None)``."""
  from benchmarks import isolated
  workers = isolated.FamilyWorkers(family, mode, device, inputs_dir)
  try:
    for index, case in enumerate(workers.layout):
      reps, min_time, max_time = _budget(case["reps"], mode)
      try:
        r = workers.time_case(index, reps=reps, min_time_s=min_time, max_time_s=max_time,
                              inprocess=inprocess)
      except Exception:  # noqa: BLE001 - report and go on
        yield case["name"], None, traceback.format_exc()
        continue
      if r["check"] is not None:
        yield case["name"], None, f"outputs disagree: {r['check']}"
        continue
      rows = _rows(case["name"], case["family"], case["size"], case["subject"], case["goals"],
                   case["missing"], r["times"], r["compile_s"], r["peak_mb"][case["subject"]],
                   r["inprocess"])
      for row in rows:
        if row["impl"] in r["threads"]:
          row["threads"] = r["threads"][row["impl"]]
        row["method"] = "isolated"
      rows[0]["quiet_wait_s"] = round(r["quiet_wait_s"], 4)
      yield case["name"], rows, None
  finally:
    workers.close()


def _fmt_time(s):
  if s is None:
    return "—"
  return f"{s * 1e3:.3f} ms" if s < 1 else f"{s:.2f} s"


_METHOD_TEXT = {
    "isolated": "Each implementation ran in its own worker process; rounds alternate between "
                "them (one call each, the next only once the previous process has stopped "
                "using CPU), so no library's threads slow another's calls.",
    "both": "Each implementation ran in its own worker process; rounds alternate between "
            "them (one call each, the next only once the previous process has stopped using "
            "CPU). `in-process` repeats the ratio with every implementation interleaved in "
            "one process (the earlier method).",
    "inprocess": "All implementations ran in one process, interleaved.",
}


def markdown(machine, rows, title):
  method = machine.get("method", "inprocess")
  second = any(r.get("inprocess_ratio") is not None for r in rows)
  threads = machine.get("threads") or {}
  lines = [f"## {title}", "",
           f"Machine: {machine['cpu']} ({machine['cores']} cores), device `{machine['device']}`,"
           f" {machine['date']}. Versions: "
           + ", ".join(f"{k} {v}" for k, v in machine["versions"].items() if v) + ".", "",
           _METHOD_TEXT[method] + " `ratio` = comparator time / jaxvision time, the median "
           "of per-round ratios (> 1: jaxvision is faster). Compile time is excluded and "
           "shown separately.", ""]
  if threads:
    lines += ["Threads: " + "; ".join(
        f"{impl}: " + ", ".join(f"{k}={v}" for k, v in sorted(t.items()) if v not in (None, ""))
        for impl, t in sorted(threads.items())) + ".", ""]
  lines += ["| case | implementation | median | min | compile | speed-up of jaxvision"
            + (" | in-process" if second else "") + " | goal | met | case peak RSS |",
            "|---|---|---|---|---|---|" + ("---|" if second else "") + "---|---|---|"]
  for r in rows:
    ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}x"
    if r.get("note"):
      ratio = r["note"]
    same = ""
    if second and r.get("inprocess_ratio") is not None:
      same = f"{r['inprocess_ratio']:.2f}x"
    goal = "" if r["goal"] is None else f">= {r['goal']:g}x"
    met = {None: "", True: "yes", False: "**no**"}[r["met"]]
    memory = f"{r['peak_rss_mb']:.0f} MiB" if r["comparator"] is None else ""
    lines.append(f"| {r['case']} | {r['impl']} | {_fmt_time(r['median_s'])} | "
                 f"{_fmt_time(r['min_s'])} | {_fmt_time(r['compile_s'])} | {ratio} | "
                 + (f"{same} | " if second else "") + f"{goal} | {met} | {memory} |")
  return "\n".join(lines) + "\n"


# What a case's `size` counts, by family (the x axis of its plot).
_SIZE_MEANING = {"iou": "N (boxes in each set)", "nms": "N (boxes)", "soft_nms": "N (boxes)",
                 "multiclass_nms": "N (anchors per image)", "matching": "N (anchors)",
                 "iic": "N (samples in the batch)", "ssd": "N (images in the batch)",
                 "roi": "N (boxes)", "conv": "N (images in the batch)"}


def case_setting(case: str, size: int) -> str:
  """The case name with its size written as ``N``: every other parameter stays.

  ``"nms uniform N=5000 iou=0.7"`` -> ``"nms uniform iou=0.7"``; ``"box_iou 5000x5000"`` ->
  ``"box_iou NxN"``; ``"iic_loss fwd+bwd 1000x50"`` -> ``"iic_loss fwd+bwd Nx50"``.
  """
  words = []
  for word in case.split():
    if word == f"N={size}":
      continue
    parts = word.split("x")
    if len(parts) > 1 and all(p.isdigit() for p in parts) and str(size) in parts:
      word = "x".join("N" if p == str(size) else p for p in parts)
    words.append(word)
  return " ".join(words)


def plot_series(rows, family):
  """``{(implementation, setting): (sizes, median seconds)}`` of one family's timed rows.

  One series per implementation *and* setting (threshold, distribution, K, ...), so no line
  joins two settings at one N. Batched cases ("batch BxN") are left out: their size counts
  the boxes of all images, which is not the N of the single-image cases.
  """
  points = {}
  for r in rows:
    if r["family"] != family or r["median_s"] is None:
      continue
    if re.search(r"\bbatch \d+x\d+", r["case"]):
      continue
    key = (r["impl"], case_setting(r["case"], r["size"]))
    points.setdefault(key, {})[r["size"]] = r["median_s"]
  return {k: (sorted(v), [v[x] for x in sorted(v)]) for k, v in points.items()}


def plot(rows, path_prefix, *, note=None):
  """One log-log PNG of time against N per family; families measured at one N get none."""
  from jaxvision import viz
  written = []
  for family in sorted({r["family"] for r in rows}):
    series = plot_series(rows, family)
    if not series:
      continue
    path = f"{path_prefix}-{family}.png"
    if viz.save_line_plot(path, series, xlabel=_SIZE_MEANING.get(family, "N"),
                          ylabel="median time per call (s)", log_x=True, log_y=True,
                          title=f"{family}: median time against N (lower is faster)",
                          note=note):
      written.append(path)
    else:
      print(f"no plot for {family}: every series has one size (see the table)")
  return written


def _family_rows(family, args, inputs_dir):
  """``(case name, rows, failure)`` for every case of a family, by the chosen method."""
  if args.method != "inprocess":
    try:
      yield from run_family_isolated(family, args.mode, args.device, inputs_dir,
                                     inprocess=args.method == "both")
    except Exception:  # noqa: BLE001 - the family's workers could not start
      yield family, None, traceback.format_exc()
    return
  try:
    cases = build_family(family, args.mode, args.device)
  except Exception:  # noqa: BLE001 - report and go on with the other families
    yield family, None, traceback.format_exc()
    return
  for case in cases:
    try:
      yield case.name, run_case(case, args.mode), None
    except Exception:  # noqa: BLE001
      yield case.name, None, traceback.format_exc()


def _progress_line(r):
  ratio = "" if r["ratio"] is None else f" ratio {r['ratio']:.2f}x"
  if r.get("inprocess_ratio") is not None:
    ratio += f" (in-process {r['inprocess_ratio']:.2f}x)"
  goal = "" if r["goal"] is None else (
      f" (goal {r['goal']:g}x: "
      f"{'met' if r['met'] else 'NOT met' if r['met'] is False else 'n/a'})")
  return (f"{r['case']:<44} {r['impl']:<26} {_fmt_time(r['median_s']):>12}"
          f"{ratio}{goal}{' ' + r['note'] if r.get('note') else ''}")


def _thread_summary(rows):
  """The thread settings each implementation's worker reported (isolated runs), or this
  process's (in-process runs)."""
  from benchmarks import isolated
  seen = {r["impl"]: r["threads"] for r in rows if r.get("threads")}
  return seen or {"this process": isolated.thread_settings()}


def main(argv=None):
  args = _parse(argv)
  if args.device == "cpu":
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
  machine = machine_info(args.device)
  print(f"# jaxvision benchmarks on {machine['cpu']} ({machine['cores']} cores), "
        f"{args.mode} run; comparators: "
        + ", ".join(f"{k}={v or 'not installed'}" for k, v in machine["versions"].items()),
        flush=True)
  rows, failures = [], []
  start = time.perf_counter()
  inputs = tempfile.TemporaryDirectory(prefix="jaxvision-bench-inputs-")
  os.environ["JAXVISION_BENCH_INPUTS"] = inputs.name
  machine["method"] = args.method
  for family in args.only:
    for name, case_rows, failure in _family_rows(family, args, inputs.name):
      if failure is not None:
        failures.append(f"{name}: {failure}")
        print(failures[-1], file=sys.stderr)
        continue
      rows.extend(case_rows)
      for r in case_rows:
        print(_progress_line(r), flush=True)
  inputs.cleanup()
  machine["threads"] = _thread_summary(rows)
  machine["wall_seconds"] = round(time.perf_counter() - start, 1)
  machine["command"] = "python -m benchmarks.run " + " ".join(argv if argv is not None
                                                             else sys.argv[1:])
  args.out.mkdir(parents=True, exist_ok=True)
  suffix = "" if args.mode == "full" else f"-{args.mode}"
  stem = f"{machine['host']}-{datetime.date.today().isoformat()}{suffix}"
  json_path = args.out / f"{stem}.json"
  json_path.write_text(json.dumps({"machine": machine, "rows": rows, "failures": failures},
                                  indent=1))
  title = f"{args.mode.capitalize()} run, {args.device}"
  table = markdown(machine, rows, title)
  (args.out / f"{stem}.md").write_text(table)
  plots = [] if args.no_plots else plot(rows, str(args.out / stem),
                                        note=f"{title}; {machine['cpu']}, {machine['date']}")
  if args.mode == "full" and args.out.resolve() == DEFAULT_OUT and set(args.only) == set(FAMILIES):
    results_md = DEFAULT_OUT.parent / "RESULTS.md"
    header = ("# Benchmark results\n\nWritten by `make bench` (`python -m benchmarks.run`); "
              "the latest full run. Raw numbers: `benchmarks/results/*.json`.\n\n")
    results_md.write_text(header + table + "\nPlots: " + ", ".join(
        f"`{pathlib.Path(p).relative_to(DEFAULT_OUT.parent)}`" for p in plots) + "\n")
  print(f"\nwrote {json_path}" + "".join(f", {p}" for p in plots))
  unmet = [r for r in rows if r["met"] is False]
  print(f"{len(rows)} rows, {len(unmet)} goals not met, {len(failures)} failures, "
        f"{machine['wall_seconds']} s")
  return 1 if failures else 0


if __name__ == "__main__":
  sys.exit(main())
