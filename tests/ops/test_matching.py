"""Tests of anchor matching and box encoding (``jaxvision.ops.matching``).

``match_anchors`` is compared with the literal d2l port in ``jaxvision.reference.matching``
(full arg-max of the IoU matrix per greedy step), index for index.

How exact comparison is possible between a float32 op and a float64 oracle: matching boxes
have integer coordinates in ``[0, 32]``, so areas, intersections and unions are exact in
float32 and every IoU is a rational ``p / q`` with ``q <= 2048``, rounded once (IEEE
division). Two different such rationals differ by at least ``1 / 2048^2``, more than the
float32 spacing below 1, so float32 IoUs order exactly as the float64 ones, and equal IoUs
(ties: duplicates, zeros) are equal in both. Thresholds are multiples of 1/20, which an IoU
either equals exactly or misses by at least ``1 / (20 q)``. So every decision (global maxima,
tie-breaks, threshold tests) is the same in both precisions.

To bound compilation, anchors are padded to a few bucket sizes with far-away boxes (IoU 0
with everything) and GTs with invalid rows. A padding anchor can only be taken by the greedy
pass once every real anchor is taken, so the padded tests draw at most ``A`` valid GTs; the
case "more GTs than anchors" is tested on exact shapes.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from jaxvision.ops.matching import decode_boxes, encode_boxes, match_anchors
from jaxvision.reference import boxes as ref_boxes
from jaxvision.reference import matching as ref

_A_BUCKETS = (16, 320)
_G_BUCKETS = (8, 72)  # 72 > 64: the GT reduction then runs in chunks of 2
_BATCH = 3
_THRESHOLDS = tuple(k / 20 for k in range(21))
_EXAMPLES = settings(max_examples=40, deadline=None)
_FEW_EXAMPLES = settings(max_examples=20, deadline=None)


# ---------------------------------------------------------------------------------------------
# Inputs: integer-grid boxes (see the module docstring).


def grid_boxes(rng: np.random.Generator, n: int, kind: str) -> np.ndarray:
  """``[n, 4]`` float32 boxes with integer coordinates in [0, 32]."""
  if kind == "uniform":
    xy = rng.integers(0, 28, (n, 2))
    wh = rng.integers(1, 12, (n, 2))
  elif kind == "clustered":  # a few objects, many near-duplicates: ties everywhere
    k = max(1, n // 8)
    centre = rng.integers(4, 28, (k, 2))[rng.integers(0, k, n)]
    wh = rng.integers(2, 8, (n, 2))
    xy = centre - wh // 2 + rng.integers(-1, 2, (n, 2))
  elif kind == "degenerate":  # empty, inverted and duplicate boxes mixed with normal ones
    xy = rng.integers(0, 28, (n, 2))
    wh = rng.choice([-2, 0, 0, 1, 3, 6], (n, 2))
  elif kind == "sparse":  # small boxes far apart: many GTs have best IoU 0
    xy = rng.integers(0, 30, (n, 2))
    wh = rng.integers(1, 3, (n, 2))
  else:
    raise ValueError(kind)
  boxes = np.concatenate([xy, xy + wh], axis=1)
  return np.clip(boxes, 0, 32).astype(np.float32).reshape(n, 4)


_KINDS = ("uniform", "clustered", "degenerate", "sparse")


@st.composite
def problems(draw, max_anchors=300, max_gt=70):
  """``(anchors [A, 4], gt [B, G, 4], valid [B, G])`` with at most ``A`` valid GTs per image."""
  rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
  a = draw(st.integers(1, max_anchors))
  g = draw(st.integers(1, max_gt))
  anchors = grid_boxes(rng, a, draw(st.sampled_from(_KINDS)))
  kind = draw(st.sampled_from(_KINDS))
  gt = np.stack([grid_boxes(rng, g, kind) for _ in range(_BATCH)])
  valid = np.zeros((_BATCH, g), bool)
  for b in range(_BATCH):
    count = draw(st.integers(0, min(g, a)))
    valid[b, rng.choice(g, count, replace=False)] = True  # anywhere, not only a prefix
  if draw(st.booleans()):  # share GTs between images and anchors: more exact ties
    gt[-1] = gt[0]
  return anchors, gt, valid


def _bucket(n: int, buckets) -> int:
  return next(b for b in buckets if b >= n)


def _pad_problem(anchors, gt, valid, sizes=None):
  """Pads to the buckets of ``A`` and ``G``, or to ``sizes = (A_pad, G_pad)``."""
  a_pad, g_pad = sizes or (_bucket(len(anchors), _A_BUCKETS), _bucket(gt.shape[-2], _G_BUCKETS))
  far = np.tile(np.array([[1000.0, 1000.0, 1001.0, 1001.0]], np.float32), (a_pad, 1))
  far[: len(anchors)] = anchors
  gt_p = np.zeros(gt.shape[:-2] + (g_pad, 4), np.float32)
  gt_p[..., : gt.shape[-2], :] = gt
  valid_p = np.zeros(valid.shape[:-1] + (g_pad,), bool)
  valid_p[..., : valid.shape[-1]] = valid
  return far, gt_p, valid_p


def _match_padded(fn, anchors, gt, valid, **kwargs):
  matched, iou = fn(*_pad_problem(anchors, gt, valid), **kwargs)
  a = len(anchors)
  return np.asarray(matched)[..., :a], np.asarray(iou)[..., :a]


def _oracle(anchors, gt, valid, **kwargs):
  outs = [ref.match_anchors(anchors, gt[b], valid[b], **kwargs) for b in range(len(gt))]
  return np.stack([o[0] for o in outs]), np.stack([o[1] for o in outs])


@functools.lru_cache(maxsize=None)
def _jitted_match(bipartite: bool):
  return jax.jit(functools.partial(match_anchors, bipartite=bipartite),
                 static_argnames=("iou_threshold",))


# ---------------------------------------------------------------------------------------------
# match_anchors against the oracle.


@pytest.mark.parametrize("bipartite", [True, False])
@_EXAMPLES
@given(problem=problems(), threshold=st.sampled_from(_THRESHOLDS))
def test_match_anchors_matches_oracle(problem, threshold, bipartite):
  anchors, gt, valid = problem
  matched, iou = _match_padded(match_anchors, anchors, gt, valid, iou_threshold=threshold,
                               bipartite=bipartite)
  want_matched, want_iou = _oracle(anchors, gt, valid, iou_threshold=threshold,
                                   bipartite=bipartite)
  assert matched.dtype == np.int32 and iou.dtype == np.float32
  np.testing.assert_array_equal(matched, want_matched)
  np.testing.assert_allclose(iou, want_iou, rtol=1e-6, atol=0)


# Two padded shapes, not the four bucket combinations: both small (one GT chunk, anchors
# padded by the op to its 32-anchor chunks) or both large (GTs in chunks of 2, no anchor
# padding). Every shape compiles three programs (eager, jitted, one image).
_SHAPE_PAIRS = tuple(zip(_A_BUCKETS, _G_BUCKETS))


@settings(max_examples=12, deadline=None)
@given(sized=st.sampled_from(_SHAPE_PAIRS).flatmap(
    lambda sizes: st.tuples(st.just(sizes), problems(max_anchors=min(sizes[0], 300),
                                                     max_gt=min(sizes[1], 70)))))
def test_match_anchors_under_jit_and_over_leading_dims(sized):
  threshold = 0.5  # static under jit: one value keeps the compilations few
  sizes, problem = sized
  anchors, gt, valid = _pad_problem(*problem, sizes=sizes)
  eager = match_anchors(anchors, gt, valid, iou_threshold=threshold)
  jitted = _jitted_match(True)(anchors, gt, valid, iou_threshold=threshold)
  for x, y in zip(eager, jitted):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  # One image at a time ([G, 4]) gives the rows of the batch.
  for b in range(_BATCH):
    single = match_anchors(anchors, gt[b], valid[b], iou_threshold=threshold)
    np.testing.assert_array_equal(np.asarray(single[0]), np.asarray(eager[0][b]))
    np.testing.assert_array_equal(np.asarray(single[1]), np.asarray(eager[1][b]))


def test_match_anchors_multiple_leading_dims_and_vmap():
  rng = np.random.default_rng(3)
  anchors = grid_boxes(rng, 40, "uniform")
  gt = grid_boxes(rng, 2 * 3 * 6, "clustered").reshape(2, 3, 6, 4)
  valid = rng.random((2, 3, 6)) < 0.7
  matched, iou = match_anchors(anchors, gt, valid, iou_threshold=0.5)
  assert matched.shape == iou.shape == (2, 3, 40)
  want_m, want_i = _oracle(anchors, gt.reshape(6, 6, 4), valid.reshape(6, 6),
                           iou_threshold=0.5)
  np.testing.assert_array_equal(np.asarray(matched).reshape(6, 40), want_m)
  np.testing.assert_allclose(np.asarray(iou).reshape(6, 40), want_i, rtol=1e-6)
  vm = jax.vmap(lambda g, v: match_anchors(anchors, g, v, iou_threshold=0.5))(
      gt.reshape(6, 6, 4), valid.reshape(6, 6))
  np.testing.assert_array_equal(np.asarray(vm[0]), want_m)


@pytest.mark.parametrize("bipartite", [True, False])
def test_match_anchors_more_gts_than_anchors(bipartite):
  """The greedy pass stops when the anchors run out; the remaining GTs get nothing."""
  rng = np.random.default_rng(5)
  for a, g in ((1, 3), (2, 5), (4, 9)):
    anchors = grid_boxes(rng, a, "uniform")
    gt = np.stack([grid_boxes(rng, g, kind) for kind in ("uniform", "clustered", "sparse")])
    valid = np.ones((3, g), bool)
    valid[1, 0] = False
    got = match_anchors(anchors, gt, valid, iou_threshold=0.3, bipartite=bipartite)
    want = _oracle(anchors, gt, valid, iou_threshold=0.3, bipartite=bipartite)
    np.testing.assert_array_equal(np.asarray(got[0]), want[0])
    np.testing.assert_allclose(np.asarray(got[1]), want[1], rtol=1e-6)
    if bipartite:
      assert np.all(np.asarray(got[0]) >= 0)  # every anchor went to some GT


def test_match_anchors_duplicate_gts_share_best_anchor():
  """Identical GTs all want the same anchor: each step must refresh the others' best."""
  rng = np.random.default_rng(11)
  anchors = np.concatenate([grid_boxes(rng, 30, "clustered"), grid_boxes(rng, 30, "uniform")])
  one = grid_boxes(rng, 1, "uniform")
  gt = np.stack([np.repeat(one, 12, axis=0), np.concatenate([np.repeat(one, 6, axis=0),
                                                             grid_boxes(rng, 6, "clustered")])])
  valid = np.ones((2, 12), bool)
  for threshold in (0.0, 0.25, 0.5, 1.0):
    got = match_anchors(anchors, gt, valid, iou_threshold=threshold)
    want = _oracle(anchors, gt, valid, iou_threshold=threshold)
    np.testing.assert_array_equal(np.asarray(got[0]), want[0])
    np.testing.assert_allclose(np.asarray(got[1]), want[1], rtol=1e-6)


