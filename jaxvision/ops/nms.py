"""Non-maximum suppression: greedy, soft, class-aware, multi-class and the book's detector NMS.

All functions here are pure ``jax.numpy``: they compile under ``jit``, batch over any number
of leading dimensions and return static shapes (indices padded with ``-1`` plus a
``num_valid`` count, as TF's ``non_max_suppression_padded`` does).

How it works. Greedy NMS only ever needs "the live box with the highest score" next; it never
needs a full sort. Each step of one ``lax.while_loop`` takes that box (a max-reduction, ties to
the lowest index), computes its IoU with every box in one fused pass, and removes what it
overlaps. A step costs O(N) and the loop runs once per *kept* box, so the total is O(K N) with
K the number of kept boxes, all of it vectorised. This is the same amount of work as
torchvision's CPU loop (which skips suppressed rows one at a time) but in SIMD passes, and
without the O(N log N) sort, which is slow in XLA on CPU. Class-aware and multi-class NMS use
the same step with a class condition, so neither needs torchvision's coordinate-offset trick
(which is wrong for coordinates that differ by more than the offset) nor a Python loop over
classes.

Conventions shared by every function:

* Boxes are ``xyxy``. A box with zero or negative width or height has area 0 and IoU 0 with
  everything (torchvision returns NaN for such boxes, pytorch/vision#3404); it can still be
  selected, it just never suppresses nor is suppressed.
* Among equal scores the lower index wins (torchvision documents that ties may differ between
  its CPU and GPU kernels; here they never do).
* NaN scores are never selected.
* Thresholds, sizes and method names are static Python values, checked at trace time.
* Ragged batches: pad every image to the same ``N`` and pass ``valid [..., N]`` (bool, True
  for real rows) to :func:`nms`, :func:`batched_nms`, :func:`soft_nms` or
  :func:`multiclass_nms`. A row with ``valid`` False is never selected and never suppresses,
  so each image gets exactly what the call on its real rows alone gives (indices still count
  rows of the padded array). From counts ``c [...]``: ``valid = jnp.arange(N) < c[..., None]``.
* ``score_threshold`` is about scores, not padding. :func:`nms`, :func:`batched_nms` and
  :func:`multiclass_nms` default to ``-inf`` (every box with a non-NaN score is a candidate,
  as in torchvision and TF), so without ``valid`` a zero-padded row with score 0 can be
  selected. :func:`soft_nms` keeps the paper's ``0.001``: there the threshold is also where
  decayed boxes are discarded.
"""

from __future__ import annotations

import functools
import math
from typing import Literal

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from jaxvision.kernels import iou as _iou_kernel
from jaxvision.kernels import nms as _nms_kernel
from jaxvision import _checks
from jaxvision.ops import _dispatch
from jaxvision.ops._dispatch import Implementation

__all__ = ["nms", "soft_nms", "batched_nms", "multiclass_nms", "detection_nms"]

_NEG_INF = -jnp.inf


# ---------------------------------------------------------------------------------------------
# Building blocks.


def _areas(x1, y1, x2, y2):
  return jnp.maximum(x2 - x1, 0.0) * jnp.maximum(y2 - y1, 0.0)


def _iou_with(bx1, by1, bx2, by2, ba, x1, y1, x2, y2, area):
  """IoU of one box per row (``[B, 1]`` coordinates) with every box of that row.

  ``inter / (area_i + area_j - inter)`` in torchvision's float32 arithmetic order, with 0
  where the union is 0 (empty boxes).
  """
  w = jnp.maximum(jnp.minimum(x2, bx2) - jnp.maximum(x1, bx1), 0.0)
  h = jnp.maximum(jnp.minimum(y2, by2) - jnp.maximum(y1, by1), 0.0)
  inter = w * h
  union = ba + area - inter
  positive = union > 0.0
  return jnp.where(positive, inter / jnp.where(positive, union, 1.0), 0.0)


def _take(values, indices):
  """``take_along_axis`` on axis 1 for indices known to be in bounds (no masking pass)."""
  return jnp.take_along_axis(values, indices, axis=1, mode="promise_in_bounds")


def _first_max(values, iota):
  """(index, value) of the maximum of ``values``, ties to the lowest index.

  Two plain reductions (max, then min over the matching indices) are several times faster
  on XLA:CPU than ``jnp.argmax``'s variadic reduction.
  """
  n = values.shape[-1]
  best = jnp.max(values, axis=-1)
  index = jnp.min(jnp.where(values == best[..., None], iota, n), axis=-1)
  return jnp.minimum(index, n - 1).astype(jnp.int32), best


def _check_boxes_scores(boxes, scores, *, scores_name="scores", extra_dims=0):
  """Validates ``boxes [..., N, 4]`` against ``scores [..., N (, C)]``; returns the inputs and
  the dtype to compute in. Casting happens inside the jitted core, so a call on arrays that
  already have the right dtype costs no extra dispatch."""
  boxes, scores = _checks.array(boxes), _checks.array(scores)
  _checks.check_last_dim(boxes, "boxes", 4)
  if len(boxes.shape) < 2:
    raise ValueError(f"`boxes` must have shape [..., N, 4], got {tuple(boxes.shape)}.")
  expected = tuple(boxes.shape[:-1])
  got = tuple(scores.shape)
  if len(got) != len(expected) + extra_dims or got[:len(expected)] != expected:
    want = f"{expected}" if not extra_dims else f"{expected} + (C,)"
    raise ValueError(
        f"`{scores_name}` must have shape {want} to match `boxes` {tuple(boxes.shape)}, "
        f"got {got}.")
  dtype = _checks.promote_types(_checks.compute_dtype(boxes, "boxes", allow_int=False),
                                _checks.compute_dtype(scores, scores_name, allow_int=False))
  return boxes, scores, dtype


