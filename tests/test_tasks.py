"""jaxvision.tasks.ssd_task: the augmentations in the jitted step and their argument checks."""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest

from jaxvision.data import ArraySource
from jaxvision.inference import DetectorSpec
from jaxvision.tasks import ssd_task


def _data(n=4, seed=0):
  rng = np.random.default_rng(seed)
  boxes = np.zeros((n, 2, 4), np.float32)
  boxes[:, 0] = [4, 4, 20, 30]
  return ArraySource({"image": rng.integers(0, 256, (n, 48, 64, 3), dtype=np.uint8),
                      "boxes": boxes, "classes": np.tile([[1, 0]], (n, 1)).astype(np.int32),
                      "num_boxes": np.ones(n, np.int32)})


def _spec():
  return DetectorSpec(model="SSDTiny", num_classes=3, image_size=(48, 64),
                      aspect_ratios=(1.0, 0.5), aspect_ratio_unit="pixels")


def test_augmented_loss_is_finite_and_a_function_of_the_step_key():
  data = _data()
  task = ssd_task(_spec(), data, optimizer=optax.adam(1e-3), match_iou=0.5, ignore_iou=0.4,
                  zoom=(0.5, 2.0), zoom_probability=1.0, color_jitter=0.3, noise_std=0.1)
  params, batch_stats = task.init(jax.random.key(0))
  batch = data.get_batch(np.arange(4))
  loss = jax.jit(lambda k: task.loss_fn(params, batch_stats, batch, k)[0])
  a, b, c = loss(jax.random.key(1)), loss(jax.random.key(1)), loss(jax.random.key(2))
  assert np.isfinite(a) and float(a) == float(b) and float(a) != float(c)
  plain = ssd_task(_spec(), data, optimizer=optax.adam(1e-3), match_iou=0.5)
  p1 = jax.jit(lambda k: plain.loss_fn(params, batch_stats, batch, k)[0])
  assert float(p1(jax.random.key(1))) == float(p1(jax.random.key(2)))  # no augmentation


@pytest.mark.parametrize("kw, match", [({"color_jitter": 1.0}, "color_jitter"),
                                       ({"noise_std": -0.1}, "noise_std")])
def test_bad_augmentation_arguments(kw, match):
  with pytest.raises(ValueError, match=match):
    ssd_task(_spec(), _data(), optimizer=optax.adam(1e-3), **kw)
