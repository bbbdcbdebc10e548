"""Tests of the detection metrics (``jaxvision.metrics.detection``).

Oracles: hand-computed values (worked out in the comments), and ``pycocotools``' COCOeval
for :func:`coco_map` where pycocotools is installed (a fixed crowded case and random ones).
Boxes in the random cases lie on a 1/4-pixel grid, so every width, area and IoU is computed
exactly alike by both implementations and thresholds are crossed alike.
"""

from __future__ import annotations

import contextlib
import io
import math

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from jaxvision import metrics
from jaxvision.metrics.detection import average_precision_voc, image_detection_metrics
from jaxvision.metrics.detection import detection_summary, coco_map

A = [0, 0, 10, 10]
B = [20, 0, 30, 10]
FAR = [50, 50, 60, 60]


def _image(boxes, classes, scores=None):
  image = {"boxes": np.asarray(boxes, np.float64).reshape(-1, 4),
           "classes": np.asarray(classes, np.int64).reshape(-1)}
  if scores is not None:
    image["scores"] = np.asarray(scores, np.float64).reshape(-1)
  return image


def _perfect(gts, scores=None):
  out = []
  for g in gts:
    n = len(g["classes"])
    s = np.linspace(1.0, 0.5, n) if scores is None else scores
    out.append({**g, "scores": s})
  return out


def test_exported():
  assert metrics.image_detection_metrics is image_detection_metrics
  assert metrics.detection_summary is detection_summary
  assert metrics.average_precision_voc is average_precision_voc
  assert metrics.coco_map is coco_map


# ---------------------------------------------------------------------------------------------
# The book's per-image evaluation.


def test_book_hand_made_image():
  # GT: g0 = A (class 0), g1 = [20, 20, 30, 30] (class 1), g2 = FAR (class 2).
  # Predictions: p0 = [0, 0, 10, 5] (class 0): IoU(g0, p0) = 50 / 100 = 0.5, same class: TP.
  #              p1 = g1's box with class 2: IoU 1 with g1, wrong class: not a TP.
  #              p2 = [100, 100, 110, 110] (class 0): overlaps nothing; g2's best IoU is 0.
  # miou = (0.5 + 1 + 0) / 3 = 0.5; recall = 1 / 3; precision = 1 TP prediction / 3 = 1 / 3.
  m = image_detection_metrics(
      [[0, 0, 10, 5], [20, 20, 30, 30], [100, 100, 110, 110]], [0, 2, 0],
      [A, [20, 20, 30, 30], FAR], [0, 1, 2])
  assert m["miou"] == pytest.approx(0.5)
  assert m["recall"] == pytest.approx(1 / 3)
  assert m["precision"] == pytest.approx(1 / 3)
  assert (m["true_positives"], m["num_predictions"], m["num_ground_truths"]) == (1, 3, 3)


def test_book_perfect_and_jax_inputs():
  boxes = jnp.array([A, B, FAR], jnp.float32)
  classes = jnp.array([0, 1, 1], jnp.int32)
  m = image_detection_metrics(boxes, classes, np.asarray(boxes), np.asarray(classes))
  assert (m["miou"], m["precision"], m["recall"]) == (1.0, 1.0, 1.0)


def test_book_one_prediction_best_for_two_gt_keeps_precision_at_most_one():
  # One wide prediction over two GT boxes of its class: IoU 100 / 200 = 0.5 with each.
  # Both GT boxes are TPs (recall 1), but only one prediction is right: precision 1, not 2.
  m = image_detection_metrics([[0, 0, 20, 10]], [0], [A, [10, 0, 20, 10]], [0, 0])
  assert (m["miou"], m["precision"], m["recall"]) == (0.5, 1.0, 1.0)
  assert m["true_positives"] == 2


@pytest.mark.parametrize("pred_boxes, gt_boxes, expected", [
    ([], [], (1.0, 1.0, 1.0)),  # nothing to find, nothing found
    ([A], [], (1.0, 0.0, 1.0)),  # only false positives
    ([], [A], (0.0, 0.0, 0.0)),  # only misses
])
def test_book_defined_values_without_boxes(pred_boxes, gt_boxes, expected):
  m = image_detection_metrics(pred_boxes, [0] * len(pred_boxes), gt_boxes,
                             [0] * len(gt_boxes))
  assert (m["miou"], m["precision"], m["recall"]) == expected


