"""Times each implementation of a case in its own worker process, in alternating rounds.

Why: two libraries in one process share the machine's cores *and* each other's thread pools.
TensorFlow's pool keeps spinning for milliseconds after its op returns, so a JAX call that
follows it in the same process runs on a busy machine (16 x 5000 NMS: 24 ms alone, 36-41 ms
right after TF). Here every implementation of a case runs in a separate process, one at a
time: the parent asks worker A for one timed call, waits until A's process has stopped using
CPU (no thread of it running or runnable in ``/proc``), then asks worker B, and so on, round
after round, so a slow spell of the shared machine still hits every implementation alike (the
ratio is the median of per-round ratios, as in-process).

Every worker builds the family's cases with the same seeded generators in
``benchmarks.data``, which load their arrays from one ``.npz`` per input in
``$JAXVISION_BENCH_INPUTS`` (written by the first process that asks), so all implementations
read the same bytes. The outputs are compared once, in one worker, after the timing.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
import traceback

from benchmarks import common

# The request / reply protocol over a Pipe:
#   ("prepare", case, impl) -> {"compile_s", "threads"}   first call (compile) + one warm call
#   ("time", case, impl)    -> seconds of one call
#   ("memory", case)        -> peak RSS (MiB) of this worker since its last "prepare"
#   ("inprocess", case, reps, min_s, max_s) -> {impl: [seconds]} interleaved in this process
#   ("check", case)         -> None, or the assertion message of case.check
#   ("quit",)


def thread_settings() -> dict:
  """The thread settings of every library loaded in this process (0 = library default)."""
  import sys
  out = {"cpu_count": os.cpu_count(), "xla_flags": os.environ.get("XLA_FLAGS", ""),
         "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
  torch = sys.modules.get("torch")
  if torch is not None:
    out["torch_intra_op"] = torch.get_num_threads()
    out["torch_inter_op"] = torch.get_num_interop_threads()
  tf = sys.modules.get("tensorflow")
  if tf is not None:
    try:
      out["tf_intra_op"] = tf.config.threading.get_intra_op_parallelism_threads()
      out["tf_inter_op"] = tf.config.threading.get_inter_op_parallelism_threads()
    except Exception:  # noqa: BLE001 - a partial TF install
      pass
  return out


def describe(case) -> dict:
  """What the parent needs of a case to time it and write its rows (its callables, inputs
  and models stay in the workers: the parent builds nothing)."""
  return {"name": case.name, "family": case.family, "size": case.size,
          "subject": case.subject, "impls": list(case.impls), "goals": dict(case.goals),
          "missing": list(case.missing), "reps": case.reps}


def _serve(conn, family: str, mode: str, device: str, inputs_dir: str) -> None:
  os.environ["JAXVISION_BENCH_INPUTS"] = inputs_dir
  if device == "cpu":
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
  from benchmarks import run
  try:
    cases = run.build_family(family, mode, device)
  except Exception:  # noqa: BLE001 - reported to the parent
    conn.send(("error", traceback.format_exc()))
    return
  conn.send(("ready", [describe(c) for c in cases]))
  sampler = None
  while True:
    request = conn.recv()
    try:
      kind = request[0]
      if kind == "quit":
        break
      case = cases[request[1]]
      if kind == "prepare":
        if sampler is not None:
          sampler.__exit__(None, None, None)
        sampler = common.MemorySampler().__enter__()
        fn = case.impls[request[2]]
        t0 = time.perf_counter()
        common.block(fn())
        compile_s = time.perf_counter() - t0
        common.block(fn())
        reply = {"compile_s": compile_s, "threads": thread_settings()}
      elif kind == "time":
        fn = case.impls[request[2]]
        t0 = time.perf_counter()
        common.block(fn())
        reply = time.perf_counter() - t0
      elif kind == "memory":
        reply = sampler.peak_mb if sampler is not None else common.peak_rss_mb()
      elif kind == "inprocess":
        _, _, reps, min_s, max_s = request
        timings = common.time_interleaved(case.impls, reps=reps, min_time_s=min_s,
                                          max_time_s=max_s)
        reply = {name: t.times for name, t in timings.items()}
      elif kind == "check":
        reply = None
        if case.check is not None:
          try:
            case.check({name: fn() for name, fn in case.impls.items()})
          except AssertionError as e:
            reply = f"{type(e).__name__}: {e}"
      else:
        raise ValueError(f"unknown request {kind!r}")
      conn.send(("ok", reply))
    except Exception:  # noqa: BLE001
      conn.send(("error", traceback.format_exc()))
  if sampler is not None:
    sampler.__exit__(None, None, None)


def _running_threads(pid: int) -> int | None:
  """How many threads of process ``pid`` are running or runnable (state ``R`` in
  ``/proc/<pid>/task/*/stat``); None where ``/proc`` cannot tell."""
  try:
    tasks = os.listdir(f"/proc/{pid}/task")
  except OSError:
    return None
  running = 0
  for task in tasks:
    try:
      with open(f"/proc/{pid}/task/{task}/stat") as f:
        state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
      continue  # the thread ended meanwhile
    running += state == "R"
  return running


def wait_quiet(pid: int, *, poll_s: float = 0.001, max_s: float = 0.25) -> float:
  """Waits until no thread of process ``pid`` is running or runnable (a library's thread
  pool spinning down after its call) on two polls in a row, at most ``max_s``; returns the
  seconds waited. A runnable thread counts as busy even while the machine is too loaded to
  schedule it, so a loaded machine cannot make a busy process look idle."""
  start = time.perf_counter()
  calm = 0
  while True:
    running = _running_threads(pid)
    if running is None:
      return 0.0
    calm = calm + 1 if running == 0 else 0
    now = time.perf_counter()
    if calm >= 2 or now - start >= max_s:
      return now - start
    time.sleep(poll_s)


class Worker:
  """One spawned process serving one family's cases."""

  def __init__(self, ctx, family, mode, device, inputs_dir):
    self.conn, child = ctx.Pipe()
    self.process = ctx.Process(target=_serve, args=(child, family, mode, device, inputs_dir),
                               daemon=True)
    self.process.start()
    child.close()

  def ask(self, *request):
    if request:
      self.conn.send(request)
    status, reply = self.conn.recv()
    if status == "error":
      raise RuntimeError(f"benchmark worker failed:\n{reply}")
    return reply

  def close(self):
    try:
      self.conn.send(("quit",))
    except (BrokenPipeError, OSError):
      pass
    self.process.join(timeout=30)
    if self.process.is_alive():
      self.process.kill()


class FamilyWorkers:
  """Worker processes for one family: worker ``k`` runs the ``k``-th implementation of each
  case (so no process ever runs two libraries' timed calls)."""

  def __init__(self, family: str, mode: str, device: str, inputs_dir: str):
    ctx = mp.get_context("spawn")
    self.family = family
    first = Worker(ctx, family, mode, device, inputs_dir)
    self.layout = first.ask()  # [describe(case)], in the family's order
    width = max((len(c["impls"]) for c in self.layout), default=1)
    self.workers = [first] + [Worker(ctx, family, mode, device, inputs_dir)
                              for _ in range(width - 1)]
    for w in self.workers[1:]:
      if w.ask() != self.layout:
        raise RuntimeError(f"{family}: workers built different cases")

  def close(self):
    for w in self.workers:
      w.close()

  def time_case(self, index: int, *, reps: int, min_time_s: float, max_time_s: float,
                inprocess: bool) -> dict:
    """Timings of case ``index``: ``{"times": {impl: [s]}, "compile_s": {impl: s},
    "threads": {impl: {...}}, "peak_mb": {impl: MiB}, "inprocess": {impl: [s]} or None,
    "check": None or a failure message, "quiet_wait_s": mean seconds waited per call}``."""
    impls = self.layout[index]["impls"]
    by_impl = dict(zip(impls, self.workers))
    compile_s, threads = {}, {}
    for name, w in by_impl.items():
      r = w.ask("prepare", index, name)
      compile_s[name], threads[name] = r["compile_s"], r["threads"]
      wait_quiet(w.process.pid)
    times = {name: [] for name in impls}
    waited = []
    start, rounds = time.perf_counter(), 0
    while True:
      for name, w in by_impl.items():
        times[name].append(w.ask("time", index, name))
        waited.append(wait_quiet(w.process.pid))
      rounds += 1
      if common.enough_rounds(rounds, time.perf_counter() - start, reps=reps,
                              min_time_s=min_time_s, max_time_s=max_time_s):
        break
    peak = {name: w.ask("memory", index) for name, w in by_impl.items()}
    same = None
    if inprocess:
      same = self.workers[0].ask("inprocess", index, reps, min_time_s, max_time_s)
    check = self.workers[0].ask("check", index)
    return {"times": times, "compile_s": compile_s, "threads": threads, "peak_mb": peak,
            "inprocess": same, "check": check,
            "quiet_wait_s": sum(waited) / max(1, len(waited))}
