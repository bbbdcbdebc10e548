"""Tests of ROI Align, ROI Pool and multi-scale ROI Align (``jaxvision.ops.roi``).

Oracle: ``jaxvision.reference.roi`` (loops over every sample, float64), on random boxes that
run past every border, zero and negative (inverted) sizes, both ``aligned``, sampling ratios
-1, 0, 1, 2, 3, several scales, both box layouts and a list of boxes per image. Golden values
from the issue (a 5 x 5 ``arange`` map). Gradients: finite differences, bit-identical across
runs, finite on degenerate boxes; ROI Pool's gradient goes to the oracle's argmax.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from jax.test_util import check_grads

from jaxvision import ops
from jaxvision.ops import roi
from jaxvision.reference import roi as ref


def _rois(rng, k, batch, lo=-6.0, hi=16.0, bad_index=False):
  """Random ``[K, 5]`` rows: corners anywhere in [lo, hi] (so inverted and past the border),
  a few zero-size boxes."""
  index = rng.integers(-1 if bad_index else 0, batch + (1 if bad_index else 0), k)
  xy = rng.uniform(lo, hi, size=(k, 4))
  xy[: k // 8, 2] = xy[: k // 8, 0]  # zero width
  xy[k // 8: k // 4, 3] = xy[k // 8: k // 4, 1]  # zero height
  return np.concatenate([index[:, None], xy], axis=1).astype(np.float32)


def test_golden_values_from_the_issue():
  f = jnp.arange(25.0).reshape(1, 5, 5, 1)
  box = jnp.array([[0.0, 1, 1, 3, 3]])
  out = ops.roi_align(f, box, output_size=4)
  np.testing.assert_allclose(out[0, 0, :, 0], [7.5, 8.0, 8.5, 9.0], rtol=1e-6)
  out = ops.roi_align(f, box, output_size=4, aligned=True)
  np.testing.assert_allclose(out[0, 0, :, 0], [4.5, 5.0, 5.5, 6.0], rtol=1e-6)
  # By hand: the 2 x 2 box (1, 1, 3, 3) in 4 x 4 bins of 0.5; one sample per bin at
  # 1.25 + 0.5 p (0.75 + 0.5 p aligned); value 5 y + x on the arange map.
  np.testing.assert_allclose(ops.roi_align(f, box, output_size=4)[0, :, 0, 0],
                             [5 * y + 1.25 for y in (1.25, 1.75, 2.25, 2.75)], rtol=1e-6)


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 0, 1, 2, 3])
def test_roi_align_matches_the_oracle(aligned, sampling_ratio):
  rng = np.random.default_rng(sampling_ratio + 1 + 10 * aligned)
  f = rng.normal(size=(2, 9, 11, 3)).astype(np.float32)
  rois = _rois(rng, 48, 2)
  fn = jax.jit(lambda f, r, s: roi.roi_align(f, r, output_size=(3, 4), spatial_scale=s,
                                             sampling_ratio=sampling_ratio, aligned=aligned),
               static_argnums=2)
  for scale in (1.0, 0.5, 0.7):
    want = ref.roi_align(f, rois, output_size=(3, 4), spatial_scale=scale,
                         sampling_ratio=sampling_ratio, aligned=aligned)
    np.testing.assert_allclose(fn(f, rois, scale), want, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("aligned", [False, True])
def test_roi_align_exact_grids_under_jit(aligned):
  """Box sizes that are exact multiples of the output size: ceil(21 / 7) must be 3, not 4
  (XLA multiplies by a rounded reciprocal)."""
  rng = np.random.default_rng(1)
  f = rng.normal(size=(1, 30, 30, 2)).astype(np.float32)
  rois = np.array([[0, 0, 0, 14, 14], [0, 1, 1, 22, 8], [0, 2, 3, 9, 24],
                   [0, 0.5, 0.5, 7.5, 21.5], [0, 3, 3, 24, 24], [0, 0, 0, 7, 7]], np.float32)
  got = jax.jit(lambda f, r: ops.roi_align(f, r, output_size=7, aligned=aligned))(f, rois)
  np.testing.assert_allclose(got, ref.roi_align(f, rois, output_size=7, aligned=aligned),
                             atol=2e-5, rtol=1e-5)


def test_box_layouts_agree():
  rng = np.random.default_rng(2)
  f = rng.normal(size=(3, 8, 10, 4)).astype(np.float32)
  padded = rng.uniform(-3, 12, size=(3, 5, 4)).astype(np.float32)
  rows = np.concatenate([np.repeat(np.arange(3.0), 5)[:, None], padded.reshape(15, 4)], 1)
  want = ref.roi_align(f, rows, output_size=2, spatial_scale=0.8).reshape(3, 5, 2, 2, 4)
  kw = dict(output_size=2, spatial_scale=0.8)
  np.testing.assert_allclose(ops.roi_align(f, padded, **kw), want, atol=2e-5)
  np.testing.assert_allclose(ops.roi_align(f, rows, **kw), want.reshape(15, 2, 2, 4), atol=2e-5)
  listed = ops.roi_align(f, [padded[0], padded[1][:2], padded[2]], **kw)
  np.testing.assert_allclose(listed, np.concatenate([want[0], want[1][:2], want[2]]), atol=2e-5)
  want_pool, _ = ref.roi_pool(f, rows, output_size=2, spatial_scale=0.8)
  np.testing.assert_array_equal(ops.roi_pool(f, padded, output_size=2, spatial_scale=0.8),
                                want_pool.reshape(3, 5, 2, 2, 4).astype(np.float32))


def test_batch_index_out_of_range_or_nan_gives_zeros():
  f = np.ones((2, 4, 4, 1), np.float32)
  rois = np.array([[2, 0, 0, 3, 3], [-1, 0, 0, 3, 3], [np.nan, 0, 0, 3, 3], [1.7, 0, 0, 3, 3],
                   [0, np.nan, 0, 3, 3]], np.float32)
  out = np.asarray(ops.roi_align(f, rois, output_size=2))
  np.testing.assert_array_equal(out[[0, 1, 2, 4]], 0.0)
  np.testing.assert_allclose(out[3], 1.0)  # 1.7 truncates to image 1, as torchvision's cast
  pooled = np.asarray(ops.roi_pool(f, rois, output_size=2))
  np.testing.assert_array_equal(pooled[[0, 1, 2, 4]], 0.0)
  np.testing.assert_array_equal(pooled[3], 1.0)


def test_aligned_empty_box_is_zero_and_unaligned_is_one_pixel():
  f = jnp.arange(36.0).reshape(1, 6, 6, 1)
  box = jnp.array([[0.0, 2, 2, 2, 2], [0.0, 3, 3, 1, 1]])  # zero size; inverted
  np.testing.assert_array_equal(ops.roi_align(f, box, output_size=2, aligned=True), 0.0)
  # Unaligned: clamped to a 1 x 1 box from (2, 2): samples at 2.25 and 2.75.
  out = ops.roi_align(f, box, output_size=2)
  np.testing.assert_allclose(out[0, :, :, 0], [[6 * 2.25 + 2.25, 6 * 2.25 + 2.75],
                                               [6 * 2.75 + 2.25, 6 * 2.75 + 2.75]], rtol=1e-6)


def test_roi_align_gradient_finite_differences_and_deterministic():
  rng = np.random.default_rng(3)
  f = jnp.asarray(rng.normal(size=(2, 6, 7, 2)).astype(np.float32))
  rois = jnp.asarray(_rois(rng, 12, 2, lo=-2, hi=9))
  fn = lambda f: ops.roi_align(f, rois, output_size=3, sampling_ratio=-1)
  check_grads(fn, (f,), order=1, modes=["rev"], atol=2e-2, rtol=2e-2, eps=1e-2)
  w = jnp.asarray(rng.normal(size=fn(f).shape).astype(np.float32))
  grad = jax.jit(jax.grad(lambda f: jnp.sum(fn(f) * w)))
  g1, g2 = np.asarray(grad(f)), np.asarray(grad(f + 0.0))
  assert np.array_equal(g1, g2)  # bit-identical
  # The op is linear in the features: the gradient is the oracle applied to the adjoint,
  # i.e. <grad, e> = sum(w * oracle(e)) for any map e.
  e = rng.normal(size=f.shape)
  np.testing.assert_allclose(
      np.sum(g1 * e),
      np.sum(np.asarray(w) * ref.roi_align(e, np.asarray(rois), output_size=3)), rtol=1e-4)


def test_gradients_finite_on_degenerate_boxes():
  f = jnp.ones((1, 5, 5, 1))
  rois = jnp.array([[0.0, 2, 2, 2, 2], [0, 4, 4, 1, 1], [0, -50, -50, -40, -40],
                    [0, 0, 0, 1e9, 1e9], [0, np.nan, 0, 2, 2]])
  for aligned in (False, True):
    for sr in (-1, 2):
      g_f, g_b = jax.grad(lambda f, r: jnp.sum(ops.roi_align(
          f, r, output_size=2, sampling_ratio=sr, aligned=aligned)), argnums=(0, 1))(f, rois)
      assert np.isfinite(np.asarray(g_f)).all()
      assert np.isfinite(np.asarray(g_b)[:4]).all()


def test_roi_align_dtypes():
  f = np.random.default_rng(4).normal(size=(1, 6, 6, 2))
  rois = np.array([[0, 0.5, 1, 4, 5]], np.float32)
  out = ops.roi_align(jnp.asarray(f, jnp.bfloat16), rois, output_size=2)
  assert out.dtype == jnp.bfloat16
  out = ops.roi_align(np.arange(36).reshape(1, 6, 6, 1), rois, output_size=2)
  assert out.dtype == jnp.float32
  np.testing.assert_allclose(out, ref.roi_align(np.arange(36.0).reshape(1, 6, 6, 1), rois,
                                                output_size=2), rtol=1e-5)


@settings(max_examples=6, deadline=None)
@given(st.floats(0.0, 5.0), st.floats(0.0, 5.0), st.floats(1.5, 5.0), st.floats(1.5, 5.0),
       st.integers(1, 4), st.integers(-1, 3), st.booleans())
def test_constant_map_inside_the_map_is_constant(x, y, w, h, out, sr, aligned):
  """A box whose samples all lie inside the map averages a constant map to that constant."""
  f = jnp.full((1, 12, 12, 1), 3.0)
  box = jnp.array([[0.0, x + 1, y + 1, x + 1 + w, y + 1 + h]])
  np.testing.assert_allclose(
      ops.roi_align(f, box, output_size=out, sampling_ratio=sr, aligned=aligned), 3.0,
      rtol=1e-5)


@settings(max_examples=6, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 3), st.integers(1, 4), st.integers(-1, 2))
def test_roi_align_oracle_property(seed, batch, out, sr):
  rng = np.random.default_rng(seed)
  f = rng.normal(size=(batch, int(rng.integers(1, 7)), int(rng.integers(1, 7)), 2))
  rois = _rois(rng, 6, batch, lo=-3, hi=9)
  aligned = bool(rng.integers(0, 2))
  np.testing.assert_allclose(
      ops.roi_align(f.astype(np.float32), rois, output_size=out, sampling_ratio=sr,
                    aligned=aligned),
      ref.roi_align(f, rois, output_size=out, sampling_ratio=sr, aligned=aligned),
      atol=2e-5, rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# ROI Pool.


@pytest.mark.parametrize("kind", ["normal", "ties", "nan", "neg_inf"])
def test_roi_pool_matches_the_oracle(kind):
  rng = np.random.default_rng(["normal", "ties", "nan", "neg_inf"].index(kind))
  f = rng.normal(size=(2, 9, 11, 3)).astype(np.float32)
  if kind == "ties":
    f = rng.integers(0, 3, size=f.shape).astype(np.float32)
  elif kind == "nan":
    f[f < 0] = np.nan
  elif kind == "neg_inf":
    f[f < 0.5] = -np.inf
  rois = _rois(rng, 60, 2, bad_index=True)
  for scale in (1.0, 0.7, 0.25):
    want, _ = ref.roi_pool(f, rois, output_size=(3, 4), spatial_scale=scale)
    got = jax.jit(lambda f, r: ops.roi_pool(f, r, output_size=(3, 4), spatial_scale=scale))(
        f, rois)
    np.testing.assert_array_equal(got, want.astype(np.float32))


def test_roi_pool_hand_computed():
  f = jnp.arange(16.0).reshape(1, 4, 4, 1)
  out = ops.roi_pool(f, jnp.array([[0.0, 0, 0, 3, 3], [0, 0.4, 0.4, 1.6, 1.4]]), output_size=2)
  np.testing.assert_array_equal(out[0, :, :, 0], [[5, 7], [13, 15]])
  # (0.4, 0.4, 1.6, 1.4) rounds to (0, 0, 2, 1): 3 columns x 2 rows; bins of 1.5 x 1.
  np.testing.assert_array_equal(out[1, :, :, 0], [[1, 2], [5, 6]])
  # Past the map: an empty bin is 0; a bin of -inf is -FLT_MAX.
  assert float(ops.roi_pool(f, jnp.array([[0.0, 10, 10, 12, 12]]), output_size=1)[0, 0, 0, 0]) == 0
  g = jnp.full((1, 2, 2, 1), -jnp.inf)
  assert float(ops.roi_pool(g, jnp.array([[0.0, 0, 0, 1, 1]]), output_size=1).ravel()[0]) == \
      -roi.FLT_MAX


def test_roi_pool_gradient_goes_to_the_first_maximum():
  rng = np.random.default_rng(5)
  f = rng.integers(0, 3, size=(2, 7, 8, 2)).astype(np.float32)  # many ties
  rois = _rois(rng, 20, 2, lo=-2, hi=9)
  w = rng.normal(size=(20, 3, 2, 2)).astype(np.float32)
  grad = jax.grad(lambda f: jnp.sum(ops.roi_pool(f, rois, output_size=(3, 2)) * w))(
      jnp.asarray(f))
  _, argmax = ref.roi_pool(f, rois, output_size=(3, 2))
  want = np.zeros(f.shape)
  for k in range(20):
    for idx in np.ndindex(3, 2, 2):
      a = argmax[k][idx]
      if a >= 0:
        want[int(rois[k, 0]), a // 8, a % 8, idx[2]] += w[k][idx]
  np.testing.assert_allclose(grad, want, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# FPN levels and multi-scale ROI Align.


def test_fpn_levels_match_the_oracle_and_paper():
  rng = np.random.default_rng(6)
  rois = _rois(rng, 64, 1, lo=0, hi=900)
  want = ref.fpn_levels(rois, k_min=2, k_max=5)
  np.testing.assert_array_equal(ops.fpn_levels(rois[:, 1:], k_min=2, k_max=5), want)
  # 224 x 224 -> k0 = 4 (index 2 from k_min 2); 112 -> 3; 448 -> 5; 1000 clamped to 5.
  boxes = jnp.array([[0.0, 0, 224, 224], [0, 0, 112, 112], [0, 0, 448, 448],
                     [0, 0, 1000, 1000], [5, 5, 5, 9], [9, 9, 1, 1]])
  np.testing.assert_array_equal(ops.fpn_levels(boxes, k_min=2, k_max=5), [2, 1, 3, 3, 0, 0])


def test_multiscale_roi_align_matches_the_oracle():
  rng = np.random.default_rng(7)
  maps = [rng.normal(size=(2, 64 // s, 96 // s, 3)).astype(np.float32) for s in (4, 8, 16, 32)]
  rois = _rois(rng, 24, 2, lo=-10, hi=60)
  rois[:6, 1:] = [0, 0, 40, 60]  # large boxes, top levels
  want = ref.multiscale_roi_align(maps, rois, output_size=3,
                                  spatial_scales=[1 / 4, 1 / 8, 1 / 16, 1 / 32],
                                  canonical_scale=16, canonical_level=4)
  got = ops.multiscale_roi_align(maps, rois, output_size=3, image_size=(64, 96),
                                 canonical_scale=16, canonical_level=4)
  np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-5)
  levels = ref.fpn_levels(rois, k_min=2, k_max=5, canonical_scale=16)
  assert len(set(levels.tolist())) >= 3  # the case uses several levels


# ---------------------------------------------------------------------------------------------
# Bad input.


@pytest.mark.parametrize("call, error, match", [
    (lambda: ops.roi_align(jnp.ones((4, 4, 1)), jnp.zeros((1, 5)), output_size=2),
     ValueError, "`features`"),
    (lambda: ops.roi_align(jnp.ones((1, 4, 4, 1)), jnp.zeros((1, 4)), output_size=2),
     ValueError, "`boxes`"),
    (lambda: ops.roi_align(jnp.ones((2, 4, 4, 1)), jnp.zeros((3, 1, 4)), output_size=2),
     ValueError, "batch size"),
    (lambda: ops.roi_align(jnp.ones((1, 4, 4, 1)), jnp.zeros((1, 5)), output_size=0),
     ValueError, "`output_size`"),
    (lambda: ops.roi_align(jnp.ones((1, 4, 4, 1)), jnp.zeros((1, 5)), output_size=2.0),
     TypeError, "`output_size`"),
    (lambda: ops.roi_align(jnp.ones((1, 4, 4, 1)), jnp.zeros((1, 5)), output_size=2,
                           spatial_scale=0.0), ValueError, "`spatial_scale`"),
    (lambda: ops.roi_align(jnp.ones((1, 4, 4, 1)), jnp.zeros((1, 5)), output_size=2,
                           sampling_ratio=1.5), TypeError, "`sampling_ratio`"),
    (lambda: ops.roi_align(jnp.ones((1, 4, 4, 1)), jnp.zeros((1, 5)), output_size=2,
                           aligned=1), TypeError, "`aligned`"),
    (lambda: ops.roi_align(jnp.ones((1, 4, 4, 1)), [jnp.zeros((2, 3))], output_size=2),
     ValueError, r"`boxes\[0\]`"),
    (lambda: ops.roi_pool(jnp.ones((1, 4, 4, 1)), jnp.zeros((1, 6)), output_size=2),
     ValueError, "`boxes`"),
    (lambda: ops.multiscale_roi_align([jnp.ones((1, 8, 8, 1))], jnp.zeros((1, 5)),
                                      output_size=2), ValueError, "image_size"),
    (lambda: ops.multiscale_roi_align([jnp.ones((1, 8, 8, 1)), jnp.ones((1, 2, 2, 1))],
                                      jnp.zeros((1, 5)), output_size=2, image_size=(32, 32)),
     ValueError, "consecutive"),
])
def test_bad_input(call, error, match):
  with pytest.raises(error, match=match):
    call()
