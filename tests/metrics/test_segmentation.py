"""Tests of the segmentation metrics (``jaxvision.metrics.segmentation``).

Oracles: hand-made 4x4 masks whose confusion matrix, IoUs and accuracies are worked out in
the comments; a direct per-pixel count for the confusion matrix on random masks; the
jitted (traced) confusion matrix against the host one, in a batch loop.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxvision import metrics
from jaxvision.metrics.segmentation import image_miou, segmentation_summary
from jaxvision.metrics.segmentation import confusion_matrix
from jaxvision.metrics.segmentation import segmentation_metrics_from_confusion

# Ground truth: background 0 in the top-left and bottom-right quadrants, class 1 top-right,
# class 2 bottom-left; class 3 is absent.
LABEL = np.array([
    [0, 0, 1, 1],
    [0, 0, 1, 1],
    [2, 2, 0, 0],
    [2, 2, 0, 0],
])
# Prediction: 3 mistakes out of 16 pixels -- (1, 1) 0 -> 1, (2, 2) 0 -> 2, (3, 0) 2 -> 3.
PRED = np.array([
    [0, 0, 1, 1],
    [0, 1, 1, 1],
    [2, 2, 2, 0],
    [3, 2, 0, 0],
])
# Rows are the true class, columns the prediction:
#   true 0 (8 px): 6 -> 0, 1 -> 1 at (1, 1), 1 -> 2 at (2, 2)
#   true 1 (4 px): all 4 -> 1
#   true 2 (4 px): 3 -> 2, 1 -> 3 at (3, 0)
#   true 3: none
CM = np.array([
    [6, 1, 1, 0],
    [0, 4, 0, 0],
    [0, 0, 3, 1],
    [0, 0, 0, 0],
])
# TP = diag = [6, 4, 3, 0]; row sums (GT) = [8, 4, 4, 0]; column sums (pred) = [6, 5, 4, 1].
# IoU = TP / (GT + pred - TP):
#   0: 6 / (8 + 6 - 6) = 6/8 = 0.75
#   1: 4 / (4 + 5 - 4) = 4/5 = 0.8
#   2: 3 / (4 + 4 - 3) = 3/5 = 0.6
#   3: 0 / (0 + 1 - 0) = 0     (only predicted: counts at dataset level)
IOU = [0.75, 0.8, 0.6, 0.0]
DATASET_MIOU = (0.75 + 0.8 + 0.6 + 0.0) / 4  # 0.5375
BOOK_MIOU = (0.75 + 0.8 + 0.6) / 3  # 0.71666...: class 3 is not in the ground truth
PIXEL_ACCURACY = 13 / 16  # 0.8125


# ---------------------------------------------------------------------------------------------
# Confusion matrix.


def test_confusion_matrix_by_hand():
  cm = confusion_matrix(LABEL, PRED, num_classes=4)
  assert cm.dtype == np.int64 and cm.shape == (4, 4)
  np.testing.assert_array_equal(cm, CM)
  # JAX arrays outside jit take the same host path.
  cm = confusion_matrix(jnp.asarray(LABEL), jnp.asarray(PRED, jnp.uint8), num_classes=4)
  assert isinstance(cm, np.ndarray) and cm.dtype == np.int64
  np.testing.assert_array_equal(cm, CM)


def test_confusion_matrix_any_shape_and_random_masks():
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 5, (3, 7, 9))
  preds = rng.integers(0, 5, (3, 7, 9))
  want = np.zeros((5, 5), np.int64)
  for t, p in zip(labels.ravel(), preds.ravel()):
    want[t, p] += 1
  np.testing.assert_array_equal(confusion_matrix(labels, preds, num_classes=5), want)
  # Bool masks are classes 0/1.
  np.testing.assert_array_equal(
      confusion_matrix(np.array([True, False]), np.array([True, True]), num_classes=2),
      [[0, 1], [0, 1]])


def test_confusion_matrix_ignore_index():
  label = LABEL.copy()
  label[0, :] = 255  # void: the first row is not counted, whatever is predicted there
  cm = confusion_matrix(label, PRED, num_classes=4, ignore_index=255)
  # The first row held two correct 0s and two correct 1s.
  np.testing.assert_array_equal(cm, CM - np.diag([2, 2, 0, 0]))
  # An ignored class inside [0, C): background.
  cm = confusion_matrix(LABEL, PRED, num_classes=4, ignore_index=0)
  np.testing.assert_array_equal(cm[0], [0, 0, 0, 0])
  np.testing.assert_array_equal(cm[1:], CM[1:])


def test_confusion_matrix_under_jit_in_a_batch_loop():
  rng = np.random.default_rng(1)
  labels = rng.integers(0, 4, (5, 2, 6, 6))  # 5 batches of 2 images
  labels[0, 0, 0, :3] = 255
  preds = rng.integers(0, 4, (5, 2, 6, 6))
  step = jax.jit(lambda y, p: confusion_matrix(y, p, num_classes=4, ignore_index=255))
  total = np.zeros((4, 4), np.int64)
  for y, p in zip(labels, preds):
    counts = step(jnp.asarray(y), jnp.asarray(p))
    assert isinstance(counts, jax.Array) and counts.shape == (4, 4)
    total += np.asarray(counts)
  want = confusion_matrix(labels, preds, num_classes=4, ignore_index=255)
  np.testing.assert_array_equal(total, want)
  assert total.sum() == labels.size - 3

  # Accumulated on device, inside one jitted scan over the batches.
  def scan_step(acc, batch):
    return acc + confusion_matrix(batch[0], batch[1], num_classes=4, ignore_index=255), None
  acc, _ = jax.jit(lambda y, p: jax.lax.scan(scan_step, jnp.zeros((4, 4), int), (y, p)))(
      jnp.asarray(labels), jnp.asarray(preds))
  np.testing.assert_array_equal(acc, want)


def test_confusion_matrix_under_jit_drops_out_of_range_pixels():
  cm = jax.jit(lambda y, p: confusion_matrix(y, p, num_classes=2))(
      jnp.array([0, 1, 2, -1, 1]), jnp.array([0, 1, 0, 0, 7]))
  np.testing.assert_array_equal(cm, [[1, 0], [0, 1]])


# ---------------------------------------------------------------------------------------------
# Dataset-level metrics.


def test_metrics_from_confusion_by_hand():
  m = segmentation_metrics_from_confusion(CM)
  assert set(m) == {"miou", "per_class_iou", "pixel_accuracy"}
  np.testing.assert_allclose(m["per_class_iou"], IOU)
  assert m["miou"] == pytest.approx(DATASET_MIOU)
  assert m["pixel_accuracy"] == pytest.approx(PIXEL_ACCURACY)
  # A fifth class absent from both ground truth and prediction: None, not in the mean.
  m5 = segmentation_metrics_from_confusion(confusion_matrix(LABEL, PRED, num_classes=5))
  assert m5["per_class_iou"][4] is None
  assert m5["miou"] == pytest.approx(DATASET_MIOU)
  assert not any(v is not None and math.isnan(v) for v in m5["per_class_iou"])
  assert all(isinstance(v, float) for k, v in m5.items() if k != "per_class_iou")


def test_perfect_prediction_scores_one():
  cm = confusion_matrix(LABEL, LABEL, num_classes=6)
  m = segmentation_metrics_from_confusion(cm)
  assert m["miou"] == 1.0 and m["pixel_accuracy"] == 1.0
  assert m["per_class_iou"] == [1.0, 1.0, 1.0, None, None, None]
  assert image_miou(LABEL, LABEL, num_classes=6) == 1.0
  assert segmentation_summary([LABEL, LABEL], [LABEL, LABEL], num_classes=6) == {
      "miou": 1.0, "pixel_accuracy": 1.0}


def test_metrics_from_jax_confusion():
  m = segmentation_metrics_from_confusion(jnp.asarray(CM))
  assert m["miou"] == pytest.approx(DATASET_MIOU)


# ---------------------------------------------------------------------------------------------
# The book's per-image metrics.


def test_image_miou_by_hand():
  assert image_miou(LABEL, PRED, num_classes=4) == pytest.approx(BOOK_MIOU)
  # More classes than used change nothing: only the ground truth's classes count.
  assert image_miou(LABEL, PRED, num_classes=10) == pytest.approx(BOOK_MIOU)
  # Background counts: an image of background only, half predicted as class 1.
  label = np.zeros((4, 4), int)
  pred = np.zeros((4, 4), int)
  pred[:2] = 1
  # Class 0: 8 / 16 = 0.5; class 1 is only predicted and does not enter the mean.
  assert image_miou(label, pred, num_classes=2) == 0.5


def test_image_miou_ignores_classes_only_predicted():
  # The same image predicted two ways: the false positives in (3, 0) as class 3 (absent
  # from the ground truth) and as class 1 (present). They cost class 2 the same 1/5 either
  # way, but as class 1 they also lower IoU_1 -- as class 3 they are not counted at all.
  pred_1 = PRED.copy()
  pred_1[3, 0] = 1
  # IoU_1 = 4 / (4 + 6 - 4) = 4/6; IoU_0 = 0.75 and IoU_2 = 0.6 as before.
  assert image_miou(LABEL, pred_1, num_classes=4) == pytest.approx((0.75 + 4 / 6 + 0.6) / 3)
  assert image_miou(LABEL, PRED, num_classes=4) == pytest.approx((0.75 + 0.8 + 0.6) / 3)


def test_book_summary_by_hand():
  # Image 1: (LABEL, PRED): book mIoU 0.71666..., accuracy 13/16.
  # Image 2: all background, predicted right except one pixel as class 2:
  #   IoU_0 = 15/16, class 2 not in the ground truth -> mIoU 15/16; accuracy 15/16.
  label2 = np.zeros((4, 4), int)
  pred2 = label2.copy()
  pred2[3, 3] = 2
  want_miou = (BOOK_MIOU + 15 / 16) / 2
  want_acc = (13 / 16 + 15 / 16) / 2  # 0.875
  for labels, preds in [(np.stack([LABEL, label2]), np.stack([PRED, pred2])),
                        ([LABEL, label2], [PRED, pred2]),
                        (jnp.stack([LABEL, label2]), jnp.stack([PRED, pred2]))]:
    got = segmentation_summary(labels, preds, num_classes=4)
    assert set(got) == {"miou", "pixel_accuracy"}
    assert got["miou"] == pytest.approx(want_miou)
    assert got["pixel_accuracy"] == pytest.approx(want_acc)
  # Images of different sizes are fine in a list; each image weighs the same.
  got = segmentation_summary([LABEL, label2[:2, :2]], [PRED, pred2[:2, :2]],
                                  num_classes=4)
  assert got["miou"] == pytest.approx((BOOK_MIOU + 1.0) / 2)
  assert got["pixel_accuracy"] == pytest.approx((13 / 16 + 1.0) / 2)


def test_exported_from_metrics():
  for name in ("confusion_matrix", "segmentation_metrics_from_confusion", "image_miou",
               "segmentation_summary"):
    assert name in metrics.__all__ and hasattr(metrics, name)


# ---------------------------------------------------------------------------------------------
# Bad arguments.


@pytest.mark.parametrize("labels, preds, kwargs, error, match", [
    (LABEL, PRED[:3], {}, ValueError, "same shape"),
    (LABEL, PRED, dict(num_classes=3), ValueError, "`predictions`.*found 3"),
    (LABEL * 2, PRED, {}, ValueError, "`labels`.*found 4"),
    (LABEL - 1, PRED, {}, ValueError, "`labels`.*found -1"),
    (LABEL.astype(float), PRED, {}, TypeError, "`labels`"),
    (LABEL, PRED, dict(num_classes=0), ValueError, "`num_classes`"),
    (LABEL, PRED, dict(num_classes=4.0), TypeError, "`num_classes`"),
    (LABEL, PRED, dict(ignore_index=2.5), TypeError, "`ignore_index`"),
])
def test_confusion_matrix_rejects_bad_input(labels, preds, kwargs, error, match):
  kwargs = {"num_classes": 4, **kwargs}
  with pytest.raises(error, match=match):
    confusion_matrix(labels, preds, **kwargs)


def test_confusion_matrix_rejects_bad_input_under_jit():
  with pytest.raises(ValueError, match="same shape"):
    jax.jit(lambda y, p: confusion_matrix(y, p, num_classes=4))(LABEL, PRED[:3])
  with pytest.raises(TypeError, match="`labels`"):
    jax.jit(lambda y, p: confusion_matrix(y, p, num_classes=4))(LABEL * 1.0, PRED)


@pytest.mark.parametrize("cm, error", [
    (np.zeros((3, 3), int), ValueError),        # no pixel
    (np.ones((3, 4), int), ValueError),         # not square
    (-np.eye(3, dtype=int), ValueError),        # negative counts
    (np.ones(3, int), ValueError),
])
def test_metrics_from_confusion_rejects_bad_input(cm, error):
  with pytest.raises(error, match="`cm`"):
    segmentation_metrics_from_confusion(cm)


def test_book_metrics_reject_bad_input():
  with pytest.raises(ValueError, match="same shape"):
    image_miou(LABEL, PRED[:3], num_classes=4)
  with pytest.raises(ValueError, match=r"\[H, W\]"):
    image_miou(LABEL[None], PRED[None], num_classes=4)
  with pytest.raises(ValueError, match="`label`.*found 4"):
    image_miou(LABEL * 2, PRED, num_classes=4)
  with pytest.raises(ValueError, match="`prediction`.*found 5"):
    image_miou(LABEL, PRED + 2, num_classes=5)
  with pytest.raises(ValueError, match="as many images"):
    segmentation_summary([LABEL, LABEL], [PRED], num_classes=4)
  with pytest.raises(ValueError, match="at least one image"):
    segmentation_summary([], [], num_classes=4)
  with pytest.raises(ValueError, match="same shape"):
    segmentation_summary([LABEL], [PRED[:2]], num_classes=4)
