"""Tests for jaxvision.data.transforms against NumPy oracles and hand-computed cases."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from jaxvision.data import transforms as T

KEY = jax.random.key(0)


@functools.lru_cache(maxsize=None)
def _jit(fn, **kwargs):
  return jax.jit(functools.partial(fn, **kwargs))


def jitted(fn, **kwargs):
  """``fn`` with static keyword arguments, compiled once per distinct set of them."""
  return _jit(fn, **{k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()})


def rand_image(shape, seed=0, dtype=np.float32):
  return np.random.default_rng(seed).uniform(0.0, 1.0, shape).astype(dtype)


# ---------------------------------------------------------------------------------------------
# NumPy oracles (loops, float64): written from the definitions, sharing no code with T.


def np_bilinear(image, ys, xs, fill):
  """Bilinear sample at (y, x); taps outside the image count as ``fill``."""
  h, w, c = image.shape
  out = np.zeros(ys.shape + (c,))
  for idx in np.ndindex(ys.shape):
    y, x = ys[idx], xs[idx]
    y0, x0 = math.floor(y), math.floor(x)
    acc = np.zeros(c)
    for yi, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
      for xi, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
        v = image[yi, xi] if 0 <= yi < h and 0 <= xi < w else np.full(c, fill)
        acc += wy * wx * v
    out[idx] = acc
  return out


def np_resize(image, out_h, out_w):
  """Half-pixel bilinear resize with edge clamping."""
  h, w, _ = image.shape
  ys = np.clip((np.arange(out_h) + 0.5) * h / out_h - 0.5, 0, h - 1)
  xs = np.clip((np.arange(out_w) + 0.5) * w / out_w - 0.5, 0, w - 1)
  yy, xx = np.meshgrid(ys, xs, indexing="ij")
  return np_bilinear(image.astype(np.float64), yy, xx, 0.0)


def np_rotate(image, degrees, fill):
  """Counter-clockwise on screen about the centre: output p samples R^-1 (p - c) + c."""
  h, w, _ = image.shape
  cy, cx = (h - 1) / 2, (w - 1) / 2
  a = math.radians(degrees)
  yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
  dx, dy = xx - cx, yy - cy
  # A content point (dx, dy) goes to (dx cos + dy sin, -dx sin + dy cos); invert that.
  src_x = math.cos(a) * dx - math.sin(a) * dy + cx
  src_y = math.sin(a) * dx + math.cos(a) * dy + cy
  return np_bilinear(image.astype(np.float64), src_y, src_x, fill)


# ---------------------------------------------------------------------------------------------
# Every random transform, at some strength and at zero strength, for the generic tests.

STRONG = {
    "crop_resize": functools.partial(T.random_crop_resize, crop_sizes=(5, 6, 7), out_size=8),
    "resized_crop": functools.partial(T.random_resized_crop, out_size=8),
    "rotation": functools.partial(T.random_rotation, degrees=30.0),
    "affine": functools.partial(T.random_affine, max_rotation=25.0, scale_range=(0.8, 1.2),
                                max_shift=2.0, max_shear=10.0),
    "noise": functools.partial(T.gaussian_noise, std=0.3),
    "flip": functools.partial(T.random_horizontal_flip, p=0.5),
    "jitter": functools.partial(T.color_jitter, brightness=0.4, contrast=0.4, saturation=0.4,
                                hue=0.1),
}
ZERO = {
    "crop_resize": functools.partial(T.random_crop_resize, crop_sizes=8, out_size=8),
    "resized_crop": functools.partial(T.random_resized_crop, out_size=8, scale=(1.0, 1.0),
                                      ratio=(1.0, 1.0)),
    "rotation": functools.partial(T.random_rotation, degrees=0.0),
    "affine": functools.partial(T.random_affine, max_rotation=0.0, rotation_prob=1.0),
    "noise": functools.partial(T.gaussian_noise, std=0.0),
    "flip": functools.partial(T.random_horizontal_flip, p=0.0),
    "jitter": functools.partial(T.color_jitter),
}
NAMES = sorted(STRONG)
STRONG_JIT = {name: jax.jit(fn) for name, fn in STRONG.items()}  # compiled once per shape


@pytest.mark.parametrize("name", NAMES)
def test_zero_strength_is_identity(name):
  x = jnp.asarray(rand_image((8, 8, 3), 1))
  fn = jax.jit(ZERO[name])
  for seed in range(3):
    out = fn(x, jax.random.key(seed))
    assert out.dtype == x.dtype
    np.testing.assert_array_equal(np.asarray(out), np.asarray(x))


@pytest.mark.parametrize("name", NAMES)
def test_shape_dtype_range_determinism(name):
  fn = STRONG_JIT[name]
  for dtype in (jnp.float32, jnp.bfloat16):
    x = jnp.asarray(rand_image((8, 8, 3), 2), dtype)
    out = fn(x, KEY)
    assert out.shape == (8, 8, 3) and out.dtype == dtype
    values = np.asarray(out, np.float32)
    assert np.all(np.isfinite(values)) and values.min() >= 0.0 and values.max() <= 1.0
    np.testing.assert_array_equal(np.asarray(fn(x, KEY), np.float32), values)  # same key
  x = jnp.asarray(rand_image((8, 8, 3), 2))
  outs = [np.asarray(fn(x, jax.random.key(s))) for s in range(6)]
  assert len({o.tobytes() for o in outs}) >= (2 if name == "flip" else 5)  # keys differ


@pytest.mark.parametrize("name", NAMES)
def test_vmap_over_images_and_keys_equals_a_loop(name):
  fn = STRONG[name]
  images = jnp.asarray(rand_image((4, 8, 8, 3), 3))
  keys = jax.random.split(jax.random.key(5), 4)
  batched = jax.jit(jax.vmap(fn))(images, keys)
  single = STRONG_JIT[name]
  looped = jnp.stack([single(images[i], keys[i]) for i in range(4)])
  np.testing.assert_allclose(np.asarray(batched), np.asarray(looped), atol=1e-6)


def test_raw_uint32_keys_work_too():
  x = jnp.asarray(rand_image((8, 8, 1), 4))
  out = jitted(T.random_affine, max_rotation=20.0)(x, jax.random.PRNGKey(3))
  assert out.shape == (8, 8, 1)


# ---------------------------------------------------------------------------------------------
# The sampler and hand-computed geometry.


def test_bilinear_sampler_matches_oracles():
  image = jnp.asarray(rand_image((5, 7, 2), 6))
  rng = np.random.default_rng(7)
  ys = rng.uniform(-2.0, 6.5, (9, 4)).astype(np.float32)
  xs = rng.uniform(-2.0, 8.5, (9, 4)).astype(np.float32)
  got = np.asarray(T._bilinear(image, jnp.asarray(ys), jnp.asarray(xs), 0.25))
  np.testing.assert_allclose(got, np_bilinear(np.asarray(image, np.float64), ys, xs, 0.25),
                             atol=1e-6)
  for ch in range(2):
    ref = jax.scipy.ndimage.map_coordinates(image[..., ch], [ys, xs], order=1,
                                            mode="constant", cval=0.25)
    np.testing.assert_allclose(got[..., ch], np.asarray(ref), atol=1e-6)


@pytest.mark.parametrize("size,degrees,k", [(5, 90.0, 1), (6, 90.0, 1), (5, -90.0, -1),
                                             (6, 180.0, 2), (5, 270.0, 3)])
def test_rotation_by_right_angles_is_rot90(size, degrees, k):
  x = rand_image((size, size, 2), 8)
  out = jitted(T.random_rotation, degrees=(degrees, degrees))(x, KEY)
  np.testing.assert_allclose(np.asarray(out), np.rot90(x, k, axes=(0, 1)), atol=1e-5)


def test_rotation_rectangular_interior_is_rot90():
  x = rand_image((5, 9, 1), 9)  # rotating a 5x9 image: the central 5x5 block maps exactly
  out = np.asarray(jitted(T.random_rotation, degrees=(90.0, 90.0))(x, KEY))
  np.testing.assert_allclose(out[:, 2:7], np.rot90(x[:, 2:7], 1, axes=(0, 1)), atol=1e-5)
  assert np.all(out[:, :2] == 0.0) and np.all(out[:, 7:] == 0.0)


@pytest.mark.parametrize("degrees,fill", [(30.0, 0.0), (-47.0, 0.6), (123.0, 1.0)])
def test_rotation_matches_numpy_oracle(degrees, fill):
  x = rand_image((7, 6, 2), 10)
  out = jitted(T.random_rotation, degrees=(degrees, degrees), fill=fill)(x, KEY)
  np.testing.assert_allclose(np.asarray(out), np_rotate(x, degrees, fill), atol=2e-6)


def fit_plane(values):
  """Least-squares ``a x + b y + c`` over an ``[h, w]`` grid: ((a, b, c), max residual)."""
  h, w = values.shape
  yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
  design = np.stack([xx.ravel(), yy.ravel(), np.ones(h * w)], axis=1)
  coef, *_ = np.linalg.lstsq(design, values.ravel().astype(np.float64), rcond=None)
  return coef, np.abs(design @ coef - values.ravel()).max()


def ramp(size, a=0.02, b=0.03, c=0.2):
  yy, xx = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
  return (a * xx + b * yy + c)[..., None].astype(np.float32)


@pytest.mark.parametrize("seed", range(4))
def test_affine_shift_only_translates(seed):
  # Bilinear sampling reproduces a linear ramp exactly, so a pure shift leaves the ramp's
  # gradient unchanged and moves its offset by at most (|a| + |b|) max_shift.
  x = ramp(16)
  out = np.asarray(jitted(T.random_affine, max_shift=3.0)(x, jax.random.key(seed)))
  (a, b, c), residual = fit_plane(out[4:12, 4:12, 0])
  assert residual < 1e-5
  np.testing.assert_allclose([a, b], [0.02, 0.03], atol=1e-5)
  c0 = 0.2 + 0.02 * 4 + 0.03 * 4
  assert abs(c - c0) <= 0.05 * 3.0 + 1e-5 and abs(c - c0) > 1e-4


@pytest.mark.parametrize("seed", range(4))
def test_affine_scale_only_zooms_about_the_centre(seed):
  x = ramp(16)
  out = np.asarray(jitted(T.random_affine, scale_range=(0.8, 1.2))(x, jax.random.key(seed)))
  (a, b, _), residual = fit_plane(out[4:12, 4:12, 0])
  assert residual < 1e-5
  s = 0.02 / a
  assert 0.8 - 1e-4 <= s <= 1.2 + 1e-4
  np.testing.assert_allclose(b, 0.03 / s, rtol=1e-4)
  centre = out[7:9, 7:9, 0].mean()  # the centre stays put
  np.testing.assert_allclose(centre, x[7:9, 7:9, 0].mean(), atol=1e-5)


def test_affine_fixed_scale_matches_oracle_and_rotation_prob_zero():
  x = rand_image((7, 7, 1), 11)
  affine = jitted(T.random_affine, scale_range=(2.0, 2.0), max_rotation=40.0,
                  rotation_prob=0.0)
  out = affine(x, KEY)
  c = 3.0
  grid = np.arange(7, dtype=np.float64)
  yy, xx = np.meshgrid(grid, grid, indexing="ij")
  expected = np_bilinear(x.astype(np.float64), c + (yy - c) / 2, c + (xx - c) / 2, 0.0)
  np.testing.assert_allclose(np.asarray(out), expected, atol=2e-6)


def test_affine_rotation_prob_half_rotates_about_half():
  x = jnp.asarray(rand_image((8, 8, 1), 12))
  keys = jax.random.split(KEY, 200)
  outs = jax.jit(jax.vmap(
      lambda k: T.random_affine(x, k, max_rotation=25.0, rotation_prob=0.5)))(keys)
  unchanged = np.mean(np.all(np.asarray(outs) == np.asarray(x)[None], axis=(1, 2, 3)))
  assert 0.35 < unchanged < 0.65


# ---------------------------------------------------------------------------------------------
# Crops and resizes.


def test_center_crop():
  x = np.arange(5 * 6 * 2, dtype=np.float32).reshape(5, 6, 2)
  np.testing.assert_array_equal(T.center_crop(x, size=(3, 2)), x[1:4, 2:4])
  batch = np.stack([x, x + 1])
  np.testing.assert_array_equal(T.center_crop(batch, size=4), batch[:, 0:4, 1:5])
  np.testing.assert_array_equal(T.center_crop(x, size=(5, 6)), x)
  with pytest.raises(ValueError, match="size"):
    T.center_crop(x, size=6)


@pytest.mark.parametrize("out", [(8, 8), (5, 11), (17, 3)])
def test_full_crop_resize_matches_jax_image_resize(out):
  x = rand_image((8, 8, 2), 13)
  got = jitted(T.random_crop_resize, crop_sizes=8, out_size=out)(x, KEY)
  np.testing.assert_allclose(np.asarray(got), np_resize(x, *out), atol=1e-6)
  ref = jax.image.resize(x, out + (2,), method="bilinear", antialias=False)
  np.testing.assert_allclose(np.asarray(got), np.asarray(ref), atol=1e-6)


def test_crop_resize_is_a_resize_of_one_allowed_crop():
  x = rand_image((9, 9, 1), 14)
  seen = set()
  for seed in range(12):
    out = np.asarray(jitted(T.random_crop_resize, crop_sizes=(4, 6),
                                          out_size=5)(x, jax.random.key(seed)))
    matches = [(s, i, j) for s in (4, 6) for i in range(10 - s) for j in range(10 - s)
               if np.allclose(out, np_resize(x[i:i + s, j:j + s], 5, 5), atol=1e-5)]
    assert matches
    seen.add(matches[0][0])
  assert seen == {4, 6}


@pytest.mark.parametrize("sizes", [(20, 18, 16), 28])
def test_crop_resize_of_a_constant_image_is_constant(sizes):
  x = jnp.full((28, 28, 1), 0.375)
  out = jax.jit(jax.vmap(lambda k: T.random_crop_resize(x, k, crop_sizes=sizes, out_size=24)))(
      jax.random.split(KEY, 8))
  assert out.shape == (8, 24, 24, 1)
  np.testing.assert_array_equal(np.asarray(out), 0.375)


def test_random_resized_crop_is_an_allowed_crop():
  x = rand_image((8, 8, 1), 15)
  crops = [(h, w, i, j) for h in range(1, 9) for w in range(1, 9)
           for i in range(9 - h) for j in range(9 - w)]
  resized = {c: np_resize(x[c[2]:c[2] + c[0], c[3]:c[3] + c[1]], 6, 6) for c in crops}
  rrc = jitted(T.random_resized_crop, out_size=6, scale=(0.3, 0.8), ratio=(0.5, 2.0))

  def allowed(h, w):
    # w = round(sqrt(area * r)), h = round(sqrt(area / r)) for some allowed area and r.
    area = ((w - 0.5) * (h - 0.5), (w + 0.5) * (h + 0.5))
    r = ((w - 0.5) / (h + 0.5), (w + 0.5) / (h - 0.5))
    return area[0] <= 0.8 * 64 and area[1] >= 0.3 * 64 and r[0] <= 2.0 and r[1] >= 0.5

  found = set()
  for seed in range(8):
    out = np.asarray(rrc(x, jax.random.key(seed)))
    matches = [c for c, r in resized.items() if np.allclose(out, r, atol=1e-5)]
    assert any(allowed(h, w) for h, w, _, _ in matches), seed
    found.add(matches[0])
  assert len(found) >= 6


def test_random_resized_crop_fallback_when_nothing_fits():
  # A 4x12 image with ratio fixed to 1 and the whole area asked for: no square of area 48
  # fits, so every try fails and torchvision's fallback takes the centred 4x4 crop.
  x = rand_image((4, 12, 1), 16)
  out = jitted(T.random_resized_crop, out_size=4, scale=(1.0, 1.0), ratio=(1.0, 1.0))(x, KEY)
  np.testing.assert_array_equal(np.asarray(out), x[:, 4:8])


# ---------------------------------------------------------------------------------------------
# Pixel transforms.


def test_binarize():
  x = rand_image((6, 6, 1), 17)
  np.testing.assert_array_equal(T.binarize(x, threshold=0.3), (x > 0.3).astype(np.float32))
  b = np.asarray(T.binarize(x))
  np.testing.assert_array_equal(T.binarize(b), b)  # idempotent on binary images
  assert T.binarize(jnp.asarray(x, jnp.bfloat16)).dtype == jnp.bfloat16


@settings(max_examples=15)
@given(hnp.arrays(np.float32, (6, 5, 1), elements=st.floats(0.0, 1.0, width=32)),
       st.integers(0, 2**31 - 1))
def test_noise_and_jitter_stay_in_unit_interval(x, seed):
  key = jax.random.key(seed)
  for out in (_noise(x, key), _jitter_gray(x, key)):
    out = np.asarray(out)
    assert out.min() >= 0.0 and out.max() <= 1.0


_noise = jax.jit(functools.partial(T.gaussian_noise, std=0.5))
_jitter_gray = jax.jit(functools.partial(T.color_jitter, brightness=0.8, contrast=0.8))


def test_gaussian_noise_statistics():
  x = jnp.full((64, 64, 1), 0.5)
  out = np.asarray(jitted(T.gaussian_noise, std=0.05)(x, KEY)) - 0.5
  assert abs(out.mean()) < 0.005 and abs(out.std() - 0.05) < 0.005


def test_horizontal_flip():
  x = rand_image((3, 4, 2), 18)
  np.testing.assert_array_equal(jitted(T.random_horizontal_flip, p=1.0)(x, KEY), x[:, ::-1])
  outs = np.asarray(jax.jit(jax.vmap(lambda k: T.random_horizontal_flip(x, k, p=0.3)))(
      jax.random.split(KEY, 400)))
  flipped = np.all(outs == x[:, ::-1][None], axis=(1, 2, 3))
  kept = np.all(outs == x[None], axis=(1, 2, 3))
  assert np.all(flipped ^ kept) and 0.22 < flipped.mean() < 0.38


def test_brightness_multiplies_and_contrast_blends_with_the_mean():
  # Values in [0.25, 0.5]: neither a factor in [0.5, 1.5] nor the blend clips.
  x = 0.25 + rand_image((6, 6, 1), 19) * 0.25
  bright = jitted(T.color_jitter, brightness=0.5)
  contrast = jitted(T.color_jitter, contrast=0.5)
  factors = set()
  for seed in range(4):
    key = jax.random.key(seed)
    out = np.asarray(bright(x, key))
    factor = out / x
    np.testing.assert_allclose(factor, factor.flat[0], rtol=1e-5)
    assert 0.5 <= factor.flat[0] <= 1.5
    out = np.asarray(contrast(x, key))
    np.testing.assert_allclose(out.mean(), x.mean(), atol=1e-6)  # the mean is kept
    centred_x, centred_out = x - x.mean(), out - out.mean()
    f = float((centred_x * centred_out).sum() / (centred_x ** 2).sum())
    np.testing.assert_allclose(centred_out, f * centred_x, atol=1e-6)
    assert 0.5 - 1e-5 <= f <= 1.5 + 1e-5
    factors.add(round(f, 4))
  assert len(factors) == 4


def test_saturation_and_hue_leave_gray_pixels_alone():
  g = rand_image((5, 5, 1), 20)
  x = np.repeat(g, 3, axis=-1)
  out = jitted(T.color_jitter, saturation=0.9, hue=0.5)(x, KEY)
  np.testing.assert_allclose(np.asarray(out), x, atol=1e-5)
  rgb = rand_image((5, 5, 3), 21)
  sat = np.asarray(T.color_jitter(rgb, KEY, saturation=0.9))
  luma = rgb @ np.array([0.299, 0.587, 0.114])
  # Saturation keeps the luma of unclipped pixels and moves each channel along x - gray.
  assert not np.allclose(sat, rgb)
  inside = np.all((sat > 0) & (sat < 1), axis=-1)
  np.testing.assert_allclose((sat @ np.array([0.299, 0.587, 0.114]))[inside], luma[inside],
                             atol=1e-5)


# ---------------------------------------------------------------------------------------------
# IIC twin views.


def digits(b=3, seed=22):
  return np.random.default_rng(seed).integers(0, 256, (b, 28, 28, 1), dtype=np.uint8)


def test_iic_views_shapes_and_first_view():
  x = digits()
  views = jax.jit(T.iic_views)
  v1, v2 = views(x, KEY)
  assert v1.shape == v2.shape == (3, 24, 24, 1) and v1.dtype == v2.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(v1), x[:, 2:26, 2:26] / 255.0, rtol=1e-6)
  assert not np.allclose(v1, v2)
  assert 0.0 <= float(v2.min()) and float(v2.max()) <= 1.0
  _, v2b = views(x, jax.random.key(1))
  assert not np.allclose(v2, v2b)
  np.testing.assert_array_equal(views(x, KEY)[1], v2)  # deterministic per key
  # The distorted view is the centre crop of random_affine on each image with its own key.
  keys = jax.random.split(KEY, 3)
  affine = jitted(T.random_affine, max_rotation=25.0, rotation_prob=0.5,
                  scale_range=(0.8, 1.2), max_shift=3.0)
  for i in range(3):
    expected = affine(jnp.asarray(x[i], jnp.float32) / 255.0, keys[i])[2:26, 2:26]
    np.testing.assert_allclose(np.asarray(v2[i]), np.asarray(expected), atol=1e-6)


def test_iic_views_zero_strength_and_repeats():
  x = digits()
  v1, v2 = jitted(T.iic_views, max_rotation=0.0, scale_range=(1.0, 1.0), max_shift=0.0)(x, KEY)
  np.testing.assert_allclose(np.asarray(v1), np.asarray(v2), atol=1e-6)
  v1, v2 = jitted(T.iic_views, repeats=3, out_size=20)(x, KEY)
  assert v1.shape == v2.shape == (9, 20, 20, 1)
  np.testing.assert_allclose(np.asarray(v1), np.repeat(x[:, 4:24, 4:24] / 255.0, 3, 0),
                             rtol=1e-6)
  assert not np.allclose(v2[0], v2[1])  # each repeat gets its own distortion
  floats = x.astype(np.float32) / 255.0  # float input is used as is
  np.testing.assert_array_equal(np.asarray(T._as_batch(floats)), floats)


def test_rotate_or_crop_views():
  x = digits(4)
  v1, v2 = jitted(T.rotate_or_crop_views)(x, KEY)
  assert v1.shape == v2.shape == (4, 24, 24, 1)
  np.testing.assert_allclose(np.asarray(v1), x[:, 2:26, 2:26] / 255.0, rtol=1e-6)
  assert 0.0 <= float(v2.min()) and float(v2.max()) <= 1.0
  assert not np.allclose(v1, v2)
  _, full = jitted(T.rotate_or_crop_views, rotation_prob=0.0, crop_sizes=(28,))(x, KEY)
  expected = np.stack([np_resize(im / 255.0, 24, 24) for im in x])
  np.testing.assert_allclose(np.asarray(full), expected, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Argument validation.


@pytest.mark.parametrize("call,error,match", [
    (lambda x: T.random_rotation(x[0], KEY, degrees=10.0), ValueError, "image"),
    (lambda x: T.random_rotation(x.astype(np.uint8), KEY, degrees=10.0), TypeError, "image"),
    (lambda x: T.random_rotation(x, KEY, degrees=(10.0, 5.0)), ValueError, "degrees"),
    (lambda x: T.random_rotation(x, KEY, degrees=-3.0), ValueError, "degrees"),
    (lambda x: T.random_crop_resize(x, KEY, crop_sizes=(9,), out_size=4), ValueError,
     "crop_sizes"),
    (lambda x: T.random_crop_resize(x, KEY, crop_sizes=(), out_size=4), ValueError,
     "crop_sizes"),
    (lambda x: T.random_crop_resize(x, KEY, crop_sizes=4, out_size=0), ValueError, "out_size"),
    (lambda x: T.random_resized_crop(x, KEY, out_size=4, scale=(0.0, 1.0)), ValueError,
     "scale"),
    (lambda x: T.random_affine(x, KEY, scale_range=(1.2, 0.8)), ValueError, "scale_range"),
    (lambda x: T.random_affine(x, KEY, max_shear=90.0), ValueError, "max_shear"),
    (lambda x: T.random_affine(x, KEY, rotation_prob=1.5), ValueError, "rotation_prob"),
    (lambda x: T.random_horizontal_flip(x, KEY, p=-0.1), ValueError, "p"),
    (lambda x: T.gaussian_noise(x, KEY, std=-1.0), ValueError, "std"),
    (lambda x: T.color_jitter(x[..., :1], KEY, saturation=0.2), ValueError, "saturation"),
    (lambda x: T.color_jitter(x, KEY, hue=0.7), ValueError, "hue"),
    (lambda x: T.color_jitter(x[..., :2], KEY), ValueError, "channels"),
    (lambda x: T.binarize(x, threshold=2.0), ValueError, "threshold"),
    (lambda x: T.iic_views(x, KEY), ValueError, "images"),
    (lambda x: T.iic_views(x[None], KEY, repeats=0), ValueError, "repeats"),
])
def test_validation(call, error, match):
  with pytest.raises(error, match=match):
    call(rand_image((8, 8, 3), 23))


# ---------------------------------------------------------------------------------------------
# random_zoom_with_boxes (detection augmentation).


def _block_image(box, size=(40, 60)):
  """A dark image with a bright rectangle exactly covering integer ``box`` (xyxy)."""
  im = np.zeros(size + (3,), np.float32)
  x1, y1, x2, y2 = box
  im[y1:y2, x1:x2] = 1.0
  return im


@pytest.mark.parametrize("seed", range(6))
def test_zoom_moves_the_boxes_with_the_content(seed):
  box = (20, 10, 36, 30)
  im = _block_image(box)
  out, boxes = T.random_zoom_with_boxes(im, np.array([box, [0, 0, 0, 0]], np.float32),
                                        jax.random.key(seed), scale_range=(0.5, 2.0), p=1.0,
                                        min_visible=0.0)
  out, boxes = np.asarray(out), np.asarray(boxes)
  assert boxes[1].tolist() == [0, 0, 0, 0]  # padding stays padding
  x1, y1, x2, y2 = boxes[0]
  assert x2 > x1 and y2 > y1
  # Inside the moved box (1 px margin for the bilinear edge) the content is the bright block;
  # outside it (1 px margin) nothing bright.
  ys, xs = np.mgrid[0:40, 0:60] + 0.5
  inner = (xs > x1 + 1) & (xs < x2 - 1) & (ys > y1 + 1) & (ys < y2 - 1)
  outer = (xs < x1 - 1) | (xs > x2 + 1) | (ys < y1 - 1) | (ys > y2 + 1)
  if inner.any():
    assert out[inner].min() > 0.99
  fill = im.mean(axis=(0, 1))
  assert np.all(out[outer] <= fill + 1e-5)


def test_zoom_identity_and_probability_zero():
  im = np.random.default_rng(0).uniform(size=(12, 16, 3)).astype(np.float32)
  b = np.array([[1, 2, 5, 9]], np.float32)
  for kw in ({"scale_range": (1.0, 1.0)}, {"scale_range": (0.5, 2.0), "p": 0.0}):
    out, nb = T.random_zoom_with_boxes(im, b, jax.random.key(3), **kw)
    np.testing.assert_array_equal(out, im)
    np.testing.assert_array_equal(nb, b)


def test_zoom_drops_boxes_that_leave_the_frame():
  im = np.zeros((40, 40, 3), np.float32)
  boxes = np.array([[0, 0, 10, 10], [15, 15, 25, 25]], np.float32)
  kept = np.zeros(2)
  for seed in range(20):
    _, nb = T.random_zoom_with_boxes(im, boxes, jax.random.key(seed), scale_range=(3.0, 3.0),
                                     p=1.0, min_visible=0.5)
    nb = np.asarray(nb)
    area = (nb[:, 2] - nb[:, 0]) * (nb[:, 3] - nb[:, 1])
    # Scaled x3 a box is 30 x 30 = 900 px^2: kept ones keep at least half, dropped are zero.
    assert np.all((area >= 450 - 1e-3) | (np.abs(nb).sum(1) == 0))
    assert np.all((nb >= 0) & (nb <= 40))
    kept += area > 0
  assert 1 <= kept[1] < 20  # the central box is kept sometimes, dropped sometimes


def test_zoom_vmaps_and_rejects_bad_arguments():
  ims = jnp.zeros((3, 8, 8, 3))
  bx = jnp.tile(jnp.array([[1.0, 1, 4, 4]]), (3, 1, 1))
  keys = jax.random.split(jax.random.key(0), 3)
  out, nb = jax.jit(jax.vmap(functools.partial(T.random_zoom_with_boxes,
                                               scale_range=(0.5, 1.5))))(ims, bx, keys)
  assert out.shape == ims.shape and nb.shape == bx.shape
  with pytest.raises(ValueError, match="scale_range"):
    T.random_zoom_with_boxes(ims[0], bx[0], keys[0], scale_range=(0.0, 1.0))
  with pytest.raises(ValueError, match="boxes"):
    T.random_zoom_with_boxes(ims[0], bx[0, :, :3], keys[0])
  with pytest.raises(ValueError, match="min_visible"):
    T.random_zoom_with_boxes(ims[0], bx[0], keys[0], min_visible=2.0)
