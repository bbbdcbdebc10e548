"""Max pooling that remembers where each maximum came from, and the unpooling that uses it.

SegNet (Badrinarayanan et al., 2017) upsamples its decoder with the encoder's *pooling
indices*: :func:`max_pool_with_argmax` returns the pooled maxima and, for each of them, the
position it was taken from; :func:`max_unpool` puts values back at those positions in a
zero map.

Conventions shared by both functions:

* Images are NHWC: ``x`` is ``[..., H, W, C]`` with zero or more leading batch dimensions.
* ``argmax`` is an int32 index ``y * W + x`` into the ``H x W`` plane of the *same* image and
  channel of the unpadded input, so it depends neither on the batch position nor on the
  channel (PyTorch's ``MaxPool2d(return_indices=True)`` convention). TensorFlow's
  ``tf.nn.max_pool_with_argmax(include_batch_in_index=False)`` returns
  ``(y * W + x) * C + c`` instead: multiply ours by ``C`` and add the channel to convert.
* Ties: the first maximum in row-major order within the window, i.e. the lowest flat index,
  wins. NaN counts as the largest value (the first NaN wins, and it propagates to ``pooled``).
* ``padding="VALID"`` drops the rows and columns that do not fill a whole window;
  ``"SAME"`` gives ``ceil(H / stride)`` outputs and pads as TensorFlow does (the extra row or
  column goes at the bottom/right) with the lowest value of the dtype (-inf for floats).
  A padded position is never returned as an argmax, even when a window's real pixels are
  all -inf.
* ``max_unpool`` *adds* the values that point to the same position (overlapping windows,
  ``strides < window``, can select the same pixel twice), as ``tf.scatter_nd`` does and
  unlike PyTorch's ``MaxUnpool2d`` (where one of the writes wins). For
  non-overlapping windows every position is hit at most once, so add and write agree.

Gradients: ``pooled`` is differentiable with respect to ``x``, and the cotangent of each
output goes to its argmax position only (a pixel that wins several overlapping windows
receives the sum); ``argmax`` is an integer output with no gradient. ``max_unpool`` is linear
in ``x``; its gradient is the gather ``g[..., argmax, c]``.

How it runs. The pooling takes the ``K = window_h * window_w`` candidates of the outputs as
``K`` strided slices of the (padded, or cropped) input and keeps a running maximum and its
window position with ``K - 1`` strict ``>`` comparisons and selects, which XLA fuses into one
loop over the output: no loop over pixels and no ``[..., Ho, Wo, K, C]`` patch tensor. Its
gradient is the transpose of the selects, so each cotangent goes to the winning candidate
(timings: ``experiments/results/measurements.md``). The unpooling is one scatter-add into a
zero map.
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

__all__ = ["max_pool_with_argmax", "max_unpool"]

_PADDINGS = ("VALID", "SAME")


# ---------------------------------------------------------------------------------------------
# Argument checks (static, at trace time).


def _check_nhwc(x: Any, name: str) -> Any:
  x = _checks.array(x)
  if len(x.shape) < 3:
    raise ValueError(f"`{name}` must have shape [..., H, W, C] (at least 3 dimensions), got "
                     f"shape {tuple(x.shape)}.")
  return x


def _check_pair(value: Any, name: str) -> tuple[int, int]:
  """A positive int, or a pair of them, as ``(rows, cols)``."""
  def is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
  pair = (value, value) if is_int(value) else value
  if not isinstance(pair, (tuple, list)) or len(pair) != 2 or not all(map(is_int, pair)):
    raise TypeError(f"`{name}` must be a positive int or a pair of them, got {value!r}.")
  if min(pair) <= 0:
    raise ValueError(f"`{name}` must be > 0, got {value!r}.")
  return int(pair[0]), int(pair[1])


def _geometry(size: int, k: int, s: int, padding: str) -> tuple[int, int, int]:
  """``(outputs, pad_low, pad_high)`` along one spatial axis; a negative pad is a crop."""
  if padding == "VALID":
    out, lo = (size - k) // s + 1, 0
  else:
    out = -(-size // s)
    lo = max((out - 1) * s + k - size, 0) // 2
  extent = (out - 1) * s + k  # what the out windows span, padding included
  return out, lo, extent - size - lo


# ---------------------------------------------------------------------------------------------
# Pooling.


def max_pool_with_argmax(
    x: ArrayLike,
    *,
    window: int | tuple[int, int] = 2,
    strides: int | tuple[int, int] | None = None,
    padding: str = "VALID",
) -> tuple[jax.Array, jax.Array]:
  """2-D max pooling that also returns the position of each maximum.

  Args:
    x: ``[..., H, W, C]`` images (NHWC, any number of leading batch dimensions); a float or
      integer dtype (the result keeps it).
    window: the pooling window, ``k`` or ``(k_h, k_w)``, positive.
    strides: ``s`` or ``(s_h, s_w)``, positive; default ``window`` (non-overlapping).
    padding: ``"VALID"`` (drop the remainder; the window must fit in the image) or
      ``"SAME"`` (``ceil(H / s_h)`` rows, padded with the dtype's lowest value).

  Returns:
    ``(pooled, argmax)``, both ``[..., Ho, Wo, C]``: the maxima (dtype of ``x``) and int32
    indices ``y * W + x`` of where they are in their image's and channel's ``H x W`` plane
    (the first, i.e. lowest, index among ties). See the module docstring for the
    conventions and gradients.

  >>> x = jnp.array([[1., 5., 2.], [5., 0., 7.], [3., 4., 9.]])[..., None]   # [3, 3, 1]
  >>> pooled, argmax = max_pool_with_argmax(x, window=2, strides=1)
  >>> pooled[..., 0]
  Array([[5., 7.],
         [5., 9.]], dtype=float32)
  >>> argmax[..., 0]   # the tie between (0, 1) and (1, 0) goes to index 1
  Array([[1, 5],
         [3, 8]], dtype=int32)
  """
  x = _check_nhwc(x, "x")
  dtype = jnp.dtype(x.dtype)
  if not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)):
    raise TypeError(f"`x` must be a real floating-point or integer array, got dtype {dtype}.")
  window = _check_pair(window, "window")
  strides = window if strides is None else _check_pair(strides, "strides")
  _checks.check_choice(padding, "padding", _PADDINGS)
  height, width = x.shape[-3], x.shape[-2]
  if height == 0 or width == 0:
    raise ValueError(f"`x` must have non-empty spatial dimensions, got shape {x.shape}.")
  if padding == "VALID" and (window[0] > height or window[1] > width):
    raise ValueError(f"`window` {window} does not fit in the {height}x{width} image with "
                     "padding='VALID'; use padding='SAME' or a smaller window.")
  return _pool(x, window=window, strides=strides, padding=padding)


@functools.partial(jax.jit, static_argnames=("window", "strides", "padding"))
def _pool(x, *, window, strides, padding):
  (kh, kw), (sh, sw) = window, strides
  height, width = x.shape[-3], x.shape[-2]
  ho, top, bottom = _geometry(height, kh, sh, padding)
  wo, left, right = _geometry(width, kw, sw, padding)
  floating = jnp.issubdtype(x.dtype, jnp.floating)
  lowest = -jnp.inf if floating else jnp.iinfo(x.dtype).min
  nd = x.ndim
  # Pad with the lowest value, or crop (negative padding) what no window reaches.
  xp = lax.pad(x, jnp.array(lowest, x.dtype),
               [(0, 0, 0)] * (nd - 3) + [(top, bottom, 0), (left, right, 0), (0, 0, 0)])
  oy = np.arange(ho)[:, None, None] * sh - top   # [Ho, 1, 1]: window origins, unpadded
  ox = np.arange(wo)[None, :, None] * sw - left  # [1, Wo, 1]

  padded = top > 0 or left > 0 or bottom > 0 or right > 0
  best = first = None
  seen = np.zeros((ho, wo, 1), bool)  # (static) a real pixel came before, for each output
  for dy in range(kh):
    for dx in range(kw):
      k = dy * kw + dx
      cand = lax.slice(xp, [0] * (nd - 3) + [dy, dx, 0],
                       [*xp.shape[:-3], dy + (ho - 1) * sh + 1, dx + (wo - 1) * sw + 1,
                        xp.shape[-1]],
                       [1] * (nd - 3) + [sh, sw, 1])  # [..., Ho, Wo, C]: candidate k
      real = (0 <= oy + dy) & (oy + dy < height) & (0 <= ox + dx) & (ox + dx < width)
      if k == 0:
        best, first = cand, jnp.zeros(cand.shape, jnp.int32)
      else:
        # Strictly greater, so an earlier candidate keeps a tie; NaN beats every number.
        better = cand > best
        if floating:
          better = better | (jnp.isnan(cand) & ~jnp.isnan(best))
        if padded:  # padding never wins; the first real pixel beats padding
          better = real & (better | ~seen)
        best = jnp.where(better, cand, best)
        first = jnp.where(better, jnp.int32(k), first)
      seen = seen | real
  argmax = (oy + first // kw) * width + (ox + first % kw)
  return best, argmax.astype(jnp.int32)


# ---------------------------------------------------------------------------------------------
# Unpooling.


def max_unpool(x: ArrayLike, argmax: ArrayLike, *, output_shape: tuple[int, int]) -> jax.Array:
  """Scatters pooled values back to their argmax positions in a zero map (SegNet's upsampling).

  ``out[..., argmax[..., i, j, c] // W, argmax[..., i, j, c] % W, c] += x[..., i, j, c]``
  and zero everywhere else. Values pointing to the same position are added (overlapping
  windows).

  Indices outside ``[0, H * W)`` (e.g. an ``output_shape`` smaller than the pooling's input):
  concrete ``argmax`` raises ``ValueError`` naming the bad index and the plane size, as
  PyTorch's "Found an invalid max index" does. Traced ``argmax`` (inside ``jit``, ``grad``,
  ``vmap``), whose values are unknown, has them *dropped*: their values land nowhere (a
  negative index does not wrap around), and their gradient is 0.

  Args:
    x: ``[..., Ho, Wo, C]`` values, e.g. ``pooled`` or a decoder's features.
    argmax: ``[..., Ho, Wo, C]`` integer indices ``y * W + x`` into each image's and
      channel's ``H x W`` plane, as returned by :func:`max_pool_with_argmax`.
    output_shape: ``(H, W)``, the spatial shape to unpool to (the pooling's input's).

  Returns:
    ``[..., H, W, C]`` in the dtype of ``x``.

  Raises:
    ValueError: for mismatched shapes, a bad ``output_shape``, or concrete ``argmax`` holding
      an index outside ``[0, H * W)``. TypeError: for a non-integer ``argmax``.

  >>> x = jnp.array([[1., 5.], [7., 2.], [0., 3.], [4., 6.]])[..., None]   # [4, 2, 1]
  >>> pooled, argmax = max_pool_with_argmax(x, window=2)
  >>> max_unpool(pooled, argmax, output_shape=(4, 2))[..., 0]
  Array([[0., 0.],
         [7., 0.],
         [0., 0.],
         [0., 6.]], dtype=float32)
  >>> x = jnp.array([[1., 2., 0.], [3., 9., 4.], [0., 5., 6.]])[..., None]
  >>> pooled, argmax = max_pool_with_argmax(x, window=2, strides=1)   # every window picks 9
  >>> max_unpool(pooled, argmax, output_shape=(3, 3))[..., 0]          # 4 windows -> 4 * 9
  Array([[ 0.,  0.,  0.],
         [ 0., 36.,  0.],
         [ 0.,  0.,  0.]], dtype=float32)
  """
  x = _check_nhwc(x, "x")
  argmax = _checks.array(argmax)
  if tuple(argmax.shape) != tuple(x.shape):
    raise ValueError(f"`argmax` must have the shape of `x`, {tuple(x.shape)}, got "
                     f"{tuple(argmax.shape)}.")
  if not jnp.issubdtype(argmax.dtype, jnp.integer):
    raise TypeError(f"`argmax` must be an integer array, got dtype {argmax.dtype}.")
  height, width = _checks.check_size_pair(output_shape, "output_shape")
  if height * width > np.iinfo(np.int32).max:
    raise ValueError(f"`output_shape` {output_shape} has more than 2**31 - 1 pixels.")
  _checks.check_flat_indices(argmax, "argmax", height * width,
                             why=f"the {height}x{width} plane of `output_shape`")
  flat = math.prod(x.shape[:-3]) * height * width * x.shape[-1] < np.iinfo(np.int32).max
  return _unpool(x, argmax, height=height, width=width, flat=flat)


@functools.partial(jax.jit, static_argnames=("height", "width", "flat"))
def _unpool(x, argmax, *, height, width, flat):
  lead, (ho, wo, c) = x.shape[:-3], x.shape[-3:]
  b, size = math.prod(lead), height * width
  values = x.reshape(b, ho * wo, c)
  index = argmax.reshape(b, ho * wo, c)
  valid = (index >= 0) & (index < size)  # the rest is dropped (a negative index would wrap)
  out_shape = (*lead, height, width, c)
  if flat:
    # One int32 index into the flattened output (when it fits): XLA:CPU's scatter is ~1.7x
    # faster with a scalar index than with a (batch, pixel, channel) triple.
    where = ((jnp.arange(b, dtype=jnp.int32)[:, None, None] * size + index) * c
             + jnp.arange(c, dtype=jnp.int32))
    where = jnp.where(valid, where, b * size * c)
    out = jnp.zeros(b * size * c, x.dtype).at[where.reshape(-1)].add(values.reshape(-1),
                                                                    mode="drop")
    return out.reshape(out_shape)
  index = jnp.where(valid, index, size)
  rows = jnp.arange(b)[:, None, None]
  chans = jnp.arange(c)[None, None, :]
  out = jnp.zeros((b, size, c), x.dtype).at[rows, index, chans].add(values, mode="drop")
  return out.reshape(out_shape)