def test_book_summary_averages_images():
  # Image 1 is the hand-made image above (0.5, 1/3, 1/3); image 2 is perfect (1, 1, 1);
  # image 3 has a GT box and no prediction (0, 0, 0).
  preds = [
      _image([[0, 0, 10, 5], [20, 20, 30, 30], [100, 100, 110, 110]], [0, 2, 0]),
      _image([A], [3], [0.2]),  # scores are accepted and ignored
      _image([], []),
  ]
  gts = [_image([A, [20, 20, 30, 30], FAR], [0, 1, 2]), _image([A], [3]), _image([B], [1])]
  s = detection_summary(preds, gts)
  assert s["miou"] == pytest.approx((0.5 + 1 + 0) / 3)
  assert s["precision"] == pytest.approx((1 / 3 + 1 + 0) / 3)
  assert s["recall"] == pytest.approx((1 / 3 + 1 + 0) / 3)


# ---------------------------------------------------------------------------------------------
# VOC and COCO on hand-made cases.


def test_perfect_predictions_score_one():
  gts = [_image([A, B], [0, 1]), _image([FAR, A], [2, 2]), _image([], [])]
  preds = _perfect(gts)
  assert average_precision_voc(preds, gts) == {"map": 1.0, "per_class": {0: 1.0, 1: 1.0,
                                                                          2: 1.0}}
  c = coco_map(preds, gts, num_classes=3)
  assert (c["map"], c["map50"], c["map75"]) == (1.0, 1.0, 1.0)
  assert detection_summary(preds, gts) == {"miou": 1.0, "precision": 1.0, "recall": 1.0}


def test_wrong_class_scores_zero_and_classes_without_gt_are_left_out():
  gts = [_image([A], [0])]
  preds = [_image([A], [1], [0.9])]
  assert average_precision_voc(preds, gts) == {"map": 0.0, "per_class": {0: 0.0}}
  c = coco_map(preds, gts)
  assert (c["map"], c["map50"], c["map75"], c["per_class"]) == (0.0, 0.0, 0.0, {0: 0.0})


def test_missed_gt():
  # Two GT boxes, one found: one detection, precision 1 at recall 1/2, nothing beyond.
  # VOC: AP = 1/2 * 1 = 0.5. COCO: the 51 recall points 0, 0.01, ..., 0.50 read precision 1,
  # the other 50 read 0: AP = 51 / 101 at every threshold.
  gts = [_image([A, B], [0, 0])]
  preds = [_image([A], [0], [0.9])]
  assert average_precision_voc(preds, gts)["map"] == pytest.approx(0.5)
  c = coco_map(preds, gts)
  np.testing.assert_allclose([c["map"], c["map50"], c["map75"]], [51 / 101] * 3, rtol=1e-12)


def test_two_box_hand_computed_ap_with_duplicate():
  # GT: A and B, class 0. Detections by score: A (0.9), A again shifted by 0.5 px (0.8, a
  # duplicate: A is taken, so a false positive), B (0.7).
  #   k:          1    2    3
  #   TP/FP:      TP   FP   TP
  #   precision:  1    1/2  2/3
  #   recall:     1/2  1/2  1
  # VOC envelope: 1 up to recall 1/2, then 2/3 up to 1: AP = 1/2 * 1 + 1/2 * 2/3 = 5/6.
  # COCO (IoUs are 1 or 0.95 / 1.05 ~ 0.905 for the duplicate, which never matters): recall
  # points 0 .. 0.50 (51 of them) read 1, the 50 above read 2/3: AP = (51 + 50 * 2/3) / 101.
  gts = [_image([A, B], [0, 0])]
  preds = [_image([A, [0.5, 0, 10.5, 10], B], [0, 0, 0], [0.9, 0.8, 0.7])]
  voc = average_precision_voc(preds, gts)
  assert voc["map"] == pytest.approx(5 / 6)
  expected = (51 + 50 * 2 / 3) / 101
  c = coco_map(preds, gts)
  np.testing.assert_allclose([c["map"], c["map50"], c["map75"]], [expected] * 3, rtol=1e-12)
  # Without the duplicate both are perfect.
  preds = [_image([A, B], [0, 0], [0.9, 0.7])]
  assert average_precision_voc(preds, gts)["map"] == 1.0
  assert coco_map(preds, gts)["map"] == 1.0


