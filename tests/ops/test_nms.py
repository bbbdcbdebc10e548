"""Tests of the NMS ops (``jaxvision.ops.nms``) against the NumPy oracles.

Every op is compared with its float64 oracle in ``jaxvision.reference.nms`` on inputs drawn
by hypothesis: uniform and clustered (detector-like) boxes, tied scores, NaN scores,
degenerate boxes (zero width or height, inverted), negative and huge coordinates, ``N`` from
0 to 300, thresholds from 0 to 1 and output sizes below and above ``N``; single images,
batches (which must equal the per-image results), ``vmap`` and ``jit``.

How exact comparison is possible between float32 ops and a float64 oracle:

* Box coordinates are integers (plus a shift of 0, -75 or +-1e7, all exact in float32), so
  areas and intersections are exact and an IoU is a rational ``p / q`` with ``q < 4000``.
  IoU thresholds are multiples of 1/20: either the IoU equals the threshold exactly (then the
  correctly rounded float32 and float64 quotients both equal the rounded threshold) or it is
  at least ``1 / (20 q) > 1e-5`` away, far more than float32 rounding. So greedy decisions are
  identical in both precisions, and indices must match exactly.
* Scores are float32 values (given to the oracle exactly, as float64), tied ones are
  multiples of 1/8, and score thresholds are multiples of 1/8 (or -inf, 0, 0.001), so score
  comparisons are exact too.
* Soft-NMS decays by ``exp(-IoU^2 / sigma)``, which no grid makes exact: after a few decays two
  current scores can be within float32 rounding of each other (or of the score threshold),
  and then the op may legitimately pick in another order than the float64 oracle. The check
  (``_assert_soft_matches``) requires exact equality of the indices up to the first place
  they differ, and accepts a difference there only if the two boxes' float64 current scores
  (recomputed by ``ref.soft_nms_live_scores``) are within ``_TIE_RTOL`` of each other or of
  the threshold; the prefix's scores must match to ``_SCORE_RTOL``.

To keep compilation bounded the inputs are padded to a few bucket sizes with boxes that can
never be selected (NaN scores, or background rows for ``detection_nms``), and output sizes are
drawn from a short list; the op's own jit cache is then reused across examples.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import event, given, settings, strategies as st

from jaxvision.ops.nms import batched_nms, detection_nms, multiclass_nms, nms, soft_nms
from jaxvision.reference import nms as ref

# The module itself (`jaxvision.ops.nms` the attribute is the function) for private paths.
nms_module = importlib.import_module("jaxvision.ops.nms")

_BUCKETS = (8, 64, 320)
_MAX_N = 300
_OUTPUT_SIZES = (0, 1, 5, 40, 400)  # below and above N; 400 > every bucket
_IOU_THRESHOLDS = tuple(k / 20 for k in range(21))
_SCORE_THRESHOLDS = (-math.inf, 0.0, 0.25, 0.5, 0.75)
_SOFT_SCORE_THRESHOLDS = (0.0, 0.001, 0.125, 0.5)
_SCORE_RTOL = 2e-5  # soft-NMS scores: products of many float32 decays (seen: 3e-6)
_TIE_RTOL = 5e-5

# Most of this module's time is XLA compiling one program per (op, bucket, output size); the
# example counts are sized for CI time (every example beyond the first few mostly recompiles).
_EXAMPLES = settings(max_examples=25, deadline=None)
_FEW_EXAMPLES = settings(max_examples=12, deadline=None)
_BATCH_EXAMPLES = settings(max_examples=8, deadline=None)  # each example: B oracle runs
# The batched tests (and detection_nms' oracle test, whose programs are the slowest to compile)
# pad every image to the largest bucket: what they check does not depend on the padded size,
# and one size compiles each of their programs once instead of once per bucket.
_FIXED_SIZE = _BUCKETS[-1]


# ---------------------------------------------------------------------------------------------
# Inputs.


@dataclasses.dataclass(frozen=True)
class Problem:
  """One image: integer-valued float32 boxes and float32 scores, plus a seed for extras."""
  boxes: np.ndarray  # [n, 4]
  scores: np.ndarray  # [n]
  seed: int
  ties: bool

  @property
  def n(self) -> int:
    return len(self.scores)

  def rng(self, salt: int) -> np.random.Generator:
    return np.random.default_rng([self.seed, salt])


def _make_boxes(rng, n, kind, degenerate, shift) -> np.ndarray:
  if kind == "uniform":
    wh = rng.integers(1, 41, (n, 2))
    xy = rng.integers(0, 100, (n, 2))
  else:  # clustered: a few objects, many jittered, heavily overlapping detections of each
    k = int(rng.integers(1, 5))
    centres = rng.integers(20, 80, (k, 2))
    sizes = rng.integers(8, 38, (k, 2))
    which = rng.integers(0, k, n)
    wh = np.maximum(sizes[which] + rng.integers(-3, 4, (n, 2)), 1)
    xy = centres[which] - wh // 2 + rng.integers(-3, 4, (n, 2))
  boxes = np.concatenate([xy, xy + wh], axis=1)
  if degenerate:
    bad = np.flatnonzero(rng.random(n) < degenerate)
    mode = rng.integers(0, 3, len(bad))
    boxes[bad[mode == 0], 2] = boxes[bad[mode == 0], 0]  # zero width
    boxes[bad[mode == 1], 3] = boxes[bad[mode == 1], 1]  # zero height
    inv = bad[mode == 2]
    boxes[inv] = boxes[inv][:, [2, 3, 0, 1]]  # inverted corners
  if shift == "negative":
    boxes = boxes - 75
  elif shift == "huge":  # two far-apart halves, around -1e7 and +1e7 (still exact in float32)
    boxes = boxes + np.where(rng.random(n) < 0.5, -10_000_000, 10_000_000)[:, None]
  return boxes.astype(np.float32)


def _make_scores(rng, shape, ties, nan_frac) -> np.ndarray:
  if ties:
    scores = rng.integers(1, 8, shape) / 8
  else:
    scores = rng.random(shape)
  scores = scores.astype(np.float32)
  scores[rng.random(shape) < nan_frac] = np.nan
  return scores


@st.composite
def problems(draw, max_n=_MAX_N, nan=True, degenerate=True):
  n = draw(st.integers(0, max_n))
  kind = draw(st.sampled_from(["uniform", "clustered"]))
  ties = draw(st.booleans())
  nan_frac = draw(st.sampled_from([0.0, 0.0, 0.1, 0.5])) if nan else 0.0
  degen = draw(st.sampled_from([0.0, 0.0, 0.1])) if degenerate else 0.0
  shift = draw(st.sampled_from(["none", "none", "negative", "huge"]))
  seed = draw(st.integers(0, 2**32 - 1))
  rng = np.random.default_rng(seed)
  boxes = _make_boxes(rng, n, kind, degen, shift)
  scores = _make_scores(rng, (n,), ties, nan_frac)
  return Problem(boxes, scores, seed, ties)


def _bucket(n: int) -> int:
  return next(b for b in _BUCKETS if b >= n)


def _pad(problem: Problem, size: int, *extras_and_fills):
  """Pads boxes (with overlapping filler boxes), scores (NaN) and extra per-box arrays."""
  extra = size - problem.n
  rng = np.random.default_rng([problem.seed, 99])
  filler = _make_boxes(rng, extra, "clustered", 0.0, "none")
  out = [np.concatenate([problem.boxes, filler]),
         np.concatenate([problem.scores, np.full((extra,), np.nan, np.float32)])]
  for arr, fill in zip(extras_and_fills[::2], extras_and_fills[1::2]):
    pad = np.broadcast_to(np.asarray(fill, arr.dtype), (extra,) + arr.shape[1:])
    out.append(np.concatenate([arr, pad]))
  return out


def _class_probs(problem: Problem, num_classes: int) -> np.ndarray:
  """Non-negative class probabilities, column 0 = background; ties when ``problem.ties``."""
  rng = problem.rng(2)
  n = problem.n
  if problem.ties:
    probs = rng.integers(0, 5, (n, num_classes)) / 4  # ties within rows and across anchors
  else:
    logits = rng.normal(size=(n, num_classes)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
  background = rng.random(n) < 0.3
  probs[background, 0] = probs[background].max(axis=1) + 0.125
  return probs.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Assertions.


def _assert_indices(indices, num_valid, expected, k):
  """``indices [k]`` int32 = ``expected`` then -1 padding; ``num_valid`` = len(expected)."""
  indices, num_valid = np.asarray(indices), np.asarray(num_valid)
  assert indices.shape == (k,) and indices.dtype == np.int32
  assert num_valid.shape == () and num_valid.dtype == np.int32
  expected = np.asarray(expected)[:k]
  assert int(num_valid) == len(expected), (indices.tolist(), expected.tolist())
  np.testing.assert_array_equal(indices[:len(expected)], expected)
  assert (indices[len(expected):] == -1).all()


def _first_difference(a, b) -> int:
  m = min(len(a), len(b))
  diff = np.flatnonzero(np.asarray(a[:m]) != np.asarray(b[:m]))
  return int(diff[0]) if len(diff) else m


def _near(a, b, rtol=_TIE_RTOL) -> bool:
  return abs(a - b) <= rtol * max(abs(a), abs(b)) + 1e-30


def _assert_soft_matches(indices, scores, num_valid, expected, expected_scores, *, k, boxes,
                         init_scores, replay, score_threshold):
  """Soft-NMS output vs the oracle's, exact up to a float32 near tie (see module docstring).

  ``replay`` are the decay arguments of ``ref.soft_nms_live_scores``; ``init_scores`` the
  scores the oracle started from (NaN for boxes that are never candidates). Returns a label
  for hypothesis' statistics.
  """
  indices, scores, num_valid = (np.asarray(x) for x in (indices, scores, num_valid))
  assert indices.shape == (k,) and indices.dtype == np.int32
  assert scores.shape == (k,) and num_valid.shape == ()
  nv = int(num_valid)
  assert (indices[nv:] == -1).all() and (scores[nv:] == 0).all()
  assert (indices[:nv] >= 0).all()
  got = indices[:nv]
  expected, expected_scores = np.asarray(expected)[:k], np.asarray(expected_scores)[:k]
  p = _first_difference(got, expected)
  np.testing.assert_allclose(scores[:p], expected_scores[:p], rtol=_SCORE_RTOL, atol=1e-30)
  if p == nv == len(expected):
    return "soft: identical"
  # The float64 current scores at the step where the two first differ (-inf: never live or
  # already selected; no score threshold applied, so near-threshold boxes keep their value).
  current = ref.soft_nms_live_scores(boxes, init_scores, expected[:p], score_threshold=-math.inf,
                                     **replay)
  with np.errstate(invalid="ignore"):
    never = ~(np.asarray(init_scores, np.float64) >= score_threshold)
  current[never] = -np.inf
  mine = int(got[p]) if p < nv else None
  theirs = int(expected[p]) if p < len(expected) else None
  context = f"step {p}: op picked {mine}, oracle {theirs}; current scores "
  if mine is not None:
    context += f"op's {current[mine]!r} "
    assert np.isfinite(current[mine]), "the op selected a dead or repeated box: " + context
  if theirs is not None:
    context += f"oracle's {current[theirs]!r} "
  context += f"threshold {score_threshold}"
  at_threshold = lambda i: i is not None and _near(current[i], score_threshold)
  if mine is not None and theirs is not None:
    assert (_near(current[mine], current[theirs]) or at_threshold(theirs)
            or at_threshold(mine)), "soft-NMS order differs beyond a near tie: " + context
  else:
    assert at_threshold(mine if mine is not None else theirs), (
        "soft-NMS stops differently, not at a near-threshold score: " + context)
  return "soft: near tie"


def _precedence(scores):
  """Sort key of greedy NMS: higher score first, then lower index."""
  return lambda i: (-float(scores[i]), i)


def _assert_greedy_properties(kept, boxes, scores, candidates, thr, *, truncated, same=None):
  """Subset, ordered, no kept pair over the threshold, and (unless truncated) maximal."""
  kept = [int(i) for i in kept]
  cand = set(np.flatnonzero(candidates).tolist())
  assert set(kept) <= cand and len(set(kept)) == len(kept)
  assert kept == sorted(kept, key=_precedence(scores))
  iou = ref.box_iou(boxes, boxes)
  same = np.ones((len(boxes), len(boxes)), bool) if same is None else same
  for a in kept:
    for b in kept:
      assert a == b or not (same[a, b] and iou[a, b] > thr), (a, b, iou[a, b])
  if not truncated:
    key = _precedence(scores)
    for j in cand - set(kept):
      assert any(key(i) < key(j) and same[i, j] and iou[i, j] > thr for i in kept), j


def _valid_candidates(scores, score_threshold):
  with np.errstate(invalid="ignore"):
    return np.asarray(scores, np.float64) > score_threshold


# ---------------------------------------------------------------------------------------------
# nms


class TestNms:

  @_EXAMPLES
  @given(problems(), st.sampled_from(_IOU_THRESHOLDS), st.sampled_from(_OUTPUT_SIZES),
         st.sampled_from(_SCORE_THRESHOLDS))
  def test_matches_oracle(self, problem, thr, k, score_threshold):
    boxes, scores = _pad(problem, _bucket(problem.n))
    indices, num_valid = nms(boxes, scores, iou_threshold=thr, max_output_size=k,
                             score_threshold=score_threshold)
    expected = ref.nms(problem.boxes, problem.scores, iou_threshold=thr, max_output_size=k,
                       score_threshold=score_threshold)
    _assert_indices(indices, num_valid, expected, k)

  @_FEW_EXAMPLES
  @given(problems(), st.sampled_from(_IOU_THRESHOLDS), st.sampled_from([-math.inf, 0.5]))
  def test_properties(self, problem, thr, score_threshold):
    boxes, scores = _pad(problem, _bucket(problem.n))
    indices, num_valid = nms(boxes, scores, iou_threshold=thr, max_output_size=400,
                             score_threshold=score_threshold)
    indices, nv = np.asarray(indices), int(num_valid)
    assert nv == int((indices != -1).sum()) and (indices[nv:] == -1).all()
    _assert_greedy_properties(indices[:nv], problem.boxes, problem.scores,
                              _valid_candidates(problem.scores, score_threshold), thr,
                              truncated=False)

  @_BATCH_EXAMPLES
  @given(st.lists(problems(), min_size=3, max_size=3), st.sampled_from(_IOU_THRESHOLDS),
         st.sampled_from([5, 400]))
  def test_batched_equals_per_image(self, images, thr, k):
    size = _FIXED_SIZE
    padded = [_pad(p, size) for p in images]
    boxes = np.stack([b for b, _ in padded])
    scores = np.stack([s for _, s in padded])
    indices, num_valid = nms(boxes, scores, iou_threshold=thr, max_output_size=k)
    assert indices.shape == (len(images), k) and num_valid.shape == (len(images),)
    fn = functools.partial(nms, iou_threshold=thr, max_output_size=k)
    v_indices, v_valid = jax.vmap(fn)(boxes, scores)
    np.testing.assert_array_equal(v_indices, indices)
    np.testing.assert_array_equal(v_valid, num_valid)
    for b, p in enumerate(images):
      one = fn(boxes[b], scores[b])
      np.testing.assert_array_equal(one[0], indices[b])
      np.testing.assert_array_equal(one[1], num_valid[b])
      _assert_indices(indices[b], num_valid[b],
                      ref.nms(p.boxes, p.scores, iou_threshold=thr, max_output_size=k), k)

  @_FEW_EXAMPLES
  @given(problems(max_n=64))
  def test_jit_matches_eager(self, problem):
    boxes, scores = _pad(problem, _bucket(problem.n))
    kw = dict(iou_threshold=0.5, max_output_size=40, score_threshold=0.25)
    jitted = _jitted(nms, **kw)(boxes, scores)
    eager = nms(boxes, scores, **kw)
    np.testing.assert_array_equal(jitted[0], eager[0])
    np.testing.assert_array_equal(jitted[1], eager[1])
    _assert_indices(*jitted, ref.nms(problem.boxes, problem.scores, iou_threshold=0.5,
                                     max_output_size=40, score_threshold=0.25), 40)

  def test_unpadded_sizes_and_dtypes(self):
    # Exact N (no bucket padding), numpy float64 and bfloat16 inputs (computed in float32).
    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 17, 100):
      boxes = _make_boxes(rng, n, "clustered", 0.1, "none")
      scores = _make_scores(rng, (n,), True, 0.1)
      expected = ref.nms(boxes, scores, iou_threshold=0.45, max_output_size=n)
      _assert_indices(*nms(boxes.astype(np.float64), scores.astype(np.float64),
                           iou_threshold=0.45, max_output_size=n), expected, n)
      _assert_indices(*nms(jnp.asarray(boxes, jnp.bfloat16), jnp.asarray(scores, jnp.bfloat16),
                           iou_threshold=0.45, max_output_size=n), expected, n)

  def test_hand_cases(self):
    boxes = np.array([[0, 0, 2, 1], [0, 0, 1, 1], [5, 5, 6, 6], [5, 5, 6, 6], [9, 9, 9, 9],
                      [9, 9, 9, 9], [4, 4, 2, 2]], np.float32)
    scores = np.array([0.9, 0.8, 0.5, 0.5, 0.7, 0.6, np.nan], np.float32)
    # IoU(0, 1) is exactly 0.5: kept at 0.5 (strict), suppressed below. 2 and 3 tie: 2 wins.
    # 4 and 5 are points (IoU 0), 6 has a NaN score.
    _assert_indices(*nms(boxes, scores, iou_threshold=0.5, max_output_size=7),
                    [0, 1, 4, 5, 2], 7)
    _assert_indices(*nms(boxes, scores, iou_threshold=0.45, max_output_size=7),
                    [0, 4, 5, 2], 7)
    _assert_indices(*nms(boxes, scores, iou_threshold=0.0, max_output_size=3), [0, 4, 5], 3)
    _assert_indices(*nms(boxes, scores, iou_threshold=1.0, max_output_size=7),
                    [0, 1, 4, 5, 2, 3], 7)
    _assert_indices(*nms(boxes, scores, iou_threshold=1.0, max_output_size=7,
                         score_threshold=0.5), [0, 1, 4, 5], 7)

  @pytest.mark.slow
  def test_large_clustered(self):
    rng = np.random.default_rng(1)
    boxes = _make_boxes(rng, 2000, "clustered", 0.01, "none")
    scores = _make_scores(rng, (2000,), False, 0.01)
    for thr in (0.3, 0.7):
      for k in (100, 2000):
        _assert_indices(*nms(boxes, scores, iou_threshold=thr, max_output_size=k),
                        ref.nms(boxes, scores, iou_threshold=thr, max_output_size=k), k)


@functools.lru_cache(maxsize=None)
def _jitted_cached(fn, items):
  return jax.jit(functools.partial(fn, **dict(items)))


def _jitted(fn, **kwargs):
  """``jax.jit(partial(fn, **kwargs))``, one per configuration (reused across examples)."""
  return _jitted_cached(fn, tuple(sorted(kwargs.items())))


# ---------------------------------------------------------------------------------------------
# soft_nms


class TestSoftNms:

  @_EXAMPLES
  @given(problems(), st.sampled_from(["gaussian", "linear"]), st.sampled_from([0.1, 0.5, 1.0]),
         st.sampled_from(_IOU_THRESHOLDS), st.sampled_from(_SOFT_SCORE_THRESHOLDS),
         st.sampled_from(_OUTPUT_SIZES))
  def test_matches_oracle(self, problem, method, sigma, thr, score_threshold, k):
    boxes, scores = _pad(problem, _bucket(problem.n))
    kw = dict(sigma=sigma, iou_threshold=thr, method=method, score_threshold=score_threshold)
    out = soft_nms(boxes, scores, max_output_size=k, **kw)
    expected, expected_scores = ref.soft_nms(problem.boxes, problem.scores, max_output_size=k,
                                             **kw)
    event(_assert_soft_matches(
        *out, expected, expected_scores, k=k, boxes=problem.boxes, init_scores=problem.scores,
        replay=dict(sigma=sigma, iou_threshold=thr, method=method),
        score_threshold=score_threshold))

  @_FEW_EXAMPLES
  @given(problems(), st.sampled_from(["gaussian", "linear"]), st.sampled_from(_IOU_THRESHOLDS),
         st.sampled_from(_SOFT_SCORE_THRESHOLDS))
  def test_properties(self, problem, method, thr, score_threshold):
    boxes, scores = _pad(problem, _bucket(problem.n))
    indices, sel, num_valid = (np.asarray(x) for x in soft_nms(
        boxes, scores, iou_threshold=thr, method=method, score_threshold=score_threshold,
        max_output_size=400))
    nv = int(num_valid)
    assert nv == int((indices != -1).sum())
    assert (indices[nv:] == -1).all() and (sel[nv:] == 0).all()
    kept = indices[:nv]
    assert len(set(kept.tolist())) == nv
    with np.errstate(invalid="ignore"):
      assert (problem.scores[kept] >= score_threshold).all()  # candidates only, never NaN
    # Scores only decay: a selected score never exceeds the original, and the sequence of
    # selected scores never increases (the next pick is the max of values <= this pick).
    assert (sel[:nv] <= problem.scores[kept]).all()
    assert (np.diff(sel[:nv]) <= 0).all()
    assert (sel[:nv] >= np.float32(score_threshold)).all()

  @_BATCH_EXAMPLES
  @given(st.lists(problems(), min_size=3, max_size=3), st.sampled_from(["gaussian", "linear"]))
  def test_batched_equals_per_image(self, images, method):
    size = _FIXED_SIZE
    padded = [_pad(p, size) for p in images]
    boxes = np.stack([b for b, _ in padded])
    scores = np.stack([s for _, s in padded])
    fn = functools.partial(soft_nms, method=method, max_output_size=40)
    out = fn(boxes, scores)
    assert out[0].shape == (len(images), 40) and out[1].shape == (len(images), 40)
    assert out[2].shape == (len(images),)
    for got, v in zip(out, jax.vmap(fn)(boxes, scores)):
      np.testing.assert_array_equal(got, v)
    for b, p in enumerate(images):
      for got, one in zip(out, fn(boxes[b], scores[b])):
        np.testing.assert_array_equal(got[b], one)
      expected = ref.soft_nms(p.boxes, p.scores, method=method, max_output_size=40)
      _assert_soft_matches(out[0][b], out[1][b], out[2][b], *expected, k=40, boxes=p.boxes,
                           init_scores=p.scores, replay=dict(method=method),
                           score_threshold=0.001)

  @_FEW_EXAMPLES
  @given(problems(max_n=64))
  def test_jit_matches_eager(self, problem):
    boxes, scores = _pad(problem, _bucket(problem.n))
    jitted = _jitted(soft_nms, max_output_size=40)(boxes, scores)
    for a, b in zip(jitted, soft_nms(boxes, scores, max_output_size=40)):
      np.testing.assert_array_equal(a, b)

  def test_hand_case_and_dtypes(self):
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 5], [20, 20, 30, 30]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    for b, s in ((boxes, scores), (boxes.astype(np.float64), scores.astype(np.float64)),
                 (jnp.asarray(boxes, jnp.bfloat16), jnp.asarray([0.875, 0.75, 0.625],
                                                               jnp.bfloat16))):
      idx, sel, nv = soft_nms(b, s, max_output_size=4)
      assert idx.tolist() == [0, 2, 1, -1] and int(nv) == 3
      top = np.asarray(s, np.float32)
      np.testing.assert_allclose(sel, [top[0], top[2], top[1] * math.exp(-0.5), 0.0],
                                 rtol=1e-6)
    # Linear decay applies strictly above the threshold (IoU here is exactly 0.5).
    idx, sel, _ = soft_nms(boxes, scores, method="linear", iou_threshold=0.5, max_output_size=3)
    assert idx.tolist() == [0, 1, 2]
    np.testing.assert_allclose(sel, [0.9, 0.8, 0.7], rtol=1e-7)
    # A decayed score equal to the threshold stays live (only "< score_threshold" is
    # discarded): box 1 decays to 0.5 * (1 - 0.5) = 0.25 exactly.
    boxes = np.array([[0, 0, 2, 1], [0, 0, 1, 1]], np.float32)
    for thr, expected in ((0.25, [0, 1]), (0.25000003, [0, -1])):
      idx, sel, _ = soft_nms(boxes, np.array([0.75, 0.5], np.float32), method="linear",
                             iou_threshold=0.3, score_threshold=thr, max_output_size=2)
      assert idx.tolist() == expected
      assert sel.tolist() == [0.75, 0.25] if expected[1] == 1 else [0.75, 0.0]

  @pytest.mark.slow
  @pytest.mark.parametrize("method", ["gaussian", "linear"])
  def test_large_clustered(self, method):
    rng = np.random.default_rng(2)
    boxes = _make_boxes(rng, 2000, "clustered", 0.01, "none")
    scores = _make_scores(rng, (2000,), False, 0.01)
    out = soft_nms(boxes, scores, method=method, max_output_size=2000)
    expected = ref.soft_nms(boxes, scores, method=method, max_output_size=2000)
    _assert_soft_matches(*out, *expected, k=2000, boxes=boxes, init_scores=scores,
                         replay=dict(method=method), score_threshold=0.001)


# ---------------------------------------------------------------------------------------------
# batched_nms


class TestBatchedNms:

  @_EXAMPLES
  @given(problems(), st.sampled_from([1, 2, 5]), st.sampled_from(_IOU_THRESHOLDS),
         st.sampled_from(_OUTPUT_SIZES))
  def test_matches_oracle(self, problem, num_classes, thr, k):
    class_ids = problem.rng(1).integers(0, num_classes, problem.n).astype(np.int32)
    boxes, scores, classes = _pad(problem, _bucket(problem.n), class_ids, 0)
    indices, num_valid = batched_nms(boxes, scores, classes, iou_threshold=thr,
                                     max_output_size=k)
    expected = ref.batched_nms(problem.boxes, problem.scores, class_ids, iou_threshold=thr,
                               max_output_size=k)
    _assert_indices(indices, num_valid, expected, k)
    if k == 400:
      same = class_ids[:, None] == class_ids[None, :]
      _assert_greedy_properties(np.asarray(indices)[:int(num_valid)], problem.boxes,
                                problem.scores, _valid_candidates(problem.scores, -math.inf),
                                thr, truncated=False, same=same)

  @_BATCH_EXAMPLES
  @given(st.lists(problems(), min_size=3, max_size=3), st.sampled_from(_IOU_THRESHOLDS))
  def test_batched_equals_per_image(self, images, thr):
    size = _FIXED_SIZE
    ids = [p.rng(1).integers(0, 3, p.n).astype(np.int32) for p in images]
    padded = [_pad(p, size, c, 0) for p, c in zip(images, ids)]
    boxes, scores, classes = (np.stack([x[j] for x in padded]) for j in range(3))
    fn = functools.partial(batched_nms, iou_threshold=thr, max_output_size=40)
    indices, num_valid = fn(boxes, scores, classes)
    v = jax.vmap(fn)(boxes, scores, classes)
    np.testing.assert_array_equal(v[0], indices)
    np.testing.assert_array_equal(v[1], num_valid)
    for b, (p, c) in enumerate(zip(images, ids)):
      one = fn(boxes[b], scores[b], classes[b])
      np.testing.assert_array_equal(one[0], indices[b])
      _assert_indices(indices[b], num_valid[b], ref.batched_nms(
          p.boxes, p.scores, c, iou_threshold=thr, max_output_size=40), 40)

  @_FEW_EXAMPLES
  @given(problems(max_n=64))
  def test_jit_matches_eager(self, problem):
    class_ids = problem.rng(1).integers(0, 3, problem.n).astype(np.int32)
    boxes, scores, classes = _pad(problem, _bucket(problem.n), class_ids, 0)
    jitted = _jitted(batched_nms, iou_threshold=0.5, max_output_size=40)(boxes, scores,
                                                                         classes)
    eager = batched_nms(boxes, scores, classes, iou_threshold=0.5, max_output_size=40)
    np.testing.assert_array_equal(jitted[0], eager[0])
    _assert_indices(*jitted, ref.batched_nms(problem.boxes, problem.scores, class_ids,
                                             iou_threshold=0.5, max_output_size=40), 40)

  def test_coordinate_offsets_cannot_leak_between_classes(self):
    # With the offset trick (shift class c by c * (max - min + 1)) in float32, huge or widely
    # spread coordinates make shifted boxes of different classes collide or lose precision.
    boxes = np.array([[0, 0, 10, 10], [3e7, 3e7, 3e7 + 10, 3e7 + 10],
                      [-3e7, -3e7, -3e7 + 10, -3e7 + 10], [1, 1, 11, 11],
                      [-1e4, -1e4, -1e4 + 4, -1e4 + 4], [-1e4 + 1, -1e4, -1e4 + 5, -1e4 + 4]],
                     np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4], np.float32)
    class_ids = np.array([0, 1, 2, 1, 3, 3], np.int32)
    expected = ref.batched_nms(boxes, scores, class_ids, iou_threshold=0.5)
    assert expected.tolist() == [0, 1, 2, 3, 4]  # IoU(4, 5) = 12 / 20
    _assert_indices(*batched_nms(boxes, scores, class_ids, iou_threshold=0.5,
                                 max_output_size=6), expected, 6)

  @pytest.mark.slow
  def test_large_clustered(self):
    rng = np.random.default_rng(3)
    boxes = _make_boxes(rng, 2000, "clustered", 0.01, "huge")
    scores = _make_scores(rng, (2000,), True, 0.01)
    class_ids = rng.integers(0, 20, 2000).astype(np.int32)
    _assert_indices(*batched_nms(boxes, scores, class_ids, iou_threshold=0.5,
                                 max_output_size=2000),
                    ref.batched_nms(boxes, scores, class_ids, iou_threshold=0.5), 2000)


# ---------------------------------------------------------------------------------------------
# multiclass_nms


_MULTICLASS_SIZES = ((3, 5), (400, 10), (5, 400), (0, 4), (400, 400))


def _assert_multiclass(out, expected, total):
  boxes, scores, classes, num_valid = (np.asarray(x) for x in out)
  e_boxes, e_scores, e_classes, e_valid = expected
  assert boxes.shape == (total, 4) and scores.shape == (total,) and classes.shape == (total,)
  assert classes.dtype == np.int32 and num_valid.dtype == np.int32
  assert int(num_valid) == e_valid
  n = e_valid
  np.testing.assert_array_equal(classes[:n], e_classes[:n])
  np.testing.assert_array_equal(scores[:n].astype(np.float64), e_scores[:n])
  np.testing.assert_array_equal(boxes[:n].astype(np.float64), e_boxes[:n])
  assert (boxes[n:] == 0).all() and (scores[n:] == 0).all()


def _multiclass_scores(problem, num_classes):
  return _make_scores(problem.rng(3), (problem.n, num_classes), problem.ties,
                      float(np.isnan(problem.scores).mean()) if problem.n else 0.0)


class TestMulticlassNms:

  @_EXAMPLES
  @given(problems(), st.sampled_from([1, 4]), st.sampled_from(_IOU_THRESHOLDS),
         st.sampled_from([-math.inf, 0.0, 0.25, 0.5]), st.sampled_from(_MULTICLASS_SIZES))
  def test_matches_oracle(self, problem, num_classes, thr, score_threshold, sizes):
    per_class, total = sizes
    class_scores = _multiclass_scores(problem, num_classes)
    boxes, _, padded_scores = _pad(problem, _bucket(problem.n), class_scores, np.nan)
    kw = dict(iou_threshold=thr, score_threshold=score_threshold,
              max_output_size_per_class=per_class, max_total_size=total)
    out = multiclass_nms(boxes, padded_scores, **kw)
    _assert_multiclass(out, ref.multiclass_nms(problem.boxes, class_scores, **kw), total)

  @_BATCH_EXAMPLES
  @given(st.lists(problems(), min_size=3, max_size=3), st.sampled_from(_IOU_THRESHOLDS))
  def test_batched_equals_per_image(self, images, thr):
    size = _FIXED_SIZE
    cs = [_multiclass_scores(p, 4) for p in images]
    padded = [_pad(p, size, c, np.nan) for p, c in zip(images, cs)]
    boxes = np.stack([x[0] for x in padded])
    class_scores = np.stack([x[2] for x in padded])
    kw = dict(iou_threshold=thr, score_threshold=0.25, max_output_size_per_class=5,
              max_total_size=12)
    out = multiclass_nms(boxes, class_scores, **kw)
    for got, v in zip(out, jax.vmap(functools.partial(multiclass_nms, **kw))(boxes,
                                                                              class_scores)):
      np.testing.assert_array_equal(got, v)
    for b, (p, c) in enumerate(zip(images, cs)):
      for got, one in zip(out, multiclass_nms(boxes[b], class_scores[b], **kw)):
        np.testing.assert_array_equal(got[b], one)
      _assert_multiclass([x[b] for x in out], ref.multiclass_nms(p.boxes, c, **kw), 12)

  @_FEW_EXAMPLES
  @given(problems(max_n=64))
  def test_jit_matches_eager(self, problem):
    class_scores = _multiclass_scores(problem, 3)
    boxes, _, padded_scores = _pad(problem, _bucket(problem.n), class_scores, np.nan)
    kw = dict(iou_threshold=0.5, score_threshold=0.25, max_output_size_per_class=5,
              max_total_size=40)
    jitted = _jitted(multiclass_nms, **kw)(boxes, padded_scores)
    for a, b in zip(jitted, multiclass_nms(boxes, padded_scores, **kw)):
      np.testing.assert_array_equal(a, b)
    _assert_multiclass(jitted, ref.multiclass_nms(problem.boxes, class_scores, **kw), 40)

  def test_padding(self):
    # Boxes and scores pad with 0 as in TF's combined_non_max_suppression; classes pad with -1
    # (TF pads 0, which is a real class id) so a padded row can never be mistaken for class 0.
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11]], np.float32)
    scores = np.array([[0.9, 0.1], [0.8, 0.7]], np.float32)
    b, s, c, n = multiclass_nms(boxes, scores, iou_threshold=0.5, score_threshold=0.05,
                                max_output_size_per_class=10, max_total_size=4)
    assert int(n) == 2
    assert c.tolist() == [0, 1, -1, -1]
    np.testing.assert_array_equal(s, np.array([0.9, 0.7, 0, 0], np.float32))
    np.testing.assert_array_equal(b, [boxes[0], boxes[1], [0] * 4, [0] * 4])

  def test_score_threshold_defaults_to_minus_inf(self):
    # As in TF's combined_non_max_suppression and in nms: every non-NaN score is a candidate
    # (-inf itself never is, the comparison being strict).
    boxes = np.array([[0, 0, 1, 1], [5, 5, 6, 6]], np.float32)
    scores = np.array([[-0.5, 0.0], [np.nan, -np.inf]], np.float32)
    kw = dict(iou_threshold=0.5, max_output_size_per_class=5, max_total_size=4)
    out = multiclass_nms(boxes, scores, **kw)
    assert int(out[3]) == 2 and out[2].tolist() == [1, 0, -1, -1]
    _assert_multiclass(out, ref.multiclass_nms(boxes, scores, **kw), 4)

  def test_ties_lower_class_first_then_selection_order(self):
    boxes = np.array([[0, 0, 1, 1], [5, 5, 6, 6]], np.float32)
    scores = np.array([[0.25, 0.5], [0.5, 0.5]], np.float32)
    b, s, c, n = multiclass_nms(boxes, scores, iou_threshold=0.5, score_threshold=0.0,
                                max_output_size_per_class=5, max_total_size=4)
    assert int(n) == 4 and c.tolist() == [0, 1, 1, 0]
    np.testing.assert_array_equal(b, boxes[[1, 0, 1, 0]])

  @_FEW_EXAMPLES
  @given(problems(), st.sampled_from([(3, 5), (400, 10), (5, 400)]))
  def test_rounds_with_few_slots_match_oracle(self, problem, sizes):
    # The XLA path works on the best `slots` (box, class) pairs per round and takes more
    # rounds when those run out. 8 slots force every branch: both top-k stages (4 classes x
    # 320 padded boxes >> 8 blocks of 8), cuts inside runs of tied scores, many rounds, and
    # pairs suppressed by boxes their class kept in an earlier round.
    class_scores = _multiclass_scores(problem, 4)
    boxes, _, padded_scores = _pad(problem, _FIXED_SIZE, class_scores, np.nan)  # 1 compile
    per_class, total = sizes
    kw = dict(iou_threshold=0.5, score_threshold=0.0, max_output_size_per_class=per_class,
              max_total_size=total)
    out = nms_module._multiclass(
        jnp.asarray(boxes), jnp.asarray(padded_scores), 0.5, 0.0, max_per_class=per_class,
        max_total=total, dtype=jnp.float32, slots=8)
    _assert_multiclass(out, ref.multiclass_nms(problem.boxes, class_scores, **kw), total)

  def test_rounds_cut_inside_tied_scores(self):
    # 600 boxes in tight clusters, 5 classes, scores on a 0.01 grid (runs of ties that
    # straddle every round's cut), 16 slots per round: equal to the default path and to
    # the oracle.
    rng = np.random.default_rng(1)
    boxes = _make_boxes(rng, 600, "clustered", 0.01, "none")
    class_scores = np.round(rng.uniform(0, 1, (600, 5)), 2).astype(np.float32)
    kw = dict(iou_threshold=0.3, score_threshold=0.05, max_output_size_per_class=30,
              max_total_size=60)
    few = nms_module._multiclass(jnp.asarray(boxes), jnp.asarray(class_scores), 0.3, 0.05,
                                 max_per_class=30, max_total=60, dtype=jnp.float32, slots=16)
    default = multiclass_nms(boxes, class_scores, **kw)
    for a, b in zip(few, default):
      np.testing.assert_array_equal(a, b)
    _assert_multiclass(few, ref.multiclass_nms(boxes, class_scores, **kw), 60)

  def test_rounds_tie_run_longer_than_the_slots(self):
    # 300 pairs share one score: no cut separates them into rounds of 16 slots, so the call
    # goes to the dense loop, and still equals the oracle.
    rng = np.random.default_rng(2)
    boxes = _make_boxes(rng, 100, "uniform", 0.0, "none")
    class_scores = np.full((100, 3), 0.5, np.float32)
    class_scores[:10, 0] = 0.9
    kw = dict(iou_threshold=0.5, score_threshold=0.0, max_output_size_per_class=40,
              max_total_size=100)
    out = nms_module._multiclass(jnp.asarray(boxes), jnp.asarray(class_scores), 0.5, 0.0,
                                 max_per_class=40, max_total=100, dtype=jnp.float32, slots=16)
    _assert_multiclass(out, ref.multiclass_nms(boxes, class_scores, **kw), 100)

  @pytest.mark.slow
  def test_large_clustered(self):
    rng = np.random.default_rng(4)
    boxes = _make_boxes(rng, 2000, "clustered", 0.01, "none")
    class_scores = _make_scores(rng, (2000, 3), False, 0.0)
    kw = dict(iou_threshold=0.45, score_threshold=0.01, max_output_size_per_class=100,
              max_total_size=200)
    _assert_multiclass(multiclass_nms(boxes, class_scores, **kw),
                       ref.multiclass_nms(boxes, class_scores, **kw), 200)


# ---------------------------------------------------------------------------------------------
# detection_nms (the book's Listing 11.12.1)


def _book_expected(probs, boxes, *, class_threshold, iou_threshold, soft):
  """``book_nms`` kept indexes and their scores, with detection_nms' one deliberate change.

  When no anchor is non-background and ``class_threshold <= 0`` the listing "keeps" anchor 0
  (background, score 0); ``detection_nms`` keeps nothing (its class ids are never 0).
  """
  objects, kept, scores = ref.book_nms(probs, boxes, class_threshold=class_threshold,
                                       iou_threshold=iou_threshold, soft_nms=soft)
  if not (objects > 0).any():
    return objects, np.zeros((0,), np.int64), np.zeros((0,))
  kept = np.asarray(kept, np.int64)
  # The listing's final score array, read at the kept anchors, is the score each had when it
  # was selected: a kept anchor leaves the candidate list and is never decayed again.
  return objects, kept, scores[kept]


def _check_detection(out, probs, boxes, *, class_threshold, iou_threshold, soft, k):
  objects, kept, kept_scores = _book_expected(probs, boxes, class_threshold=class_threshold,
                                              iou_threshold=iou_threshold, soft=soft)
  indices, scores, class_ids, num_valid = (np.asarray(x) for x in out)
  assert class_ids.shape == (k,) and class_ids.dtype == np.int32
  if soft:
    label = _assert_soft_matches(
        indices, scores, num_valid, kept, kept_scores, k=k, boxes=boxes,
        init_scores=np.where(objects > 0, probs.max(axis=1), np.nan),
        replay=dict(sigma=0.5, method="gaussian"), score_threshold=class_threshold)
  else:
    _assert_indices(indices, num_valid, kept, k)
    nv = int(num_valid)
    np.testing.assert_array_equal(scores[:nv].astype(np.float64), kept_scores[:k])
    assert (scores[nv:] == 0).all()
    label = "hard"
  nv = int(num_valid)
  np.testing.assert_array_equal(class_ids[:nv], objects[indices[:nv]])
  assert (class_ids[:nv] > 0).all() and (class_ids[nv:] == -1).all()
  return label


class TestDetectionNms:

  @_EXAMPLES
  @given(problems(nan=False), st.sampled_from([2, 4]), st.booleans(),
         st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]), st.sampled_from(_IOU_THRESHOLDS),
         st.sampled_from([1, 40, 400]))
  def test_matches_book(self, problem, num_classes, soft, class_threshold, thr, k):
    probs = _class_probs(problem, num_classes)
    background = np.eye(1, num_classes, dtype=np.float32)[0]
    boxes, _, padded_probs = _pad(problem, _FIXED_SIZE, probs, background)
    out = detection_nms(padded_probs, boxes, class_threshold=class_threshold,
                        iou_threshold=thr, soft=soft, max_output_size=k)
    event(_check_detection(out, probs, problem.boxes, class_threshold=class_threshold,
                           iou_threshold=thr, soft=soft, k=k))

  @_BATCH_EXAMPLES
  @given(st.lists(problems(nan=False), min_size=3, max_size=3), st.booleans())
  def test_batched_equals_per_image(self, images, soft):
    size = _FIXED_SIZE
    probs = [_class_probs(p, 3) for p in images]
    background = np.eye(1, 3, dtype=np.float32)[0]
    padded = [_pad(p, size, c, background) for p, c in zip(images, probs)]
    boxes = np.stack([x[0] for x in padded])
    padded_probs = np.stack([x[2] for x in padded])
    fn = functools.partial(detection_nms, soft=soft, max_output_size=40)
    out = fn(padded_probs, boxes)
    for got, v in zip(out, jax.vmap(fn)(padded_probs, boxes)):
      np.testing.assert_array_equal(got, v)
    for b, (p, c) in enumerate(zip(images, probs)):
      for got, one in zip(out, fn(padded_probs[b], boxes[b])):
        np.testing.assert_array_equal(got[b], one)
      _check_detection([x[b] for x in out], c, p.boxes, class_threshold=0.5,
                       iou_threshold=0.2, soft=soft, k=40)

  @_FEW_EXAMPLES
  @given(problems(max_n=64, nan=False), st.booleans())
  def test_jit_matches_eager(self, problem, soft):
    probs = _class_probs(problem, 3)
    background = np.eye(1, 3, dtype=np.float32)[0]
    boxes, _, padded_probs = _pad(problem, _bucket(problem.n), probs, background)
    jitted = _jitted(detection_nms, soft=soft, max_output_size=40)(padded_probs, boxes)
    for a, b in zip(jitted, detection_nms(padded_probs, boxes, soft=soft, max_output_size=40)):
      np.testing.assert_array_equal(a, b)
    _check_detection(jitted, probs, problem.boxes, class_threshold=0.5, iou_threshold=0.2,
                     soft=soft, k=40)

  def test_hand_cases(self):
    # IoU(0, 1) = 0.2 exactly: hard mode drops at >= 0.2.
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 2], [50, 50, 60, 60], [70, 70, 80, 80]],
                     np.float32)
    probs = np.array([[0.0625, 0.875, 0.0625], [0.125, 0.125, 0.75], [0.375, 0.0, 0.625],
                      [0.5, 0.5, 0.0]], np.float32)  # the last row ties with background
    idx, sc, cls, n = detection_nms(probs, boxes, max_output_size=4)
    assert idx.tolist() == [0, 2, -1, -1] and cls.tolist() == [1, 2, -1, -1] and int(n) == 2
    np.testing.assert_array_equal(sc, [0.875, 0.625, 0, 0])
    idx, _, _, _ = detection_nms(probs, boxes, iou_threshold=0.25, max_output_size=4)
    assert idx.tolist() == [0, 1, 2, -1]
    idx, _, _, _ = detection_nms(probs, boxes, class_threshold=0.625, iou_threshold=0.25,
                                 max_output_size=4)
    assert idx.tolist() == [0, 1, 2, -1]  # 0.625 >= 0.625 is kept
    # Soft: selecting box 0 decays box 1 by exp(-2 * 0.2^2), which still beats box 2.
    idx, sc, cls, n = detection_nms(probs, boxes, soft=True, max_output_size=4)
    assert idx.tolist() == [0, 1, 2, -1]
    np.testing.assert_allclose(sc, [0.875, 0.75 * math.exp(-2 * 0.04), 0.625, 0], rtol=1e-6)

  def test_no_candidates_keeps_nothing(self):
    # The listing would keep anchor 0 here (background, with class_threshold 0); the op
    # keeps nothing. Documented in _book_expected.
    probs = np.array([[0.75, 0.25], [0.5, 0.5]], np.float32)
    boxes = np.array([[0, 0, 1, 1], [2, 2, 3, 3]], np.float32)
    assert ref.book_nms(probs, boxes, class_threshold=0.0)[1] == [0]
    for soft in (False, True):
      idx, sc, cls, n = detection_nms(probs, boxes, class_threshold=0.0, soft=soft,
                                      max_output_size=2)
      assert idx.tolist() == [-1, -1] and cls.tolist() == [-1, -1] and int(n) == 0
      assert sc.tolist() == [0.0, 0.0]

  @pytest.mark.slow
  @pytest.mark.parametrize("soft", [False, True])
  def test_large_clustered(self, soft):
    rng = np.random.default_rng(5)
    boxes = _make_boxes(rng, 2000, "clustered", 0.01, "none")
    logits = rng.normal(size=(2000, 4)) * 2
    probs = (np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)).astype(np.float32)
    _check_detection(detection_nms(probs, boxes, soft=soft, max_output_size=2000), probs,
                     boxes, class_threshold=0.5, iou_threshold=0.2, soft=soft, k=2000)


# ---------------------------------------------------------------------------------------------
# Ragged batches: `valid` keeps padding rows out of every op.


_RAGGED_COUNTS = (0, 2, 5)  # real boxes per image, zero-padded to 6 rows


def _ragged_hand_case():
  """3 images with 0, 2 and 5 real boxes, padded to 6 rows with all-zero boxes of score 0."""
  rng = np.random.default_rng(11)
  b, n = len(_RAGGED_COUNTS), 6
  boxes = np.zeros((b, n, 4), np.float32)
  scores = np.zeros((b, n), np.float32)
  class_scores = np.zeros((b, n, 3), np.float32)
  class_ids = np.zeros((b, n), np.int32)
  for i, count in enumerate(_RAGGED_COUNTS):
    boxes[i, :count] = _make_boxes(rng, count, "clustered", 0.0, "none")
    scores[i, :count] = rng.integers(1, 8, count) / 8
    class_scores[i, :count] = rng.integers(0, 8, (count, 3)) / 8
    class_ids[i, :count] = rng.integers(0, 2, count)
  valid = np.arange(n) < np.asarray(_RAGGED_COUNTS)[:, None]
  return boxes, scores, class_scores, class_ids, valid


# name -> fn(boxes, scores, class_scores, class_ids, **kwargs); soft-NMS with threshold 0, so
# that score-0 padding would be a candidate for every op without `valid`.
_RAGGED_OPS = {
    "nms": lambda b, s, cs, c, **kw: nms(b, s, iou_threshold=0.5, max_output_size=4, **kw),
    "batched_nms": lambda b, s, cs, c, **kw: batched_nms(b, s, c, iou_threshold=0.5,
                                                         max_output_size=4, **kw),
    "soft_nms": lambda b, s, cs, c, **kw: soft_nms(b, s, score_threshold=0.0,
                                                   max_output_size=4, **kw),
    "multiclass_nms": lambda b, s, cs, c, **kw: multiclass_nms(
        b, cs, iou_threshold=0.5, max_output_size_per_class=2, max_total_size=5, **kw),
}


def _scatter_ragged(images, size, class_ids, class_scores):
  """Puts each image's rows at random positions among ``size`` rows and fills the others with
  padding that would win if it were ever a candidate: boxes overlapping the real ones (some
  all-zero), scores up to 2 (real ones are below 1), random class ids.

  Returns ``boxes, scores, class_scores, class_ids, valid`` stacked over the images, and
  ``own [B, size]``: the image's own index of each real row (-1 for padding).
  """
  out = {k: [] for k in ("boxes", "scores", "class_scores", "class_ids", "valid", "own")}
  for p, ids, cs in zip(images, class_ids, class_scores):
    rng = p.rng(7)
    pos = np.sort(rng.choice(size, p.n, replace=False))
    boxes = _make_boxes(rng, size, "clustered", 0.0, "none")
    boxes[rng.random(size) < 0.3] = 0.0
    scores = rng.uniform(0.0, 2.0, size).astype(np.float32)
    c_scores = rng.uniform(0.0, 2.0, (size, cs.shape[1])).astype(np.float32)
    c_ids = rng.integers(0, 3, size).astype(np.int32)
    own = np.full(size, -1, np.int32)
    boxes[pos], scores[pos], c_scores[pos], c_ids[pos] = p.boxes, p.scores, cs, ids
    own[pos] = np.arange(p.n)
    for k, v in zip(out, (boxes, scores, c_scores, c_ids, own >= 0, own)):
      out[k].append(v)
  return tuple(np.stack(v) for v in out.values())


def _own_indices(indices, own):
  """Indices into the padded rows -> the image's own indices; every one must be a real row."""
  indices = np.asarray(indices)
  kept = indices[indices >= 0]
  assert (own[kept] >= 0).all(), f"padding rows selected: {kept[own[kept] < 0].tolist()}"
  return np.where(indices >= 0, own[np.maximum(indices, 0)], -1).astype(np.int32)


