"""Tests of the IIC networks (``jaxvision.models.iic``).

The tiny variant runs for real and is checked against a float64 NumPy forward pass (conv,
BatchNorm in both modes, ReLU, max pool, flatten, per-head Dense, softmax). The full-size
variants are only traced with ``jax.eval_shape``: their output shapes and parameter counts are
checked against hand-computed values.
"""

from __future__ import annotations

import math

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from jaxvision import models
from jaxvision.models import iic

_KEY = jax.random.key(0)

# name -> (partial, widths, pools, dense features or None, kernel, conv bias, heads, C_over)
_VARIANTS = {
    "seed004": (models.IICSeed004, (32, 64, 128), 3, 128, 3, True, 5, 50),
    "book_vgg": (models.IICBookVGG, (64, 128, 256, 512), 3, None, 3, True, 5, 50),
    "paper5x5": (models.IICPaper5x5, (64, 128, 256, 512), 3, None, 5, False, 5, 50),
    "fast_cpu": (models.IICFastCPU, (16, 32, 64, 128), 3, None, 3, True, 5, 50),
    "tiny": (models.IICTiny, (4, 8), 1, None, 3, True, 2, 20),
}


def _images(key, batch, size, channels=1):
  return jax.random.uniform(key, (batch, size, size, channels), jnp.float32)


def _feature_size(widths, pools, dense, size):
  if dense is not None:
    return dense
  side = size
  for _ in range(pools):
    side //= 2  # 2 x 2 VALID max pool: floor
  return side * side * widths[-1]


def _shape_tree(tree):
  return jax.tree.map(lambda a: tuple(a.shape), tree)


# ---------------------------------------------------------------------------------------------
# A float64 NumPy forward pass for the plain trunk (no final pool, no dense) + heads.


def _np_conv_same(x, kernel, bias):
  k = kernel.shape[0]
  p = (k - 1) // 2
  xp = np.pad(x, ((0, 0), (p, k - 1 - p), (p, k - 1 - p), (0, 0)))
  h, w = x.shape[1:3]
  out = np.zeros(x.shape[:3] + (kernel.shape[-1],))
  for i in range(k):
    for j in range(k):
      out += np.einsum("bhwc,cd->bhwd", xp[:, i:i + h, j:j + w, :], kernel[i, j])
  return out + (0.0 if bias is None else bias)


