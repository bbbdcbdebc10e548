"""The training loop shared by every experiment: ``train_and_evaluate(config, workdir, task=)``.

The loop knows no model. An experiment describes its problem as a :class:`Task` — five
pieces — and the loop does the rest (sharding, jit, checkpoints, resume, logging)::

  task = Task(
      init=lambda rng: (params, batch_stats),           # jit-traceable; batch_stats may be {}
      loss_fn=loss_fn,                                  # see below
      optimizer=optax.adam(1e-3),
      train_iter=lambda seed, batch_size: iterator,     # this process's batches
      evaluate=lambda state: {"accuracy": ...},         # optional
  )
  out = train_and_evaluate(TrainConfig(num_steps=1000, batch_size=256), workdir, task=task)
  out.state, out.results                                # final TrainState, the results dict

``loss_fn(params, batch_stats, batch, rng) -> (loss, (metrics, new_batch_stats))``:

* ``batch`` is the *global* batch (a pytree of arrays of leading dimension
  ``config.batch_size``, sharded over the devices); write the loss as for one device — XLA
  inserts the cross-device reductions, so means and BatchNorm statistics are over the whole
  global batch and the result does not depend on the number of devices;
* ``rng`` is a typed key, ``fold_in(run_key, step)``; use it for dropout and augmentation;
* ``metrics`` is a dict of arrays to log (averaged over each ``log_every`` window),
  ``new_batch_stats`` the updated batch statistics (return the input ``{}`` when there are
  none).

``train_iter(seed, batch_size)`` returns a grain ``DatasetIterator`` (or an ``IterDataset``,
on which ``iter`` is called) yielding *this process's* batches of ``batch_size =
config.batch_size // jax.process_count()`` rows: process ``p`` yields rows ``[p * batch_size,
(p + 1) * batch_size)`` of each global batch (grain's sharding options do this). It must be a
deterministic function of ``seed`` and have ``get_state()``/``set_state()``: its position is
checkpointed with the train state.

What the loop guarantees:

* Data parallel over all devices of all processes (:mod:`jaxvision.train.sharding`): one
  ``("data",)`` mesh, batch split over it, state replicated,
  ``jit(step, in_shardings, out_shardings, donate_argnums=0)``.
* Exact resumption: checkpoints (every ``checkpoint_every`` steps and at the end, the last
  ``keep_checkpoints`` kept, under ``<workdir>/checkpoints``) hold the state *and* the
  iterator position, and the loop restores the latest automatically. A run killed at any
  point — mid-epoch or mid-save — and restarted ends with exactly the parameters of an
  uninterrupted run.
* Logging: a tqdm bar (``progress``; by default only on a terminal), one stdout line and one
  JSON line in ``<workdir>/metrics.jsonl`` per ``log_every`` steps::

    {"step": 100, "split": "train", "loss": 0.52, "metrics": {...}, "steps_per_sec": 41.3}
    {"step": 100, "split": "eval", "metrics": {...}}

  On resume, lines after the restored step are dropped, so the file reads as one run.
* Evaluation: ``task.evaluate(state)`` every ``eval_every`` steps and at the end.
* ``<workdir>/results.json``: the config, final step, last train metrics, final eval metrics,
  throughput, device and process counts. Experiments add their own fields to
  ``out.results`` and call :func:`write_results` again.

Multi-host: call :func:`~jaxvision.train.distributed.initialize_distributed` first, then
call ``train_and_evaluate`` on every process with the same config; only process 0 writes logs
and ``results.json``, and every process writes its own iterator position.

One run per workdir: the run holds ``<workdir>/.lock`` (:class:`~jaxvision.train.lock.
WorkdirLock`, process 0 only) from start to end; a second run started on the same workdir
raises :class:`~jaxvision.train.lock.WorkdirLockedError` before touching it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import sys
import time
from typing import Any, Callable, Mapping

import jax
import numpy as np
import optax
from jax.sharding import Mesh

from jaxvision import _checks
from jaxvision import compat
from jaxvision.train import sharding as sharding_lib
from jaxvision.train.checkpoint import Checkpointer
from jaxvision.train.lock import WorkdirLock
from jaxvision.train.state import TrainState, step_rng

__all__ = ["TrainConfig", "Task", "TrainResult", "init_train_state", "make_train_step",
           "train_and_evaluate", "write_results"]

PyTree = Any
LossFn = Callable[[PyTree, PyTree, PyTree, jax.Array],
                  tuple[jax.Array, tuple[Mapping[str, jax.Array], PyTree]]]

METRICS_FILE = "metrics.jsonl"
RESULTS_FILE = "results.json"
CHECKPOINT_DIR = "checkpoints"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """The generic knobs of a run; experiments keep their own config for the rest.

  Attributes:
    num_steps: total optimizer steps (a resumed run stops at the same total).
    batch_size: global batch size, a multiple of the device count.
    seed: seeds the parameters, the per-step keys and (through ``Task.train_iter``) the data.
    checkpoint_every: save every this many steps and at the end; 0 disables checkpoints.
    keep_checkpoints: how many recent checkpoints to keep.
    log_every: log train metrics every this many steps (and at the last step).
    eval_every: run ``Task.evaluate`` every this many steps; 0 means only at the end.
    progress: show a tqdm bar; ``None`` shows it only when stderr is a terminal.
  """

  num_steps: int
  batch_size: int
  seed: int = 0
  checkpoint_every: int = 1000
  keep_checkpoints: int = 3
  log_every: int = 100
  eval_every: int = 0
  progress: bool | None = None

  def __post_init__(self):
    for name, minimum in (("num_steps", 1), ("batch_size", 1), ("seed", 0),
                          ("checkpoint_every", 0), ("keep_checkpoints", 1), ("log_every", 1),
                          ("eval_every", 0)):
      _checks.check_int(getattr(self, name), name, minimum=minimum)
    if self.progress is not None and not isinstance(self.progress, bool):
      raise TypeError(f"`progress` must be a bool or None, got {self.progress!r}.")


@dataclasses.dataclass(frozen=True)
class Task:
  """The model-specific pieces of a run (see the module docstring for the contracts).

  Attributes:
    init: ``init(rng) -> (params, batch_stats)``, jit-traceable; ``rng`` is a typed key.
    loss_fn: ``loss_fn(params, batch_stats, batch, rng) -> (loss, (metrics, batch_stats))``.
    optimizer: an optax ``GradientTransformation``.
    train_iter: ``train_iter(seed, batch_size) -> iterator`` of this process's batches.
    evaluate: optional ``evaluate(state) -> dict`` of floats.
  """

  init: Callable[[jax.Array], tuple[PyTree, PyTree]]
  loss_fn: LossFn
  optimizer: optax.GradientTransformation
  train_iter: Callable[[int, int], Any]
  evaluate: Callable[[TrainState], Mapping[str, Any]] | None = None

  def __post_init__(self):
    for name in ("init", "loss_fn", "train_iter"):
      if not callable(getattr(self, name)):
        raise TypeError(f"`{name}` must be callable, got {getattr(self, name)!r}.")
    if self.evaluate is not None and not callable(self.evaluate):
      raise TypeError(f"`evaluate` must be callable or None, got {self.evaluate!r}.")
    if not (hasattr(self.optimizer, "init") and hasattr(self.optimizer, "update")):
      raise TypeError("`optimizer` must be an optax GradientTransformation, got "
                      f"{type(self.optimizer).__name__}.")


@dataclasses.dataclass
class TrainResult:
  """What :func:`train_and_evaluate` returns: the final state and the results dict."""

  state: TrainState
  results: dict[str, Any]


def init_train_state(init: Callable[[jax.Array], tuple[PyTree, PyTree]],
                     tx: optax.GradientTransformation, *, seed: int, mesh: Mesh) -> TrainState:
  """Initializes a :class:`TrainState` replicated on ``mesh``, under ``jit``.

  ``key(seed)`` is split in two: one key for ``init``, one kept as the state's base key.

  Args:
    init: ``init(rng) -> (params, batch_stats)``.
    tx: the optax optimizer.
    seed: the run's seed.
    mesh: the data mesh.

  Returns:
    The step-0 state, every leaf replicated (``P()``).

  >>> import optax, jax.numpy as jnp
  >>> s = init_train_state(lambda rng: ({"w": jnp.zeros(3)}, {}), optax.sgd(0.1), seed=0,
  ...                      mesh=sharding_lib.data_mesh())
  >>> int(s.step), s.params["w"].sharding.is_fully_replicated
  (0, True)
  """
  key_data = np.asarray(jax.random.key_data(jax.random.key(seed)))  # host: any process count
  return _call_cached(_jitted_init, init, tx, mesh)(key_data)


def _call_cached(factory, *args):
  """``factory(*args)`` memoized, so that repeated runs reuse jit's compilation cache."""
  try:
    return factory(*args)
  except TypeError:  # unhashable arguments: build a fresh one
    return factory.__wrapped__(*args)