def _check_valid(valid, boxes):
  """``valid`` (None, or bool ``[..., N]`` matching ``boxes [..., N, 4]``), checked."""
  if valid is None:
    return None
  valid = _checks.array(valid)
  expected = tuple(boxes.shape[:-1])
  if tuple(valid.shape) != expected:
    raise ValueError(
        f"`valid` must have shape {expected} to match `boxes` {tuple(boxes.shape)}, "
        f"got {tuple(valid.shape)}.")
  if valid.dtype != jnp.bool_:
    raise TypeError(f"`valid` must be a bool array, got dtype {valid.dtype}.")
  return valid


def _mask_invalid(scores, valid):
  """``scores [..., N (, C)]`` with the rows where ``valid [..., N]`` is False set to NaN
  (never selected, by the NaN rule every path shares)."""
  if valid is None:
    return scores
  valid = valid.reshape(valid.shape + (1,) * (scores.ndim - valid.ndim))
  return jnp.where(valid, scores, jnp.nan)


def _candidate_scores(scores, score_threshold, *, inclusive):
  """Scores with non-candidates (NaN, at or below the threshold) replaced by -inf."""
  keep = scores >= score_threshold if inclusive else scores > score_threshold
  return jnp.where(keep & ~jnp.isnan(scores), scores, _NEG_INF)


# ---------------------------------------------------------------------------------------------
# Greedy NMS (and its class-aware form: boxes only suppress boxes of their own class).


def _select_loop(boxes, live, step, *, max_output_size, record_scores=False, iou_rows=None):
  """The shared greedy loop over a batch: ``boxes [B, N, 4]``, ``live [B, N]`` scores.

  Each iteration selects, in every image that still has a live box and a free slot, the
  live box with the highest score (ties to the lowest index), records its rank, and lets
  ``step(i, iou, live) -> live`` update the live scores (the selected box itself is removed
  afterwards). Finished images go through the body unchanged, so the batch needs no
  per-image select. Returns ``(rank [B, N], count [B], score_at_selection [B, N] or None)``,
  where ``rank`` is a box's position in the output, or ``K`` if it was not selected.
  ``iou_rows [B, N, N]``, when given, holds every pairwise IoU (computed by the Pallas
  kernel); the loop then reads row ``i`` instead of computing it.
  """
  b, n = live.shape
  k = max_output_size
  x1, y1, x2, y2 = (boxes[..., j] for j in range(4))
  area = _areas(x1, y1, x2, y2)
  table = jnp.stack([x1, y1, x2, y2, area], axis=-1)  # one gather per step instead of five
  iota = lax.iota(jnp.int32, n)[None, :]

  def cond(state):
    _, _, best, count, *_ = state
    return jnp.any((count < k) & (best > _NEG_INF))

  def one_step(state):
    live, i, best, count, rank, *sel_score = state
    active = (count < k) & (best > _NEG_INF)
    if iou_rows is None:
      chosen = _take(table, i[:, None, None])  # [B, 1, 5]
      iou = _iou_with(*(chosen[..., j] for j in range(5)), x1, y1, x2, y2, area)
    else:
      iou = _take(iou_rows, i[:, None, None])[:, 0]
    selected = (iota == i[:, None]) & active[:, None]
    rank = jnp.where(selected, count[:, None], rank)
    if record_scores:
      sel_score = [jnp.where(selected, best[:, None], sel_score[0])]
    live = jnp.where(selected, _NEG_INF, step(i, iou, live))
    i, best = _first_max(live, iota)
    return (live, i, best, count + active.astype(jnp.int32), rank, *sel_score)

  def body(state):
    # Two selections per trip halve the loop's fixed cost; a finished image passes through
    # a step unchanged, so the second step needs no guard.
    return one_step(one_step(state))

  i, best = _first_max(live, iota)
  state = (live, i, best, jnp.zeros((b,), jnp.int32), jnp.full((b, n), k, jnp.int32))
  if record_scores:
    state += (jnp.zeros_like(live),)
  _, _, _, count, rank, *sel_score = lax.while_loop(cond, body, state)
  return rank, count, (sel_score[0] if record_scores else None)


def _gather_by_rank(rank, values, k, fill):
  """``out[b, rank[b, j]] = values[b, j]`` for ranks < k; other slots hold ``fill``."""
  b = rank.shape[0]
  out = jnp.full((b, k), fill, values.dtype)
  rows = lax.broadcasted_iota(jnp.int32, rank.shape, 0)
  return out.at[rows, rank].set(values, mode="drop")


@functools.partial(jax.jit,
                   static_argnames=("max_output_size", "dtype", "strict", "inclusive_score"))
def _greedy(boxes, scores, classes, iou_threshold, score_threshold, valid=None, *,
            max_output_size, dtype, strict=True, inclusive_score=False):
  """Greedy NMS over ``[..., N]``; ``classes`` is None (class-agnostic) or int ``[..., N]``;
  ``valid`` is None or bool ``[..., N]``."""
  boxes, scores = boxes.astype(dtype), _mask_invalid(scores.astype(dtype), valid)
  lead, n, k = scores.shape[:-1], scores.shape[-1], max_output_size
  if n == 0 or k == 0:
    return jnp.full(lead + (k,), -1, jnp.int32), jnp.zeros(lead, jnp.int32)
  boxes = boxes.reshape((-1, n, 4))
  live = _candidate_scores(scores.reshape((-1, n)), score_threshold, inclusive=inclusive_score)
  classes = None if classes is None else classes.reshape((-1, n))

  def step(i, iou, live):
    hit = iou > iou_threshold if strict else iou >= iou_threshold
    if classes is not None:
      hit = hit & (classes == _take(classes, i[:, None]))
    return jnp.where(hit, _NEG_INF, live)

  rank, count, _ = _select_loop(boxes, live, step, max_output_size=k)
  iota = jnp.broadcast_to(lax.iota(jnp.int32, n), rank.shape)
  indices = _gather_by_rank(rank, iota, k, -1)
  return indices.reshape(lead + (k,)), count.reshape(lead)