def test_match_anchors_benchmark_sized_case():
  """SSD-sized: 8732 anchors, 50 padded GTs, real-valued boxes."""
  rng = np.random.default_rng(0)
  xy = rng.uniform(0, 300, (8732, 2))
  anchors = np.concatenate([xy, xy + rng.uniform(10, 100, (8732, 2))], 1).astype(np.float32)
  xy = rng.uniform(0, 240, (2, 50, 2))
  gt = np.concatenate([xy, np.minimum(xy + rng.uniform(15, 120, (2, 50, 2)), 300)],
                      -1).astype(np.float32)
  valid = np.arange(50)[None] < np.array([[37], [50]])
  got = _jitted_match(True)(anchors, gt, valid, iou_threshold=0.5)
  want = _oracle(anchors, gt, valid, iou_threshold=0.5)
  np.testing.assert_array_equal(np.asarray(got[0]), want[0])
  np.testing.assert_allclose(np.asarray(got[1]), want[1], rtol=2e-6, atol=1e-7)


def test_match_anchors_d2l_example():
  """d2l 14.4.3: the five anchors and two GTs of the book, threshold 0.5."""
  gt = np.array([[0.1, 0.08, 0.52, 0.92], [0.55, 0.2, 0.9, 0.88]], np.float32)
  anchors = np.array([[0, 0.1, 0.2, 0.3], [0.15, 0.2, 0.4, 0.4], [0.63, 0.05, 0.88, 0.98],
                      [0.66, 0.45, 0.8, 0.8], [0.57, 0.3, 0.92, 0.9]], np.float32)
  matched, _ = match_anchors(anchors, gt, np.ones(2, bool), iou_threshold=0.5)
  # d2l's class labels are [0, 1, 2, 0, 2] (background 0, GT j -> its class + 1).
  np.testing.assert_array_equal(np.asarray(matched), [-1, 0, 1, -1, 1])
  offsets = np.asarray(encode_boxes(gt[np.maximum(np.asarray(matched), 0)], anchors))
  offsets = offsets * (np.asarray(matched) >= 0)[:, None]
  # d2l prints these (rounded to 3 digits) as labels[0].
  want = [[0, 0, 0, 0], [1.40, 10.0, 2.59, 7.18], [-1.20, 0.269, 1.68, -1.57], [0, 0, 0, 0],
          [-0.571, -1.00, 0.0, 0.626]]
  np.testing.assert_allclose(offsets, want, rtol=5e-3, atol=1e-5)


