"""Box geometry: format conversion, areas and the pairwise IoU family.

Conventions shared by every function here:

* Boxes are ``xyxy`` (``x1, y1, x2, y2``) unless a function says otherwise; the pairwise
  functions take ``boxes1 [..., N, 4]`` and ``boxes2 [..., M, 4]``, broadcast the leading
  dimensions and return ``[..., N, M]``.
* Width and height are clamped at 0: a box with zero or negative width or height (an
  *empty* box) has area 0 and IoU 0 with everything, never NaN (torchvision returns NaN,
  pytorch/vision#3404).
* Finite input never gives NaN or inf, whatever its scale: IoU, GIoU, DIoU and CIoU are
  invariant to scaling both boxes, so each pair is computed on its coordinates times a power
  of two that brings the larger box's largest ``|coordinate|`` into ``[0.5, 1)``
  (``jaxvision.kernels.iou.box_scales``). A power of two scales exactly, so ordinary boxes
  give the same bits as the plain formula, and boxes with coordinates near ``1e20`` (areas
  past float32's ``3.4e38``) or ``1e-25`` (areas below its smallest float) keep their IoU:
  ``box_iou([[0, 0, 1e20, 1e20]], [[0, 0, 2e20, 1e20]])`` is 0.5, as at any other scale.
* A pair with a NaN or infinite coordinate in either box is NaN, for every member of the
  family and on both implementations (as NaN propagates through torchvision's formulas):
  such a box has no IoU, and NaN shows it rather than a plausible 0. Other pairs are not
  affected. (``jaxvision.ops.matching.match_anchors`` treats such ground truth as invalid.)
* Integer boxes are promoted to float32; bfloat16 and float16 boxes are computed in float32
  (so the results are float32); float64 stays float64 under ``jax_enable_x64``.
* Every quotient is guarded with the double-``where`` trick, so values *and* gradients are
  finite everywhere: identical boxes, empty boxes, disjoint boxes, a box against itself.

How it runs. Each pairwise function is written as one broadcast of ``[..., N, 1]`` against
``[..., 1, M]`` coordinates with only elementwise operations after it, so XLA compiles it into
a single loop that reads the ``4 (N + M)`` coordinates and writes the ``N M`` result: no
``[N, M, 2]`` corner tensors and no separate intersection/union arrays as in torchvision. The
public functions validate their arguments (static shapes and dtypes, no device work) and call
one jitted core, so a call outside ``jit`` runs that same fused loop rather than one
dispatch per operation.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxvision.kernels import iou as _iou_kernel
from jaxvision import _checks
from jaxvision.ops import _dispatch
from jaxvision.ops._dispatch import Implementation

__all__ = [
    "box_convert", "box_area", "box_iou", "generalized_box_iou", "distance_box_iou",
    "complete_box_iou",
]

_FORMATS = ("xyxy", "xywh", "cxcywh")


# ---------------------------------------------------------------------------------------------
# Formats and areas.


def box_convert(boxes: ArrayLike, *, in_fmt: str, out_fmt: str) -> jax.Array:
  """Converts boxes between the ``xyxy``, ``xywh`` and ``cxcywh`` formats.

  ``xyxy`` is ``(x1, y1, x2, y2)``, ``xywh`` is ``(x1, y1, width, height)`` and ``cxcywh`` is
  ``(centre x, centre y, width, height)``.

  Args:
    boxes: ``[..., 4]`` boxes in ``in_fmt``.
    in_fmt: the format of ``boxes``: ``"xyxy"``, ``"xywh"`` or ``"cxcywh"``.
    out_fmt: the format to return, one of the same three.

  Returns:
    ``[..., 4]`` boxes in ``out_fmt`` (float32 for integer or 16-bit float input).

  >>> box_convert(jnp.array([[10., 20., 30., 60.]]), in_fmt="xyxy", out_fmt="cxcywh")
  Array([[20., 40., 20., 40.]], dtype=float32)
  """
  _checks.check_choice(in_fmt, "in_fmt", _FORMATS)
  _checks.check_choice(out_fmt, "out_fmt", _FORMATS)
  boxes, dtype = _check_boxes(boxes, "boxes")
  return _convert(boxes, in_fmt=in_fmt, out_fmt=out_fmt, dtype=dtype)


@functools.partial(jax.jit, static_argnames=("in_fmt", "out_fmt", "dtype"))
def _convert(boxes, *, in_fmt, out_fmt, dtype):
  boxes = boxes.astype(dtype)
  if in_fmt == out_fmt:
    return boxes
  a, b, c, d = _unstack(boxes)
  if in_fmt == "xywh":
    a, b, c, d = a, b, a + c, b + d
  elif in_fmt == "cxcywh":
    a, b, c, d = a - 0.5 * c, b - 0.5 * d, a + 0.5 * c, b + 0.5 * d
  # (a, b, c, d) is xyxy now.
  if out_fmt == "xywh":
    a, b, c, d = a, b, c - a, d - b
  elif out_fmt == "cxcywh":
    a, b, c, d = 0.5 * (a + c), 0.5 * (b + d), c - a, d - b
  return jnp.stack([a, b, c, d], axis=-1)


def box_area(boxes: ArrayLike) -> jax.Array:
  """Areas of ``xyxy`` boxes: ``max(x2 - x1, 0) * max(y2 - y1, 0)``.

  Width and height are clamped at 0, so a box with zero or negative (inverted) width or
  height has area 0.

  Args:
    boxes: ``[..., 4]`` ``xyxy`` boxes.

  Returns:
    ``[...]`` areas (float32 for integer or 16-bit float input).

  >>> box_area(jnp.array([[0, 0, 2, 3], [5, 5, 4, 9]]))
  Array([6., 0.], dtype=float32)
  """
  boxes, dtype = _check_boxes(boxes, "boxes")
  return _box_area(boxes, dtype=dtype)


@functools.partial(jax.jit, static_argnames=("dtype",))
def _box_area(boxes, *, dtype):
  return _area(*_unstack(boxes.astype(dtype)))


# ---------------------------------------------------------------------------------------------
# The IoU family.


def box_iou(boxes1: ArrayLike, boxes2: ArrayLike, *,
            implementation: Implementation = None) -> jax.Array:
  """Pairwise intersection over union (Jaccard index) of two sets of ``xyxy`` boxes.

  ``IoU = inter / union`` with ``union = area1 + area2 - inter``; 0 where ``union`` is 0 (two
  empty boxes). Empty boxes (zero or negative width or height) have IoU 0 with everything.

  Args:
    boxes1: ``[..., N, 4]`` ``xyxy`` boxes.
    boxes2: ``[..., M, 4]`` ``xyxy`` boxes; the leading dimensions broadcast with
      ``boxes1``'s.
    implementation: ``"xla"``, ``"pallas"`` (the tiled kernel in ``jaxvision.kernels.iou``,
      interpreted off GPU; forward only, no gradient) or None (see
      ``jaxvision.ops._dispatch``).

  Returns:
    ``[..., N, M]`` IoU in ``[0, 1]`` (float32 for integer or 16-bit float input).

  >>> box_iou(jnp.array([[0., 0., 1., 1.]]), jnp.array([[0.5, 0., 1.5, 1.], [2., 2., 2., 3.]]))
  Array([[0.33333334, 0.        ]], dtype=float32)
  """
  return _pairwise(boxes1, boxes2, kind="iou", implementation=implementation)


def generalized_box_iou(boxes1: ArrayLike, boxes2: ArrayLike, *,
                        implementation: Implementation = None) -> jax.Array:
  """Pairwise generalized IoU (Rezatofighi et al., 2019) of two sets of ``xyxy`` boxes.

  ``GIoU = IoU - (area_C - union) / area_C`` with ``C`` the smallest box enclosing both; the
  penalty is 0 where ``area_C`` is 0. In ``[-1, 1]`` and never above the IoU.

  Args:
    boxes1: ``[..., N, 4]`` ``xyxy`` boxes.
    boxes2: ``[..., M, 4]`` ``xyxy`` boxes; the leading dimensions broadcast.
    implementation: ``"xla"``, ``"pallas"`` (the tiled kernel in ``jaxvision.kernels.iou``,
      interpreted off GPU; forward only, no gradient) or None (see
      ``jaxvision.ops._dispatch``).

  Returns:
    ``[..., N, M]`` GIoU (float32 for integer or 16-bit float input).

  >>> generalized_box_iou(jnp.array([[0., 0., 1., 1.]]), jnp.array([[2., 0., 3., 1.]]))
  Array([[-0.33333334]], dtype=float32)
  """
  return _pairwise(boxes1, boxes2, kind="giou", implementation=implementation)


def distance_box_iou(boxes1: ArrayLike, boxes2: ArrayLike) -> jax.Array:
  """Pairwise distance IoU (Zheng et al., 2020) of two sets of ``xyxy`` boxes.

  ``DIoU = IoU - rho^2 / c^2`` with ``rho`` the distance between the box centres and ``c``
  the diagonal of the smallest enclosing box; the penalty is 0 where ``c`` is 0. Always
  ``<= IoU``; in ``[-1, 1]`` for boxes with non-negative sides.

  Args:
    boxes1: ``[..., N, 4]`` ``xyxy`` boxes.
    boxes2: ``[..., M, 4]`` ``xyxy`` boxes; the leading dimensions broadcast.

  Returns:
    ``[..., N, M]`` DIoU (float32 for integer or 16-bit float input).

  >>> distance_box_iou(jnp.array([[0., 0., 2., 2.]]), jnp.array([[1., 0., 3., 2.]])).round(4)
  Array([[0.2564]], dtype=float32)
  """
  return _pairwise(boxes1, boxes2, kind="diou")


def complete_box_iou(boxes1: ArrayLike, boxes2: ArrayLike) -> jax.Array:
  """Pairwise complete IoU (Zheng et al., 2020) of two sets of ``xyxy`` boxes.

  ``CIoU = DIoU - alpha v`` with the aspect-ratio term
  ``v = 4 / pi^2 (atan(w2 / h2) - atan(w1 / h1))^2`` and ``alpha = v / (1 - IoU + v)``.
  As in the paper and torchvision, ``alpha`` is a constant for differentiation
  (``stop_gradient``). ``v`` is 0 unless both boxes have positive height (its denominators),
  and ``alpha`` is 0 where ``v`` is 0. Always ``<= DIoU <= IoU``.

  Args:
    boxes1: ``[..., N, 4]`` ``xyxy`` boxes.
    boxes2: ``[..., M, 4]`` ``xyxy`` boxes; the leading dimensions broadcast.

  Returns:
    ``[..., N, M]`` CIoU (float32 for integer or 16-bit float input).

  >>> complete_box_iou(jnp.array([[0., 0., 2., 2.]]), jnp.array([[0., 0., 4., 2.]])).round(4)
  Array([[0.4468]], dtype=float32)
  """
  return _pairwise(boxes1, boxes2, kind="ciou")


# ---------------------------------------------------------------------------------------------
# Building blocks (private). ``a`` and ``b`` are 4-tuples of coordinates shaped ``[..., N, 1]``
# and ``[..., 1, M]``; everything below is elementwise, so one function fuses into one loop.


def _unstack(boxes):
  return boxes[..., 0], boxes[..., 1], boxes[..., 2], boxes[..., 3]


def _area(x1, y1, x2, y2):
  return jnp.maximum(x2 - x1, 0.0) * jnp.maximum(y2 - y1, 0.0)


def _safe_div(num, den):
  """``num / den`` where ``den > 0``, else 0; the double ``where`` keeps gradients finite."""
  positive = den > 0.0
  return jnp.where(positive, num / jnp.where(positive, den, 1.0), 0.0)


def _check_boxes(boxes, name):
  """``boxes`` as an array (no copy) and the dtype it is computed in; checks ``[..., 4]``."""
  boxes = _checks.array(boxes)
  _checks.check_last_dim(boxes, name, 4)
  return boxes, _checks.compute_dtype(boxes, name, allow_int=True)


def _pairwise(boxes1, boxes2, *, kind, implementation=None):
  """Validates two box sets (trace time, no dispatch) and runs the jitted ``kind`` core."""
  boxes1, dtype1 = _check_boxes(boxes1, "boxes1")
  boxes2, dtype2 = _check_boxes(boxes2, "boxes2")
  for name, arr in (("boxes1", boxes1), ("boxes2", boxes2)):
    if arr.ndim < 2:
      raise ValueError(f"`{name}` must have shape [..., N, 4], got shape {tuple(arr.shape)}.")
  try:
    np.broadcast_shapes(boxes1.shape[:-2], boxes2.shape[:-2])
  except ValueError:
    raise ValueError(
        f"The leading dimensions of `boxes1` {tuple(boxes1.shape)} and `boxes2` "
        f"{tuple(boxes2.shape)} do not broadcast.") from None
  dtype = jnp.promote_types(dtype1, dtype2)
  path, interpret = _dispatch.resolve(implementation, "iou")
  if path == "pallas":
    return _pairwise_kernel(boxes1, boxes2, kind=kind, dtype=dtype, interpret=interpret)
  return _pairwise_core(boxes1, boxes2, kind=kind, dtype=dtype)


def _pairwise_kernel(boxes1, boxes2, *, kind, dtype, interpret):
  """The Pallas path: broadcast the leading dimensions, flatten them into the kernel's batch."""
  lead = np.broadcast_shapes(boxes1.shape[:-2], boxes2.shape[:-2])
  n, m = boxes1.shape[-2], boxes2.shape[-2]
  boxes1 = jnp.broadcast_to(boxes1, lead + (n, 4)).reshape((-1, n, 4))
  boxes2 = jnp.broadcast_to(boxes2, lead + (m, 4)).reshape((-1, m, 4))
  out = _iou_kernel.iou_matrix(boxes1, boxes2, kind=kind, interpret=interpret, nonfinite="nan")
  return out.reshape(lead + (n, m)).astype(dtype)