def _np_max_pool(x):
  b, h, w, c = x.shape
  x = x[:, :h // 2 * 2, :w // 2 * 2]
  return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def _np_softmax(z):
  z = z - z.max(-1, keepdims=True)
  e = np.exp(z)
  return e / e.sum(-1, keepdims=True)


def _np_forward(variables, x, *, train, num_layers, eps, momentum):
  """Returns (outputs dict, new batch stats dict {layer: (mean, var)})."""
  f64 = lambda a: np.asarray(a, np.float64)
  params = jax.tree.map(f64, variables["params"])
  stats = jax.tree.map(f64, variables["batch_stats"])
  h = f64(x)
  new_stats = {}
  for i in range(num_layers):
    if i > 0:
      h = _np_max_pool(h)
    conv = params["trunk"][f"conv{i}"]
    h = _np_conv_same(h, conv["kernel"], conv.get("bias"))
    bn = params["trunk"][f"bn{i}"]
    if train:
      mean, var = h.mean(axis=(0, 1, 2)), h.var(axis=(0, 1, 2))
      old = stats["trunk"][f"bn{i}"]
      new_stats[f"bn{i}"] = (momentum * old["mean"] + (1 - momentum) * mean,
                             momentum * old["var"] + (1 - momentum) * var)
    else:
      mean, var = stats["trunk"][f"bn{i}"]["mean"], stats["trunk"][f"bn{i}"]["var"]
    h = (h - mean) / np.sqrt(var + eps) * bn["scale"] + bn["bias"]
    h = np.maximum(h, 0.0)
  features = h.reshape(h.shape[0], -1)
  out = {"features": features}
  for name in ("clusters", "overclusters"):
    dense = params[name]["dense"]
    logits = np.einsum("bd,hdc->hbc", features, dense["kernel"]) + dense["bias"][:, None, :]
    out[name] = _np_softmax(logits)
  return out, new_stats


def _perturbed_variables(model, x, seed=1):
  """Init, then random non-trivial BN statistics and affine params (so eval mode is tested)."""
  variables = model.init(_KEY, x, train=False)
  rng = np.random.default_rng(seed)

  def perturb(path, leaf):
    name = path[-1].key
    if name == "mean":
      return jnp.asarray(rng.normal(0, 0.3, leaf.shape), leaf.dtype)
    if name == "var":
      return jnp.asarray(rng.uniform(0.5, 2.0, leaf.shape), leaf.dtype)
    if name == "scale" or (name == "bias" and "bn" in str(path)):
      return jnp.asarray(rng.normal(1 if name == "scale" else 0, 0.2, leaf.shape), leaf.dtype)
    return leaf

  return jax.tree_util.tree_map_with_path(perturb, variables)


# ---------------------------------------------------------------------------------------------
# Shapes of every variant (traced only) and of the tiny one (run).


@pytest.mark.parametrize("size", [24, 28, 20])
@pytest.mark.parametrize("variant", sorted(_VARIANTS))
def test_every_variant_output_shapes(variant, size):
  partial, widths, pools, dense, _, _, heads, c_over = _VARIANTS[variant]
  model = partial()
  x = jax.ShapeDtypeStruct((3, size, size, 1), jnp.float32)
  variables = jax.eval_shape(lambda x: model.init(_KEY, x, train=False), x)
  assert set(variables) == {"params", "batch_stats"}
  out = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, x)
  d = _feature_size(widths, pools, dense, size)
  assert set(out) == {"clusters", "overclusters", "features"}
  assert out["clusters"].shape == (heads, 3, 10)
  assert out["overclusters"].shape == (heads, 3, c_over)
  assert out["features"].shape == (3, d)
  assert out["clusters"].dtype == out["overclusters"].dtype == jnp.float32
  # Head kernels are [H, D, C]: their input size is the feature size.
  assert variables["params"]["clusters"]["dense"]["kernel"].shape == (heads, d, 10)
  # Training returns the same outputs plus the updated statistics.
  out_train, updates = jax.eval_shape(
      lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]), variables, x)
  assert _shape_tree(out_train) == _shape_tree(out)
  assert _shape_tree(updates["batch_stats"]) == _shape_tree(variables["batch_stats"])


def test_flatten_feature_size_24_equals_28_but_not_20():
  """Three floor-halvings: 24 and 28 both end at 3 x 3, 20 ends at 2 x 2."""
  trunk = models.BookVGGTrunk()
  sizes = {}
  for s in (20, 24, 28):
    x = jax.ShapeDtypeStruct((1, s, s, 1), jnp.float32)
    v = jax.eval_shape(lambda x: trunk.init(_KEY, x, train=False), x)
    sizes[s] = jax.eval_shape(lambda v, x: trunk.apply(v, x, train=False), v, x).shape[-1]
  assert sizes == {20: 2 * 2 * 512, 24: 3 * 3 * 512, 28: 3 * 3 * 512}


@pytest.mark.parametrize("size", [20, 24, 28])
def test_mean_pooling_features_do_not_depend_on_image_size(size):
  model = models.IICFastCPU(pooling="mean")
  x = jax.ShapeDtypeStruct((2, size, size, 1), jnp.float32)
  v = jax.eval_shape(lambda x: model.init(_KEY, x, train=False), x)
  assert v["params"]["clusters"]["dense"]["kernel"].shape == (5, 128, 10)
  out = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), v, x)
  assert out["features"].shape == (2, 128)


def test_tiny_runs_with_three_channels():
  model = models.IICTiny()
  x = _images(_KEY, 3, 8, channels=3)
  v = model.init(_KEY, x, train=False)
  out = model.apply(v, x, train=False)
  assert out["clusters"].shape == (2, 3, 10)
  assert out["features"].shape == (3, 4 * 4 * 8)
  assert v["params"]["trunk"]["conv0"]["kernel"].shape == (3, 3, 3, 4)


# ---------------------------------------------------------------------------------------------
# Parameter counts, hand-computed.


