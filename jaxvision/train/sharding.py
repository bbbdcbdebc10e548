"""Data parallelism over every device of every process, with ``jax.make_mesh`` and ``jit``.

One mesh axis, ``"data"``, spans all devices (``jax.devices()``, every process's). The batch is
split along its leading dimension over that axis (``NamedSharding(mesh, P("data"))``); the
train state is replicated (``P()``). A step is ``jax.jit(step, in_shardings=...,
out_shardings=..., donate_argnums=0)`` — XLA inserts the gradient all-reduce — so the same
code runs on one CPU, on 8 simulated CPU devices, on one or many GPUs, and on many hosts.

Multi-host. After ``jax.distributed.initialize(...)`` each process loads only its own slice
of the global batch (``batch_size // jax.process_count()`` rows, in process order) and
:func:`shard_batch` assembles the global array with ``jax.make_array_from_process_local_data``;
on a single process the local batch *is* the global batch and the same call simply places it.

The mesh axis type is ``Auto`` (GSPMD propagation), set explicitly: recent JAX defaults
``make_mesh`` to ``Explicit`` axes, under which some ordinary ops in a user's loss would
need sharding annotations.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

__all__ = ["DATA_AXIS", "data_mesh", "replicated_sharding", "batch_sharding", "shard_batch",
           "replicate"]

DATA_AXIS = "data"

PyTree = Any


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A one-axis ``("data",)`` mesh over ``devices`` (default: all devices of all processes).

  Args:
    devices: the devices to use; ``None`` means ``jax.devices()``.

  Returns:
    A ``jax.sharding.Mesh`` with one ``Auto`` axis named ``"data"``.

  >>> data_mesh().axis_names
  ('data',)
  """
  devices = list(jax.devices() if devices is None else devices)
  if not devices:
    raise ValueError("`devices` must not be empty.")
  return jax.make_mesh((len(devices),), (DATA_AXIS,),
                       axis_types=(jax.sharding.AxisType.Auto,), devices=devices)


def replicated_sharding(mesh: Mesh) -> NamedSharding:
  """``NamedSharding(mesh, P())``: a full copy on every device (params, optimizer state)."""
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """``NamedSharding(mesh, P("data"))``: leading (batch) dimension split over the devices."""
  return NamedSharding(mesh, P(DATA_AXIS))


def shard_batch(local_batch: PyTree, mesh: Mesh) -> PyTree:
  """Assembles this process's slice of a batch into global arrays sharded over ``"data"``.

  Every leaf of ``local_batch`` is this process's ``[local_batch_size, ...]`` rows; process
  ``p`` holds rows ``[p * local_batch_size, (p + 1) * local_batch_size)`` of the global batch.

  Args:
    local_batch: a pytree of arrays (NumPy or JAX) with the same leading dimension.
    mesh: the data mesh (:func:`data_mesh`).

  Returns:
    The same pytree of global ``jax.Array`` s of leading dimension
    ``local_batch_size * jax.process_count()``, sharded with :func:`batch_sharding`.

  >>> x = shard_batch({"x": np.zeros((4, 3), np.float32)}, data_mesh())
  >>> x["x"].shape, x["x"].sharding == batch_sharding(data_mesh())
  ((4, 3), True)
  """
  sharding = batch_sharding(mesh)
  leaves = jax.tree.leaves(local_batch)
  if not leaves:
    raise ValueError("`local_batch` must contain at least one array.")
  local_devices = sum(d.process_index == jax.process_index() for d in mesh.devices.flat)
  sizes = {np.shape(x)[0] if np.ndim(x) else None for x in leaves}
  if len(sizes) != 1 or None in sizes:
    raise ValueError("every array of `local_batch` must have the same leading (batch) "
                     f"dimension, got leading sizes {sorted(map(str, sizes))}.")
  (size,) = sizes
  if local_devices == 0 or size % local_devices:
    raise ValueError(f"the local batch size ({size}) must be a multiple of this process's "
                     f"number of devices in the mesh ({local_devices}).")
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), local_batch)


def replicate(tree: PyTree, mesh: Mesh) -> PyTree:
  """Puts every leaf of ``tree`` on every device of ``mesh`` (identical on all processes).

  Args:
    tree: a pytree of arrays, the same values on every process.
    mesh: the mesh.

  Returns:
    The pytree with leaves replicated (:func:`replicated_sharding`).
  """
  return jax.jit(lambda t: t, out_shardings=replicated_sharding(mesh))(tree)
