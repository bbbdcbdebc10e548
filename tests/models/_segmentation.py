"""Helpers shared by the tests of the segmentation models (FCN, SegNet, U-Net)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

# An "rbg" key: XLA:CPU compiles the parameter init of these conv nets ~10x faster than with
# the default threefry key.
KEY = jax.random.key(0, impl="rbg")


def shapes(model, size, batch=2, channels=3):
  """``(logits, variables)`` of ``model`` on a ``[batch, *size, channels]`` image, as
  ``jax.ShapeDtypeStruct`` trees (traced with ``jax.eval_shape``: nothing compiles)."""
  x = jax.ShapeDtypeStruct((batch, *size, channels), jnp.float32)
  variables = jax.eval_shape(lambda x: model.init(KEY, x, train=False), x)
  out = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, x)
  return out, variables