def test_match_anchors_empty_or_non_finite_gt_is_never_matched():
  """Issue 13: a zero-width GT (a box clipped at the image border) used to take an anchor in
  the bipartite pass at IoU 0, and encode_boxes gave it a log-size target of -436.7."""
  anchors = np.array([[0, 0, 10, 10], [10, 0, 20, 10], [20, 0, 30, 10], [0, 10, 10, 20]],
                     np.float32)
  gt = np.array([[[0, 0, 10, 10], [30, 0, 30, 10], [5, 5, 2, 8], [np.nan, 0, 5, 5],
                  [0, 0, np.inf, 10]]], np.float32)  # ok, zero width, negative, NaN, inf
  valid = np.ones((1, 5), bool)
  for fn in (match_anchors, jax.jit(functools.partial(match_anchors, iou_threshold=0.5))):
    kwargs = {} if fn is not match_anchors else {"iou_threshold": 0.5}
    matched, iou = fn(anchors, gt, valid, **kwargs)
    np.testing.assert_array_equal(np.asarray(matched), [[0, -1, -1, -1]])
    np.testing.assert_array_equal(np.asarray(iou), [[1, 0, 0, 0]])
  want = _oracle(anchors, gt, valid, iou_threshold=0.5)
  np.testing.assert_array_equal(want[0], [[0, -1, -1, -1]])
  # Only invalid GTs: every anchor is background, with IoU 0.
  matched, iou = match_anchors(anchors, gt[:, 1:], valid[:, 1:], iou_threshold=0.0)
  np.testing.assert_array_equal(np.asarray(matched), -np.ones((1, 4)))
  np.testing.assert_array_equal(np.asarray(iou), np.zeros((1, 4)))
  # The targets of matched anchors stay small.
  offsets = encode_boxes(gt[0][np.maximum(np.asarray(matched[0]), 0)], anchors)
  assert np.isfinite(np.asarray(offsets)).all()


