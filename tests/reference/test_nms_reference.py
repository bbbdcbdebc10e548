"""Self-tests of the NMS oracles (``jaxvision.reference.nms``) on hand-computed cases.

The oracles are what every NMS op is checked against, so they are checked here on their own:
by cases small enough to work out on paper, by properties that define greedy NMS, and by
identities between the oracles. Nothing here needs torchvision or TensorFlow (those
comparisons live in ``test_nms_vs_peers.py``, run by hand).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from jaxvision.reference import nms as ref


def _iou_by_hand(a, b):
  """IoU of two boxes, written out scalar by scalar."""
  iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
  ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
  inter = iw * ih
  area_a = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1])
  area_b = max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])
  union = area_a + area_b - inter
  return inter / union if union > 0 else 0.0


@st.composite
def _small_problem(draw, max_n=10):
  """Integer boxes in a small window (so IoUs are exact rationals) and scores from few values."""
  n = draw(st.integers(0, max_n))
  coords = st.integers(0, 12)
  boxes = []
  for _ in range(n):
    x1, y1 = draw(coords), draw(coords)
    w, h = draw(st.integers(-1, 8)), draw(st.integers(-1, 8))
    boxes.append([x1, y1, x1 + w, y1 + h])
  scores = [draw(st.sampled_from([0.1, 0.25, 0.5, 0.75, 0.9, math.nan])) for _ in range(n)]
  return np.asarray(boxes, np.float64).reshape(n, 4), np.asarray(scores, np.float64)


_THRESHOLDS = st.sampled_from([0.0, 0.1, 0.2, 0.25, 1 / 3, 0.5, 0.7, 1.0])


# ---------------------------------------------------------------------------------------------
# box_iou


class TestBoxIou:

  def test_hand_values(self):
    boxes1 = [[0, 0, 2, 2], [0, 0, 10, 10]]
    boxes2 = [[1, 1, 3, 3], [0, 0, 2, 2], [5, 0, 15, 10], [2, 0, 4, 2]]
    expected = [[1 / 7, 1.0, 0.0, 0.0],  # touching edges: no overlap
                [4 / 100, 4 / 100, 50 / 150, 4 / 100]]
    np.testing.assert_allclose(ref.box_iou(boxes1, boxes2), expected, rtol=1e-15)

  def test_degenerate_boxes_have_zero_iou(self):
    boxes = [[0, 0, 0, 0],     # point
             [0, 0, 0, 5],     # zero width
             [0, 0, 5, 0],     # zero height
             [5, 5, 0, 0],     # inverted
             [0, 5, 5, 0],     # inverted in y only
             [0, 0, 5, 5]]     # a normal box covering all of them
    iou = ref.box_iou(boxes, boxes)
    assert not np.isnan(iou).any()
    expected = np.zeros((6, 6))
    expected[5, 5] = 1.0
    np.testing.assert_array_equal(iou, expected)

  def test_shapes(self):
    assert ref.box_iou(np.zeros((0, 4)), np.zeros((3, 4))).shape == (0, 3)
    assert ref.box_iou(np.zeros((2, 4)), np.zeros((0, 4))).shape == (2, 0)
    assert ref.box_iou([[0, 0, 1, 1]], [[0, 0, 1, 1]]).dtype == np.float64
    with pytest.raises(ValueError, match="boxes1"):
      ref.box_iou(np.zeros((2, 3)), np.zeros((2, 4)))

  @settings(max_examples=50, deadline=None)
  @given(_small_problem(), _small_problem())
  def test_matches_scalar_formula_symmetric_in_unit_interval(self, p1, p2):
    (b1, _), (b2, _) = p1, p2
    iou = ref.box_iou(b1, b2)
    assert iou.shape == (len(b1), len(b2))
    for i in range(len(b1)):
      for j in range(len(b2)):
        assert iou[i, j] == _iou_by_hand(b1[i], b2[j])
    np.testing.assert_array_equal(iou, ref.box_iou(b2, b1).T)
    assert ((iou >= 0) & (iou <= 1)).all()
    self_iou = np.diag(ref.box_iou(b1, b1))
    has_area = (b1[:, 2] > b1[:, 0]) & (b1[:, 3] > b1[:, 1])
    np.testing.assert_array_equal(self_iou, has_area.astype(np.float64))


# ---------------------------------------------------------------------------------------------
# nms


def _nms_by_removal(boxes, scores, thr, score_threshold=-math.inf):
  """Greedy NMS written the other way round: take the best remaining, delete its overlaps."""
  remaining = [i for i in range(len(scores))
               if not math.isnan(scores[i]) and scores[i] > score_threshold]
  keep = []
  while remaining:
    best = min(remaining, key=lambda i: (-scores[i], i))
    keep.append(best)
    remaining = [j for j in remaining
                 if j != best and not _iou_by_hand(boxes[best], boxes[j]) > thr]
  return keep


class TestNms:

  def test_hand_case(self):
    boxes = [[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10]]
    # IoU(0, 1) = 81 / 119 = 0.68; box 3 duplicates box 0.
    out = ref.nms(boxes, [0.9, 0.8, 0.7, 0.95], iou_threshold=0.5)
    assert out.tolist() == [3, 2]
    assert out.dtype == np.int64
    assert ref.nms(boxes, [0.9, 0.8, 0.7, 0.95], iou_threshold=0.7).tolist() == [3, 1, 2]

  def test_suppression_is_strict(self):
    boxes = [[0, 0, 2, 1], [0, 0, 1, 1]]  # IoU exactly 0.5
    assert ref.nms(boxes, [0.9, 0.8], iou_threshold=0.5).tolist() == [0, 1]
    assert ref.nms(boxes, [0.9, 0.8], iou_threshold=0.49).tolist() == [0]

  def test_suppressed_boxes_do_not_suppress(self):
    # IoU(0, 1) = IoU(1, 2) = 0.6 and IoU(0, 2) = 1/3: 1 is suppressed, so 2 survives.
    boxes = [[0, 0, 8, 1], [2, 0, 10, 1], [4, 0, 12, 1]]
    assert ref.box_iou(boxes, boxes)[0].round(4).tolist() == [1.0, 0.6, 0.3333]
    assert ref.nms(boxes, [0.9, 0.8, 0.7], iou_threshold=0.5).tolist() == [0, 2]

  def test_ties_go_to_the_lower_index(self):
    boxes = [[0, 0, 10, 10]] * 4 + [[50, 50, 60, 60]] * 2
    out = ref.nms(boxes, [0.5, 0.7, 0.7, 0.2, 0.7, 0.7], iou_threshold=0.5)
    assert out.tolist() == [1, 4]

  def test_score_threshold_is_strict_and_nan_never_selected(self):
    boxes = [[0, 0, 1, 1], [2, 2, 3, 3], [4, 4, 5, 5], [6, 6, 7, 7]]
    scores = [0.5, math.nan, 0.6, 0.4]
    assert ref.nms(boxes, scores, iou_threshold=0.5).tolist() == [2, 0, 3]
    assert ref.nms(boxes, scores, iou_threshold=0.5, score_threshold=0.5).tolist() == [2]
    # A NaN box does not suppress either, even when identical to a candidate.
    assert ref.nms([[0, 0, 1, 1]] * 2, [math.nan, 0.1], iou_threshold=0.0).tolist() == [1]
    # -inf scores are not above the default threshold of -inf.
    assert ref.nms(boxes[:2], [-math.inf, 0.0], iou_threshold=0.5).tolist() == [1]

  def test_thresholds_zero_and_one(self):
    boxes = [[0, 0, 2, 2], [1, 1, 3, 3], [2, 0, 4, 2], [0, 0, 2, 2]]  # box 2 touches box 0
    scores = [0.9, 0.8, 0.7, 0.6]
    assert ref.nms(boxes, scores, iou_threshold=0.0).tolist() == [0, 2]
    assert ref.nms(boxes, scores, iou_threshold=1.0).tolist() == [0, 1, 2, 3]

  def test_degenerate_boxes_are_kept_and_never_suppress(self):
    boxes = [[0, 0, 0, 0], [0, 0, 0, 0], [3, 3, 1, 1], [1, 1, 3, 3]]
    assert ref.nms(boxes, [0.9, 0.8, 0.7, 0.6], iou_threshold=0.0).tolist() == [0, 1, 2, 3]

  def test_max_output_size(self):
    boxes = [[i * 10, 0, i * 10 + 5, 5] for i in range(5)]
    scores = [0.1, 0.5, 0.3, 0.4, 0.2]
    assert ref.nms(boxes, scores, iou_threshold=0.5, max_output_size=2).tolist() == [1, 3]
    assert ref.nms(boxes, scores, iou_threshold=0.5, max_output_size=0).tolist() == []
    assert len(ref.nms(boxes, scores, iou_threshold=0.5, max_output_size=50)) == 5

  def test_empty_and_bad_shapes(self):
    assert ref.nms(np.zeros((0, 4)), np.zeros((0,)), iou_threshold=0.5).shape == (0,)
    with pytest.raises(ValueError, match="scores"):
      ref.nms(np.zeros((3, 4)), np.zeros((2,)), iou_threshold=0.5)

  @settings(max_examples=80, deadline=None)
  @given(_small_problem(), _THRESHOLDS, st.sampled_from([-math.inf, 0.1, 0.5]))
  def test_agrees_with_removal_formulation(self, problem, thr, score_threshold):
    boxes, scores = problem
    out = ref.nms(boxes, scores, iou_threshold=thr, score_threshold=score_threshold)
    assert out.tolist() == _nms_by_removal(boxes, scores, thr, score_threshold)

  @settings(max_examples=80, deadline=None)
  @given(_small_problem(), _THRESHOLDS)
  def test_defining_properties(self, problem, thr):
    boxes, scores = problem
    keep = ref.nms(boxes, scores, iou_threshold=thr).tolist()
    candidates = [i for i in range(len(scores)) if not math.isnan(scores[i])]
    rank = {i: (-scores[i], i) for i in candidates}
    assert set(keep) <= set(candidates) and len(set(keep)) == len(keep)
    assert keep == sorted(keep, key=rank.get)
    iou = ref.box_iou(boxes, boxes)
    for a in keep:
      for b in keep:
        assert a == b or not iou[a, b] > thr
    for j in set(candidates) - set(keep):  # every dropped box has a better kept box over it
      assert any(rank[i] < rank[j] and iou[i, j] > thr for i in keep)


# ---------------------------------------------------------------------------------------------
# soft_nms


class TestSoftNms:

  def test_gaussian_hand_case(self):
    # IoU(0, 1) = 0.5, IoU(0, 2) = 0, IoU(1, 2) = 0.
    boxes = [[0, 0, 10, 10], [0, 0, 10, 5], [20, 20, 30, 30]]
    idx, sc = ref.soft_nms(boxes, [0.9, 0.8, 0.7])
    assert idx.tolist() == [0, 2, 1]
    np.testing.assert_allclose(sc, [0.9, 0.7, 0.8 * math.exp(-0.25 / 0.5)], rtol=1e-15)
    assert idx.dtype == np.int64 and sc.dtype == np.float64
    idx, sc = ref.soft_nms(boxes, [0.9, 0.8, 0.7], sigma=2.0)
    assert idx.tolist() == [0, 1, 2]
    np.testing.assert_allclose(sc, [0.9, 0.8 * math.exp(-0.25 / 2.0), 0.7], rtol=1e-15)

  def test_decays_compound(self):
    # Box 2 overlaps both 0 and 1 (IoU 1/3 each); 0 and 1 are disjoint.
    boxes = [[0, 0, 2, 1], [2, 0, 4, 1], [1, 0, 3, 1]]
    idx, sc = ref.soft_nms(boxes, [0.9, 0.85, 0.8], sigma=0.5)
    f = math.exp(-(1 / 9) / 0.5)
    assert idx.tolist() == [0, 1, 2]
    np.testing.assert_allclose(sc, [0.9, 0.85, 0.8 * f * f], rtol=1e-15)

  def test_linear_is_strict_and_ignores_small_overlaps(self):
    boxes = [[0, 0, 2, 1], [0, 0, 1, 1], [1, 0, 3, 1]]  # IoU(0,1) = 0.5, IoU(0,2) = 1/3
    idx, sc = ref.soft_nms(boxes, [0.9, 0.8, 0.6], method="linear", iou_threshold=0.5)
    assert idx.tolist() == [0, 1, 2]
    np.testing.assert_allclose(sc, [0.9, 0.8, 0.6], rtol=1e-15)  # IoU == threshold: no decay
    idx, sc = ref.soft_nms(boxes, [0.9, 0.8, 0.63], method="linear", iou_threshold=0.3)
    assert idx.tolist() == [0, 2, 1]
    np.testing.assert_allclose(sc, [0.9, 0.63 * (2 / 3), 0.8 * 0.5], rtol=1e-15)

  def test_linear_full_overlap_discards(self):
    idx, sc = ref.soft_nms([[0, 0, 1, 1]] * 2, [0.9, 0.8], method="linear")
    assert idx.tolist() == [0] and sc.tolist() == [0.9]

  def test_score_threshold(self):
    boxes = [[0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]]
    # Box 1 decays to 0.8 * exp(-2) = 0.108 < 0.2: discarded. Box 3 starts at the threshold:
    # live (>=). NaN never.
    idx, sc = ref.soft_nms(boxes + [[60, 60, 70, 70]], [0.9, 0.8, 0.1, 0.2, math.nan],
                           score_threshold=0.2)
    assert idx.tolist() == [0, 3]
    np.testing.assert_allclose(sc, [0.9, 0.2])
    # With a lower threshold box 1 survives and comes out after box 2.
    idx, sc = ref.soft_nms(boxes, [0.9, 0.8, 0.1, 0.2], score_threshold=0.05)
    assert idx.tolist() == [0, 3, 1, 2]
    np.testing.assert_allclose(sc, [0.9, 0.2, 0.8 * math.exp(-2), 0.1], rtol=1e-15)

  def test_decayed_to_exactly_the_threshold_stays_live(self):
    boxes = [[0, 0, 2, 1], [0, 0, 1, 1]]  # IoU 0.5: linear decay 0.5 * 0.5 = 0.25 exactly
    idx, sc = ref.soft_nms(boxes, [0.75, 0.5], method="linear", score_threshold=0.25)
    assert idx.tolist() == [0, 1] and sc.tolist() == [0.75, 0.25]
    idx, sc = ref.soft_nms(boxes, [0.75, 0.5], method="linear", score_threshold=0.2500001)
    assert idx.tolist() == [0]

  def test_ties_and_max_output_size(self):
    boxes = [[i * 10, 0, i * 10 + 5, 5] for i in range(4)]
    idx, sc = ref.soft_nms(boxes, [0.5, 0.7, 0.7, 0.5])
    assert idx.tolist() == [1, 2, 0, 3]
    idx, sc = ref.soft_nms(boxes, [0.5, 0.7, 0.7, 0.5], max_output_size=2)
    assert idx.tolist() == [1, 2] and sc.tolist() == [0.7, 0.7]
    idx, sc = ref.soft_nms(np.zeros((0, 4)), np.zeros((0,)))
    assert idx.shape == (0,) and sc.shape == (0,)

  def test_bad_arguments(self):
    with pytest.raises(ValueError, match="method"):
      ref.soft_nms([[0, 0, 1, 1]], [0.5], method="cubic")
    with pytest.raises(ValueError, match="sigma"):
      ref.soft_nms([[0, 0, 1, 1]], [0.5], sigma=0.0)

  def test_tiny_sigma_is_greedy_nms_at_zero(self):
    # exp(-IoU^2 / 1e-12) underflows to 0 for any IoU >= 1e-5: every overlap is removed, as
    # greedy NMS with iou_threshold=0 does.
    rng = np.random.default_rng(0)
    xy = rng.integers(0, 60, (200, 2))
    boxes = np.concatenate([xy, xy + rng.integers(1, 15, (200, 2))], axis=1)
    scores = rng.random(200)
    idx, _ = ref.soft_nms(boxes, scores, sigma=1e-12, score_threshold=1e-9)
    assert idx.tolist() == ref.nms(boxes, scores, iou_threshold=0.0).tolist()

  @settings(max_examples=60, deadline=None)
  @given(_small_problem(), st.sampled_from(["gaussian", "linear"]), _THRESHOLDS,
         st.sampled_from([0.0, 0.001, 0.1, 0.3]), st.sampled_from([0.1, 0.5, 2.0]))
  def test_properties(self, problem, method, thr, score_threshold, sigma):
    boxes, scores = problem
    idx, sc = ref.soft_nms(boxes, scores, method=method, iou_threshold=thr,
                           score_threshold=score_threshold, sigma=sigma)
    assert len(set(idx.tolist())) == len(idx)
    assert (sc <= scores[idx]).all()
    assert (np.diff(sc) <= 0).all()
    assert (sc >= score_threshold).all()
    # Every live box at the end has been selected.
    live = ref.soft_nms_live_scores(boxes, scores, idx, method=method, iou_threshold=thr,
                                    score_threshold=score_threshold, sigma=sigma)
    assert np.isneginf(live).all()
    # The replayed scores of the selected boxes are the recorded ones.
    for k, i in enumerate(idx):
      before = ref.soft_nms_live_scores(boxes, scores, idx[:k], method=method,
                                        iou_threshold=thr, score_threshold=score_threshold,
                                        sigma=sigma)
      assert before[i] == pytest.approx(sc[k], rel=1e-12)
      assert before[i] == np.max(before)


# ---------------------------------------------------------------------------------------------
# batched_nms


class TestBatchedNms:

  def test_classes_do_not_suppress_each_other(self):
    boxes = [[0, 0, 10, 10], [1, 1, 11, 11], [1, 1, 11, 11], [0, 0, 10, 10]]
    scores = [0.9, 0.8, 0.7, 0.6]
    assert ref.batched_nms(boxes, scores, [0, 0, 1, 1], iou_threshold=0.5).tolist() == [0, 2]
    assert ref.batched_nms(boxes, scores, [0, 1, 2, 3],
                           iou_threshold=0.5).tolist() == [0, 1, 2, 3]
    assert ref.batched_nms(boxes, scores, [5, 5, 5, 5],
                           iou_threshold=0.5).tolist() == [0]

  def test_merge_order_ties_and_cap(self):
    boxes = [[0, 0, 1, 1], [10, 10, 11, 11], [20, 20, 21, 21], [30, 30, 31, 31]]
    out = ref.batched_nms(boxes, [0.5, 0.7, 0.5, 0.7], [2, 1, 0, 3], iou_threshold=0.5)
    assert out.tolist() == [1, 3, 0, 2]
    out = ref.batched_nms(boxes, [0.5, 0.7, 0.5, 0.7], [2, 1, 0, 3], iou_threshold=0.5,
                          max_output_size=3)
    assert out.tolist() == [1, 3, 0]

  def test_huge_and_negative_coordinates(self):
    big = 1e7
    boxes = [[-big, -big, -big + 10, -big + 10], [-big + 1, -big + 1, -big + 11, -big + 11],
             [big, big, big + 10, big + 10], [-5, -5, 5, 5]]
    out = ref.batched_nms(boxes, [0.9, 0.8, 0.7, 0.6], [0, 0, 1, 1], iou_threshold=0.5)
    assert out.tolist() == [0, 2, 3]

  @settings(max_examples=60, deadline=None)
  @given(_small_problem(), _THRESHOLDS, st.data())
  def test_equals_nms_per_class(self, problem, thr, data):
    boxes, scores = problem
    classes = np.asarray(data.draw(st.lists(st.integers(0, 2), min_size=len(scores),
                                            max_size=len(scores))), np.int64)
    out = ref.batched_nms(boxes, scores, classes, iou_threshold=thr).tolist()
    for c in range(3):
      members = np.flatnonzero(classes == c)
      expected = members[ref.nms(boxes[members], scores[members], iou_threshold=thr)]
      assert [i for i in out if classes[i] == c] == expected.tolist()
    if len(set(classes.tolist())) <= 1:
      assert out == ref.nms(boxes, scores, iou_threshold=thr).tolist()


# ---------------------------------------------------------------------------------------------
# multiclass_nms


class TestMulticlassNms:

  def test_hand_case(self):
    boxes = [[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]]
    scores = [[0.9, 0.05, 0.3],
              [0.8, 0.7, 0.3],
              [0.2, 0.6, 0.3]]
    b, s, c, n = ref.multiclass_nms(boxes, scores, iou_threshold=0.5, score_threshold=0.25,
                                    max_output_size_per_class=10, max_total_size=6)
    # class 0: 0 (0.9) suppresses 1 (IoU 0.68); 2 (0.2 <= 0.25) is not a candidate.
    # class 1: 1 (0.7), 2 (0.6).  class 2: all tie at 0.3 -> 0 first, 1 suppressed, then 2.
    assert n == 5
    assert s.tolist() == [0.9, 0.7, 0.6, 0.3, 0.3, 0.0]
    assert c.tolist() == [0, 1, 1, 2, 2, 0]
    np.testing.assert_array_equal(b, [boxes[0], boxes[1], boxes[2], boxes[0], boxes[2],
                                      [0, 0, 0, 0]])
    assert c.dtype == np.int32 and b.dtype == np.float64 and s.dtype == np.float64

  def test_score_threshold_is_strict(self):
    b, s, c, n = ref.multiclass_nms([[0, 0, 1, 1]], [[0.5, 0.6]], iou_threshold=0.5,
                                    score_threshold=0.5, max_output_size_per_class=5,
                                    max_total_size=3)
    assert n == 1 and c.tolist() == [1, 0, 0] and s.tolist() == [0.6, 0.0, 0.0]

  def test_caps(self):
    boxes = [[i * 10, 0, i * 10 + 5, 5] for i in range(4)]
    scores = [[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4]]
    _, s, c, n = ref.multiclass_nms(boxes, scores, iou_threshold=0.5, score_threshold=0.0,
                                    max_output_size_per_class=2, max_total_size=3)
    assert n == 3 and s.tolist() == [0.9, 0.8, 0.4] and c.tolist() == [0, 0, 1]
    _, s, c, n = ref.multiclass_nms(boxes, scores, iou_threshold=0.5, score_threshold=0.0,
                                    max_output_size_per_class=0, max_total_size=3)
    assert n == 0 and s.tolist() == [0.0] * 3

  def test_ties_lower_class_then_selection_order(self):
    boxes = [[0, 0, 1, 1], [5, 5, 6, 6]]
    b, s, c, n = ref.multiclass_nms(boxes, [[0.3, 0.5], [0.5, 0.5]], iou_threshold=0.5,
                                    score_threshold=0.0, max_output_size_per_class=5,
                                    max_total_size=4)
    assert n == 4
    assert c.tolist() == [0, 1, 1, 0] and s.tolist() == [0.5, 0.5, 0.5, 0.3]
    np.testing.assert_array_equal(b, [boxes[1], boxes[0], boxes[1], boxes[0]])

  def test_empty(self):
    b, s, c, n = ref.multiclass_nms(np.zeros((0, 4)), np.zeros((0, 3)), iou_threshold=0.5,
                                    score_threshold=0.0, max_output_size_per_class=5,
                                    max_total_size=2)
    assert n == 0 and b.shape == (2, 4) and s.shape == (2,) and c.shape == (2,)

  @settings(max_examples=50, deadline=None)
  @given(_small_problem(), _THRESHOLDS, st.integers(0, 4), st.integers(0, 12))
  def test_one_class_is_nms(self, problem, thr, per_class, total):
    boxes, scores = problem
    _, s, c, n = ref.multiclass_nms(boxes, scores[:, None], iou_threshold=thr,
                                    score_threshold=0.2, max_output_size_per_class=per_class,
                                    max_total_size=total)
    keep = ref.nms(boxes, scores, iou_threshold=thr, score_threshold=0.2,
                   max_output_size=min(per_class, total))
    assert n == len(keep)
    np.testing.assert_array_equal(s[:n], scores[keep])
    assert (c == 0).all()


# ---------------------------------------------------------------------------------------------
# book_nms (Listing 11.12.1)


class TestBookNms:

  def test_hard_mode_uses_greater_equal(self):
    # IoU(0, 1) = 0.2 exactly: [0, 0, 10, 10] vs [0, 0, 10, 2]. Box 2 is far away.
    boxes = [[0, 0, 10, 10], [0, 0, 10, 2], [50, 50, 60, 60]]
    probs = [[0.05, 0.9, 0.05], [0.1, 0.1, 0.8], [0.3, 0.1, 0.6]]
    objects, idx, scores = ref.book_nms(probs, boxes, class_threshold=0.5, iou_threshold=0.2)
    assert objects.tolist() == [1, 2, 2]
    assert idx == [0, 2]
    np.testing.assert_array_equal(scores, [0.9, 0.0, 0.6])
    _, idx, _ = ref.book_nms(probs, boxes, class_threshold=0.5, iou_threshold=0.21)
    assert idx == [0, 1, 2]

  def test_class_threshold_inclusive_and_background(self):
    boxes = [[i * 10, 0, i * 10 + 5, 5] for i in range(4)]
    probs = [[0.5, 0.5],    # tie with background: argmax is background
             [0.4, 0.6],
             [0.45, 0.55],
             [0.9, 0.1]]
    objects, idx, scores = ref.book_nms(probs, boxes, class_threshold=0.55)
    assert objects.tolist() == [0, 1, 1, 0]
    assert idx == [1, 2]  # 0.55 >= 0.55 is kept
    np.testing.assert_array_equal(scores, [0.0, 0.6, 0.55, 0.0])
    _, idx, _ = ref.book_nms(probs, boxes, class_threshold=0.56)
    assert idx == [1]

  def test_ties_go_to_the_lower_index(self):
    boxes = [[0, 0, 10, 10], [0, 0, 10, 10], [30, 30, 40, 40]]
    probs = [[0.2, 0.8], [0.2, 0.8], [0.2, 0.8]]
    _, idx, _ = ref.book_nms(probs, boxes)
    assert idx == [0, 2]

  def test_soft_mode(self):
    # IoU(0, 1) = 0.5, box 2 disjoint.
    boxes = [[0, 0, 10, 10], [0, 0, 10, 5], [50, 50, 60, 60]]
    probs = [[0.1, 0.9, 0.0], [0.05, 0.0, 0.95], [0.3, 0.0, 0.7]]
    original = np.array(probs)
    objects, idx, scores = ref.book_nms(original, boxes, soft_nms=True, class_threshold=0.5)
    decayed = 0.9 * math.exp(-2 * 0.25)  # box 0 after box 1 (0.95) is selected: 0.546
    assert idx == [1, 2, 0]
    np.testing.assert_allclose(scores, [decayed, 0.95, 0.7], rtol=1e-15)
    np.testing.assert_array_equal(original, probs)  # the caller's array is not decayed
    _, idx, _ = ref.book_nms(probs, boxes, soft_nms=True, class_threshold=0.6)
    assert idx == [1, 2]

  def test_soft_mode_is_soft_nms_on_max_probability(self):
    rng = np.random.default_rng(1)
    xy = rng.integers(0, 60, (150, 2))
    boxes = np.concatenate([xy, xy + rng.integers(1, 25, (150, 2))], axis=1)
    probs = rng.dirichlet(np.ones(4), size=150)
    objects, idx, scores = ref.book_nms(probs, boxes, soft_nms=True, class_threshold=0.4)
    cand = np.where(objects > 0, probs.max(axis=1), math.nan)
    ref_idx, ref_sc = ref.soft_nms(boxes, cand, sigma=0.5, score_threshold=0.4)
    assert idx == ref_idx.tolist()
    np.testing.assert_allclose(scores[idx], ref_sc, rtol=1e-12)

  @settings(max_examples=60, deadline=None)
  @given(_small_problem(), st.sampled_from([0.0, 0.2, 0.5, 1.0]),
         st.sampled_from([0.0, 0.25, 0.5, 0.8]), st.data())
  def test_hard_mode_is_greedy_nms_with_inclusive_thresholds(self, problem, iou_thr,
                                                            class_thr, data):
    boxes, _ = problem
    n = len(boxes)
    probs = np.asarray(data.draw(st.lists(
        st.lists(st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]), min_size=3, max_size=3),
        min_size=n, max_size=n)), np.float64).reshape(n, 3)
    objects, idx, scores = ref.book_nms(probs, boxes, class_threshold=class_thr,
                                        iou_threshold=iou_thr)
    nonbg = objects > 0
    if not nonbg.any() and class_thr <= 0 and n:
      assert idx == [0]  # the listing's quirk: it keeps anchor 0
      return
    # Greedy NMS over the non-background anchors with ">=" for both thresholds, written out.
    cand = [i for i in range(n) if nonbg[i] and probs[i].max() >= class_thr]
    expected = []
    while cand:
      best = min(cand, key=lambda i: (-probs[i].max(), i))
      expected.append(best)
      cand = [j for j in cand
              if j != best and not _iou_by_hand(boxes[best], boxes[j]) >= iou_thr]
    assert idx == expected
    np.testing.assert_array_equal(scores[idx], probs[idx].max(axis=1) if idx else [])
    assert np.count_nonzero(scores) <= len(idx)

  def test_quirk_no_candidates(self):
    probs = [[0.9, 0.1], [0.8, 0.2]]
    boxes = [[0, 0, 1, 1], [2, 2, 3, 3]]
    assert ref.book_nms(probs, boxes, class_threshold=0.5)[1] == []
    objects, idx, scores = ref.book_nms(probs, boxes, class_threshold=0.0)
    assert idx == [0] and objects.tolist() == [0, 0]
    assert ref.book_nms(np.zeros((0, 3)), np.zeros((0, 4)))[1] == []