@functools.lru_cache(maxsize=16)
def _jitted_init(init, tx, mesh):
  def create(key_data) -> TrainState:
    init_key, train_key = jax.random.split(jax.random.wrap_key_data(key_data))
    params, batch_stats = init(init_key)
    return TrainState.create(params=params, batch_stats=batch_stats, tx=tx, rng=train_key)

  return jax.jit(create, out_shardings=sharding_lib.replicated_sharding(mesh))


def make_train_step(loss_fn: LossFn, *, mesh: Mesh
                    ) -> Callable[[TrainState, PyTree], tuple[TrainState, dict[str, jax.Array]]]:
  """The jitted, data-parallel train step ``(state, batch) -> (state, metrics)``.

  The step computes ``loss_fn``'s gradient on the global batch with key
  :func:`~jaxvision.train.state.step_rng`, applies it, and returns ``metrics`` with
  ``"loss"`` added. The state is replicated and donated; the batch is sharded on ``"data"``.

  Args:
    loss_fn: see the module docstring.
    mesh: the data mesh.

  Returns:
    ``jax.jit(step, in_shardings=(P(), P("data")), out_shardings=(P(), P()),
    donate_argnums=0)``.
  """
  return _call_cached(_jitted_step, loss_fn, mesh)


@functools.lru_cache(maxsize=16)
def _jitted_step(loss_fn, mesh):
  def step(state: TrainState, batch: PyTree):
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    (loss, (metrics, batch_stats)), grads = grad_fn(state.params, state.batch_stats, batch,
                                                    step_rng(state))
    new_state = state.apply_gradients(grads, batch_stats=batch_stats)
    return new_state, {**metrics, "loss": loss}

  replicated = sharding_lib.replicated_sharding(mesh)
  # jaxlib 0.10.x's XLA:CPU can segfault on some training graphs: see jaxvision.compat.
  options = compat.compiler_options(mesh.devices.flat[0].platform)
  return jax.jit(step, in_shardings=(replicated, sharding_lib.batch_sharding(mesh)),
                 out_shardings=(replicated, replicated), donate_argnums=0,
                 compiler_options=options)