def test_match_anchors_nan_anchor_matches_nothing():
  anchors = np.array([[np.nan, 0, 10, 10], [0, 0, 10, 10]], np.float32)
  gt = np.array([[0, 0, 10, 10]], np.float32)
  matched, iou = match_anchors(anchors, gt, np.ones(1, bool), iou_threshold=0.5)
  np.testing.assert_array_equal(np.asarray(matched), [-1, 0])
  np.testing.assert_array_equal(np.asarray(iou), [0, 1])


# ---------------------------------------------------------------------------------------------
# match_anchors properties.


@_EXAMPLES
@given(problem=problems(), threshold=st.sampled_from(_THRESHOLDS))
def test_match_anchors_properties(problem, threshold):
  anchors, gt, valid = problem
  matched, iou = _match_padded(match_anchors, anchors, gt, valid, iou_threshold=threshold)
  plain, plain_iou = _match_padded(match_anchors, anchors, gt, valid, iou_threshold=threshold,
                                   bipartite=False)
  for b in range(_BATCH):
    m, mi = matched[b], iou[b]
    ious = ref_boxes.box_iou(anchors, gt[b])  # [A, G]
    # Empty GT boxes count as padding (never matched), whatever `valid` says.
    real = valid[b] & (gt[b][:, 2] > gt[b][:, 0]) & (gt[b][:, 3] > gt[b][:, 1])
    best = np.where(real, ious, -1.0).max(axis=1) if len(real) else np.zeros(len(m))
    hit = m >= 0
    # Padded GTs never match; matched_iou is the IoU with the matched GT, else the best one.
    assert np.all(real[m[hit]])
    np.testing.assert_allclose(mi[hit], ious[np.flatnonzero(hit), m[hit]], rtol=1e-6)
    np.testing.assert_allclose(mi[~hit], np.maximum(best[~hit], 0.0), rtol=1e-6)
    # Bipartite: every valid GT has an anchor (A >= #valid here); anchors below the threshold
    # are greedy-assigned, so they hold distinct GTs, at most one per valid GT.
    assert set(np.flatnonzero(real)) <= set(m[hit].tolist())
    below = m[hit & (mi < threshold)]
    assert len(below) == len(set(below.tolist())) <= real.sum()
    # Threshold only: matched exactly when the best valid IoU reaches the threshold.
    np.testing.assert_array_equal(plain[b] >= 0, best >= threshold)
    assert np.all(plain_iou[b][plain[b] >= 0] >= threshold)
    # The bipartite pass only adds or re-targets anchors; others agree with threshold-only.
    same = (m == plain[b]) | (mi < threshold) | (plain[b] < 0) | hit
    assert np.all(same)


