"""Tests of max pooling with argmax and max unpooling (``jaxvision.ops.pooling``).

Oracle: ``jaxvision.reference.pooling`` (plain loops over every window), on random,
tied (small integers), constant and all -inf inputs, for odd and even sizes, windows 1-3,
strides 1-3 (overlapping windows, non-overlapping ones and gaps) and both paddings.
Gradients: ``d sum(pooled * w) / dx`` must be ``w`` scattered to the argmax positions (the
oracle's unpooling of ``w``), and ``max_unpool``'s gradient the gather at ``argmax``.
Hypothesis checks the unpool-after-pool properties on random geometries.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from jaxvision import ops
from jaxvision.ops import pooling
from jaxvision.ops.pooling import max_pool_with_argmax, max_unpool
from jaxvision.reference import pooling as ref

# (shape [..., H, W, C], window, strides, padding)
_CASES = [
    ((2, 5, 7, 3), 2, None, "VALID"),          # odd sizes: the last row and column dropped
    ((2, 5, 7, 3), 2, None, "SAME"),           # ... or padded at the bottom/right
    ((5, 7, 2), 3, 1, "SAME"),                 # no batch dimension; overlapping windows
    ((5, 7, 2), 3, 2, "VALID"),
    ((1, 6, 6, 2), 3, 2, "SAME"),              # padding only at the bottom/right
    ((1, 6, 6, 1), 2, None, "VALID"),          # even: SegNet's case
    ((2, 6, 6, 2), 2, 1, "VALID"),
    ((1, 1, 1, 2), 2, None, "SAME"),           # 1x1 image: the window is mostly padding
    ((1, 1, 1, 2), 3, 1, "SAME"),              # padding on every side
    ((3, 2, 5, 7, 2), (2, 3), (1, 2), "SAME"),  # two batch dimensions, rectangular window
    ((4, 7, 5, 1), 3, None, "SAME"),
    ((2, 5, 7, 3), 2, 3, "VALID"),             # strides > window: gaps between windows
    ((1, 5, 7, 2), 1, 2, "SAME"),              # 1x1 window with stride: subsampling
]
_KINDS = ("normal", "ties", "constant", "neg_inf")


def _ids(case):
  shape, window, strides, padding = case
  return f"{'x'.join(map(str, shape))}-k{window}-s{strides}-{padding}"


def _make(rng, shape, kind, dtype=np.float32):
  if kind == "normal":
    return rng.normal(size=shape).astype(dtype)
  if kind == "ties":  # many equal maxima in each window
    return rng.integers(0, 3, shape).astype(dtype)
  if kind == "constant":
    return np.full(shape, 1.5, dtype)
  return np.full(shape, -np.inf, dtype)  # as low as the padding: padding must still lose


def _kwargs(window, strides, padding):
  return dict(window=window, strides=strides, padding=padding)


# ---------------------------------------------------------------------------------------------
# Values against the oracle.


@pytest.mark.parametrize("case", _CASES, ids=_ids)
def test_pool_and_unpool_match_oracle(case):
  shape, window, strides, padding = case
  rng = np.random.default_rng(0)
  kw = _kwargs(window, strides, padding)
  for kind in _KINDS:
    x = _make(rng, shape, kind)
    pooled, argmax = max_pool_with_argmax(x, **kw)
    want_pooled, want_argmax = ref.max_pool_with_argmax(x, **kw)
    assert pooled.dtype == jnp.float32 and argmax.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(pooled), want_pooled, err_msg=kind)
    np.testing.assert_array_equal(np.asarray(argmax), want_argmax, err_msg=kind)
    # Unpooling (of something other than the maxima, so that values are traceable).
    v = rng.normal(size=pooled.shape).astype(np.float32)
    got = max_unpool(v, argmax, output_shape=shape[-3:-1])
    want = ref.max_unpool(v, want_argmax, output_shape=shape[-3:-1])
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6, atol=1e-6, err_msg=kind)


def test_output_sizes():
  x = jnp.zeros((2, 5, 7, 3))
  assert max_pool_with_argmax(x)[0].shape == (2, 2, 3, 3)                  # floor(5/2), 7/2
  assert max_pool_with_argmax(x, padding="SAME")[0].shape == (2, 3, 4, 3)  # ceil
  assert max_pool_with_argmax(x, window=3, strides=1)[0].shape == (2, 3, 5, 3)
  assert max_pool_with_argmax(x, window=3, strides=1, padding="SAME")[0].shape == x.shape


def test_ties_go_to_the_lowest_index():
  # Constant 4x4 image, 2x2/2 windows: every window's top-left pixel, y * 4 + x.
  _, argmax = max_pool_with_argmax(jnp.ones((4, 4, 1)))
  np.testing.assert_array_equal(argmax[..., 0], [[0, 2], [8, 10]])
  # Overlapping windows on a constant 3x3 image with SAME padding (one row/column of padding
  # on every side): the first *real* pixel of each window, never a padded one.
  _, argmax = max_pool_with_argmax(jnp.zeros((3, 3, 1)), window=3, strides=1, padding="SAME")
  np.testing.assert_array_equal(argmax[..., 0], [[0, 0, 1], [0, 0, 1], [3, 3, 4]])
  # A tie between the last two pixels of a window.
  x = jnp.array([[0., 1.], [2., 2.]])[..., None]
  pooled, argmax = max_pool_with_argmax(x)
  assert pooled.item() == 2.0 and argmax.item() == 2


def test_nan_wins_and_propagates():
  x = jnp.array([[1., jnp.nan], [jnp.nan, 5.]])[..., None]
  pooled, argmax = max_pool_with_argmax(x)
  assert np.isnan(pooled.item()) and argmax.item() == 1
  want_pooled, want_argmax = ref.max_pool_with_argmax(np.asarray(x))
  assert np.isnan(want_pooled.item()) and want_argmax.item() == 1


def test_channels_are_independent():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(2, 6, 5, 4)).astype(np.float32)
  pooled, argmax = max_pool_with_argmax(x, window=3, strides=2, padding="SAME")
  for c in range(4):
    p_c, a_c = max_pool_with_argmax(x[..., c:c + 1], window=3, strides=2, padding="SAME")
    np.testing.assert_array_equal(pooled[..., c:c + 1], p_c)
    np.testing.assert_array_equal(argmax[..., c:c + 1], a_c)


@pytest.mark.parametrize("dtype", [np.int32, np.uint8, jnp.bfloat16])
def test_other_dtypes(dtype):
  rng = np.random.default_rng(2)
  x = rng.integers(0, 5, (2, 5, 7, 3)).astype(dtype)
  pooled, argmax = max_pool_with_argmax(x, window=3, strides=2, padding="SAME")
  want_pooled, want_argmax = ref.max_pool_with_argmax(x.astype(np.float64), window=3,
                                                      strides=2, padding="SAME")
  assert pooled.dtype == jnp.dtype(dtype)
  np.testing.assert_array_equal(np.asarray(pooled, np.float64), want_pooled)
  np.testing.assert_array_equal(argmax, want_argmax)
  unpooled = max_unpool(pooled, argmax, output_shape=(5, 7))
  assert unpooled.dtype == jnp.dtype(dtype)
  np.testing.assert_array_equal(np.asarray(unpooled, np.float64),
                                ref.max_unpool(want_pooled, want_argmax, output_shape=(5, 7)))


def test_int_min_is_not_confused_with_padding():
  x = np.full((1, 3, 3, 1), np.iinfo(np.int32).min, np.int32)
  _, argmax = max_pool_with_argmax(x, window=3, strides=1, padding="SAME")
  np.testing.assert_array_equal(argmax[0, ..., 0], [[0, 0, 1], [0, 0, 1], [3, 3, 4]])


# ---------------------------------------------------------------------------------------------
# Unpooling semantics.


def test_unpool_adds_values_that_land_on_the_same_position():
  # Every 2x2/1 window of this image has its maximum at the centre.
  x = jnp.array([[1., 2., 0.], [3., 9., 4.], [0., 5., 6.]])[None, ..., None]
  pooled, argmax = max_pool_with_argmax(x, window=2, strides=1)
  np.testing.assert_array_equal(argmax, np.full((1, 2, 2, 1), 4))
  out = max_unpool(jnp.array([1., 2., 3., 4.]).reshape(1, 2, 2, 1), argmax, output_shape=(3, 3))
  np.testing.assert_array_equal(out[0, ..., 0], [[0, 0, 0], [0, 10, 0], [0, 0, 0]])
  np.testing.assert_array_equal(max_unpool(pooled, argmax, output_shape=(3, 3))[0, 1, 1, 0], 36)


def test_unpool_drops_out_of_range_indices_when_traced():
  values = jnp.array([1., 2., 3., 4.]).reshape(2, 1, 2, 1)
  argmax = jnp.array([-1, 3, 4, 0]).reshape(2, 1, 2, 1)  # 2x2 planes: -1 and 4 are outside
  unpool = lambda v, a: max_unpool(v, a, output_shape=(2, 2))  # noqa: E731
  for fn in (jax.jit(unpool), jax.vmap(unpool)):
    out = fn(values, argmax)
    np.testing.assert_array_equal(out[..., 0], [[[0, 0], [0, 2]], [[4, 0], [0, 0]]])
  # The dropped values get no gradient; the others get the gather. (`argmax` is an argument:
  # closed over, it would be a concrete constant, checked and refused.)
  weights = jnp.arange(1., 5.).reshape(1, 2, 2, 1)
  g = jax.jit(jax.grad(lambda v, a: jnp.sum(unpool(v, a) * weights)))(values, argmax)
  np.testing.assert_array_equal(g[..., 0], [[[0, 4]], [[0, 1]]])


@pytest.mark.parametrize("argmax, output_shape, found", [
    ([-1, 3, 2, 0], (2, 2), "found index -1 .smallest -1, largest 3"),
    ([0, 3, 4, 0], (2, 2), "found index 4 .smallest 0, largest 4"),
    ([5, 7, 13, 15], (2, 2), "found index 15"),  # output_shape smaller than the pooled image
])
def test_unpool_rejects_out_of_range_concrete_indices(argmax, output_shape, found):
  values = jnp.array([1., 2., 3., 4.]).reshape(2, 1, 2, 1)
  argmax = np.array(argmax, np.int32).reshape(2, 1, 2, 1)
  for a in (argmax, jnp.asarray(argmax)):
    with pytest.raises(ValueError, match=r"`argmax` must hold indices in \[0, 4\) \(the 2x2 "
                       r"plane of `output_shape`\), " + found):
      max_unpool(values, a, output_shape=output_shape)


def test_unpool_to_a_smaller_shape_raises_not_zeros():
  # The case: pooling a 4x4 image and unpooling to 2x2 gave all zeros silently.
  pooled, argmax = max_pool_with_argmax(jnp.arange(16.).reshape(1, 4, 4, 1))
  with pytest.raises(ValueError, match="`argmax`.*2x2 plane of `output_shape`.*found index 15"):
    max_unpool(pooled, argmax, output_shape=(2, 2))
  assert max_unpool(pooled, argmax, output_shape=(4, 4)).sum() == pooled.sum()


def test_unpool_triple_index_path_matches_flat_path():
  # The path for outputs with 2**31 or more elements, forced on a small input.
  rng = np.random.default_rng(3)
  x = rng.normal(size=(2, 3, 4, 3)).astype(np.float32)
  argmax = rng.integers(-2, 14, (2, 3, 4, 3)).astype(np.int32)
  want = ref.max_unpool(x, argmax, output_shape=(3, 4))
  for flat in (True, False):
    got = pooling._unpool(jnp.asarray(x), jnp.asarray(argmax), height=3, width=4, flat=flat)
    np.testing.assert_allclose(got, want, rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# Gradients.


@pytest.mark.parametrize("case", [_CASES[1], _CASES[2], _CASES[8], _CASES[9]],
                         ids=_ids)
@pytest.mark.parametrize("kind", ["normal", "ties"])
def test_pool_gradient_goes_to_the_argmax(case, kind):
  shape, window, strides, padding = case
  kw = _kwargs(window, strides, padding)
  rng = np.random.default_rng(4)
  x = _make(rng, shape, kind)
  _, want_argmax = ref.max_pool_with_argmax(x, **kw)
  w = rng.normal(size=want_argmax.shape).astype(np.float32)
  grad = jax.grad(lambda x: jnp.sum(max_pool_with_argmax(x, **kw)[0] * w))(jnp.asarray(x))
  # Each output's weight lands on its (first) maximum only; overlapping windows add up.
  want = ref.max_unpool(w, want_argmax, output_shape=shape[-3:-1])
  np.testing.assert_allclose(grad, want, rtol=1e-6, atol=1e-6)


def test_unpool_gradient_is_a_gather():
  rng = np.random.default_rng(5)
  x = rng.normal(size=(2, 5, 7, 3)).astype(np.float32)
  _, argmax = max_pool_with_argmax(x, window=3, strides=2, padding="SAME")
  v = rng.normal(size=argmax.shape).astype(np.float32)
  g = rng.normal(size=x.shape).astype(np.float32)
  grad = jax.grad(lambda v: jnp.sum(max_unpool(v, argmax, output_shape=(5, 7)) * g))(v)
  a = np.asarray(argmax)
  want = np.zeros_like(v)
  for idx in np.ndindex(a.shape):  # g[b, argmax // W, argmax % W, c]
    want[idx] = g[idx[0], a[idx] // 7, a[idx] % 7, idx[-1]]
  np.testing.assert_allclose(grad, want, rtol=1e-6)


def test_argmax_has_no_gradient():
  # An integer output: it contributes nothing, and asking for its gradient fails loudly.
  x = jnp.arange(16.).reshape(4, 4, 1)
  grad = jax.grad(lambda x: jnp.sum(max_pool_with_argmax(x)[1].astype(jnp.float32)))(x)
  np.testing.assert_array_equal(grad, np.zeros_like(x))


# ---------------------------------------------------------------------------------------------
# jit and vmap.


def test_jit_and_vmap():
  rng = np.random.default_rng(6)
  x = jnp.asarray(rng.normal(size=(3, 5, 7, 2)).astype(np.float32))
  kw = dict(window=3, strides=2, padding="SAME")
  pooled, argmax = max_pool_with_argmax(x, **kw)
  for fn in (jax.jit(lambda x: max_pool_with_argmax(x, **kw)),
             jax.vmap(lambda x: max_pool_with_argmax(x, **kw)),
             jax.jit(jax.vmap(lambda x: max_pool_with_argmax(x, **kw)))):
    p, a = fn(x)
    np.testing.assert_array_equal(p, pooled)
    np.testing.assert_array_equal(a, argmax)
  unpooled = max_unpool(pooled, argmax, output_shape=(5, 7))
  unpool = lambda p, a: max_unpool(p, a, output_shape=(5, 7))  # noqa: E731
  for fn in (jax.jit(unpool), jax.vmap(unpool), jax.vmap(jax.jit(unpool))):
    np.testing.assert_array_equal(fn(pooled, argmax), unpooled)
  # vmap over a batch dimension that is not the first one.
  xt = jnp.moveaxis(x, 0, 2)  # [5, 7, 3, 2]: batch in the middle
  p, a = jax.vmap(lambda x: max_pool_with_argmax(x, **kw), in_axes=2)(xt)
  np.testing.assert_array_equal(p, pooled)
  np.testing.assert_array_equal(a, argmax)


def test_exported_from_ops():
  assert ops.max_pool_with_argmax is max_pool_with_argmax
  assert ops.max_unpool is max_unpool
  assert {"max_pool_with_argmax", "max_unpool"} <= set(ops.__all__)


# ---------------------------------------------------------------------------------------------
# Bad arguments.


@pytest.mark.parametrize("kwargs, error, name", [
    (dict(window=0), ValueError, "window"),
    (dict(window=-1), ValueError, "window"),
    (dict(window=(2, 0)), ValueError, "window"),
    (dict(window=2.0), TypeError, "window"),
    (dict(window=(2, 2, 2)), TypeError, "window"),
    (dict(window=True), TypeError, "window"),
    (dict(strides=0), ValueError, "strides"),
    (dict(padding="same"), ValueError, "padding"),
    (dict(padding="FULL"), ValueError, "padding"),
    (dict(window=6), ValueError, "window"),  # does not fit the 5x7 image with VALID
])
def test_pool_rejects_bad_arguments(kwargs, error, name):
  with pytest.raises(error, match=f"`{name}`"):
    max_pool_with_argmax(jnp.zeros((2, 5, 7, 3)), **kwargs)


@pytest.mark.parametrize("x, error", [
    (jnp.zeros((5, 7)), ValueError),          # no channel axis
    (jnp.zeros((2, 0, 7, 3)), ValueError),    # empty image
    (jnp.zeros((2, 5, 7, 3), bool), TypeError),
])
def test_pool_rejects_bad_input(x, error):
  with pytest.raises(error, match="`x`"):
    max_pool_with_argmax(x)


@pytest.mark.parametrize("x_shape, argmax, output_shape, error, name", [
    ((2, 2, 3, 3), jnp.zeros((2, 2, 3, 2), jnp.int32), (4, 6), ValueError, "argmax"),
    ((2, 2, 3, 3), jnp.zeros((2, 2, 3, 3)), (4, 6), TypeError, "argmax"),
    ((2, 3), jnp.zeros((2, 3), jnp.int32), (4, 6), ValueError, "x"),
    ((2, 2, 3, 3), jnp.zeros((2, 2, 3, 3), jnp.int32), (0, 6), ValueError, "output_shape"),
    ((2, 2, 3, 3), jnp.zeros((2, 2, 3, 3), jnp.int32), (4,), ValueError, "output_shape"),
    ((2, 2, 3, 3), jnp.zeros((2, 2, 3, 3), jnp.int32), (4., 6), ValueError, "output_shape"),
    ((2, 2, 3, 3), jnp.zeros((2, 2, 3, 3), jnp.int32), 4, ValueError, "output_shape"),
])
def test_unpool_rejects_bad_arguments(x_shape, argmax, output_shape, error, name):
  with pytest.raises(error, match=f"`{name}`"):
    max_unpool(jnp.zeros(x_shape), argmax, output_shape=output_shape)


# ---------------------------------------------------------------------------------------------
# Properties.


@st.composite
def _geometries(draw):
  h, w = draw(st.integers(1, 8)), draw(st.integers(1, 8))
  window = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
  strides = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
  padding = draw(st.sampled_from(["VALID", "SAME"]))
  if window[0] > h or window[1] > w:
    padding = "SAME"
  return (draw(st.integers(1, 2)), h, w, draw(st.integers(1, 2))), window, strides, padding


@settings(max_examples=15, deadline=None)
@given(_geometries(), st.integers(0, 2**32 - 1), st.booleans())
def test_unpool_of_pool_properties(geometry, seed, ties):
  shape, window, strides, padding = geometry
  kw = _kwargs(window, strides, padding)
  rng = np.random.default_rng(seed)
  x = np.abs(_make(rng, shape, "ties" if ties else "normal")) + 0.5  # > 0; ties: 0.5, 1.5, 2.5
  pooled, argmax = max_pool_with_argmax(x, **kw)
  unpooled = np.asarray(max_unpool(pooled, argmax, output_shape=shape[1:3]))
  # How many windows picked each pixel (overlapping windows can pick one pixel twice).
  count = np.asarray(max_unpool(jnp.ones_like(pooled), argmax, output_shape=shape[1:3]))
  assert count.sum() == pooled.size  # every index lands inside the image
  # Every pixel holds its own value times the number of windows that chose it (0 elsewhere).
  np.testing.assert_allclose(unpooled, x * count, rtol=1e-6)
  # Each chosen pixel is the maximum of every window that chose it.
  np.testing.assert_array_equal(np.take_along_axis(
      x.reshape(shape[0], -1, shape[3]), np.asarray(argmax).reshape(shape[0], -1, shape[3]),
      axis=1).reshape(pooled.shape), pooled)
  if window[0] <= strides[0] and window[1] <= strides[1]:
    # Non-overlapping windows: each pixel is chosen at most once, so unpool(pool(x)) is x
    # where it is non-zero, and the maximum of each window of it is the pooled value (x > 0
    # here, so the zeros never win).
    assert count.max() <= 1
    nonzero = unpooled != 0
    np.testing.assert_array_equal(unpooled[nonzero], x[nonzero])
    repooled, reargmax = max_pool_with_argmax(unpooled, **kw)
    np.testing.assert_array_equal(repooled, pooled)
    np.testing.assert_array_equal(reargmax, argmax)
