"""Tests of ``jaxvision.train.checkpoint``: retention, latest-step resume, exact restore of the
state (into the target's shardings) and of the grain iterator position."""

from __future__ import annotations

import grain
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxvision.train import (Checkpointer, TrainState, abstract_like, data_mesh, replicate,
                             replicated_sharding)


_TX = optax.adam(0.1)


def _iterator(seed=0):
  ds = grain.MapDataset.source(np.arange(20)).seed(seed).shuffle().repeat()
  return iter(ds.batch(4, drop_remainder=True).to_iter_dataset())


def _state(value: float = 1.0):
  params = {"w": jnp.full((3, 2), value), "b": jnp.arange(2.0)}
  return TrainState.create(params=params, tx=_TX, rng=jax.random.key(3),
                           batch_stats={"mean": jnp.zeros(2)})


def _assert_trees_equal(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  jax.tree.map(np.testing.assert_array_equal, a, b)


def test_keep_last_k_and_save_interval(tmp_path):
  it = _iterator()
  with Checkpointer(tmp_path, save_every=2, keep=2) as ckpt:
    saved = [step for step in range(1, 8) if ckpt.save(step, _state(step), it)]
    assert saved == [2, 4, 6]
    ckpt.wait_until_finished()
    assert ckpt.all_steps() == [4, 6]
    assert ckpt.save(7, _state(7), it, force=True)
    assert not ckpt.save(7, _state(70), it, force=True)  # a step is written once
    ckpt.wait_until_finished()
    assert ckpt.all_steps() == [6, 7]
  assert sorted(p.name for p in tmp_path.iterdir()) == ["6", "7"]


def test_restore_picks_the_latest_step(tmp_path):
  it = _iterator()
  with Checkpointer(tmp_path, save_every=1, keep=3) as ckpt:
    for step in (1, 2, 3):
      next(it)
      ckpt.save(step, _state(float(step)), it)
  with Checkpointer(tmp_path, save_every=1, keep=3) as ckpt:  # a new process would do this
    assert ckpt.latest_step() == 3
    state, _ = ckpt.restore(_state(0.0), _iterator())
    np.testing.assert_array_equal(state.params["w"], np.full((3, 2), 3.0))
    older, _ = ckpt.restore(_state(0.0), _iterator(), step=2)
    np.testing.assert_array_equal(older.params["w"], np.full((3, 2), 2.0))


def test_restore_is_exact_and_continues_the_data(tmp_path):
  state = _state()
  state = state.apply_gradients(jax.tree.map(jnp.cos, state.params))  # non-trivial opt state
  it = _iterator(seed=5)
  for _ in range(7):  # more than one epoch of 5 batches: position is mid-epoch 2
    next(it)
  with Checkpointer(tmp_path, save_every=1, keep=1) as ckpt:
    ckpt.save(7, state, it)
  expected_batches = [next(it).tolist() for _ in range(6)]
  with Checkpointer(tmp_path, save_every=1, keep=1) as ckpt:
    restored, it2 = ckpt.restore(_state(0.0), _iterator(seed=5))
  _assert_trees_equal(restored, state)
  assert restored.tx is not None
  assert [next(it2).tolist() for _ in range(6)] == expected_batches


def test_restore_into_target_sharding(tmp_path):
  mesh = data_mesh()
  state = replicate(_state(2.0), mesh)
  with Checkpointer(tmp_path, save_every=1, keep=1) as ckpt:
    ckpt.save(1, state, _iterator())
    abstract = abstract_like(state)
    assert isinstance(abstract.params["w"], jax.ShapeDtypeStruct)
    restored, _ = ckpt.restore(abstract, _iterator())
  assert restored.params["w"].sharding == replicated_sharding(mesh)
  _assert_trees_equal(restored, state)


def test_async_save_survives_donation_of_the_saved_state(tmp_path):
  """The loop donates the state right after saving it: the checkpoint must hold the values at
  save time, not whatever the donated buffers later contain."""
  mesh = data_mesh()
  update = jax.jit(lambda s: s.apply_gradients(jax.tree.map(jnp.ones_like, s.params)),
                   donate_argnums=0)
  state = replicate(_state(), mesh)
  state = update(state)
  expected = jax.device_get(state)
  with Checkpointer(tmp_path, save_every=1, keep=1) as ckpt:
    ckpt.save(1, state, _iterator())
    for _ in range(20):
      state = update(state)
  with Checkpointer(tmp_path, save_every=1, keep=1) as ckpt:
    restored, _ = ckpt.restore(_state(0.0), _iterator())
  _assert_trees_equal(jax.device_get(restored), expected)


def test_bad_arguments(tmp_path):
  with pytest.raises(ValueError, match="`save_every`"):
    Checkpointer(tmp_path, save_every=0, keep=1)
  with pytest.raises(ValueError, match="`keep`"):
    Checkpointer(tmp_path, save_every=1, keep=0)
  with Checkpointer(tmp_path, save_every=1, keep=1) as ckpt:
    assert ckpt.latest_step() is None
    with pytest.raises(FileNotFoundError):
      ckpt.restore(_state(), _iterator())