def test_voc_pairs_with_best_gt_even_if_taken_coco_takes_a_free_one():
  # GT A = [0, 0, 10, 10] and A' = [0, 0, 10, 8] (class 0). Detections: A (0.9), then
  # D = [0, 0, 10, 9.5] (0.8): IoU(D, A) = 0.95, IoU(D, A') = 80 / 95 ~ 0.842.
  # VOC pairs D with A, already taken: a false positive. AP = 1/2 (precision 1 at recall 1/2).
  # COCO gives D the free A' at thresholds <= 0.80 (AP 1) and not at 0.85, 0.90, 0.95
  # (AP 51/101 as in test_missed_gt): map = (7 + 3 * 51/101) / 10.
  gts = [_image([A, [0, 0, 10, 8]], [0, 0])]
  preds = [_image([A, [0, 0, 10, 9.5]], [0, 0], [0.9, 0.8])]
  assert average_precision_voc(preds, gts)["map"] == pytest.approx(0.5)
  c = coco_map(preds, gts)
  assert c["map"] == pytest.approx((7 + 3 * 51 / 101) / 10)
  assert (c["map50"], c["map75"]) == (1.0, 1.0)


def _equal_iou_case():
  # GT g0 = A, g1 = [2, 0, 12, 10] (class 0). D1 = [1, 0, 11, 10] (0.9) has IoU 90/110 ~ 0.818
  # with both; D2 = A (0.8) has IoU 1 with g0 and 80/120 ~ 0.667 with g1.
  gts = [_image([A, [2, 0, 12, 10]], [0, 0])]
  preds = [_image([[1, 0, 11, 10], A], [0, 0], [0.9, 0.8])]
  return preds, gts


def test_equal_iou_ties():
  # COCO gives D1 the later box g1 at thresholds <= 0.80, so D2 takes g0: AP 1. At 0.85 and
  # above D1 misses and D2 takes g0: FP then TP, precision 1/2 up to recall 1/2, AP 51/202.
  # VOC gives D1 the first box g0, so D2's best box is taken: TP then FP, AP 1/2.
  preds, gts = _equal_iou_case()
  c = coco_map(preds, gts)
  assert c["map"] == pytest.approx((7 + 3 * 51 / 202) / 10)
  assert average_precision_voc(preds, gts)["map"] == pytest.approx(0.5)


def test_empty_predictions_score_zero():
  gts = [_image([A, B], [0, 1]), _image([FAR], [1])]
  preds = [_image([], [], []), {"boxes": [], "classes": [], "scores": []}]
  assert average_precision_voc(preds, gts) == {"map": 0.0, "per_class": {0: 0.0, 1: 0.0}}
  c = coco_map(preds, gts)
  assert (c["map"], c["map50"], c["map75"]) == (0.0, 0.0, 0.0)
  assert detection_summary(preds, gts) == {"miou": 0.0, "precision": 0.0, "recall": 0.0}


def test_no_ground_truth_gives_nan_map():
  gts = [_image([], [])]
  preds = [_image([A], [0], [0.5])]
  assert math.isnan(average_precision_voc(preds, gts)["map"])
  assert math.isnan(coco_map(preds, gts)["map"])
  assert average_precision_voc(preds, gts)["per_class"] == {}


def test_voc_threshold_is_inclusive():
  # IoU([0, 0, 10, 20], A) = 100 / 200 = 0.5 exactly: a match at 0.5 (the devkit's >=).
  gts = [_image([A], [0])]
  preds = [_image([[0, 0, 10, 20]], [0], [0.9])]
  assert average_precision_voc(preds, gts)["map"] == 1.0
  assert average_precision_voc(preds, gts, iou_threshold=0.51)["map"] == 0.0
  assert coco_map(preds, gts)["map50"] == 1.0