def _conv(k, cin, cout, bias=True):
  return k * k * cin * cout + (cout if bias else 0)


def test_book_vgg_trunk_parameter_count():
  trunk = models.BookVGGTrunk()
  v = jax.eval_shape(lambda: trunk.init(_KEY, jnp.zeros((1, 24, 24, 1)), train=False))
  convs = _conv(3, 1, 64) + _conv(3, 64, 128) + _conv(3, 128, 256) + _conv(3, 256, 512)
  assert convs == 640 + 73_856 + 295_168 + 1_180_160
  bn = 2 * (64 + 128 + 256 + 512)  # scale + bias; mean + var are batch_stats
  assert models.count_params(v["params"]) == convs + bn == 1_551_744
  assert models.count_params(v["batch_stats"]) == 2 * (64 + 128 + 256 + 512)


def test_book_vgg_model_parameter_count_with_the_books_single_head():
  model = models.IICBookVGG(num_heads=1, num_overcluster_heads=0)
  v = jax.eval_shape(lambda: model.init(_KEY, jnp.zeros((1, 24, 24, 1)), train=False))
  head = 3 * 3 * 512 * 10 + 10  # Flatten (4608) -> Dense(10), as the book's summary
  assert models.count_params(v["params"]) == 1_551_744 + head
  assert "overclusters" not in v["params"]


def test_paper_model_parameter_count():
  model = models.IICPaper5x5()
  v = jax.eval_shape(lambda: model.init(_KEY, jnp.zeros((1, 24, 24, 1)), train=False))
  convs = sum(_conv(5, a, b, bias=False) for a, b in [(1, 64), (64, 128), (128, 256),
                                                      (256, 512)])
  bn = 2 * (64 + 128 + 256 + 512)
  d = 3 * 3 * 512
  heads = 5 * (d * 10 + 10) + 5 * (d * 50 + 50)
  assert models.count_params(v["params"]) == convs + bn + heads
  assert "bias" not in v["params"]["trunk"]["conv0"]


def test_seed004_parameter_count():
  model = models.IICSeed004(num_heads=1, num_overcluster_heads=0)
  v = jax.eval_shape(lambda: model.init(_KEY, jnp.zeros((1, 24, 24, 1)), train=False))
  convs = _conv(3, 1, 32) + _conv(3, 32, 64) + _conv(3, 64, 128)
  bn = 2 * (32 + 64 + 128)
  dense = 3 * 3 * 128 * 128 + 128  # 24 -> 12 -> 6 -> 3, flatten, Dense(128)
  assert models.count_params(v["params"]) == convs + bn + dense + 128 * 10 + 10


def test_count_params_on_arrays_and_shape_structs():
  tree = {"a": jnp.zeros((2, 3)), "b": [jnp.zeros(()), jax.ShapeDtypeStruct((4, 5), jnp.int8)]}
  assert models.count_params(tree) == 6 + 1 + 20
  assert models.count_params({}) == 0
  with pytest.raises(TypeError, match="params"):
    models.count_params({"a": 3})


# ---------------------------------------------------------------------------------------------
# Numerics of the tiny model against NumPy.


def test_tiny_eval_matches_numpy_forward():
  model = models.IICTiny()
  x = _images(jax.random.key(1), 3, 8)
  v = _perturbed_variables(model, x)
  out = model.apply(v, x, train=False)
  want, _ = _np_forward(v, x, train=False, num_layers=2, eps=1e-3, momentum=0.99)
  for k in ("features", "clusters", "overclusters"):
    np.testing.assert_allclose(out[k], want[k], rtol=1e-4, atol=1e-5, err_msg=k)


def test_tiny_train_matches_numpy_forward_and_stat_update():
  model = models.IICTiny(bn_momentum=0.9)
  x = _images(jax.random.key(2), 3, 8)
  v = _perturbed_variables(model, x, seed=2)
  out, updates = model.apply(v, x, train=True, mutable=["batch_stats"])
  want, want_stats = _np_forward(v, x, train=True, num_layers=2, eps=1e-3, momentum=0.9)
  for k in ("features", "clusters", "overclusters"):
    np.testing.assert_allclose(out[k], want[k], rtol=1e-4, atol=1e-5, err_msg=k)
  for layer, (mean, var) in want_stats.items():
    got = updates["batch_stats"]["trunk"][layer]
    np.testing.assert_allclose(got["mean"], mean, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got["var"], var, rtol=1e-4, atol=1e-6)


