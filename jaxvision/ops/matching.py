"""Anchor matching (SSD / d2l target assignment) and anchor-relative box encoding.

``match_anchors`` assigns every anchor a ground-truth box or the background; the result
feeds ``encode_boxes``, whose offsets are the regression targets, and ``decode_boxes`` turns
predicted offsets back into boxes.

How ``match_anchors`` runs. The textbook greedy bipartite pass (d2l's
``assign_anchor_to_bbox``) repeatedly takes the global maximum of the ``[A, G]`` IoU matrix
and deletes its row and column: ``G`` arg-maxes over ``A G`` entries. Here each valid GT
keeps its best remaining anchor ``(value, lowest index)``; a step picks among at most ``G``
such pairs (the row-major first global maximum is the GT whose best value is the maximum
and, among those, whose best anchor is lowest, then the lowest GT), and a GT's best is
recomputed (one ``[A]`` pass) only when the anchor just taken *was* its best, which is rare.
So the matrix is read in full only twice (best GT per anchor, best anchor per GT), and the
loop runs once per valid GT. The batch lives inside one ``lax.while_loop`` rather than under
``vmap``, so the "recompute?" test stays a real branch instead of a select that computes both
sides. On 8732 anchors x 50 padded GTs x 32 images this takes about as long as computing the
IoU matrix itself.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from jaxvision import _checks
from jaxvision.ops.boxes import box_iou

__all__ = ["match_anchors", "encode_boxes", "decode_boxes"]

# Largest log-scale decode_boxes applies: a predicted box is at most 1000 / 16 times its
# anchor's side (torchvision's ``bbox_xform_clip``), so exp never overflows.
_DECODE_CLIP = math.log(1000.0 / 16)


# ---------------------------------------------------------------------------------------------
# Matching.


def match_anchors(
    anchors: ArrayLike,
    gt_boxes: ArrayLike,
    gt_valid: ArrayLike,
    *,
    iou_threshold: float,
    bipartite: bool = True,
) -> tuple[jax.Array, jax.Array]:
  """Assigns each anchor a ground-truth box (or the background), as SSD and d2l do.

  On the ``[A, G]`` IoU matrix restricted to the valid GT columns:

  1. Bipartite pass (when ``bipartite``): repeatedly take the global maximum of the
     remaining matrix (ties: lowest anchor index, then lowest GT index, i.e. the first in
     row-major order), assign that anchor to that GT and delete its row and column, until
     every valid GT has an anchor or the anchors run out. As in d2l, a GT is assigned even if
     its best IoU is 0, so every valid GT gets an anchor whenever ``A >= #valid``.
  2. Threshold pass: every anchor not assigned in step 1 whose best IoU over the valid GTs
     is ``>= iou_threshold`` takes that GT (ties to the lower GT index); the rest are
     background.

  Padded GTs (``gt_valid`` False) never match. ``bipartite=False`` runs step 2 only.

  Degenerate ground truth is invalid too: a GT row with zero or negative width or height, or
  a NaN or infinite coordinate, is treated as padding whatever ``gt_valid`` says (never
  matched, not counted by the bipartite pass). Such a box has IoU 0 with every anchor, so
  the bipartite pass would otherwise hand it an arbitrary anchor at IoU 0, and
  ``encode_boxes`` would give that anchor a log-size target of about -437 (torchvision's
  detectors raise on such boxes instead; a check on values cannot raise under ``jit``, so
  here they are dropped, which is what a data pipeline that filters them would do). Anchors
  with a NaN coordinate match nothing.

  Args:
    anchors: ``[A, 4]`` ``xyxy`` anchors (integer anchors are promoted to float32).
    gt_boxes: ``[..., G, 4]`` ``xyxy`` ground-truth boxes, padded to ``G`` per image.
    gt_valid: ``[..., G]`` bool, True for real (non-padding) GT rows; rows with an empty
      or non-finite box count as False.
    iou_threshold: the threshold pass's IoU threshold, a Python number in ``[0, 1]``.
    bipartite: whether to run the greedy bipartite pass first.

  Returns:
    ``(matched_gt, matched_iou)``: ``[..., A]`` int32 index of each anchor's GT (``-1`` for
    background) and ``[..., A]`` float32 IoU with that GT. For a background anchor
    ``matched_iou`` is its best IoU with any valid GT (0 if there is none), which is what an
    "ignore band" (e.g. 0.4 <= IoU < 0.5) needs.

  >>> anchors = jnp.array([[0., 0., 2., 2.], [0., 0., 4., 2.], [0., 0., 4., 4.], [5., 5., 6., 6.]])
  >>> gt = jnp.array([[0., 0., 4., 4.], [0., 0., 2., 2.], [0., 0., 1., 1.]])  # last: padding
  >>> matched, iou = match_anchors(anchors, gt, jnp.array([True, True, False]), iou_threshold=0.5)
  >>> matched  # anchors 0 and 2 by the bipartite pass, 1 by the threshold (a tie: GT 0)
  Array([ 1,  0,  0, -1], dtype=int32)
  >>> iou
  Array([1. , 0.5, 1. , 0. ], dtype=float32)
  """
  threshold = _checks.check_unit_interval(iou_threshold, "iou_threshold")
  if not isinstance(bipartite, (bool, np.bool_)):
    raise TypeError(f"`bipartite` must be a bool, got {bipartite!r}.")
  anchors = _checks.array(anchors)
  gt_boxes = _checks.array(gt_boxes)
  gt_valid = _checks.array(gt_valid)
  _checks.check_last_dim(anchors, "anchors", 4)
  _checks.check_last_dim(gt_boxes, "gt_boxes", 4)
  if anchors.ndim != 2:
    raise ValueError(f"`anchors` must have shape [A, 4], got shape {tuple(anchors.shape)}.")
  if gt_boxes.ndim < 2:
    raise ValueError(
        f"`gt_boxes` must have shape [..., G, 4], got shape {tuple(gt_boxes.shape)}.")
  if tuple(gt_valid.shape) != tuple(gt_boxes.shape[:-1]):
    raise ValueError(
        f"`gt_valid` must have shape {tuple(gt_boxes.shape[:-1])} to match `gt_boxes` "
        f"{tuple(gt_boxes.shape)}, got {tuple(gt_valid.shape)}.")
  if gt_valid.dtype != jnp.bool_:
    raise TypeError(f"`gt_valid` must be a bool array, got dtype {gt_valid.dtype}.")
  dtype = jnp.promote_types(_checks.compute_dtype(anchors, "anchors", allow_int=True),
                            _checks.compute_dtype(gt_boxes, "gt_boxes", allow_int=True))
  return _match(anchors, gt_boxes, gt_valid, threshold, bipartite=bool(bipartite),
                dtype=dtype)


# The reductions over the IoU matrix run as chains of elementwise max/select over this many
# contiguous slices, then one short reduction: XLA:CPU fuses such a chain into one vectorised
# pass, while a plain (arg)max over the axis materializes index arrays and runs several times
# slower. Inputs are padded (with rows/columns that can never match) to multiples of these.
_ANCHOR_CHUNKS = 32
_GT_CHUNKS = 64


@functools.partial(jax.jit, static_argnames=("bipartite", "dtype"))
def _match(anchors, gt_boxes, gt_valid, threshold, *, bipartite, dtype):
  lead, g = gt_boxes.shape[:-2], gt_boxes.shape[-2]
  a = anchors.shape[0]
  b = math.prod(lead)
  if a == 0 or g == 0 or b == 0:
    return jnp.full(lead + (a,), -1, jnp.int32), jnp.zeros(lead + (a,), dtype)
  g_chunks = min(g, _GT_CHUNKS)
  g_pad = -(-g // g_chunks) * g_chunks
  a_pad = -(-a // _ANCHOR_CHUNKS) * _ANCHOR_CHUNKS
  anchors = jnp.pad(anchors.astype(dtype), ((0, a_pad - a), (0, 0)))
  gt_boxes = jnp.pad(gt_boxes.astype(dtype).reshape(b, g, 4), ((0, 0), (0, g_pad - g), (0, 0)))
  x1, y1, x2, y2 = (gt_boxes[..., i] for i in range(4))
  # Positive sides (False for NaN) and finite: an empty or non-finite GT is padding.
  proper = (x2 > x1) & (y2 > y1) & jnp.all(jnp.isfinite(gt_boxes), axis=-1)
  valid = jnp.pad(gt_valid.reshape(b, g), ((0, 0), (0, g_pad - g))) & proper

  # [B, G, A]: anchors on the minor axis, so the per-GT reductions over anchors are
  # contiguous. IoU is symmetric, so this is the transpose of the [A, G] matrix. Padded GT
  # rows and padding anchors hold -1, below every IoU, and so does a NaN IoU (NaN anchor).
  real = valid[:, :, None] & (lax.broadcasted_iota(jnp.int32, (1, 1, a_pad), 2) < a)
  iou = box_iou(gt_boxes, anchors[None])
  iou = jnp.where(real & (iou >= 0.0), iou, -1.0)

  # Threshold pass: each anchor's best valid GT (ties to the lower index); -1 if none.
  row_best, row_arg = _first_max_chunked(iou, axis=1, chunks=g_chunks)  # [B, A]
  matched = jnp.where(row_best >= threshold, row_arg, -1).astype(jnp.int32)
  matched_iou = jnp.maximum(row_best, 0.0)

  if bipartite:
    pick, pick_iou = _bipartite(iou, valid, a)  # [B, G]: each GT's anchor (or a_pad), IoU
    rows = lax.broadcasted_iota(jnp.int32, (b, g_pad), 0)
    matched = matched.at[rows, pick].set(
        jnp.broadcast_to(lax.iota(jnp.int32, g_pad), (b, g_pad)), mode="drop")
    matched_iou = matched_iou.at[rows, pick].set(pick_iou, mode="drop")
  return matched[:, :a].reshape(lead + (a,)), matched_iou[:, :a].reshape(lead + (a,))


def _first_max(values, axis):
  """``(max, lowest index of the max)`` along ``axis`` (two plain reductions)."""
  n = values.shape[axis]
  best = jnp.max(values, axis=axis, keepdims=True)
  iota = lax.broadcasted_iota(jnp.int32, values.shape, axis % values.ndim)
  index = jnp.min(jnp.where(values == best, iota, n), axis=axis)
  return jnp.squeeze(best, axis), index


def _first_max_chunked(values, axis, chunks):
  """``_first_max`` as a running (max, chunk) over ``chunks`` contiguous slices of ``axis``.

  ``values.shape[axis]`` must be a multiple of ``chunks``. The strict ``>`` keeps the
  earliest chunk at each position, and the final reduction over the ``n / chunks`` positions
  takes the lowest index among the maxima: ties go to the lowest index, as in ``_first_max``.
  """
  axis = axis % values.ndim
  n = values.shape[axis]
  width = n // chunks
  best = lax.slice_in_dim(values, 0, width, axis=axis)
  chunk = jnp.zeros(best.shape, jnp.int32)
  for c in range(1, chunks):
    x = lax.slice_in_dim(values, c * width, (c + 1) * width, axis=axis)
    better = x > best
    best = jnp.where(better, x, best)
    chunk = jnp.where(better, c, chunk)
  if width == 1:
    return jnp.squeeze(best, axis), jnp.squeeze(chunk, axis)
  top = jnp.max(best, axis=axis, keepdims=True)
  index = chunk * width + lax.broadcasted_iota(jnp.int32, best.shape, axis)
  index = jnp.min(jnp.where(best == top, index, n), axis=axis)
  return jnp.squeeze(top, axis), index


def _bipartite(iou, valid, num_anchors):
  """The greedy bipartite pass over a batch: ``iou [B, G, A]``, ``valid [B, G]``.

  ``iou`` is -1 in padded GT rows and in the columns of padding anchors (``>= num_anchors``).
  Returns ``(pick [B, G] int32, pick_iou [B, G])``: the anchor each GT took (``A`` if none:
  padding, or the anchors ran out) and its IoU.

  Invariant at the top of each step: for every remaining GT ``g`` (valid, not yet picked)
  ``best_val[g]`` is the maximum IoU over the anchors not yet picked and ``best_idx[g]`` the
  lowest such anchor; every other GT has ``best_val = -inf``. Then the row-major first
  maximum of the remaining matrix is at anchor ``min{best_idx[g] : best_val[g] = max}`` and
  the lowest GT with that best value and anchor. Taking an anchor only invalidates the GTs
  whose best it was; each of those gets one ``[A]`` pass.
  """
  nb, g, a = iou.shape
  dtype = iou.dtype
  neg_inf = jnp.array(-jnp.inf, dtype)
  g_iota = lax.broadcasted_iota(jnp.int32, (nb, g), 1)
  steps = jnp.minimum(jnp.sum(valid, axis=1, dtype=jnp.int32), num_anchors)  # [B]

  best_val, best_idx = _first_max_chunked(iou, axis=-1, chunks=_ANCHOR_CHUNKS)
  best_val = jnp.where(valid, best_val, neg_inf)

  def refresh(state):
    """Recomputes the best remaining anchor of the first (image, GT) pair in ``need``."""
    best_val, best_idx, pick, need = state
    flat = jnp.argmax(need.reshape(-1))
    i, j = flat // g, flat % g
    column = lax.dynamic_slice(iou, (i, j, 0), (1, 1, a)).reshape(a)
    taken = jnp.zeros((a,), bool).at[lax.dynamic_index_in_dim(pick, i, keepdims=False)].set(
        True, mode="drop")
    value, index = _first_max(jnp.where(taken, -1.0, column), axis=0)
    return (best_val.at[i, j].set(value), best_idx.at[i, j].set(index), pick,
            need.at[i, j].set(False))

  def step(state):
    t, best_val, best_idx, pick, pick_iou = state
    active = t < steps  # [B]
    top = jnp.max(best_val, axis=1)  # [B]
    cand = best_val == top[:, None]
    anchor = jnp.min(jnp.where(cand, best_idx, a), axis=1)
    gt = jnp.min(jnp.where(cand & (best_idx == anchor[:, None]), g_iota, g), axis=1)
    won = active[:, None] & (g_iota == gt[:, None])  # [B, G], one-hot for active images
    pick = jnp.where(won, anchor[:, None], pick)
    pick_iou = jnp.where(won, top[:, None], pick_iou)
    best_val = jnp.where(won, neg_inf, best_val)
    # Remaining GTs whose best anchor was just taken need a fresh best; usually none.
    need = active[:, None] & (best_idx == anchor[:, None]) & (best_val > neg_inf)
    best_val, best_idx, pick, _ = lax.while_loop(
        lambda s: jnp.any(s[3]), refresh, (best_val, best_idx, pick, need))
    return t + 1, best_val, best_idx, pick, pick_iou

  state = (jnp.int32(0), best_val, best_idx, jnp.full((nb, g), a, jnp.int32),
           jnp.zeros((nb, g), dtype))
  _, _, _, pick, pick_iou = lax.while_loop(lambda s: s[0] < jnp.max(steps), step, state)
  return pick, pick_iou


# ---------------------------------------------------------------------------------------------
# Offsets.


def encode_boxes(
    gt: ArrayLike,
    anchors: ArrayLike,
    *,
    variances: tuple[float, float] | None = (0.1, 0.2),
) -> jax.Array:
  """Regression targets: the offsets of ``gt`` boxes relative to their anchors.

  With ``variances = (v0, v1)`` (the SSD / book ``--normalize`` / d2l form)::

    ((cx_g - cx_a) / w_a / v0, (cy_g - cy_a) / h_a / v0, log(w_g / w_a) / v1,
     log(h_g / h_a) / v1)

  With ``variances=None``, the source book's unnormalized offsets: the raw differences of the
  corners, ``gt - anchors`` in ``xyxy`` order.

  Never NaN or inf: ``w_g / w_a`` and ``h_g / h_a`` are clamped at the smallest positive
  normal float before the log, so zero-size (padding) or inverted GT rows give large negative
  but finite offsets (mask them out of the loss). Anchors should have positive sides; a side
  ``<= 0`` is treated as 1 so the result stays finite.

  Args:
    gt: ``[..., A, 4]`` ``xyxy`` boxes, the GT matched to each anchor (floating point).
    anchors: ``[A, 4]`` ``xyxy`` anchors (floating point), broadcast against ``gt``.
    variances: two positive scales ``(v0, v1)``, or None for raw corner differences.

  Returns:
    ``[..., A, 4]`` offsets (float32 for 16-bit float input).

  >>> encode_boxes(jnp.array([[1., 2., 5., 4.]]), jnp.array([[0., 0., 4., 4.]]))
  Array([[ 2.5     ,  2.5     ,  0.      , -3.465736]], dtype=float32)
  """
  variances = _check_variances(variances)
  gt, anchors, dtype = _check_offset_args(gt, "gt", anchors)
  return _encode(gt, anchors, variances=variances, dtype=dtype)


def decode_boxes(
    offsets: ArrayLike,
    anchors: ArrayLike,
    *,
    variances: tuple[float, float] | None = (0.1, 0.2),
) -> jax.Array:
  """Inverse of ``encode_boxes``: boxes from offsets relative to the anchors.

  ``cx = cx_a + dx v0 w_a``, ``cy = cy_a + dy v0 h_a``, ``w = w_a exp(min(dw v1, c))``,
  ``h = h_a exp(min(dh v1, c))`` with ``c = log(1000 / 16)`` (torchvision's
  ``bbox_xform_clip``: a box is at most 62.5 times its anchor's side, so ``exp`` never
  overflows); ``variances=None`` gives ``anchors + offsets``. Anchor sides ``<= 0`` are
  treated as 1, as in ``encode_boxes``.

  Args:
    offsets: ``[..., A, 4]`` offsets (floating point).
    anchors: ``[A, 4]`` ``xyxy`` anchors (floating point), broadcast against ``offsets``.
    variances: two positive scales ``(v0, v1)``, or None for raw corner differences.

  Returns:
    ``[..., A, 4]`` ``xyxy`` boxes (float32 for 16-bit float input).

  >>> decode_boxes(jnp.array([[2.5, 2.5, 0., -3.465736]]), jnp.array([[0., 0., 4., 4.]]))
  Array([[1., 2., 5., 4.]], dtype=float32)
  """
  variances = _check_variances(variances)
  offsets, anchors, dtype = _check_offset_args(offsets, "offsets", anchors)
  return _decode(offsets, anchors, variances=variances, dtype=dtype)


def _anchor_geometry(anchors):
  x1, y1, x2, y2 = (anchors[..., i] for i in range(4))
  w, h = x2 - x1, y2 - y1
  return 0.5 * (x1 + x2), 0.5 * (y1 + y2), jnp.where(w > 0, w, 1.0), jnp.where(h > 0, h, 1.0)


@functools.partial(jax.jit, static_argnames=("variances", "dtype"))
def _encode(gt, anchors, *, variances, dtype):
  gt, anchors = gt.astype(dtype), anchors.astype(dtype)
  if variances is None:
    return gt - anchors
  v0, v1 = variances
  cxa, cya, wa, ha = _anchor_geometry(anchors)
  x1, y1, x2, y2 = (gt[..., i] for i in range(4))
  return jnp.stack([
      (0.5 * (x1 + x2) - cxa) / wa / v0,
      (0.5 * (y1 + y2) - cya) / ha / v0,
      _clamped_log((x2 - x1) / wa) / v1,
      _clamped_log((y2 - y1) / ha) / v1,
  ], axis=-1)


def _clamped_log(x):
  """``log(max(x, tiny))`` with a zero (not NaN) gradient where ``x <= tiny``."""
  tiny = jnp.finfo(x.dtype).tiny
  ok = x > tiny
  return jnp.where(ok, jnp.log(jnp.where(ok, x, 1.0)), math.log(tiny))


@functools.partial(jax.jit, static_argnames=("variances", "dtype"))
def _decode(offsets, anchors, *, variances, dtype):
  offsets, anchors = offsets.astype(dtype), anchors.astype(dtype)
  if variances is None:
    return anchors + offsets
  v0, v1 = variances
  cxa, cya, wa, ha = _anchor_geometry(anchors)
  dx, dy, dw, dh = (offsets[..., i] for i in range(4))
  cx = cxa + dx * v0 * wa
  cy = cya + dy * v0 * ha
  half_w = 0.5 * wa * jnp.exp(jnp.minimum(dw * v1, _DECODE_CLIP))
  half_h = 0.5 * ha * jnp.exp(jnp.minimum(dh * v1, _DECODE_CLIP))
  return jnp.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=-1)


def _check_variances(variances: Any) -> tuple[float, float] | None:
  if variances is None:
    return None
  try:
    values = tuple(float(v) for v in variances)
  except (TypeError, ValueError):
    raise ValueError(
        f"`variances` must be None or two positive numbers, got {variances!r}.") from None
  if len(values) != 2 or not all(v > 0 and math.isfinite(v) for v in values):
    raise ValueError(f"`variances` must be None or two positive numbers, got {variances!r}.")
  return values


def _check_offset_args(x, name, anchors):
  x, anchors = _checks.array(x), _checks.array(anchors)
  _checks.check_last_dim(x, name, 4)
  _checks.check_last_dim(anchors, "anchors", 4)
  dtype = jnp.promote_types(_checks.compute_dtype(x, name, allow_int=False),
                            _checks.compute_dtype(anchors, "anchors", allow_int=False))
  try:
    np.broadcast_shapes(tuple(x.shape), tuple(anchors.shape))
  except ValueError:
    raise ValueError(
        f"`anchors` {tuple(anchors.shape)} does not broadcast against `{name}` "
        f"{tuple(x.shape)}.") from None
  return x, anchors, dtype
