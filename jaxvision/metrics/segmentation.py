"""Semantic-segmentation metrics: confusion matrix, IoU, mIoU, pixel accuracy.

Masks are integer class maps of any shape (``[H, W]``, ``[N, H, W]``, ...): ``labels`` the
ground truth, ``predictions`` e.g. ``argmax`` of a model's logits, with classes in
``[0, num_classes)``. Two families of numbers are computed, and they differ:

* **Dataset-level** (the Pascal VOC / Cityscapes / torchmetrics way):
  :func:`confusion_matrix` accumulated over the whole dataset, then
  :func:`segmentation_metrics_from_confusion`: per-class ``IoU = TP / (TP + FP + FN)``, their
  mean over the classes that occur (in the ground truth or the predictions) and the pixel
  accuracy ``sum(TP) / pixels``. A class present in neither has no IoU (reported as None,
  left out of the mean), so the numbers are NaN-free.
* **The source book's** (Atienza, *Advanced Deep Learning with TensorFlow 2 and Keras*,
  ch. 12, ``FCN.eval``): :func:`image_miou` averages the IoU over the classes present in the
  **ground truth of one image** (background, class 0, included; a class only predicted does
  not count), and :func:`segmentation_summary` averages that and each image's pixel
  accuracy over the images. The book prints the pixel accuracy in percent; here it is a
  fraction in ``[0, 1]``. Averaging per image weighs small images like big ones and ignores
  false-positive classes, so it is usually higher than the dataset-level mIoU.

Where it runs. On concrete inputs (NumPy or JAX arrays) everything runs on the host in
NumPy, checks that the classes are in range and counts in int64. :func:`confusion_matrix`
also runs under ``jax.jit`` (traced inputs): one ``jnp.bincount`` of length ``C * C``, no host
round trip, so a jitted evaluation step can return the ``[C, C]`` counts of its batch and
the loop adds them on the host (``total += np.asarray(counts)``, int64) -- see its docstring.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxvision import _checks

__all__ = [
    "confusion_matrix", "segmentation_metrics_from_confusion", "image_miou",
    "segmentation_summary",
]


# ---------------------------------------------------------------------------------------------
# Argument checks.


def _check_num_classes(num_classes: Any) -> int:
  return _checks.check_int(num_classes, "num_classes", minimum=1)


def _check_mask_dtype(x: Any, name: str) -> None:
  dtype = np.dtype(x.dtype)
  if not (np.issubdtype(dtype, np.integer) or dtype == np.bool_):
    raise TypeError(f"`{name}` must be an integer class mask, got dtype {dtype}.")


def _as_host_mask(x: Any, name: str) -> np.ndarray:
  arr = np.asarray(x)
  if arr.size == 0 and arr.dtype == np.float64:  # e.g. np.asarray([])
    arr = arr.astype(np.int64)
  _check_mask_dtype(arr, name)
  return arr


def _check_same_shape(labels: Any, predictions: Any) -> None:
  if tuple(labels.shape) != tuple(predictions.shape):
    raise ValueError(f"`labels` and `predictions` must have the same shape, got "
                     f"{tuple(labels.shape)} and {tuple(predictions.shape)}.")


def _check_range(x: np.ndarray, name: str, num_classes: int, keep: np.ndarray | None = None
                 ) -> None:
  values = x if keep is None else x[keep]
  if values.size and (values.min() < 0 or values.max() >= num_classes):
    bad = values[(values < 0) | (values >= num_classes)][0]
    raise ValueError(f"`{name}` must hold classes in [0, num_classes={num_classes}), found "
                     f"{bad}.")


# ---------------------------------------------------------------------------------------------
# Dataset-level metrics.


def confusion_matrix(
    labels: Any,
    predictions: Any,
    *,
    num_classes: int,
    ignore_index: int | None = None,
) -> np.ndarray | jax.Array:
  """Counts of (true class, predicted class) pairs over all pixels.

  Args:
    labels: ground-truth class mask of any shape, integers in ``[0, num_classes)`` (or
      ``ignore_index``). NumPy or JAX.
    predictions: predicted class mask of the same shape, integers in ``[0, num_classes)``.
    num_classes: ``C``, a positive Python int.
    ignore_index: pixels whose *label* equals it (e.g. 255, VOC's "void") are not counted,
      whatever their prediction; None counts every pixel.

  Returns:
    ``[C, C]`` counts; entry ``[t, p]`` is the number of pixels of true class ``t``
    predicted as ``p`` (rows are the ground truth). On concrete inputs: a NumPy int64 array,
    after checking that every class is in range (``ValueError`` otherwise). Under
    ``jax.jit``: a JAX array of JAX's default int (int32; int64 with ``jax_enable_x64``), and
    out-of-range pixels, which cannot raise there, are left out of the counts (so
    ``counts.sum()`` is smaller than the number of non-ignored pixels). Add batch counts on
    the host in int64 to stay exact past 2**31 pixels.

  >>> confusion_matrix(np.array([[0, 0], [1, 1]]), np.array([[0, 1], [1, 1]]), num_classes=2)
  array([[1, 1],
         [0, 2]])

  In a jitted evaluation loop:

  >>> step = jax.jit(lambda y, p: confusion_matrix(y, p, num_classes=3))
  >>> total = np.zeros((3, 3), np.int64)
  >>> for y in (jnp.array([0, 1, 2]), jnp.array([2, 2, 0])):
  ...   total += np.asarray(step(y, jnp.full(3, 2)))
  >>> total[:, 2].tolist()
  [2, 1, 3]
  """
  num_classes = _check_num_classes(num_classes)
  if ignore_index is not None and (isinstance(ignore_index, bool)
                                   or not isinstance(ignore_index, (int, np.integer))):
    raise TypeError(f"`ignore_index` must be a Python int or None, got {ignore_index!r}.")
  if isinstance(labels, jax.core.Tracer) or isinstance(predictions, jax.core.Tracer):
    labels, predictions = jnp.asarray(labels), jnp.asarray(predictions)
    _check_mask_dtype(labels, "labels")
    _check_mask_dtype(predictions, "predictions")
    _check_same_shape(labels, predictions)
    return _traced_confusion(labels, predictions, num_classes, ignore_index)
  labels, predictions = _as_host_mask(labels, "labels"), _as_host_mask(predictions, "predictions")
  _check_same_shape(labels, predictions)
  labels, predictions = labels.astype(np.int64).ravel(), predictions.astype(np.int64).ravel()
  keep = None if ignore_index is None else labels != ignore_index
  _check_range(labels, "labels", num_classes, keep)
  _check_range(predictions, "predictions", num_classes, keep)
  if keep is not None:
    labels, predictions = labels[keep], predictions[keep]
  counts = np.bincount(labels * num_classes + predictions, minlength=num_classes**2)
  return counts.astype(np.int64).reshape(num_classes, num_classes)


def _traced_confusion(labels, predictions, num_classes, ignore_index):
  labels = labels.astype(int).ravel()
  predictions = predictions.astype(int).ravel()
  ok = (labels >= 0) & (labels < num_classes) & (predictions >= 0) & (predictions < num_classes)
  if ignore_index is not None:
    ok = ok & (labels != ignore_index)
  # Pixels that do not count go to bin C * C, which bincount(length=C * C) drops.
  pair = jnp.where(ok, labels * num_classes + predictions, num_classes**2)
  return jnp.bincount(pair, length=num_classes**2).reshape(num_classes, num_classes)


def segmentation_metrics_from_confusion(cm: Any) -> dict[str, Any]:
  """mIoU, per-class IoU and pixel accuracy from a ``[C, C]`` confusion matrix.

  ``IoU_c = TP_c / (TP_c + FP_c + FN_c)`` with ``TP_c = cm[c, c]``, ``FN_c`` the rest of row
  ``c`` and ``FP_c`` the rest of column ``c``. A class absent from both the ground truth and
  the predictions (``TP + FP + FN = 0``) has no IoU: None in ``per_class_iou`` and left out of
  the mean. A class only predicted has IoU 0 and counts.

  Args:
    cm: ``[C, C]`` non-negative counts, rows the true class (as from
      :func:`confusion_matrix`), with at least one pixel.

  Returns:
    ``{"miou": float, "per_class_iou": [float | None] * C, "pixel_accuracy": float}``;
    ``pixel_accuracy = trace(cm) / sum(cm)``.

  >>> m = segmentation_metrics_from_confusion(np.array([[3, 1, 0], [0, 2, 0], [0, 0, 0]]))
  >>> m["per_class_iou"], m["miou"], m["pixel_accuracy"]
  ([0.75, 0.6666666666666666, None], 0.7083333333333333, 0.8333333333333334)
  """
  cm = np.asarray(cm)
  if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
    raise ValueError(f"`cm` must be a square [C, C] matrix, got shape {cm.shape}.")
  if not (np.issubdtype(cm.dtype, np.integer) or np.issubdtype(cm.dtype, np.floating)):
    raise TypeError(f"`cm` must hold counts, got dtype {cm.dtype}.")
  cm = cm.astype(np.int64) if np.issubdtype(cm.dtype, np.integer) else cm.astype(np.float64)
  if not np.all(np.isfinite(cm)) or (cm < 0).any():
    raise ValueError("`cm` must hold finite, non-negative counts.")
  total = cm.sum()
  if total <= 0:
    raise ValueError("`cm` must count at least one pixel.")
  tp = np.diag(cm)
  union = cm.sum(axis=1) + cm.sum(axis=0) - tp
  per_class = [float(t / u) if u > 0 else None for t, u in zip(tp, union)]
  present = [v for v in per_class if v is not None]
  return {
      "miou": float(np.mean(present)),  # total > 0, so some class is present
      "per_class_iou": per_class,
      "pixel_accuracy": float(tp.sum() / total),
  }


# ---------------------------------------------------------------------------------------------
# The book's per-image metrics.


def _image_scores(label: Any, prediction: Any, num_classes: int) -> tuple[float, float]:
  """(mIoU over the classes in ``label``, pixel accuracy) of one ``[H, W]`` image."""
  label, prediction = _as_host_mask(label, "label"), _as_host_mask(prediction, "prediction")
  if label.ndim != 2:
    raise ValueError(f"`label` must be one [H, W] mask, got shape {label.shape}.")
  if label.shape != prediction.shape:
    raise ValueError(f"`label` and `prediction` must have the same shape, got {label.shape} "
                     f"and {prediction.shape}.")
  if label.size == 0:
    raise ValueError("`label` must not be empty.")
  _check_range(label, "label", num_classes)
  _check_range(prediction, "prediction", num_classes)
  cm = confusion_matrix(label, prediction, num_classes=num_classes)
  tp, in_label = np.diag(cm), cm.sum(axis=1)
  union = in_label + cm.sum(axis=0) - tp
  present = in_label > 0  # the book's `if np.sum(gt[..., i]) < eps: continue`
  miou = float(np.mean(tp[present] / union[present]))
  return miou, float(tp.sum() / cm.sum())


def image_miou(label: Any, prediction: Any, *, num_classes: int) -> float:
  """The source book's mIoU of one image: mean IoU over the classes in its ground truth.

  For every class ``c`` with at least one pixel in ``label`` (background included),
  ``IoU_c = |label == c and prediction == c| / |label == c or prediction == c|``; the result
  is their mean. Classes that appear only in ``prediction`` are ignored (their false
  positives still lower the IoU of the true classes they cover).

  Args:
    label: ``[H, W]`` ground-truth classes in ``[0, num_classes)``.
    prediction: ``[H, W]`` predicted classes in ``[0, num_classes)``.
    num_classes: ``C``, a positive Python int.

  Returns:
    A Python float in ``[0, 1]``.

  >>> label = np.array([[0, 0], [1, 1]])
  >>> image_miou(label, np.array([[0, 1], [1, 1]]), num_classes=3)   # (1/2 + 2/3) / 2
  0.5833333333333333
  >>> image_miou(label, np.array([[0, 0], [2, 1]]), num_classes=3)   # class 2 is not counted
  0.75
  """
  return _image_scores(label, prediction, _check_num_classes(num_classes))[0]


def segmentation_summary(
    labels: Any | Sequence[Any],
    predictions: Any | Sequence[Any],
    *,
    num_classes: int,
) -> dict[str, float]:
  """Per-image mIoU (:func:`image_miou`) and pixel accuracy, averaged over images.

  The evaluation of Atienza, *Advanced Deep Learning with TensorFlow 2 and Keras*, ch. 12
  (``FCN.eval``): every image weighs the same, whatever its size.

  Args:
    labels: ``[N, H, W]`` ground-truth masks, or a sequence of ``N`` ``[H, W]`` masks (sizes
      may differ between images).
    predictions: the matching predicted masks.
    num_classes: ``C``, a positive Python int.

  Returns:
    ``{"miou": mean of image_miou, "pixel_accuracy": mean of each image's fraction of correct
    pixels}``, Python floats in ``[0, 1]`` (the book prints the accuracy in percent).

  >>> labels = np.array([[[0, 0], [1, 1]], [[0, 0], [0, 0]]])
  >>> segmentation_summary(labels, np.zeros_like(labels), num_classes=2)
  {'miou': 0.625, 'pixel_accuracy': 0.75}
  """
  num_classes = _check_num_classes(num_classes)
  if len(labels) != len(predictions):
    raise ValueError(f"`labels` and `predictions` must hold as many images, got "
                     f"{len(labels)} and {len(predictions)}.")
  if len(labels) == 0:
    raise ValueError("`labels` must hold at least one image.")
  per_image = [_image_scores(y, p, num_classes) for y, p in zip(labels, predictions)]
  return {
      "miou": math.fsum(m for m, _ in per_image) / len(per_image),
      "pixel_accuracy": math.fsum(a for _, a in per_image) / len(per_image),
  }