# ---------------------------------------------------------------------------------------------
# encode_boxes / decode_boxes.


def _positive_boxes(rng, n, lo=1.0, hi=100.0):
  xy = rng.uniform(-50, 500, (n, 2))
  return np.concatenate([xy, xy + rng.uniform(lo, hi, (n, 2))], 1).astype(np.float32)


@_FEW_EXAMPLES
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 60),
       variances=st.sampled_from([(0.1, 0.2), (0.5, 1.0), None]))
def test_encode_decode_match_oracle(seed, n, variances):
  rng = np.random.default_rng(seed)
  anchors = _positive_boxes(rng, n)
  gt = _positive_boxes(rng, n)
  gt[::5, 2] = gt[::5, 0]  # some zero-width (padding-like) and inverted GTs
  gt[1::7, 3] = gt[1::7, 1] - 3
  enc = np.asarray(encode_boxes(gt, anchors, variances=variances))
  np.testing.assert_allclose(enc, ref.encode_boxes(gt, anchors, variances=variances),
                             rtol=2e-5, atol=2e-4)
  assert np.all(np.isfinite(enc))
  offsets = rng.normal(0, 3, (n, 4)).astype(np.float32)
  dec = np.asarray(decode_boxes(offsets, anchors, variances=variances))
  np.testing.assert_allclose(dec, ref.decode_boxes(offsets, anchors, variances=variances),
                             rtol=2e-5, atol=2e-3)


