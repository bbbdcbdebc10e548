"""Detection diagnosis (jaxvision.metrics.detection_diagnosis): hand-computed cases and
properties against the IoU oracle."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxvision import metrics
from jaxvision.reference import boxes as ref_boxes


def test_anchor_coverage_hand_case():
  anchors = [[0, 0, 10, 10], [0, 0, 20, 20], [50, 50, 60, 60]]
  gt = [[0, 0, 10, 10], [0, 0, 20, 10], [100, 100, 110, 110]]
  cov = metrics.anchor_coverage(anchors, gt, match_iou=0.5)
  np.testing.assert_allclose(cov["best_iou"], [1.0, 0.5, 0.0])
  assert cov["best_anchor"].tolist() == [0, 0, 0]  # ties: the first anchor
  # Box 0: anchor 0 (1.0) only (anchor 1: 0.25); box 1: anchors 0 and 1 at 0.5; box 2: none,
  # but the bipartite pass still gives it one.
  assert cov["positives"].tolist() == [1, 2, 1]


def test_anchor_coverage_empty_and_bad_inputs():
  cov = metrics.anchor_coverage([[0, 0, 1, 1]], np.zeros((0, 4)))
  assert cov["best_iou"].shape == (0,) and cov["positives"].shape == (0,)
  with pytest.raises(ValueError, match="anchors"):
    metrics.anchor_coverage(np.zeros((0, 4)), [[0, 0, 1, 1]])
  with pytest.raises(ValueError, match="gt_boxes"):
    metrics.anchor_coverage([[0, 0, 1, 1]], [[0, 0, 1]])
  with pytest.raises(ValueError, match="match_iou"):
    metrics.anchor_coverage([[0, 0, 1, 1]], [[0, 0, 1, 1]], match_iou=1.5)
  with pytest.raises(ValueError, match="non-finite"):
    metrics.anchor_coverage([[0, 0, np.nan, 1]], [[0, 0, 1, 1]])


_box = st.tuples(st.floats(0, 50), st.floats(0, 50), st.floats(0.5, 30), st.floats(0.5, 30)).map(
    lambda t: [t[0], t[1], t[0] + t[2], t[1] + t[3]])


@settings(max_examples=40, deadline=None)
@given(st.lists(_box, min_size=1, max_size=12), st.lists(_box, min_size=0, max_size=6),
       st.floats(0.05, 1.0))
def test_anchor_coverage_agrees_with_the_iou_oracle(anchors, gt, t):
  cov = metrics.anchor_coverage(anchors, np.reshape(gt, (-1, 4)), match_iou=t)
  if not gt:
    return
  iou = ref_boxes.box_iou(np.asarray(gt, np.float64), np.asarray(anchors, np.float64))
  np.testing.assert_allclose(cov["best_iou"], iou.max(axis=1), atol=1e-9)
  np.testing.assert_array_equal(cov["positives"], np.maximum((iou >= t).sum(1), 1))
  assert np.all(cov["positives"] >= 1)


def test_ground_truth_found_is_greedy_by_score_and_class():
  gts = [{"boxes": [[0, 0, 10, 10], [20, 0, 30, 10]], "classes": [1, 2]}]
  preds = [{"boxes": [[0, 0, 10, 10], [0, 0, 10, 10], [20, 0, 30, 10]],
            "classes": [1, 1, 1], "scores": [0.5, 0.9, 0.8]}]
  # The 0.9 detection takes box 0; the duplicate finds nothing; class 1 cannot find box 1.
  assert metrics.ground_truth_found(preds, gts)[0].tolist() == [True, False]
  preds[0]["classes"] = [1, 1, 2]
  assert metrics.ground_truth_found(preds, gts)[0].tolist() == [True, True]
  assert metrics.ground_truth_found(preds, gts, iou_threshold=1.0)[0].tolist() == [True, True]
  empty = [{"boxes": np.zeros((0, 4)), "classes": [], "scores": []}]
  assert metrics.ground_truth_found(empty, gts)[0].tolist() == [False, False]


def test_ground_truth_found_duplicates_find_nothing_as_in_voc():
  # Two overlapping boxes of one class (IoU 0.83); two detections both best on box 0. VOC
  # pairs the second with box 0 too (taken: a false positive), never with box 1.
  gts = [{"boxes": [[0, 0, 10, 10], [0, 0, 10, 12]], "classes": [1, 1]}]
  preds = [{"boxes": [[0, 0, 10, 10], [0, 0, 10, 10]], "classes": [1, 1],
            "scores": [0.9, 0.8]}]
  assert metrics.ground_truth_found(preds, gts)[0].tolist() == [True, False]
  # VOC's AP agrees: recall stops at 1/2, precision 1 then 1/2 -> AP 0.5.
  assert metrics.average_precision_voc(preds, gts)["map"] == pytest.approx(0.5)


def test_ground_truth_found_recall_is_voc_recall_on_random_data():
  rng = np.random.default_rng(0)
  gts, preds = [], []
  for _ in range(8):
    xy = rng.uniform(0, 60, (4, 2))
    gb = np.concatenate([xy, xy + rng.uniform(5, 20, (4, 2))], 1)
    gts.append({"boxes": gb, "classes": np.ones(4, int)})
    pb = gb[rng.integers(0, 4, 6)] + rng.normal(0, 2, (6, 4))
    preds.append({"boxes": pb, "classes": np.ones(6, int), "scores": rng.uniform(size=6)})
  found = np.concatenate(metrics.ground_truth_found(preds, gts))
  # One class: VOC's AP with every detection equals the area under its precision envelope;
  # a second computation with the found boxes' detections only reaches the same recall.
  recall = found.mean()
  assert 0 < recall < 1
  # Detections scored 1 on the found boxes only, each exactly on its box: AP = recall.
  exact = [{"boxes": g["boxes"][f], "classes": g["classes"][f], "scores": np.ones(f.sum())}
           for g, f in zip(gts, metrics.ground_truth_found(preds, gts))]
  assert metrics.average_precision_voc(exact, gts)["map"] == pytest.approx(recall)


def _probs(rows):
  """Probabilities [A, 3] from (background, class 1, class 2) rows."""
  return np.asarray(rows, np.float64)


@pytest.mark.parametrize("case, expected", [
    # Decoded box 0 overlaps the GT, class 1 at 0.9: a candidate of the right class -> NMS.
    ({"probs": [[0.1, 0.9, 0.0], [1, 0, 0]], "boxes": [[0, 0, 10, 10], [50, 50, 60, 60]]},
     "suppressed"),
    ({"probs": [[0.1, 0.0, 0.9], [1, 0, 0]], "boxes": [[0, 0, 10, 10], [50, 50, 60, 60]]},
     "wrong_class"),
    ({"probs": [[0.6, 0.4, 0.0], [1, 0, 0]], "boxes": [[0, 0, 10, 10], [50, 50, 60, 60]]},
     "background"),
    # No decoded box overlaps; anchor 0 reaches the matching IoU -> the regression failed.
    ({"probs": [[0.1, 0.9, 0.0], [1, 0, 0]], "boxes": [[30, 30, 40, 40], [50, 50, 60, 60]]},
     "mislocalized"),
    ({"probs": [[0.1, 0.9, 0.0], [1, 0, 0]], "boxes": [[30, 30, 40, 40], [50, 50, 60, 60]],
      "anchors": [[30, 30, 40, 40], [50, 50, 60, 60]]}, "no_anchor"),
])
def test_classify_misses_hand_cases(case, expected):
  anchors = case.get("anchors", [[0, 0, 10, 10], [50, 50, 60, 60]])
  out = metrics.classify_misses(_probs(case["probs"]), case["boxes"], anchors,
                                [[0, 0, 10, 10]], [1], [False], score_threshold=0.5)
  assert out == [expected]
  found = metrics.classify_misses(_probs(case["probs"]), case["boxes"], anchors,
                                  [[0, 0, 10, 10]], [1], [True], score_threshold=0.5)
  assert found == ["found"]


def test_classify_misses_bad_inputs():
  p, b = _probs([[0.1, 0.9, 0.0]]), [[0, 0, 10, 10]]
  with pytest.raises(ValueError, match="probs"):
    metrics.classify_misses(p[:, :1], b, b, b, [1], [False], score_threshold=0.5)
  with pytest.raises(ValueError, match="found"):
    metrics.classify_misses(p, b, b, b, [1], [False, True], score_threshold=0.5)
  with pytest.raises(ValueError, match="score_threshold"):
    metrics.classify_misses(p, b, b, b, [1], [False], score_threshold=2.0)
  assert metrics.classify_misses(p, b, b, np.zeros((0, 4)), [], [], score_threshold=0.5) == []


def test_size_bucket_edges():
  boxes = [[0, 0, 1, 10], [0, 0, 1, 16], [0, 0, 1, 27.9], [0, 0, 1, 28], [0, 0, 1, 90]]
  assert metrics.size_bucket(boxes, 100, (0.16, 0.28)).tolist() == [0, 1, 1, 2, 2]
