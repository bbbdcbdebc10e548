"""Model variables for tests, filled without running the initialisers.

Compiling a flax model's ``init`` (one PRNG split and draw per parameter) takes longer than
compiling its training step, so tiny-model tests fill the variables from
``jax.eval_shape(model.init)`` instead.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np


def random_variables(model, x, seed: int = 0, **init_kwargs):
  """Variables of ``model`` for input ``x``: He-normal kernels, zero biases, BatchNorm scale
  1 and shift 0, running mean 0 and variance 1."""
  init_kwargs.setdefault("train", False)
  shapes = jax.eval_shape(functools.partial(model.init, **init_kwargs), jax.random.key(0), x)
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    name = path[-1].key
    if name == "kernel":
      fan_in = int(np.prod(leaf.shape[:-1]))
      return jnp.asarray(rng.normal(0.0, np.sqrt(2.0 / fan_in), leaf.shape), leaf.dtype)
    value = 1.0 if name in ("scale", "var") else 0.0
    return jnp.full(leaf.shape, value, leaf.dtype)

  return jax.tree_util.tree_map_with_path(fill, shapes)
