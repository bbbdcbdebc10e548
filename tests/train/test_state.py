"""Tests of ``jaxvision.train.state``: TrainState updates against hand-written optax calls."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxvision.train import TrainState, step_rng


def _params():
  return {"w": jnp.arange(6.0).reshape(2, 3), "b": jnp.array([0.5, -1.0, 2.0])}


def test_apply_gradients_matches_optax_by_hand():
  tx = optax.adam(0.1)
  params = _params()
  state = TrainState.create(params=params, tx=tx, rng=jax.random.key(0))
  opt_state = tx.init(params)
  expected = params
  for i in range(3):
    grads = jax.tree.map(lambda p, i=i: jnp.sin(p + i), expected)
    state = state.apply_gradients(grads)
    updates, opt_state = tx.update(grads, opt_state, expected)
    expected = optax.apply_updates(expected, updates)
  assert int(state.step) == 3
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), state.params, expected)


def test_sgd_step_by_hand_and_batch_stats():
  state = TrainState.create(params={"w": jnp.array([1.0, 2.0])}, tx=optax.sgd(0.5),
                            rng=jax.random.key(0))
  assert state.batch_stats == {}
  new = state.apply_gradients({"w": jnp.array([2.0, -4.0])}, batch_stats={"m": jnp.ones(2)})
  np.testing.assert_array_equal(new.params["w"], [0.0, 4.0])
  np.testing.assert_array_equal(new.batch_stats["m"], [1.0, 1.0])
  np.testing.assert_array_equal(state.params["w"], [1.0, 2.0])  # unchanged: pure
  kept = new.apply_gradients({"w": jnp.zeros(2)})
  np.testing.assert_array_equal(kept.batch_stats["m"], [1.0, 1.0])


def test_state_is_a_jittable_pytree_without_the_optimizer():
  state = TrainState.create(params=_params(), tx=optax.sgd(0.1), rng=jax.random.key(1))
  leaves = jax.tree.leaves(state)
  assert all(isinstance(x, jax.Array) for x in leaves)
  out = jax.jit(lambda s: s.apply_gradients(jax.tree.map(jnp.ones_like, s.params)))(state)
  np.testing.assert_allclose(out.params["b"], np.array([0.5, -1.0, 2.0]) - 0.1, rtol=1e-6)
  assert out.tx is state.tx


def test_typed_and_raw_keys_are_stored_alike():
  a = TrainState.create(params={}, tx=optax.sgd(0.1), rng=jax.random.key(7))
  b = TrainState.create(params={}, tx=optax.sgd(0.1), rng=jax.random.PRNGKey(7))
  assert a.rng.dtype == jnp.uint32
  np.testing.assert_array_equal(a.rng, b.rng)


def test_step_rng_is_fold_in_of_the_step():
  state = TrainState.create(params={"w": jnp.zeros(1)}, tx=optax.sgd(0.1),
                            rng=jax.random.key(5))
  keys = []
  for t in range(3):
    expected = jax.random.fold_in(jax.random.key(5), t)
    np.testing.assert_array_equal(jax.random.key_data(step_rng(state)),
                                  jax.random.key_data(expected))
    keys.append(tuple(np.asarray(jax.random.key_data(step_rng(state)))))
    state = state.apply_gradients({"w": jnp.zeros(1)})
  assert len(set(keys)) == 3


def test_bad_arguments():
  with pytest.raises(TypeError, match="`tx`"):
    TrainState.create(params={}, tx=object(), rng=jax.random.key(0))
  with pytest.raises(TypeError, match="`rng`"):
    TrainState.create(params={}, tx=optax.sgd(0.1), rng=jnp.zeros(2, jnp.float32))
  with pytest.raises(ValueError, match="`rng`"):
    TrainState.create(params={}, tx=optax.sgd(0.1), rng=jax.random.split(jax.random.key(0)))