def nms(
    boxes: ArrayLike,
    scores: ArrayLike,
    *,
    iou_threshold: float,
    max_output_size: int,
    score_threshold: float = -math.inf,
    valid: ArrayLike | None = None,
    implementation: Implementation = None,
) -> tuple[jax.Array, jax.Array]:
  """Greedy non-maximum suppression with a static output shape.

  Selects exactly what ``torchvision.ops.nms`` selects: boxes in order of decreasing score
  (ties to the lower index), dropping every box whose IoU with an already kept box is
  ``> iou_threshold``. Boxes with ``score <= score_threshold``, a NaN score or ``valid``
  False are never selected. Selection stops after ``max_output_size`` boxes.

  Args:
    boxes: ``[..., N, 4]`` floating boxes in ``xyxy`` format.
    scores: ``[..., N]`` floating scores.
    iou_threshold: in ``[0, 1]``; a box is suppressed when its IoU with a kept box exceeds it.
    max_output_size: static number of output slots ``K >= 0``.
    score_threshold: boxes with a score at or below this are never selected. The default
      ``-inf`` makes every box with a non-NaN score a candidate, as torchvision does.
    valid: optional ``[..., N]`` bool, False for padding rows of a ragged batch: they are
      never selected and never suppress, whatever their score (see the module docstring).
    implementation: ``"xla"``, ``"pallas"`` (the bit-mask kernel in
      ``jaxvision.kernels.nms``; interpreted off GPU; float32) or None (see
      ``jaxvision.ops._dispatch``). Both give the same selection up to IoUs within an ulp
      of the threshold.

  Returns:
    ``(indices, num_valid)``: ``indices [..., K]`` int32, the kept boxes by decreasing score,
    padded with ``-1``; ``num_valid [...]`` int32, the number of kept boxes.

  >>> boxes = jnp.array([[0., 0., 10., 10.], [1., 1., 11., 11.], [20., 20., 30., 30.]])
  >>> scores = jnp.array([0.9, 0.8, 0.7])
  >>> indices, num_valid = nms(boxes, scores, iou_threshold=0.5, max_output_size=3)
  >>> indices.tolist(), int(num_valid)
  ([0, 2, -1], 2)

  A ragged batch: image 0 has one real box, image 1 all three (rows padded with zeros).

  >>> padded = jnp.stack([boxes.at[1:].set(0.), boxes])
  >>> valid = jnp.arange(3) < jnp.array([1, 3])[:, None]
  >>> indices, num_valid = nms(padded, jnp.stack([scores.at[1:].set(0.), scores]),
  ...                          iou_threshold=0.5, max_output_size=3, valid=valid)
  >>> indices.tolist(), num_valid.tolist()
  ([[0, -1, -1], [0, 2, -1]], [1, 2])
  """
  boxes, scores, dtype = _check_boxes_scores(boxes, scores)
  iou_threshold = _checks.check_unit_interval(iou_threshold, "iou_threshold")
  max_output_size = _checks.check_size(max_output_size, "max_output_size")
  score_threshold = _checks.check_float(score_threshold, "score_threshold")
  valid = _check_valid(valid, boxes)
  path, interpret = _dispatch.resolve(implementation, "nms")
  if path == "pallas":
    return _nms_kernel.nms(boxes, _mask_invalid(scores, valid), iou_threshold=iou_threshold,
                           max_output_size=max_output_size, score_threshold=score_threshold,
                           interpret=interpret)
  return _greedy(boxes, scores, None, iou_threshold, score_threshold, valid,
                 max_output_size=max_output_size, dtype=dtype)


def batched_nms(
    boxes: ArrayLike,
    scores: ArrayLike,
    class_ids: ArrayLike,
    *,
    iou_threshold: float,
    max_output_size: int,
    score_threshold: float = -math.inf,
    valid: ArrayLike | None = None,
    implementation: Implementation = None,
) -> tuple[jax.Array, jax.Array]:
  """Class-aware NMS: boxes only suppress boxes with the same class id.

  The result equals running :func:`nms` separately on each class and merging the kept boxes
  by decreasing score (ties to the lower index), truncated to ``max_output_size``; it is
  computed in one pass, with no coordinate offsets, so it is exact for any coordinates
  (negative, huge, or overlapping across classes).

  Args:
    boxes: ``[..., N, 4]`` floating ``xyxy`` boxes.
    scores: ``[..., N]`` floating scores.
    class_ids: ``[..., N]`` integer class of each box.
    iou_threshold: in ``[0, 1]``.
    max_output_size: static number of output slots ``K >= 0``.
    score_threshold: boxes with a score at or below this are never selected (default
      ``-inf``: every box with a non-NaN score is a candidate, as in torchvision).
    valid: optional ``[..., N]`` bool, False for padding rows of a ragged batch: they are
      never selected and never suppress, whatever their score or class id.
    implementation: ``"xla"``, ``"pallas"`` (the bit-mask kernel, with a same-class
      condition, in
      ``jaxvision.kernels.nms``; interpreted off GPU; float32) or None (see
      ``jaxvision.ops._dispatch``). Both give the same selection up to IoUs within an ulp
      of the threshold.

  Returns:
    ``(indices [..., K] int32 padded with -1, num_valid [...] int32)``.

  >>> boxes = jnp.array([[0., 0., 10., 10.], [1., 1., 11., 11.], [1., 1., 11., 11.]])
  >>> indices, n = batched_nms(boxes, jnp.array([0.9, 0.8, 0.7]), jnp.array([0, 0, 1]),
  ...                          iou_threshold=0.5, max_output_size=3)
  >>> indices.tolist(), int(n)
  ([0, 2, -1], 2)
  """
  boxes, scores, dtype = _check_boxes_scores(boxes, scores)
  class_ids = _checks.array(class_ids)
  if not jnp.issubdtype(class_ids.dtype, jnp.integer):
    raise TypeError(f"`class_ids` must be an integer array, got dtype {class_ids.dtype}.")
  if class_ids.shape != scores.shape:
    raise ValueError(
        f"`class_ids` must have shape {scores.shape} to match `scores`, got {class_ids.shape}.")
  iou_threshold = _checks.check_unit_interval(iou_threshold, "iou_threshold")
  max_output_size = _checks.check_size(max_output_size, "max_output_size")
  score_threshold = _checks.check_float(score_threshold, "score_threshold")
  valid = _check_valid(valid, boxes)
  path, interpret = _dispatch.resolve(implementation, "nms")
  if path == "pallas":
    return _nms_kernel.nms(boxes, _mask_invalid(scores, valid), iou_threshold=iou_threshold,
                           max_output_size=max_output_size, score_threshold=score_threshold,
                           groups=class_ids, interpret=interpret)
  return _greedy(boxes, scores, class_ids, iou_threshold, score_threshold, valid,
                 max_output_size=max_output_size, dtype=dtype)


