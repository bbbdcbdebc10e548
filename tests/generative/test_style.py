"""jaxvision.style and jaxvision.models.vgg: Gram / TV / content losses vs the oracle and by
hand, style transfer lowering its loss with both optimisers, the VGG weight loaders' round
trips and errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxvision import style
from jaxvision.dream import Features
from jaxvision.models import vgg
from jaxvision.reference import generative as ref

FAST = settings(max_examples=15, deadline=None)


@FAST
@given(st.integers(1, 2), st.integers(1, 4), st.integers(1, 4), st.integers(1, 5),
       st.integers(0, 1000))
def test_gram_matches_oracle_symmetric_psd(n, h, w, c, seed):
  f = np.random.default_rng(seed).normal(size=(n, h, w, c)).astype(np.float32)
  g = np.asarray(style.gram_matrix(f))
  np.testing.assert_allclose(g, ref.gram_matrix(f), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(g, np.transpose(g, (0, 2, 1)), atol=1e-6)
  assert np.linalg.eigvalsh(g.astype(np.float64)).min() > -1e-4


@FAST
@given(st.integers(1, 5), st.integers(1, 5), st.integers(0, 1000))
def test_total_variation_matches_oracle(h, w, seed):
  x = np.random.default_rng(seed).uniform(size=(2, h, w, 3)).astype(np.float32)
  np.testing.assert_allclose(style.total_variation(x), ref.total_variation(x), rtol=1e-5,
                             atol=1e-5)


def test_hand_computed_cases():
  assert float(style.total_variation(np.full((1, 6, 5, 3), 0.37))[0]) == 0.0
  x = np.zeros((1, 2, 2, 1), np.float32)
  x[0, 0, 0, 0] = 1.0           # one bright corner: 2 differences of 1
  assert float(style.total_variation(x)[0]) == pytest.approx(2.0)
  f = np.zeros((1, 1, 2, 2), np.float32)
  f[0, 0, 0] = [1.0, 2.0]
  f[0, 0, 1] = [3.0, 0.0]        # G = ([1,2]^T[1,2] + [3,0]^T[3,0]) / 2
  np.testing.assert_allclose(style.gram_matrix(f)[0], [[5.0, 1.0], [1.0, 2.0]])
  a = np.random.default_rng(0).normal(size=(1, 3, 3, 4)).astype(np.float32)
  assert float(style.content_loss(a, a)) == 0.0
  assert float(style.style_loss([style.gram_matrix(a)], [style.gram_matrix(a)])) == 0.0
  np.testing.assert_allclose(float(style.style_loss([jnp.ones((1, 2, 2))], [jnp.zeros((1, 2, 2))])),
                             ref.style_loss([np.ones((1, 2, 2))], [np.zeros((1, 2, 2))]))


def _tiny_features():
  return style.vgg_feature_fn(blocks=((4,), (8,), (8,)), seed=0)[0]


@pytest.mark.parametrize("optimizer,steps", [("adam", 20), ("lbfgs", 6)])
def test_style_transfer_lowers_the_loss(optimizer, steps):
  rng = np.random.default_rng(0)
  content = rng.uniform(size=(16, 16, 3)).astype(np.float32)
  stripes = np.zeros((16, 16, 3), np.float32)
  stripes[:, ::4] = 1.0
  cfg = style.StyleConfig(content_layer="block3_conv1",
                          style_layers=("block1_conv1", "block2_conv1"), optimizer=optimizer,
                          steps=steps, learning_rate=0.05)
  image, hist = style.style_transfer(content, stripes, _tiny_features(), cfg, record_every=10)
  assert image.shape == (16, 16, 3) and image.min() >= 0 and image.max() <= 1
  assert hist["style"][-1] < 0.5 * hist["style"][0]
  assert hist["total"][-1] < hist["total"][0]
  assert hist["content"][0] == pytest.approx(0.0, abs=1e-6)   # started at the content image


def test_style_transfer_errors():
  fn = _tiny_features()
  img = np.zeros((8, 8, 3), np.float32)
  with pytest.raises(ValueError, match="no layer"):
    style.style_transfer(img, img, fn, style.StyleConfig(steps=1))
  with pytest.raises(ValueError, match="content"):
    style.style_transfer(np.zeros((8, 8)), img, fn)
  with pytest.raises(ValueError, match="optimizer"):
    style.StyleConfig(optimizer="sgd")


def _random_vgg19_params(seed=0):
  shapes = jax.eval_shape(lambda: vgg.VGG19().init(jax.random.key(0),
                                                   jnp.zeros((1, 32, 32, 3))))["params"]
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: rng.normal(size=s.shape).astype(np.float32), shapes)


@pytest.mark.parametrize("layout", ["torchvision", "keras"])
def test_vgg19_weights_round_trip(layout, tmp_path):
  params = _random_vgg19_params()
  exported = vgg.export_vgg_weights(params, layout)
  if layout == "torchvision":
    assert exported["features.0.weight"].shape == (64, 3, 3, 3)
    assert exported["features.34.bias"].shape == (512,)     # block5_conv4
    assert len(exported) == 32
  np.savez(tmp_path / "w.npz", **exported)
  for source in (exported, tmp_path / "w.npz"):
    loaded, got_layout = vgg.load_vgg_weights(source)
    assert got_layout == layout
    for name in vgg.vgg_layer_names():
      np.testing.assert_array_equal(loaded[name]["kernel"], params[name]["kernel"])
      np.testing.assert_array_equal(loaded[name]["bias"], params[name]["bias"])


def test_keras_h5_layout(tmp_path):
  h5py = pytest.importorskip("h5py")
  params = _random_vgg19_params(1)
  with h5py.File(tmp_path / "vgg19_notop.h5", "w") as f:   # Keras' saved-weights nesting
    for name in vgg.vgg_layer_names():
      g = f.create_group(name).create_group(name)
      g["kernel:0"] = np.asarray(params[name]["kernel"])
      g["bias:0"] = np.asarray(params[name]["bias"])
  loaded, layout = vgg.load_vgg_weights(tmp_path / "vgg19_notop.h5")
  assert layout == "keras"
  np.testing.assert_array_equal(loaded["block4_conv3"]["kernel"], params["block4_conv3"]["kernel"])


def test_vgg_loader_errors(tmp_path):
  params = _random_vgg19_params()
  sd = vgg.export_vgg_weights(params, "torchvision")
  with pytest.raises(FileNotFoundError):
    vgg.load_vgg_weights(tmp_path / "missing.pth")
  (tmp_path / "w.bin").write_bytes(b"x")
  with pytest.raises(ValueError, match="npz"):
    vgg.load_vgg_weights(tmp_path / "w.bin")
  del sd["features.10.weight"]
  with pytest.raises(ValueError, match="features.10.weight"):
    vgg.load_vgg_weights(sd)
  sd = vgg.export_vgg_weights(params, "torchvision")
  sd["features.0.weight"] = sd["features.0.weight"][:, :1]
  with pytest.raises(ValueError, match="block1_conv1"):
    vgg.load_vgg_weights(sd)
  with pytest.raises(ValueError, match="layout"):
    vgg.load_vgg_weights(sd, layout="caffe")
  with pytest.raises(TypeError):
    vgg.load_vgg_weights(42)


def test_vgg_structure_and_preprocessing():
  names = vgg.vgg_layer_names()
  assert len(names) == 16 and names[-1] == "block5_conv4"
  idx = vgg.torchvision_feature_indices()
  assert (idx["block1_conv1"], idx["block2_conv1"], idx["block3_conv1"], idx["block5_conv4"]) \
      == (0, 5, 10, 34)
  out = jax.eval_shape(lambda x: vgg.VGG19().init_with_output(jax.random.key(0), x)[0],
                       jnp.zeros((1, 64, 64, 3)))
  assert out["block5_conv2"].shape == (1, 4, 4, 512) and out["block5_pool"].shape[1] == 2
  x = np.random.default_rng(0).uniform(size=(1, 4, 4, 3)).astype(np.float32)
  for layout in vgg.LAYOUTS:
    np.testing.assert_allclose(vgg.vgg_deprocess(vgg.vgg_preprocess(x, layout), layout), x,
                               atol=1e-5)
  np.testing.assert_allclose(vgg.vgg_preprocess(np.ones((1, 1, 1, 3)), "keras")[0, 0, 0],
                             [255 - 103.939, 255 - 116.779, 255 - 123.68], rtol=1e-6)
  with pytest.raises(ValueError, match="last"):
    vgg.VGG(last="block9").init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))