class TestRaggedBatches:

  @pytest.mark.parametrize("implementation", ["xla", "pallas"])
  @pytest.mark.parametrize("op", sorted(_RAGGED_OPS))
  def test_each_image_equals_its_unpadded_call(self, op, implementation):
    boxes, scores, class_scores, class_ids, valid = _ragged_hand_case()
    fn = functools.partial(_RAGGED_OPS[op], implementation=implementation)
    out = fn(boxes, scores, class_scores, class_ids, valid=valid)
    for b, count in enumerate(_RAGGED_COUNTS):
      one = fn(boxes[b, :count], scores[b, :count], class_scores[b, :count],
               class_ids[b, :count])
      assert len(out) == len(one)
      for got, want in zip(out, one):
        got, want = np.asarray(got)[b], np.asarray(want)
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)

  def test_padding_is_selected_without_valid(self):
    # Why `valid` exists: with the torchvision default score_threshold=-inf, all-zero padding
    # rows (score 0, area 0, so they suppress nothing) are candidates like any other box.
    boxes, scores, _, _, valid = _ragged_hand_case()
    _, num_valid = nms(boxes, scores, iou_threshold=0.5, max_output_size=4)
    assert int(num_valid[0]) == 4  # image 0 has no real box
    indices, num_valid = nms(boxes, scores, iou_threshold=0.5, max_output_size=4, valid=valid)
    assert int(num_valid[0]) == 0 and (np.asarray(indices[0]) == -1).all()
    # bfloat16 inputs (computed in float32) mask the same way.
    low = nms(jnp.asarray(boxes, jnp.bfloat16), jnp.asarray(scores, jnp.bfloat16),
              iou_threshold=0.5, max_output_size=4, valid=valid)
    np.testing.assert_array_equal(low[0], indices)
    np.testing.assert_array_equal(low[1], num_valid)

  # Few examples: each compiles the jitted ops again (the IoU threshold is a constant under
  # jit); the eager and vmapped programs compile once, all examples sharing one padded size.
  @settings(max_examples=3, deadline=None)
  @given(st.lists(problems(max_n=63), min_size=4, max_size=4), st.sampled_from(_IOU_THRESHOLDS))
  def test_matches_per_image_oracle(self, images, thr):
    # Real rows scattered among padding that would win; eager on [2, 2, S] (leading batch
    # dims), jitted and vmapped on [4, S]; each image against the oracle on its real rows.
    size = _BUCKETS[1]  # 64 > 63 rows: at least one padding row, and a single padded size
    ids = [p.rng(1).integers(0, 3, p.n).astype(np.int32) for p in images]
    cs = [_multiclass_scores(p, 3) for p in images]
    boxes, scores, class_scores, class_ids, valid, own = _scatter_ragged(images, size, ids, cs)
    grid = lambda x: x.reshape((2, 2) + x.shape[1:])

    def run(fn, *args, **kw):
      eager = fn(*(grid(a) for a in args), valid=grid(valid), **kw)
      jitted = _jitted(fn, **kw)(*args, valid=valid)
      for e, j in zip(eager, jitted):
        assert e.shape[:2] == (2, 2)
        np.testing.assert_array_equal(np.asarray(e).reshape(j.shape), j)
      return jitted

    kw = dict(iou_threshold=thr, max_output_size=40)
    indices, num_valid = run(nms, boxes, scores, **kw)
    mapped = jax.vmap(functools.partial(nms, **kw))(boxes, scores, valid=valid)
    np.testing.assert_array_equal(mapped[0], indices)
    for b, p in enumerate(images):
      _assert_indices(_own_indices(indices[b], own[b]), num_valid[b],
                      ref.nms(p.boxes, p.scores, **kw), 40)

    indices, num_valid = run(batched_nms, boxes, scores, class_ids, **kw)
    for b, (p, c) in enumerate(zip(images, ids)):
      _assert_indices(_own_indices(indices[b], own[b]), num_valid[b],
                      ref.batched_nms(p.boxes, p.scores, c, **kw), 40)

    indices, sel, num_valid = run(soft_nms, boxes, scores, max_output_size=40)
    for b, p in enumerate(images):
      expected = ref.soft_nms(p.boxes, p.scores, max_output_size=40)
      event(_assert_soft_matches(
          _own_indices(indices[b], own[b]), sel[b], num_valid[b], *expected, k=40,
          boxes=p.boxes, init_scores=p.scores, replay={}, score_threshold=0.001))

    kw = dict(iou_threshold=thr, max_output_size_per_class=5, max_total_size=12)
    out = run(multiclass_nms, boxes, class_scores, **kw)  # default score_threshold: -inf
    for b, (p, c) in enumerate(zip(images, cs)):
      _assert_multiclass([x[b] for x in out], ref.multiclass_nms(p.boxes, c, **kw), 12)


