"""The NMS oracles against their published counterparts: torchvision and TensorFlow.

Run by hand (the suite does not depend on torch or TensorFlow)::

    python -m pytest tests/reference/test_nms_vs_peers.py -p no:cacheprovider

The module is skipped when either library is missing. torchvision is imported before
TensorFlow on purpose: with torch 2.14 / torchvision 0.29 and TF 2.21 in one process,
importing torchvision *after* TensorFlow segfaults.

What is compared, and the known differences that the inputs avoid:

* ``torchvision.ops.nms`` (float64 tensors, so no rounding differences) = ``ref.nms``, ties
  included (torchvision's CPU sort is stable). NaN scores are avoided: torchvision sorts NaN
  first and selects it; the contract never selects NaN.
* ``torchvision.ops.batched_nms`` = ``ref.batched_nms`` as a set and in score order; among
  equal scores torchvision's final sort does not keep index order, so the order is compared
  only where scores differ.
* ``tf.image.non_max_suppression`` (float32) = ``ref.nms`` on integer boxes with IoU
  thresholds on a 1/20 grid (exact, see tests/ops/test_nms.py), ties and NaN included.
  Inverted boxes are avoided: TF reorders the corners of each box, the contract gives them
  area 0.
* ``tf.image.non_max_suppression_with_scores`` (soft-NMS) = ``ref.soft_nms`` with
  ``sigma = 2 * soft_nms_sigma`` (TF decays by ``exp(-IoU^2 / (2 soft_nms_sigma))``) and
  ``iou_threshold=1.0`` (which disables TF's extra hard suppression: TF suppresses at
  ``IoU > iou_threshold``). TF takes boxes with ``score > score_threshold`` and keeps a decayed
  box while its score is ``> score_threshold``; the contract uses ``>=`` for both, so scores
  are continuous (never exactly at the threshold). TF computes in float32: the order may
  differ at float32 near ties, which the comparison allows as in tests/ops/test_nms.py.
* ``tf.image.combined_non_max_suppression(..., clip_boxes=False)`` = ``ref.multiclass_nms``
  with NaN included: TF selects ``score > score_threshold``, suppresses at
  ``IoU > iou_threshold`` and pads with zeros (classes as float32; the oracle's are int32).
  Tied scores are avoided: TF orders them arbitrarily (a score-only priority queue per class,
  an unstable ``std::sort`` for the merge; ``test_multiclass_tie_order_is_unspecified_in_tf``
  shows it), while the contract orders them by index, class, selection order.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
tf = pytest.importorskip("tensorflow")

from jaxvision.reference import nms as ref  # pylint: disable=g-import-not-at-top

_IOU_GRID = tuple(k / 20 for k in range(21))
_MANY = settings(max_examples=300, deadline=None)


def _integer_boxes(rng, n, *, clustered, inverted=False, degenerate=0.0):
  if clustered:
    k = int(rng.integers(1, 5))
    centres = rng.integers(20, 80, (k, 2))
    sizes = rng.integers(8, 38, (k, 2))
    which = rng.integers(0, k, n)
    wh = np.maximum(sizes[which] + rng.integers(-3, 4, (n, 2)), 1)
    xy = centres[which] - wh // 2 + rng.integers(-3, 4, (n, 2))
  else:
    wh = rng.integers(1, 41, (n, 2))
    xy = rng.integers(0, 100, (n, 2))
  boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float64)
  bad = rng.random(n) < degenerate
  boxes[bad, 2] = boxes[bad, 0]  # zero width
  if inverted:
    flip = rng.random(n) < 0.1
    boxes[flip] = boxes[flip][:, [2, 3, 0, 1]]
  return boxes


def _scores(rng, shape, ties, nan_frac=0.0):
  scores = rng.integers(1, 8, shape) / 8 if ties else rng.random(shape)
  scores = scores.astype(np.float32).astype(np.float64)
  scores[rng.random(shape) < nan_frac] = np.nan
  return scores


_SEEDS = st.integers(0, 2**32 - 1)


@_MANY
@given(_SEEDS, st.integers(0, 300), st.booleans(), st.booleans(), st.floats(0.0, 1.0))
def test_nms_vs_torchvision(seed, n, clustered, ties, thr):
  rng = np.random.default_rng(seed)
  boxes = _integer_boxes(rng, n, clustered=clustered, inverted=True, degenerate=0.05)
  boxes += rng.random(boxes.shape)  # continuous coordinates: torchvision runs in float64 too
  scores = _scores(rng, (n,), ties)
  theirs = torchvision.ops.nms(torch.from_numpy(boxes), torch.from_numpy(scores), thr)
  np.testing.assert_array_equal(ref.nms(boxes, scores, iou_threshold=thr), theirs.numpy())


@_MANY
@given(_SEEDS, st.integers(0, 300), st.booleans(), st.booleans(), st.floats(0.0, 1.0),
       st.sampled_from([1, 3, 10]))
def test_batched_nms_vs_torchvision(seed, n, clustered, ties, thr, num_classes):
  rng = np.random.default_rng(seed)
  boxes = _integer_boxes(rng, n, clustered=clustered) + rng.random((n, 4))
  scores = _scores(rng, (n,), ties)
  classes = rng.integers(0, num_classes, n)
  theirs = torchvision.ops.batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores),
                                       torch.from_numpy(classes), thr).numpy()
  mine = ref.batched_nms(boxes, scores, classes, iou_threshold=thr)
  assert sorted(mine.tolist()) == sorted(theirs.tolist())
  np.testing.assert_array_equal(scores[mine], scores[theirs])  # same score order
  if len(np.unique(scores)) == n:
    np.testing.assert_array_equal(mine, theirs)


@_MANY
@given(_SEEDS, st.integers(0, 300), st.booleans(), st.booleans(),
       st.sampled_from(_IOU_GRID), st.sampled_from([-math.inf, 0.25, 0.5]),
       st.sampled_from([1, 10, 1000]))
def test_nms_vs_tensorflow(seed, n, clustered, ties, thr, score_threshold, k):
  rng = np.random.default_rng(seed)
  boxes = _integer_boxes(rng, n, clustered=clustered, degenerate=0.05)
  scores = _scores(rng, (n,), ties, nan_frac=0.05)
  theirs = tf.image.non_max_suppression(
      tf.constant(boxes, tf.float32), tf.constant(scores, tf.float32), k, iou_threshold=thr,
      score_threshold=score_threshold)
  mine = ref.nms(boxes, scores, iou_threshold=thr, max_output_size=k,
                 score_threshold=score_threshold)
  np.testing.assert_array_equal(mine, theirs.numpy())


@_MANY
@given(_SEEDS, st.integers(0, 300), st.booleans(), st.sampled_from([0.25, 0.5, 1.0]),
       st.sampled_from([0.0, 0.001, 0.3]), st.sampled_from([5, 1000]))
def test_soft_nms_vs_tensorflow(seed, n, clustered, sigma, score_threshold, k):
  rng = np.random.default_rng(seed)
  boxes = _integer_boxes(rng, n, clustered=clustered)
  scores = _scores(rng, (n,), ties=False)
  idx, sc = tf.image.non_max_suppression_with_scores(
      tf.constant(boxes, tf.float32), tf.constant(scores, tf.float32), k, iou_threshold=1.0,
      score_threshold=score_threshold, soft_nms_sigma=sigma / 2)
  theirs, their_scores = idx.numpy(), sc.numpy().astype(np.float64)
  mine, my_scores = ref.soft_nms(boxes, scores, sigma=sigma, score_threshold=score_threshold,
                                 max_output_size=k)
  m = min(len(mine), len(theirs))
  diff = np.flatnonzero(mine[:m] != theirs[:m])
  p = int(diff[0]) if len(diff) else m
  np.testing.assert_allclose(their_scores[:p], my_scores[:p], rtol=2e-5, atol=1e-30)
  if p == len(mine) == len(theirs):
    return
  # They part at step p: only acceptable at a float32 near tie, or at the threshold.
  current = ref.soft_nms_live_scores(boxes, scores, mine[:p], sigma=sigma,
                                     score_threshold=-math.inf)
  current[~(scores >= score_threshold)] = -np.inf
  near = lambda a, b: abs(a - b) <= 5e-5 * max(abs(a), abs(b)) + 1e-30
  picks = [int(x[p]) for x in (mine, theirs) if p < len(x)]
  assert (len(picks) == 2 and near(current[picks[0]], current[picks[1]])) or any(
      near(current[i], score_threshold) for i in picks), (p, picks, current[picks])


@_MANY
@given(_SEEDS, st.integers(0, 200), st.booleans(), st.sampled_from([1, 2, 5]),
       st.sampled_from(_IOU_GRID), st.sampled_from([-math.inf, 0.0, 0.25, 0.5]),
       st.sampled_from([(1, 5), (5, 20), (100, 10), (300, 300)]))
def test_multiclass_nms_vs_tensorflow(seed, n, clustered, num_classes, thr, score_threshold,
                                      sizes):
  per_class, total = sizes
  rng = np.random.default_rng(seed)
  images = [(_integer_boxes(rng, n, clustered=clustered, degenerate=0.05),
             _scores(rng, (n, num_classes), False, nan_frac=0.05)) for _ in range(2)]
  boxes = np.stack([b for b, _ in images])[:, :, None, :]
  scores = np.stack([s for _, s in images])
  t_boxes, t_scores, t_classes, t_valid = (x.numpy() for x in
                                           tf.image.combined_non_max_suppression(
                                               tf.constant(boxes, tf.float32),
                                               tf.constant(scores, tf.float32), per_class,
                                               total, iou_threshold=thr,
                                               score_threshold=score_threshold,
                                               pad_per_class=False, clip_boxes=False))
  for b, (bx, sc) in enumerate(images):
    m_boxes, m_scores, m_classes, m_valid = ref.multiclass_nms(
        bx, sc, iou_threshold=thr, score_threshold=score_threshold,
        max_output_size_per_class=per_class, max_total_size=total)
    assert m_valid == t_valid[b]
    # TF orders equal scores arbitrarily (see the test below), also across classes: compare
    # the rows with each run of equal scores put in one canonical order.
    mine = _canonical(m_scores, m_classes, m_boxes)
    theirs = _canonical(t_scores[b].astype(np.float64), t_classes[b].astype(np.int32),
                        t_boxes[b].astype(np.float64))
    for a, c in zip(mine, theirs):
      np.testing.assert_array_equal(a, c)


def _canonical(scores, classes, boxes):
  """The rows sorted by score (descending), then class, then box: equal-score runs in one
  order, everything else as it was (scores come out non-increasing)."""
  order = np.lexsort((*boxes.T[::-1], classes, -scores))
  return scores[order], classes[order], boxes[order]


def test_multiclass_tie_order_is_unspecified_in_tf():
  """Documents why ties are left out above: TF's order of equal scores is not index order."""
  n = 8
  boxes = np.array([[10 * i, 0, 10 * i + 5, 5] for i in range(n)], np.float32)  # disjoint
  out = tf.image.combined_non_max_suppression(
      boxes[None, :, None, :], np.full((1, n, 1), 0.5, np.float32), n, n, 0.5, 0.0,
      clip_boxes=False)
  tf_order = (out[0].numpy()[0][:, 0] / 10).astype(int).tolist()
  assert sorted(tf_order) == list(range(n))
  assert tf_order != list(range(n))  # e.g. [0, 2, 6, 5, 7, 4, 1, 3] with TF 2.21
  _, _, _, valid = ref.multiclass_nms(boxes, np.full((n, 1), 0.5), iou_threshold=0.5,
                                      score_threshold=0.0, max_output_size_per_class=n,
                                      max_total_size=n)
  assert valid == n
