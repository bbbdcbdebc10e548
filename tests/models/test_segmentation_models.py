"""The contract every segmentation model keeps (FCN, SegNet, U-Net), tested on each.

A few Adam steps on one batch lower the per-pixel cross-entropy; ``train=True`` uses batch
statistics and updates ``batch_stats``, ``train=False`` uses the running averages and
mutates nothing. Model-specific tests stay in ``test_fcn.py``, ``test_segnet.py`` and
``test_unet.py``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxvision import models
from tests.models._segmentation import KEY

# name -> (model, image size). FCN needs sizes that are multiples of 4; SegNetTiny's 4
# channels learn too slowly for a sharp assertion, so SegNet runs a small custom config.
_MODELS = {
    "fcn": (lambda: models.FCNTiny(num_classes=3), (32, 40)),
    "segnet": (lambda: models.SegNet(num_classes=3, widths=(8, 16), convs_per_block=1),
               (33, 41)),
    "unet": (lambda: models.UNetTiny(num_classes=3), (33, 41)),
}


@pytest.fixture(scope="module", params=sorted(_MODELS))
def trained(request):
  """A model, a few Adam steps on one fixed batch whose mask is a function of the image."""
  make_model, (h, w) = _MODELS[request.param]
  model = make_model()
  # Piecewise-constant 4 x 4 blocks, cropped to h x w: regions, as in a scene.
  blocks = jax.random.uniform(jax.random.key(3), (2, -(-h // 4), -(-w // 4), 3))
  x = jnp.repeat(jnp.repeat(blocks, 4, axis=1), 4, axis=2)[:, :h, :w]
  y = (x[..., 0] > 0.5).astype(jnp.int32) + (x[..., 1] > 0.8).astype(jnp.int32)
  variables = jax.jit(lambda x: model.init(KEY, x, train=False))(x)
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
