"""Ways to damage a committed orbax step directory, for the checkpoint fallback tests.

A step directory ``<dir>/<t>/`` written by :class:`jaxvision.train.Checkpointer` holds
``_CHECKPOINT_METADATA`` and ``commit_success.txt``, the ``data_iter/`` item (one JSON file per
process) and the ``state/`` item: an OCDBT database (``manifest.ocdbt``, ``_METADATA`` with the
pytree structure, ``_sharding``, ``array_metadatas/``, and the array data files under ``d/``
and ``ocdbt.process_<i>/d/``). Deleting only ``_CHECKPOINT_METADATA`` or ``commit_success.txt``
does not stop orbax from restoring the step, so it is not one of the damages here.
"""

from __future__ import annotations

import glob
import os
import shutil

from jaxvision.train import Checkpointer
from tests.train.test_checkpoint import _iterator, _state

STEPS = (1, 2, 3)


def save_steps(directory) -> dict[int, list[int]]:
  """Saves ``_state(step)`` at steps 1, 2, 3; returns the next batch after each position."""
  it = _iterator()
  next_batches = {}
  with Checkpointer(directory, save_every=1, keep=len(STEPS)) as ckpt:
    for step in STEPS:
      next(it)
      ckpt.save(step, _state(float(step)), it)
      after = _iterator()
      after.set_state(it.get_state())
      next_batches[step] = next(after).tolist()
  return next_batches


def _data_files(step_dir: str) -> list[str]:
  files = [f for f in glob.glob(os.path.join(step_dir, "state", "**", "d", "*"),
                                recursive=True) if os.path.isfile(f)]
  assert files, f"no array data files in {step_dir}"
  return files


def truncate(step_dir: str) -> None:
  """Every array data file cut to half its size (a partial copy, a full disk)."""
  for f in _data_files(step_dir):
    with open(f, "r+b") as fh:
      fh.truncate(os.path.getsize(f) // 2)


def garbage(step_dir: str) -> None:
  """Every array data file overwritten with as many random bytes."""
  for f in _data_files(step_dir):
    size = os.path.getsize(f)
    with open(f, "wb") as fh:
      fh.write(os.urandom(size))


def metadata(step_dir: str) -> None:
  """The step's and the state item's metadata files deleted."""
  os.remove(os.path.join(step_dir, "_CHECKPOINT_METADATA"))
  os.remove(os.path.join(step_dir, "state", "_METADATA"))


def manifest(step_dir: str) -> None:
  """The state item's OCDBT manifest deleted (the arrays can no longer be found)."""
  os.remove(os.path.join(step_dir, "state", "manifest.ocdbt"))


def item(step_dir: str) -> None:
  """The whole ``state/`` item directory deleted."""
  shutil.rmtree(os.path.join(step_dir, "state"))


# name -> (damage, the error type restoring the damaged step fails with)
DAMAGES = {
    "truncate": (truncate, "ValueError"),
    "garbage": (garbage, "ValueError"),
    "metadata": (metadata, "ValueError"),
    "manifest": (manifest, "ValueError"),
    "item": (item, "KeyError"),
}