@functools.partial(jax.jit, static_argnames=("kind", "dtype"))
def _pairwise_core(boxes1, boxes2, *, kind, dtype):
  boxes1, scale1 = _iou_kernel.box_scales(boxes1.astype(dtype))
  boxes2, scale2 = _iou_kernel.box_scales(boxes2.astype(dtype))
  # Each pair at the smaller of its two power-of-two factors (exact, see the module notes);
  # 0 marks a pair with a non-finite box, NaN at the end.
  scale = jnp.minimum(scale1[..., :, None], scale2[..., None, :])
  a = tuple(c[..., :, None] * scale for c in _unstack(boxes1))
  b = tuple(c[..., None, :] * scale for c in _unstack(boxes2))
  return jnp.where(scale > 0.0, _pairwise_scaled(a, b, kind=kind), jnp.nan)


def _pairwise_scaled(a, b, *, kind):
  iou, union = _iou_union(a, b)
  if kind == "iou":
    return iou
  if kind == "giou":
    cw, ch = _enclosing_sides(a, b)
    enclosing = jnp.maximum(cw, 0.0) * jnp.maximum(ch, 0.0)
    # area_C >= union mathematically; the clamp absorbs rounding, so GIoU <= IoU always.
    return iou - _safe_div(jnp.maximum(enclosing - union, 0.0), enclosing)
  diou = iou - _centre_penalty(a, b)
  if kind == "diou":
    return diou
  ta, ha_ok = _aspect_angle(a)
  tb, hb_ok = _aspect_angle(b)
  v = jnp.where(ha_ok & hb_ok, (4.0 / math.pi**2) * jnp.square(tb - ta), 0.0)
  positive = v > 0.0
  alpha = jax.lax.stop_gradient(
      jnp.where(positive, v / jnp.where(positive, 1.0 - iou + v, 1.0), 0.0))
  return diou - alpha * v


