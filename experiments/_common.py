"""Shared helpers of the experiment CLIs: machine description and results files."""

from __future__ import annotations

import json
import os
import pathlib
import platform
import shlex
import sys
from typing import Any, Mapping

import jax

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
