"""Restoring from a directory whose newest checkpoints are damaged: the restore falls back to
the newest step that restores with one warning per damaged step, moves the damaged steps aside
so that they can be saved again, and fails with one line when no step restores."""

from __future__ import annotations

import asyncio
import gc
import glob
import logging
import os
import shutil
import sys
import types

import grain
import jax.numpy as jnp
import numpy as np
import pytest

from jaxvision.train import Checkpointer, train_and_evaluate
from jaxvision.train import checkpoint as checkpoint_lib
from tests.train import _ckpt_damage, _tiny
from tests.train.test_checkpoint import _assert_trees_equal, _iterator, _state
from tests.train.test_loop import _assert_states_equal, _config

LOGGER = "jaxvision.train.checkpoint"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
  """Steps 1, 2, 3 saved once (saves take ~1 s each); each test damages a copy."""
  directory = tmp_path_factory.mktemp("saved") / "ckpt"
  return directory, _ckpt_damage.save_steps(directory)


@pytest.fixture
def ckpt_dir(saved, tmp_path):
  directory = tmp_path / "ckpt"
  shutil.copytree(saved[0], directory)
  return directory


def _warnings(caplog):
  return [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


# Two damage kinds here (a data file and a whole item); every kind's warning and fallback is a
# row of tests/bad_inputs/test_checkpoints.py.
@pytest.mark.parametrize("kind", ["truncate", "item"])
def test_damaged_latest_step_falls_back_and_is_moved_aside(saved, ckpt_dir, caplog, kind):
  damage, error_type = _ckpt_damage.DAMAGES[kind]
  next_batches = saved[1]
  damage(str(ckpt_dir / "3"))

  with Checkpointer(ckpt_dir, save_every=1, keep=3) as ckpt:
    assert ckpt.latest_step() == 3
    state, it = ckpt.restore(_state(0.0), _iterator())
    assert ckpt.restored_step == 2 and ckpt.all_steps() == [1, 2]
    _assert_trees_equal(state, _state(2.0))
    assert next(it).tolist() == next_batches[2]

    [warning] = _warnings(caplog)
    message = warning.getMessage()
    assert "\n" not in message and len(message) < 500
    assert f"checkpoint {ckpt_dir / '3'} cannot be restored ({error_type}:" in message
    assert "resuming from step 2; moved to " in message
    [aside] = glob.glob(str(ckpt_dir / "3.damaged-*"))
    assert message.endswith(f"moved to {aside}.")

    assert ckpt.save(3, _state(33.0), it)  # the step number is free again
    ckpt.wait_until_finished()
    assert ckpt.all_steps() == [1, 2, 3]
  with Checkpointer(ckpt_dir, save_every=1, keep=3) as ckpt:
    state, _ = ckpt.restore(_state(0.0), _iterator())
    assert ckpt.restored_step == 3
    _assert_trees_equal(state, _state(33.0))
  assert len(_warnings(caplog)) == 1
  assert os.path.isdir(aside)  # kept for inspection; not a step, not deleted by retention


def test_two_damaged_steps_fall_back_two_steps(ckpt_dir, caplog):
  _ckpt_damage.truncate(str(ckpt_dir / "3"))
  _ckpt_damage.item(str(ckpt_dir / "2"))
  with Checkpointer(ckpt_dir, save_every=1, keep=3) as ckpt:
    state, _ = ckpt.restore(_state(0.0), _iterator())
    assert ckpt.restored_step == 1 and ckpt.all_steps() == [1]
  _assert_trees_equal(state, _state(1.0))
  messages = [r.getMessage() for r in _warnings(caplog)]
  assert len(messages) == 2
  assert f"{ckpt_dir / '3'} cannot be restored (ValueError" in messages[0]
  assert f"{ckpt_dir / '2'} cannot be restored (KeyError" in messages[1]
  assert len(glob.glob(str(ckpt_dir / "*.damaged-*"))) == 2


def test_every_step_damaged_is_one_line_error_and_moves_nothing(ckpt_dir, caplog):
  for step in (1, 2, 3):
    _ckpt_damage.truncate(str(ckpt_dir / str(step)))
  with Checkpointer(ckpt_dir, save_every=1, keep=3) as ckpt:
    with pytest.raises(RuntimeError) as e:
      ckpt.restore(_state(0.0), _iterator())
    assert ckpt.all_steps() == [1, 2, 3]
  message = str(e.value)
  assert message == (f"no checkpoint in {ckpt_dir} can be restored into this state: tried "
                     "steps 3 (ValueError), 2 (ValueError), 1 (ValueError); see the warnings "
                     "above.")
  messages = [r.getMessage() for r in _warnings(caplog)]
  assert len(messages) == 3 and all(m.endswith("; left in place.") for m in messages)
  assert sorted(os.listdir(ckpt_dir)) == ["1", "2", "3"]


def test_a_target_that_fits_no_step_moves_nothing(ckpt_dir):
  """A changed model fails on every step: that is not damage, so nothing is moved aside."""
  target = _state(0.0).replace(params={"w": jnp.zeros((5, 2)), "b": jnp.zeros(2)})
  with Checkpointer(ckpt_dir, save_every=1, keep=3) as ckpt:
    with pytest.raises(RuntimeError, match=r"tried steps 3 \(\w+\), 2 \(\w+\), 1 \(\w+\)"):
      ckpt.restore(target, _iterator())
  assert sorted(os.listdir(ckpt_dir)) == ["1", "2", "3"]


def test_explicit_step_and_no_set_aside(ckpt_dir, caplog):
  _ckpt_damage.item(str(ckpt_dir / "3"))
  with Checkpointer(ckpt_dir, save_every=1, keep=3) as ckpt:
    with pytest.raises(KeyError):  # an explicit step: no fallback, its own error
      ckpt.restore(_state(0.0), _iterator(), step=3)
    state, _ = ckpt.restore(_state(0.0), _iterator(), set_aside_damaged=False)
    assert ckpt.restored_step == 2 and ckpt.all_steps() == [1, 2, 3]
  _assert_trees_equal(state, _state(2.0))
  [warning] = _warnings(caplog)
  assert warning.getMessage().endswith("resuming from step 2.")
  assert sorted(os.listdir(ckpt_dir)) == ["1", "2", "3"]


def test_failed_restore_noise_is_recognised_narrowly():
  loop = asyncio.new_event_loop()
  loop.close()
  try:
    loop.call_soon_threadsafe(print)
  except RuntimeError as e:
    closed = e
  noise = types.SimpleNamespace(exc_type=RuntimeError, exc_value=closed,
                                exc_traceback=closed.__traceback__, object=None)
  assert checkpoint_lib._is_failed_restore_noise(noise)
  other = RuntimeError("Event loop is closed")  # same text, raised elsewhere
  assert not checkpoint_lib._is_failed_restore_noise(types.SimpleNamespace(
      exc_type=RuntimeError, exc_value=other, exc_traceback=None, object=None))
  assert not checkpoint_lib._is_failed_restore_noise(types.SimpleNamespace(
      exc_type=RuntimeError, exc_value=closed, exc_traceback=closed.__traceback__,
      object="a finalizer"))

  async def not_orbax():
    try:
      await asyncio.sleep(0)  # one bare yield: no loop needed
    except BaseException as e:
      raise ValueError("converted") from e
  coro = not_orbax()
  coro.send(None)
  try:
    coro.close()
  except ValueError as e:
    converted = e
  assert isinstance(converted.__cause__, GeneratorExit)
  assert not checkpoint_lib._is_failed_restore_noise(types.SimpleNamespace(
      exc_type=ValueError, exc_value=converted, exc_traceback=None, object=coro))


def test_failed_restore_of_many_arrays_prints_no_tracebacks(tmp_path, capfd, caplog):
  """A failing restore leaves tensorstore reads pending on orbax's closed event loop, which
  used to print one "Event loop is closed" traceback per array (0 to ~400 per run here)."""
  state = {f"a{i}": jnp.full((64,), float(i)) for i in range(200)}
  source = grain.MapDataset.source(np.arange(8)).batch(2)
  with Checkpointer(tmp_path, save_every=1, keep=2) as ckpt:
    ckpt.save(1, state, iter(source.to_iter_dataset()))
    ckpt.save(2, state, iter(source.to_iter_dataset()))
  _ckpt_damage.truncate(str(tmp_path / "2"))
  capfd.readouterr()
  seen = []
  previous_hook = sys.unraisablehook
  sys.unraisablehook = seen.append  # what would reach pytest's or Python's own hook
  try:
    with Checkpointer(tmp_path, save_every=1, keep=2) as ckpt:
      ckpt.restore(state, iter(source.to_iter_dataset()))
      assert ckpt.restored_step == 1
    gc.collect()
  finally:
    sys.unraisablehook = previous_hook
  err = capfd.readouterr().err
  assert "Event loop is closed" not in err and "never retrieved" not in err
  assert not seen, [(u.exc_type, str(u.exc_value)[:80], u.object) for u in seen]
  assert len(_warnings(caplog)) == 1


def test_loop_resumes_from_the_step_that_restores(tmp_path, capsys, caplog):
  task = _tiny.make_task()
  workdir = str(tmp_path / "run")
  train_and_evaluate(_config(num_steps=6, keep_checkpoints=3, eval_every=0), workdir,
                     task=task)
  ckpt_dir = os.path.join(workdir, "checkpoints")
  _ckpt_damage.garbage(os.path.join(ckpt_dir, "6"))
  capsys.readouterr()

  resumed = train_and_evaluate(_config(num_steps=8, keep_checkpoints=3, eval_every=0),
                               workdir, task=task)
  assert f"Resumed from step 4 ({ckpt_dir})." in capsys.readouterr().out
  assert resumed.results["resumed_from_step"] == 4 and resumed.results["final_step"] == 8
  [warning] = _warnings(caplog)
  assert f"{ckpt_dir}/6 cannot be restored (ValueError" in warning.getMessage()
  with Checkpointer(ckpt_dir, save_every=2, keep=3) as ckpt:
    assert ckpt.all_steps() == [4, 6, 8]  # step 6 saved again, next to 6.damaged-*
  assert len(glob.glob(os.path.join(ckpt_dir, "6.damaged-*"))) == 1

  straight = train_and_evaluate(_config(num_steps=8, eval_every=0, checkpoint_every=0),
                                str(tmp_path / "straight"), task=task)
  _assert_states_equal(resumed.state, straight.state)
