"""Image augmentations in JAX: pure functions of one image and a PRNG key.

Every random transform here takes ONE image ``[H, W, C]`` (floating point, values in
``[0, 1]``) and a PRNG key, plus keyword-only hyper-parameters that are static Python values;
it returns an image of a static shape and the input's dtype. So each one compiles under
``jit`` and batches with ``jax.vmap`` over images and per-image keys::

  keys = jax.random.split(key, images.shape[0])
  out = jax.vmap(lambda im, k: random_affine(im, k, max_rotation=25.0))(images, keys)

Geometric warps sample the input bilinearly at computed coordinates (pixel centres at integer
coordinates, as in ``jax.scipy.ndimage.map_coordinates``); what falls outside the image takes
the value ``fill``. Resizes use half-pixel centres with source coordinates clamped to the
crop, as ``jax.image.resize(..., "bilinear", antialias=False)`` and torchvision do. Every
transform at zero strength returns its input unchanged (bit-exact: the coordinates are then
integers).

The batched helpers :func:`iic_views` and :func:`rotate_or_crop_views` build IIC's twin
views of a batch of MNIST digits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxvision import _checks

__all__ = [
    "center_crop", "random_crop_resize", "random_resized_crop", "random_rotation",
    "random_affine", "binarize", "gaussian_noise", "random_horizontal_flip", "color_jitter",
    "random_zoom_with_boxes", "iic_views", "rotate_or_crop_views",
]


# ---------------------------------------------------------------------------------------------
# Validation.


def _as_image(image: ArrayLike, name: str = "image") -> jax.Array:
  """``image`` as a floating ``[H, W, C]`` array (dtype kept)."""
  arr = jnp.asarray(image)
  if arr.ndim != 3:
    raise ValueError(f"`{name}` must have shape [H, W, C] (one image; use jax.vmap for a "
                     f"batch), got shape {tuple(arr.shape)}.")
  if not jnp.issubdtype(arr.dtype, jnp.floating):
    raise TypeError(f"`{name}` must be a floating-point image in [0, 1], got dtype "
                    f"{arr.dtype}.")
  if 0 in arr.shape:
    raise ValueError(f"`{name}` must not be empty, got shape {tuple(arr.shape)}.")
  return arr


def _hw(value: Any, name: str) -> tuple[int, int]:
  """A static size: an int (square) or a pair of ints, all >= 1."""
  pair = (value, value) if not isinstance(value, (tuple, list)) else tuple(value)
  if len(pair) != 2:
    raise ValueError(f"`{name}` must be an int or a pair (height, width), got {value!r}.")
  for v in pair:
    _checks.check_size(v, name)
    if v < 1:
      raise ValueError(f"`{name}` must be >= 1, got {value!r}.")
  return int(pair[0]), int(pair[1])


def _range(value: Any, name: str, *, symmetric: bool) -> tuple[float, float]:
  """A static ``(lo, hi)`` range; a single number ``v`` means ``(-v, v)`` when symmetric."""
  if isinstance(value, (tuple, list)):
    if len(value) != 2:
      raise ValueError(f"`{name}` must be a pair (low, high), got {value!r}.")
    lo, hi = (_checks.check_float(v, name) for v in value)
  elif symmetric:
    v = _checks.check_float(value, name)
    if v < 0:
      raise ValueError(f"`{name}` must be >= 0 (a symmetric range +-{name}), got {value!r}.")
    lo, hi = -v, v
  else:
    raise TypeError(f"`{name}` must be a pair (low, high), got {value!r}.")
  if lo > hi:
    raise ValueError(f"`{name}` must have low <= high, got {value!r}.")
  return lo, hi


def _non_negative(value: Any, name: str) -> float:
  v = _checks.check_float(value, name)
  if v < 0:
    raise ValueError(f"`{name}` must be >= 0, got {value!r}.")
  return v


# ---------------------------------------------------------------------------------------------
# Sampling.


def _bilinear(image: jax.Array, ys: jax.Array, xs: jax.Array, fill: float) -> jax.Array:
  """``image`` ``[H, W, C]`` sampled bilinearly at ``(ys, xs)`` (``[h, w]`` each).

  Pixel centres are at integer coordinates; each of the four taps that falls outside the
  image contributes ``fill`` (``map_coordinates``'s ``mode="constant"``). Computed in
  float32, returned in the image's dtype.
  """
  h, w, c = image.shape
  flat = image.astype(jnp.float32).reshape(h * w, c)
  y0 = jnp.floor(ys)
  x0 = jnp.floor(xs)
  wy = (ys - y0)[..., None]
  wx = (xs - x0)[..., None]
  y0 = y0.astype(jnp.int32)
  x0 = x0.astype(jnp.int32)

  def tap(yi, xi):
    inside = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)
    idx = jnp.clip(yi, 0, h - 1) * w + jnp.clip(xi, 0, w - 1)
    return jnp.where(inside[..., None], flat[idx], jnp.float32(fill))

  out = ((1.0 - wy) * ((1.0 - wx) * tap(y0, x0) + wx * tap(y0, x0 + 1))
         + wy * ((1.0 - wx) * tap(y0 + 1, x0) + wx * tap(y0 + 1, x0 + 1)))
  return out.astype(image.dtype)


def _resize_crop(image: jax.Array, top, left, crop_h, crop_w,
                 out_size: tuple[int, int]) -> jax.Array:
  """The crop ``[top, top + crop_h) x [left, left + crop_w)`` resized to ``out_size``.

  ``top``, ``left``, ``crop_h``, ``crop_w`` may be traced; half-pixel centres, source
  coordinates clamped to the crop (so the crop's edge pixels extend outwards).
  """
  oh, ow = out_size
  top, left, crop_h, crop_w = (jnp.asarray(v, jnp.float32) for v in (top, left, crop_h, crop_w))
  ys = (jnp.arange(oh, dtype=jnp.float32) + 0.5) * (crop_h / oh) - 0.5
  xs = (jnp.arange(ow, dtype=jnp.float32) + 0.5) * (crop_w / ow) - 0.5
  ys = top + jnp.clip(ys, 0.0, crop_h - 1.0)
  xs = left + jnp.clip(xs, 0.0, crop_w - 1.0)
  yy, xx = jnp.meshgrid(ys, xs, indexing="ij")
  return _bilinear(image, yy, xx, 0.0)


def _warp(image: jax.Array, inverse: jax.Array, shift: jax.Array, fill: float) -> jax.Array:
  """Output pixel ``p`` takes the input at ``inverse @ (p - c - shift) + c``.

  ``c`` is the image centre; points are ``(x, y)`` with ``y`` pointing down; ``inverse`` is
  the ``[2, 2]`` inverse of the forward map of the content about the centre.
  """
  h, w, _ = image.shape
  cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
  yy, xx = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32),
                        indexing="ij")
  dx = xx - cx - shift[0]
  dy = yy - cy - shift[1]
  src_x = inverse[0, 0] * dx + inverse[0, 1] * dy + cx
  src_y = inverse[1, 0] * dx + inverse[1, 1] * dy + cy
  return _bilinear(image, src_y, src_x, fill)


def _affine_inverse(angle_deg, scale, shear_deg) -> jax.Array:
  """Inverse of ``R(angle) @ Shear_x(shear) * scale`` acting on ``(x, y)``, ``y`` down.

  ``R(angle)`` turns the content counter-clockwise on screen for a positive angle (as
  torchvision's ``rotate``); ``Shear_x`` maps ``(x, y)`` to ``(x + tan(shear) y, y)``.
  """
  a = jnp.deg2rad(jnp.asarray(angle_deg, jnp.float32))
  t = jnp.tan(jnp.deg2rad(jnp.asarray(shear_deg, jnp.float32)))
  cos, sin = jnp.cos(a), jnp.sin(a)
  # Forward: R = [[cos, sin], [-sin, cos]], S = [[1, t], [0, 1]]; inverse = S^-1 R^T / scale.
  inv = jnp.array([[cos - t * sin, -sin - t * cos],
                   [sin, cos]], dtype=jnp.float32)
  return inv / jnp.asarray(scale, jnp.float32)


# ---------------------------------------------------------------------------------------------
# Crops and resizes.


def center_crop(image: ArrayLike, *, size: int | tuple[int, int]) -> jax.Array:
  """The central ``size`` crop of images ``[..., H, W, C]`` (any number of leading dims).

  The crop starts at ``((H - h) // 2, (W - w) // 2)``.

  Args:
    image: ``[..., H, W, C]`` images.
    size: the crop size, an int (square) or ``(h, w)``, at most ``(H, W)``.

  Returns:
    ``[..., h, w, C]``, same dtype.

  >>> center_crop(jnp.arange(16.0).reshape(4, 4, 1), size=2)[..., 0].tolist()
  [[5.0, 6.0], [9.0, 10.0]]
  """
  image = jnp.asarray(image)
  if image.ndim < 3:
    raise ValueError(f"`image` must have shape [..., H, W, C], got {tuple(image.shape)}.")
  h, w = _hw(size, "size")
  big_h, big_w = image.shape[-3], image.shape[-2]
  if h > big_h or w > big_w:
    raise ValueError(f"`size` {(h, w)} exceeds the image size {(big_h, big_w)}.")
  top, left = (big_h - h) // 2, (big_w - w) // 2
  return image[..., top:top + h, left:left + w, :]


def random_crop_resize(image: ArrayLike, key: ArrayLike, *, crop_sizes: int | Sequence[int],
                       out_size: int | tuple[int, int]) -> jax.Array:
  """A square crop of a random size from ``crop_sizes`` at a random place, resized.

  The crop side is drawn uniformly from ``crop_sizes``, its top-left corner uniformly among
  the integer positions that keep it inside the image; the crop is resized bilinearly to
  ``out_size``.

  Args:
    image: ``[H, W, C]`` float in ``[0, 1]``.
    key: a PRNG key.
    crop_sizes: an int or a sequence of ints, each at most ``min(H, W)``.
    out_size: the output size, int or ``(h, w)``.

  Returns:
    ``[out_h, out_w, C]``, the dtype of ``image``.

  >>> x = jnp.full((28, 28, 1), 0.25)
  >>> y = random_crop_resize(x, jax.random.key(0), crop_sizes=(16, 20), out_size=24)
  >>> y.shape, bool(jnp.all(y == 0.25))
  ((24, 24, 1), True)
  """
  image = _as_image(image)
  h, w, _ = image.shape
  sizes = (crop_sizes,) if not isinstance(crop_sizes, (tuple, list)) else tuple(crop_sizes)
  if not sizes:
    raise ValueError("`crop_sizes` must not be empty.")
  for s in sizes:
    _checks.check_size(s, "crop_sizes")
    if not 1 <= s <= min(h, w):
      raise ValueError(f"`crop_sizes` must be in [1, {min(h, w)}] for a {h}x{w} image, got "
                       f"{crop_sizes!r}.")
  out = _hw(out_size, "out_size")
  k_size, k_y, k_x = jax.random.split(key, 3)
  size = jnp.asarray(sizes, jnp.int32)[jax.random.randint(k_size, (), 0, len(sizes))]
  top = jax.random.randint(k_y, (), 0, h - size + 1)
  left = jax.random.randint(k_x, (), 0, w - size + 1)
  return _resize_crop(image, top, left, size, size, out)


def random_resized_crop(image: ArrayLike, key: ArrayLike, *, out_size: int | tuple[int, int],
                        scale: tuple[float, float] = (0.08, 1.0),
                        ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
                        num_tries: int = 10) -> jax.Array:
  """torchvision's ``RandomResizedCrop``: a crop of random area and aspect ratio, resized.

  Up to ``num_tries`` candidates (all drawn at once): area ``U(scale) * H * W``, aspect
  ``w / h = exp(U(log ratio))``, ``w`` and ``h`` rounded; the first that fits in the image is
  used, at a uniform integer position. If none fits, the whole image clipped to the nearest
  allowed ratio, centred (torchvision's fallback). Then a bilinear resize to ``out_size``.

  Args:
    image: ``[H, W, C]`` float in ``[0, 1]``.
    key: a PRNG key.
    out_size: output size, int or ``(h, w)``.
    scale: range of the crop's area as a fraction of the image, ``0 < lo <= hi``.
    ratio: range of the crop's aspect ratio ``w / h``, ``0 < lo <= hi``.
    num_tries: candidates drawn, ``>= 1``.

  Returns:
    ``[out_h, out_w, C]``, the dtype of ``image``.

  >>> x = jax.random.uniform(jax.random.key(1), (8, 8, 3))
  >>> y = random_resized_crop(x, jax.random.key(2), out_size=8, scale=(1.0, 1.0),
  ...                         ratio=(1.0, 1.0))
  >>> bool(jnp.all(y == x))
  True
  """
  image = _as_image(image)
  h, w, _ = image.shape
  out = _hw(out_size, "out_size")
  s_lo, s_hi = _range(scale, "scale", symmetric=False)
  r_lo, r_hi = _range(ratio, "ratio", symmetric=False)
  if s_lo <= 0 or r_lo <= 0:
    raise ValueError(f"`scale` and `ratio` must be positive, got scale={scale!r}, "
                     f"ratio={ratio!r}.")
  num_tries = _checks.check_size(num_tries, "num_tries")
  if num_tries < 1:
    raise ValueError(f"`num_tries` must be >= 1, got {num_tries}.")
  k_area, k_ratio, k_y, k_x = jax.random.split(key, 4)
  area = h * w * jax.random.uniform(k_area, (num_tries,), minval=s_lo, maxval=s_hi)
  aspect = jnp.exp(jax.random.uniform(k_ratio, (num_tries,), minval=math.log(r_lo),
                                      maxval=math.log(r_hi)))
  cw = jnp.round(jnp.sqrt(area * aspect))
  ch = jnp.round(jnp.sqrt(area / aspect))
  fits = (cw > 0) & (cw <= w) & (ch > 0) & (ch <= h)
  first = jnp.argmax(fits)
  # torchvision's fallback: the whole image, clipped to the allowed aspect ratios.
  in_ratio = w / h
  if in_ratio < r_lo:
    fb_w, fb_h = w, int(round(w / r_lo))
  elif in_ratio > r_hi:
    fb_w, fb_h = int(round(h * r_hi)), h
  else:
    fb_w, fb_h = w, h
  any_fit = jnp.any(fits)
  crop_w = jnp.where(any_fit, cw[first], fb_w)
  crop_h = jnp.where(any_fit, ch[first], fb_h)
  top = jnp.where(any_fit,
                  jnp.floor(jax.random.uniform(k_y, ()) * (h - crop_h + 1)),
                  (h - fb_h) // 2)
  left = jnp.where(any_fit,
                   jnp.floor(jax.random.uniform(k_x, ()) * (w - crop_w + 1)),
                   (w - fb_w) // 2)
  top = jnp.minimum(top, h - crop_h)
  left = jnp.minimum(left, w - crop_w)
  return _resize_crop(image, top, left, crop_h, crop_w, out)


# ---------------------------------------------------------------------------------------------
# Geometric warps.


def random_rotation(image: ArrayLike, key: ArrayLike, *,
                    degrees: float | tuple[float, float], fill: float = 0.0) -> jax.Array:
  """A rotation about the image centre by a uniform random angle.

  Positive angles turn the content counter-clockwise on screen (as torchvision's
  ``rotate``). Bilinear sampling; uncovered corners take ``fill``.

  Args:
    image: ``[H, W, C]`` float in ``[0, 1]``.
    key: a PRNG key.
    degrees: ``d`` for angles in ``[-d, d]``, or a range ``(lo, hi)`` in degrees.
    fill: the value outside the input image.

  Returns:
    ``[H, W, C]``, the dtype of ``image``.

  >>> x = jnp.arange(9.0).reshape(3, 3, 1) / 8
  >>> y = random_rotation(x, jax.random.key(0), degrees=(90.0, 90.0))
  >>> (jnp.round(y[..., 0] * 8)).astype(int).tolist()  # np.rot90(x)
  [[2, 5, 8], [1, 4, 7], [0, 3, 6]]
  """
  image = _as_image(image)
  lo, hi = _range(degrees, "degrees", symmetric=True)
  fill = _checks.check_float(fill, "fill")
  angle = jax.random.uniform(key, (), minval=lo, maxval=hi)
  return _warp(image, _affine_inverse(angle, 1.0, 0.0), jnp.zeros(2, jnp.float32), fill)


def random_affine(image: ArrayLike, key: ArrayLike, *, max_rotation: float = 0.0,
                  rotation_prob: float = 1.0, scale_range: tuple[float, float] = (1.0, 1.0),
                  max_shift: float = 0.0, max_shear: float = 0.0,
                  fill: float = 0.0) -> jax.Array:
  """A random affine distortion about the image centre: rotation, shear, scale, shift.

  The content is sheared along x by an angle in ``[-max_shear, max_shear]``, scaled by a
  factor in ``scale_range``, rotated by an angle in ``[-max_rotation, max_rotation]`` (with
  probability ``rotation_prob``, else not rotated) and shifted by up to ``max_shift`` pixels
  along each axis (all uniform). Bilinear sampling; uncovered pixels take ``fill``.

  Args:
    image: ``[H, W, C]`` float in ``[0, 1]``.
    key: a PRNG key.
    max_rotation: degrees, ``>= 0``.
    rotation_prob: probability of rotating at all, in ``[0, 1]``.
    scale_range: ``(lo, hi)`` zoom factors, ``0 < lo <= hi`` (``> 1`` enlarges).
    max_shift: pixels, ``>= 0``.
    max_shear: degrees, in ``[0, 90)``.
    fill: the value outside the input image.

  Returns:
    ``[H, W, C]``, the dtype of ``image``.

  >>> x = jax.random.uniform(jax.random.key(0), (6, 6, 1))
  >>> bool(jnp.all(random_affine(x, jax.random.key(1)) == x))  # zero strength
  True
  >>> random_affine(x, jax.random.key(1), max_rotation=25.0, scale_range=(0.8, 1.2),
  ...               max_shift=3.0).shape
  (6, 6, 1)
  """
  image = _as_image(image)
  max_rotation = _non_negative(max_rotation, "max_rotation")
  rotation_prob = _checks.check_unit_interval(rotation_prob, "rotation_prob")
  s_lo, s_hi = _range(scale_range, "scale_range", symmetric=False)
  if s_lo <= 0:
    raise ValueError(f"`scale_range` must be positive, got {scale_range!r}.")
  max_shift = _non_negative(max_shift, "max_shift")
  max_shear = _non_negative(max_shear, "max_shear")
  if max_shear >= 90:
    raise ValueError(f"`max_shear` must be < 90 degrees, got {max_shear!r}.")
  fill = _checks.check_float(fill, "fill")
  k_rot, k_do, k_scale, k_shift, k_shear = jax.random.split(key, 5)
  angle = jax.random.uniform(k_rot, (), minval=-max_rotation, maxval=max_rotation)
  angle = jnp.where(jax.random.uniform(k_do, ()) < rotation_prob, angle, 0.0)
  scale = jax.random.uniform(k_scale, (), minval=s_lo, maxval=s_hi)
  shift = jax.random.uniform(k_shift, (2,), minval=-max_shift, maxval=max_shift)
  shear = jax.random.uniform(k_shear, (), minval=-max_shear, maxval=max_shear)
  return _warp(image, _affine_inverse(angle, scale, shear), shift, fill)


def random_horizontal_flip(image: ArrayLike, key: ArrayLike, *, p: float = 0.5) -> jax.Array:
  """Mirrors the image left-right with probability ``p``.

  Args:
    image: ``[H, W, C]``.
    key: a PRNG key.
    p: the flip probability, in ``[0, 1]``.

  Returns:
    ``[H, W, C]``, the dtype of ``image``.

  >>> x = jnp.arange(3.0).reshape(1, 3, 1)
  >>> random_horizontal_flip(x, jax.random.key(0), p=1.0)[0, :, 0].tolist()
  [2.0, 1.0, 0.0]
  """
  image = _as_image(image)
  p = _checks.check_unit_interval(p, "p")
  return jnp.where(jax.random.uniform(key, ()) < p, image[:, ::-1, :], image)


def random_zoom_with_boxes(image: ArrayLike, boxes: ArrayLike, key: ArrayLike, *,
                           scale_range: tuple[float, float] = (0.6, 1.6), p: float = 1.0,
                           min_visible: float = 0.5) -> tuple[jax.Array, jax.Array]:
  """Zoom in or out about a random point, moving the boxes with the content (detection).

  SSD's random crop and zoom-out in one affine map: with probability ``p`` the content is
  scaled by ``s`` (log-uniform in ``scale_range``; ``s < 1`` zooms out, ``s > 1`` crops in)
  and shifted by a uniform ``t`` that keeps the image covered when ``s > 1`` and inside the
  frame when ``s < 1``: a point ``X`` (continuous pixel coordinates) goes to ``s X + t``.
  Uncovered pixels take the image's mean colour (SSD's zoom-out fill). Boxes move the same
  way and are clipped to the frame; a box keeping less than ``min_visible`` of its area, and
  a padding row, becomes ``[0, 0, 0, 0]`` (an empty box, which
  :func:`jaxvision.ops.match_anchors` treats as padding).

  Args:
    image: ``[H, W, C]`` float.
    boxes: ``[G, 4]`` ``xyxy`` pixel boxes (padding rows all zero or empty).
    key: a PRNG key.
    scale_range: ``(lo, hi)`` with ``0 < lo <= hi``.
    p: probability of zooming at all.
    min_visible: the fraction of a box that must stay in the frame, in ``[0, 1]``.

  Returns:
    ``(image [H, W, C], boxes [G, 4] float32)``.

  >>> im = jnp.zeros((4, 4, 1)); b = jnp.array([[0., 0., 2., 2.]])
  >>> out, nb = random_zoom_with_boxes(im, b, jax.random.key(0), scale_range=(1.0, 1.0))
  >>> nb.tolist()
  [[0.0, 0.0, 2.0, 2.0]]
  """
  image = _as_image(image)
  boxes = jnp.asarray(boxes, jnp.float32)
  if boxes.ndim != 2 or boxes.shape[-1] != 4:
    raise ValueError(f"`boxes` must be [G, 4] xyxy boxes, got shape {tuple(boxes.shape)}.")
  lo, hi = (float(v) for v in scale_range)
  if not 0.0 < lo <= hi:
    raise ValueError(f"`scale_range` must be (lo, hi) with 0 < lo <= hi, got {scale_range!r}.")
  p = _checks.check_unit_interval(p, "p")
  min_visible = _checks.check_unit_interval(min_visible, "min_visible")
  h, w, _ = image.shape
  k_apply, k_scale, k_x, k_y = jax.random.split(key, 4)
  s = jnp.exp(jax.random.uniform(k_scale, (), minval=math.log(lo), maxval=math.log(hi)))
  s = jnp.where(jax.random.uniform(k_apply, ()) < p, s, 1.0)

  def shift(k, size):
    room = size * (1.0 - s)  # > 0 when zooming out, < 0 when zooming in
    return jax.random.uniform(k, ()) * room

  tx, ty = shift(k_x, w), shift(k_y, h)
  # Output pixel centre X + 0.5 came from (X + 0.5 - t) / s; _bilinear's centres are integers.
  ys = (jnp.arange(h, dtype=jnp.float32) + 0.5 - ty) / s - 0.5
  xs = (jnp.arange(w, dtype=jnp.float32) + 0.5 - tx) / s - 0.5
  # Zooming in, the frame lies inside the image: clamp the half-pixel overhang at its edges
  # to the edge pixels instead of blending with the fill.
  ys = jnp.where(s > 1.0, jnp.clip(ys, 0.0, h - 1.0), ys)
  xs = jnp.where(s > 1.0, jnp.clip(xs, 0.0, w - 1.0), xs)
  yy, xx = jnp.meshgrid(ys, xs, indexing="ij")
  fill = jnp.mean(image.astype(jnp.float32), axis=(0, 1))
  out = _bilinear(image, yy, xx, fill)
  out = jnp.where(s == 1.0, image, out)
  moved = boxes * s + jnp.array([tx, ty, tx, ty])
  clipped = jnp.clip(moved, 0.0, jnp.array([w, h, w, h], jnp.float32))
  area = lambda b: (jnp.maximum(b[:, 2] - b[:, 0], 0.0)  # noqa: E731
                    * jnp.maximum(b[:, 3] - b[:, 1], 0.0))
  full = area(moved)
  keep = (full > 0) & (area(clipped) >= min_visible * full)
  return out, jnp.where(keep[:, None], clipped, 0.0)


# ---------------------------------------------------------------------------------------------
# Pixel-value transforms.


def binarize(image: ArrayLike, *, threshold: float = 0.5) -> jax.Array:
  """1 where ``image > threshold``, else 0 (any shape; dtype kept).

  Args:
    image: float images of any shape.
    threshold: in ``[0, 1]``.

  Returns:
    The binary image, same shape and dtype.

  >>> binarize(jnp.array([0.1, 0.5, 0.9]), threshold=0.5).tolist()
  [0.0, 0.0, 1.0]
  """
  image = jnp.asarray(image)
  if not jnp.issubdtype(image.dtype, jnp.floating):
    raise TypeError(f"`image` must be a floating-point image, got dtype {image.dtype}.")
  threshold = _checks.check_unit_interval(threshold, "threshold")
  return (image > threshold).astype(image.dtype)


def gaussian_noise(image: ArrayLike, key: ArrayLike, *, std: float) -> jax.Array:
  """Adds ``N(0, std^2)`` noise per pixel and clips to ``[0, 1]``.

  Args:
    image: ``[H, W, C]`` float in ``[0, 1]``.
    key: a PRNG key.
    std: the noise standard deviation, ``>= 0``.

  Returns:
    ``[H, W, C]``, the dtype of ``image``.

  >>> x = jnp.full((2, 2, 1), 0.5)
  >>> bool(jnp.all(gaussian_noise(x, jax.random.key(0), std=0.0) == x))
  True
  """
  image = _as_image(image)
  std = _non_negative(std, "std")
  noise = jax.random.normal(key, image.shape, jnp.float32)
  out = jnp.clip(image.astype(jnp.float32) + std * noise, 0.0, 1.0)
  return out.astype(image.dtype)


_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as torchvision's rgb_to_grayscale


def _gray(image: jax.Array) -> jax.Array:
  """``[H, W, 1]`` luma of an RGB ``[H, W, 3]`` (or the single channel itself)."""
  if image.shape[-1] == 1:
    return image
  return jnp.tensordot(image, jnp.asarray(_LUMA, image.dtype), axes=([-1], [0]))[..., None]


def color_jitter(image: ArrayLike, key: ArrayLike, *, brightness: float = 0.0,
                 contrast: float = 0.0, saturation: float = 0.0,
                 hue: float = 0.0) -> jax.Array:
  """Random brightness, contrast, saturation and (lite) hue changes, in that fixed order.

  As torchvision's ``ColorJitter``: factors ``b, c, s`` uniform in ``[max(0, 1 - v), 1 + v]``;
  brightness ``x * b``; contrast ``c x + (1 - c) mean(gray(x))``; saturation
  ``s x + (1 - s) gray(x)``, each clipped to ``[0, 1]``. Hue is a lite version: a rotation
  of the chroma plane of YIQ by ``2 pi u``, ``u`` uniform in ``[-hue, hue]`` (instead of a
  shift of HSV hue). For grayscale images (``C = 1``) only brightness and contrast apply.

  Args:
    image: ``[H, W, C]`` float in ``[0, 1]`` with ``C`` 1 or 3.
    key: a PRNG key.
    brightness: ``>= 0``.
    contrast: ``>= 0``.
    saturation: ``>= 0``; must be 0 for ``C = 1``.
    hue: in ``[0, 0.5]``; must be 0 for ``C = 1``.

  Returns:
    ``[H, W, C]``, the dtype of ``image``.

  >>> x = jnp.linspace(0.0, 1.0, 12).reshape(2, 2, 3)
  >>> bool(jnp.all(color_jitter(x, jax.random.key(0)) == x))  # zero strength
  True
  """
  image = _as_image(image)
  c = image.shape[-1]
  if c not in (1, 3):
    raise ValueError(f"`image` must have 1 or 3 channels, got {c}.")
  brightness = _non_negative(brightness, "brightness")
  contrast = _non_negative(contrast, "contrast")
  saturation = _non_negative(saturation, "saturation")
  hue = _non_negative(hue, "hue")
  if hue > 0.5:
    raise ValueError(f"`hue` must be in [0, 0.5], got {hue!r}.")
  if c == 1 and (saturation or hue):
    raise ValueError(f"`saturation` and `hue` need an RGB image; got {saturation=}, {hue=} "
                     f"for a grayscale image.")
  k_b, k_c, k_s, k_h = jax.random.split(key, 4)
  x = image.astype(jnp.float32)

  def factor(k, v):
    return jax.random.uniform(k, (), minval=max(0.0, 1.0 - v), maxval=1.0 + v)

  if brightness:
    x = jnp.clip(x * factor(k_b, brightness), 0.0, 1.0)
  if contrast:
    f = factor(k_c, contrast)
    x = jnp.clip(f * x + (1.0 - f) * jnp.mean(_gray(x)), 0.0, 1.0)
  if saturation:
    f = factor(k_s, saturation)
    x = jnp.clip(f * x + (1.0 - f) * _gray(x), 0.0, 1.0)
  if hue:
    theta = 2.0 * jnp.pi * jax.random.uniform(k_h, (), minval=-hue, maxval=hue)
    to_yiq = jnp.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322],
                        [0.211, -0.523, 0.312]], jnp.float32)
    cos, sin = jnp.cos(theta), jnp.sin(theta)
    rot = jnp.array([[1.0, 0.0, 0.0], [0.0, cos, -sin], [0.0, sin, cos]])
    m = jnp.linalg.inv(to_yiq) @ rot @ to_yiq
    x = jnp.clip(x @ m.T, 0.0, 1.0)
  return x.astype(image.dtype)


# ---------------------------------------------------------------------------------------------
# IIC twin views of a batch.


def _as_batch(images: ArrayLike) -> jax.Array:
  """``[B, H, W, C]`` floats in [0, 1]: uint8 is divided by 255, floats kept."""
  x = jnp.asarray(images)
  if x.ndim != 4:
    raise ValueError(f"`images` must have shape [B, H, W, C], got {tuple(x.shape)}.")
  if x.dtype == jnp.uint8:
    return x.astype(jnp.float32) / 255.0
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise TypeError(f"`images` must be uint8 or floating point, got dtype {x.dtype}.")
  return x


def _repeat(x: jax.Array, repeats: int) -> jax.Array:
  repeats = _checks.check_size(repeats, "repeats")
  if repeats < 1:
    raise ValueError(f"`repeats` must be >= 1, got {repeats}.")
  return x if repeats == 1 else jnp.repeat(x, repeats, axis=0)


def iic_views(images: ArrayLike, key: ArrayLike, *, out_size: int = 24,
              max_rotation: float = 25.0, rotation_prob: float = 0.5,
              scale_range: tuple[float, float] = (0.8, 1.2), max_shift: float = 3.0,
              max_shear: float = 0.0, repeats: int = 1) -> tuple[jax.Array, jax.Array]:
  """IIC's twin views of a batch: the centre crop and a random affine distortion of it.

  View 1 is the central ``out_size`` crop. View 2 applies :func:`random_affine` (rotation
  in ``[-max_rotation, max_rotation]`` with probability ``rotation_prob``, scale in
  ``scale_range``, shift up to ``max_shift`` px) to the whole image, then takes the same
  central crop. This is the pairing measured in the project's IIC prototype (REFERENCES.md):
  one clean, one distorted view. With ``repeats = r`` each image appears ``r`` times in a row
  (``jnp.repeat``), each time with a fresh distortion, as IIC's repeated-augmentation batches.

  Args:
    images: ``[B, H, W, C]``, uint8 (divided by 255) or float in ``[0, 1]``.
    key: a PRNG key (split into one key per output image).
    out_size: side of both views, at most ``min(H, W)``.
    max_rotation, rotation_prob, scale_range, max_shift, max_shear: as in
      :func:`random_affine`.
    repeats: copies of each image, ``>= 1``.

  Returns:
    ``(view1, view2)``, each ``[B * repeats, out_size, out_size, C]`` (float32 for uint8
    input, else the input dtype).

  >>> x = jnp.zeros((4, 28, 28, 1), jnp.uint8)
  >>> v1, v2 = jax.jit(iic_views)(x, jax.random.key(0))
  >>> v1.shape, v2.shape, v1.dtype
  ((4, 24, 24, 1), (4, 24, 24, 1), dtype('float32'))
  """
  x = _repeat(_as_batch(images), repeats)
  keys = jax.random.split(key, x.shape[0])

  def distort(image, k):
    return random_affine(image, k, max_rotation=max_rotation, rotation_prob=rotation_prob,
                         scale_range=scale_range, max_shift=max_shift, max_shear=max_shear)

  view1 = center_crop(x, size=out_size)
  view2 = center_crop(jax.vmap(distort)(x, keys), size=out_size)
  return view1, view2


def rotate_or_crop_views(images: ArrayLike, key: ArrayLike, *, out_size: int = 24,
                         max_rotation: float = 20.0, rotation_prob: float = 0.5,
                         crop_sizes: Sequence[int] = (20, 18, 16),
                         repeats: int = 1) -> tuple[jax.Array, jax.Array]:
  """Twin views of a batch: a centre crop, and a rotation or a random crop of each image.

  The IIC views of Atienza, *Advanced Deep Learning with TensorFlow 2 and Keras*, ch. 13.

  View 1 is the central ``out_size`` crop. View 2 is, per image, with probability
  ``rotation_prob`` a rotation by an angle in ``[-max_rotation, max_rotation]`` followed by
  the central ``out_size`` crop, otherwise a random square crop of a side from
  ``crop_sizes`` resized to ``out_size`` (:func:`random_crop_resize`).

  Args:
    images: ``[B, H, W, C]``, uint8 (divided by 255) or float in ``[0, 1]``.
    key: a PRNG key.
    out_size: side of both views.
    max_rotation: degrees, ``>= 0``.
    rotation_prob: probability of the rotation branch, in ``[0, 1]``.
    crop_sizes: the crop sides of the other branch.
    repeats: copies of each image, ``>= 1``.

  Returns:
    ``(view1, view2)``, each ``[B * repeats, out_size, out_size, C]``.

  >>> x = jnp.full((2, 28, 28, 1), 255, jnp.uint8)
  >>> views = jax.jit(lambda x, key: rotate_or_crop_views(x, key, rotation_prob=0.0))
  >>> v1, v2 = views(x, jax.random.key(0))
  >>> v2.shape, bool(jnp.all(v2 == 1.0))
  ((2, 24, 24, 1), True)
  """
  x = _repeat(_as_batch(images), repeats)
  rotation_prob = _checks.check_unit_interval(rotation_prob, "rotation_prob")
  keys = jax.random.split(key, x.shape[0])

  def second(image, k):
    k_branch, k_rot, k_crop = jax.random.split(k, 3)
    rotated = center_crop(random_rotation(image, k_rot, degrees=max_rotation), size=out_size)
    cropped = random_crop_resize(image, k_crop, crop_sizes=crop_sizes, out_size=out_size)
    return jnp.where(jax.random.uniform(k_branch, ()) < rotation_prob, rotated, cropped)

  view1 = center_crop(x, size=out_size)
  view2 = jax.vmap(second)(x, keys)
  return view1, view2
