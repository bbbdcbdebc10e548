"""jaxvision.dream: the objective rises in every octave, shapes are kept, feature functions of
any flax module."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxvision import dream, models, style


def test_deepdream_raises_the_objective_per_octave_and_keeps_the_shape():
  fn, _ = style.vgg_feature_fn(blocks=((4,), (8,)), seed=0)
  image = np.random.default_rng(0).uniform(0.3, 0.7, (20, 24, 3)).astype(np.float32)
  cfg = dream.DreamConfig(layers=("block2_conv1",), octaves=2, octave_scale=1.4, steps=5,
                          step_size=0.02, max_shift=3)
  out, records = dream.deepdream(image, fn, cfg, seed=0)
  assert out.shape == image.shape and out.min() >= 0 and out.max() <= 1
  assert [r["size"] for r in records] == [[14, 17], [20, 24]]
  assert all(r["end"] > r["start"] for r in records)
  assert not np.allclose(out, image)
  # uint8 input: the same image.
  out8, _ = dream.deepdream((image * 255).astype(np.uint8), fn, cfg, seed=0)
  assert out8.shape == image.shape


def test_layer_feature_fn_on_the_mnist_classifier():
  model = models.MnistFeatureNetTiny()
  variables = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
  feats = dream.layer_feature_fn(model, variables, ("conv0a", "conv1b"),
                                 activation=jax.nn.relu, features="conv")
  out = jax.eval_shape(feats, jnp.zeros((2, 40, 40, 1)))     # fully convolutional mode
  assert set(out) == {"conv0a", "conv1b"}
  assert out["conv0a"].shape == (2, 40, 40, 4) and out["conv1b"].shape == (2, 20, 20, 8)
  o = jax.jit(feats)(jnp.ones((1, 28, 28, 1)))
  assert float(o["conv0a"].min()) >= 0.0


def test_errors():
  fn, _ = style.vgg_feature_fn(blocks=((4,),), seed=0)
  with pytest.raises(ValueError, match="layers"):
    dream.DreamConfig(layers=())
  with pytest.raises(ValueError, match="octave_scale"):
    dream.DreamConfig(layers=("a",), octave_scale=0.5)
  with pytest.raises(ValueError, match="no layer"):
    dream.deepdream(np.zeros((8, 8, 3)), fn, dream.DreamConfig(layers=("nope",), octaves=1,
                                                               steps=1))
  with pytest.raises(ValueError, match="image"):
    dream.deepdream(np.zeros((8, 8)), fn, dream.DreamConfig(layers=("block1_conv1",)))
  with pytest.raises(TypeError):
    dream.deepdream(np.zeros((8, 8, 3)), 3, dream.DreamConfig(layers=("block1_conv1",)))