# ---------------------------------------------------------------------------------------------
# Soft-NMS.


@functools.partial(jax.jit,
                   static_argnames=("max_output_size", "dtype", "method", "inclusive_iou"))
def _soft(boxes, scores, iou_threshold, sigma, score_threshold, iou_rows=None, valid=None, *,
          max_output_size, dtype, method, inclusive_iou=False):
  boxes, scores = boxes.astype(dtype), _mask_invalid(scores.astype(dtype), valid)
  lead, n, k = scores.shape[:-1], scores.shape[-1], max_output_size
  if n == 0 or k == 0:
    return (jnp.full(lead + (k,), -1, jnp.int32), jnp.zeros(lead + (k,), scores.dtype),
            jnp.zeros(lead, jnp.int32))
  boxes = boxes.reshape((-1, n, 4))
  live = _candidate_scores(scores.reshape((-1, n)), score_threshold, inclusive=True)

  def step(i, iou, live):
    if method == "gaussian":
      decay = jnp.exp(-(iou * iou) / sigma)
    else:
      over = iou >= iou_threshold if inclusive_iou else iou > iou_threshold
      decay = jnp.where(over, 1.0 - iou, 1.0)
    # Dead entries hold -inf; keep them out of the product (-inf * 0 would be NaN).
    decayed = jnp.where(live > _NEG_INF, live * decay, _NEG_INF)
    return jnp.where(decayed < score_threshold, _NEG_INF, decayed)

  if iou_rows is not None:
    iou_rows = iou_rows.reshape((-1, n, n)).astype(dtype)
  rank, count, sel_score = _select_loop(boxes, live, step, max_output_size=k,
                                        record_scores=True, iou_rows=iou_rows)
  iota = jnp.broadcast_to(lax.iota(jnp.int32, n), rank.shape)
  indices = _gather_by_rank(rank, iota, k, -1)
  out_scores = _gather_by_rank(rank, sel_score, k, 0)
  return (indices.reshape(lead + (k,)), out_scores.reshape(lead + (k,)), count.reshape(lead))


