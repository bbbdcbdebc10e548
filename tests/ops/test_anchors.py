"""Tests of the anchor generators (``jaxvision.ops.anchors``) against the NumPy oracles.

The ops build anchors with vectorised NumPy; the oracles in ``jaxvision.reference.anchors``
append one box at a time in the documented order. Besides random configurations, the book's
SSD configuration and d2l's printed example are checked by hand.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from jaxvision.ops.anchors import multibox_prior, ssd_anchors
from jaxvision.reference import anchors as ref

_EXAMPLES = settings(max_examples=40, deadline=None)

_positive = st.floats(0.05, 4.0, allow_nan=False, allow_infinity=False)


@st.composite
def ssd_configs(draw):
  image = (draw(st.integers(1, 700)), draw(st.integers(1, 700)))
  if draw(st.booleans()):
    image = image + (3,)  # a channel entry, ignored
  levels = draw(st.lists(st.tuples(st.integers(1, 24), st.integers(1, 24)), min_size=1,
                         max_size=5))
  sizes = None
  if draw(st.booleans()):
    sizes = [(draw(st.floats(0.05, 1.0)), draw(st.floats(0.05, 1.0))) for _ in levels]
  ratios = tuple(draw(st.lists(_positive, min_size=1, max_size=4)))
  return image, levels, sizes, ratios


@_EXAMPLES
@given(config=ssd_configs())
def test_ssd_anchors_match_oracle(config):
  image, levels, sizes, ratios = config
  got = ssd_anchors(image, levels, sizes=sizes, aspect_ratios=ratios)
  want = ref.ssd_anchors(image, levels, sizes=sizes, aspect_ratios=ratios)
  assert got.dtype == jnp.float32
  assert got.shape == (sum(h * w for h, w in levels) * (len(ratios) + 1), 4)
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6, atol=1e-3)


@_EXAMPLES
@given(shape=st.tuples(st.integers(1, 20), st.integers(1, 20)),
       sizes=st.lists(st.floats(0.05, 1.0), min_size=1, max_size=4),
       ratios=st.lists(_positive, min_size=1, max_size=4))
def test_multibox_prior_matches_oracle(shape, sizes, ratios):
  got = multibox_prior(shape, sizes=sizes, ratios=ratios)
  want = ref.multibox_prior(shape, sizes=sizes, ratios=ratios)
  assert got.dtype == jnp.float32
  assert got.shape == (shape[0] * shape[1] * (len(sizes) + len(ratios) - 1), 4)
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6, atol=1e-6)


def test_ssd_anchors_book_configuration_by_hand():
  """480 x 640 input, 4 levels (30x40, 15x20, 8x10, 4x5), ratios (1, 2, 0.5): 6400 anchors."""
  levels = [(30, 40), (15, 20), (8, 10), (4, 5)]
  anchors = np.asarray(ssd_anchors((480, 640, 3), levels))
  assert anchors.shape == (4 * (1200 + 300 + 80 + 20), 4)
  s = np.linspace(0.2, 0.9, 5)  # 0.2, 0.375, 0.55, 0.725, 0.9
  # Level 0, point (0, 0): centre (8, 8) (stride 16 both ways).
  first = anchors[:4]
  w, h = 640 * 0.2, 480 * 0.2
  np.testing.assert_allclose(first[0], [8 - w / 2, 8 - h / 2, 8 + w / 2, 8 + h / 2], rtol=1e-6)
  r2 = math.sqrt(2)
  np.testing.assert_allclose(first[1], [8 - w * r2 / 2, 8 - h / r2 / 2, 8 + w * r2 / 2,
                                        8 + h / r2 / 2], rtol=1e-6)
  np.testing.assert_allclose(first[2], [8 - w / r2 / 2, 8 - h * r2 / 2, 8 + w / r2 / 2,
                                        8 + h * r2 / 2], rtol=1e-6)
  s2 = math.sqrt(0.2 * 0.375)
  np.testing.assert_allclose(first[3], [8 - 320 * s2, 8 - 240 * s2, 8 + 320 * s2, 8 + 240 * s2],
                             rtol=1e-6)
  # Level 0, point (y=0, x=1) comes next (row-major), shifted by one stride in x.
  np.testing.assert_allclose(anchors[4:8], first + [16, 0, 16, 0], rtol=1e-6)
  # Level 3 (4x5 map, stride 128 x 120) starts at anchor 4 * 1580; size s_3 = 0.725.
  last_level = anchors[4 * 1580:]
  assert len(last_level) == 4 * 20
  cx, cy = 64.0, 60.0
  np.testing.assert_allclose(last_level[0], [cx - 320 * s[3], cy - 240 * s[3],
                                             cx + 320 * s[3], cy + 240 * s[3]], rtol=1e-6)
  # The very last anchor: point (3, 4), square box of size sqrt(0.725 * 0.9).
  cx, cy, s2 = 4.5 * 128, 3.5 * 120, math.sqrt(0.725 * 0.9)
  np.testing.assert_allclose(anchors[-1], [cx - 320 * s2, cy - 240 * s2, cx + 320 * s2,
                                           cy + 240 * s2], rtol=1e-6)


def test_ssd_anchors_tiny_configuration_by_hand():
  got = ssd_anchors((4, 4), [(2, 2)], sizes=[(0.5, 1.0)], aspect_ratios=(1, 4))
  # Centres (1, 1), (3, 1), (1, 3), (3, 3); boxes 2x2, 4x1 (ratio 4: 4 * 0.5 * 2 by
  # 4 * 0.5 / 2) and the 4x4 square.
  want = []
  for cy in (1.0, 3.0):
    for cx in (1.0, 3.0):
      for w, h in ((2, 2), (4, 1), (4, 4)):
        want.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
  np.testing.assert_allclose(np.asarray(got), want, atol=1e-6)
  # A trailing channel entry is ignored.
  np.testing.assert_array_equal(
      np.asarray(ssd_anchors((4, 4, 3), [(2, 2, 16)], sizes=[(0.5, 1.0)],
                             aspect_ratios=(1, 4))), np.asarray(got))


def test_ssd_anchors_usable_inside_jit():
  @jax.jit
  def shifted(offset):
    return ssd_anchors((32, 32), [(4, 4), (2, 2)]) + offset

  out = shifted(jnp.float32(1.0))
  np.testing.assert_allclose(np.asarray(out),
                             np.asarray(ssd_anchors((32, 32), [(4, 4), (2, 2)])) + 1.0)


def test_multibox_prior_d2l_example():
  """d2l 14.4: a 561 x 728 image, sizes (0.75, 0.5, 0.25), ratios (1, 2, 0.5)."""
  y = multibox_prior((561, 728), sizes=(0.75, 0.5, 0.25), ratios=(1, 2, 0.5))
  assert y.shape == (2042040, 4)  # 561 * 728 * 5
  boxes = np.asarray(y).reshape(561, 728, 5, 4)
  # d2l prints boxes[250, 250, 0, :] as tensor([0.06, 0.07, 0.63, 0.82]).
  np.testing.assert_allclose(boxes[250, 250, 0].round(2), [0.06, 0.07, 0.63, 0.82])
  # By hand: centre (250.5 / 728, 250.5 / 561), width 0.75 * 561 / 728, height 0.75.
  cx, cy, w, h = 250.5 / 728, 250.5 / 561, 0.75 * 561 / 728, 0.75
  np.testing.assert_allclose(boxes[250, 250, 0], [cx - w / 2, cy - h / 2, cx + w / 2,
                                                  cy + h / 2], rtol=1e-6)
  # (The values (-0.0316, 0.0706, 0.7184, 0.8206) quoted for this box elsewhere come from an
  # older d2l/d2lzh version: centre (250 / 728, 250 / 561) and width 0.75, not scaled by
  # h / w. They contradict the current d2l code and its printed output, so they are not used.)
  # The pixel's 5 boxes: (0.75, 1), (0.5, 1), (0.25, 1), (0.75, 2), (0.75, 0.5).
  for k, (s, r) in enumerate([(0.75, 1), (0.5, 1), (0.25, 1), (0.75, 2), (0.75, 0.5)]):
    w, h = s * math.sqrt(r) * 561 / 728, s / math.sqrt(r)
    np.testing.assert_allclose(boxes[250, 250, k], [cx - w / 2, cy - h / 2, cx + w / 2,
                                                    cy + h / 2], rtol=1e-6)


def test_anchors_bad_input():
  with pytest.raises(ValueError, match="image_shape"):
    ssd_anchors((480,), [(4, 4)])
  with pytest.raises(ValueError, match="image_shape"):
    ssd_anchors((480, 0), [(4, 4)])
  with pytest.raises(ValueError, match="feature_shapes"):
    ssd_anchors((480, 640), [])
  with pytest.raises(ValueError, match="feature_shapes"):
    ssd_anchors((480, 640), [(4,)])
  with pytest.raises(ValueError, match="feature_shapes"):
    ssd_anchors((480, 640), [(4, 2.5)])
  with pytest.raises(ValueError, match="sizes"):
    ssd_anchors((480, 640), [(4, 4), (2, 2)], sizes=[(0.2, 0.3)])
  with pytest.raises(ValueError, match="sizes"):
    ssd_anchors((480, 640), [(4, 4)], sizes=[(0.2, -0.3)])
  with pytest.raises(ValueError, match="aspect_ratios"):
    ssd_anchors((480, 640), [(4, 4)], aspect_ratios=(1, -2))
  with pytest.raises(ValueError, match="aspect_ratios"):
    ssd_anchors((480, 640), [(4, 4)], aspect_ratios=())
  with pytest.raises(ValueError, match="feature_shape"):
    multibox_prior((1, 3, 8, 8), sizes=(0.5,), ratios=(1,))
  with pytest.raises(ValueError, match="sizes"):
    multibox_prior((8, 8), sizes=(), ratios=(1,))
  with pytest.raises(ValueError, match="ratios"):
    multibox_prior((8, 8), sizes=(0.5,), ratios=(0,))