@settings(max_examples=4, deadline=None)
@given(batch=st.sampled_from([1, 3]), size=st.sampled_from([7, 8]), seed=st.integers(0, 2**16),
       train=st.booleans())
def test_probabilities_are_distributions(batch, size, seed, train):
  model = models.IICTiny()
  x = _images(jax.random.key(seed), batch, size) * 10.0  # larger logits than [0, 1]
  v = model.init(jax.random.key(seed + 1), x, train=False)
  out, _ = model.apply(v, x, train=train, mutable=["batch_stats"])
  for k in ("clusters", "overclusters"):
    p = np.asarray(out[k])
    assert p.dtype == np.float32
    assert np.all(p >= 0.0) and np.all(np.isfinite(p))
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Train vs eval mode.


def test_batch_stats_update_only_in_train_mode():
  model = models.IICTiny()
  x = _images(jax.random.key(3), 3, 8)
  v = model.init(_KEY, x, train=False)
  init_stats = v["batch_stats"]["trunk"]["bn0"]
  np.testing.assert_array_equal(init_stats["mean"], 0.0)
  np.testing.assert_array_equal(init_stats["var"], 1.0)

  # Train: the statistics move, by (1 - momentum) * batch mean of the conv output.
  out, updates = model.apply(v, x, train=True, mutable=["batch_stats"])
  _, inter = model.apply(v, x, train=True, mutable=["batch_stats", "intermediates"],
                         capture_intermediates=True)
  conv0 = np.asarray(inter["intermediates"]["trunk"]["conv0"]["__call__"][0], np.float64)
  np.testing.assert_allclose(updates["batch_stats"]["trunk"]["bn0"]["mean"],
                             0.01 * conv0.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-7)
  assert not np.allclose(updates["batch_stats"]["trunk"]["bn1"]["var"], 1.0)

  # Train mode needs the collection to be mutable.
  with pytest.raises(flax.errors.ModifyScopeVariableError):
    model.apply(v, x, train=True)

  # Eval: nothing to update; with a mutable collection the statistics come back unchanged.
  model.apply(v, x, train=False)
  _, same = model.apply(v, x, train=False, mutable=["batch_stats"])
  for a, b in zip(jax.tree.leaves(same["batch_stats"]), jax.tree.leaves(v["batch_stats"])):
    np.testing.assert_array_equal(a, b)


def test_eval_is_per_example_and_train_depends_on_the_batch():
  model = models.IICTiny()
  x = _images(jax.random.key(4), 3, 8)
  v = _perturbed_variables(model, x)
  full = model.apply(v, x, train=False)["clusters"]
  first = model.apply(v, x[:1], train=False)["clusters"]
  np.testing.assert_allclose(full[:, :1], first, rtol=1e-5, atol=1e-6)
  full_t, _ = model.apply(v, x, train=True, mutable=["batch_stats"])
  first_t, _ = model.apply(v, x[:2], train=True, mutable=["batch_stats"])
  assert not np.allclose(full_t["clusters"][:, :1], first_t["clusters"][:, :1], atol=1e-4)


# ---------------------------------------------------------------------------------------------
# Heads: independent parameters, shared trunk.


def test_heads_have_different_params_and_share_the_trunk():
  model = models.IICTiny()
  x = _images(jax.random.key(5), 3, 8)
  v = model.init(_KEY, x, train=False)
  kernels = v["params"]["clusters"]["dense"]["kernel"]
  assert not np.allclose(kernels[0], kernels[1])
  over = v["params"]["overclusters"]["dense"]["kernel"]
  assert not np.allclose(over[0], over[1])

  def head0(params):
    out, _ = model.apply({"params": params, "batch_stats": v["batch_stats"]}, x, train=True,
                         mutable=["batch_stats"])
    return jnp.sum(out["clusters"][0] * jnp.arange(10.0))

  grads = jax.grad(head0)(v["params"])
  g = grads["clusters"]["dense"]["kernel"]
  assert np.abs(g[0]).max() > 0.0
  np.testing.assert_array_equal(g[1], 0.0)
  np.testing.assert_array_equal(grads["clusters"]["dense"]["bias"][1], 0.0)
  for leaf in jax.tree.leaves(grads["overclusters"]):
    np.testing.assert_array_equal(leaf, 0.0)
  for name, leaf in jax.tree_util.tree_leaves_with_path(grads["trunk"]):
    assert np.abs(leaf).max() > 0.0, name


