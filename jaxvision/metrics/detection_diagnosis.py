"""Why a detector misses objects: anchor coverage, recall by group and a breakdown of misses.

Host-side NumPy (float64), the conventions of :mod:`jaxvision.metrics.detection` (``xyxy``
pixel boxes, one dict per image). These answer the questions of a detector that finds too
little:

* :func:`anchor_coverage`: can the anchors represent the ground truth at all? For every
  ground-truth box, the IoU of its best anchor and the number of anchors at or above a
  matching threshold (what a matcher like :func:`jaxvision.ops.match_anchors` turns into
  positives; the bipartite pass always adds the best anchor, so a box has at least one).
* :func:`ground_truth_found`: which ground-truth boxes a set of detections finds (greedy in
  decreasing score, same class, IoU at least a threshold, each detection used once), the
  basis of recall by class or by size.
* :func:`classify_misses`: for each box that is not found, the first reason in this order,
  from the network's dense outputs before suppression (``probs [A, C]`` with the background
  at 0, decoded boxes ``[A, 4]``):

  - ``"no_anchor"``: no decoded box overlaps it by ``iou_threshold`` and its best anchor's
    IoU is below ``match_iou`` (the anchors cannot represent it);
  - ``"mislocalized"``: no decoded box overlaps it by ``iou_threshold`` although an anchor
    does reach ``match_iou`` (the regression failed);
  - ``"suppressed"``: some decoded box overlapping it by ``iou_threshold`` has the right
    class as its best non-background class with probability ``>= score_threshold`` (a
    candidate existed, NMS or the output limit removed it; "candidate" is the class-agnostic
    NMS's notion, an anchor's best class only, also when the detector uses per-class NMS);
  - ``"wrong_class"``: a box overlapping it is a candidate of another class;
  - ``"background"``: boxes overlap it but none is a candidate (the background, or a class
    probability under the threshold, wins).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from jaxvision.metrics.detection import _as_dataset, _pairwise_iou

__all__ = ["anchor_coverage", "ground_truth_found", "classify_misses", "size_bucket",
           "MISS_REASONS"]

MISS_REASONS = ("no_anchor", "mislocalized", "suppressed", "wrong_class", "background")


def _boxes(x: Any, name: str) -> np.ndarray:
  arr = np.asarray(x, np.float64)
  if arr.ndim != 2 or arr.shape[-1] != 4:
    raise ValueError(f"`{name}` must be [N, 4] xyxy boxes, got shape {arr.shape}.")
  if not np.all(np.isfinite(arr)):
    raise ValueError(f"`{name}` holds non-finite values.")
  return arr


def _threshold(value: Any, name: str, *, low_open: bool = True) -> float:
  if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
    raise TypeError(f"`{name}` must be a float, got {value!r}.")
  v = float(value)
  if not (0.0 < v <= 1.0 if low_open else 0.0 <= v <= 1.0):
    raise ValueError(f"`{name}` must be in {'(0' if low_open else '[0'}, 1], got {v}.")
  return v


def anchor_coverage(anchors: Any, gt_boxes: Any, *, match_iou: float = 0.5
                    ) -> dict[str, np.ndarray]:
  """How well ``anchors [A, 4]`` cover ``gt_boxes [N, 4]`` (one image or many stacked).

  Returns ``{"best_iou": [N], "best_anchor": [N] int, "positives": [N] int}``: the IoU of
  each box's best anchor, that anchor's index, and the number of anchors with IoU ``>=
  match_iou`` (at least 1: the bipartite match; conflicts between boxes are not resolved).

  >>> cov = anchor_coverage([[0, 0, 10, 10], [0, 0, 20, 20]], [[0, 0, 10, 10]], match_iou=0.2)
  >>> cov["best_iou"].tolist(), cov["positives"].tolist()
  ([1.0], [2])
  """
  a = _boxes(anchors, "anchors")
  g = _boxes(gt_boxes, "gt_boxes")
  t = _threshold(match_iou, "match_iou")
  if len(a) == 0:
    raise ValueError("`anchors` is empty.")
  iou = _pairwise_iou(g, a)
  best = iou.argmax(axis=1) if len(g) else np.zeros((0,), np.int64)
  return {"best_iou": iou.max(axis=1) if len(g) else np.zeros((0,)),
          "best_anchor": best.astype(np.int64),
          "positives": np.maximum((iou >= t).sum(axis=1), 1).astype(np.int64)}


def ground_truth_found(predictions: Any, ground_truths: Any, *, iou_threshold: float = 0.5
                       ) -> list[np.ndarray]:
  """Per image, a bool per ground-truth box: found by a detection of its class.

  Detections are taken in decreasing score; each is paired with the box of its class that
  it overlaps most and finds it if that IoU is ``>= iou_threshold`` and the box is not found
  yet (a duplicate finds nothing, even when another box would do: VOC's matching, so the
  recall from this equals the last point of
  :func:`jaxvision.metrics.average_precision_voc`'s curve).
  """
  preds, gts = _as_dataset(predictions, ground_truths, scores=True)
  t = _threshold(iou_threshold, "iou_threshold")
  out = []
  for (pb, pc, ps), (gb, gc) in zip(preds, gts):
    found = np.zeros(len(gb), bool)
    if len(gb) and len(pb):
      iou = _pairwise_iou(pb, gb)
      for i in np.argsort(-ps, kind="stable"):
        cand = np.where(gc == pc[i], iou[i], -1.0)
        j = int(cand.argmax())
        if cand[j] >= t and not found[j]:
          found[j] = True
    out.append(found)
  return out


def classify_misses(probs: Any, boxes: Any, anchors: Any, gt_boxes: Any, gt_classes: Any,
                    found: Any, *, score_threshold: float, match_iou: float = 0.5,
                    iou_threshold: float = 0.5) -> list[str]:
  """The reason each ground-truth box of one image is missed (see the module notes).

  Args:
    probs: ``[A, C]`` class probabilities of every anchor, class 0 the background.
    boxes: ``[A, 4]`` the decoded box of every anchor.
    anchors: ``[A, 4]`` the anchors.
    gt_boxes: ``[N, 4]``; gt_classes: ``[N]`` (``1..C-1``).
    found: ``[N]`` bool, e.g. from :func:`ground_truth_found`.
    score_threshold: the class probability a candidate needs.
    match_iou: the matcher's threshold (for ``"no_anchor"``).
    iou_threshold: the IoU that counts as finding a box.

  Returns:
    One entry per box: ``"found"`` or one of :data:`MISS_REASONS`.
  """
  p = np.asarray(probs, np.float64)
  b, a, g = _boxes(boxes, "boxes"), _boxes(anchors, "anchors"), _boxes(gt_boxes, "gt_boxes")
  if p.ndim != 2 or p.shape[0] != len(b) or len(a) != len(b) or p.shape[1] < 2:
    raise ValueError(f"`probs` [A, C>=2], `boxes` and `anchors` [A, 4] must agree, got "
                     f"{p.shape}, {b.shape}, {a.shape}.")
  gc = np.asarray(gt_classes).astype(np.int64).reshape(-1)
  hit = np.asarray(found, bool).reshape(-1)
  if len(gc) != len(g) or len(hit) != len(g):
    raise ValueError(f"`gt_classes` ({len(gc)}) and `found` ({len(hit)}) need one entry per "
                     f"box of `gt_boxes` ({len(g)}).")
  s = _threshold(score_threshold, "score_threshold", low_open=False)
  m = _threshold(match_iou, "match_iou")
  t = _threshold(iou_threshold, "iou_threshold")
  if not len(g):
    return []
  cand_class = p[:, 1:].argmax(axis=1) + 1
  is_cand = p[:, 1:].max(axis=1) >= s
  overlap = _pairwise_iou(g, b) >= t
  anchor_best = _pairwise_iou(g, a).max(axis=1)
  reasons = []
  for k in range(len(g)):
    if hit[k]:
      reasons.append("found")
    elif not overlap[k].any():
      reasons.append("no_anchor" if anchor_best[k] < m else "mislocalized")
    elif np.any(overlap[k] & is_cand & (cand_class == gc[k])):
      reasons.append("suppressed")
    elif np.any(overlap[k] & is_cand):
      reasons.append("wrong_class")
    else:
      reasons.append("background")
  return reasons


def size_bucket(boxes: Any, image_height: float, edges: Sequence[float]) -> np.ndarray:
  """The bucket index of each box by its height over ``image_height``: ``i`` when
  ``edges[i-1] <= h < edges[i]`` (0 below ``edges[0]``, ``len(edges)`` at or above the
  last)."""
  b = _boxes(boxes, "boxes")
  return np.searchsorted(np.asarray(edges, np.float64), (b[:, 3] - b[:, 1]) / image_height,
                         side="right")
