"""Checkpoints of the train state *and* the data iterator, with orbax, resumable exactly.

A checkpoint at step ``t`` is one orbax step directory ``<dir>/<t>/`` with two items:

* ``state``: the :class:`~jaxvision.train.state.TrainState` pytree (params, batch stats,
  optimizer state, step, PRNG key), saved with ``ocp.args.StandardSave`` — asynchronously:
  the arrays are copied off the devices before :meth:`Checkpointer.save` returns and written
  in a background thread while training continues;
* ``data_iter``: the grain iterator's ``get_state()`` (indices only, a few hundred bytes),
  saved with grain's orbax handler (``grain.checkpoint.CheckpointSave``) — one JSON file per
  process, so on many hosts every process restores its own position.

Both items are restored together: with the state restored into the shardings of a target
state (``ocp.args.StandardRestore(abstract)``, the abstract arrays carrying the target's
``NamedSharding``) and the iterator's ``set_state`` called with the saved position, a run
resumed from step ``t`` sees exactly the batches and keys the uninterrupted run saw after
step ``t``.

Atomicity. orbax writes a step into ``<t>.orbax-checkpoint-tmp-*`` and renames it once
complete, so a process killed during a save leaves that step uncommitted: ``latest_step()``
is the last *committed* step, and leftover temporary directories are removed when the next
:class:`Checkpointer` opens the directory.
"""

from __future__ import annotations

import os
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp

__all__ = ["Checkpointer", "abstract_like"]

PyTree = Any


def abstract_like(tree: PyTree) -> PyTree:
  """``jax.ShapeDtypeStruct`` s (with the arrays' shardings) of a pytree of arrays.

  The restore target for ``ocp.args.StandardRestore``: orbax restores each array straight
  into the sharding recorded here.
  """
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)),
      tree)


class Checkpointer:
  """A ``CheckpointManager`` for (train state, data iterator) pairs.

  Args:
    directory: where step directories are written (created if missing).
    save_every: :meth:`save` writes only at steps that are multiples of this (and whenever
      ``force=True``).
    keep: how many of the most recent checkpoints to keep; older ones are deleted.
    async_save: write in a background thread (default) or block in :meth:`save`.

  Use it as a context manager (or call :meth:`close`) so pending writes finish.

  >>> import tempfile, numpy as np, optax
  >>> from jaxvision.train.state import TrainState
  >>> it = iter(grain.MapDataset.source(np.arange(8)).batch(2).to_iter_dataset())
  >>> s = TrainState.create(params={"w": jax.numpy.ones(2)}, tx=optax.sgd(1.0),
  ...                       rng=jax.random.key(0))
  >>> with Checkpointer(tempfile.mkdtemp(), save_every=1, keep=2) as ckpt:
  ...   _ = next(it); ckpt.save(1, s, it)
  ...   restored, it2 = ckpt.restore(s, iter(
  ...       grain.MapDataset.source(np.arange(8)).batch(2).to_iter_dataset()))
  True
  >>> ckpt.all_steps(), next(it2).tolist()
  ([1], [2, 3])
  """

  def __init__(self, directory: str | os.PathLike, *, save_every: int, keep: int,
               async_save: bool = True):
    if isinstance(save_every, bool) or not isinstance(save_every, int) or save_every < 1:
      raise ValueError(f"`save_every` must be an int >= 1, got {save_every!r}.")
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
      raise ValueError(f"`keep` must be an int >= 1, got {keep!r}.")
    self.directory = os.path.abspath(os.fspath(directory))
    self.save_every = save_every
    # The interval is applied here (orbax's own policy also saves the very first step).
    options = ocp.CheckpointManagerOptions(
        save_interval_steps=1, max_to_keep=keep, create=True,
        cleanup_tmp_directories=True, enable_async_checkpointing=async_save)
    self._manager = ocp.CheckpointManager(self.directory, options=options,
                                          item_names=("state", "data_iter"))

  def latest_step(self) -> int | None:
    """The last committed step, or ``None`` when there is none."""
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    """The committed steps kept on disk, ascending."""
    return sorted(self._manager.all_steps())

  def save(self, step: int, state: PyTree, data_iter: Any, *, force: bool = False) -> bool:
    """Saves ``state`` and the iterator position at ``step`` if due (or if ``force``).

    Starts an asynchronous write (after finishing any previous one) and returns once the
    arrays are off the devices, so ``state`` may be donated right after. The iterator's
    position is read now: it must have produced exactly the batches ``state`` was trained on.

    Args:
      step: the step number (``int(state.step)`` in the loop).
      state: the train state pytree.
      data_iter: a grain ``DatasetIterator`` (or ``DataLoaderIterator``).
      force: save even if ``step`` is not a multiple of ``save_every``.

    Returns:
      Whether a save was started.
    """
    if not (force or step % self.save_every == 0) or step in self._manager.all_steps():
      return False
    args = ocp.args.Composite(state=ocp.args.StandardSave(state),
                              data_iter=grain.checkpoint.CheckpointSave(data_iter))
    return self._manager.save(step, args=args, force=True)

  def restore(self, target: PyTree, data_iter: Any, *, step: int | None = None
              ) -> tuple[PyTree, Any]:
    """Restores a state like ``target`` and moves ``data_iter`` to the saved position.

    Args:
      target: a state pytree (concrete or abstract) whose structure, shapes, dtypes and
        shardings the restored state takes.
      data_iter: a fresh iterator of the same pipeline; its state is set in place.
      step: which step; ``None`` means :meth:`latest_step`.

    Returns:
      ``(state, data_iter)``.
    """
    if step is None:
      step = self.latest_step()
      if step is None:
        raise FileNotFoundError(f"no committed checkpoint in {self.directory}.")
    args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract_like(target)),
                              data_iter=grain.checkpoint.CheckpointRestore(data_iter))
    restored = self._manager.restore(step, args=args)
    return restored["state"], restored["data_iter"]

  def wait_until_finished(self) -> None:
    """Blocks until pending asynchronous writes are committed."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    """Finishes pending writes and releases the manager."""
    self._manager.wait_until_finished()
    self._manager.close()

  def __enter__(self) -> "Checkpointer":
    return self

  def __exit__(self, *exc) -> None:
    self.close()
