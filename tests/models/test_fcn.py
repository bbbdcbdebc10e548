"""Tests of the book's FCN (``jaxvision.models.fcn``) and its sub-pixel transposed conv.

Shapes and parameter counts are traced with ``jax.eval_shape`` (no compilation); only the tiny
variant runs, for the BatchNorm modes and a few optimizer steps.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxvision import models
from jaxvision.models import fcn

# An "rbg" key: XLA:CPU compiles the parameter init of these conv nets ~10x faster than with
# the default threefry key.
_KEY = jax.random.key(0, impl="rbg")


def _shape(model, size, batch=2, channels=3):
  x = jax.ShapeDtypeStruct((batch, *size, channels), jnp.float32)
  variables = jax.eval_shape(lambda x: model.init(_KEY, x, train=False), x)
  out = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, x)
  return out, variables


@pytest.mark.parametrize("size", [(32, 40), (120, 160), (36, 44), (8, 8), (64, 12)])
def test_logits_have_the_image_size(size):
  out, _ = _shape(models.FCNTiny(num_classes=5), size)
  assert out.shape == (2, *size, 5) and out.dtype == jnp.float32


def test_small_variant_shapes_at_the_cpu_size():
  out, _ = _shape(models.FCNSmall(), (120, 160), batch=1)
  assert out.shape == (1, 120, 160, 11)


@pytest.mark.parametrize("size", [(30, 40), (32, 42), (4, 8), (33, 33)])
def test_rejects_sizes_that_are_not_multiples_of_4(size):
  with pytest.raises(ValueError, match="multiples of 4"):
    _shape(models.FCNTiny(), size)


def test_rejects_a_backbone_at_the_wrong_stride():
  model = fcn.FCN(backbone=models.ResNetTiny, pyramid_widths=(8,), level_width=8,
                  upsample_width=8)  # ResNetTiny: stride-1 stem, 2 stages -> 1/2 size
  with pytest.raises(ValueError, match="1/4"):
    _shape(model, (32, 32))


def test_bfloat16_computation_returns_float32_logits():
  out, variables = _shape(models.FCNTiny(dtype=jnp.bfloat16), (32, 32))
  assert out.dtype == jnp.float32
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(variables["params"]))


def test_book_parameter_count():
  """ResNet56v2 plus the book's head: pyramid convs 512, level convs 256, tconvs 256."""
  _, variables = _shape(models.FCNBook(), (64, 64), batch=1)
  _, backbone = _shape(models.ResNet56v2(), (64, 64), batch=1)
  n_backbone = models.count_params(backbone["params"])
  c, p, lw, up, k = 256, 512, 256, 256, 11  # backbone channels, pyramid, level, up, classes
  conv_bn = lambda cin, cout: 9 * cin * cout + 2 * cout  # no conv bias before BatchNorm
  head = (conv_bn(c, p) + conv_bn(p, p)                         # strided pyramid convs
          + conv_bn(c, lw) + 2 * conv_bn(p, lw)                 # one per non-main level
          + conv_bn(c + 3 * lw, up) + conv_bn(up, up)           # two transposed convs
          + up * k + k)                                         # 1 x 1 classifier
  total = models.count_params(variables["params"])
  assert total == n_backbone + head
  assert 10_000_000 < total < 12_500_000  # 11.1 M; ResNet56v2 itself is 1.66 M
  assert 1_600_000 < n_backbone < 1_700_000


@pytest.mark.parametrize("kernel,strides", [((3, 3), (2, 2)), ((2, 2), (2, 2)),
                                            ((4, 4), (2, 2)), ((1, 1), (2, 2)),
                                            ((5, 3), (2, 3)), ((3, 3), (1, 1))])
def test_subpixel_conv_transpose_equals_flax_conv_transpose(kernel, strides):
  x = jax.random.normal(jax.random.key(1), (2, 5, 7, 3))
  ref_layer = nn.ConvTranspose(4, kernel, strides=strides, padding="SAME")
  layer = fcn.SubpixelConvTranspose(4, kernel, strides)
  variables = {"params": {"kernel": jax.random.normal(jax.random.key(2), (*kernel, 3, 4)),
                          "bias": jax.random.normal(jax.random.key(3), (4,))}}
  assert jax.tree.map(jnp.shape, jax.eval_shape(layer.init, _KEY, x)) == jax.tree.map(
      jnp.shape, variables)

  @jax.jit
  def outputs_and_grads(variables, x):
    def run(m):
      loss = lambda v, x: jnp.sum(jnp.sin(m.apply(v, x)))
      return m.apply(variables, x), jax.grad(loss, argnums=(0, 1))(variables, x)
    return run(layer), run(ref_layer)

  (got, g_got), (ref, g_ref) = outputs_and_grads(variables, x)
  assert got.shape == (2, 5 * strides[0], 7 * strides[1], 4)
  np.testing.assert_allclose(got, ref, atol=1e-5, rtol=1e-5)
  # Same gradients with respect to the kernel, the bias and the input.
  for a, b in zip(jax.tree.leaves(g_got), jax.tree.leaves(g_ref)):
    np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def trained():
  """FCNTiny, a few Adam steps on one fixed batch whose mask is a function of the image."""
  model = models.FCNTiny(num_classes=3)
  # Piecewise-constant 4 x 4 blocks, cropped to 32 x 40: regions, as in a scene.
  blocks = jax.random.uniform(jax.random.key(3), (2, 8, 10, 3))
  x = jnp.repeat(jnp.repeat(blocks, 4, axis=1), 4, axis=2)[:, :32, :40]
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
