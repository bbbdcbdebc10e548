"""Detection metrics: the book's per-image evaluation, PASCAL VOC AP@0.5 and COCO mAP.

These run on the host, in NumPy (float64); JAX arrays are accepted and copied to the host.

Conventions shared by every function here:

* Boxes are ``xyxy`` (``x1, y1, x2, y2``) in pixels, continuous coordinates: a box's area is
  ``(x2 - x1) * (y2 - y1)``, with no ``+ 1`` (COCO's convention; the VOC devkit adds 1).
  Width and height are clamped at 0, as in :mod:`jaxvision.ops.boxes`: an empty box has IoU
  0 with everything, never NaN.
* Classes are non-negative ints. An image is a dict ``{"boxes": [n, 4], "classes": [n]}``,
  plus ``"scores": [n]`` for predictions (higher is more confident); a dataset is a list of
  such dicts, predictions and ground truths in the same image order. ``[]`` is an empty
  image.

The metrics:

* :func:`image_detection_metrics` and :func:`detection_summary`: the per-image mIoU,
  precision and recall of the SSD chapter of Atienza, *Advanced Deep Learning with
  TensorFlow 2 and Keras* (ch. 11, Listing 11.13.1): each ground-truth box is paired with
  the prediction of highest IoU, and the pair counts if they overlap and agree on the class.
  Scores are ignored (the book evaluates boxes left after NMS).
* :func:`average_precision_voc`: PASCAL VOC (2010 and later) average precision at one IoU
  threshold: greedy matching in decreasing score order, area under the monotone precision
  envelope at every recall point.
* :func:`coco_map`: COCO's mAP@[.5:.95], mAP@.5 and mAP@.75 for boxes (area range "all", at
  most 100 detections per image and class, 101-point interpolated precision), written to
  reproduce ``pycocotools.cocoeval.COCOeval`` on data without crowd regions (the tests
  check it against pycocotools).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from jaxvision import _checks

__all__ = [
    "image_detection_metrics", "detection_summary", "average_precision_voc", "coco_map",
    "mask_iou", "mask_average_precision",
]

# COCOeval's defaults, built exactly as pycocotools builds them (the same floats, so that
# comparisons of IoUs and recalls with them break ties the same way).
_COCO_IOU_THRESHOLDS = np.linspace(.5, 0.95, int(np.round((0.95 - .5) / .05)) + 1)
_COCO_RECALL_THRESHOLDS = np.linspace(.0, 1.00, int(np.round((1.00 - .0) / .01)) + 1)
_COCO_MAX_DETECTIONS = 100


# ---------------------------------------------------------------------------------------------
# Argument checks.


def _as_boxes(x: Any, name: str) -> np.ndarray:
  arr = np.asarray(x)
  if arr.shape in ((0,), (0, 4)):  # `[]` is an image without boxes
    return np.zeros((0, 4), np.float64)
  if arr.ndim != 2 or arr.shape[-1] != 4:
    raise ValueError(f"`{name}` must have shape [n, 4], got shape {arr.shape}.")
  return _as_finite_reals(arr, name)


def _as_finite_reals(arr: np.ndarray, name: str) -> np.ndarray:
  """``arr`` as float64, if it holds real numbers (TypeError) and all are finite (ValueError)."""
  if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
    raise TypeError(f"`{name}` must hold real numbers, got dtype {arr.dtype}.")
  arr = arr.astype(np.float64)
  if not np.all(np.isfinite(arr)):
    raise ValueError(f"`{name}` must be finite.")
  return arr


def _per_box(x: Any, name: str, n: int, empty_dtype: Any) -> np.ndarray:
  """``x`` as an ``[n]`` array; an empty ``empty_dtype`` array for an image without boxes."""
  arr = np.asarray(x)
  if arr.size == 0 and n == 0:
    return np.zeros((0,), empty_dtype)
  if arr.shape != (n,):
    raise ValueError(f"`{name}` must have shape [{n}] (one per box), got shape {arr.shape}.")
  return arr


def _as_classes(x: Any, name: str, n: int) -> np.ndarray:
  arr = _per_box(x, name, n, np.int64)
  if n == 0:
    return arr
  if not np.issubdtype(arr.dtype, np.integer):
    raise TypeError(f"`{name}` must hold integers, got dtype {arr.dtype}.")
  arr = arr.astype(np.int64)
  if arr.min() < 0:
    raise ValueError(f"`{name}` must be non-negative, got minimum {arr.min()}.")
  return arr


def _as_scores(x: Any, name: str, n: int) -> np.ndarray:
  arr = _per_box(x, name, n, np.float64)
  return arr if n == 0 else _as_finite_reals(arr, name)


def _as_images(images: Any, name: str, *, scores: bool) -> list[tuple[np.ndarray, ...]]:
  """Checks a list of image dicts; returns ``(boxes, classes[, scores])`` per image."""
  if isinstance(images, (str, bytes, Mapping)) or not isinstance(images, Sequence):
    raise TypeError(f"`{name}` must be a list of dicts (one per image), got "
                    f"{type(images).__name__}.")
  keys = ("boxes", "classes", "scores") if scores else ("boxes", "classes")
  out = []
  for i, image in enumerate(images):
    where = f"{name}[{i}]"
    if not isinstance(image, Mapping):
      raise TypeError(f"`{where}` must be a dict with keys {keys}, got "
                      f"{type(image).__name__}.")
    missing = [k for k in keys if k not in image]
    if missing:
      raise ValueError(f"`{where}` is missing the keys {missing}.")
    boxes = _as_boxes(image["boxes"], f"{where}['boxes']")
    n = boxes.shape[0]
    entry = (boxes, _as_classes(image["classes"], f"{where}['classes']", n))
    if scores:
      entry += (_as_scores(image["scores"], f"{where}['scores']", n),)
    out.append(entry)
  return out


def _as_dataset(predictions: Any, ground_truths: Any, *, scores: bool):
  preds = _as_images(predictions, "predictions", scores=scores)
  gts = _as_images(ground_truths, "ground_truths", scores=False)
  if len(preds) != len(gts):
    raise ValueError(f"`predictions` and `ground_truths` must have one entry per image, got "
                     f"{len(preds)} and {len(gts)}.")
  return preds, gts


def _check_num_classes(num_classes: Any, preds, gts) -> None:
  if num_classes is None:
    return
  _checks.check_int(num_classes, "num_classes", minimum=1)
  for name, images in (("predictions", preds), ("ground_truths", gts)):
    for i, image in enumerate(images):
      if image[1].size and image[1].max() >= num_classes:
        raise ValueError(f"`{name}[{i}]['classes']` holds class {image[1].max()}, not below "
                         f"`num_classes` = {num_classes}.")


def _pairwise_iou(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
  """``[N, M]`` IoU of ``xyxy`` boxes; 0 where the union is empty."""
  w1 = np.maximum(boxes1[:, 2] - boxes1[:, 0], 0.0)
  h1 = np.maximum(boxes1[:, 3] - boxes1[:, 1], 0.0)
  w2 = np.maximum(boxes2[:, 2] - boxes2[:, 0], 0.0)
  h2 = np.maximum(boxes2[:, 3] - boxes2[:, 1], 0.0)
  iw = (np.minimum(boxes1[:, None, 2], boxes2[None, :, 2])
        - np.maximum(boxes1[:, None, 0], boxes2[None, :, 0]))
  ih = (np.minimum(boxes1[:, None, 3], boxes2[None, :, 3])
        - np.maximum(boxes1[:, None, 1], boxes2[None, :, 1]))
  inter = np.maximum(iw, 0.0) * np.maximum(ih, 0.0)
  # Summed as pycocotools sums it (area1 + area2 - inter), so that equal inputs round alike.
  union = (w1 * h1)[:, None] + (w2 * h2)[None, :] - inter
  return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


# ---------------------------------------------------------------------------------------------
# The book's per-image evaluation.


def image_detection_metrics(
    pred_boxes: Any,
    pred_classes: Any,
    gt_boxes: Any,
    gt_classes: Any,
) -> dict[str, float | int]:
  """mIoU, precision and recall of one image, as in the book's SSD evaluation.

  Follows the per-image evaluation of Atienza, *Advanced Deep Learning with TensorFlow 2
  and Keras*, ch. 11 (Listing 11.13.1): every ground-truth (GT) box ``g`` takes the
  prediction ``p(g)`` of highest IoU with it (the first one on ties); it is a true positive
  (TP) when ``IoU(g, p(g)) > 0`` and ``class(p(g)) == class(g)``. Then::

    miou      = sum_g IoU(g, p(g)) / num_gt
    recall    = TP / num_gt
    precision = |{p(g) : g is a TP}| / num_predictions

  The precision numerator counts distinct predictions, so it stays in ``[0, 1]`` when one
  large prediction is the best match of several GT boxes; otherwise it is
  ``TP / num_predictions``. (The book's own precision is ``TP / (TP + FP)`` with FP the GT
  boxes whose best prediction overlaps them but has the wrong class, so it never counts
  predictions that match nothing; ``TP / num_predictions`` does.)

  Images the book's formulas leave undefined get defined values, never NaN:

  ==========  ===============  =========  ======  ====
  num_gt      num_predictions  precision  recall  miou
  ==========  ===============  =========  ======  ====
  0           0                1          1       1
  0           > 0              0          1       1
  > 0         0                0          0       0
  ==========  ===============  =========  ======  ====

  That is, recall and mIoU, averages over GT boxes, are 1 when there is none, and every
  prediction on an image without objects is a false positive. (The book skips images with
  no GT or no predictions, yet still divides by the number of all images, so they count 0.)

  The book's label files order a box as ``xmin, xmax, ymin, ymax``; here boxes are ``xyxy``
  like everywhere else in jaxvision.

  Args:
    pred_boxes: ``[P, 4]`` predicted boxes, ``xyxy`` pixels (NumPy or JAX).
    pred_classes: ``[P]`` predicted classes, non-negative ints.
    gt_boxes: ``[G, 4]`` ground-truth boxes, ``xyxy`` pixels.
    gt_classes: ``[G]`` ground-truth classes, non-negative ints.

  Returns:
    ``{"miou", "precision", "recall"}`` as floats, and the ints ``"true_positives"``,
    ``"num_predictions"`` and ``"num_ground_truths"``.

  >>> m = image_detection_metrics([[0, 0, 10, 10]], [1],
  ...                            [[0, 0, 10, 10], [20, 20, 30, 30]], [1, 2])
  >>> m["miou"], m["precision"], m["recall"]
  (0.5, 1.0, 0.5)
  """
  pred_boxes = _as_boxes(pred_boxes, "pred_boxes")
  pred_classes = _as_classes(pred_classes, "pred_classes", pred_boxes.shape[0])
  gt_boxes = _as_boxes(gt_boxes, "gt_boxes")
  gt_classes = _as_classes(gt_classes, "gt_classes", gt_boxes.shape[0])
  num_pred, num_gt = pred_boxes.shape[0], gt_boxes.shape[0]
  counts = {"true_positives": 0, "num_predictions": num_pred, "num_ground_truths": num_gt}
  if num_gt == 0:
    value = 0.0 if num_pred else 1.0
    return {"miou": 1.0, "precision": value, "recall": 1.0, **counts}
  if num_pred == 0:
    return {"miou": 0.0, "precision": 0.0, "recall": 0.0, **counts}
  iou = _pairwise_iou(gt_boxes, pred_boxes)  # [G, P]
  best = np.argmax(iou, axis=1)
  best_iou = iou[np.arange(num_gt), best]
  true = (best_iou > 0) & (pred_classes[best] == gt_classes)
  tp = int(np.count_nonzero(true))
  counts["true_positives"] = tp
  return {
      "miou": float(np.sum(best_iou) / num_gt),
      "precision": float(np.unique(best[true]).size / num_pred),
      "recall": float(tp / num_gt),
      **counts,
  }


def detection_summary(predictions: Any, ground_truths: Any) -> dict[str, float]:
  """Mean per-image mIoU, precision and recall: :func:`image_detection_metrics` over images.

  The dataset summary of Atienza, *Advanced Deep Learning with TensorFlow 2 and Keras*,
  ch. 11 (Listing 11.13.1). Every image counts once, whatever its number of boxes (the book's ``s_iou / n_test``),
  with the defined values of :func:`image_detection_metrics` for images without GT or
  without predictions.

  Args:
    predictions: one dict per image, ``{"boxes": [P, 4], "classes": [P]}``; a ``"scores"``
      entry may be present and is ignored.
    ground_truths: one dict per image, ``{"boxes": [G, 4], "classes": [G]}``, in the same
      order.

  Returns:
    ``{"miou", "precision", "recall"}``: the means over images, floats.

  >>> preds = [{"boxes": [[0, 0, 10, 10]], "classes": [0]}, {"boxes": [], "classes": []}]
  >>> gts = [{"boxes": [[0, 0, 10, 10]], "classes": [0]},
  ...        {"boxes": [[0, 0, 5, 5]], "classes": [1]}]
  >>> detection_summary(preds, gts)
  {'miou': 0.5, 'precision': 0.5, 'recall': 0.5}
  """
  preds, gts = _as_dataset(predictions, ground_truths, scores=False)
  if not preds:
    raise ValueError("`predictions` and `ground_truths` must hold at least one image.")
  per_image = [image_detection_metrics(p[0], p[1], g[0], g[1]) for p, g in zip(preds, gts)]
  return {k: float(np.mean([m[k] for m in per_image])) for k in ("miou", "precision", "recall")}


# ---------------------------------------------------------------------------------------------
# PASCAL VOC.


def _split_by_class(images, cls: int, with_scores: bool):
  out = []
  for image in images:
    keep = image[1] == cls
    out.append((image[0][keep], image[2][keep]) if with_scores else image[0][keep])
  return out


def _voc_class_ap(preds, gts, cls: int, iou_threshold: float, pairwise=None) -> float:
  """VOC AP of one class that has at least one GT box (``pairwise``: the IoU of two stacks
  of whatever the images hold, boxes by default)."""
  pairwise = _pairwise_iou if pairwise is None else pairwise
  gt_boxes = _split_by_class(gts, cls, with_scores=False)
  pred = _split_by_class(preds, cls, with_scores=True)
  num_gt = sum(b.shape[0] for b in gt_boxes)
  # Every detection of the class, images in order, then sorted by decreasing score (stable,
  # so ties keep that order).
  image_of = np.concatenate([np.full(p[0].shape[0], i) for i, p in enumerate(pred)])
  index_in_image = np.concatenate([np.arange(p[0].shape[0]) for p in pred])
  scores = np.concatenate([p[1] for p in pred])
  order = np.argsort(-scores, kind="stable")
  ious = [pairwise(p[0], g) for p, g in zip(pred, gt_boxes)]
  taken = [np.zeros(g.shape[0], bool) for g in gt_boxes]
  tp = np.zeros(order.size, bool)
  for rank, d in enumerate(order):
    image, row = image_of[d], ious[image_of[d]][index_in_image[d]]
    if row.size == 0:
      continue
    j = int(np.argmax(row))
    # VOC pairs the detection with its best-overlapping GT box, taken or not; a taken one
    # makes it a duplicate (a false positive), even if another free box overlaps enough.
    if row[j] >= iou_threshold and not taken[image][j]:
      taken[image][j] = True
      tp[rank] = True
  tp_cum = np.cumsum(tp)
  fp_cum = np.cumsum(~tp)
  recall = tp_cum / num_gt
  precision = tp_cum / np.maximum(tp_cum + fp_cum, 1)
  # All-point interpolation: the area under the precision envelope (the best precision at
  # this or any higher recall), summed where the recall steps.
  mrec = np.concatenate([[0.0], recall, [1.0]])
  mpre = np.concatenate([[0.0], precision, [0.0]])
  mpre = np.maximum.accumulate(mpre[::-1])[::-1]
  steps = np.flatnonzero(mrec[1:] != mrec[:-1])
  return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def _classes_with_gt(gts) -> list[int]:
  present = [g[1] for g in gts if g[1].size]
  return [int(c) for c in np.unique(np.concatenate(present))] if present else []


def average_precision_voc(
    predictions: Any,
    ground_truths: Any,
    *,
    iou_threshold: float = 0.5,
    num_classes: int | None = None,
) -> dict[str, Any]:
  """PASCAL VOC mean average precision (VOC2010+ all-point interpolation).

  Per class, the detections of all images are sorted by decreasing score (ties keep image
  order, then box order). Each is paired with the GT box of its image and class that it
  overlaps most; it is a true positive if that IoU is ``>= iou_threshold`` (the official
  devkit's test) and that GT box is not taken yet, and then takes it; otherwise it is a false
  positive (so a duplicate detection of a found object counts against precision). With
  ``recall_k = TP_k / num_gt`` and ``precision_k = TP_k / k`` after the top ``k``
  detections, the class's AP is the area under the precision envelope::

    AP = sum_k (recall_k - recall_{k-1}) * max_{j >= k} precision_j

  and the mAP is the mean over the classes that have at least one GT box. There are no
  "difficult" flags, and areas have no ``+ 1`` (see the module docstring).

  Args:
    predictions: one dict per image, ``{"boxes": [P, 4], "classes": [P], "scores": [P]}``.
    ground_truths: one dict per image, ``{"boxes": [G, 4], "classes": [G]}``, in the same
      order.
    iou_threshold: the IoU needed for a match, in ``(0, 1]``.
    num_classes: if given, every class must be below it (a check only).

  Returns:
    ``{"map": float, "per_class": {class: AP}}``, with an entry for each class that has a GT
    box (a class with GT but no detections has AP 0). ``"map"`` is NaN when no image has a
    GT box.

  >>> gts = [{"boxes": [[0, 0, 10, 10]], "classes": [0]}]
  >>> preds = [{"boxes": [[0, 0, 10, 10], [0, 0, 10, 9]], "classes": [0, 0],
  ...           "scores": [0.9, 0.8]}]
  >>> average_precision_voc(preds, gts)
  {'map': 1.0, 'per_class': {0: 1.0}}
  """
  preds, gts = _as_dataset(predictions, ground_truths, scores=True)
  _check_num_classes(num_classes, preds, gts)
  if isinstance(iou_threshold, bool) or not isinstance(iou_threshold, (int, float, np.number)):
    raise TypeError(f"`iou_threshold` must be a float, got {iou_threshold!r}.")
  if not 0.0 < iou_threshold <= 1.0:
    raise ValueError(f"`iou_threshold` must be in (0, 1], got {iou_threshold}.")
  per_class = {c: _voc_class_ap(preds, gts, c, float(iou_threshold))
               for c in _classes_with_gt(gts)}
  mean = float(np.mean(list(per_class.values()))) if per_class else float("nan")
  return {"map": mean, "per_class": per_class}


# ---------------------------------------------------------------------------------------------
# COCO.


def _coco_image_matches(boxes, scores, gt_boxes) -> tuple[np.ndarray, np.ndarray]:
  """COCOeval.evaluateImg for one image and class: ``(scores [D], matched [T, D])``."""
  order = np.argsort(-scores, kind="stable")[:_COCO_MAX_DETECTIONS]
  boxes, scores = boxes[order], scores[order]
  num_dets, num_gt = boxes.shape[0], gt_boxes.shape[0]
  matched = np.zeros((_COCO_IOU_THRESHOLDS.size, num_dets), bool)
  if num_dets == 0 or num_gt == 0:
    return scores, matched
  ious = _pairwise_iou(boxes, gt_boxes)  # [D, G]
  for t, threshold in enumerate(_COCO_IOU_THRESHOLDS):
    threshold = min(threshold, 1 - 1e-10)
    taken = np.zeros(num_gt, bool)
    for d in range(num_dets):
      row = np.where(taken, -np.inf, ious[d])
      best = row.max()
      if best < threshold:
        continue
      # COCOeval keeps the last GT box among equally good ones.
      j = num_gt - 1 - int(np.argmax(row[::-1]))
      taken[j] = True
      matched[t, d] = True
  return scores, matched


def _coco_class_precision(preds, gts, cls: int) -> np.ndarray:
  """COCOeval.accumulate for one class with GT: ``[T, R]`` interpolated precision."""
  gt_boxes = _split_by_class(gts, cls, with_scores=False)
  pred = _split_by_class(preds, cls, with_scores=True)
  num_gt = sum(b.shape[0] for b in gt_boxes)
  per_image = [_coco_image_matches(p[0], p[1], g) for p, g in zip(pred, gt_boxes)]
  scores = np.concatenate([s for s, _ in per_image])
  matched = np.concatenate([m for _, m in per_image], axis=1)
  order = np.argsort(-scores, kind="mergesort")
  matched = matched[:, order]
  tp_cum = np.cumsum(matched, axis=1).astype(np.float64)
  fp_cum = np.cumsum(~matched, axis=1).astype(np.float64)
  precision = np.zeros((_COCO_IOU_THRESHOLDS.size, _COCO_RECALL_THRESHOLDS.size))
  num_dets = scores.size
  if num_dets == 0:
    return precision
  for t in range(_COCO_IOU_THRESHOLDS.size):
    recall = tp_cum[t] / num_gt
    # pycocotools adds np.spacing(1) to this denominator, which is never 0 here (k >= 1
    # detections): without it a perfect result is exactly 1 rather than 1 - 2e-16.
    pr = tp_cum[t] / (tp_cum[t] + fp_cum[t])
    pr = np.maximum.accumulate(pr[::-1])[::-1]
    # The precision envelope read at the first detection reaching each recall threshold;
    # thresholds the detections never reach keep precision 0.
    at = np.searchsorted(recall, _COCO_RECALL_THRESHOLDS, side="left")
    reached = at < num_dets
    precision[t, reached] = pr[at[reached]]
  return precision


def coco_map(
    predictions: Any,
    ground_truths: Any,
    *,
    num_classes: int | None = None,
) -> dict[str, Any]:
  """COCO box mAP@[.5:.95], mAP@.5 and mAP@.75, as ``pycocotools`` computes them.

  For each image and class the top 100 detections by score are kept. At each IoU threshold
  ``t`` in ``0.50, 0.55, ..., 0.95`` each detection, in decreasing score order, takes the
  free GT box of its image and class with the highest IoU, if that IoU is ``>= t`` (ties go
  to the later GT box, as in ``COCOeval``). Per class and threshold, the detections of all
  images are sorted by score and the precision envelope is read at the 101 recall points
  ``0, 0.01, ..., 1`` (0 beyond the highest recall reached); AP is their mean. ``"map"``
  averages over the 10 thresholds and the classes that have a GT box; ``"map50"`` and
  ``"map75"`` over those classes at one threshold. Area range "all" and no crowd regions:
  every box counts, areas are ``w * h`` (no ``+ 1``).

  Args:
    predictions: one dict per image, ``{"boxes": [P, 4], "classes": [P], "scores": [P]}``.
    ground_truths: one dict per image, ``{"boxes": [G, 4], "classes": [G]}``, in the same
      order.
    num_classes: if given, every class must be below it (a check only).

  Returns:
    ``{"map", "map50", "map75"}`` as floats (NaN when no image has a GT box, where
    ``pycocotools`` reports -1) and ``"per_class"``: ``{class: AP@[.5:.95]}`` for each class
    that has a GT box.

  >>> gts = [{"boxes": [[0, 0, 10, 10]], "classes": [0]}]
  >>> preds = [{"boxes": [[0, 0, 10, 10]], "classes": [0], "scores": [0.9]}]
  >>> coco_map(preds, gts)
  {'map': 1.0, 'map50': 1.0, 'map75': 1.0, 'per_class': {0: 1.0}}
  """
  preds, gts = _as_dataset(predictions, ground_truths, scores=True)
  _check_num_classes(num_classes, preds, gts)
  classes = _classes_with_gt(gts)
  if not classes:
    nan = float("nan")
    return {"map": nan, "map50": nan, "map75": nan, "per_class": {}}
  precision = np.stack([_coco_class_precision(preds, gts, c) for c in classes])  # [K, T, R]
  at50 = int(np.flatnonzero(_COCO_IOU_THRESHOLDS == 0.5)[0])
  at75 = int(np.flatnonzero(_COCO_IOU_THRESHOLDS == 0.75)[0])
  return {
      "map": float(np.mean(precision)),
      "map50": float(np.mean(precision[:, at50])),
      "map75": float(np.mean(precision[:, at75])),
      "per_class": {c: float(np.mean(p)) for c, p in zip(classes, precision)},
  }


# ---------------------------------------------------------------------------------------------
# Instance masks.


def mask_iou(masks1: Any, masks2: Any) -> np.ndarray:
  """``[N, M]`` IoU of two stacks of boolean masks ``[N, H, W]`` and ``[M, H, W]``
  (intersection over union of the pixel sets; 0 where both are empty).

  >>> a = np.zeros((1, 2, 2), bool); a[0, 0] = True
  >>> mask_iou(a, np.ones((1, 2, 2), bool)).tolist()
  [[0.5]]
  """
  m1 = _as_masks(masks1, "masks1")
  m2 = _as_masks(masks2, "masks2")
  if m1.shape[1:] != m2.shape[1:]:
    raise ValueError(f"`masks1` and `masks2` must have the same [H, W], got {m1.shape[1:]} "
                     f"and {m2.shape[1:]}.")
  return _pairwise_mask_iou(m1, m2)


def _as_masks(x: Any, name: str) -> np.ndarray:
  arr = np.asarray(x)
  if arr.ndim != 3:
    raise ValueError(f"`{name}` must be [N, H, W] masks, got shape {arr.shape}.")
  return arr.astype(bool)


def _pairwise_mask_iou(m1: np.ndarray, m2: np.ndarray) -> np.ndarray:
  a = m1.reshape(len(m1), -1).astype(np.float64)
  b = m2.reshape(len(m2), -1).astype(np.float64)
  inter = a @ b.T
  union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter
  return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def mask_average_precision(predictions: Any, ground_truths: Any, *,
                           iou_threshold: float = 0.5) -> dict[str, Any]:
  """VOC-style mask AP: :func:`average_precision_voc` with mask IoU in place of box IoU.

  Args:
    predictions: one dict per image, ``{"masks": [P, H, W] bool, "classes": [P], "scores":
      [P]}``.
    ground_truths: one dict per image, ``{"masks": [G, H, W] bool, "classes": [G]}``, the
      same ``[H, W]`` as the image's predictions.
    iou_threshold: the mask IoU needed for a match, in ``(0, 1]``.

  Returns:
    ``{"map": float, "per_class": {class: AP}}`` (NaN mAP when there is no ground truth).

  >>> m = np.zeros((1, 4, 4), bool); m[0, :2, :2] = True
  >>> mask_average_precision([{"masks": m, "classes": [1], "scores": [0.9]}],
  ...                        [{"masks": m, "classes": [1]}])
  {'map': 1.0, 'per_class': {1: 1.0}}
  """
  if not isinstance(iou_threshold, (int, float, np.number)) or isinstance(iou_threshold, bool):
    raise TypeError(f"`iou_threshold` must be a float, got {iou_threshold!r}.")
  if not 0.0 < iou_threshold <= 1.0:
    raise ValueError(f"`iou_threshold` must be in (0, 1], got {iou_threshold}.")
  if len(predictions) != len(ground_truths):
    raise ValueError(f"`predictions` and `ground_truths` must have one entry per image, got "
                     f"{len(predictions)} and {len(ground_truths)}.")
  preds, gts = [], []
  for i, (p, g) in enumerate(zip(predictions, ground_truths)):
    pm, gm = _as_masks(p["masks"], f"predictions[{i}]['masks']"), _as_masks(
        g["masks"], f"ground_truths[{i}]['masks']")
    if len(pm) and len(gm) and pm.shape[1:] != gm.shape[1:]:
      raise ValueError(f"image {i}: predicted masks {pm.shape[1:]} and ground-truth masks "
                       f"{gm.shape[1:]} differ in size.")
    preds.append((pm, _as_classes(p["classes"], f"predictions[{i}]['classes']", len(pm)),
                  _as_scores(p["scores"], f"predictions[{i}]['scores']", len(pm))))
    gts.append((gm, _as_classes(g["classes"], f"ground_truths[{i}]['classes']", len(gm))))

  def pairwise(a, b):
    if not len(a) or not len(b):
      return np.zeros((len(a), len(b)))
    return _pairwise_mask_iou(a, b)

  per_class = {c: _voc_class_ap(preds, gts, c, float(iou_threshold), pairwise)
               for c in _classes_with_gt(gts)}
  mean = float(np.mean(list(per_class.values()))) if per_class else float("nan")
  return {"map": mean, "per_class": per_class}
