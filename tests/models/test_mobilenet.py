"""MobileNet-style and plain conv nets: shapes, the parameter saving of separable blocks,
and a few jitted steps lower the loss."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxvision.models import count_params, layers, mobilenet

KEY = jax.random.key(0)


def test_separable_blocks_save_what_the_formula_says():
  x = jnp.zeros((1, 28, 28, 1))
  sep = jax.eval_shape(mobilenet.MobileNetMNIST().init, KEY, x)["params"]   # shapes only
  full = jax.eval_shape(mobilenet.PlainNetMNIST().init, KEY, x)["params"]
  blocks = ((16, 32), (32, 64), (64, 64), (64, 128), (128, 128))
  # Per block: separable = dw 3x3 + pw (no biases: BatchNorm's scale/bias instead) + 2 BNs;
  # plain = a 3x3 conv + 1 BN; the stem and classifier are shared.
  diff = sum(layers.conv_params(i, o, 3, bias=False) + 2 * o
             - (layers.depthwise_separable_params(i, o, 3, bias=False) + 2 * i + 2 * o)
             for i, o in blocks)
  assert count_params(full) - count_params(sep) == diff
  assert count_params(sep) < count_params(full) / 4


@pytest.mark.parametrize("factory", [mobilenet.MobileNetTiny, mobilenet.PlainNetTiny])
def test_tiny_nets_train_under_jit(factory):
  model = factory(num_classes=3)
  rng = np.random.default_rng(0)
  y = rng.integers(0, 3, 32)
  x = rng.normal(size=(32, 16, 16, 1)).astype(np.float32) * 0.1
  for i, c in enumerate(y):
    x[i, 5 * c:5 * c + 5] += 1.0          # a band whose row is the class
  x, y = jnp.asarray(x), jnp.asarray(y)
  v = model.init(KEY, x)
  assert model.apply(v, x).shape == (32, 3)
  params, stats = v["params"], v["batch_stats"]
  tx = optax.adam(1e-2)
  opt = tx.init(params)

  @jax.jit
  def step(params, stats, opt):
    def loss_fn(p):
      logits, upd = model.apply({"params": p, "batch_stats": stats}, x, train=True,
                                mutable=["batch_stats"])
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), upd
    (loss, upd), g = jax.value_and_grad(loss_fn, has_aux=True)(params)
    u, opt = tx.update(g, opt, params)
    return optax.apply_updates(params, u), upd["batch_stats"], opt, loss

  losses = []
  for _ in range(12):
    params, stats, opt, loss = step(params, stats, opt)
    losses.append(float(loss))
  assert losses[-1] < 0.5 * losses[0]
