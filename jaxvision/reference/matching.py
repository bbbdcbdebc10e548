"""NumPy oracles for anchor matching and box encoding: plain float64 textbook ports.

``match_anchors`` is d2l's ``assign_anchor_to_bbox`` written out literally: the full IoU
matrix (from the IoU oracle in ``jaxvision.reference.boxes``), a greedy loop that takes the
global arg-max of the whole matrix each step and blanks its row and column, then a
per-anchor threshold pass. ``encode_boxes`` / ``decode_boxes`` loop over the anchors one at a
time. NumPy only; single image (loop over a batch yourself).
"""

from __future__ import annotations

import math

import numpy as np

from jaxvision.reference.boxes import box_iou

__all__ = ["match_anchors", "encode_boxes", "decode_boxes"]

DECODE_CLIP = math.log(1000.0 / 16)


def match_anchors(anchors, gt_boxes, gt_valid, *, iou_threshold, bipartite=True):
  """Greedy bipartite + threshold matching of ``[A, 4]`` anchors to ``[G, 4]`` padded GTs.

  1. IoU matrix ``[A, G]``; columns of invalid GTs are blanked (-inf). A GT is invalid
     when ``gt_valid`` is False, or its box has a side ``<= 0`` or a non-finite coordinate.
  2. If ``bipartite``: ``min(#valid, A)`` times, take the arg-max of the whole matrix
     (``np.argmax`` on the flattened matrix: the first maximum in row-major order, i.e. the
     lowest anchor, then the lowest GT), assign that anchor to that GT, blank its row and
     column. Assigns even when the maximum is 0 (as d2l does).
  3. Every anchor not assigned in 2 whose best IoU over the valid GTs is
     ``>= iou_threshold`` takes the first GT attaining it.

  Returns:
    ``(matched [A] int64, -1 for background; matched_iou [A] float64)``, where a background
    anchor's ``matched_iou`` is its best IoU with any valid GT (0 if none).

  >>> match_anchors([[0, 0, 2, 2], [5, 5, 6, 6]], [[0, 0, 2, 3]], [True], iou_threshold=0.5)
  (array([ 0, -1]), array([0.66666667, 0.        ]))
  """
  anchors = np.asarray(anchors, np.float64).reshape(-1, 4)
  gt_boxes = np.asarray(gt_boxes, np.float64).reshape(-1, 4)
  gt_valid = np.asarray(gt_valid, bool).reshape(-1)
  with np.errstate(invalid="ignore"):
    gt_valid = (gt_valid & (gt_boxes[:, 2] > gt_boxes[:, 0]) & (gt_boxes[:, 3] > gt_boxes[:, 1])
                & np.isfinite(gt_boxes).all(axis=1))
  num_anchors, num_gt = len(anchors), len(gt_boxes)
  iou = box_iou(anchors, gt_boxes) if num_anchors and num_gt else np.zeros((num_anchors, num_gt))

  matched = np.full(num_anchors, -1, dtype=np.int64)
  matched_iou = np.zeros(num_anchors, dtype=np.float64)

  if bipartite:
    jaccard = iou.copy()
    jaccard[:, ~gt_valid] = -np.inf
    for _ in range(min(int(gt_valid.sum()), num_anchors)):
      flat = int(np.argmax(jaccard))
      anc, gt = divmod(flat, num_gt)
      matched[anc] = gt
      matched_iou[anc] = iou[anc, gt]
      jaccard[anc, :] = -np.inf
      jaccard[:, gt] = -np.inf

  valid_columns = np.flatnonzero(gt_valid)
  for anc in range(num_anchors):
    if matched[anc] >= 0 or len(valid_columns) == 0:
      continue
    row = iou[anc, valid_columns]
    best_gt = valid_columns[np.argmax(row)]  # np.argmax: the first maximum
    matched_iou[anc] = iou[anc, best_gt]
    if iou[anc, best_gt] >= iou_threshold:
      matched[anc] = best_gt
  return matched, matched_iou


def encode_boxes(gt, anchors, *, variances=(0.1, 0.2)) -> np.ndarray:
  """Offsets of ``[A, 4]`` GT boxes w.r.t. ``[A, 4]`` anchors, one anchor at a time.

  ``((cx_g - cx_a) / w_a / v0, (cy_g - cy_a) / h_a / v0, log(w_g / w_a) / v1,
  log(h_g / h_a) / v1)``, with ``w_g / w_a`` and ``h_g / h_a`` clamped at the smallest
  positive normal float32 before the log; ``variances=None``: ``gt - anchors``.

  >>> encode_boxes([[1, 2, 5, 4]], [[0, 0, 4, 4]]).round(4).tolist()
  [[2.5, 2.5, 0.0, -3.4657]]
  """
  gt = np.asarray(gt, np.float64).reshape(-1, 4)
  anchors = np.asarray(anchors, np.float64).reshape(-1, 4)
  if variances is None:
    return gt - anchors
  v0, v1 = variances
  tiny = float(np.finfo(np.float32).tiny)
  out = np.zeros((len(gt), 4))
  for k, ((gx1, gy1, gx2, gy2), (ax1, ay1, ax2, ay2)) in enumerate(zip(gt, anchors)):
    wa, ha = ax2 - ax1, ay2 - ay1
    out[k] = (((gx1 + gx2) / 2 - (ax1 + ax2) / 2) / wa / v0,
              ((gy1 + gy2) / 2 - (ay1 + ay2) / 2) / ha / v0,
              math.log(max((gx2 - gx1) / wa, tiny)) / v1,
              math.log(max((gy2 - gy1) / ha, tiny)) / v1)
  return out


def decode_boxes(offsets, anchors, *, variances=(0.1, 0.2)) -> np.ndarray:
  """Boxes from ``[A, 4]`` offsets w.r.t. ``[A, 4]`` anchors (inverse of ``encode_boxes``).

  The log-scales are clamped at ``log(1000 / 16)`` before ``exp``.

  >>> decode_boxes([[2.5, 2.5, 0.0, math.log(0.5) / 0.2]], [[0, 0, 4, 4]]).round(6).tolist()
  [[1.0, 2.0, 5.0, 4.0]]
  """
  offsets = np.asarray(offsets, np.float64).reshape(-1, 4)
  anchors = np.asarray(anchors, np.float64).reshape(-1, 4)
  if variances is None:
    return anchors + offsets
  v0, v1 = variances
  out = np.zeros((len(offsets), 4))
  for k, ((dx, dy, dw, dh), (ax1, ay1, ax2, ay2)) in enumerate(zip(offsets, anchors)):
    wa, ha = ax2 - ax1, ay2 - ay1
    cx = (ax1 + ax2) / 2 + dx * v0 * wa
    cy = (ay1 + ay2) / 2 + dy * v0 * ha
    w = wa * math.exp(min(dw * v1, DECODE_CLIP))
    h = ha * math.exp(min(dh * v1, DECODE_CLIP))
    out[k] = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
  return out
