"""NumPy oracles for box geometry: plain float64 ports of the textbook formulas.

Each function here is the slow, obviously-correct version of an op in
``jaxvision.ops.boxes``: the pairwise functions loop over the boxes of the first set and
evaluate the formula for one box against every box of the second set, written out term by
term as in the papers. They import NumPy only, so they share no code with what they check.

Conventions (the same contract as the ops):

* Boxes are ``xyxy``. Width and height are clamped at 0, so a box with zero or negative
  width or height has area 0 and IoU 0 with everything (never NaN).
* Every quotient whose denominator is 0 is defined as 0: IoU when the union is 0, the GIoU
  penalty when the enclosing area is 0, the DIoU penalty when the enclosing diagonal is 0;
  the CIoU aspect term ``v`` is 0 unless both heights are positive, and ``alpha`` is 0 when
  ``v`` is 0.
* A pair with a NaN or infinite coordinate in either box is NaN, for every function.
* Results are float64; the pairwise functions take ``[N, 4]`` and ``[M, 4]`` and return
  ``[N, M]`` (no batch dimensions: loop over a batch yourself).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "box_convert", "box_area", "box_iou", "generalized_box_iou", "distance_box_iou",
    "complete_box_iou",
]


def _as_boxes(boxes, name: str, *, matrix: bool = True) -> np.ndarray:
  arr = np.asarray(boxes, dtype=np.float64)
  if arr.shape[-1:] != (4,) or (matrix and arr.ndim != 2):
    want = "[N, 4]" if matrix else "[..., 4]"
    raise ValueError(f"`{name}` must have shape {want}, got {arr.shape}.")
  return arr


def box_convert(boxes, *, in_fmt: str, out_fmt: str) -> np.ndarray:
  """Converts ``[..., 4]`` boxes between ``xyxy``, ``xywh`` and ``cxcywh``, in float64.

  >>> box_convert([[10, 20, 30, 60]], in_fmt="xyxy", out_fmt="cxcywh").tolist()
  [[20.0, 40.0, 20.0, 40.0]]
  """
  formats = ("xyxy", "xywh", "cxcywh")
  if in_fmt not in formats or out_fmt not in formats:
    raise ValueError(f"formats must be in {formats}, got {in_fmt!r} -> {out_fmt!r}.")
  b = _as_boxes(boxes, "boxes", matrix=False)
  out = np.empty_like(b)
  for idx in np.ndindex(b.shape[:-1]):
    p, q, r, s = b[idx]
    # First to corners.
    if in_fmt == "xyxy":
      x1, y1, x2, y2 = p, q, r, s
    elif in_fmt == "xywh":
      x1, y1, x2, y2 = p, q, p + r, q + s
    else:
      x1, y1, x2, y2 = p - r / 2, q - s / 2, p + r / 2, q + s / 2
    # Then to the requested format.
    if out_fmt == "xyxy":
      out[idx] = (x1, y1, x2, y2)
    elif out_fmt == "xywh":
      out[idx] = (x1, y1, x2 - x1, y2 - y1)
    else:
      out[idx] = ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)
  return out


def box_area(boxes) -> np.ndarray:
  """``max(x2 - x1, 0) * max(y2 - y1, 0)`` for ``[..., 4]`` boxes, in float64.

  >>> box_area([[0, 0, 2, 3], [5, 5, 4, 9]]).tolist()
  [6.0, 0.0]
  """
  b = _as_boxes(boxes, "boxes", matrix=False)
  return np.maximum(b[..., 2] - b[..., 0], 0.0) * np.maximum(b[..., 3] - b[..., 1], 0.0)


def _pairwise(boxes1, boxes2, row_fn) -> np.ndarray:
  """``out[i] = row_fn(boxes1[i], boxes2)``: one box against all of ``boxes2`` per row."""
  a = _as_boxes(boxes1, "boxes1")
  b = _as_boxes(boxes2, "boxes2")
  out = np.zeros((len(a), len(b)), dtype=np.float64)
  finite_a, finite_b = np.isfinite(a).all(axis=1), np.isfinite(b).all(axis=1)
  with np.errstate(invalid="ignore", over="ignore"):
    for i in range(len(a)):
      out[i] = row_fn(a[i], b)
  out[~(finite_a[:, None] & finite_b[None, :])] = np.nan
  return out


def _div0(num, den):
  """``num / den`` where ``den > 0``, else 0 (elementwise)."""
  num, den = np.broadcast_arrays(np.asarray(num, np.float64), np.asarray(den, np.float64))
  out = np.zeros(num.shape, dtype=np.float64)
  np.divide(num, den, out=out, where=den > 0)
  return out


def _iou_row(box, others):
  """IoU of one box with each of ``others`` (and the union areas)."""
  x1, y1, x2, y2 = box
  inter_w = np.maximum(np.minimum(x2, others[:, 2]) - np.maximum(x1, others[:, 0]), 0.0)
  inter_h = np.maximum(np.minimum(y2, others[:, 3]) - np.maximum(y1, others[:, 1]), 0.0)
  inter = inter_w * inter_h
  area = max(x2 - x1, 0.0) * max(y2 - y1, 0.0)
  union = area + box_area(others) - inter
  return _div0(inter, union), union


def _diou_row(box, others):
  x1, y1, x2, y2 = box
  iou, _ = _iou_row(box, others)
  # rho: distance between the centres; c: diagonal of the smallest enclosing box.
  rho2 = (((others[:, 0] + others[:, 2]) / 2 - (x1 + x2) / 2) ** 2
          + ((others[:, 1] + others[:, 3]) / 2 - (y1 + y2) / 2) ** 2)
  c2 = ((np.maximum(x2, others[:, 2]) - np.minimum(x1, others[:, 0])) ** 2
        + (np.maximum(y2, others[:, 3]) - np.minimum(y1, others[:, 1])) ** 2)
  return iou - _div0(rho2, c2), iou


def box_iou(boxes1, boxes2) -> np.ndarray:
  """Pairwise IoU ``inter / (area1 + area2 - inter)`` (0 where the union is 0), in float64.

  Args:
    boxes1: ``[N, 4]`` ``xyxy`` boxes.
    boxes2: ``[M, 4]`` ``xyxy`` boxes.

  Returns:
    ``[N, M]`` float64 IoU matrix.

  >>> box_iou([[0, 0, 1, 1]], [[0.5, 0, 1.5, 1], [2, 2, 2, 3]]).round(4).tolist()
  [[0.3333, 0.0]]
  """
  return _pairwise(boxes1, boxes2, lambda box, others: _iou_row(box, others)[0])


def generalized_box_iou(boxes1, boxes2) -> np.ndarray:
  """Pairwise GIoU ``IoU - (area_C - union) / area_C`` (penalty 0 where ``area_C`` is 0).

  ``C`` is the smallest box enclosing both boxes, from the smaller ``x1, y1`` to the larger
  ``x2, y2`` (sides clamped at 0).

  >>> generalized_box_iou([[0, 0, 1, 1]], [[2, 0, 3, 1]]).round(4).tolist()
  [[-0.3333]]
  """
  def row(box, others):
    x1, y1, x2, y2 = box
    iou, union = _iou_row(box, others)
    cw = np.maximum(np.maximum(x2, others[:, 2]) - np.minimum(x1, others[:, 0]), 0.0)
    ch = np.maximum(np.maximum(y2, others[:, 3]) - np.minimum(y1, others[:, 1]), 0.0)
    enclosing = cw * ch
    return iou - _div0(enclosing - union, enclosing)
  return _pairwise(boxes1, boxes2, row)


def distance_box_iou(boxes1, boxes2) -> np.ndarray:
  """Pairwise DIoU ``IoU - rho^2 / c^2`` (penalty 0 where ``c`` is 0).

  ``rho`` is the distance between the centres, ``c`` the diagonal of the enclosing box.

  >>> distance_box_iou([[0, 0, 2, 2]], [[1, 0, 3, 2]]).round(4).tolist()
  [[0.2564]]
  """
  return _pairwise(boxes1, boxes2, lambda box, others: _diou_row(box, others)[0])


def complete_box_iou(boxes1, boxes2) -> np.ndarray:
  """Pairwise CIoU ``DIoU - alpha v``.

  ``v = 4 / pi^2 (atan(w2 / h2) - atan(w1 / h1))^2`` when both heights are positive, else 0
  (sides clamped at 0); ``alpha = v / (1 - IoU + v)`` when ``v > 0``, else 0.

  >>> complete_box_iou([[0, 0, 2, 2]], [[0, 0, 4, 2]]).round(4).tolist()
  [[0.4468]]
  """
  def row(box, others):
    x1, y1, x2, y2 = box
    diou, iou = _diou_row(box, others)
    w1, h1 = max(x2 - x1, 0.0), max(y2 - y1, 0.0)
    w2 = np.maximum(others[:, 2] - others[:, 0], 0.0)
    h2 = np.maximum(others[:, 3] - others[:, 1], 0.0)
    both_high = (h1 > 0) & (h2 > 0)
    atan1 = math.atan(w1 / h1) if h1 > 0 else 0.0
    atan2 = np.arctan(_div0(w2, h2))
    v = np.where(both_high, 4 / math.pi**2 * (atan2 - atan1) ** 2, 0.0)
    alpha = _div0(v, 1 - iou + v)  # 0 where v is 0 (then 1 - iou + v = 1 - iou >= 0)
    return diou - alpha * v
  return _pairwise(boxes1, boxes2, row)
