"""Tests of SegNet (``jaxvision.models.segnet``).

The key property: every decoder block unpools its input to exactly the positions where the
matching encoder block's max pool took its maxima (checked on the sown intermediates against
a NumPy scatter and a NumPy 2 x 2 argmax), odd sizes included.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxvision import models
from tests.models._segmentation import KEY, shapes


@pytest.mark.parametrize("size", [(32, 40), (33, 41), (17, 23), (4, 4), (5, 9), (120, 160)])
def test_logits_have_the_image_size(size):
  out, _ = shapes(models.SegNetTiny(num_classes=5), size)
  assert out.shape == (2, *size, 5) and out.dtype == jnp.float32


def test_small_variant_shapes_at_the_cpu_size():
  out, _ = shapes(models.SegNetSmall(), (121, 161), batch=1)
  assert out.shape == (1, 121, 161, 11)


def test_rejects_images_smaller_than_the_pools():
  with pytest.raises(ValueError, match=">= 16"):
    shapes(models.SegNetSmall(), (15, 40))


@pytest.mark.parametrize("kwargs", [{"widths": ()}, {"convs_per_block": (1, 2, 3)},
                                    {"convs_per_block": 0}])
def test_rejects_bad_configurations(kwargs):
  with pytest.raises(ValueError):
    shapes(models.SegNet(**{"widths": (4, 8), **kwargs}), (16, 16))


def test_paper_parameter_count():
  """The VGG16-based SegNet of the paper: 29.5 M parameters (its Table 6)."""
  _, variables = shapes(models.SegNet(), (32, 32), batch=1)
  assert 29_000_000 < models.count_params(variables["params"]) < 30_000_000


def _np_window_argmax(e):
  """``[B, H//2, W//2, C]`` flat index ``y * W + x`` of each 2 x 2 window's first maximum."""
  b, h, w, c = e.shape
  ho, wo = h // 2, w // 2
  win = e[:, :2 * ho, :2 * wo].reshape(b, ho, 2, wo, 2, c).transpose(0, 1, 3, 5, 2, 4)
  k = win.reshape(b, ho, wo, c, 4).argmax(-1)  # row-major in the window: first wins
  dy, dx = k // 2, k % 2
  rows = 2 * np.arange(ho)[None, :, None, None] + dy
  cols = 2 * np.arange(wo)[None, None, :, None] + dx
  return rows * w + cols


def _np_unpool(x, argmax, shape):
  b, ho, wo, c = x.shape
  out = np.zeros((b, shape[0] * shape[1], c), x.dtype)
  bi, _, _, ci = np.indices(x.shape)
  out[bi.ravel(), argmax.ravel(), ci.ravel()] = x.ravel()
  return out.reshape(b, *shape, c)


@pytest.mark.parametrize("size", [(16, 20), (17, 23)])
def test_decoder_unpools_to_the_encoders_argmax_positions(size):
  model = models.SegNet(num_classes=3, widths=(3, 4, 5), convs_per_block=1)
  x = jax.random.normal(jax.random.key(1), (2, *size, 3))

  @jax.jit
  def run(x):
    variables = model.init(KEY, x, train=False)
    return model.apply(variables, x, train=False, mutable=["intermediates"])

  out, state = run(x)
  assert out.shape == (2, *size, 3)
  inter = jax.tree.map(np.asarray, state["intermediates"])
  for i in range(3):
    (e,), (a,) = inter[f"encoder{i}"], inter[f"argmax{i}"]
    (d,), (u,) = inter[f"decoder_input{i}"], inter[f"unpooled{i}"]
    # The encoder's indices are its 2 x 2 windows' argmaxes ...
    np.testing.assert_array_equal(a, _np_window_argmax(e))
    # ... and the decoder writes its input there and zeros everywhere else.
    assert u.shape == e.shape
    np.testing.assert_array_equal(u, _np_unpool(d, a, e.shape[1:3]))
    if e.shape[1] % 2:
      assert not u[:, -1].any()  # the row the VALID pool dropped stays empty
  # The deepest decoder block starts from the pooled encoder output itself.
  (e,), (a,), (d,) = inter["encoder2"], inter["argmax2"], inter["decoder_input2"]
  pooled = np.take_along_axis(e.reshape(e.shape[0], -1, e.shape[-1]),
                              a.reshape(a.shape[0], -1, a.shape[-1]), axis=1)
  np.testing.assert_array_equal(d, pooled.reshape(d.shape))