def test_coco_keeps_100_detections_per_image_and_class():
  # 100 false positives outscore the one true detection, which is the 101st: COCO drops it
  # (AP 0); VOC keeps it, at precision 1/101 and recall 1 (AP 1/101).
  fps = [[100 + i, 100, 101 + i, 101] for i in range(100)]
  gts = [_image([A], [0])]
  preds = [_image(fps + [A], [0] * 101, list(np.linspace(0.9, 0.5, 100)) + [0.1])]
  assert coco_map(preds, gts)["map"] == 0.0
  assert average_precision_voc(preds, gts)["map"] == pytest.approx(1 / 101)


# ---------------------------------------------------------------------------------------------
# Argument checks.


@pytest.mark.parametrize("fn", [average_precision_voc, coco_map])
def test_argument_checks(fn):
  gts = [_image([A], [0])]
  good = [_image([A], [0], [0.9])]
  with pytest.raises(TypeError, match="predictions"):
    fn(good[0], gts)
  with pytest.raises(ValueError, match="scores"):
    fn([_image([A], [0])], gts)
  with pytest.raises(ValueError, match=r"predictions\[0\]\['boxes'\]"):
    fn([{"boxes": [[0, 0, 1]], "classes": [0], "scores": [1.0]}], gts)
  with pytest.raises(ValueError, match=r"ground_truths\[0\]\['boxes'\]"):
    fn(good, [{"boxes": [[0, 0, np.nan, 1]], "classes": [0]}])
  with pytest.raises(TypeError, match=r"ground_truths\[0\]\['classes'\]"):
    fn(good, [{"boxes": [A], "classes": [0.0]}])
  with pytest.raises(ValueError, match=r"predictions\[0\]\['scores'\]"):
    fn([{"boxes": [A], "classes": [0], "scores": [1.0, 2.0]}], gts)
  with pytest.raises(ValueError, match="one entry per image"):
    fn(good + good, gts)
  with pytest.raises(ValueError, match="num_classes"):
    fn(good, [_image([A], [3])], num_classes=3)
  with pytest.raises(TypeError, match="num_classes"):
    fn(good, gts, num_classes=2.0)


def test_voc_threshold_checks():
  gts = [_image([A], [0])]
  preds = [_image([A], [0], [0.9])]
  for bad in (0.0, 1.5, -0.1):
    with pytest.raises(ValueError, match="iou_threshold"):
      average_precision_voc(preds, gts, iou_threshold=bad)
  with pytest.raises(TypeError, match="iou_threshold"):
    average_precision_voc(preds, gts, iou_threshold="0.5")


def test_book_argument_checks():
  with pytest.raises(ValueError, match="gt_classes"):
    image_detection_metrics([A], [0], [A, B], [0])
  with pytest.raises(ValueError, match="pred_classes"):
    image_detection_metrics([A], [-1], [A], [0])
  with pytest.raises(ValueError, match="must hold at least one image"):
    detection_summary([], [])


# ---------------------------------------------------------------------------------------------
# Random datasets: properties, and pycocotools.


@st.composite
def _datasets(draw, max_images=4, num_classes=3):
  """Crowded GT on a 1/4-pixel grid; predictions jittered, re-classed, duplicated or random.

  GT boxes in an image are distinct and every box has positive area, so the GT itself is a
  perfect prediction. Scores are distinct, so the order is never a tie.
  """
  quarter = st.integers(0, 80).map(lambda v: v / 4)
  size = st.integers(16, 96).map(lambda v: v / 4)
  gts, preds = [], []
  for _ in range(draw(st.integers(1, max_images))):
    boxes, classes = {}, []
    for _ in range(draw(st.integers(0, 5))):
      x, y, w, h = draw(quarter), draw(quarter), draw(size), draw(size)
      boxes[(x, y, x + w, y + h)] = draw(st.integers(0, num_classes - 1))
    keys = [(*box, cls) for box, cls in boxes.items()]
    gts.append(_image([k[:4] for k in keys], [k[4] for k in keys]))
    pred_boxes, pred_classes = [], []
    for k in keys:
      for _ in range(draw(st.integers(0, 2))):  # a miss, a hit, or a hit and a duplicate
        dx, dy, dw, dh = (draw(st.integers(-5, 5)) / 4 for _ in range(4))
        box = [k[0] + dx, k[1] + dy, k[2] + dx + abs(dw), k[3] + dy + abs(dh)]
        pred_boxes.append(box)
        pred_classes.append(draw(st.sampled_from([k[4]] * 3 + list(range(num_classes)))))
    for _ in range(draw(st.integers(0, 2))):  # background false positives
      x, y, w, h = draw(quarter), draw(quarter), draw(size), draw(size)
      pred_boxes.append([x, y, x + w, y + h])
      pred_classes.append(draw(st.integers(0, num_classes - 1)))
    preds.append(_image(pred_boxes, pred_classes, np.zeros(len(pred_classes))))
  total = sum(len(p["classes"]) for p in preds)
  ranks = np.asarray(draw(st.permutations(range(total))), np.float64)
  start = 0
  for p in preds:
    n = len(p["classes"])
    p["scores"] = (ranks[start:start + n] + 1) / (total + 1)
    start += n
  return preds, gts


