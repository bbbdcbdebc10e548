"""Tests of the box geometry ops (``jaxvision.ops.boxes``) against the NumPy oracles.

Every pairwise function is compared with its float64 oracle in ``jaxvision.reference.boxes``
on boxes drawn by hypothesis: uniform, clustered (heavily overlapping, detector-like),
degenerate (zero width or height, inverted, points, duplicates) and integer-grid boxes,
``N, M`` from 0 to 300 (plus fixed 2000-box cases), under ``jit`` and without, single and
batched (``[B, N, 4]``, and leading dimensions that broadcast), in float32 and bfloat16.

To bound compilation, inputs are padded to a few bucket sizes and the result is sliced, so
each jitted function compiles once per bucket pair.
"""

from __future__ import annotations

import functools
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from jaxvision.ops import boxes as B
from jaxvision.reference import boxes as ref

_BUCKETS = (8, 64, 320)
_MAX_N = 300
_EXAMPLES = settings(max_examples=40, deadline=None)
_FEW_EXAMPLES = settings(max_examples=20, deadline=None)
_RTOL, _ATOL = 1e-5, 1e-5  # float32 vs float64 on coordinates up to ~1000

_PAIRWISE = {
    "box_iou": (B.box_iou, ref.box_iou),
    "generalized_box_iou": (B.generalized_box_iou, ref.generalized_box_iou),
    "distance_box_iou": (B.distance_box_iou, ref.distance_box_iou),
    "complete_box_iou": (B.complete_box_iou, ref.complete_box_iou),
}
_KINDS = ("uniform", "clustered", "degenerate", "integer")


# ---------------------------------------------------------------------------------------------
# Inputs.


def make_boxes(rng: np.random.Generator, n: int, kind: str) -> np.ndarray:
  """``[n, 4]`` float32 xyxy boxes of one of the ``_KINDS``."""
  if kind == "uniform":
    xy = rng.uniform(0, 1000, (n, 2))
    wh = rng.uniform(0, 200, (n, 2))
  elif kind == "clustered":
    k = max(1, n // 20)
    centres = rng.uniform(100, 900, (k, 2))
    sizes = rng.uniform(20, 200, (k, 2))
    owner = rng.integers(0, k, n)
    wh = sizes[owner] * rng.uniform(0.8, 1.2, (n, 2))
    xy = centres[owner] + rng.normal(0, 0.05, (n, 2)) * sizes[owner] - wh / 2
  elif kind == "degenerate":
    xy = rng.uniform(0, 50, (n, 2))
    wh = rng.choice([-10.0, -1.0, 0.0, 0.0, 5.0, 20.0], (n, 2))
    # A few exact duplicates and points.
    if n >= 2:
      xy[1::4], wh[1::4] = xy[0::4][: len(xy[1::4])], wh[0::4][: len(wh[1::4])]
  elif kind == "integer":
    xy = rng.integers(0, 16, (n, 2)).astype(np.float64)
    wh = rng.integers(-2, 9, (n, 2)).astype(np.float64)
  else:
    raise ValueError(kind)
  return np.concatenate([xy, xy + wh], axis=1).astype(np.float32).reshape(n, 4)


@st.composite
def box_sets(draw, max_n=_MAX_N):
  """``(boxes1, boxes2)``: two float32 ``[n, 4]`` / ``[m, 4]`` sets (kinds drawn separately)."""
  seed = draw(st.integers(0, 2**32 - 1))
  rng = np.random.default_rng(seed)
  n = draw(st.integers(0, max_n))
  m = draw(st.integers(0, max_n))
  k1 = draw(st.sampled_from(_KINDS))
  k2 = draw(st.sampled_from(_KINDS))
  return make_boxes(rng, n, k1), make_boxes(rng, m, k2)


def _bucket(n: int) -> int:
  return next(b for b in _BUCKETS if b >= n)


def _pad(boxes: np.ndarray, size: int) -> np.ndarray:
  out = np.zeros(boxes.shape[:-2] + (size, 4), boxes.dtype)
  out[..., : boxes.shape[-2], :] = boxes
  return out


@functools.lru_cache(maxsize=None)
def _jitted(name: str):
  return jax.jit(_PAIRWISE[name][0])


def _call_padded(fn, b1: np.ndarray, b2: np.ndarray) -> np.ndarray:
  n, m = b1.shape[-2], b2.shape[-2]
  out = fn(_pad(b1, _bucket(n)), _pad(b2, _bucket(m)))
  return np.asarray(out)[..., :n, :m]


# ---------------------------------------------------------------------------------------------
# Against the oracles.


@pytest.mark.parametrize("name", list(_PAIRWISE))
@_EXAMPLES
@given(sets=box_sets())
def test_pairwise_matches_oracle_jit(name, sets):
  b1, b2 = sets
  got = _call_padded(_jitted(name), b1, b2)
  want = _PAIRWISE[name][1](b1, b2)
  assert got.shape == (len(b1), len(b2))
  np.testing.assert_allclose(got, want, rtol=_RTOL, atol=_ATOL)


@pytest.mark.parametrize("name", list(_PAIRWISE))
@settings(max_examples=10, deadline=None)
@given(sets=box_sets(max_n=32))
def test_pairwise_matches_oracle_eager_exact_shapes(name, sets):
  b1, b2 = sets
  fn, oracle = _PAIRWISE[name]
  got = fn(b1, b2)  # no outer jit, no padding
  assert got.dtype == jnp.float32 and got.shape == (len(b1), len(b2))
  np.testing.assert_allclose(np.asarray(got), oracle(b1, b2), rtol=_RTOL, atol=_ATOL)


@pytest.mark.parametrize("name", list(_PAIRWISE))
@_FEW_EXAMPLES
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 64), m=st.integers(0, 64),
       kind=st.sampled_from(_KINDS))
