"""Tests of ``jaxvision.metrics.segmentation_diagnosis``: hand-made masks, the loop oracles of
``jaxvision.reference.segmentation_diagnosis`` on random masks, and properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxvision import metrics
from jaxvision.reference import segmentation_diagnosis as ref

# Ground truth: a 2-pixel-thick class-1 bar on the left, a class-2 block on the right.
LABEL = np.array([
    [0, 0, 0, 0, 0, 0],
    [0, 1, 1, 0, 2, 2],
    [0, 1, 1, 0, 2, 2],
    [0, 0, 0, 0, 2, 2],
])
# Mistakes: (1, 1) 1 -> 0 (missed), (0, 0) 0 -> 1 (false positive, far from any edge? no: its
# neighbour (1, 1) is class 1, so on the band), (2, 5) 2 -> 1 (wrong class), (3, 0) 0 -> 2.
PRED = np.array([
    [1, 0, 0, 0, 0, 0],
    [0, 0, 1, 0, 2, 2],
    [0, 1, 1, 0, 2, 1],
    [2, 0, 0, 0, 2, 2],
])


def test_boundary_band_by_hand():
  band = metrics.boundary_band(LABEL)
  # Every pixel of the left 4 columns touches the bar or is in it; column 3 touches class 2;
  # inside the class-2 block only column 5 is off the band, except next to row 0's background.
  expected = np.array([
      [1, 1, 1, 1, 1, 1],
      [1, 1, 1, 1, 1, 1],
      [1, 1, 1, 1, 1, 0],
      [1, 1, 1, 1, 1, 0],
  ], bool)
  np.testing.assert_array_equal(band, expected)
  np.testing.assert_array_equal(metrics.boundary_band(LABEL[None])[0], expected)


def test_errors_by_hand():
  e = metrics.segmentation_errors(LABEL, PRED, num_classes=3)
  assert e["pixels"] == 24 and e["errors"] == 4
  assert e["counts"] == {"missed": {"boundary": 1, "interior": 0},
                         "false_positive": {"boundary": 2, "interior": 0},
                         "wrong_class": {"boundary": 0, "interior": 1}}
  # Class 1: 4 true, 3 right, 1 missed, false positives at (0, 0) and (2, 5): 3 / 6.
  assert e["per_class_iou"][1] == pytest.approx(3 / 6)
  # Class 2: 6 true, 5 right, 1 lost to class 1, 1 false positive at (3, 0): 5 / 7.
  assert e["per_class_iou"][2] == pytest.approx(5 / 7)
  assert e["foreground_miou"] == pytest.approx((3 / 6 + 5 / 7) / 2)
  # Off the band only (2, 5) and (3, 5) are left, both class 2, one wrong: class 1 then has
  # one false positive and nothing else (IoU 0), class 2 1 / 2.
  assert e["per_class_iou_without_band"][1] == 0.0
  assert e["per_class_iou_without_band"][2] == pytest.approx(0.5)
  assert e["per_class_iou_without_band"][0] is None
  assert e["band_pixels"] == 22
  assert np.asarray(e["confusion"]).sum() == 24


def test_object_confusion_by_hand():
  cm = metrics.object_confusion(LABEL, PRED, num_classes=3)
  assert cm[1].tolist() == [0, 1, 0]  # the bar: 3 of 4 pixels right
  assert cm[2].tolist() == [0, 0, 1]  # the block: 5 of 6 right
  assert cm[0].sum() == 0
  # Two separate class-1 objects (8-connectivity: a diagonal joins, a gap does not).
  lab = np.array([[1, 0, 1], [0, 1, 0], [0, 0, 0], [1, 1, 0]])
  pred = np.array([[2, 0, 2], [0, 2, 0], [0, 0, 0], [0, 0, 0]])
  cm = metrics.object_confusion(lab, pred, num_classes=3)
  assert cm[1].tolist() == [1, 0, 1]
  assert metrics.object_confusion(lab, pred, num_classes=3, min_pixels=3)[1].tolist() == [
      0, 0, 1]


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 2), st.integers(2, 5))
def test_against_loop_oracles(seed, width, num_classes):
  rng = np.random.default_rng(seed)
  shape = (2, int(rng.integers(1, 9)), int(rng.integers(1, 9)))
  # Blobs rather than noise: a coarse random grid, upsampled.
  labels = rng.integers(0, num_classes, (2, 3, 3)).repeat(3, 1).repeat(3, 2)[:, :shape[1],
                                                                              :shape[2]]
  preds = np.where(rng.random(labels.shape) < 0.3, rng.integers(0, num_classes, labels.shape),
                   labels)
  band = metrics.boundary_band(labels, width=width)
  for i in range(2):
    np.testing.assert_array_equal(band[i], ref.boundary_band(labels[i], width))
  e = metrics.segmentation_errors(labels, preds, num_classes=num_classes, boundary_width=width)
  total = sum(v for kind in e["counts"].values() for v in kind.values())
  assert total == e["errors"] == int((labels != preds).sum())
  assert e["band_pixels"] == int(band.sum())
  interior = sum(kind["interior"] for kind in e["counts"].values())
  assert interior == int(((labels != preds) & ~band).sum())
  expected = np.zeros((num_classes, num_classes), np.int64)
  for lab, pred in zip(labels, preds):
    for t, p, _ in ref.object_classes(lab, pred):
      expected[t, p] += 1
  np.testing.assert_array_equal(metrics.object_confusion(labels, preds,
                                                         num_classes=num_classes), expected)


def test_perfect_prediction():
  e = metrics.segmentation_errors(LABEL, LABEL, num_classes=3)
  assert e["errors"] == 0 and e["foreground_miou"] == 1.0
  assert e["foreground_miou_without_band"] == 1.0


@pytest.mark.parametrize("call, err", [
    (lambda: metrics.segmentation_errors(LABEL, PRED[:2], num_classes=3), ValueError),
    (lambda: metrics.segmentation_errors(LABEL, PRED, num_classes=2), ValueError),
    (lambda: metrics.segmentation_errors(LABEL, PRED, num_classes=1), ValueError),
    (lambda: metrics.segmentation_errors(LABEL.astype(float), PRED, num_classes=3), TypeError),
    (lambda: metrics.segmentation_errors(LABEL, PRED, num_classes=3, boundary_width=0),
     ValueError),
    (lambda: metrics.boundary_band(np.zeros(4, int)), ValueError),
    (lambda: metrics.object_confusion(LABEL, PRED, num_classes=3, min_pixels=0), ValueError),
    (lambda: metrics.object_confusion(np.zeros((0, 3), int), np.zeros((0, 3), int),
                                      num_classes=3), ValueError),
])
def test_bad_inputs(call, err):
  with pytest.raises(err):
    call()