def _has_gt(gts):
  return any(len(g["classes"]) for g in gts)


@settings(max_examples=60)
@given(_datasets(), st.data())
def test_properties(dataset, data):
  preds, gts = dataset
  voc = average_precision_voc(preds, gts)["map"]
  coco = coco_map(preds, gts, num_classes=3)
  if not _has_gt(gts):
    assert math.isnan(voc) and math.isnan(coco["map"])
    return
  for value in (voc, coco["map"], coco["map50"], coco["map75"]):
    assert 0.0 <= value <= 1.0
  # The order of the images does not matter (scores are distinct).
  order = data.draw(st.permutations(range(len(gts))))
  assert average_precision_voc([preds[i] for i in order], [gts[i] for i in order])["map"] \
      == pytest.approx(voc, abs=1e-12)
  shuffled = coco_map([preds[i] for i in order], [gts[i] for i in order])
  for key in ("map", "map50", "map75"):
    assert shuffled[key] == pytest.approx(coco[key], abs=1e-12)
  # The GT itself, in any score order, is perfect.
  perfect = _perfect(gts)
  assert average_precision_voc(perfect, gts)["map"] == 1.0
  assert coco_map(perfect, gts)["map"] == 1.0
  book = detection_summary(perfect, gts)
  assert book["miou"] == book["recall"] == 1.0


