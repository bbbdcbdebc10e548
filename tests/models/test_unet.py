"""Tests of U-Net (``jaxvision.models.unet``): sizes not divisible by 2^depth included."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxvision import models
from jaxvision.models import unet

# An "rbg" key: XLA:CPU compiles the parameter init of these conv nets ~10x faster than with
# the default threefry key.
_KEY = jax.random.key(0, impl="rbg")


def _shape(model, size, batch=2, channels=3):
  x = jax.ShapeDtypeStruct((batch, *size, channels), jnp.float32)
  variables = jax.eval_shape(lambda x: model.init(_KEY, x, train=False), x)
  out = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, x)
  return out, variables


@pytest.mark.parametrize("up", ["transpose", "resize"])
@pytest.mark.parametrize("size", [(32, 40), (33, 41), (17, 23), (2, 2), (3, 7)])
def test_logits_have_the_image_size(size, up):
  out, _ = _shape(models.UNetTiny(num_classes=5, up=up), size)
  assert out.shape == (2, *size, 5) and out.dtype == jnp.float32


@pytest.mark.parametrize("size", [(120, 160), (121, 163)])
def test_small_variant_shapes(size):
  out, _ = _shape(models.UNetSmall(), size, batch=1)
  assert out.shape == (1, *size, 11)


def test_rejects_images_smaller_than_the_pools():
  with pytest.raises(ValueError, match=">= 8"):
    _shape(models.UNetSmall(), (7, 40))


@pytest.mark.parametrize("kwargs", [{"widths": (4,)}, {"up": "nearest"}])
def test_rejects_bad_configurations(kwargs):
  with pytest.raises(ValueError):
    _shape(models.UNet(**{"widths": (4, 8), **kwargs}), (16, 16))


def test_paper_parameter_count():
  """The paper's widths 64 ... 1024 (with BatchNorm, same-padded): about 31 M parameters."""
  _, variables = _shape(models.UNet(num_classes=2), (32, 32), batch=1)
  assert 30_500_000 < models.count_params(variables["params"]) < 31_500_000


def test_match_spatial_pads_and_crops_symmetrically():
  x = jnp.arange(12.0).reshape(1, 3, 4, 1)
  padded = unet.match_spatial(x, (5, 5))[0, ..., 0]
  np.testing.assert_array_equal(padded[1:4, 0:4], x[0, ..., 0])
  assert float(padded.sum()) == float(x.sum()) and padded.shape == (5, 5)
  cropped = unet.match_spatial(x, (1, 2))[0, ..., 0]
  np.testing.assert_array_equal(cropped, x[0, 1:2, 1:3, 0])
  assert unet.match_spatial(x, (3, 4)) is x


@pytest.fixture(scope="module")
def trained():
  """UNetTiny, a few Adam steps on one fixed batch whose mask is a function of the image."""
  model = models.UNetTiny(num_classes=3)
  # Piecewise-constant 4 x 4 blocks, cropped to 33 x 41: regions, as in a scene.
  blocks = jax.random.uniform(jax.random.key(3), (2, 9, 11, 3))
  x = jnp.repeat(jnp.repeat(blocks, 4, axis=1), 4, axis=2)[:, :33, :41]
  y = (x[..., 0] > 0.5).astype(jnp.int32) + (x[..., 1] > 0.8).astype(jnp.int32)
  variables = jax.jit(lambda x: model.init(_KEY, x, train=False))(x)
  tx = optax.adam(1e-2)

  @jax.jit
  def step(params, batch_stats, opt_state):
    def loss_fn(p):
      logits, updates = model.apply({"params": p, "batch_stats": batch_stats}, x, train=True,
                                    mutable=["batch_stats"])
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
      return loss, updates["batch_stats"]
    (loss, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), new_stats, opt_state, loss

  params, batch_stats = variables["params"], variables["batch_stats"]
  opt_state = tx.init(params)
  losses = []
  for _ in range(12):
    params, batch_stats, opt_state, loss = step(params, batch_stats, opt_state)
    losses.append(float(loss))
  return model, variables, params, batch_stats, x, losses


def test_a_few_adam_steps_lower_the_loss(trained):
  *_, losses = trained
  assert np.all(np.isfinite(losses))
  assert losses[-1] < 0.75 * losses[0], losses


def test_train_mode_updates_batch_stats_and_eval_mode_uses_them(trained):
  model, variables, params, batch_stats, x, _ = trained
  before = jax.tree.leaves(variables["batch_stats"])
  after = jax.tree.leaves(batch_stats)
  assert any(not np.allclose(a, b) for a, b in zip(before, after))
  new = {"params": params, "batch_stats": batch_stats}

  @jax.jit
  def both(v, x):
    train_out, _ = model.apply(v, x, train=True, mutable=["batch_stats"])
    return train_out, model.apply(v, x, train=False)  # eval: nothing mutable

  train_out, eval_out = both(new, x)
  assert np.all(np.isfinite(eval_out)) and not np.allclose(train_out, eval_out)
  with pytest.raises(Exception, match="batch_stats"):  # train mode updates batch_stats
    jax.eval_shape(lambda v, x: model.apply(v, x, train=True), new, x)
