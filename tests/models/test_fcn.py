"""Tests of the book's FCN (``jaxvision.models.fcn``) and its sub-pixel transposed conv.

Shapes and parameter counts are traced with ``jax.eval_shape`` (no compilation); the tiny
variant's BatchNorm modes and optimizer steps are tested with the other segmentation models
in ``test_segmentation_models.py``.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxvision import models
from jaxvision.models import fcn
from tests.models._segmentation import KEY, shapes


@pytest.mark.parametrize("size", [(32, 40), (120, 160), (36, 44), (8, 8), (64, 12)])
def test_logits_have_the_image_size(size):
  out, _ = shapes(models.FCNTiny(num_classes=5), size)
  assert out.shape == (2, *size, 5) and out.dtype == jnp.float32


def test_small_variant_shapes_at_the_cpu_size():
  out, _ = shapes(models.FCNSmall(), (120, 160), batch=1)
  assert out.shape == (1, 120, 160, 11)


def test_medium_variant_is_deeper_and_wider_than_small():
  out, variables = shapes(models.FCNMedium(), (120, 160), batch=1)
  _, small = shapes(models.FCNSmall(), (120, 160), batch=1)
  assert out.shape == (1, 120, 160, 11)
  count = lambda v: sum(x.size for x in jax.tree.leaves(v["params"]))  # noqa: E731
  assert count(variables) > count(small)
  assert len(variables["params"]["backbone"]) > len(small["params"]["backbone"])


@pytest.mark.parametrize("size", [(30, 40), (32, 42), (4, 8), (33, 33)])
def test_rejects_sizes_that_are_not_multiples_of_4(size):
  with pytest.raises(ValueError, match="multiples of 4"):
    shapes(models.FCNTiny(), size)


def test_rejects_a_backbone_at_the_wrong_stride():
  model = fcn.FCN(backbone=models.ResNetTiny, pyramid_widths=(8,), level_width=8,
                  upsample_width=8)  # ResNetTiny: stride-1 stem, 2 stages -> 1/2 size
  with pytest.raises(ValueError, match="1/4"):
    shapes(model, (32, 32))


def test_bfloat16_computation_returns_float32_logits():
  out, variables = shapes(models.FCNTiny(dtype=jnp.bfloat16), (32, 32))
  assert out.dtype == jnp.float32
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(variables["params"]))


def test_book_parameter_count():
  """ResNet56v2 plus the book's head: pyramid convs 512, level convs 256, tconvs 256."""
  _, variables = shapes(models.FCNBook(), (64, 64), batch=1)
  _, backbone = shapes(models.ResNet56v2(), (64, 64), batch=1)
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
  assert jax.tree.map(jnp.shape, jax.eval_shape(layer.init, KEY, x)) == jax.tree.map(
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