def test_heads_can_be_vmapped():
  model = models.IICTiny()
  x = _images(jax.random.key(6), 3, 8)
  v = model.init(_KEY, x, train=False)
  out = model.apply(v, x, train=False)
  per_head = jax.vmap(lambda p: jnp.sum(p, axis=0))(out["clusters"])
  np.testing.assert_allclose(per_head.sum(-1), 3.0, rtol=1e-5)


def test_zero_overcluster_heads():
  model = models.IICTiny(num_overcluster_heads=0)
  x = _images(_KEY, 3, 8)
  v = model.init(_KEY, x, train=False)
  out = model.apply(v, x, train=False)
  assert out["overclusters"].shape == (0, 3, 20)
  assert "overclusters" not in v["params"]


# ---------------------------------------------------------------------------------------------
# jit, dtypes, determinism.


def test_jit_matches_eager():
  model = models.IICTiny()
  x = _images(jax.random.key(7), 3, 8)
  v = _perturbed_variables(model, x)

  @jax.jit
  def train_step(v, x):
    return model.apply(v, x, train=True, mutable=["batch_stats"])

  eager = model.apply(v, x, train=False)
  jitted = jax.jit(lambda v, x: model.apply(v, x, train=False))(v, x)
  for k in eager:
    np.testing.assert_allclose(jitted[k], eager[k], rtol=1e-5, atol=1e-6)
  out_j, upd_j = train_step(v, x)
  out_e, upd_e = model.apply(v, x, train=True, mutable=["batch_stats"])
  np.testing.assert_allclose(out_j["clusters"], out_e["clusters"], rtol=1e-5, atol=1e-6)
  for a, b in zip(jax.tree.leaves(upd_j), jax.tree.leaves(upd_e)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_bfloat16_computation_returns_float32_probabilities():
  x = _images(jax.random.key(8), 3, 8)
  model32 = models.IICTiny()
  model16 = models.IICTiny(dtype=jnp.bfloat16)
  v = model32.init(_KEY, x, train=False)
  v16 = model16.init(_KEY, x, train=False)
  for a, b in zip(jax.tree.leaves(v), jax.tree.leaves(v16)):
    assert b.dtype == jnp.float32  # params stay float32
    np.testing.assert_array_equal(a, b)
  out16 = model16.apply(v, x, train=False)
  out32 = model32.apply(v, x, train=False)
  assert out16["features"].dtype == jnp.bfloat16
  for k in ("clusters", "overclusters"):
    assert out16[k].dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(out16[k]).sum(-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(out16[k], out32[k], atol=3e-2)
  out16_t, upd = model16.apply(v, x, train=True, mutable=["batch_stats"])
  assert out16_t["clusters"].dtype == jnp.float32
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(upd))


def test_deterministic_init():
  model = models.IICTiny()
  x = _images(_KEY, 3, 8)
  a = model.init(jax.random.key(42), x, train=False)
  b = model.init(jax.random.key(42), x, train=False)
  c = model.init(jax.random.key(43), x, train=False)
  for la, lb in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(la, lb)
  assert not np.allclose(a["params"]["trunk"]["conv0"]["kernel"],
                         c["params"]["trunk"]["conv0"]["kernel"])


def test_initializers_follow_the_references():
  """Conv He-normal: std sqrt(2 / fan_in); the paper's heads N(0, 0.01); biases 0."""
  v = models.Paper5x5Trunk(widths=(8, 64)).init(_KEY, jnp.zeros((1, 2, 2, 1)), train=False)
  k = np.asarray(v["params"]["conv1"]["kernel"])  # 5 * 5 * 8 fan-in, 12800 samples
  assert k.shape == (5, 5, 8, 64)
  np.testing.assert_allclose(k.std(), math.sqrt(2.0 / (5 * 5 * 8)), rtol=0.03)
  np.testing.assert_allclose(k.mean(), 0.0, atol=0.01)
  np.testing.assert_array_equal(v["params"]["bn1"]["scale"], 1.0)
  model = models.IICTiny(head_init=jax.nn.initializers.normal(0.01), num_overclusters=500)
  v = model.init(_KEY, jnp.zeros((1, 8, 8, 1)), train=False)
  kernel = np.asarray(v["params"]["overclusters"]["dense"]["kernel"])
  np.testing.assert_allclose(kernel.std(), 0.01, rtol=0.05)
  np.testing.assert_array_equal(v["params"]["overclusters"]["dense"]["bias"], 0.0)


# ---------------------------------------------------------------------------------------------
# Argument validation.


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(num_heads=0), ValueError, "num_heads"),
    (dict(num_clusters=0), ValueError, "num_clusters"),
    (dict(num_overclusters=1.5), TypeError, "num_overclusters"),
    (dict(num_overcluster_heads=-1), ValueError, "num_overcluster_heads"),
    (dict(widths=()), ValueError, "widths"),
    (dict(widths=(4, 0)), ValueError, "widths"),
    (dict(kernel_size=0), ValueError, "kernel_size"),
    (dict(pooling="max"), ValueError, "pooling"),
    (dict(dense_features=0), ValueError, "dense_features"),
    (dict(bn_momentum=1.5), ValueError, "bn_momentum"),
])
def test_bad_fields_raise(kwargs, error, match):
  model = models.IICTiny(**kwargs)
  with pytest.raises(error, match=match):
    model.init(_KEY, jnp.zeros((1, 8, 8, 1)), train=False)


