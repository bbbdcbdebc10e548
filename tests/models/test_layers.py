"""The convolution kinds: output-size arithmetic, parameter counts, and the identities a
reader of the survey checks (separable = outer product, depthwise = grouped conv, the
transposed conv = the adjoint of a conv, space-to-depth = the strided conv)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from jaxvision.models import count_params, layers
from jaxvision.reference import conv as ref

# rbg: the default threefry key's random bits take seconds to compile on XLA:CPU for each new
# shape (jax_threefry_partitionable), and no test here depends on the values drawn.
KEY = jax.random.key(0, impl="rbg")


def _conv(x, k, stride=1, padding=0, dilation=1, groups=1):
  return jax.lax.conv_general_dilated(x, k, (stride, stride), [(padding, padding)] * 2,
                                      rhs_dilation=(dilation, dilation),
                                      feature_group_count=groups,
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


# --- arithmetic ------------------------------------------------------------------------------

def test_dumoulin_visin_hand_cases():
  # Relationship 1 (no padding, unit stride), 6 (half padding), 9 (stride 2), 15 (dilation).
  assert layers.conv_output_size(4, 3) == 2
  assert layers.conv_output_size(5, 3, padding=1) == 5
  assert layers.conv_output_size(5, 3, stride=2) == 2
  assert layers.conv_output_size(5, 3, stride=2, padding=1) == 3
  assert layers.conv_output_size(6, 3, stride=2, padding=1) == 3   # the floor in rel. 6
  assert layers.conv_output_size(7, 3, dilation=2) == 3
  # Transposed (PyTorch's convention): the inverse sizes, output_padding resolves the floor.
  assert layers.conv_transpose_output_size(2, 3) == 4
  assert layers.conv_transpose_output_size(3, 3, stride=2, padding=1) == 5
  assert layers.conv_transpose_output_size(3, 3, stride=2, padding=1, output_padding=1) == 6
  assert layers.receptive_field([3] * 3) == 7
  assert layers.receptive_field([2] * 4, dilations=[1, 2, 4, 8]) == 16  # WaveNet's block
  assert layers.receptive_field([3, 3], strides=[2, 1]) == 7


@settings(max_examples=12, deadline=None)
@given(size=st.integers(5, 14), k=st.integers(1, 5), s=st.integers(1, 3),
       p=st.integers(0, 2), d=st.integers(1, 3))
def test_conv_output_size_is_what_lax_returns(size, k, s, p, d):
  if d * (k - 1) + 1 > size + 2 * p:
    with pytest.raises(ValueError, match="does not fit"):
      layers.conv_output_size(size, k, stride=s, padding=p, dilation=d)
    return
  y = _conv(jnp.ones((1, size, size, 1)), jnp.ones((k, k, 1, 1)), s, p, d)
  assert y.shape[1] == layers.conv_output_size(size, k, stride=s, padding=p, dilation=d)


@settings(max_examples=10, deadline=None)
@given(size=st.integers(2, 7), k=st.integers(1, 4), s=st.integers(1, 3), p=st.integers(0, 2),
       op=st.integers(0, 2))
def test_torch_conv_transpose_size_and_adjointness(size, k, s, p, op):
  """PyTorch's ConvTranspose2d is the adjoint of Conv2d with the same weight:
  <convT(x), u> == <x, conv(u)> for the conv whose output size is the input size."""
  if op >= s or p > k - 1 or (size - 1) * s - 2 * p + k + op < 1:
    return
  out = layers.conv_transpose_output_size(size, k, stride=s, padding=p, output_padding=op)
  rng = np.random.default_rng(size * 100 + k * 10 + s)
  w_torch = rng.normal(size=(3, 2, k, k)).astype(np.float32)   # [C_in, C_out, k, k]
  kernel = layers.torch_conv_transpose_kernel(w_torch)
  mod = layers.TorchConvTranspose(2, k, stride=s, padding=p, output_padding=op,
                                  use_bias=False)
  x = jnp.asarray(rng.normal(size=(1, size, size, 3)), jnp.float32)
  y = mod.apply({"params": {"conv_transpose": {"kernel": kernel}}}, x)
  assert y.shape == (1, out, out, 2)
  u = jnp.asarray(rng.normal(size=(1, out, out, 2)), jnp.float32)
  # The forward conv: C_out -> C_in, the same weight as HWIO [k, k, C_out, C_in].
  back = _conv(u, kernel, s, p)
  assert back.shape[1] == size
  np.testing.assert_allclose(float(jnp.vdot(y, u)), float(jnp.vdot(x, back)), rtol=2e-4,
                             atol=1e-3)


def test_flax_conv_transpose_differs_from_torch_without_the_mapping():
  """flax #3137: nn.ConvTranspose(padding='SAME') gives i*s, not PyTorch's (i-1)s-2p+k."""
  x = jnp.ones((1, 5, 5, 1))
  y = nn.ConvTranspose(1, (3, 3), strides=(2, 2), padding="SAME").init_with_output(KEY, x)[0]
  assert y.shape[1] == 10
  assert layers.conv_transpose_output_size(5, 3, stride=2, padding=1) == 9
  y = layers.TorchConvTranspose(1, 3, stride=2, padding=1).init_with_output(KEY, x)[0]
  assert y.shape[1] == 9