def test_pairwise_batched_matches_oracle(name, seed, n, m, kind):
  rng = np.random.default_rng(seed)
  batch = 3
  b1 = np.stack([make_boxes(rng, n, kind) for _ in range(batch)])
  b2 = np.stack([make_boxes(rng, m, kind) for _ in range(batch)])
  fn, oracle = _PAIRWISE[name]
  jitted = _jitted(name)
  got = _call_padded(jitted, b1, b2)  # [B, N, 4] x [B, M, 4]
  assert got.shape == (batch, n, m)
  got_bcast = _call_padded(jitted, b1[0], b2)  # [N, 4] x [B, M, 4]
  for i in range(batch):
    np.testing.assert_allclose(got[i], oracle(b1[i], b2[i]), rtol=_RTOL, atol=_ATOL)
    np.testing.assert_allclose(got_bcast[i], oracle(b1[0], b2[i]), rtol=_RTOL, atol=_ATOL)
  # vmap over the batch agrees with the batched call.
  vmapped = _call_padded(_vmapped(name), b1, b2)
  np.testing.assert_allclose(vmapped, got, rtol=1e-6, atol=1e-6)


@functools.lru_cache(maxsize=None)
def _vmapped(name: str):
  return jax.jit(jax.vmap(_PAIRWISE[name][0]))


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
@pytest.mark.parametrize("name", list(_PAIRWISE))
@settings(max_examples=15, deadline=None)
@given(sets=box_sets(max_n=64))
def test_pairwise_half_precision_computes_in_float32(name, dtype, sets):
  b1, b2 = (np.asarray(jnp.asarray(b, dtype)) for b in sets)
  n, m = len(b1), len(b2)
  out = _jitted(name)(_pad(b1, _bucket(n)), _pad(b2, _bucket(m)))
  assert out.dtype == jnp.float32
  # The oracle sees the rounded inputs, so float32 tolerances still apply (a comparison with
  # the unrounded inputs would say nothing: bfloat16 rounds 1000 to a multiple of 4, so a
  # small box can become empty).
  want = _PAIRWISE[name][1](b1.astype(np.float64), b2.astype(np.float64))
  np.testing.assert_allclose(np.asarray(out)[:n, :m], want, rtol=_RTOL, atol=_ATOL)


