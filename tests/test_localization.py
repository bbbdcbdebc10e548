"""Classification + localisation: data, loss, evaluation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxvision import localization as loc
from jaxvision.models import localizer
from tests.experiments._data import blob_digits


def test_source_records_and_box_fractions():
  src = loc.localization_source("train", 12, image_size=48, digits=blob_digits(30, 0))
  a = src.arrays
  assert a["image"].shape == (12, 48, 48, 3) and a["image"].dtype == np.uint8
  assert a["box"].shape == (12, 4) and np.all((a["box"] >= 0) & (a["box"] <= 1))
  assert np.all(a["box"][:, 2] > a["box"][:, 0]) and np.all((a["label"] >= 0) & (a["label"] < 10))


def test_box_from_center_and_model_outputs():
  np.testing.assert_allclose(localizer.box_from_center(jnp.array([0.5, 0.5, 0.2, 0.4])),
                             [0.4, 0.3, 0.6, 0.7], rtol=1e-6)
  model = localizer.LocalizerTiny()
  x = jnp.zeros((2, 48, 48, 3))
  v = jax.jit(model.init)(jax.random.key(0), x)   # eager flax calls are slow
  logits, boxes = jax.jit(model.apply)(v, x)
  assert logits.shape == (2, 10) and boxes.shape == (2, 4)


def test_loss_falls_and_evaluation_hand_case():
  src = loc.localization_source("train", 32, image_size=48, digits=blob_digits(30, 1))
  model = localizer.LocalizerTiny()
  x = jnp.asarray(src.arrays["image"], jnp.float32) / 255
  y, b = jnp.asarray(src.arrays["label"]), jnp.asarray(src.arrays["box"])
  v = jax.jit(model.init)(jax.random.key(0), x[:1])   # eager flax calls are slow
  params, stats = v["params"], v["batch_stats"]
  tx = optax.adam(1e-2)
  opt = tx.init(params)

  @jax.jit
  def step(params, stats, opt):
    (loss, (m, stats)), g = jax.value_and_grad(
        lambda p: localizer.losses(model, p, stats, x, y, b), has_aux=True)(params)
    u, opt = tx.update(g, opt, params)
    return optax.apply_updates(params, u), stats, opt, loss

  losses = []
  for _ in range(15):
    params, stats, opt, loss = step(params, stats, opt)
    losses.append(float(loss))
  assert losses[-1] < 0.7 * losses[0]
  ev = loc.evaluate_localizer(model, {"params": params, "batch_stats": stats}, src)
  assert set(ev) >= {"accuracy", "iou_above_0.5", "mean_iou"} and 0 <= ev["mean_iou"] <= 1


def test_task_rejects_negative_box_weight():
  with pytest.raises(ValueError, match="box_weight"):
    loc.localization_task(localizer.LocalizerTiny(), None, optimizer=optax.adam(1e-3),
                          box_weight=-1)
