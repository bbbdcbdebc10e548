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
  params, batch_stats = jax.jit(task.init)(jax.random.key(0))   # eager flax calls are slow
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


def _seg_data(n=4, seed=0):
  rng = np.random.default_rng(seed)
  masks = np.zeros((n, 32, 40), np.uint8)
  masks[:, 8:20, 10:30] = 1
  masks[:, 22:28, 4:12] = 2
  return ArraySource({"image": rng.integers(0, 256, (n, 32, 40, 3), dtype=np.uint8),
                      "mask": masks})


def test_segmentation_losses():
  from jaxvision.inference import SegmenterSpec  # pylint: disable=import-outside-toplevel
  from jaxvision.ops import soft_dice_loss  # pylint: disable=import-outside-toplevel
  from jaxvision.tasks import pixel_cross_entropy, segmentation_task  # pylint: disable=import-outside-toplevel
  spec = SegmenterSpec(model="FCNTiny", num_classes=3, image_size=(32, 40))
  data = _seg_data()
  batch = data.get_batch([0, 1])
  values = {}
  for loss in ("ce", "ce+dice"):
    task = segmentation_task(spec, data, optimizer=optax.adam(1e-3), loss=loss)
    params, batch_stats = jax.jit(task.init)(jax.random.key(0))   # eager ops are slow
    total, (logs, _) = jax.jit(lambda p, s, b, fn=task.loss_fn: fn(p, s, b, None))(
        params, batch_stats, batch)
    values[loss] = (float(total), {k: float(x) for k, x in logs.items()})
  ce_total, ce_logs = values["ce"]
  both_total, both_logs = values["ce+dice"]
  assert np.isfinite(ce_total) and set(ce_logs) == {"pixel_accuracy"}
  # The same initial model: CE + Dice is the CE plus a Dice term in (0, 1].
  assert both_logs["cross_entropy"] == pytest.approx(ce_total, rel=1e-5)
  assert 0.0 < both_logs["dice"] <= 1.0
  assert both_total == pytest.approx(ce_total + both_logs["dice"], rel=1e-5)
  assert callable(pixel_cross_entropy) and callable(soft_dice_loss)
  with pytest.raises(ValueError, match="`loss` must be one of"):
    segmentation_task(spec, data, optimizer=optax.adam(1e-3), loss="dice")


@pytest.mark.parametrize("schedule, steps", [("book", 100), ("cosine", 100),
                                             ("warmup_cosine", 100), ("warmup_cosine", 1)])
def test_segmentation_schedules(schedule, steps):
  import dataclasses  # pylint: disable=import-outside-toplevel
  from jaxvision.tasks import SEGMENTATION_CONFIGS, segmentation_learning_rate  # pylint: disable=import-outside-toplevel
  cfg = dataclasses.replace(SEGMENTATION_CONFIGS["fcn"]["cpu"], schedule=schedule, steps=steps,
                            learning_rate=1.0)
  lr = segmentation_learning_rate(cfg)
  values = [float(lr(i)) for i in range(steps)]
  assert max(values) == pytest.approx(1.0) and all(0.0 <= v <= 1.0 for v in values)
  if schedule == "warmup_cosine" and steps == 100:
    assert values[0] == 0.0 and values[5] == pytest.approx(1.0)  # 5 warm-up steps
  with pytest.raises(ValueError, match="schedule"):
    segmentation_learning_rate(dataclasses.replace(cfg, schedule="linear"))


def test_segmentation_photometric_augmentation():
  from jaxvision.inference import SegmenterSpec  # pylint: disable=import-outside-toplevel
  from jaxvision.tasks import segmentation_task  # pylint: disable=import-outside-toplevel
  spec = SegmenterSpec(model="FCNTiny", num_classes=3, image_size=(32, 40))
  data = _seg_data()
  batch = data.get_batch([0, 1])
  task = segmentation_task(spec, data, optimizer=optax.adam(1e-3), color_jitter=0.3,
                           noise_std=0.1)
  params, batch_stats = jax.jit(task.init)(jax.random.key(0))   # eager flax calls are slow
  loss = jax.jit(task.loss_fn)
  a = float(loss(params, batch_stats, batch, jax.random.key(1))[0])
  b = float(loss(params, batch_stats, batch, jax.random.key(1))[0])
  c = float(loss(params, batch_stats, batch, jax.random.key(2))[0])
  assert np.isfinite(a) and a == b and a != c  # a function of the step's key
  plain = segmentation_task(spec, data, optimizer=optax.adam(1e-3))
  plain_loss = jax.jit(lambda p, s, b: plain.loss_fn(p, s, b, None)[0])   # no key needed
  assert np.isfinite(float(plain_loss(params, batch_stats, batch)))
  for kw in ({"color_jitter": 1.0}, {"noise_std": -0.1}):
    with pytest.raises(ValueError):
      segmentation_task(spec, data, optimizer=optax.adam(1e-3), **kw)
