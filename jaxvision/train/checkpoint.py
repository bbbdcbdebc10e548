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

Damaged checkpoints. A committed step can still be damaged later (a truncated or overwritten
array file, a deleted metadata file or item directory). :meth:`Checkpointer.restore` without
``step`` therefore tries the committed steps newest first: a step that fails to restore is
reported by one ``logging`` warning (its directory and the error type), and the next older
step is tried. Once an older step restores, each newer step that failed is *moved aside* to
``<dir>/<step>.damaged-<UTC time>`` (orbax ignores that name: it is neither listed as a step
nor removed by the retention policy), so the run resumes from the restored step and saves the
newer steps again without colliding with the damaged directories; they are kept for
inspection and are the user's to delete. When no step restores, nothing is moved (the cause
may be a target that does not fit any checkpoint, not damage) and a one-line
``RuntimeError`` names the directory and the steps tried.
"""

from __future__ import annotations

import inspect
import logging
import os
import sys
import time
from typing import Any

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp

__all__ = ["Checkpointer", "abstract_like"]

PyTree = Any

_log = logging.getLogger(__name__)


def _is_failed_restore_noise(unraisable) -> bool:
  """Whether an unraisable exception is left over from a failed orbax restore.

  When one array of a restore fails, orbax's ``asyncio.gather`` raises at once and the event
  loop orbax made for the restore is closed while the reads of the other arrays are pending.
  Two kinds of report follow, through ``sys.unraisablehook``, one per pending array (none to
  hundreds, depending on timing), all after the restore has already failed with its first
  error:

  * as each tensorstore read finishes, its callback thread calls ``call_soon_threadsafe`` on
    the closed loop: ``RuntimeError('Event loop is closed')`` without an object;
  * when a pending orbax coroutine is garbage collected, ``close()`` throws ``GeneratorExit``
    into it and orbax's ``except BaseException`` turns that into another exception:
    "Exception ignored in: <coroutine object ...>".
  """
  exc, obj = unraisable.exc_value, unraisable.object
  if obj is None and isinstance(exc, RuntimeError) and str(exc) == "Event loop is closed":
    tb = unraisable.exc_traceback
    while tb is not None:
      if tb.tb_frame.f_code.co_name == "call_soon_threadsafe":
        return True
      tb = tb.tb_next
    return False
  return (inspect.iscoroutine(obj) and "orbax" in obj.cr_code.co_filename
          and isinstance(getattr(exc, "__cause__", None) or getattr(exc, "__context__", None),
                         GeneratorExit))


class _NeverRetrievedFilter(logging.Filter):
  """Drops asyncio's "Future exception was never retrieved" for reads of checkpoints here.

  The futures of the arrays still being read when a restore failed (see
  :func:`_is_failed_restore_noise`) hold errors nobody awaits any more; asyncio logs each one,
  with the full tensorstore message, when it is garbage collected.
  """

  def __init__(self):
    super().__init__()
    self.directories: set[str] = set()

  def filter(self, record: logging.LogRecord) -> bool:
    if not (record.exc_info and str(record.msg).startswith(
        ("Future exception was never retrieved", "Task exception was never retrieved"))):
      return True
    text = str(record.exc_info[1])
    return not any(d in text for d in self.directories)


_never_retrieved_filter = _NeverRetrievedFilter()


def _silence_failed_restore_noise(directory: str) -> None:
  """Installs (once per process) the two filters above; they drop nothing else."""
  if not getattr(sys.unraisablehook, "_jaxvision_restore_noise_filter", False):
    previous = sys.unraisablehook

    def hook(unraisable):
      if not _is_failed_restore_noise(unraisable):
        previous(unraisable)

    hook._jaxvision_restore_noise_filter = True
    sys.unraisablehook = hook
  asyncio_logger = logging.getLogger("asyncio")
  if _never_retrieved_filter not in asyncio_logger.filters:
    asyncio_logger.addFilter(_never_retrieved_filter)
  _never_retrieved_filter.directories.add(directory + os.sep)


def _summary(error: BaseException, limit: int = 120) -> str:
  """``Type: first line of the message`` (cut to ``limit`` characters)."""
  lines = str(error).strip().splitlines()
  text = lines[0] if lines else ""
  if len(text) > limit:
    text = text[:limit - 3] + "..."
  return f"{type(error).__name__}: {text}" if text else type(error).__name__


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
    self.restored_step: int | None = None  # the step the last restore() returned

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

  def restore(self, target: PyTree, data_iter: Any, *, step: int | None = None,
              set_aside_damaged: bool = True) -> tuple[PyTree, Any]:
    """Restores a state like ``target`` and moves ``data_iter`` to the saved position.

    Without ``step``, the committed steps are tried newest first (see the module docstring):
    each step that fails is reported by one warning on this module's logger, and the newest
    step that restores is returned (:attr:`restored_step`). The newer steps that failed are
    then moved aside to ``<step>.damaged-<time>`` so that later saves of those step numbers
    work.

    Args:
      target: a state pytree (concrete or abstract) whose structure, shapes, dtypes and
        shardings the restored state takes.
      data_iter: a fresh iterator of the same pipeline; its state is set in place.
      step: restore exactly this step (its error is raised as is); ``None`` means the newest
        step that restores.
      set_aside_damaged: move the damaged newer steps aside after a fallback (default);
        ``False`` leaves the directory untouched (e.g. when reading another run's
        checkpoints).

    Returns:
      ``(state, data_iter)``.

    Raises:
      FileNotFoundError: there is no committed step.
      RuntimeError: no committed step restores (nothing is moved then).
    """
    _silence_failed_restore_noise(self.directory)
    if step is not None:
      state, data_iter = self._restore_step(step, target, data_iter)
      self.restored_step = step
      return state, data_iter
    steps = sorted(self._manager.all_steps(), reverse=True)
    if not steps:
      raise FileNotFoundError(f"no committed checkpoint in {self.directory}.")
    restored, restored_step, failed = None, None, []
    for candidate in steps:
      try:
        restored = self._restore_step(candidate, target, data_iter)
      except Exception as e:  # pylint: disable=broad-exception-caught
        _log.debug("restoring %s failed", self._step_dir(candidate), exc_info=True)
        failed.append((candidate, e))
        continue
      restored_step = candidate
      break
    if jax.process_count() > 1:
      restored_step = self._agree_across_processes(restored_step)
    if restored is None:
      for candidate, e in failed:
        _log.warning("checkpoint %s cannot be restored (%s); left in place.",
                     self._step_dir(candidate), _summary(e))
      tried = ", ".join(f"{s} ({type(e).__name__})" for s, e in failed)
      raise RuntimeError(f"no checkpoint in {self.directory} can be restored into this "
                         f"state: tried steps {tried}; see the warnings above.")
    for candidate, e in failed:
      where = ""
      if set_aside_damaged:
        where = f"; moved to {self._set_aside(candidate)}"
      _log.warning("checkpoint %s cannot be restored (%s); resuming from step %d%s.",
                   self._step_dir(candidate), _summary(e), restored_step, where)
    if failed and set_aside_damaged:
      if jax.process_count() > 1:
        ocp.multihost.sync_global_processes("jaxvision_checkpoint_set_aside")
      self._manager.reload()
    self.restored_step = restored_step
    return restored

  def _step_dir(self, step: int) -> str:
    return os.path.join(self.directory, str(step))

  def _restore_step(self, step: int, target: PyTree, data_iter: Any) -> tuple[PyTree, Any]:
    args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract_like(target)),
                              data_iter=grain.checkpoint.CheckpointRestore(data_iter))
    restored = self._manager.restore(step, args=args)
    return restored["state"], restored["data_iter"]

  def _set_aside(self, step: int) -> str:
    """Renames the step directory to ``<step>.damaged-<UTC time>`` (on process 0 only)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    new = os.path.join(self.directory, f"{step}.damaged-{stamp}")
    if jax.process_index() == 0:
      suffix = 1
      while os.path.exists(new):
        suffix += 1
        new = os.path.join(self.directory, f"{step}.damaged-{stamp}-{suffix}")
      os.rename(self._step_dir(step), new)
    return new

  def _agree_across_processes(self, step: int | None) -> int | None:
    """The restored step, checked to be the same on every process (a collective)."""
    from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
    steps = np.asarray(multihost_utils.process_allgather(np.int64(-1 if step is None else step)))
    if len(set(steps.tolist())) != 1:
      raise RuntimeError(f"the processes restored different steps of {self.directory}: "
                         f"{steps.tolist()} (-1: none); a checkpoint is damaged for some "
                         "processes only.")
    return step

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
