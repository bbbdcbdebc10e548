"""Shared helpers of the experiment CLIs: machine description and results files."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import platform
import shlex
import sys
from typing import Any, Mapping

import jax
import numpy as np

from jaxvision.data import make_pipeline

RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
  """What ran the experiment: CPU model and cores, accelerators, library versions."""
  cpu = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        if line.startswith("model name"):
          cpu = line.split(":", 1)[1].strip()
          break
  except OSError:
    pass
  devices = jax.devices()
  return {
      "host": platform.node(),
      "cpu": cpu,
      "cpu_cores": os.cpu_count(),
      "backend": jax.default_backend(),
      "devices": [d.device_kind for d in devices],
      "device_count": len(devices),
      "process_count": jax.process_count(),
      "python": platform.python_version(),
      "jax": jax.__version__,
  }


def command_line() -> str:
  """The command that is running, as a user would type it."""
  module = pathlib.Path(sys.argv[0]).stem
  return " ".join(["python", "-m", f"experiments.{module}"] + [shlex.quote(a)
                                                                for a in sys.argv[1:]])


def append_run(path: str | os.PathLike, run: Mapping[str, Any]) -> pathlib.Path:
  """Appends ``run`` to the ``{"runs": [...]}`` JSON file at ``path`` (created if missing)."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  data = {"runs": []}
  if path.exists():
    data = json.loads(path.read_text())
    if not isinstance(data.get("runs"), list):
      raise ValueError(f"{path} is not a {{'runs': [...]}} results file.")
  data["runs"].append(dict(run))
  tmp = path.with_suffix(".tmp")
  tmp.write_text(json.dumps(data, indent=2) + "\n")
  tmp.replace(path)
  return path


def process_local_pipeline(source, *, batch_size: int, seed: int):
  """This process's rows of each global batch: the loop's ``train_iter`` contract.

  Every process builds the same seeded pipeline of global batches (``batch_size`` times the
  process count) and keeps rows ``[p * batch_size, (p + 1) * batch_size)``, so the global
  batch is the same for any number of processes.
  """
  count, index = jax.process_count(), jax.process_index()
  ds = make_pipeline(source, batch_size=batch_size * count, seed=seed)
  if count == 1:
    return ds
  lo, hi = index * batch_size, (index + 1) * batch_size
  return ds.map(lambda batch: {k: v[lo:hi] for k, v in batch.items()})


WALL_FILE = "wall_seconds.json"


def cumulative_wall_seconds(workdir: str | os.PathLike, this_run: float) -> float:
  """Adds ``this_run`` to the wall time recorded in ``workdir`` by earlier (killed or
  resumed) invocations and stores the total: a resumed run reports its whole cost."""
  path = pathlib.Path(workdir) / WALL_FILE
  total = this_run
  if path.exists():
    total += float(json.loads(path.read_text()).get("wall_seconds", 0.0))
  if jax.process_index() == 0:
    path.write_text(json.dumps({"wall_seconds": total}))
  return total


WEIGHTS_FILE = "weights.msgpack"


def save_weights(path: str | os.PathLike, params, batch_stats) -> pathlib.Path:
  """Writes ``{"params", "batch_stats"}`` as one flax msgpack file (portable, no orbax)."""
  from flax import serialization
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  data = serialization.to_bytes({"params": jax.device_get(params),
                                 "batch_stats": jax.device_get(batch_stats)})
  tmp = path.with_suffix(".tmp")
  tmp.write_bytes(data)
  tmp.replace(path)
  return path


def load_weights(path: str | os.PathLike, params, batch_stats):
  """Reads weights written by :func:`save_weights` into the structure of ``(params,
  batch_stats)``; ``path`` is the file or a directory holding ``weights.msgpack``."""
  from flax import serialization
  path = pathlib.Path(path)
  if path.is_dir():
    path = path / WEIGHTS_FILE
  if not path.exists():
    raise FileNotFoundError(f"no weights at {str(path)!r} (expected a {WEIGHTS_FILE} file or "
                            f"a directory holding one).")
  restored = serialization.from_bytes({"params": params, "batch_stats": batch_stats},
                                      path.read_bytes())
  return restored["params"], restored["batch_stats"]


def weights_metadata(path: str | os.PathLike) -> dict[str, Any]:
  """The JSON written next to a weights file (``x.msgpack`` -> ``x.json``: how the weights
  were trained), or ``{}`` when there is none."""
  side = pathlib.Path(path).with_suffix(".json")
  return json.loads(side.read_text()) if side.exists() else {}


@dataclasses.dataclass
class EvalState:
  """What a ``Task.evaluate`` reads (``params``, ``batch_stats``), for evaluating restored
  weights without a train state."""

  params: Any
  batch_stats: Any


def load_weights_for(path: str | os.PathLike, init) -> tuple[Any, Any]:
  """Weights from :func:`save_weights` in the structure ``init(rng) -> (params,
  batch_stats)`` returns; ``init`` is only traced (``jax.eval_shape``), never run."""
  shapes = jax.eval_shape(init, jax.random.key(0))
  params, batch_stats = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)
  return load_weights(path, params, batch_stats)


def train_and_save(train_config, workdir: str | os.PathLike, task):
  """``train_and_evaluate``, then the final weights to ``<workdir>/weights.msgpack``
  (process 0). Returns ``(params, batch_stats, results)``."""
  from jaxvision.train import train_and_evaluate
  out = train_and_evaluate(train_config, workdir, task=task)
  params, batch_stats = out.state.params, out.state.batch_stats
  if jax.process_index() == 0:
    save_weights(os.path.join(workdir, WEIGHTS_FILE), params, batch_stats)
  return params, batch_stats, dict(out.results)
