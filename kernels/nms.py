"""Greedy NMS as a bit-packed suppression mask (Pallas kernel) plus an on-device greedy pass.

The layout of torchvision's CUDA NMS, written for Pallas:

1. Sort the candidates by precedence (descending score, ties to the lower index).
2. :func:`suppression_mask`: a Pallas kernel over a grid ``(B, row blocks, word blocks)``
   computes, for every sorted box ``i`` and every later box ``j > i``, whether
   ``IoU(i, j) > iou_threshold``, and packs 32 answers into each ``uint32`` word inside the
   kernel: the tile is a ``[block_rows, block_words, 32]`` boolean array whose last axis is
   turned into bits with a shift and a sum (distinct powers of two, so the sum is the OR).
   Tiles that lie entirely on or below the diagonal (no ``j > i``) skip the IoU work and
   store zeros.
3. :func:`keep_from_mask`: the sequential greedy pass, on device: walk the sorted boxes in
   order with a ``uint32`` "removed" bitset of ``W`` words; a valid box that is not removed
   is kept and ORs its mask row into the bitset. The walk stops after the last valid box or
   once ``max_kept`` boxes are kept. ``NMSConfig.keep_pass`` picks a second Pallas kernel
   (default: one program per image runs the whole walk, as mmcv's CUDA NMS does in one
   block, so a GPU pays one launch instead of one XLA step per box) or a ``lax.while_loop``
   in plain JAX. Nothing goes to the host (torchvision's CUDA NMS does this pass on the CPU).
4. :func:`nms`: map the kept sorted positions back to original indices, padded with -1.

IoU is ``inter / (area_i + area_j - inter)`` in float32, in that arithmetic order (the order
torchvision's float32 kernels use), with widths and heights clipped at 0 and IoU 0 where the
union is 0; the threshold test is strict (``>``) against the threshold rounded to float32.
The IoU is ``kernels.iou.iou_tile``, which keeps compilers from fusing its products into
FMAs, so on CPU (interpret mode) every IoU equals a step-by-step float32 evaluation and the
selection agrees exactly with float32 greedy NMS, including IoUs that land on the threshold.
(Plain jitted XLA:CPU code does contract ``a * b + c`` into an FMA and can differ by an ulp.)

Status: tested in interpret mode on CPU (how CI runs it). GPU: the calls pass
``compiler_params=pallas.triton.CompilerParams(...)``, so they lower through Pallas' Triton
backend (since JAX 0.10 a plain ``pl.pallas_call`` on GPU goes to Mosaic GPU instead, whose
layout rules these kernels do not follow). Checked so far on machines without a GPU only:
``jax.export(..., platforms=["cuda"])`` lowers every kernel to Triton IR (a CPU test in
``tests/kernels`` keeps it so), and Triton 3.9 compiled that IR to sm_90 (H100) cubin (checked
once, by hand). They have not yet been run on a GPU, so GPU results and speed are unverified.
The IoU divisions are inline PTX ``div.rn.f32`` on GPU, so decisions are meant to match the CPU
exactly. Should the keep-pass kernel misbehave there, ``NMSConfig(keep_pass="xla")`` replaces it
with plain JAX.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Literal

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pltriton
from jax.typing import ArrayLike

from .iou import iou_tile

__all__ = ["NMSConfig", "suppression_mask", "keep_from_mask", "nms"]

_BITS = 32  # bits per mask word


def _check_block(value, name: str) -> None:
  """Raises ValueError unless ``value`` is a positive power-of-two int (Triton's rule)."""
  if isinstance(value, bool) or not isinstance(value, int) or value <= 0 or value & (value - 1):
    raise ValueError(f"`{name}` must be a positive power of two, got {value!r}.")


@dataclasses.dataclass(frozen=True)
class NMSConfig:
  """Tuning parameters of :func:`nms` and its parts.

  Attributes:
    block_rows: sorted boxes (mask rows) per tile of :func:`suppression_mask`; a power of two.
    block_words: ``uint32`` mask words per tile, i.e. ``32 * block_words`` column boxes; a
      power of two. The default tile is 64 x 64 boxes, torchvision's CUDA tile.
    keep_pass: how :func:`keep_from_mask` walks the mask: ``"pallas"`` (a kernel, one program
      per image, the sequential walk inside it) or ``"xla"`` (a ``lax.while_loop`` in plain
      JAX, one small step of XLA ops per box).
    num_warps: Triton warps per program of the compiled mask kernel; a power of two <= 32.
      (The keep-pass kernel always runs one warp: its work is a sequential walk.)

  The wrapper shrinks both blocks to the next power of two above the problem size.
  """

  block_rows: int = 64
  block_words: int = 2
  keep_pass: Literal["pallas", "xla"] = "pallas"
  num_warps: int = 4

  def __post_init__(self):
    _check_block(self.block_rows, "block_rows")
    _check_block(self.block_words, "block_words")
    _check_block(self.num_warps, "num_warps")
    if self.num_warps > 32:
      raise ValueError(f"`num_warps` must be at most 32, got {self.num_warps!r}.")
    if self.keep_pass not in ("pallas", "xla"):
      raise ValueError(f"`keep_pass` must be 'pallas' or 'xla', got {self.keep_pass!r}.")


def _next_pow2(n: int) -> int:
  return 1 << max(n - 1, 0).bit_length()


def _round_up(n: int, multiple: int) -> int:
  return -(-n // multiple) * multiple


def _check_threshold(value, name: str) -> float:
  try:
    v = float(value)
  except (TypeError, ValueError):
    raise TypeError(f"`{name}` must be a Python number in [0, 1], got {value!r}.") from None
  if not 0.0 <= v <= 1.0:
    raise ValueError(f"`{name}` must be in [0, 1], got {value!r}.")
  return v


def _check_boxes(boxes, name: str, ndim: int | None):
  boxes = jnp.asarray(boxes)
  if boxes.ndim < 2 or boxes.shape[-1] != 4 or (ndim is not None and boxes.ndim != ndim):
    want = "[B, N, 4]" if ndim == 3 else "[..., N, 4]"
    raise ValueError(f"`{name}` must have shape {want}, got {tuple(boxes.shape)}.")
  if not (jnp.issubdtype(boxes.dtype, jnp.floating) or jnp.issubdtype(boxes.dtype, jnp.integer)):
    raise TypeError(f"`{name}` must be a real array, got dtype {boxes.dtype}.")
  return boxes


# ---------------------------------------------------------------------------------------------
# The suppression-mask kernel.


def _mask_kernel(thr_ref, rows_ref, cols_ref, row_groups_ref, col_groups_ref, out_ref, *,
                 n: int, triangular: bool, ieee_division: bool):
  """One tile: ``thr_ref [1]`` float32, ``rows_ref [4, bn]``, ``cols_ref [4, bw, 32]``,
  ``row_groups_ref [bn]`` / ``col_groups_ref [bw, 32]`` int32 -> ``out_ref [bn, bw]`` uint32.

  Row box ``i = r * bn + a`` against column box ``j = (c * bw + w) * 32 + l``; bit ``l`` of
  ``out[a, w]`` is ``j < n and group(i) == group(j) and IoU(i, j) > thr_ref[0]`` and, for the
  triangular mask, ``j > i`` (otherwise ``j != i``).
  """
  bn, bw = out_ref.shape
  row0 = pl.program_id(1) * bn
  col0 = pl.program_id(2) * (bw * _BITS)
  needed = (row0 < n) & (col0 < n)
  if triangular:
    # Some j > i exists in this tile iff its last column is beyond its first row.
    needed = needed & (col0 + bw * _BITS - 1 > row0)

  @pl.when(needed)
  def _compute():
    rows = (rows_ref[k, :][:, None, None] for k in range(4))  # [bn, 1, 1] each
    cols = (cols_ref[k, :, :][None, :, :] for k in range(4))  # [1, bw, 32] each
    iou = iou_tile(*rows, *cols, ieee_division=ieee_division)  # [bn, bw, 32]
    shape = iou.shape
    i = row0 + lax.broadcasted_iota(jnp.int32, shape, 0)
    j = col0 + _BITS * lax.broadcasted_iota(jnp.int32, shape, 1) + lax.broadcasted_iota(
        jnp.int32, shape, 2)
    order = (j > i) if triangular else (j != i)
    same = row_groups_ref[...][:, None, None] == col_groups_ref[...][None, :, :]
    hit = (iou > thr_ref[0]) & order & (j < n) & same
    lane = lax.broadcasted_iota(jnp.uint32, shape, 2)
    bits = jnp.where(hit, jnp.left_shift(jnp.uint32(1), lane), jnp.uint32(0))
    out_ref[...] = jnp.sum(bits, axis=2, dtype=jnp.uint32)

  @pl.when(jnp.logical_not(needed))
  def _zeros():
    out_ref[...] = jnp.zeros((bn, bw), jnp.uint32)


def _mask_call(boxes, iou_threshold, groups=None, *, block_rows, block_words, num_warps,
               interpret, triangular=True):
  """``boxes [B, N, 4]`` float32 (N > 0), ``iou_threshold`` float32 scalar, ``groups``
  ``[B, N]`` int32 or None -> ``[B, N, ceil(N / 32)]`` uint32; not validated. The threshold
  is an operand, not a constant, so a new threshold does not recompile."""
  b, n, _ = boxes.shape
  words = -(-n // _BITS)
  bn = min(block_rows, _next_pow2(n))
  bw = min(block_words, _next_pow2(words))
  n_pad = _round_up(n, max(bn, bw * _BITS))  # powers of two: a multiple of both
  w_pad = n_pad // _BITS
  coords = jnp.pad(jnp.swapaxes(boxes, 1, 2), ((0, 0), (0, 0), (0, n_pad - n)))  # [B, 4, Np]
  cols = coords.reshape(b, 4, w_pad, _BITS)  # box j at [.., j // 32, j % 32]
  if groups is None:
    groups = jnp.zeros((b, n), jnp.int32)
  groups = jnp.pad(groups.astype(jnp.int32), ((0, 0), (0, n_pad - n)))
  mask = pl.pallas_call(
      functools.partial(_mask_kernel, n=n, triangular=triangular,
                        ieee_division=not interpret),
      out_shape=jax.ShapeDtypeStruct((b, n_pad, w_pad), jnp.uint32),
      grid=(b, n_pad // bn, w_pad // bw),
      in_specs=[
          pl.BlockSpec((1,), lambda bi, r, c: (0,)),
          pl.BlockSpec((pl.squeezed, 4, bn), lambda bi, r, c: (bi, 0, r)),
          pl.BlockSpec((pl.squeezed, 4, bw, _BITS), lambda bi, r, c: (bi, 0, c, 0)),
          pl.BlockSpec((pl.squeezed, bn), lambda bi, r, c: (bi, r)),
          pl.BlockSpec((pl.squeezed, bw, _BITS), lambda bi, r, c: (bi, c, 0)),
      ],
      out_specs=pl.BlockSpec((pl.squeezed, bn, bw), lambda bi, r, c: (bi, r, c)),
      interpret=interpret,
      compiler_params=pltriton.CompilerParams(num_warps=num_warps),
      name="nms_suppression_mask",
  )(jnp.reshape(iou_threshold, (1,)).astype(jnp.float32), coords, cols, groups,
    groups.reshape(b, w_pad, _BITS))
  return mask[:, :n, :words]


def suppression_mask(
    sorted_boxes: ArrayLike,
    *,
    iou_threshold: float,
    groups: ArrayLike | None = None,
    triangular: bool = True,
    config: NMSConfig = NMSConfig(),
    interpret: bool = False,
) -> jax.Array:
  """Bit-packed upper-triangular "box i suppresses box j" mask, computed by a Pallas kernel.

  Bit ``j % 32`` of word ``j // 32`` of row ``i`` is set iff ``j > i`` and
  ``IoU(i, j) > iou_threshold`` (float32 IoU, ``inter / (area_i + area_j - inter)``) and,
  when ``groups`` is given, ``groups[i] == groups[j]`` (class-aware NMS). With
  ``triangular=False`` the condition ``j > i`` becomes ``j != i``: the full symmetric
  "overlaps" relation, for callers that visit boxes in an order of their own.

  Args:
    sorted_boxes: ``[B, N, 4]`` ``xyxy`` boxes, already in precedence order (computed in
      float32).
    iou_threshold: in ``[0, 1]``; the strict suppression threshold (a Python number).
    groups: optional ``[B, N]`` integer group (class) of each box.
    triangular: only later boxes (``j > i``), or all others (``j != i``).
    config: block sizes, see :class:`NMSConfig`.
    interpret: run the kernel with the Pallas interpreter (CPU, tests).

  Returns:
    ``[B, N, W]`` uint32 with ``W = ceil(N / 32)``.

  >>> boxes = jnp.array([[[0., 0., 10., 10.], [1., 1., 11., 11.], [0., 0., 10., 9.]]])
  >>> suppression_mask(boxes, iou_threshold=0.5, interpret=True).tolist()  # 0b110, 0b100
  [[[6], [4], [0]]]
  """
  if not isinstance(config, NMSConfig):
    raise TypeError(f"`config` must be an NMSConfig, got {type(config).__name__}.")
  iou_threshold = _check_threshold(iou_threshold, "iou_threshold")
  boxes = _check_boxes(sorted_boxes, "sorted_boxes", ndim=3)
  groups = _check_groups(groups, boxes.shape[:-1])
  b, n, _ = boxes.shape
  if b == 0 or n == 0:
    return jnp.zeros((b, n, -(-n // _BITS)), jnp.uint32)
  return _jit_mask(boxes.astype(jnp.float32), jnp.float32(iou_threshold), groups,
                   block_rows=config.block_rows, block_words=config.block_words,
                   num_warps=config.num_warps, interpret=interpret,
                   triangular=bool(triangular))


_jit_mask = jax.jit(
    _mask_call,
    static_argnames=("block_rows", "block_words", "num_warps", "interpret", "triangular"))


def _check_groups(groups, shape):
  """``groups`` as an int32 array of ``shape``, or None."""
  if groups is None:
    return None
  groups = jnp.asarray(groups)
  if not jnp.issubdtype(groups.dtype, jnp.integer):
    raise TypeError(f"`groups` must be an integer array, got dtype {groups.dtype}.")
  if groups.shape != tuple(shape):
    raise ValueError(f"`groups` must have shape {tuple(shape)}, got {tuple(groups.shape)}.")
  return groups.astype(jnp.int32)  # ids are compared as int32 (documented in `nms`)


# ---------------------------------------------------------------------------------------------
# The greedy pass over the mask. Both versions return the kept positions in order, as
# ``([B, max_kept] int32 padded with -1, count [B] int32)``.


def _keep_positions_xla(mask, valid, max_kept):
  """The pass as a ``lax.while_loop`` over ``i`` with a ``[B, W]`` bitset (N > 0)."""
  b, n, w = mask.shape
  iota = lax.broadcasted_iota(jnp.int32, (b, n), 1)
  stop = jnp.max(jnp.where(valid, iota + 1, 0))  # nothing after the last valid box is kept

  def cond(state):
    i, _, _, count = state
    return (i < stop) & jnp.any(count < max_kept)

  def body(state):
    i, removed, keep, count = state
    word = lax.dynamic_index_in_dim(removed, i // _BITS, axis=1, keepdims=False)  # [B]
    bit = jnp.right_shift(word, (i % _BITS).astype(jnp.uint32)) & jnp.uint32(1)
    is_valid = lax.dynamic_index_in_dim(valid, i, axis=1, keepdims=False)
    take = is_valid & (bit == 0) & (count < max_kept)  # [B]
    row = lax.dynamic_index_in_dim(mask, i, axis=1, keepdims=False)  # [B, W]
    removed = jnp.where(take[:, None], removed | row, removed)
    keep = lax.dynamic_update_index_in_dim(keep, take, i, axis=1)
    return i + 1, removed, keep, count + take.astype(jnp.int32)

  state = (jnp.int32(0), jnp.zeros((b, w), jnp.uint32), jnp.zeros((b, n), bool),
           jnp.zeros((b,), jnp.int32))
  _, _, keep, count = lax.while_loop(cond, body, state)
  slot = jnp.where(keep, jnp.cumsum(keep, axis=1, dtype=jnp.int32) - 1, max_kept)
  rows = lax.broadcasted_iota(jnp.int32, (b, n), 0)
  positions = jnp.full((b, max_kept), -1, jnp.int32).at[rows, slot].set(iota, mode="drop")
  return positions, count


def _keep_kernel(stop_ref, valid_ref, mask_ref, kept_ref, count_ref, *, max_kept: int):
  """One image: ``stop_ref [1]``, ``valid_ref [Np]`` int32, ``mask_ref [Np, Wp]`` uint32 ->
  ``kept_ref [Kp]`` (the first ``count`` entries: kept positions in order; the rest is left
  unwritten) and ``count_ref [1]``.

  Every output element is written at most once, by scalar stores, so no store can race
  another within the program.
  """
  wp = mask_ref.shape[-1]
  word_ids = lax.broadcasted_iota(jnp.int32, (wp,), 0)

  def cond(state):
    i, _, count = state
    return (i < stop_ref[0]) & (count < max_kept)

  def body(state):
    i, removed, count = state
    # removed[i // 32] without dynamic indexing into a register array: a masked sum.
    word = jnp.sum(jnp.where(word_ids == i // _BITS, removed, jnp.uint32(0)), dtype=jnp.uint32)
    bit = jnp.right_shift(word, (i % _BITS).astype(jnp.uint32)) & jnp.uint32(1)
    take = (valid_ref[i] != 0) & (bit == 0)

    @pl.when(take)
    def _record():
      kept_ref[count] = i

    removed = jnp.where(take, removed | mask_ref[i, :], removed)
    return i + 1, removed, count + take.astype(jnp.int32)

  state = (jnp.int32(0), jnp.zeros((wp,), jnp.uint32), jnp.int32(0))
  count_ref[0] = lax.while_loop(cond, body, state)[2]


def _keep_positions_pallas(mask, valid, max_kept, interpret):
  """The pass as a Pallas kernel, one program per image (N > 0, max_kept > 0)."""
  b, n, w = mask.shape
  n_pad, w_pad = _next_pow2(n), _next_pow2(w)
  k = min(max_kept, n)
  k_pad = _next_pow2(k)
  iota = lax.broadcasted_iota(jnp.int32, (b, n), 1)
  stop = jnp.max(jnp.where(valid, iota + 1, 0), axis=1, keepdims=True)  # [B, 1]
  valid = jnp.pad(valid.astype(jnp.int32), ((0, 0), (0, n_pad - n)))
  mask = jnp.pad(mask, ((0, 0), (0, n_pad - n), (0, w_pad - w)))
  kept, count = pl.pallas_call(
      functools.partial(_keep_kernel, max_kept=k),
      out_shape=(jax.ShapeDtypeStruct((b, k_pad), jnp.int32),
                 jax.ShapeDtypeStruct((b, 1), jnp.int32)),
      grid=(b,),
      in_specs=[
          pl.BlockSpec((pl.squeezed, 1), lambda bi: (bi, 0)),
          pl.BlockSpec((pl.squeezed, n_pad), lambda bi: (bi, 0)),
          pl.BlockSpec((pl.squeezed, n_pad, w_pad), lambda bi: (bi, 0, 0)),
      ],
      out_specs=(pl.BlockSpec((pl.squeezed, k_pad), lambda bi: (bi, 0)),
                 pl.BlockSpec((pl.squeezed, 1), lambda bi: (bi, 0))),
      interpret=interpret,
      compiler_params=pltriton.CompilerParams(num_warps=1),  # a sequential walk: one warp
      name="nms_keep_pass",
  )(stop.astype(jnp.int32), valid, mask)
  count = count[:, 0]
  slots = lax.broadcasted_iota(jnp.int32, (b, k), 1)
  positions = jnp.where(slots < count[:, None], kept[:, :k], -1)  # unwritten slots -> -1
  return jnp.pad(positions, ((0, 0), (0, max_kept - k)), constant_values=-1), count


def _keep_positions(mask, valid, max_kept, keep_pass, interpret):
  if keep_pass == "pallas":
    return _keep_positions_pallas(mask, valid, max_kept, interpret)
  return _keep_positions_xla(mask, valid, max_kept)


@functools.partial(jax.jit, static_argnames=("max_kept", "keep_pass", "interpret"))
def _keep_call(mask, valid, *, max_kept, keep_pass, interpret):
  b, n, _ = mask.shape
  positions, _ = _keep_positions(mask, valid, max_kept, keep_pass, interpret)
  rows = lax.broadcasted_iota(jnp.int32, positions.shape, 0)
  slot = jnp.where(positions >= 0, positions, n)  # n is out of bounds: dropped
  return jnp.zeros((b, n), bool).at[rows, slot].set(True, mode="drop")


def keep_from_mask(
    mask: ArrayLike,
    valid: ArrayLike,
    *,
    max_kept: int | None = None,
    config: NMSConfig = NMSConfig(),
    interpret: bool = False,
) -> jax.Array:
  """Greedy NMS over a suppression mask, on device (no host round trip).

  Walks ``i = 0 .. N-1``: if ``valid[i]`` and bit ``i`` of ``removed`` is clear, keeps ``i``
  and ORs row ``i`` of the mask into ``removed`` (a ``uint32`` bitset of ``W`` words). Stops
  after the last valid box, or once ``max_kept`` boxes are kept. ``config.keep_pass`` picks a
  Pallas kernel (one program per image, the whole walk inside it, as mmcv's CUDA NMS does) or
  a ``lax.while_loop`` in plain JAX over the batch.

  Args:
    mask: ``[B, N, W]`` uint32 from :func:`suppression_mask`, ``W = ceil(N / 32)``.
    valid: ``[B, N]`` bool; invalid boxes are never kept (and so never suppress).
    max_kept: keep at most this many boxes per image (None: no limit).
    config: ``keep_pass`` selects the implementation, see :class:`NMSConfig`.
    interpret: run the Pallas kernel with the interpreter (CPU, tests).

  Returns:
    ``[B, N]`` bool, the kept boxes.

  >>> mask = jnp.array([[[6], [4], [0]]], jnp.uint32)
  >>> keep_from_mask(mask, jnp.array([[True, True, True]]), interpret=True).tolist()
  [[True, False, False]]
  >>> keep_from_mask(mask, jnp.array([[False, True, True]]), interpret=True).tolist()
  [[False, True, False]]
  """
  if not isinstance(config, NMSConfig):
    raise TypeError(f"`config` must be an NMSConfig, got {type(config).__name__}.")
  mask, valid = jnp.asarray(mask), jnp.asarray(valid)
  if mask.ndim != 3 or mask.dtype != jnp.uint32:
    raise ValueError(f"`mask` must be a uint32 [B, N, W] array, got {mask.dtype} "
                     f"{tuple(mask.shape)}.")
  b, n, w = mask.shape
  if w != -(-n // _BITS):
    raise ValueError(f"`mask` must have W = ceil(N / 32) = {-(-n // _BITS)} words, got {w}.")
  if valid.shape != (b, n) or valid.dtype != jnp.bool_:
    raise ValueError(f"`valid` must be a bool array of shape {(b, n)}, got {valid.dtype} "
                     f"{tuple(valid.shape)}.")
  if max_kept is None:
    max_kept = n
  if isinstance(max_kept, bool) or not isinstance(max_kept, int) or max_kept < 0:
    raise ValueError(f"`max_kept` must be a non-negative int or None, got {max_kept!r}.")
  if b == 0 or n == 0 or max_kept == 0:
    return jnp.zeros((b, n), bool)
  return _keep_call(mask, valid, max_kept=max_kept, keep_pass=config.keep_pass,
                    interpret=interpret)


# ---------------------------------------------------------------------------------------------
# Greedy NMS.


@functools.partial(
    jax.jit, static_argnames=("max_output_size", "block_rows", "block_words", "keep_pass",
                              "num_warps", "interpret"))
def _nms_call(boxes, scores, iou_threshold, score_threshold, groups=None, *, max_output_size,
              block_rows, block_words, keep_pass, num_warps, interpret):
  """``boxes [B, N, 4]`` float32, ``scores [B, N]`` -> (``[B, K]`` int32, ``[B]`` int32)."""
  candidate = (scores > score_threshold) & ~jnp.isnan(scores)
  # Stable ascending sort of -score: descending score, ties to the lower index. -0.0 and 0.0
  # must tie, so zeros are made +0.0 first; non-candidates go last.
  key = jnp.where(candidate, -jnp.where(scores == 0, 0.0, scores).astype(scores.dtype),
                  jnp.inf)
  order = jnp.argsort(key, axis=-1, stable=True).astype(jnp.int32)  # [B, N]
  sorted_boxes = jnp.take_along_axis(boxes, order[..., None], axis=1)
  valid = jnp.take_along_axis(candidate, order, axis=1)
  if groups is not None:
    groups = jnp.take_along_axis(groups, order, axis=1)
  mask = _mask_call(sorted_boxes, iou_threshold, groups, block_rows=block_rows,
                    block_words=block_words, num_warps=num_warps, interpret=interpret)
  positions, count = _keep_positions(mask, valid, max_output_size, keep_pass, interpret)
  indices = jnp.take_along_axis(order, jnp.maximum(positions, 0), axis=1)
  return jnp.where(positions >= 0, indices, -1), count


def nms(
    boxes: ArrayLike,
    scores: ArrayLike,
    *,
    iou_threshold: float,
    max_output_size: int,
    score_threshold: float = -math.inf,
    groups: ArrayLike | None = None,
    config: NMSConfig = NMSConfig(),
    interpret: bool = False,
) -> tuple[jax.Array, jax.Array]:
  """Greedy non-maximum suppression via the bit-mask kernel, with a static output shape.

  The contract of ``jaxvision.ops.nms``: candidates are the boxes with
  ``score > score_threshold`` (NaN never); they are visited by descending score (ties to the
  lower index; ``-0.0`` ties with ``0.0``); a box is kept unless an already kept box has
  float32 IoU ``> iou_threshold`` with it; at most ``max_output_size`` boxes are kept.

  Args:
    boxes: ``[..., N, 4]`` ``xyxy`` boxes (computed in float32).
    scores: ``[..., N]`` floating scores.
    iou_threshold: in ``[0, 1]``; suppress when float32 IoU is strictly greater than this
      (a Python number, rounded to float32; changing it does not recompile).
    max_output_size: static number of output slots ``K >= 0``.
    score_threshold: only boxes scoring strictly above this are candidates.
    groups: optional ``[..., N]`` integer class of each box: boxes then only suppress boxes
      of their own class (``jaxvision.ops.batched_nms``). Compared as int32: 64-bit ids
      must fit in int32.
    config: block sizes of the mask kernel, see :class:`NMSConfig`.
    interpret: run the kernel with the Pallas interpreter (CPU, tests).

  Returns:
    ``(indices, num_valid)``: ``indices [..., K]`` int32, the kept boxes' original indices in
    selection order, padded with -1; ``num_valid [...]`` int32, the number kept.

  >>> boxes = jnp.array([[0., 0., 10., 10.], [1., 1., 11., 11.], [20., 20., 30., 30.]])
  >>> scores = jnp.array([0.9, 0.8, 0.7])
  >>> indices, num_valid = nms(boxes, scores, iou_threshold=0.5, max_output_size=3,
  ...                          interpret=True)
  >>> indices.tolist(), int(num_valid)
  ([0, 2, -1], 2)
  """
  if not isinstance(config, NMSConfig):
    raise TypeError(f"`config` must be an NMSConfig, got {type(config).__name__}.")
  iou_threshold = _check_threshold(iou_threshold, "iou_threshold")
  if (isinstance(max_output_size, bool) or not isinstance(max_output_size, int)
      or max_output_size < 0):
    raise ValueError(f"`max_output_size` must be a non-negative int, got {max_output_size!r}.")
  try:
    score_threshold = float(score_threshold)
  except (TypeError, ValueError):
    raise TypeError(f"`score_threshold` must be a Python number, got {score_threshold!r}.") \
        from None
  boxes = _check_boxes(boxes, "boxes", ndim=None)
  scores = jnp.asarray(scores)
  if scores.shape != boxes.shape[:-1]:
    raise ValueError(f"`scores` must have shape {tuple(boxes.shape[:-1])} to match `boxes` "
                     f"{tuple(boxes.shape)}, got {tuple(scores.shape)}.")
  if not jnp.issubdtype(scores.dtype, jnp.floating):
    raise TypeError(f"`scores` must be a floating-point array, got dtype {scores.dtype}.")
  groups = _check_groups(groups, scores.shape)
  lead, n, k = scores.shape[:-1], scores.shape[-1], max_output_size
  if n == 0 or k == 0 or math.prod(lead) == 0:
    return jnp.full(lead + (k,), -1, jnp.int32), jnp.zeros(lead, jnp.int32)
  if jnp.finfo(scores.dtype).bits < 32:
    scores = scores.astype(jnp.float32)
  indices, num_valid = _nms_call(
      boxes.reshape(-1, n, 4).astype(jnp.float32), scores.reshape(-1, n),
      jnp.float32(iou_threshold), jnp.asarray(score_threshold, scores.dtype),
      None if groups is None else groups.reshape(-1, n),
      max_output_size=k, block_rows=config.block_rows, block_words=config.block_words,
      keep_pass=config.keep_pass, num_warps=config.num_warps, interpret=interpret)
  return indices.reshape(lead + (k,)), num_valid.reshape(lead)