_VALID_CALLS = {
    "nms": lambda v: nms(_B4, _S2, iou_threshold=0.5, max_output_size=2, valid=v),
    "batched_nms": lambda v: batched_nms(_B4, _S2, np.zeros((2,), np.int32), iou_threshold=0.5,
                                         max_output_size=2, valid=v),
    "soft_nms": lambda v: soft_nms(_B4, _S2, max_output_size=2, valid=v),
    "multiclass_nms": lambda v: multiclass_nms(_B4, _P2, iou_threshold=0.5,
                                               max_output_size_per_class=2, max_total_size=2,
                                               valid=v),
}


@pytest.mark.parametrize("op", sorted(_VALID_CALLS))
def test_bad_valid_names_the_argument(op):
  call = _VALID_CALLS[op]
  for shape in [(3,), (1, 2), (), (2, 1)]:  # boxes are [2, 4]: valid must be exactly [2]
    with pytest.raises(ValueError, match="`valid`"):
      call(np.ones(shape, bool))
  with pytest.raises(TypeError, match="`valid`"):
    call(np.ones((2,), np.int32))
  call(np.array([True, False]))  # the right shape and dtype is accepted


# ---------------------------------------------------------------------------------------------
# Empty inputs and bad arguments.


_B4 = np.array([[0, 0, 1, 1], [2, 2, 3, 3]], np.float32)
_S2 = np.array([0.5, 0.6], np.float32)
_P2 = np.array([[0.25, 0.75], [0.5, 0.5]], np.float32)