def _iou_union(a, b):
  ax1, ay1, ax2, ay2 = a
  bx1, by1, bx2, by2 = b
  iw = jnp.maximum(jnp.minimum(ax2, bx2) - jnp.maximum(ax1, bx1), 0.0)
  ih = jnp.maximum(jnp.minimum(ay2, by2) - jnp.maximum(ay1, by1), 0.0)
  inter = iw * ih
  union = _area(*a) + _area(*b) - inter
  # inter <= union in exact arithmetic; XLA may contract ``a + b - iw * ih`` into an FMA,
  # which can round ``union`` one ulp below ``inter`` (identical boxes), hence the clamp.
  return jnp.minimum(_safe_div(inter, union), 1.0), union


def _enclosing_sides(a, b):
  ax1, ay1, ax2, ay2 = a
  bx1, by1, bx2, by2 = b
  return (jnp.maximum(ax2, bx2) - jnp.minimum(ax1, bx1),
          jnp.maximum(ay2, by2) - jnp.minimum(ay1, by1))


def _centre_penalty(a, b):
  """``rho^2 / c^2`` (0 where ``c`` is 0): squared centre distance over squared diagonal."""
  ax1, ay1, ax2, ay2 = a
  bx1, by1, bx2, by2 = b
  cw, ch = _enclosing_sides(a, b)
  diagonal = jnp.square(cw) + jnp.square(ch)
  # Twice the centre offsets, so the squared distance is a quarter of their squares.
  dx = (bx1 + bx2) - (ax1 + ax2)
  dy = (by1 + by2) - (ay1 + ay2)
  return _safe_div(0.25 * (jnp.square(dx) + jnp.square(dy)), diagonal)


def _aspect_angle(box):
  """``(atan(w / h), h > 0)`` with ``w, h`` clamped at 0 (the angle is 0 where ``h`` is 0)."""
  x1, y1, x2, y2 = box
  w = jnp.maximum(x2 - x1, 0.0)
  h = jnp.maximum(y2 - y1, 0.0)
  ok = h > 0.0
  return jnp.arctan(w / jnp.where(ok, h, 1.0)), ok