def soft_nms(
    boxes: ArrayLike,
    scores: ArrayLike,
    *,
    sigma: float = 0.5,
    iou_threshold: float = 0.3,
    method: Literal["gaussian", "linear"] = "gaussian",
    score_threshold: float = 0.001,
    max_output_size: int,
    valid: ArrayLike | None = None,
    implementation: Implementation = None,
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Soft-NMS (Bodla et al., 2017): decay the scores of overlapping boxes instead of dropping them.

  Repeatedly selects the live box with the highest *current* score (ties to the lower index)
  and multiplies the score of every other live box ``j`` by

  * ``exp(-IoU(i, j)^2 / sigma)`` for ``method="gaussian"`` (the source book's Algorithm
    11.12.1, line 8; ``iou_threshold`` is not used), or
  * ``1 - IoU(i, j)`` where ``IoU(i, j) > iou_threshold`` for ``method="linear"``.

  A box whose score falls below ``score_threshold`` is discarded; boxes starting below it (or
  with a NaN score, or ``valid`` False) are never live. Defaults are those of the paper's
  reference code: unlike :func:`nms`, ``score_threshold`` defaults to ``0.001``, not
  ``-inf``, because it is also the cut-off that ends a decayed box (with ``-inf`` the
  Gaussian method would return every box). Scores are expected to be non-negative
  (confidences); then they never rise.

  Note: TensorFlow's ``tf.image.non_max_suppression_with_scores`` decays by
  ``exp(-IoU^2 / (2 * soft_nms_sigma))`` and also applies its hard ``iou_threshold``; TF with
  ``soft_nms_sigma=s/2`` and ``iou_threshold=1.0`` matches ``method="gaussian", sigma=s``.

  Args:
    boxes: ``[..., N, 4]`` floating ``xyxy`` boxes.
    scores: ``[..., N]`` floating scores.
    sigma: > 0, the Gaussian width.
    iou_threshold: in ``[0, 1]``, the linear method's overlap threshold.
    method: ``"gaussian"`` or ``"linear"``.
    score_threshold: boxes whose current score is below this are discarded.
    max_output_size: static number of output slots ``K >= 0``.
    valid: optional ``[..., N]`` bool, False for padding rows of a ragged batch: they are
      never selected and decay nothing, whatever their score.
    implementation: ``"xla"``, ``"pallas"`` or None (see ``jaxvision.ops._dispatch``). The
      Pallas path computes the ``[..., N, N]`` IoU matrix with the kernel in
      ``jaxvision.kernels.iou`` (O(N^2) memory) and runs the same selection loop over its
      rows; scores agree with the XLA path to float32 rounding.

  Returns:
    ``(indices, scores, num_valid)``: ``indices [..., K]`` int32 in selection order padded
    with ``-1``; ``scores [..., K]`` the score each box had when selected, padded with 0;
    ``num_valid [...]`` int32.

  >>> boxes = jnp.array([[0., 0., 10., 10.], [0., 0., 10., 5.], [20., 20., 30., 30.]])
  >>> idx, sc, n = soft_nms(boxes, jnp.array([0.9, 0.8, 0.7]), max_output_size=3)
  >>> idx.tolist(), [round(float(s), 4) for s in sc], int(n)
  ([0, 2, 1], [0.9, 0.7, 0.4852], 3)
  """
  boxes, scores, dtype = _check_boxes_scores(boxes, scores)
  sigma = _checks.check_positive(sigma, "sigma")
  iou_threshold = _checks.check_unit_interval(iou_threshold, "iou_threshold")
  method = _checks.check_choice(method, "method", ("gaussian", "linear"))
  score_threshold = _checks.check_float(score_threshold, "score_threshold")
  max_output_size = _checks.check_size(max_output_size, "max_output_size")
  valid = _check_valid(valid, boxes)
  path, interpret = _dispatch.resolve(implementation, "soft_nms")
  iou_rows = None
  if path == "pallas" and boxes.shape[-2] > 0 and math.prod(boxes.shape[:-2]) > 0:
    flat = boxes.reshape((-1,) + tuple(boxes.shape[-2:]))
    iou_rows = _iou_kernel.iou_matrix(flat, flat, interpret=interpret)
  return _soft(boxes, scores, iou_threshold, sigma, score_threshold, iou_rows, valid,
               max_output_size=max_output_size, dtype=dtype, method=method)


# ---------------------------------------------------------------------------------------------
# Multi-class NMS (TF's combined_non_max_suppression).


# Candidate slots of the XLA path: the loop works on the ``_slots(T)`` best (box, class) pairs
# of an image instead of all ``N * C``; ``_BLOCK`` pairs share one maximum in the first pass.
_BLOCK = 8


def _slots(max_total):
  """Candidate slots per round: a power of two >= 4 * max_total, in [256, 4096]."""
  return int(min(4096, max(256, 1 << max(0, 4 * max_total - 1).bit_length())))


@functools.partial(jax.jit,
                   static_argnames=("max_per_class", "max_total", "dtype", "slots"))
def _multiclass(boxes, class_scores, iou_threshold, score_threshold, mask=None, valid=None, *,
                max_per_class, max_total, dtype, slots=None):
  """Greedy over (box, class) pairs in global score order, one image per batch row.

  The kept pairs of every class form that class's greedy-NMS sequence, and the union of those
  sequences comes out in decreasing score order, so the first ``max_total`` pairs are exactly
  the top of the merged per-class results that combined NMS returns.

  Without ``mask`` (the XLA path) the work follows the number of candidates, not ``N * C``
  (:func:`_multiclass_rounds`, ``slots`` pairs per round, default :func:`_slots`).
  ``mask [B, N, W]``, when given, is the kernel's bit-packed
  "IoU(i, j) > threshold" relation (all pairs); :func:`_multiclass_dense` then reads bits
  instead of computing IoUs.
  """
  lead, (n, c), t = class_scores.shape[:-2], class_scores.shape[-2:], max_total
  out_shapes = (jnp.zeros(lead + (t, 4), dtype), jnp.zeros(lead + (t,), dtype),
                jnp.full(lead + (t,), -1, jnp.int32), jnp.zeros(lead, jnp.int32))
  if n == 0 or c == 0 or t == 0 or max_per_class == 0:
    return out_shapes
  boxes, class_scores = boxes.astype(dtype), _mask_invalid(class_scores.astype(dtype), valid)
  boxes = boxes.reshape((-1, n, 4))
  class_scores = class_scores.reshape((-1, n, c))
  if mask is None:
    count, out_idx, out_sc, out_cls = _multiclass_rounds(
        boxes, class_scores, iou_threshold, score_threshold, max_per_class=max_per_class,
        max_total=t, slots=_slots(t) if slots is None else slots)
  else:
    count, out_idx, out_sc, out_cls = _multiclass_dense(
        boxes, class_scores, iou_threshold, score_threshold, mask, max_per_class=max_per_class,
        max_total=t)
  out_boxes = jnp.take_along_axis(boxes, jnp.maximum(out_idx, 0)[..., None], axis=1)
  out_boxes = jnp.where(out_idx[..., None] >= 0, out_boxes, 0.0)
  return (out_boxes.reshape(lead + (t, 4)), out_sc.reshape(lead + (t,)),
          out_cls.reshape(lead + (t,)), count.reshape(lead))


def _top_k(values, k):
  """``lax.top_k`` kept as XLA:CPU's TopK call: when only part of its output is used, XLA
  rewrites it into a full sort of the row (~20x slower here); the barrier prevents that."""
  return lax.optimization_barrier(lax.top_k(values, k))


def _multiclass_rounds(boxes, class_scores, iou_threshold, score_threshold, *, max_per_class,
                       max_total, slots):
  """Combined NMS whose cost follows the candidates examined, not ``N * C``.

  Each round takes the ``m = slots`` best remaining (box, class) pairs of every image --
  exactly the pairs scoring above a per-image cut, found by a max over blocks of ``_BLOCK``
  pairs, a ``top_k`` over the block maxima, and a ``top_k`` over the pairs of those blocks --
  and runs the greedy loop on those ``m`` slots (each step O(m), not O(N)). Every pair above
  the cut is in the round, so the loop's decisions on them are exactly the full loop's. An
  image that runs out of slots before ``max_total`` selections while candidates remain below
  the cut gets another round on the next ``m`` pairs, first suppressed by the boxes its
  classes already kept. On detector outputs one round usually suffices (the SSD benchmark
  examines ~850 pairs for 200 selections). Each round strictly lowers the cut, so the rounds
  end; a run of equal scores longer than ``slots`` at a cut (no pair above it) hands the
  whole call to :func:`_multiclass_dense` instead, which gives the same result.
  """
  b, n, c = class_scores.shape
  t, total = max_total, n * c
  m = min(slots, total)
  x1, y1, x2, y2 = (boxes[..., j] for j in range(4))
  table = jnp.stack([x1, y1, x2, y2, _areas(x1, y1, x2, y2)], axis=-1)  # [B, N, 5]
  # Pairs in their native order (f = box * C + class); ties break on the key class * N + box
  # (lower class first, then lower box), the order the merged per-class lists have.
  scores = _candidate_scores(class_scores.reshape((b, total)), score_threshold,
                             inclusive=False)
  pad = (-total) % _BLOCK
  blocks = (total + pad) // _BLOCK
  big = jnp.iinfo(jnp.int32).max
  iota_c = lax.iota(jnp.int32, c)[None, :]
  iota_t = lax.iota(jnp.int32, t)[None, :]

  def candidates(upper):
    """The slots of one round: pairs with ``cut < score <= upper`` (all of them)."""
    live = jnp.where(scores <= upper[:, None], scores, _NEG_INF)
    if m == total:
      return live, jnp.broadcast_to(lax.iota(jnp.int32, total), (b, total)), jnp.full(
          (b,), _NEG_INF, live.dtype)
    live = jnp.pad(live, ((0, 0), (0, pad)), constant_values=_NEG_INF)
    grouped = live.reshape((b, blocks, _BLOCK))
    if blocks > m:
      block_best, chosen = _top_k(jnp.max(grouped, axis=-1), m)
      cut = block_best[:, -1]  # every pair above it lies in a chosen block
      pool = jnp.take_along_axis(grouped, chosen[..., None], axis=1).reshape((b, m * _BLOCK))
      flat = (chosen[..., None] * _BLOCK + lax.iota(jnp.int32, _BLOCK)).reshape(pool.shape)
    else:
      cut = jnp.full((b,), _NEG_INF, live.dtype)
      pool = grouped.reshape((b, blocks * _BLOCK))
      flat = jnp.broadcast_to(lax.iota(jnp.int32, blocks * _BLOCK), pool.shape)
    best, where = _top_k(pool, m)
    cut = jnp.maximum(cut, best[:, -1])  # and every pair above this is among the m picked
    live = jnp.where(best > cut[:, None], best, _NEG_INF)
    return live, jnp.take_along_axis(flat, where, axis=1), cut

  def one_round(state):
    upper, count, kept, out_idx, out_sc, out_cls, _ = state
    live, flat, cut = candidates(upper)
    # A run of equal scores longer than the slots fills a round with pairs *at* the cut and
    # none above it: no progress is possible this way (the dense loop takes over).
    stalled = jnp.any((upper > _NEG_INF) & (cut > _NEG_INF)
                      & (jnp.max(live, axis=1) == _NEG_INF))
    box = jnp.minimum(flat // c, n - 1)
    cls = flat % c
    key = jnp.where(flat < total, cls * n + box, big)
    coords = jnp.take_along_axis(table, box[..., None], axis=1)  # [B, M, 5]
    sx1, sy1, sx2, sy2, sarea = (coords[..., j] for j in range(5))
    # Pairs of a class that is already full, or that overlap a box their class already kept
    # (only possible from the second round on), never become selections.
    full = jnp.take_along_axis(kept, cls, axis=1) >= max_per_class
    live = jnp.where(full, _NEG_INF, live)

    def suppress_by_kept(live):
      kept_box = jnp.take_along_axis(table, jnp.maximum(out_idx, 0)[..., None], axis=1)
      iou = _iou_with(*(kept_box[:, None, :, j] for j in range(5)), sx1[..., None],
                      sy1[..., None], sx2[..., None], sy2[..., None], sarea[..., None])
      hit = (iou > iou_threshold) & (out_cls[:, None, :] == cls[..., None])
      return jnp.where(jnp.any(hit & (iota_t < count[:, None])[:, None, :], axis=-1),
                       _NEG_INF, live)

    live = lax.cond(jnp.any(count > 0), suppress_by_kept, lambda live: live, live)

    def pick(live):
      best = jnp.max(live, axis=1)
      return jnp.min(jnp.where(live == best[:, None], key, big), axis=1), best

    def step(state):
      live, chosen, best, kept, count, out_idx, out_sc, out_cls = state
      active = (count < t) & (best > _NEG_INF)
      k_cls = jnp.minimum(chosen // n, c - 1)
      k_box = jnp.minimum(chosen % n, n - 1)
      this_class = iota_c == k_cls[:, None]
      kept = kept + (this_class & active[:, None]).astype(jnp.int32)
      now_full = jnp.max(jnp.where(this_class, kept, 0), axis=1) >= max_per_class
      slot = (iota_t == count[:, None]) & active[:, None]
      out_idx = jnp.where(slot, k_box[:, None], out_idx)
      out_sc = jnp.where(slot, best[:, None], out_sc)
      out_cls = jnp.where(slot, k_cls[:, None], out_cls)
      k = _take(table, k_box[:, None, None])  # [B, 1, 5]
      iou = _iou_with(*(k[..., j] for j in range(5)), sx1, sy1, sx2, sy2, sarea)
      drop = ((cls == k_cls[:, None]) & ((iou > iou_threshold) | now_full[:, None])) | (
          key == chosen[:, None])
      live = jnp.where(drop & active[:, None], _NEG_INF, live)
      chosen, best = pick(live)
      return (live, chosen, best, kept, count + active.astype(jnp.int32), out_idx, out_sc,
              out_cls)

    chosen, best = pick(live)
    inner = (live, chosen, best, kept, count, out_idx, out_sc, out_cls)
    inner = lax.while_loop(lambda s: jnp.any((s[4] < t) & (s[2] > _NEG_INF)),
                           lambda s: step(step(s)), inner)
    _, _, _, kept, count, out_idx, out_sc, out_cls = inner
    # An image needs another round when it has free slots and pairs left at or below the cut.
    upper = jnp.where((count < t) & (cut > _NEG_INF) & ~stalled, cut, _NEG_INF)
    return upper, count, kept, out_idx, out_sc, out_cls, stalled

  state = (jnp.full((b,), jnp.inf, scores.dtype), jnp.zeros((b,), jnp.int32),
           jnp.zeros((b, c), jnp.int32), jnp.full((b, t), -1, jnp.int32),
           jnp.zeros((b, t), scores.dtype), jnp.full((b, t), -1, jnp.int32), jnp.bool_(False))
  state = lax.while_loop(lambda s: jnp.any(s[0] > _NEG_INF), one_round, state)
  _, count, _, out_idx, out_sc, out_cls, stalled = state
  return lax.cond(
      stalled,
      lambda: _multiclass_dense(boxes, class_scores, iou_threshold, score_threshold, None,
                                max_per_class=max_per_class, max_total=max_total),
      lambda: (count, out_idx, out_sc, out_cls))


def _multiclass_dense(boxes, class_scores, iou_threshold, score_threshold, mask, *,
                      max_per_class, max_total):
  """The loop over every (class, box) row; overlaps come from the kernel's bit ``mask``, or
  are computed when it is None.

  Keeps each class's best live box; a step touches only the selected class's row (O(N)), so
  the whole loop costs O(max_total * N), independent of the number of classes.
  """
  b, n, c = class_scores.shape
  t = max_total
  x1, y1, x2, y2 = (boxes[..., j] for j in range(4))
  area = _areas(x1, y1, x2, y2)
  table = jnp.stack([x1, y1, x2, y2, area], axis=-1)
  iota_n = lax.iota(jnp.int32, n)[None, :]
  iota_c = lax.iota(jnp.int32, c)[None, :]
  iota_t = lax.iota(jnp.int32, t)[None, :]
  batch = lax.iota(jnp.int32, b)
  live = _candidate_scores(jnp.swapaxes(class_scores, 1, 2), score_threshold,
                           inclusive=False)  # [B, C, N]
  row_idx, row_best = _first_max(live, iota_n[None])  # [B, C]: each class's best live box

  def cond(state):
    _, _, row_best, _, count, *_ = state
    return jnp.any((count < t) & (jnp.max(row_best, axis=-1) > _NEG_INF))

  def body(state):
    live, row_idx, row_best, kept, count, out_idx, out_sc, out_cls = state
    cls, best = _first_max(row_best, iota_c)
    active = (count < t) & (best > _NEG_INF)
    # Small [B, C] / [B, T] updates as elementwise selects: they fuse, scatters don't.
    this_class = iota_c == cls[:, None]
    i = jnp.max(jnp.where(this_class, row_idx, -1), axis=1)
    kept = kept + (this_class & active[:, None]).astype(jnp.int32)
    full = jnp.max(jnp.where(this_class, kept, 0), axis=1) >= max_per_class
    slot = (iota_t == count[:, None]) & active[:, None]
    out_idx = jnp.where(slot, i[:, None], out_idx)
    out_sc = jnp.where(slot, best[:, None], out_sc)
    out_cls = jnp.where(slot, cls[:, None], out_cls)
    if mask is None:
      chosen = _take(table, i[:, None, None])  # [B, 1, 5]
      iou = _iou_with(*(chosen[..., j] for j in range(5)), x1, y1, x2, y2, area)
      overlaps = iou > iou_threshold
    else:
      words = _take(mask, i[:, None, None])[:, 0]  # [B, W]
      overlaps = ((jnp.take(words, iota_n[0] // 32, axis=1) >> (iota_n % 32).astype(
          jnp.uint32)) & 1) > 0
    row = _take(live, cls[:, None, None])[:, 0]
    drop = overlaps | (iota_n == i[:, None]) | full[:, None]
    row = jnp.where(drop & active[:, None], _NEG_INF, row)
    new_i, new_best = _first_max(row, iota_n)
    live = live.at[batch, cls].set(row, mode="promise_in_bounds")
    row_idx = jnp.where(this_class, new_i[:, None], row_idx)
    row_best = jnp.where(this_class, new_best[:, None], row_best)
    return (live, row_idx, row_best, kept, count + active.astype(jnp.int32), out_idx, out_sc,
            out_cls)

  state = (live, row_idx, row_best, jnp.zeros((b, c), jnp.int32), jnp.zeros((b,), jnp.int32),
           jnp.full((b, t), -1, jnp.int32), jnp.zeros((b, t), live.dtype),
           jnp.full((b, t), -1, jnp.int32))
  *_, count, out_idx, out_sc, out_cls = lax.while_loop(cond, body, state)
  return count, out_idx, out_sc, out_cls


def multiclass_nms(
    boxes: ArrayLike,
    class_scores: ArrayLike,
    *,
    iou_threshold: float,
    score_threshold: float = -math.inf,
    max_output_size_per_class: int,
    max_total_size: int,
    valid: ArrayLike | None = None,
    implementation: Implementation = None,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """Per-class NMS over shared boxes, merged across classes: TF's ``combined_non_max_suppression``.

  For every class ``c`` independently, greedy NMS (as :func:`nms`) over the boxes with
  ``class_scores[..., c] > score_threshold`` keeps at most ``max_output_size_per_class``
  boxes; the kept (box, score, class) triples of all classes are then merged by decreasing
  score (ties: lower class id first, then the class's own selection order) and the first
  ``max_total_size`` are returned. Boxes are not clipped (TF's ``clip_boxes=False``).

  Args:
    boxes: ``[..., N, 4]`` floating ``xyxy`` boxes shared by all classes.
    class_scores: ``[..., N, C]`` floating per-class scores (exclude a background column
      yourself if your model has one).
    iou_threshold: in ``[0, 1]``.
    score_threshold: scores at or below this are never selected. The default ``-inf`` is
      TF's (every non-NaN score is a candidate); detectors usually pass e.g. ``0.05``.
    max_output_size_per_class: static cap on kept boxes per class.
    max_total_size: static number of output slots ``T``.
    valid: optional ``[..., N]`` bool, False for padding rows of a ragged batch: no class
      ever selects them, whatever their scores (TF's object-detection API calls this
      ``num_valid_boxes``; from counts, ``valid = jnp.arange(N) < counts[..., None]``).
    implementation: ``"xla"``, ``"pallas"`` or None (see ``jaxvision.ops._dispatch``). The
      Pallas path precomputes the bit-packed all-pairs overlap mask with the kernel in
      ``jaxvision.kernels.nms`` (``N * ceil(N / 32)`` words per image) and the selection loop
      reads bits from it; the result is the same up to IoUs within an ulp of the threshold.

  Returns:
    ``(boxes [..., T, 4], scores [..., T], classes [..., T] int32, num_valid [...] int32)``;
    padding is 0 for boxes and scores and -1 for classes (TF pads classes with 0, a real class
    id; use ``num_valid`` or ``classes >= 0`` to mask).

  >>> boxes = jnp.array([[0., 0., 10., 10.], [1., 1., 11., 11.]])
  >>> scores = jnp.array([[0.9, 0.1], [0.8, 0.7]])
  >>> b, s, c, n = multiclass_nms(boxes, scores, iou_threshold=0.5, score_threshold=0.05,
  ...                             max_output_size_per_class=10, max_total_size=4)
  >>> c.tolist(), int(n)
  ([0, 1, -1, -1], 2)
  """
  boxes, class_scores, dtype = _check_boxes_scores(
      boxes, class_scores, scores_name="class_scores", extra_dims=1)
  iou_threshold = _checks.check_unit_interval(iou_threshold, "iou_threshold")
  score_threshold = _checks.check_float(score_threshold, "score_threshold")
  max_per_class = _checks.check_size(max_output_size_per_class, "max_output_size_per_class")
  max_total = _checks.check_size(max_total_size, "max_total_size")
  valid = _check_valid(valid, boxes)
  path, interpret = _dispatch.resolve(implementation, "multiclass_nms")
  mask = None
  n = boxes.shape[-2]
  if path == "pallas" and n > 0 and math.prod(boxes.shape[:-2]) > 0:
    mask = _nms_kernel.suppression_mask(boxes.reshape((-1, n, 4)), iou_threshold=iou_threshold,
                                        triangular=False, interpret=interpret)
  return _multiclass(boxes, class_scores, iou_threshold, score_threshold, mask, valid,
                     max_per_class=max_per_class, max_total=max_total, dtype=dtype)


# ---------------------------------------------------------------------------------------------
# The source book's detector post-processing (Listing 11.12.1).


def detection_nms(
    class_probs: ArrayLike,
    boxes: ArrayLike,
    *,
    class_threshold: float = 0.5,
    iou_threshold: float = 0.2,
    soft: bool = False,
    sigma: float = 0.5,
    max_output_size: int,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """The source book's class-agnostic NMS for an SSD head (Atienza, Listing 11.12.1).

  Candidates are the anchors whose arg-max class is not background (column 0); the score of
  a candidate is its largest class probability. The loop takes the best remaining candidate
  (ties to the lower index) and stops once that score is below ``class_threshold``. Hard
  mode drops every remaining candidate with ``IoU >= iou_threshold`` (note: ``>=``, as the
  book does, unlike :func:`nms`); soft mode multiplies every remaining candidate's score by
  ``exp(-IoU^2 / sigma)`` (the book's ``exp(-2 IoU^2)`` is ``sigma=0.5``) and drops none.

  Args:
    class_probs: ``[..., A, C]`` per-anchor class probabilities, column 0 = background.
    boxes: ``[..., A, 4]`` decoded ``xyxy`` boxes (anchors plus offsets).
    class_threshold: in ``[0, 1]``; selection stops below it.
    iou_threshold: in ``[0, 1]``; hard-mode suppression threshold.
    soft: soft-NMS instead of hard NMS.
    sigma: > 0, soft-NMS Gaussian width.
    max_output_size: static number of output slots ``K``.

  Returns:
    ``(indices [..., K] int32, scores [..., K], class_ids [..., K] int32, num_valid [...])``:
    kept anchors in selection order padded with -1, their scores when selected (padded 0),
    their arg-max class (never 0; padded -1), and the count.

  >>> probs = jnp.array([[0.1, 0.9], [0.2, 0.8], [0.9, 0.1]])
  >>> boxes = jnp.array([[0., 0., 10., 10.], [0., 0., 10., 9.], [0., 0., 1., 1.]])
  >>> idx, sc, cls, n = detection_nms(probs, boxes, max_output_size=3)
  >>> idx.tolist(), cls.tolist(), int(n)
  ([0, -1, -1], [1, -1, -1], 1)
  """
  boxes, class_probs, dtype = _check_boxes_scores(
      boxes, class_probs, scores_name="class_probs", extra_dims=1)
  if class_probs.shape[-1] < 2:
    raise ValueError(
        f"`class_probs` needs a background column and at least one class, got "
        f"{class_probs.shape[-1]} columns.")
  class_threshold = _checks.check_unit_interval(class_threshold, "class_threshold")
  iou_threshold = _checks.check_unit_interval(iou_threshold, "iou_threshold")
  sigma = _checks.check_positive(sigma, "sigma")
  max_output_size = _checks.check_size(max_output_size, "max_output_size")
  return _detection(class_probs, boxes, class_threshold, iou_threshold, sigma, soft=bool(soft),
                    max_output_size=max_output_size, dtype=dtype)


@functools.partial(jax.jit, static_argnames=("soft", "max_output_size", "dtype"))
def _detection(class_probs, boxes, class_threshold, iou_threshold, sigma, *, soft,
               max_output_size, dtype):
  boxes, class_probs = boxes.astype(dtype), class_probs.astype(dtype)
  objects = jnp.argmax(class_probs, axis=-1).astype(jnp.int32)
  scores = jnp.where(objects > 0, jnp.max(class_probs, axis=-1), jnp.nan)
  if soft:
    idx, sel_scores, count = _soft(boxes, scores, 1.0, sigma, class_threshold,
                                   max_output_size=max_output_size, dtype=dtype,
                                   method="gaussian")
  else:
    idx, count = _greedy(boxes, scores, None, iou_threshold, class_threshold,
                         max_output_size=max_output_size, dtype=dtype, strict=False,
                         inclusive_score=True)
    sel_scores = jnp.where(
        idx >= 0, jnp.take_along_axis(scores, jnp.maximum(idx, 0), axis=-1), 0.0)
  cls = jnp.where(idx >= 0, jnp.take_along_axis(objects, jnp.maximum(idx, 0), axis=-1), -1)
  return idx, sel_scores, cls, count