@pytest.mark.parametrize("lead", [(), (2,)])
def test_empty_inputs(lead):
  boxes = np.zeros(lead + (0, 4), np.float32)
  scores = np.zeros(lead + (0,), np.float32)
  idx, n = nms(boxes, scores, iou_threshold=0.5, max_output_size=3)
  assert idx.shape == lead + (3,) and (np.asarray(idx) == -1).all()
  assert n.shape == lead and (np.asarray(n) == 0).all()
  idx, sc, n = soft_nms(boxes, scores, max_output_size=3)
  assert (np.asarray(idx) == -1).all() and (np.asarray(sc) == 0).all()
  assert sc.shape == lead + (3,) and (np.asarray(n) == 0).all()
  idx, n = batched_nms(boxes, scores, np.zeros(lead + (0,), np.int32), iou_threshold=0.5,
                       max_output_size=3)
  assert (np.asarray(idx) == -1).all() and (np.asarray(n) == 0).all()
  b, s, c, n = multiclass_nms(boxes, np.zeros(lead + (0, 3), np.float32), iou_threshold=0.5,
                              score_threshold=0.0, max_output_size_per_class=2,
                              max_total_size=3)
  assert b.shape == lead + (3, 4) and s.shape == lead + (3,) and c.shape == lead + (3,)
  assert (np.asarray(b) == 0).all() and (np.asarray(s) == 0).all()
  assert (np.asarray(n) == 0).all()
  idx, sc, cls, n = detection_nms(np.zeros(lead + (0, 3), np.float32), boxes,
                                  max_output_size=3)
  assert (np.asarray(idx) == -1).all() and (np.asarray(cls) == -1).all()
  assert (np.asarray(sc) == 0).all() and (np.asarray(n) == 0).all()