def _pycocotools_map(preds, gts, num_classes):
  """COCOeval's stats[0:3] and per-class AP@[.5:.95] (xyxy -> xywh, area = w * h)."""
  coco = pytest.importorskip("pycocotools.coco")
  cocoeval = pytest.importorskip("pycocotools.cocoeval")
  images, annotations, results = [], [], []
  for i, (p, g) in enumerate(zip(preds, gts)):
    images.append({"id": i + 1})
    for box, cls in zip(np.asarray(g["boxes"]), np.asarray(g["classes"])):
      w, h = box[2] - box[0], box[3] - box[1]
      annotations.append({"id": len(annotations) + 1, "image_id": i + 1,
                          "category_id": int(cls) + 1, "bbox": [box[0], box[1], w, h],
                          "area": w * h, "iscrowd": 0})
    for box, cls, score in zip(np.asarray(p["boxes"]), np.asarray(p["classes"]),
                               np.asarray(p["scores"])):
      results.append({"image_id": i + 1, "category_id": int(cls) + 1, "score": float(score),
                      "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]]})
  with contextlib.redirect_stdout(io.StringIO()):
    gt = coco.COCO()
    gt.dataset = {"images": images, "annotations": annotations,
                  "categories": [{"id": c + 1} for c in range(num_classes)]}
    gt.createIndex()
    if not results:
      return None
    evaluator = cocoeval.COCOeval(gt, gt.loadRes(results), "bbox")
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
  precision = evaluator.eval["precision"][:, :, :, 0, 2]  # [T, R, K], area all, 100 dets
  per_class = {k: float(np.mean(precision[:, :, k])) for k in range(num_classes)
               if np.all(precision[:, :, k] > -1)}
  return evaluator.stats[:3], per_class


def _assert_matches_pycocotools(preds, gts, num_classes=3):
  reference = _pycocotools_map(preds, gts, num_classes)
  ours = coco_map(preds, gts, num_classes=num_classes)
  if reference is None:  # no detections: pycocotools cannot load an empty result list
    assert ours["map"] == 0.0 or math.isnan(ours["map"])
    return
  stats, per_class = reference
  if not _has_gt(gts):
    assert list(stats) == [-1, -1, -1] and math.isnan(ours["map"])
    return
  np.testing.assert_allclose([ours["map"], ours["map50"], ours["map75"]], stats, atol=1e-9)
  assert ours["per_class"].keys() == per_class.keys()
  for k, ap in per_class.items():
    assert ours["per_class"][k] == pytest.approx(ap, abs=1e-9)


def test_coco_matches_pycocotools_on_a_crowded_case():
  pytest.importorskip("pycocotools")
  rng = np.random.default_rng(0)
  # Five images, three classes: a crowd of overlapping GT boxes of one class, boxes of
  # several classes side by side, an image with only background, one that is all missed.
  crowd = np.array([[10, 10, 40, 40], [15, 12, 45, 42], [20, 20, 50, 50], [12, 25, 42, 55],
                    [60, 60, 80, 90]], np.float64)
  gts = [
      _image(crowd, [0, 0, 0, 0, 1]),
      _image([[0, 0, 20, 20], [18, 0, 38, 20], [36, 0, 56, 20], [5, 40, 25, 70]],
             [1, 2, 1, 2]),
      _image([], []),
      _image([[30, 30, 60, 60], [32, 28, 62, 58]], [2, 2]),
      _image([[5, 5, 15, 15], [70, 10, 90, 30], [40, 40, 70, 70]], [0, 1, 2]),
  ]
  preds = []
  for i, g in enumerate(gts):
    boxes, classes = [], []
    for box, cls in zip(g["boxes"], g["classes"]):
      if i == 3:
        continue  # every object of image 3 is missed
      for _ in range(rng.integers(1, 3)):  # a hit, sometimes a duplicate
        boxes.append(box + np.round(rng.normal(0, 2.5, 4) * 8) / 8)
        classes.append(cls if rng.random() < 0.8 else rng.integers(0, 3))  # wrong class
    for _ in range(2):  # background false positives, on images with GT or without
      x, y = np.round(rng.uniform(0, 80, 2) * 8) / 8
      boxes.append([x, y, x + 12.5, y + 9.25])
      classes.append(rng.integers(0, 3))
    preds.append(_image(boxes, classes, rng.permutation(len(classes)) / len(classes)
                        + 0.01 * i))
  _assert_matches_pycocotools(preds, gts)


@pytest.mark.parametrize("case", ["missed", "duplicate", "taken", "ties", "threshold",
                                  "max_dets"])
def test_coco_matches_pycocotools_on_the_hand_made_cases(case):
  pytest.importorskip("pycocotools")
  gts = [_image([A, B], [0, 0])]
  if case == "missed":
    preds = [_image([A], [0], [0.9])]
  elif case == "duplicate":
    preds = [_image([A, [0.5, 0, 10.5, 10], B], [0, 0, 0], [0.9, 0.8, 0.7])]
  elif case == "taken":
    gts = [_image([A, [0, 0, 10, 8]], [0, 0])]
    preds = [_image([A, [0, 0, 10, 9.5]], [0, 0], [0.9, 0.8])]
  elif case == "ties":
    preds, gts = _equal_iou_case()
  elif case == "threshold":
    preds = [_image([[0, 0, 10, 20], [20, 0, 30, 5]], [0, 0], [0.9, 0.8])]
  else:
    fps = [[100 + i, 100, 101 + i, 101] for i in range(100)]
    preds = [_image(fps + [A, B], [0] * 102, list(np.linspace(0.9, 0.5, 100)) + [0.95, 0.1])]
  _assert_matches_pycocotools(preds, gts, num_classes=1)


@settings(max_examples=50)
@given(_datasets())
def test_coco_matches_pycocotools_on_random_cases(dataset):
  pytest.importorskip("pycocotools")
  preds, gts = dataset
  _assert_matches_pycocotools(preds, gts)