def write_results(workdir: str | os.PathLike, results: Mapping[str, Any]) -> str:
  """Writes ``results`` as ``<workdir>/results.json`` (process 0 only); returns the path."""
  path = os.path.join(os.fspath(workdir), RESULTS_FILE)
  if jax.process_index() == 0:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
      json.dump(jsonable(results), f, indent=2, sort_keys=True)
      f.write("\n")
    os.replace(tmp, path)
  return path


def jsonable(x: Any) -> Any:
  """``x`` with arrays as (nested) lists or Python scalars and mapping keys as strings."""
  if isinstance(x, Mapping):
    return {str(k): jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [jsonable(v) for v in x]
  if isinstance(x, (np.ndarray, np.generic, jax.Array)):
    x = np.asarray(x)
    return x.item() if x.ndim == 0 else x.tolist()
  return x


def _mean_metrics(window: list[dict[str, Any]]) -> dict[str, Any]:
  host = jax.device_get(window)
  return {k: jsonable(np.mean(np.stack([np.asarray(m[k]) for m in host]), axis=0))
          for k in host[0]}


def _fmt(value: Any) -> str:
  return f"{value:.6g}" if isinstance(value, float) else str(value)


class _Logger:
  """stdout + JSONL metrics, written by process 0 only."""

  def __init__(self, workdir: str, *, start_step: int, bar: Any):
    self.path = os.path.join(workdir, METRICS_FILE)
    self.enabled = jax.process_index() == 0
    self.bar = bar
    self.logged: set[tuple[str, int]] = set()
    if self.enabled:
      self._truncate_after(start_step)

  def _truncate_after(self, step: int) -> None:
    """Drops lines logged after ``step`` by an interrupted run (they will be redone)."""
    if not os.path.exists(self.path):
      return
    with open(self.path) as f:
      records = [json.loads(line) for line in f if line.strip()]
    records = [r for r in records if r["step"] <= step]
    self.logged = {(r["split"], r["step"]) for r in records}
    with open(self.path, "w") as f:
      f.writelines(json.dumps(r, sort_keys=True) + "\n" for r in records)

  def write(self, record: dict[str, Any]) -> None:
    if not self.enabled:
      return
    if (record["split"], record["step"]) not in self.logged:  # e.g. the final eval, redone
      with open(self.path, "a") as f:
        f.write(json.dumps(jsonable(record), sort_keys=True) + "\n")
    flat = {"loss": record["loss"]} if "loss" in record else {}
    flat.update(record["metrics"])
    text = f"[{record['split']}] step {record['step']}: " + "  ".join(
        f"{k} {_fmt(v)}" for k, v in flat.items())
    if "steps_per_sec" in record:
      text += f"  ({record['steps_per_sec']:.3g} steps/s)"
    if self.bar is not None and not self.bar.disable:
      self.bar.write(text)
    else:
      print(text, flush=True)


def _make_bar(config: TrainConfig, start_step: int):
  import tqdm  # pylint: disable=import-outside-toplevel
  show = config.progress if config.progress is not None else sys.stderr.isatty()
  return tqdm.tqdm(total=config.num_steps, initial=start_step, dynamic_ncols=True,
                   disable=not show or jax.process_index() != 0, desc="train")


def _batch_size(batch: PyTree) -> int:
  leaves = jax.tree.leaves(batch)
  if not leaves or np.ndim(leaves[0]) == 0:
    raise ValueError("batches from `train_iter` must be pytrees of arrays with a leading "
                     "batch dimension.")
  return int(np.shape(leaves[0])[0])


def train_and_evaluate(config: TrainConfig, workdir: str | os.PathLike, *, task: Task,
                       mesh: Mesh | None = None) -> TrainResult:
  """Trains ``task`` for ``config.num_steps`` steps in ``workdir``, resuming if possible.

  Args:
    config: the :class:`TrainConfig`.
    workdir: directory for checkpoints, ``metrics.jsonl`` and ``results.json`` (created).
    task: the :class:`Task`.
    mesh: the device mesh; ``None`` means :func:`~jaxvision.train.sharding.data_mesh` over
      all devices.

  Returns:
    A :class:`TrainResult`: the final state (replicated on the mesh) and the results dict
    also written to ``results.json``.

  Raises:
    WorkdirLockedError: another run holds ``workdir`` (:class:`~jaxvision.train.lock.
      WorkdirLock`, held — by process 0 — for the whole run).
  """
  if not isinstance(config, TrainConfig):
    raise TypeError(f"`config` must be a TrainConfig, got {type(config).__name__}.")
  if not isinstance(task, Task):
    raise TypeError(f"`task` must be a Task, got {type(task).__name__}.")
  mesh = sharding_lib.data_mesh() if mesh is None else mesh
  num_processes = jax.process_count()
  if config.batch_size % mesh.size or config.batch_size % num_processes:
    raise ValueError(f"`batch_size` ({config.batch_size}) must be a multiple of the number of "
                     f"devices ({mesh.size}) and of processes ({num_processes}).")
  local_batch_size = config.batch_size // num_processes
  workdir = os.path.abspath(os.fspath(workdir))
  os.makedirs(workdir, exist_ok=True)
  # Two runs on one workdir would interleave checkpoints and logs: the second one refuses.
  with WorkdirLock(workdir):
    return _train_and_evaluate_locked(config, workdir, task=task, mesh=mesh,
                                      local_batch_size=local_batch_size)


def _train_and_evaluate_locked(config: TrainConfig, workdir: str, *, task: Task, mesh: Mesh,
                               local_batch_size: int) -> TrainResult:
  """The body of :func:`train_and_evaluate`, run while holding the workdir lock."""
  num_processes = jax.process_count()
  state = init_train_state(task.init, task.optimizer, seed=config.seed, mesh=mesh)
  data_iter = task.train_iter(config.seed, local_batch_size)
  if not hasattr(data_iter, "__next__"):
    data_iter = iter(data_iter)

  ckpt = None
  start_step = 0
  if config.checkpoint_every:
    if not (hasattr(data_iter, "get_state") and hasattr(data_iter, "set_state")):
      raise TypeError("`train_iter` must return an iterator with get_state()/set_state() "
                      f"(a grain DatasetIterator) to be checkpointed, got "
                      f"{type(data_iter).__name__}.")
    ckpt = Checkpointer(os.path.join(workdir, CHECKPOINT_DIR), save_every=config.checkpoint_every,
                        keep=config.keep_checkpoints)
    if ckpt.latest_step() is not None:
      # Falls back to the newest step that restores; damaged newer steps are moved aside
      # (to `<step>.damaged-<time>`) with one warning each, so saves after it work.
      try:
        state, data_iter = ckpt.restore(state, data_iter)
      except BaseException:
        ckpt.close()
        raise
      start_step = int(jax.device_get(state.step))  # == ckpt.restored_step
      if jax.process_index() == 0:
        print(f"Resumed from step {start_step} ({os.path.join(workdir, CHECKPOINT_DIR)}).",
              flush=True)

  train_step = make_train_step(task.loss_fn, mesh=mesh)
  bar = _make_bar(config, start_step)
  logger = _Logger(workdir, start_step=start_step, bar=bar)
  last_train: dict[str, Any] = {}
  last_eval: dict[str, Any] = {}
  evaluated_at = None

  def evaluate(step: int) -> None:
    nonlocal last_eval, evaluated_at
    last_eval = jsonable(dict(task.evaluate(state)))
    evaluated_at = step
    logger.write({"step": step, "split": "eval", "metrics": last_eval})

  t_start = t_window = time.perf_counter()
  window: list[dict[str, jax.Array]] = []
  step = start_step
  try:
    while step < config.num_steps:
      batch = next(data_iter)
      if _batch_size(batch) != local_batch_size:
        raise ValueError(f"`train_iter` must yield batches of {local_batch_size} rows "
                         f"(batch_size // process_count), got {_batch_size(batch)}.")
      state, metrics = train_step(state, sharding_lib.shard_batch(batch, mesh))
      step += 1
      window.append(metrics)
      bar.update(1)
      if step % config.log_every == 0 or step == config.num_steps:
        means = _mean_metrics(window)
        now = time.perf_counter()
        last_train = {"loss": means.pop("loss"), "metrics": means,
                      "steps_per_sec": len(window) / max(now - t_window, 1e-9)}
        logger.write({"step": step, "split": "train", **last_train})
        bar.set_postfix(loss=f"{last_train['loss']:.4g}")
        window, t_window = [], now
      if task.evaluate is not None and config.eval_every and step % config.eval_every == 0:
        evaluate(step)
      if ckpt is not None:
        ckpt.save(step, state, data_iter, force=step == config.num_steps)
    if task.evaluate is not None and evaluated_at != step:
      evaluate(step)
    if ckpt is not None:
      ckpt.save(step, state, data_iter, force=True)  # no-op if this step is saved already
  finally:
    bar.close()
    if ckpt is not None:
      ckpt.close()

  elapsed = time.perf_counter() - t_start
  results = {
      "config": dataclasses.asdict(config),
      "final_step": step,
      "resumed_from_step": start_step or None,
      "train": last_train,
      "eval": last_eval,
      "steps_per_sec": (step - start_step) / elapsed if step > start_step else None,
      "wall_time_s": elapsed,
      "num_devices": mesh.size,
      "num_processes": num_processes,
  }
  write_results(workdir, results)
  return TrainResult(state=state, results=results)
