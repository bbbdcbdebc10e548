"""Where a segmenter's wrong pixels are: on object boundaries or inside, and of which kind.

A per-class IoU says *how much* is wrong; these functions say *what*. Every wrong pixel (true
class ``t`` != predicted ``p``) is of one kind, with class 0 the background:

* ``"missed"``: a foreground pixel predicted as background (``t > 0, p == 0``);
* ``"false_positive"``: a background pixel predicted as foreground (``t == 0, p > 0``);
* ``"wrong_class"``: a foreground pixel predicted as another foreground class (``t, p > 0``),

and lies either on the **boundary band** -- within ``boundary_width`` pixels (Chebyshev
distance, so the band is ``2 * boundary_width`` pixels wide around every edge) of a pixel of
another true class -- or in the **interior**. Boundary errors are what a model with too coarse
an output (or labels that are ambiguous at anti-aliased edges) makes; interior errors are
recognition errors (a 5 read as a 6) or whole objects missed.

:func:`segmentation_errors` counts the six cells over a data set and gives the per-class IoU
with the band left out (how much the boundaries cost); :func:`object_confusion` looks at every
connected ground-truth object and names the class most of it was predicted as (how often a
*whole* digit is read as another). Everything runs on the host in NumPy/SciPy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from jaxvision import _checks
from jaxvision.metrics import segmentation as seg

__all__ = ["ERROR_KINDS", "boundary_band", "segmentation_errors", "object_confusion"]

ERROR_KINDS = ("missed", "false_positive", "wrong_class")


def _masks(labels: Any, predictions: Any, num_classes: Any) -> tuple[np.ndarray, np.ndarray, int]:
  c = _checks.check_int(num_classes, "num_classes", minimum=2)
  labels = seg._as_host_mask(labels, "labels")  # pylint: disable=protected-access
  predictions = seg._as_host_mask(predictions, "predictions")  # pylint: disable=protected-access
  seg._check_same_shape(labels, predictions)  # pylint: disable=protected-access
  if labels.ndim not in (2, 3):
    raise ValueError(f"`labels` must be one [H, W] mask or [N, H, W] masks, got shape "
                     f"{labels.shape}.")
  if labels.size == 0:
    raise ValueError("`labels` must not be empty.")
  seg._check_range(labels, "labels", c)  # pylint: disable=protected-access
  seg._check_range(predictions, "predictions", c)  # pylint: disable=protected-access
  if labels.ndim == 2:
    labels, predictions = labels[None], predictions[None]
  return labels.astype(np.int64), predictions.astype(np.int64), c


def boundary_band(labels: Any, *, width: int = 1) -> np.ndarray:
  """Pixels within ``width`` pixels (Chebyshev distance) of a pixel of another class.

  Args:
    labels: ``[H, W]`` or ``[N, H, W]`` integer class masks.
    width: band half-width in pixels, ``>= 1``. Each side of an edge gets ``width`` pixels.

  Returns:
    A bool array of ``labels``' shape; image borders are not edges.

  >>> boundary_band(np.array([[0, 0, 0, 1]])).astype(int).tolist()
  [[0, 0, 1, 1]]
  """
  width = _checks.check_int(width, "width", minimum=1)
  labels = seg._as_host_mask(labels, "labels")  # pylint: disable=protected-access
  if labels.ndim not in (2, 3):
    raise ValueError(f"`labels` must be one [H, W] mask or [N, H, W] masks, got shape "
                     f"{labels.shape}.")
  lab = labels[None] if labels.ndim == 2 else labels
  size = (1, 2 * width + 1, 2 * width + 1)
  # A pixel is in the band when the largest and smallest labels of its window differ.
  hi = ndimage.maximum_filter(lab, size=size, mode="nearest")
  lo = ndimage.minimum_filter(lab, size=size, mode="nearest")
  band = hi != lo
  return band[0] if labels.ndim == 2 else band


def segmentation_errors(labels: Any, predictions: Any, *, num_classes: int,
                        boundary_width: int = 1) -> dict[str, Any]:
  """Wrong pixels by kind (missed / false positive / wrong class) and place (boundary band
  or interior), and the IoU the boundary band costs.

  Args:
    labels: ``[H, W]`` or ``[N, H, W]`` ground-truth classes in ``[0, num_classes)``, class
      0 the background.
    predictions: the predicted classes, same shape.
    num_classes: ``C >= 2``.
    boundary_width: half-width of the boundary band (:func:`boundary_band`).

  Returns:
    ``{"pixels", "errors", "band_pixels"}`` (counts); ``"counts": {kind: {"boundary": n,
    "interior": n}}`` for the kinds in :data:`ERROR_KINDS` (the six counts add up to
    ``errors``); ``"per_class_iou"`` and ``"per_class_iou_without_band"`` (``[C]``, None for
    a class in neither mask), ``"foreground_miou"`` and ``"foreground_miou_without_band"``
    (means over the classes ``1..C-1`` that occur); ``"confusion"`` (the ``[C, C]``
    confusion matrix, a list of lists, rows the truth).

  >>> y = np.array([[0, 0, 1, 1]]); p = np.array([[0, 1, 1, 2]])
  >>> e = segmentation_errors(y, p, num_classes=3)
  >>> e["counts"]["false_positive"], e["counts"]["wrong_class"]
  ({'boundary': 1, 'interior': 0}, {'boundary': 0, 'interior': 1})
  """
  labels, predictions, c = _masks(labels, predictions, num_classes)
  band = boundary_band(labels, width=boundary_width)
  wrong = labels != predictions
  kinds = {"missed": (labels > 0) & (predictions == 0),
           "false_positive": (labels == 0) & (predictions > 0),
           "wrong_class": (labels > 0) & (predictions > 0)}
  counts = {k: {"boundary": int(np.sum(m & wrong & band)),
                "interior": int(np.sum(m & wrong & ~band))} for k, m in kinds.items()}
  cm = seg.confusion_matrix(labels, predictions, num_classes=c)
  inner = ~band
  cm_inner = (seg.confusion_matrix(labels[inner], predictions[inner], num_classes=c)
              if inner.any() else np.zeros((c, c), np.int64))

  def ious(m):
    tp = np.diag(m)
    union = m.sum(0) + m.sum(1) - tp
    return [float(t / u) if u > 0 else None for t, u in zip(tp, union)]

  def fg_mean(values):
    present = [v for v in values[1:] if v is not None]
    return float(np.mean(present)) if present else None

  per_class, per_class_inner = ious(cm), ious(cm_inner)
  return {"pixels": int(labels.size), "errors": int(wrong.sum()),
          "band_pixels": int(band.sum()), "counts": counts,
          "per_class_iou": per_class, "per_class_iou_without_band": per_class_inner,
          "foreground_miou": fg_mean(per_class),
          "foreground_miou_without_band": fg_mean(per_class_inner),
          "confusion": cm.tolist()}


def object_confusion(labels: Any, predictions: Any, *, num_classes: int,
                     min_pixels: int = 1) -> np.ndarray:
  """The class each ground-truth object was mostly predicted as.

  An object is a connected component (8-connectivity) of one foreground class in ``labels``
  (touching objects of the same class merge into one). Its predicted class is the most
  frequent foreground class among its pixels' predictions, or background (0) when none of
  its pixels is predicted as foreground; ties go to the smaller class index.

  Args:
    labels: ``[H, W]`` or ``[N, H, W]`` ground-truth classes, class 0 the background.
    predictions: the predicted classes, same shape.
    num_classes: ``C >= 2``.
    min_pixels: objects with fewer pixels are not counted.

  Returns:
    ``[C, C]`` int64 counts of objects, ``[t, p]`` = objects of class ``t`` mostly predicted
    as ``p``; row 0 stays zero.

  >>> y = np.array([[1, 1, 0, 2, 2]]); p = np.array([[1, 2, 0, 0, 0]])
  >>> object_confusion(y, p, num_classes=3)[1:].tolist()
  [[0, 1, 0], [1, 0, 0]]
  """
  labels, predictions, c = _masks(labels, predictions, num_classes)
  min_pixels = _checks.check_int(min_pixels, "min_pixels", minimum=1)
  out = np.zeros((c, c), np.int64)
  structure = np.ones((3, 3), bool)
  for lab, pred in zip(labels, predictions):
    for cls in np.unique(lab):
      if cls == 0:
        continue
      comp, n = ndimage.label(lab == cls, structure=structure)
      if n == 0:
        continue
      # Per component: counts of each predicted class (one bincount over component x class).
      ids = comp[comp > 0] - 1
      hist = np.bincount(ids * c + pred[comp > 0], minlength=n * c).reshape(n, c)
      sizes = hist.sum(1)
      fg = hist[:, 1:]
      best = np.where(fg.sum(1) > 0, np.argmax(fg, axis=1) + 1, 0)
      for b in best[sizes >= min_pixels]:
        out[cls, b] += 1
  return out