@pytest.mark.parametrize("x, error, match", [
    (jnp.zeros((8, 8, 1)), ValueError, r"`x` must have shape \[B, H, W, C\]"),
    (jnp.zeros((1, 8, 8, 1), jnp.uint8), TypeError, "`x` must be a floating-point"),
    (jnp.zeros((1, 1, 8, 1)), ValueError, "at least 2 x 2"),
])
def test_bad_inputs_raise(x, error, match):
  with pytest.raises(error, match=match):
    models.IICTiny().init(_KEY, x, train=False)


def test_small_image_error_names_the_minimum_for_the_trunk():
  with pytest.raises(ValueError, match="at least 8 x 8"):
    jax.eval_shape(lambda: models.IICBookVGG().init(_KEY, jnp.zeros((1, 7, 7, 1)),
                                                     train=False))


def test_public_names():
  assert set(models.__all__) >= {"IICModel", "IICTrunk", "IICSeed004", "IICBookVGG",
                                 "IICPaper5x5", "IICTiny", "IICFastCPU", "count_params",
                                 "MineStatisticsNetwork", "MineMLP"}
  for name in models.__all__:
    assert hasattr(models, name), name
  assert models.IICBookVGG is iic.IICBookVGG


@pytest.mark.parametrize("h, w, seed", [(2, 2, 0), (7, 5, 1), (9, 8, 2)])
def test_reshape_max_pool_equals_flax_max_pool(h, w, seed):
  # The trunk's 2x2 pool (a reshape and a max: its gradient is ~3x cheaper on XLA:CPU than
  # reduce_window's select-and-scatter) has flax's values, odd sizes floored, and, without
  # ties, the same gradient.
  import flax.linen as nn
  x = jax.random.normal(jax.random.key(seed), (2, h, w, 3))  # continuous: no ties
  want = nn.max_pool(x, (2, 2), strides=(2, 2), padding="VALID")
  np.testing.assert_array_equal(iic._max_pool_2x2(x), want)
  cot = jax.random.normal(jax.random.key(seed + 1), want.shape)
  grad = lambda f: jax.jit(jax.grad(lambda v: jnp.sum(f(v) * cot)))(x)
  np.testing.assert_array_equal(grad(iic._max_pool_2x2),
                                grad(lambda v: nn.max_pool(v, (2, 2), strides=(2, 2),
                                                           padding="VALID")))