def test_errors_name_the_argument():
  with pytest.raises(ValueError, match="stride"):
    layers.conv_output_size(5, 3, stride=0)
  with pytest.raises(ValueError, match="output_padding"):
    layers.conv_transpose_output_size(5, 3, stride=2, output_padding=2)
  with pytest.raises(ValueError, match="groups"):
    layers.conv_params(6, 4, 3, groups=4)
  with pytest.raises(ValueError, match="multiples"):
    layers.space_to_depth(jnp.ones((1, 5, 4, 1)), 2)


# --- parameter counts ------------------------------------------------------------------------

@pytest.mark.parametrize("cin,cout,k", [(32, 64, 3), (16, 16, 5), (3, 8, 1)])
def test_parameter_counts(cin, cout, k):
  x = jnp.ones((1, 8, 8, cin))

  def shapes(mod):
    return jax.eval_shape(mod.init, KEY, x)["params"]

  full = shapes(nn.Conv(cout, (k, k), use_bias=False))
  assert count_params(full) == cin * cout * k * k == layers.conv_params(cin, cout, k, bias=False)
  dw = shapes(layers.DepthwiseConv((k, k), use_bias=False))
  assert count_params(dw) == cin * k * k
  sep = shapes(layers.DepthwiseSeparableConv(cout, (k, k), norm=False))
  assert count_params(sep) == layers.depthwise_separable_params(cin, cout, k) == (
      cin * k * k + cin + cin * cout + cout)
  ss = shapes(layers.SpatiallySeparableConv(cout, k, use_bias=False))
  assert count_params(ss) == k * cin * cout + k * cout * cout


# --- identities ------------------------------------------------------------------------------

def test_spatially_separable_equals_the_outer_product_conv():
  rng = np.random.default_rng(1)
  a, b = rng.normal(size=5), rng.normal(size=5)
  x = jnp.asarray(rng.normal(size=(2, 11, 9, 1)), jnp.float32)
  params = {"vertical": {"kernel": jnp.asarray(a.reshape(5, 1, 1, 1), jnp.float32)},
            "horizontal": {"kernel": jnp.asarray(b.reshape(1, 5, 1, 1), jnp.float32)}}
  y = layers.SpatiallySeparableConv(1, 5, mid_features=1, use_bias=False).apply(
      {"params": params}, x)
  full = ref.conv2d(np.asarray(x), np.outer(a, b).reshape(5, 5, 1, 1), padding=2)
  np.testing.assert_allclose(np.asarray(y), full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("implementation", ["conv", "shifts"])
@pytest.mark.parametrize("multiplier,stride,dilation", [(1, 1, 1), (2, 2, 1), (1, 1, 2)])
def test_depthwise_is_a_grouped_conv_with_groups_equal_channels(multiplier, stride, dilation,
                                                                implementation):
  rng = np.random.default_rng(2)
  c = 4
  x = jnp.asarray(rng.normal(size=(2, 9, 9, c)), jnp.float32)
  mod = layers.DepthwiseConv((3, 3), multiplier, stride, padding=((1, 1), (1, 1)),
                             kernel_dilation=dilation, use_bias=False,
                             implementation=implementation)
  params = mod.init(KEY, x)["params"]
  kernel = np.asarray(params["depthwise"]["kernel"])
  assert kernel.shape == (3, 3, 1, c * multiplier)
  y = mod.apply({"params": params}, x)
  oracle = ref.conv2d(np.asarray(x), kernel, stride=stride, padding=1, dilation=dilation,
                      groups=c)
  np.testing.assert_allclose(np.asarray(y), oracle, rtol=1e-4, atol=1e-5)
  # Output channel m of input channel ci is channel ci * multiplier + m, computed only from ci.
  x2 = x.at[..., 0].set(0.0)
  y2 = mod.apply({"params": params}, x2)
  np.testing.assert_array_equal(np.asarray(y2[..., multiplier:]), np.asarray(y[..., multiplier:]))


@settings(max_examples=8, deadline=None)
@given(size=st.integers(9, 16), k=st.integers(1, 6), s=st.integers(2, 3),
       padding=st.sampled_from(["VALID", "SAME"]))
def test_space_to_depth_conv_is_the_strided_conv(size, k, s, padding):
  rng = np.random.default_rng(size * 7 + k)
  x = jnp.asarray(rng.normal(size=(2, size, size + 1, 3)), jnp.float32)
  kernel = jnp.asarray(rng.normal(size=(k, k, 3, 4)), jnp.float32)
  strided = lambda a: jax.lax.conv_general_dilated(
      a, kernel, (s, s), padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))
  s2d = lambda a: layers.space_to_depth_conv(a, kernel, s, padding)
  sq = lambda f: jax.grad(lambda a: jnp.sum(f(a) ** 2))

  @jax.jit  # one compilation per example (op-by-op, every primitive compiles on its own)
  def both(x):
    return strided(x), s2d(x), sq(strided)(x), sq(s2d)(x)

  want, got, g_want, g_got = both(x)
  assert got.shape == want.shape
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(np.asarray(g_got), np.asarray(g_want), rtol=1e-3, atol=1e-3)


