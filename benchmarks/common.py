"""Timing method shared by every benchmark family.

* Every implementation of a case gets the same inputs.
* Each callable is called once to compile / warm up (that first call's time is reported as
  ``compile_s``, never mixed into the timing), then once more untimed.
* Repetitions are interleaved (A B C A B C ...), so a slow spell of this shared machine hits
  all implementations alike; the reported ratio is the median of the per-round ratios
  ``t_comparator / t_jaxvision``, i.e. computed from interleaved pairs.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import resource
import statistics
import threading
import time
from typing import Any, Callable

import jax


def block(x: Any) -> Any:
  """Waits for JAX results; converts nothing else (torch/TF/NumPy are synchronous on CPU)."""
  return jax.block_until_ready(x)


@dataclasses.dataclass
class Timing:
  impl: str
  times: list[float]
  compile_s: float

  @property
  def median_s(self) -> float:
    return statistics.median(self.times)

  @property
  def min_s(self) -> float:
    return min(self.times)


def time_interleaved(fns: dict[str, Callable[[], Any]], *, reps: int,
                     min_time_s: float = 0.0, max_time_s: float = 30.0) -> dict[str, Timing]:
  """Times each zero-argument callable, interleaved.

  Runs at least ``reps`` rounds, more while the total is below ``min_time_s`` (for fast
  cases), and stops early once ``max_time_s`` has passed (for slow comparators).
  """
  compile_s = {}
  for name, fn in fns.items():
    t0 = time.perf_counter()
    block(fn())
    compile_s[name] = time.perf_counter() - t0
    block(fn())
  times = {name: [] for name in fns}
  start = time.perf_counter()
  rounds = 0
  gc.disable()
  try:
    while True:
      for name, fn in fns.items():
        t0 = time.perf_counter()
        block(fn())
        times[name].append(time.perf_counter() - t0)
      rounds += 1
      if enough_rounds(rounds, time.perf_counter() - start, reps=reps, min_time_s=min_time_s,
                       max_time_s=max_time_s):
        break
  finally:
    gc.enable()
  return {name: Timing(name, times[name], compile_s[name]) for name in fns}


def enough_rounds(rounds: int, elapsed_s: float, *, reps: int, min_time_s: float,
                  max_time_s: float) -> bool:
  """Whether a timing loop may stop: ``reps`` rounds and ``min_time_s`` done, or (for slow
  comparators) ``max_time_s`` passed after at least 3 rounds."""
  return ((rounds >= reps and elapsed_s >= min_time_s)
          or (rounds >= 3 and elapsed_s >= max_time_s))


def paired_ratio(comparator: Timing, subject: Timing) -> float:
  """Median over interleaved rounds of ``t_comparator / t_subject`` (> 1: subject faster)."""
  return statistics.median(c / s for c, s in zip(comparator.times, subject.times))


def peak_rss_mb() -> float:
  """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _rss_mb() -> float:
  try:
    with open("/proc/self/statm") as f:
      return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
  except (OSError, ValueError):
    return peak_rss_mb()


class MemorySampler:
  """Highest resident set size while the ``with`` block runs (sampled every ``interval_s``).

  The process-wide high-water mark only ever grows, so a per-case peak needs sampling; on a
  GPU, device memory is read from JAX's allocator statistics instead.
  """

  def __init__(self, interval_s: float = 0.002):
    self.interval_s = interval_s
    self.peak_mb = 0.0
    self._stop = threading.Event()

  def _run(self):
    while not self._stop.is_set():
      self.peak_mb = max(self.peak_mb, _rss_mb())
      self._stop.wait(self.interval_s)

  def __enter__(self):
    self.peak_mb = _rss_mb()
    self._thread = threading.Thread(target=self._run, daemon=True)
    self._thread.start()
    return self

  def __exit__(self, *exc):
    self._stop.set()
    self._thread.join()
    self.peak_mb = max(self.peak_mb, _rss_mb())


def device_peak_mb() -> float | None:
  """Peak bytes in use on the default JAX device (None on CPU, which keeps no statistics)."""
  stats = jax.devices()[0].memory_stats() or {}
  peak = stats.get("peak_bytes_in_use")
  return None if peak is None else peak / 2**20


@dataclasses.dataclass
class Case:
  """One benchmark case: every implementation gets the same inputs.

  ``impls`` maps an implementation name to a zero-argument callable (inputs bound in);
  ``subject`` names the jaxvision implementation the others are compared with; ``goals``
  maps a comparator name to the minimum speed-up the subject must reach over it;
  ``missing`` lists comparators that could not be imported (reported, not timed).
  ``check``, when given, receives ``{impl: output}`` and raises if the outputs disagree.
  """
  family: str
  name: str
  size: int
  subject: str
  impls: dict[str, Callable[[], Any]]
  goals: dict[str, float] = dataclasses.field(default_factory=dict)
  missing: list[str] = dataclasses.field(default_factory=list)
  check: Callable[[dict[str, Any]], None] | None = None
  reps: int = 7


def optional_import(name: str) -> Any:
  """The module, or None when it (or one of its dependencies) is not installed."""
  import importlib
  try:
    return importlib.import_module(name)
  except Exception:  # noqa: BLE001 - a broken optional install counts as not installed
    return None
