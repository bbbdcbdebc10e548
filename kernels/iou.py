"""Pallas kernel for pairwise IoU / GIoU matrices of ``xyxy`` boxes.

The kernel tiles the output ``[B, N, M]`` over a grid ``(B, N / block_n, M / block_m)``; each
program reads ``block_n`` boxes of the first set and ``block_m`` of the second and writes one
``[block_n, block_m]`` tile. Coordinates are passed transposed, ``[B, 4, N]``, so that each
coordinate of a block is one contiguous run along the box axis (the minor, lane axis); the
kernel reads it as a vector with one ref load per coordinate and broadcasts rows against
columns. Sizes that are not block multiples are padded with zero boxes and the result is
sliced back.

Semantics (the library's): boxes are ``xyxy``; widths and heights are clipped at 0, so a
degenerate or inverted box has area 0 and IoU 0 with everything (never NaN for finite
boxes; a pair with a NaN or infinite coordinate is 0, or NaN with ``nonfinite="nan"``);
``IoU = inter / (area1 + area2 - inter)``, 0 where the union is 0; ``GIoU = IoU - (C - U) / C``
with ``C`` the area of the smallest enclosing box (from the raw corner coordinates, its width
and height clipped at 0) and the penalty 0 where ``C`` is 0. Everything is computed in
float32, whatever the input dtype, one correctly rounded operation at a time (no fused
multiply-adds, see :func:`iou_tile`), so on CPU the IoU equals NumPy's float32 evaluation of
the same formula bit for bit.

Scale. IoU and GIoU do not change when both boxes are scaled by the same factor, so each pair
is computed on its coordinates multiplied by a power of two (:func:`box_scales`: the smaller
of the two boxes' factors, each bringing the box's largest ``|coordinate|`` into
``[0.5, 1)``). Multiplying by a power of two is exact, so ordinary boxes give the very same
bits as the unscaled formula, while boxes with coordinates near ``1e20`` (whose areas would
overflow float32 to ``inf``) or near ``1e-25`` (whose areas would underflow to 0) keep
their IoU. A pair with a NaN or infinite coordinate is 0 by default, NaN with
``nonfinite="nan"`` (the contract of ``jaxvision.ops.boxes``). The factors are computed by
the wrapper, outside the kernel, and passed in as one extra input per box set.

Status: as for every kernel here (see the ``kernels`` package docstring): tested in interpret
mode on CPU, lowered through Pallas' Triton backend on GPU, not yet run on a GPU. On GPU the
divisions are inline PTX ``div.rn.f32`` (Triton's own float32 ``/`` is approximate), so the
compiled kernel is meant to match the CPU bit for bit.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Literal

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pltriton
from jax.typing import ArrayLike

from jaxvision import _checks  # NumPy + JAX only: kernels stay leaves

__all__ = ["IoUConfig", "iou_matrix", "iou_tile", "box_scales"]


@dataclasses.dataclass(frozen=True)
class IoUConfig:
  """Tuning parameters of :func:`iou_matrix`.

  Attributes:
    block_n: rows (boxes of the first set) per tile; a power of two.
    block_m: columns (boxes of the second set) per tile; a power of two.
    num_warps: Triton warps per program of the compiled GPU kernel; a power of two <= 32.

  The wrapper shrinks a block to the next power of two above the problem size, so small
  inputs are not padded up to a full default block.
  """

  block_n: int = 64
  block_m: int = 128
  num_warps: int = 4

  def __post_init__(self):
    _checks.check_power_of_two(self.block_n, "block_n")
    _checks.check_power_of_two(self.block_m, "block_m")
    _checks.check_power_of_two(self.num_warps, "num_warps", maximum=32)


def _next_pow2(n: int) -> int:
  return 1 << max(n - 1, 0).bit_length()


def _round_up(n: int, multiple: int) -> int:
  return -(-n // multiple) * multiple


def _rounded(product):
  """``product`` unchanged, behind a select that keeps compilers from contracting it.

  XLA:CPU (and nvcc, Triton) fuse ``a * b + c`` into one FMA, which skips the rounding of
  ``a * b``; then ``area_i + area_j`` is no longer symmetric in ``i`` and ``j`` and IoUs
  differ by an ulp from float32 evaluated step by step (torchvision's CPU kernel). A product
  seen through a ``select`` cannot be fused; ``x < 0`` is never true here (products of
  clipped widths), and NaN passes through.
  """
  return jnp.where(product < 0.0, 0.0, product)


def _divide(num, den, *, ieee: bool):
  """``num / den`` in float32; with ``ieee``, as PTX ``div.rn.f32`` (correctly rounded).

  Triton lowers a float32 ``/`` to ``div.full.f32``, which may be 2 ulp off; inline PTX
  keeps the compiled GPU kernel on IEEE division. The interpreter (CPU) cannot run PTX and
  needs no help: XLA:CPU divides exactly.
  """
  if not ieee:
    return num / den
  num, den = jnp.broadcast_arrays(num, den)
  [quotient] = pltriton.elementwise_inline_asm(
      "div.rn.f32 $0, $1, $2;", args=[num, den], constraints="=f,f,f", pack=1,
      result_shape_dtypes=[jax.ShapeDtypeStruct(num.shape, jnp.float32)])
  return quotient


def box_scales(boxes: ArrayLike) -> tuple[jax.Array, jax.Array]:
  """Per-box power-of-two scale factors for overflow-free IoU, and the boxes made finite.

  A box's factor is ``2**-e`` with ``e`` the exponent of its largest ``|coordinate|`` (so
  that coordinate times the factor is in ``[0.5, 1)``; ``e`` is clipped so the factor stays
  a normal float). A pair of boxes is compared at the smaller of their two factors: IoU and
  its family are scale invariant, the multiplication is exact, and no area, square or
  difference can overflow or underflow. A box with a NaN or infinite coordinate gets factor
  0 (the pair's result is then fixed, see :func:`iou_tile`) and its coordinates are replaced by 0,
  so nothing downstream computes on them (values and gradients stay finite before the final
  select). The factors carry no gradient: they are piecewise constant.

  Args:
    boxes: ``[..., 4]`` floating-point boxes.

  Returns:
    ``(boxes [..., 4], scales [...])`` in the dtype of ``boxes``.

  >>> _, scales = box_scales(jnp.array([[0., 0., 640., 480.], [0., 0., 1e20, 1.],
  ...                                   [0., 0., jnp.nan, 1.]]))
  >>> [float(s) for s in scales] == [2.0**-10, 2.0**-67, 0.0]
  True
  """
  boxes = jnp.asarray(boxes)
  finite = jnp.all(jnp.isfinite(boxes), axis=-1)
  boxes = jnp.where(finite[..., None], boxes, 0.0)
  largest = jax.lax.stop_gradient(jnp.max(jnp.abs(boxes), axis=-1))
  _, exponent = jnp.frexp(largest)  # largest = mantissa * 2**exponent, mantissa in [0.5, 1)
  limit = jnp.finfo(boxes.dtype).maxexp - 2  # 2**-limit and 2**limit are normal floats
  scale = jnp.ldexp(jnp.ones_like(largest), -jnp.clip(exponent, -limit, limit))
  return boxes, jnp.where(finite, scale, 0.0)


def iou_tile(x1, y1, x2, y2, u1, v1, u2, v2, *, giou: bool = False, ieee_division: bool = False,
             scales=None, nonfinite_value: float = float("nan")):
  """Element-wise IoU (or GIoU) of broadcastable ``xyxy`` coordinates, in float32.

  Shared by the kernels (so the mask of ``kernels.nms`` uses exactly this arithmetic):
  ``inter / (area_a + area_b - inter)`` with every product rounded before it is added, 0
  where the union is 0; GIoU subtracts ``(C - U) / C``, 0 where ``C`` is 0.

  Args:
    x1, y1, x2, y2: coordinates of the first boxes (arrays broadcastable with the others).
    u1, v1, u2, v2: coordinates of the second boxes.
    giou: return GIoU instead of IoU.
    ieee_division: divide with inline PTX ``div.rn.f32`` (compiled Triton kernels only).
    scales: None (the coordinates as they are), or ``(scale_a, scale_b)`` from
      :func:`box_scales`, broadcastable like the coordinates: each pair is computed at the
      smaller of its two factors (exact: powers of two), and is ``nonfinite_value`` where
      that is 0 (a box with a NaN or infinite coordinate).
    nonfinite_value: the result for such pairs (only with ``scales``).

  Returns:
    The broadcast shape of the inputs, float32.
  """
  if scales is not None:
    scale = jnp.minimum(*scales)
    x1, y1, x2, y2 = (c * scale for c in (x1, y1, x2, y2))
    u1, v1, u2, v2 = (c * scale for c in (u1, v1, u2, v2))
    return jnp.where(scale > 0.0, iou_tile(x1, y1, x2, y2, u1, v1, u2, v2, giou=giou,
                                           ieee_division=ieee_division), nonfinite_value)
  area_a = _rounded(jnp.maximum(x2 - x1, 0.0) * jnp.maximum(y2 - y1, 0.0))
  area_b = _rounded(jnp.maximum(u2 - u1, 0.0) * jnp.maximum(v2 - v1, 0.0))
  w = jnp.maximum(jnp.minimum(x2, u2) - jnp.maximum(x1, u1), 0.0)
  h = jnp.maximum(jnp.minimum(y2, v2) - jnp.maximum(y1, v1), 0.0)
  inter = _rounded(w * h)
  union = area_a + area_b - inter
  positive = union > 0.0
  iou = jnp.where(positive, _divide(inter, jnp.where(positive, union, 1.0), ieee=ieee_division),
                  0.0)
  if giou:
    cw = jnp.maximum(jnp.maximum(x2, u2) - jnp.minimum(x1, u1), 0.0)
    ch = jnp.maximum(jnp.maximum(y2, v2) - jnp.minimum(y1, v1), 0.0)
    enclosing = _rounded(cw * ch)
    has_c = enclosing > 0.0
    penalty = jnp.where(
        has_c, _divide(enclosing - union, jnp.where(has_c, enclosing, 1.0), ieee=ieee_division),
        0.0)
    iou = iou - penalty
  return iou


def _iou_kernel(b1_ref, b2_ref, s1_ref, s2_ref, out_ref, *, giou: bool, ieee_division: bool,
                nonfinite_value: float):
  """One output tile: ``b1_ref [4, bn]``, ``b2_ref [4, bm]`` and their scale factors
  ``s1_ref [bn]``, ``s2_ref [bm]`` -> ``out_ref [bn, bm]`` float32."""
  rows = (b1_ref[k, :][:, None] for k in range(4))  # [bn, 1] each
  cols = (b2_ref[k, :][None, :] for k in range(4))  # [1, bm] each
  scales = (s1_ref[...][:, None], s2_ref[...][None, :])
  out_ref[...] = iou_tile(*rows, *cols, giou=giou, ieee_division=ieee_division, scales=scales,
                          nonfinite_value=nonfinite_value)


@functools.partial(jax.jit,
                   static_argnames=("giou", "block_n", "block_m", "num_warps", "interpret",
                                    "nonfinite"))
def _iou_call(boxes1, boxes2, *, giou, block_n, block_m, num_warps, interpret, nonfinite):
  b, n, _ = boxes1.shape
  m = boxes2.shape[1]
  n_pad, m_pad = _round_up(n, block_n), _round_up(m, block_m)
  boxes1, s1 = box_scales(boxes1)
  boxes2, s2 = box_scales(boxes2)
  # [B, N, 4] -> [B, 4, N]: the box axis becomes the minor (lane) axis of every block.
  # Padding boxes are zeros with factor 1 (finite); their results are sliced off.
  t1 = jnp.pad(jnp.swapaxes(boxes1, 1, 2), ((0, 0), (0, 0), (0, n_pad - n)))
  t2 = jnp.pad(jnp.swapaxes(boxes2, 1, 2), ((0, 0), (0, 0), (0, m_pad - m)))
  s1 = jnp.pad(s1, ((0, 0), (0, n_pad - n)), constant_values=1.0)
  s2 = jnp.pad(s2, ((0, 0), (0, m_pad - m)), constant_values=1.0)
  out = pl.pallas_call(
      functools.partial(_iou_kernel, giou=giou, ieee_division=not interpret,
                        nonfinite_value=0.0 if nonfinite == "zero" else math.nan),
      out_shape=jax.ShapeDtypeStruct((b, n_pad, m_pad), jnp.float32),
      grid=(b, n_pad // block_n, m_pad // block_m),
      in_specs=[
          pl.BlockSpec((pl.squeezed, 4, block_n), lambda bi, i, j: (bi, 0, i)),
          pl.BlockSpec((pl.squeezed, 4, block_m), lambda bi, i, j: (bi, 0, j)),
          pl.BlockSpec((pl.squeezed, block_n), lambda bi, i, j: (bi, i)),
          pl.BlockSpec((pl.squeezed, block_m), lambda bi, i, j: (bi, j)),
      ],
      out_specs=pl.BlockSpec((pl.squeezed, block_n, block_m), lambda bi, i, j: (bi, i, j)),
      interpret=interpret,
      compiler_params=pltriton.CompilerParams(num_warps=num_warps),
      name="iou_matrix",
  )(t1, t2, s1, s2)
  return out[:, :n, :m]


def iou_matrix(
    boxes1: ArrayLike,
    boxes2: ArrayLike,
    *,
    kind: Literal["iou", "giou"] = "iou",
    config: IoUConfig = IoUConfig(),
    interpret: bool = False,
    nonfinite: Literal["zero", "nan"] = "zero",
) -> jax.Array:
  """Pairwise IoU (or GIoU) of two batched sets of ``xyxy`` boxes, computed by a Pallas kernel.

  Args:
    boxes1: ``[B, N, 4]`` boxes (any real dtype; computed in float32).
    boxes2: ``[B, M, 4]`` boxes.
    kind: ``"iou"`` (in ``[0, 1]``) or ``"giou"`` (generalised IoU, in ``[-1, 1]``).
    config: block sizes, see :class:`IoUConfig`.
    interpret: run the kernel with the Pallas interpreter (CPU, tests).
    nonfinite: the result for a pair with a NaN or infinite coordinate: ``"zero"`` (such a
      box overlaps nothing: what soft-NMS wants, and what this kernel always gave) or
      ``"nan"`` (the contract of ``jaxvision.ops.boxes``, which passes it).

  Returns:
    ``[B, N, M]`` float32: entry ``[b, i, j]`` compares ``boxes1[b, i]`` with ``boxes2[b, j]``.

  >>> import numpy as np
  >>> boxes = jnp.array([[[0., 0., 2., 2.], [1., 1., 3., 3.], [2., 2., 0., 0.]]])
  >>> np.asarray(iou_matrix(boxes, boxes, interpret=True), float).round(4).tolist()
  [[[1.0, 0.1429, 0.0], [0.1429, 1.0, 0.0], [0.0, 0.0, 0.0]]]
  >>> giou = iou_matrix(boxes[:, :1], boxes[:, 1:2], kind="giou", interpret=True)
  >>> np.asarray(giou, float).round(4).tolist()
  [[[-0.0794]]]
  """
  if kind not in ("iou", "giou"):
    raise ValueError(f"`kind` must be 'iou' or 'giou', got {kind!r}.")
  _checks.check_choice(nonfinite, "nonfinite", ("zero", "nan"))
  if not isinstance(config, IoUConfig):
    raise TypeError(f"`config` must be an IoUConfig, got {type(config).__name__}.")
  boxes1, boxes2 = jnp.asarray(boxes1), jnp.asarray(boxes2)
  for name, arr in (("boxes1", boxes1), ("boxes2", boxes2)):
    if arr.ndim != 3 or arr.shape[-1] != 4:
      raise ValueError(f"`{name}` must have shape [B, N, 4], got {tuple(arr.shape)}.")
    if not (jnp.issubdtype(arr.dtype, jnp.floating) or jnp.issubdtype(arr.dtype, jnp.integer)):
      raise TypeError(f"`{name}` must be a real array, got dtype {arr.dtype}.")
  if boxes1.shape[0] != boxes2.shape[0]:
    raise ValueError(f"`boxes1` and `boxes2` must have the same batch size, got "
                     f"{boxes1.shape[0]} and {boxes2.shape[0]}.")
  b, n, m = boxes1.shape[0], boxes1.shape[1], boxes2.shape[1]
  if b == 0 or n == 0 or m == 0:
    return jnp.zeros((b, n, m), jnp.float32)
  boxes1, boxes2 = boxes1.astype(jnp.float32), boxes2.astype(jnp.float32)
  return _iou_call(boxes1, boxes2, giou=kind == "giou",
                   block_n=min(config.block_n, _next_pow2(n)),
                   block_m=min(config.block_m, _next_pow2(m)), num_warps=config.num_warps,
                   interpret=interpret, nonfinite=nonfinite)
