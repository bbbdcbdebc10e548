"""Tests of SegNet (``jaxvision.models.segnet``).

The key property: every decoder block unpools its input to exactly the positions where the
matching encoder block's max pool took its maxima (checked on the sown intermediates against
a NumPy scatter and a NumPy 2 x 2 argmax), odd sizes included.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxvision import models

# An "rbg" key: XLA:CPU compiles the parameter init of these conv nets ~10x faster than with
# the default threefry key.
_KEY = jax.random.key(0, impl="rbg")


def _shape(model, size, batch=2, channels=3):
  x = jax.ShapeDtypeStruct((batch, *size, channels), jnp.float32)
  variables = jax.eval_shape(lambda x: model.init(_KEY, x, train=False), x)
  out = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, x)
  return out, variables


@pytest.mark.parametrize("size", [(32, 40), (33, 41), (17, 23), (4, 4), (5, 9), (120, 160)])
def test_logits_have_the_image_size(size):
  out, _ = _shape(models.SegNetTiny(num_classes=5), size)
  assert out.shape == (2, *size, 5) and out.dtype == jnp.float32


def test_small_variant_shapes_at_the_cpu_size():
  out, _ = _shape(models.SegNetSmall(), (121, 161), batch=1)
  assert out.shape == (1, 121, 161, 11)


def test_rejects_images_smaller_than_the_pools():
  with pytest.raises(ValueError, match=">= 16"):
    _shape(models.SegNetSmall(), (15, 40))


@pytest.mark.parametrize("kwargs", [{"widths": ()}, {"convs_per_block": (1, 2, 3)},
                                    {"convs_per_block": 0}])
def test_rejects_bad_configurations(kwargs):
  with pytest.raises(ValueError):
    _shape(models.SegNet(**{"widths": (4, 8), **kwargs}), (16, 16))


def test_paper_parameter_count():
  """The VGG16-based SegNet of the paper: 29.5 M parameters (its Table 6)."""
  _, variables = _shape(models.SegNet(), (32, 32), batch=1)
  assert 29_000_000 < models.count_params(variables["params"]) < 30_000_000


def _np_window_argmax(e):
  """``[B, H//2, W//2, C]`` flat index ``y * W + x`` of each 2 x 2 window's first maximum."""
  b, h, w, c = e.shape
  ho, wo = h // 2, w // 2
  win = e[:, :2 * ho, :2 * wo].reshape(b, ho, 2, wo, 2, c).transpose(0, 1, 3, 5, 2, 4)
  k = win.reshape(b, ho, wo, c, 4).argmax(-1)  # row-major in the window: first wins
  dy, dx = k // 2, k % 2
  rows = 2 * np.arange(ho)[None, :, None, None] + dy
  cols = 2 * np.arange(wo)[None, None, :, None] + dx
  return rows * w + cols


def _np_unpool(x, argmax, shape):
  b, ho, wo, c = x.shape
  out = np.zeros((b, shape[0] * shape[1], c), x.dtype)
  bi, _, _, ci = np.indices(x.shape)
  out[bi.ravel(), argmax.ravel(), ci.ravel()] = x.ravel()
  return out.reshape(b, *shape, c)


@pytest.mark.parametrize("size", [(16, 20), (17, 23)])
def test_decoder_unpools_to_the_encoders_argmax_positions(size):
  model = models.SegNet(num_classes=3, widths=(3, 4, 5), convs_per_block=1)
  x = jax.random.normal(jax.random.key(1), (2, *size, 3))

  @jax.jit
  def run(x):
    variables = model.init(_KEY, x, train=False)
    return model.apply(variables, x, train=False, mutable=["intermediates"])

  out, state = run(x)
  assert out.shape == (2, *size, 3)
  inter = jax.tree.map(np.asarray, state["intermediates"])
  for i in range(3):
    (e,), (a,) = inter[f"encoder{i}"], inter[f"argmax{i}"]
    (d,), (u,) = inter[f"decoder_input{i}"], inter[f"unpooled{i}"]
    # The encoder's indices are its 2 x 2 windows' argmaxes ...
    np.testing.assert_array_equal(a, _np_window_argmax(e))
    # ... and the decoder writes its input there and zeros everywhere else.
    assert u.shape == e.shape
    np.testing.assert_array_equal(u, _np_unpool(d, a, e.shape[1:3]))
    if e.shape[1] % 2:
      assert not u[:, -1].any()  # the row the VALID pool dropped stays empty
  # The deepest decoder block starts from the pooled encoder output itself.
  (e,), (a,), (d,) = inter["encoder2"], inter["argmax2"], inter["decoder_input2"]
  pooled = np.take_along_axis(e.reshape(e.shape[0], -1, e.shape[-1]),
                              a.reshape(a.shape[0], -1, a.shape[-1]), axis=1)
  np.testing.assert_array_equal(d, pooled.reshape(d.shape))


@pytest.fixture(scope="module")
def trained():
  """A small SegNet, a few Adam steps on one fixed batch whose mask is a function of the
  image (SegNetTiny's 4 channels learn too slowly for a sharp assertion)."""
  model = models.SegNet(num_classes=3, widths=(8, 16), convs_per_block=1)
  # Piecewise-constant 4 x 4 blocks, cropped to 33 x 41: regions, as in a scene.
  blocks = jax.random.uniform(jax.random.key(3), (2, 9, 11, 3))
  x = jnp.repeat(jnp.repeat(blocks, 4, axis=1), 4, axis=2)[:, :33, :41]
  y = (x[..., 0] > 0.5).astype(jnp.int32) + (x[..., 1] > 0.8).astype(jnp.int32)
  variables = jax.jit(lambda x: model.init(_KEY, x, train=False))(x)
  tx = optax.adam(1e-2)

  @jax.jit
  def step(params, batch_stats, opt_state):
    def loss_fn(p):
      logits, updates = model.apply({"params": p, "batch_stats": batch_stats}, x, train=True,
                                    mutable=["batch_stats"])
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
      return loss, updates["batch_stats"]
    (loss, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), new_stats, opt_state, loss

  params, batch_stats = variables["params"], variables["batch_stats"]
  opt_state = tx.init(params)
  losses = []
  for _ in range(12):
    params, batch_stats, opt_state, loss = step(params, batch_stats, opt_state)
    losses.append(float(loss))
  return model, variables, params, batch_stats, x, losses


def test_a_few_adam_steps_lower_the_loss(trained):
  *_, losses = trained
  assert np.all(np.isfinite(losses))
  assert losses[-1] < 0.75 * losses[0], losses


def test_train_mode_updates_batch_stats_and_eval_mode_uses_them(trained):
  model, variables, params, batch_stats, x, _ = trained
  before = jax.tree.leaves(variables["batch_stats"])
  after = jax.tree.leaves(batch_stats)
  assert any(not np.allclose(a, b) for a, b in zip(before, after))
  new = {"params": params, "batch_stats": batch_stats}

  @jax.jit
  def both(v, x):
    train_out, _ = model.apply(v, x, train=True, mutable=["batch_stats"])
    return train_out, model.apply(v, x, train=False)  # eval: nothing mutable

  train_out, eval_out = both(new, x)
  assert np.all(np.isfinite(eval_out)) and not np.allclose(train_out, eval_out)
  with pytest.raises(Exception, match="batch_stats"):  # train mode updates batch_stats
    jax.eval_shape(lambda v, x: model.apply(v, x, train=True), new, x)