@_FEW_EXAMPLES
@given(seed=st.integers(0, 2**32 - 1), variances=st.sampled_from([(0.1, 0.2), None]))
def test_encode_decode_round_trip_batched(seed, variances):
  rng = np.random.default_rng(seed)
  anchors = _positive_boxes(rng, 20)
  gt = np.stack([_positive_boxes(rng, 20, lo=2.0, hi=60.0) for _ in range(3)])  # [3, A, 4]
  enc = encode_boxes(gt, anchors, variances=variances)
  assert enc.shape == (3, 20, 4)
  np.testing.assert_allclose(np.asarray(decode_boxes(enc, anchors, variances=variances)), gt,
                             rtol=1e-5, atol=2e-3)
  offsets = rng.normal(0, 2, (3, 20, 4)).astype(np.float32)
  round_trip = encode_boxes(decode_boxes(offsets, anchors, variances=variances), anchors,
                            variances=variances)
  np.testing.assert_allclose(np.asarray(round_trip), offsets, rtol=1e-4, atol=1e-3)
  jitted = jax.jit(functools.partial(encode_boxes, variances=variances))
  np.testing.assert_allclose(np.asarray(jitted(gt, anchors)), np.asarray(enc), rtol=1e-6,
                             atol=1e-5)


def test_encode_hand_computed_and_raw_offsets():
  gt = jnp.array([[1.0, 2.0, 5.0, 4.0]])
  anchor = jnp.array([[0.0, 0.0, 4.0, 4.0]])
  # Centres (3, 3) vs (2, 2), sizes (4, 2) vs (4, 4).
  np.testing.assert_allclose(encode_boxes(gt, anchor),
                             [[1 / 4 / 0.1, 1 / 4 / 0.1, 0.0, math.log(0.5) / 0.2]], rtol=1e-6)
  np.testing.assert_allclose(encode_boxes(gt, anchor, variances=None), [[1, 2, 1, 0]])
  np.testing.assert_allclose(decode_boxes(jnp.array([[1.0, 2.0, 1.0, 0.0]]), anchor,
                                          variances=None), gt)


def test_encode_decode_never_nan_or_inf():
  anchors = jnp.array([[0.0, 0.0, 4.0, 4.0]] * 4)
  gt = jnp.array([[0.0, 0.0, 0.0, 0.0], [2.0, 2.0, 2.0, 5.0], [5.0, 5.0, 1.0, 1.0],
                  [1.0, 1.0, 3.0, 3.0]])
  enc = encode_boxes(gt, anchors)
  assert np.all(np.isfinite(np.asarray(enc)))
  grad = jax.grad(lambda g: jnp.sum(encode_boxes(g, anchors)))(gt)
  assert np.all(np.isfinite(np.asarray(grad)))
  # Decode clamps the log-scale at log(1000 / 16): a box is at most 62.5 anchors wide.
  huge = jnp.array([[0.0, 0.0, 1e4, 1e30]] * 4)
  dec = np.asarray(decode_boxes(huge, anchors))
  assert np.all(np.isfinite(dec))
  np.testing.assert_allclose(dec[0, 2] - dec[0, 0], 4 * 62.5, rtol=1e-5)
  grad = jax.grad(lambda o: jnp.sum(decode_boxes(o, anchors)))(huge)
  assert np.all(np.isfinite(np.asarray(grad)))


def test_encode_decode_half_precision():
  rng = np.random.default_rng(1)
  anchors = _positive_boxes(rng, 10)
  gt = _positive_boxes(rng, 10)
  for dtype in (jnp.bfloat16, jnp.float16):
    g16, a16 = jnp.asarray(gt, dtype), jnp.asarray(anchors, dtype)
    enc = encode_boxes(g16, a16)
    assert enc.dtype == jnp.float32
    want = ref.encode_boxes(np.asarray(g16, np.float64), np.asarray(a16, np.float64))
    np.testing.assert_allclose(np.asarray(enc), want, rtol=1e-5, atol=1e-4)
    assert decode_boxes(enc.astype(dtype), a16).dtype == jnp.float32


