"""NumPy oracles for non-maximum suppression: plain float64 ports of the textbook algorithms.

Each function here is the slow, obviously-correct version of an op in ``jaxvision.ops.nms``:
Python loops over the selected boxes, one IoU row per step, no tricks. They exist to be read
and to check the fast ops against (tests, benchmarks); they import NumPy only, so they share
no code with what they check.

Conventions (the same contract as the ops):

* Boxes are ``xyxy`` (``x1, y1, x2, y2``). Width and height are clipped at 0, so a box with
  zero or negative width or height has area 0, and its IoU with anything is 0 (never NaN).
* Precedence: higher score first; among equal scores the lower index first.
* NaN scores are never selected.
* Indices are ``int64`` arrays in selection order; scores are ``float64``.
* One image per call, no padding: the oracle for an op's ragged batch (``valid=``) is this
  call on each image's real rows, with indices mapped back to padded positions.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "box_iou", "nms", "soft_nms", "soft_nms_live_scores", "batched_nms", "multiclass_nms",
    "book_nms",
]


def _as_boxes(boxes, name: str = "boxes") -> np.ndarray:
  arr = np.asarray(boxes, dtype=np.float64)
  if arr.ndim != 2 or arr.shape[1] != 4:
    raise ValueError(f"`{name}` must have shape [N, 4], got {arr.shape}.")
  return arr


def _as_scores(scores, n: int, name: str = "scores") -> np.ndarray:
  arr = np.asarray(scores, dtype=np.float64)
  if arr.shape != (n,):
    raise ValueError(f"`{name}` must have shape ({n},), got {arr.shape}.")
  return arr


def box_iou(boxes1, boxes2) -> np.ndarray:
  """Pairwise IoU of two sets of ``xyxy`` boxes, in float64.

  ``inter = max(0, min(x2) - max(x1)) * max(0, min(y2) - max(y1))``,
  ``area = max(0, w) * max(0, h)``, ``union = area1 + area2 - inter`` and
  ``iou = inter / union`` where ``union > 0``, else 0.

  Args:
    boxes1: ``[N, 4]`` boxes.
    boxes2: ``[M, 4]`` boxes.

  Returns:
    ``[N, M]`` float64 IoU matrix, every entry in ``[0, 1]``.

  >>> box_iou([[0, 0, 2, 2]], [[1, 1, 3, 3], [0, 0, 0, 5], [2, 2, 0, 0]]).round(4).tolist()
  [[0.1429, 0.0, 0.0]]
  """
  a = _as_boxes(boxes1, "boxes1")
  b = _as_boxes(boxes2, "boxes2")
  iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
  ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
  inter = np.maximum(iw, 0.0) * np.maximum(ih, 0.0)
  area_a = np.maximum(a[:, 2] - a[:, 0], 0.0) * np.maximum(a[:, 3] - a[:, 1], 0.0)
  area_b = np.maximum(b[:, 2] - b[:, 0], 0.0) * np.maximum(b[:, 3] - b[:, 1], 0.0)
  union = area_a[:, None] + area_b[None, :] - inter
  positive = union > 0.0
  return np.where(positive, inter / np.where(positive, union, 1.0), 0.0)


def _precedence(scores: np.ndarray, candidates: np.ndarray) -> np.ndarray:
  """Indices of the candidates by decreasing score, ties to the lower index."""
  idx = np.flatnonzero(candidates)
  # A stable sort on the negated scores keeps equal scores in index order.
  return idx[np.argsort(-scores[idx], kind="stable")]


def nms(
    boxes,
    scores,
    *,
    iou_threshold: float,
    max_output_size: int | None = None,
    score_threshold: float = -math.inf,
) -> np.ndarray:
  """Textbook greedy NMS, selecting exactly what ``torchvision.ops.nms`` selects.

  Candidates are the boxes with ``score > score_threshold`` (NaN never is). Visit them by
  decreasing score (ties: lower index first); keep a box unless an already kept box has IoU
  ``> iou_threshold`` with it; stop after ``max_output_size`` kept boxes.

  Args:
    boxes: ``[N, 4]`` ``xyxy`` boxes.
    scores: ``[N]`` scores.
    iou_threshold: suppress when IoU is strictly greater than this.
    max_output_size: at most this many boxes are kept (None: no limit).
    score_threshold: only boxes scoring strictly above this are candidates.

  Returns:
    ``[K]`` int64 indices of the kept boxes in selection order.

  >>> nms([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], [0.9, 0.8, 0.7],
  ...     iou_threshold=0.5).tolist()
  [0, 2]
  """
  boxes = _as_boxes(boxes)
  scores = _as_scores(scores, len(boxes))
  with np.errstate(invalid="ignore"):
    candidates = scores > score_threshold  # False for NaN
  suppressed = np.zeros(len(boxes), dtype=bool)
  keep: list[int] = []
  for i in _precedence(scores, candidates):
    if max_output_size is not None and len(keep) >= max_output_size:
      break
    if suppressed[i]:
      continue
    keep.append(int(i))
    suppressed |= box_iou(boxes[i:i + 1], boxes)[0] > iou_threshold
  return np.asarray(keep, dtype=np.int64)


def soft_nms(
    boxes,
    scores,
    *,
    sigma: float = 0.5,
    iou_threshold: float = 0.3,
    method: str = "gaussian",
    score_threshold: float = 0.001,
    max_output_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
  """Soft-NMS (Bodla et al., 2017): overlapping boxes have their scores decayed, not removed.

  A box is *live* from the start if its score is ``>= score_threshold`` (not NaN). Repeat:
  select the live box with the highest current score (ties: lower index), record that score,
  and multiply the current score of every other live box ``j`` by

  * ``exp(-IoU(i, j)^2 / sigma)`` for ``method="gaussian"`` (``iou_threshold`` unused), or
  * ``1 - IoU(i, j)`` if ``IoU(i, j) > iou_threshold`` (else 1) for ``method="linear"``
    (the paper writes ``>= N_t``; this contract is strict, like greedy NMS);

  then a live box whose current score is now ``< score_threshold`` stops being live. Stop when
  nothing is live or ``max_output_size`` boxes are selected.

  For non-negative scores the recorded scores never exceed the original ones and never
  increase along the selection: every decay factor is in ``[0, 1]`` and the next selection is
  the maximum of values that were all at most the current one.

  Args:
    boxes: ``[N, 4]`` ``xyxy`` boxes.
    scores: ``[N]`` scores (confidences, expected non-negative).
    sigma: > 0, the Gaussian width.
    iou_threshold: the linear method's overlap threshold.
    method: ``"gaussian"`` or ``"linear"``.
    score_threshold: boxes whose current score falls below this are discarded.
    max_output_size: at most this many boxes are selected (None: no limit).

  Returns:
    ``(indices [K] int64, scores [K] float64)``: the selection order and the score each box
    had when it was selected.

  >>> idx, sc = soft_nms([[0, 0, 10, 10], [0, 0, 10, 5], [20, 20, 30, 30]], [0.9, 0.8, 0.7])
  >>> idx.tolist(), sc.round(4).tolist()
  ([0, 2, 1], [0.9, 0.7, 0.4852])
  """
  if method not in ("gaussian", "linear"):
    raise ValueError(f"`method` must be 'gaussian' or 'linear', got {method!r}.")
  if not sigma > 0:
    raise ValueError(f"`sigma` must be > 0, got {sigma!r}.")
  boxes = _as_boxes(boxes)
  current = _as_scores(scores, len(boxes)).copy()
  with np.errstate(invalid="ignore"):
    live = current >= score_threshold  # False for NaN
  selected: list[int] = []
  selected_scores: list[float] = []
  while live.any():
    if max_output_size is not None and len(selected) >= max_output_size:
      break
    live_idx = np.flatnonzero(live)
    i = int(live_idx[np.argmax(current[live_idx])])  # argmax: first of equal maxima
    selected.append(i)
    selected_scores.append(float(current[i]))
    live[i] = False
    iou = box_iou(boxes[i:i + 1], boxes)[0]
    if method == "gaussian":
      decay = np.exp(-(iou * iou) / sigma)
    else:
      decay = np.where(iou > iou_threshold, 1.0 - iou, 1.0)
    with np.errstate(invalid="ignore"):
      current = np.where(live, current * decay, current)
      live &= current >= score_threshold
  return np.asarray(selected, dtype=np.int64), np.asarray(selected_scores, dtype=np.float64)


def soft_nms_live_scores(
    boxes,
    scores,
    selected,
    *,
    sigma: float = 0.5,
    iou_threshold: float = 0.3,
    method: str = "gaussian",
    score_threshold: float = 0.001,
) -> np.ndarray:
  """The current scores in :func:`soft_nms` after the boxes ``selected`` were selected.

  For checking an implementation that computes in lower precision: where its selection first
  departs from the oracle's, these are the float64 scores it was choosing between. Decays
  are multiplicative and depend only on the selected boxes, so the current score of box
  ``j`` is ``scores[j]`` times the product of the decays from each selected box; for
  non-negative scores a box is live iff that is ``>= score_threshold``.

  Args:
    boxes: ``[N, 4]`` ``xyxy`` boxes.
    scores: ``[N]`` initial scores (non-negative).
    selected: ``[S]`` indices selected so far, in order.
    sigma, iou_threshold, method, score_threshold: as in :func:`soft_nms`.

  Returns:
    ``[N]`` float64: the current score of every live box, ``-inf`` for the others (never
    live, discarded, or already selected).

  >>> soft_nms_live_scores([[0, 0, 10, 10], [0, 0, 10, 5]], [0.9, 0.8], [0]).round(4).tolist()
  [-inf, 0.4852]
  """
  boxes = _as_boxes(boxes)
  current = _as_scores(scores, len(boxes)).copy()
  selected = np.asarray(selected, dtype=np.int64).reshape(-1)
  with np.errstate(invalid="ignore"):
    live = current >= score_threshold
  for i in selected:
    iou = box_iou(boxes[i:i + 1], boxes)[0]
    if method == "gaussian":
      current = current * np.exp(-(iou * iou) / sigma)
    else:
      current = current * np.where(iou > iou_threshold, 1.0 - iou, 1.0)
  with np.errstate(invalid="ignore"):
    live &= current >= score_threshold
  live[selected] = False
  return np.where(live, current, -np.inf)


def batched_nms(
    boxes,
    scores,
    class_ids,
    *,
    iou_threshold: float,
    max_output_size: int | None = None,
    score_threshold: float = -math.inf,
) -> np.ndarray:
  """Class-aware greedy NMS: :func:`nms` run on each class separately, results merged.

  The kept boxes of all classes are merged by decreasing score (ties: lower index first) and
  truncated to ``max_output_size``. No coordinate-offset trick: each class is its own loop.

  Args:
    boxes: ``[N, 4]`` ``xyxy`` boxes.
    scores: ``[N]`` scores.
    class_ids: ``[N]`` integer class of each box.
    iou_threshold: suppress (within a class) when IoU is strictly greater than this.
    max_output_size: at most this many boxes are returned (None: no limit).
    score_threshold: only boxes scoring strictly above this are candidates.

  Returns:
    ``[K]`` int64 indices of the kept boxes, by decreasing score.

  >>> batched_nms([[0, 0, 10, 10], [1, 1, 11, 11], [1, 1, 11, 11]], [0.9, 0.8, 0.7], [0, 0, 1],
  ...             iou_threshold=0.5).tolist()
  [0, 2]
  """
  boxes = _as_boxes(boxes)
  scores = _as_scores(scores, len(boxes))
  class_ids = np.asarray(class_ids)
  if class_ids.shape != scores.shape:
    raise ValueError(f"`class_ids` must have shape {scores.shape}, got {class_ids.shape}.")
  kept: list[int] = []
  for c in np.unique(class_ids):
    members = np.flatnonzero(class_ids == c)
    keep_c = nms(boxes[members], scores[members], iou_threshold=iou_threshold,
                 score_threshold=score_threshold)
    kept.extend(int(members[k]) for k in keep_c)
  kept_arr = np.asarray(kept, dtype=np.int64)
  merged = _precedence(scores, np.isin(np.arange(len(boxes)), kept_arr))
  if max_output_size is not None:
    merged = merged[:max_output_size]
  return merged.astype(np.int64)


def multiclass_nms(
    boxes,
    class_scores,
    *,
    iou_threshold: float,
    score_threshold: float = -math.inf,
    max_output_size_per_class: int,
    max_total_size: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
  """Per-class NMS over shared boxes, merged: TF's ``combined_non_max_suppression``.

  Semantics of ``tf.image.combined_non_max_suppression(..., pad_per_class=False,
  clip_boxes=False)`` for one image with boxes shared across classes (``q = 1``), as checked
  against TF 2.21: for each class ``c``, :func:`nms` over the boxes with
  ``class_scores[:, c] > score_threshold`` (strict, like TF; NaN never) keeps at most
  ``max_output_size_per_class`` boxes (suppressing at ``IoU > iou_threshold``, like TF); all
  kept ``(box, score, class)`` triples are then ordered by decreasing score and the first
  ``max_total_size`` are returned.

  Ties are defined here, not by TF: equal scores go to the lower box index within a class
  and, across classes, to the lower class id and then the class's selection order. TF orders
  equal scores arbitrarily (a score-only heap per class and an unstable sort for the merge;
  with many ties even its within-class suppression can differ from this).

  Args:
    boxes: ``[N, 4]`` ``xyxy`` boxes shared by all classes.
    class_scores: ``[N, C]`` per-class scores.
    iou_threshold: per-class suppression when IoU is strictly greater than this.
    score_threshold: a (box, class) pair is a candidate only if its score is strictly above
      (default ``-inf``, TF's).
    max_output_size_per_class: at most this many boxes kept per class.
    max_total_size: number of output slots ``T``.

  Returns:
    ``(boxes [T, 4] float64, scores [T] float64, classes [T] int32, num_valid)``: the first
    ``num_valid`` rows are the detections, the rest are zeros (TF pads classes with 0 too,
    as float32; here they are int32).

  >>> b, s, c, n = multiclass_nms([[0, 0, 10, 10], [1, 1, 11, 11]], [[0.9, 0.1], [0.8, 0.7]],
  ...                             iou_threshold=0.5, score_threshold=0.05,
  ...                             max_output_size_per_class=10, max_total_size=4)
  >>> s.tolist(), c.tolist(), n
  ([0.9, 0.7, 0.0, 0.0], [0, 1, 0, 0], 2)
  """
  boxes = _as_boxes(boxes)
  class_scores = np.asarray(class_scores, dtype=np.float64)
  if class_scores.ndim != 2 or class_scores.shape[0] != len(boxes):
    raise ValueError(
        f"`class_scores` must have shape ({len(boxes)}, C), got {class_scores.shape}.")
  entries = []  # (score, class, rank within class, box index)
  for c in range(class_scores.shape[1]):
    keep_c = nms(boxes, class_scores[:, c], iou_threshold=iou_threshold,
                 score_threshold=score_threshold, max_output_size=max_output_size_per_class)
    entries.extend((class_scores[i, c], c, rank, int(i)) for rank, i in enumerate(keep_c))
  entries.sort(key=lambda e: (-e[0], e[1], e[2]))
  entries = entries[:max_total_size]
  out_boxes = np.zeros((max_total_size, 4), dtype=np.float64)
  out_scores = np.zeros((max_total_size,), dtype=np.float64)
  out_classes = np.zeros((max_total_size,), dtype=np.int32)
  for slot, (score, c, _, i) in enumerate(entries):
    out_boxes[slot] = boxes[i]
    out_scores[slot] = score
    out_classes[slot] = c
  return out_boxes, out_scores, out_classes, len(entries)


def book_nms(
    class_probs,
    boxes,
    *,
    class_threshold: float = 0.5,
    iou_threshold: float = 0.2,
    soft_nms: bool = False,  # pylint: disable=redefined-outer-name
) -> tuple[np.ndarray, list[int], np.ndarray]:
  """The source book's SSD post-processing, Listing 11.12.1 (Atienza, ``boxes.nms``).

  A port of the listing's logic onto boxes that are already decoded to ``xyxy``:

  1. ``objects = argmax(class_probs)`` per anchor (first maximum); the candidates
     ``nonbg`` are the anchors with ``objects != 0``.
  2. Loop: ``scores`` is 0 everywhere except ``max(class_probs[a])`` for ``a`` in ``nonbg``;
     take ``best = argmax(scores)`` (first maximum, over *all* anchors) and remove it from
     ``nonbg``; if ``scores[best] < class_threshold`` stop; otherwise keep ``best`` and, for
     every anchor ``a`` still in ``nonbg``: soft mode multiplies the whole row
     ``class_probs[a]`` by ``exp(-2 IoU(best, a)^2)``; hard mode removes ``a`` from
     ``nonbg`` if ``IoU(best, a) >= iou_threshold`` (note ``>=``). Stop when ``nonbg`` is
     empty.
  3. The returned ``scores`` are 0 except ``max(class_probs[k])`` for the kept anchors,
     computed from the (decayed) probabilities after the loop. A kept anchor is never decayed
     after it is selected, so this is the score it had when selected.

  Where this port differs from the listing (on purpose, and only there):

  * The listing takes anchors plus offsets in ``(xmin, xmax, ymin, ymax)`` order; this takes
    the decoded boxes in ``xyxy`` order.
  * The listing's IoU does not clip areas, so a degenerate box can give a NaN or negative
    IoU; here IoU follows :func:`box_iou` (0 for boxes without area).
  * The listing decays the caller's ``classes`` array in place; this works on a copy.
  * With no anchors (``A = 0``) the listing raises inside ``np.argmax``; this returns empty
    results.

  Quirk kept from the listing: when no anchor is non-background and ``class_threshold <= 0``
  the listing keeps anchor 0 (a background anchor with score 0), and so does this port.
  Scores are assumed non-negative (probabilities); then a candidate's score is always
  ``> 0`` and wins the arg-max over the zeros of non-candidates.

  Args:
    class_probs: ``[A, C]`` class probabilities per anchor, column 0 = background.
    boxes: ``[A, 4]`` decoded ``xyxy`` boxes.
    class_threshold: selection stops once the best remaining score is below this.
    iou_threshold: hard mode removes candidates with IoU ``>=`` this.
    soft_nms: decay (soft-NMS, ``exp(-2 IoU^2)``) instead of removing.

  Returns:
    ``(objects [A] int64, indexes list[int], scores [A] float64)``: the arg-max class of each
    anchor, the kept anchors in selection order, and the score array described above.

  >>> probs = [[0.1, 0.9], [0.2, 0.8], [0.9, 0.1]]
  >>> boxes = [[0, 0, 10, 10], [0, 0, 10, 9], [0, 0, 1, 1]]
  >>> objects, indexes, scores = book_nms(probs, boxes)
  >>> objects.tolist(), indexes, scores.tolist()
  ([1, 1, 0], [0], [0.9, 0.0, 0.0])
  """
  probs = np.array(class_probs, dtype=np.float64)  # a copy: soft mode decays it
  boxes = _as_boxes(boxes)
  if probs.ndim != 2 or probs.shape[0] != len(boxes):
    raise ValueError(f"`class_probs` must have shape ({len(boxes)}, C), got {probs.shape}.")
  num_anchors = probs.shape[0]
  if num_anchors == 0:
    return np.zeros((0,), np.int64), [], np.zeros((0,), np.float64)
  objects = np.argmax(probs, axis=1).astype(np.int64)
  nonbg = np.flatnonzero(objects)
  indexes: list[int] = []
  while True:
    scores = np.zeros((num_anchors,))
    scores[nonbg] = np.max(probs[nonbg], axis=1)
    best = int(np.argmax(scores))
    best_score = scores[best]
    nonbg = nonbg[nonbg != best]
    if best_score < class_threshold:
      break
    indexes.append(best)
    iou = box_iou(boxes[best:best + 1], boxes[nonbg])[0]
    if soft_nms:
      probs[nonbg] *= np.exp(-2.0 * iou * iou)[:, None]
    else:
      nonbg = nonbg[~(iou >= iou_threshold)]
    if nonbg.size == 0:
      break
  scores = np.zeros((num_anchors,))
  scores[indexes] = np.max(probs[indexes], axis=1)
  return objects, indexes, scores