def test_strided_conv_has_nn_conv_parameters():
  x = jnp.ones((1, 20, 20, 3))
  mine = layers.StridedConv(8, (9, 9), strides=2).init(KEY, x)["params"]
  theirs = nn.Conv(8, (9, 9), strides=2, padding="VALID").init(KEY, x)["params"]
  assert jax.tree.map(np.shape, mine) == jax.tree.map(np.shape, theirs)
  np.testing.assert_allclose(
      np.asarray(layers.StridedConv(8, (9, 9), strides=2).apply({"params": theirs}, x)),
      np.asarray(nn.Conv(8, (9, 9), strides=2, padding="VALID").apply({"params": theirs}, x)),
      rtol=1e-4, atol=1e-4)


def test_dilated_conv_field_and_values():
  """nn.Conv(kernel_dilation=d) is the dilated conv: a 3-tap kernel at d=2 spans 5 pixels."""
  rng = np.random.default_rng(3)
  x = jnp.asarray(rng.normal(size=(1, 12, 12, 2)), jnp.float32)
  mod = nn.Conv(3, (3, 3), kernel_dilation=2, padding="VALID", use_bias=False)
  params = mod.init(KEY, x)["params"]
  y = mod.apply({"params": params}, x)
  assert y.shape[1] == layers.conv_output_size(12, 3, dilation=2) == 8
  np.testing.assert_allclose(np.asarray(y), ref.conv2d(np.asarray(x),
                                                       np.asarray(params["kernel"]),
                                                       dilation=2), rtol=1e-4, atol=1e-5)


def test_depthwise_separable_block_trains_in_both_modes():
  x = jax.random.normal(KEY, (4, 8, 8, 6))
  mod = layers.DepthwiseSeparableConv(10, strides=2)
  v = jax.jit(mod.init)(KEY, x)  # eager flax calls are slow
  y, upd = jax.jit(lambda v, x: mod.apply(v, x, train=True, mutable=["batch_stats"]))(v, x)
  assert y.shape == (4, 4, 4, 10) and bool(jnp.all(y >= 0))
  assert not jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), upd["batch_stats"],
                                       v["batch_stats"]))


@settings(max_examples=4, deadline=None)
@given(size=st.integers(4, 11), k=st.integers(1, 4), s=st.integers(1, 2), d=st.integers(1, 2),
       padding=st.sampled_from(["SAME", "VALID"]), m=st.integers(1, 2))
def test_depthwise_implementations_agree_with_gradients(size, k, s, d, padding, m):
  if padding == "VALID" and d * (k - 1) + 1 > size:
    return
  rng = np.random.default_rng(size + 10 * k)
  x = jnp.asarray(rng.normal(size=(2, size, size, 3)), jnp.float32)
  kernel = jnp.asarray(rng.normal(size=(k, k, 1, 3 * m)), jnp.float32)
  grouped = lambda a, b: jax.lax.conv_general_dilated(
      a, b, (s, s), padding, rhs_dilation=(d, d), feature_group_count=3,
      dimension_numbers=("NHWC", "HWIO", "NHWC"))
  shifts = lambda a, b: layers.depthwise_conv_shifts(a, b, s, padding, d)
  sq = lambda f: jax.grad(lambda a, b: jnp.sum(f(a, b) ** 2), argnums=(0, 1))

  @jax.jit  # one compilation per example (op-by-op, every primitive compiles on its own)
  def both(x, kernel):
    return grouped(x, kernel), shifts(x, kernel), sq(grouped)(x, kernel), sq(shifts)(x, kernel)

  want, got, gw, gg = both(x, kernel)
  assert got.shape == want.shape
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-4)
  for a, b in zip(gg, gw):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-3, atol=1e-3)


def test_pointwise_matmul_equals_the_1x1_conv_with_nn_conv_parameters():
  x = jax.random.normal(KEY, (2, 5, 7, 6))
  theirs = nn.Conv(4, (1, 1)).init(KEY, x)["params"]
  want = nn.Conv(4, (1, 1)).apply({"params": theirs}, x)
  for impl in ("matmul", "conv"):
    mod = layers.PointwiseConv(4, implementation=impl)
    assert jax.tree.map(np.shape, mod.init(KEY, x)["params"]) == jax.tree.map(np.shape, theirs)
    np.testing.assert_allclose(np.asarray(mod.apply({"params": theirs}, x)), np.asarray(want),
                               rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match="implementation"):
    layers.PointwiseConv(4, implementation="fft").init(KEY, x)