# ---------------------------------------------------------------------------------------------
# Bad input.


def test_match_anchors_bad_input():
  anchors, gt, valid = jnp.zeros((5, 4)), jnp.zeros((2, 3, 4)), jnp.ones((2, 3), bool)
  for bad in (-0.1, 1.5, float("nan")):
    with pytest.raises(ValueError, match="iou_threshold"):
      match_anchors(anchors, gt, valid, iou_threshold=bad)
  with pytest.raises(TypeError, match="iou_threshold"):
    match_anchors(anchors, gt, valid, iou_threshold="high")
  with pytest.raises(ValueError, match="gt_valid"):
    match_anchors(anchors, gt, jnp.ones((2, 4), bool), iou_threshold=0.5)
  with pytest.raises(ValueError, match="gt_valid"):
    match_anchors(anchors, gt, jnp.ones((3,), bool), iou_threshold=0.5)
  with pytest.raises(TypeError, match="gt_valid"):
    match_anchors(anchors, gt, jnp.ones((2, 3), jnp.int32), iou_threshold=0.5)
  with pytest.raises(ValueError, match="anchors"):
    match_anchors(jnp.zeros((5, 5)), gt, valid, iou_threshold=0.5)
  with pytest.raises(ValueError, match="anchors"):
    match_anchors(jnp.zeros((2, 5, 4)), gt, valid, iou_threshold=0.5)
  with pytest.raises(ValueError, match="gt_boxes"):
    match_anchors(anchors, jnp.zeros((2, 3, 3)), valid, iou_threshold=0.5)
  with pytest.raises(TypeError, match="gt_boxes"):
    match_anchors(anchors, jnp.zeros((2, 3, 4), jnp.complex64), valid, iou_threshold=0.5)
  with pytest.raises(TypeError, match="bipartite"):
    match_anchors(anchors, gt, valid, iou_threshold=0.5, bipartite="yes")
  # Integer boxes are fine for matching (geometry promotes them to float32).
  m, i = match_anchors(jnp.zeros((5, 4), jnp.int32), gt.astype(jnp.int32), valid,
                       iou_threshold=0.5)
  assert m.dtype == jnp.int32 and i.dtype == jnp.float32


def test_encode_decode_bad_input():
  anchors, gt = jnp.zeros((5, 4)), jnp.ones((5, 4))
  with pytest.raises(TypeError, match="gt"):
    encode_boxes(jnp.ones((5, 4), jnp.int32), anchors)
  with pytest.raises(TypeError, match="anchors"):
    encode_boxes(gt, jnp.zeros((5, 4), jnp.int32))
  with pytest.raises(TypeError, match="offsets"):
    decode_boxes(jnp.ones((5, 4), jnp.int32), anchors)
  with pytest.raises(TypeError, match="anchors"):
    decode_boxes(gt, np.zeros((5, 4), np.int64))
  with pytest.raises(ValueError, match="gt"):
    encode_boxes(jnp.ones((5, 3)), anchors)
  with pytest.raises(ValueError, match="offsets"):
    decode_boxes(jnp.ones((5, 5)), anchors)
  with pytest.raises(ValueError, match="anchors"):
    encode_boxes(gt, jnp.zeros((6, 4)))
  for bad in ((0.1,), (0.1, 0.2, 0.3), (0.1, -0.2), (0.0, 0.2), (0.1, float("inf")), "ab", 3):
    with pytest.raises(ValueError, match="variances"):
      encode_boxes(gt, anchors, variances=bad)
    with pytest.raises(ValueError, match="variances"):
      decode_boxes(gt, anchors, variances=bad)
