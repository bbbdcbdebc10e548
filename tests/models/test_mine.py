"""Tests of the MINE networks (``jaxvision.models.mine``) against float64 NumPy forward passes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from jaxvision import models

_KEY = jax.random.key(0)


def _f64(tree):
  return jax.tree.map(lambda a: np.asarray(a, np.float64), tree)


def _rows(v):
  v = np.asarray(v, np.float64)
  return v.reshape(v.shape[0], -1)


def _np_statistics_network(params, x, y):
  p = _f64(params["params"])
  h = (_rows(x) @ p["x_dense"]["kernel"] + p["x_dense"]["bias"]
       + _rows(y) @ p["y_dense"]["kernel"] + p["y_dense"]["bias"])
  return (np.maximum(h, 0.0) @ p["out"]["kernel"] + p["out"]["bias"])[:, 0]


def _np_mlp(params, x, y, num_hidden):
  p = _f64(params["params"])
  h = np.concatenate([_rows(x), _rows(y)], axis=-1)
  for i in range(num_hidden):
    h = np.maximum(h @ p[f"dense{i}"]["kernel"] + p[f"dense{i}"]["bias"], 0.0)
  return (h @ p["out"]["kernel"] + p["out"]["bias"])[:, 0]


# ---------------------------------------------------------------------------------------------
# The book's statistics network.


def test_statistics_network_is_the_books_architecture():
  t = models.MineStatisticsNetwork()
  params = t.init(_KEY, jnp.zeros(3), jnp.zeros(3))
  shapes = jax.tree.map(lambda a: a.shape, params["params"])
  assert shapes == {"x_dense": {"kernel": (1, 16), "bias": (16,)},
                    "y_dense": {"kernel": (1, 16), "bias": (16,)},
                    "out": {"kernel": (16, 1), "bias": (1,)}}
  assert models.count_params(params) == 2 * (16 + 16) + 17  # Keras summary: 32 + 32 + 17


@settings(max_examples=4, deadline=None)
@given(batch=st.integers(1, 9), dx=st.sampled_from([0, 1, 3]), dy=st.sampled_from([0, 2]),
       hidden=st.sampled_from([1, 16]), seed=st.integers(0, 2**16))
def test_statistics_network_matches_numpy(batch, dx, dy, hidden, seed):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(batch,) if dx == 0 else (batch, dx)).astype(np.float32)  # dx == 0: [B]
  y = rng.normal(size=(batch,) if dy == 0 else (batch, dy)).astype(np.float32)
  t = models.MineStatisticsNetwork(hidden=hidden)
  # Random values in init's tree (biases too, so the ReLU cuts at non-zero points); NumPy and
  # eval_shape, as compiling jax.random and the initialisers for each new shape is slow.
  params = jax.tree.map(lambda a: (0.5 * rng.normal(size=a.shape)).astype(a.dtype),
                        jax.eval_shape(t.init, _KEY, x, y))
  out = jax.jit(t.apply)(params, x, y)  # one compilation (eager flax calls are slow)
  assert out.shape == (batch,) and out.dtype == jnp.float32
  np.testing.assert_allclose(out, _np_statistics_network(params, x, y), rtol=1e-5, atol=1e-5)


def test_statistics_network_depends_on_both_x_and_y():
  t = models.MineStatisticsNetwork(hidden=16)
  kx, ky = jax.random.split(jax.random.key(1))
  x, y = jax.random.normal(kx, (64,)), jax.random.normal(ky, (64,))
  params = t.init(_KEY, x, y)
  gx, gy = jax.grad(lambda x, y: jnp.sum(t.apply(params, x, y)), argnums=(0, 1))(x, y)
  assert np.abs(gx).max() > 0.0 and np.abs(gy).max() > 0.0
  base = t.apply(params, x, y)
  assert not np.allclose(t.apply(params, x + 1.0, y), base)
  assert not np.allclose(t.apply(params, x, y + 1.0), base)
  # Not additively separable: T(x, y) is not f(x) + g(y) (the ReLU couples them).
  a, b = jnp.array([-2.0, 2.0]), jnp.array([-2.0, 2.0])
  tab = np.asarray(t.apply(params, jnp.repeat(a, 2), jnp.tile(b, 2))).reshape(2, 2)
  assert abs(tab[0, 0] + tab[1, 1] - tab[0, 1] - tab[1, 0]) > 1e-4


def test_statistics_network_jit_and_bfloat16():
  t = models.MineStatisticsNetwork()
  x, y = jnp.linspace(-1, 1, 8), jnp.linspace(1, -1, 8)
  params = t.init(_KEY, x, y)
  eager = t.apply(params, x, y)
  np.testing.assert_allclose(jax.jit(t.apply)(params, x, y), eager, rtol=1e-6, atol=1e-6)
  t16 = models.MineStatisticsNetwork(dtype=jnp.bfloat16)
  out16 = t16.apply(params, x, y)
  assert out16.dtype == jnp.float32
  np.testing.assert_allclose(out16, eager, atol=5e-2)


# ---------------------------------------------------------------------------------------------
# The general MLP.


@pytest.mark.parametrize("hidden_layers", [(), (8,), (16, 8)])
def test_mlp_matches_numpy(hidden_layers):
  kx, ky, kp = jax.random.split(jax.random.key(2), 3)
  x = jax.random.normal(kx, (5, 6))
  y = jax.random.normal(ky, (5, 2, 3, 1))  # image-like: flattened per row
  t = models.MineMLP(hidden_layers=hidden_layers)
  params = t.init(kp, x, y)
  params = jax.tree.map(lambda a: a + 0.1 * jax.random.normal(kp, a.shape), params)
  out = t.apply(params, x, y)
  assert out.shape == (5,) and out.dtype == jnp.float32
  assert params["params"]["out"]["kernel"].shape == (hidden_layers[-1] if hidden_layers
                                                     else 6 + 6, 1)
  np.testing.assert_allclose(out, _np_mlp(params, x, y, len(hidden_layers)), rtol=1e-5,
                             atol=1e-5)


def test_mlp_depends_on_both_inputs_and_jits():
  t = models.MineMLP(hidden_layers=(32,))
  kx, ky = jax.random.split(jax.random.key(3))
  x, y = jax.random.normal(kx, (4, 10)), jax.random.normal(ky, (4, 7))
  params = t.init(_KEY, x, y)
  gx, gy = jax.grad(lambda x, y: jnp.sum(t.apply(params, x, y)), argnums=(0, 1))(x, y)
  assert np.abs(gx).max() > 0.0 and np.abs(gy).max() > 0.0
  np.testing.assert_allclose(jax.jit(t.apply)(params, x, y), t.apply(params, x, y),
                             rtol=1e-6, atol=1e-6)
  out16 = models.MineMLP(hidden_layers=(32,), dtype=jnp.bfloat16).apply(params, x, y)
  assert out16.dtype == jnp.float32


# ---------------------------------------------------------------------------------------------
# The image encoder.


def test_encoder_shapes_and_batch_stats():
  enc = models.MineEncoder(latent_dim=6, trunk=models.TinyTrunk)
  key = jax.random.key(0, impl="rbg")  # threefry's random bits are slow to compile on CPU
  x = jax.random.uniform(key, (3, 8, 8, 1))
  v = jax.jit(lambda k, x: enc.init(k, x, train=False))(key, x)  # eager flax calls are slow
  assert v["params"]["latent"]["kernel"].shape == (4 * 4 * 8, 6)
  z, updates = jax.jit(lambda v, x: enc.apply(v, x, train=True, mutable=["batch_stats"]))(v, x)
  assert z.shape == (3, 6)
  assert not np.allclose(updates["batch_stats"]["trunk"]["bn0"]["mean"], 0.0)
  # End to end with T: the encoder's codes feed the book's T (hidden 1024 in the book).
  t = models.MineStatisticsNetwork(hidden=32)
  tp = jax.jit(t.init)(key, z, z)
  assert jax.jit(t.apply)(tp, z, z[::-1]).shape == (3,)


def test_encoder_default_is_the_books_vgg():
  enc = models.MineEncoder()
  v = jax.eval_shape(lambda: enc.init(_KEY, jnp.zeros((2, 24, 24, 1)), train=False))
  assert v["params"]["latent"]["kernel"].shape == (3 * 3 * 512, 10)
  assert v["params"]["trunk"]["conv3"]["kernel"].shape == (3, 3, 256, 512)


# ---------------------------------------------------------------------------------------------
# Validation.


@pytest.mark.parametrize("module", [models.MineStatisticsNetwork(), models.MineMLP((4,))])
def test_bad_inputs_raise(module):
  with pytest.raises(ValueError, match="same batch size"):
    module.init(_KEY, jnp.zeros(3), jnp.zeros(4))
  with pytest.raises(TypeError, match="`x` must be a floating-point"):
    module.init(_KEY, jnp.zeros(3, jnp.int32), jnp.zeros(3))
  with pytest.raises(ValueError, match="`y` must have shape"):
    module.init(_KEY, jnp.zeros(3), jnp.zeros(()))


@pytest.mark.parametrize("module, match", [
    (models.MineStatisticsNetwork(hidden=0), "hidden"),
    (models.MineMLP(hidden_layers=(4, 0)), "hidden_layers"),
    (models.MineEncoder(latent_dim=0, trunk=models.TinyTrunk), "latent_dim"),
])
def test_bad_fields_raise(module, match):
  args = ((jnp.zeros((1, 8, 8, 1)),) if isinstance(module, models.MineEncoder)
          else (jnp.zeros(2), jnp.zeros(2)))
  kwargs = {"train": False} if isinstance(module, models.MineEncoder) else {}
  with pytest.raises(ValueError, match=match):
    module.init(_KEY, *args, **kwargs)