@pytest.mark.parametrize("name", list(_PAIRWISE))
def test_pairwise_large_fixed_cases(name):
  rng = np.random.default_rng(0)
  n = 2000 if name in ("box_iou", "generalized_box_iou") else 600
  b1 = np.concatenate([make_boxes(rng, n // 2, "uniform"), make_boxes(rng, n // 2, "clustered")])
  b2 = np.concatenate([make_boxes(rng, n // 2, "clustered"), make_boxes(rng, n // 2, "integer")])
  fn, oracle = _PAIRWISE[name]
  np.testing.assert_allclose(np.asarray(jax.jit(fn)(b1, b2)), oracle(b1, b2),
                             rtol=_RTOL, atol=_ATOL)


def test_integer_boxes_are_promoted_to_float32():
  b1 = np.array([[0, 0, 2, 2]], np.int32)
  b2 = np.array([[1, 0, 3, 2], [0, 0, 2, 2]], np.int64)
  for fn, oracle in _PAIRWISE.values():
    got = fn(b1, b2)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(got), oracle(b1, b2), rtol=1e-6)
  assert B.box_area(b1).dtype == jnp.float32
  assert B.box_convert(b1, in_fmt="xyxy", out_fmt="cxcywh").dtype == jnp.float32


# ---------------------------------------------------------------------------------------------
# Hand-computed values.


def test_hand_computed_iou_family():
  unit = jnp.array([[0.0, 0.0, 1.0, 1.0]])
  shifted = jnp.array([[0.5, 0.0, 1.5, 1.0]])
  np.testing.assert_allclose(B.box_iou(unit, shifted), [[1 / 3]], rtol=1e-6)
  # Disjoint: IoU 0; C = [0, 3] x [0, 1] (area 3), union 2 -> GIoU = -1/3.
  far = jnp.array([[2.0, 0.0, 3.0, 1.0]])
  np.testing.assert_allclose(B.box_iou(unit, far), [[0.0]])
  np.testing.assert_allclose(B.generalized_box_iou(unit, far), [[-1 / 3]], rtol=1e-6)
  # DIoU: centres 2 apart, enclosing diagonal^2 = 9 + 1.
  np.testing.assert_allclose(B.distance_box_iou(unit, far), [[-4 / 10]], rtol=1e-6)
  # CIoU of [0,0,2,2] vs [0,0,4,2]: IoU 1/2, rho^2 = 1, c^2 = 20,
  # v = 4/pi^2 (atan 2 - atan 1)^2, alpha = v / (1/2 + v).
  v = 4 / math.pi**2 * (math.atan(2.0) - math.atan(1.0)) ** 2
  want = 0.5 - 1 / 20 - v * v / (0.5 + v)
  got = B.complete_box_iou(jnp.array([[0.0, 0, 2, 2]]), jnp.array([[0.0, 0, 4, 2]]))
  np.testing.assert_allclose(got, [[want]], rtol=1e-6)
  # Nested: [0,0,4,4] contains [1,1,2,2]: IoU 1/16, GIoU = IoU (C is the big box).
  big, small = jnp.array([[0.0, 0, 4, 4]]), jnp.array([[1.0, 1, 2, 2]])
  np.testing.assert_allclose(B.box_iou(big, small), [[1 / 16]], rtol=1e-6)
  np.testing.assert_allclose(B.generalized_box_iou(big, small), [[1 / 16]], rtol=1e-6)


@pytest.mark.parametrize("name", list(_PAIRWISE))
def test_degenerate_boxes_are_zero_not_nan(name):
  fn = _PAIRWISE[name][0]
  degenerate = jnp.array([[0.0, 0, 0, 0], [1, 1, 1, 5], [2, 2, 6, 2], [5, 5, 1, 1]])
  for others in (degenerate, jnp.array([[0.0, 0, 3, 3]])):
    out = np.asarray(fn(degenerate, others))
    assert np.all(np.isfinite(out))
    np.testing.assert_array_equal(np.asarray(B.box_iou(degenerate, others)), 0.0)
    assert np.all(out <= 0.0)  # IoU 0 minus a non-negative penalty


def test_box_convert_and_area_hand_computed():
  xyxy = jnp.array([[10.0, 20.0, 30.0, 60.0]])
  np.testing.assert_allclose(B.box_convert(xyxy, in_fmt="xyxy", out_fmt="xywh"),
                             [[10, 20, 20, 40]])
  np.testing.assert_allclose(B.box_convert(xyxy, in_fmt="xyxy", out_fmt="cxcywh"),
                             [[20, 40, 20, 40]])
  np.testing.assert_allclose(B.box_convert(jnp.array([[20.0, 40, 20, 40]]), in_fmt="cxcywh",
                                           out_fmt="xywh"), [[10, 20, 20, 40]])
  np.testing.assert_allclose(B.box_area(jnp.array([[0.0, 0, 2, 3], [5, 5, 4, 9], [0, 0, 0, 7]])),
                             [6, 0, 0])


# ---------------------------------------------------------------------------------------------
# Formats and areas against the oracles.


@_FEW_EXAMPLES
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 50), kind=st.sampled_from(_KINDS),
       fmts=st.tuples(st.sampled_from(("xyxy", "xywh", "cxcywh")),
                      st.sampled_from(("xyxy", "xywh", "cxcywh"))),
       batched=st.booleans())
def test_box_convert_matches_oracle_and_round_trips(seed, n, kind, fmts, batched):
  rng = np.random.default_rng(seed)
  boxes = make_boxes(rng, n, kind)
  if batched:
    boxes = np.stack([boxes, boxes[::-1]])
  in_fmt, out_fmt = fmts
  got = B.box_convert(boxes, in_fmt=in_fmt, out_fmt=out_fmt)
  assert got.shape == boxes.shape
  np.testing.assert_allclose(np.asarray(got), ref.box_convert(boxes, in_fmt=in_fmt,
                                                              out_fmt=out_fmt),
                             rtol=1e-6, atol=1e-4)
  back = B.box_convert(got, in_fmt=out_fmt, out_fmt=in_fmt)
  np.testing.assert_allclose(np.asarray(back), boxes, rtol=1e-6, atol=1e-3)
  jitted = jax.jit(functools.partial(B.box_convert, in_fmt=in_fmt, out_fmt=out_fmt))
  np.testing.assert_allclose(np.asarray(jitted(boxes)), np.asarray(got), rtol=1e-6, atol=1e-4)


@_FEW_EXAMPLES
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 50), kind=st.sampled_from(_KINDS))
def test_box_area_matches_oracle(seed, n, kind):
  boxes = make_boxes(np.random.default_rng(seed), n, kind)
  got = np.asarray(B.box_area(boxes))
  np.testing.assert_allclose(got, ref.box_area(boxes), rtol=1e-6)
  assert np.all(got >= 0)
  np.testing.assert_allclose(np.asarray(B.box_area(jnp.asarray(boxes, jnp.bfloat16))),
                             ref.box_area(np.asarray(jnp.asarray(boxes, jnp.bfloat16),
                                                     np.float64)), rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# Properties.


@_EXAMPLES
@given(sets=box_sets())
def test_iou_properties(sets):
  b1, b2 = sets
  iou = _call_padded(_jitted("box_iou"), b1, b2)
  iou_t = _call_padded(_jitted("box_iou"), b2, b1)
  np.testing.assert_allclose(iou, iou_t.T, rtol=1e-6, atol=1e-7)  # symmetric
  assert np.all((iou >= 0) & (iou <= 1))
  self_iou = np.diagonal(_call_padded(_jitted("box_iou"), b1, b1))
  positive = ref.box_area(b1) > 0
  np.testing.assert_allclose(self_iou[positive], 1.0, rtol=1e-6)
  np.testing.assert_array_equal(self_iou[~positive], 0.0)

  giou = _call_padded(_jitted("generalized_box_iou"), b1, b2)
  diou = _call_padded(_jitted("distance_box_iou"), b1, b2)
  ciou = _call_padded(_jitted("complete_box_iou"), b1, b2)
  assert np.all((giou >= -1) & (giou <= 1))
  assert np.all(giou <= iou + 1e-6)
  assert np.all(diou <= iou + 1e-6)
  assert np.all(ciou <= diou + 1e-6)
  for out in (giou, diou, ciou):
    assert np.all(np.isfinite(out))


def _grad_boxes() -> np.ndarray:
  """One set holding every awkward case; its pairs with itself cover identical, disjoint,
  touching, nested, point, zero-width, zero-height and inverted pairs."""
  rng = np.random.default_rng(7)
  special = np.array([
      [0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 2.0, 2.0],  # identical
      [5.0, 5.0, 6.0, 7.0],  # disjoint from the first
      [2.0, 0.0, 4.0, 2.0],  # touching edges
      [0.5, 0.5, 1.0, 1.5],  # nested
      [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0],  # points, identical
      [1.0, 1.0, 1.0, 1.0],  # a point inside a box
      [0.0, 0.0, 0.0, 2.0],  # zero width
      [0.0, 0.0, 2.0, 0.0],  # zero height
      [3.0, 3.0, 1.0, 1.0],  # inverted
  ], np.float32)
  return np.concatenate([special] + [make_boxes(rng, 8, kind) for kind in _KINDS])


@pytest.mark.parametrize("name", list(_PAIRWISE))
def test_gradients_are_finite(name):
  fn = _PAIRWISE[name][0]
  boxes = _grad_boxes()
  loss = lambda a, b: jnp.sum(fn(a, b))
  for g in jax.jit(jax.grad(loss, argnums=(0, 1)))(boxes, boxes[::-1]):
    assert np.all(np.isfinite(np.asarray(g))), name
  # The same array on both sides (x - x terms in every coordinate).
  g = jax.jit(jax.grad(lambda a: loss(a, a)))(boxes)
  assert np.all(np.isfinite(np.asarray(g))), name


def test_gradients_match_finite_differences():
  b1 = jnp.array([[0.0, 0.0, 2.0, 3.0]])
  b2 = jnp.array([[1.0, 0.5, 4.0, 2.0]])
  eps = 1e-3
  for name in ("box_iou", "generalized_box_iou", "distance_box_iou"):
    fn = _PAIRWISE[name][0]
    g = jax.grad(lambda a: fn(a, b2)[0, 0])(b1)
    for k in range(4):
      d = jnp.zeros((1, 4)).at[0, k].set(eps)
      fd = (fn(b1 + d, b2)[0, 0] - fn(b1 - d, b2)[0, 0]) / (2 * eps)
      np.testing.assert_allclose(g[0, k], fd, rtol=2e-2, atol=2e-3, err_msg=name)


def test_ciou_gradient_treats_alpha_as_constant():
  """grad CIoU = grad DIoU - alpha * grad v, with alpha = v / (1 - IoU + v) held fixed."""
  b1 = jnp.array([[0.0, 0.0, 2.0, 3.0]])
  b2 = jnp.array([[1.0, 0.5, 4.0, 2.0]])

  def v_of(a):
    w1, h1 = a[0, 2] - a[0, 0], a[0, 3] - a[0, 1]
    w2, h2 = b2[0, 2] - b2[0, 0], b2[0, 3] - b2[0, 1]
    return 4 / math.pi**2 * (jnp.arctan(w2 / h2) - jnp.arctan(w1 / h1)) ** 2

  iou = B.box_iou(b1, b2)[0, 0]
  alpha = v_of(b1) / (1 - iou + v_of(b1))
  want = (jax.grad(lambda a: B.distance_box_iou(a, b2)[0, 0])(b1)
          - alpha * jax.grad(v_of)(b1))
  got = jax.grad(lambda a: B.complete_box_iou(a, b2)[0, 0])(b1)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------------------------------------
# Structure and bad input.


def test_box_iou_is_one_fused_loop():
  """The [N, M] result is the only [N, M] array the compiled program produces."""
  b1, b2 = jnp.zeros((500, 4)), jnp.zeros((400, 4))
  hlo = jax.jit(B.box_iou).lower(b1, b2).compile().as_text()
  entry = hlo[hlo.index("ENTRY"):]
  big = re.findall(r"= f32\[500,400\]", entry)
  assert len(big) == 1, entry


@pytest.mark.parametrize("name", list(_PAIRWISE))
def test_pairwise_bad_input(name):
  fn = _PAIRWISE[name][0]
  good = jnp.zeros((3, 4))
  with pytest.raises(ValueError, match="boxes1"):
    fn(jnp.zeros((3, 5)), good)
  with pytest.raises(ValueError, match="boxes2"):
    fn(good, jnp.zeros((3, 3)))
  with pytest.raises(ValueError, match="boxes1"):
    fn(jnp.zeros((4,)), good)
  with pytest.raises(ValueError, match="boxes1.*boxes2"):
    fn(jnp.zeros((2, 3, 4)), jnp.zeros((5, 3, 4)))
  with pytest.raises(TypeError, match="boxes2"):
    fn(good, jnp.zeros((3, 4), jnp.complex64))


def test_convert_and_area_bad_input():
  with pytest.raises(ValueError, match="in_fmt"):
    B.box_convert(jnp.zeros((2, 4)), in_fmt="xxyy", out_fmt="xyxy")
  with pytest.raises(ValueError, match="out_fmt"):
    B.box_convert(jnp.zeros((2, 4)), in_fmt="xyxy", out_fmt="yxyx")
  with pytest.raises(ValueError, match="boxes"):
    B.box_convert(jnp.zeros((2, 3)), in_fmt="xyxy", out_fmt="xywh")
  with pytest.raises(ValueError, match="boxes"):
    B.box_area(jnp.zeros((2, 5)))


# ---------------------------------------------------------------------------------------------
# Scale and non-finite input (issue 13).


# The Pallas kernel computes IoU and GIoU; DIoU and CIoU have the XLA path only.
_IMPLEMENTED = [(name, "xla") for name in _PAIRWISE] + [
    (name, "pallas") for name in ("box_iou", "generalized_box_iou")]


@pytest.mark.parametrize("name, implementation", _IMPLEMENTED)
@pytest.mark.parametrize("scale", [1e-30, 1e-20, 1.0, 1e20, 1e30, 1e37])
def test_pairwise_is_scale_invariant(name, scale, implementation):
  """Areas of 1e20-sized boxes overflow float32 (1e40 > 3.4e38) and those of 1e-25-sized ones
  underflow; each pair is computed at a power-of-two scale, so neither happens: the result
  at any scale is the result at scale 1 (0.5 for these two boxes' IoU), never 0 or NaN."""
  fn = _PAIRWISE[name][0]
  rng = np.random.default_rng(0)
  unit = np.concatenate([[[0, 0, 1, 1], [0, 0, 2, 1], [0.5, -1, 1.5, 3]],
                         make_boxes(rng, 20, "uniform") / 1000], 0).astype(np.float32)
  kw = {"implementation": implementation} if implementation == "pallas" else {}
  want = np.asarray(fn(jnp.asarray(unit), jnp.asarray(unit), **kw))
  scaled = jnp.asarray(unit * np.float32(scale))
  got = np.asarray(fn(scaled, scaled, **kw))
  assert np.isfinite(got).all()
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(got, _PAIRWISE[name][1](unit * scale, unit * scale), rtol=1e-5,
                             atol=1e-5)
  if name == "box_iou":
    np.testing.assert_allclose(got[0, 1], 0.5, rtol=1e-6)  # (scale rounds in float32)


def test_box_iou_1e20_and_mixed_scales():
  a = jnp.array([[0.0, 0, 1e20, 1e20], [0, 0, 1, 1], [-3e38, -3e38, 3e38, 3e38]])
  b = jnp.array([[0.0, 0, 2e20, 1e20], [0, 0, 2, 1], [-3e38, -3e38, 3e38, 3e38]])
  for impl in ("xla", "pallas"):
    iou = np.asarray(B.box_iou(a, b, implementation=impl))
    # Per pair: a tiny box next to a huge one keeps its own precision.
    np.testing.assert_allclose(np.diag(iou), [0.5, 0.5, 1.0], rtol=1e-6)
  for name, (fn, _) in _PAIRWISE.items():
    out = np.asarray(fn(a, b))
    assert np.isfinite(out).all(), name
  # Gradients stay finite at 1e20.
  for name in ("generalized_box_iou", "distance_box_iou", "complete_box_iou"):
    g = jax.grad(lambda x: _PAIRWISE[name][0](x, b[:1]).sum())(a[:1])
    assert np.isfinite(np.asarray(g)).all()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_coordinate_gives_nan_for_every_member(bad):
  """One rule for the whole family (and both implementations, and the oracle): a pair with
  a NaN or infinite coordinate is NaN; the other pairs are untouched."""
  a = np.array([[0.0, 0, 2, 2], [0, 0, 2, 2]], np.float32)
  a[1, 2] = bad
  b = np.array([[1.0, 0, 3, 2], [0, 0, 2, 2]], np.float32)
  for name, (fn, oracle) in _PAIRWISE.items():
    want = oracle(a, b)
    assert np.isnan(want[1]).all() and np.isfinite(want[0]).all()
    got = np.asarray(fn(jnp.asarray(a), jnp.asarray(b)))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got[0], want[0], rtol=1e-6)
    got_t = np.asarray(fn(jnp.asarray(b), jnp.asarray(a)))
    np.testing.assert_array_equal(np.isnan(got_t), np.isnan(want.T))
    # The finite pairs' gradients are unaffected; the non-finite box gets none (zero).
    g = np.asarray(jax.grad(lambda x: jnp.nansum(fn(x, jnp.asarray(b))))(jnp.asarray(a)))
    assert np.isfinite(g).all() and not g[1].any()
  for name in ("box_iou", "generalized_box_iou"):
    got = np.asarray(_PAIRWISE[name][0](a, b, implementation="pallas"))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(_PAIRWISE[name][1](a, b)))