def test_zero_output_size():
  idx, n = nms(_B4, _S2, iou_threshold=0.5, max_output_size=0)
  assert idx.shape == (0,) and int(n) == 0


_BAD = [
    # (function, args, kwargs, argument the message must name)
    (nms, (np.zeros((2, 3), np.float32), _S2), dict(iou_threshold=0.5, max_output_size=2),
     "boxes"),
    (nms, (_B4, np.zeros((3,), np.float32)), dict(iou_threshold=0.5, max_output_size=2),
     "scores"),
    (nms, (_B4, _S2), dict(iou_threshold=-0.1, max_output_size=2), "iou_threshold"),
    (nms, (_B4, _S2), dict(iou_threshold=1.5, max_output_size=2), "iou_threshold"),
    (nms, (_B4, _S2), dict(iou_threshold=math.nan, max_output_size=2), "iou_threshold"),
    (nms, (_B4, _S2), dict(iou_threshold=0.5, max_output_size=-1), "max_output_size"),
    (nms, (_B4, _S2), dict(iou_threshold=0.5, max_output_size=2.0), "max_output_size"),
    (nms, (_B4.astype(np.int32), _S2), dict(iou_threshold=0.5, max_output_size=2), "boxes"),
    (nms, (_B4, np.array([1, 2], np.int32)), dict(iou_threshold=0.5, max_output_size=2),
     "scores"),
    (soft_nms, (_B4, _S2), dict(method="cubic", max_output_size=2), "method"),
    (soft_nms, (_B4, _S2), dict(sigma=0.0, max_output_size=2), "sigma"),
    (soft_nms, (_B4, _S2), dict(iou_threshold=2.0, max_output_size=2), "iou_threshold"),
    (soft_nms, (_B4, _S2), dict(max_output_size=-3), "max_output_size"),
    (soft_nms, (np.zeros((2, 5), np.float32), _S2), dict(max_output_size=2), "boxes"),
    (soft_nms, (_B4, np.zeros((2, 1), np.float32)), dict(max_output_size=2), "scores"),
    (batched_nms, (_B4, _S2, np.zeros((3,), np.int32)),
     dict(iou_threshold=0.5, max_output_size=2), "class_ids"),
    (batched_nms, (_B4, _S2, np.zeros((2,), np.float32)),
     dict(iou_threshold=0.5, max_output_size=2), "class_ids"),
    (batched_nms, (_B4, _S2, np.zeros((2,), np.int32)),
     dict(iou_threshold=-1.0, max_output_size=2), "iou_threshold"),
    (multiclass_nms, (_B4, np.zeros((3, 2), np.float32)),
     dict(iou_threshold=0.5, score_threshold=0.0, max_output_size_per_class=2,
          max_total_size=2), "class_scores"),
    (multiclass_nms, (_B4, _P2),
     dict(iou_threshold=1.01, score_threshold=0.0, max_output_size_per_class=2,
          max_total_size=2), "iou_threshold"),
    (multiclass_nms, (_B4, _P2),
     dict(iou_threshold=0.5, score_threshold=0.0, max_output_size_per_class=-1,
          max_total_size=2), "max_output_size_per_class"),
    (multiclass_nms, (_B4, _P2),
     dict(iou_threshold=0.5, score_threshold=0.0, max_output_size_per_class=2,
          max_total_size=-2), "max_total_size"),
    (detection_nms, (_P2, np.zeros((2, 3), np.float32)), dict(max_output_size=2), "boxes"),
    (detection_nms, (np.zeros((3, 2), np.float32), _B4), dict(max_output_size=2),
     "class_probs"),
    (detection_nms, (_P2, _B4), dict(class_threshold=1.5, max_output_size=2),
     "class_threshold"),
    (detection_nms, (_P2, _B4), dict(iou_threshold=-0.5, max_output_size=2), "iou_threshold"),
    (detection_nms, (_P2, _B4), dict(max_output_size=-1), "max_output_size"),
    (detection_nms, (_P2.astype(np.int32), _B4), dict(max_output_size=2), "class_probs"),
]


@pytest.mark.parametrize("fn, args, kwargs, name", _BAD,
                         ids=[f"{f.__name__}-{name}-{i}" for i, (f, _, _, name) in
                              enumerate(_BAD)])
def test_bad_arguments_name_the_argument(fn, args, kwargs, name):
  with pytest.raises((ValueError, TypeError), match=name):
    fn(*args, **kwargs)
