"""Starting a multi-process run: ``initialize_distributed`` and ``is_main_process``.

A run over several processes (several GPU hosts, a TPU pod slice, or several processes on one
machine) calls :func:`initialize_distributed` once, first thing, on every process; then
:func:`~jaxvision.train.loop.train_and_evaluate` with the same config everywhere. Two ways to
launch:

* auto-detection (SLURM, Open MPI, Cloud TPU pod slices, ...): ``initialize_distributed()``;
* manual: ``initialize_distributed(coordinator="host0:1234", num_processes=2,
  process_id=i)`` on process ``i`` (process 0 hosts the coordinator on that port).

On CPU the cross-process collectives need gloo (``jax_cpu_collectives_implementation``);
:func:`initialize_distributed` selects it so a CLI only has to call it.
"""

from __future__ import annotations

from typing import Sequence

import jax

from jaxvision import _checks

__all__ = ["initialize_distributed", "is_main_process"]


def _is_initialized() -> bool:
  if hasattr(jax.distributed, "is_initialized"):
    return jax.distributed.is_initialized()
  from jax._src import distributed  # pylint: disable=import-outside-toplevel
  return distributed.global_state.client is not None


def _check_coordinator(coordinator: object) -> None:
  host, sep, port = coordinator.rpartition(":") if isinstance(coordinator, str) else ("", "", "")
  if not (host and sep and port.isdigit()):
    raise ValueError(f"`coordinator` must be a 'host:port' string, got {coordinator!r}.")


def _use_gloo_on_cpu() -> None:
  """Selects gloo for CPU collectives across processes, unless one is chosen already.

  JAX 0.4.3x-0.10 name the option ``jax_cpu_collectives_implementation``; older versions had
  a boolean ``jax_cpu_enable_gloo_collectives``; a version that has neither uses its default.
  """
  try:
    current = getattr(jax.config, "jax_cpu_collectives_implementation")
  except AttributeError:
    try:
      jax.config.update("jax_cpu_enable_gloo_collectives", True)
    except (AttributeError, KeyError, ValueError):
      pass
    return
  if current in (None, "none"):
    try:
      jax.config.update("jax_cpu_collectives_implementation", "gloo")
    except (AttributeError, KeyError, ValueError):  # gloo not offered: keep the default
      pass


def initialize_distributed(*, coordinator: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None,
                           local_device_ids: int | Sequence[int] | None = None) -> None:
  """Joins this process to a multi-process JAX run (``jax.distributed.initialize``).

  Call it on every process before anything else touches JAX devices. With ``coordinator``,
  ``num_processes`` and ``process_id`` all ``None`` the cluster is auto-detected (SLURM,
  Open MPI, Cloud TPU, ...); otherwise all three are required. A second call is a no-op (an
  error if it asks for a different process layout than the first).

  Args:
    coordinator: ``"host:port"`` of process 0, reachable from every process.
    num_processes: the number of processes of the run.
    process_id: this process's index, in ``[0, num_processes)``.
    local_device_ids: the local devices this process uses (default: all it sees).

  Raises:
    ValueError: incomplete or invalid arguments, or no cluster to auto-detect.
    RuntimeError: JAX's backend was already initialized (a computation or ``jax.devices()``
      ran before this call).

  >>> initialize_distributed(coordinator="127.0.0.1:1234", num_processes=2, process_id=2)
  Traceback (most recent call last):
  ...
  ValueError: `process_id` must be in [0, num_processes) = [0, 2), got 2.
  """
  manual = {"coordinator": coordinator, "num_processes": num_processes,
            "process_id": process_id}
  missing = [f"`{name}`" for name, value in manual.items() if value is None]
  if missing and len(missing) < len(manual):
    raise ValueError("`coordinator`, `num_processes` and `process_id` must be given together "
                     "for a manual launch (or all left None to auto-detect the cluster); "
                     f"missing {', '.join(missing)}.")
  if not missing:
    _check_coordinator(coordinator)
    num_processes = _checks.check_int(num_processes, "num_processes", minimum=1)
    process_id = _checks.check_int(process_id, "process_id", minimum=0)
    if process_id >= num_processes:
      raise ValueError(f"`process_id` must be in [0, num_processes) = [0, {num_processes}), "
                       f"got {process_id}.")

  if _is_initialized():
    if not missing:
      from jax._src import distributed  # pylint: disable=import-outside-toplevel
      state = distributed.global_state
      have = (getattr(state, "num_processes", None), getattr(state, "process_id", None))
      if None not in have and have != (num_processes, process_id):
        raise ValueError(f"JAX distributed is already initialized as process {have[1]} of "
                         f"{have[0]}; cannot re-initialize as `process_id` {process_id} of "
                         f"`num_processes` {num_processes}.")
    return

  _use_gloo_on_cpu()
  try:
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                               process_id=process_id, local_device_ids=local_device_ids)
  except ValueError as e:
    if not missing:
      raise
    raise ValueError("could not auto-detect a cluster (SLURM, Open MPI, Cloud TPU, ...) for "
                     "a distributed run; launch under one, or pass `coordinator`, "
                     f"`num_processes` and `process_id` ({e})") from e


def is_main_process() -> bool:
  """Whether this is process 0, the one that writes results, weights and pictures."""
  return jax.process_index() == 0
