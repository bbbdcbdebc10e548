"""Tests of the SSD detector (``jaxvision.models.ssd``).

Shapes are traced with ``jax.eval_shape`` (the book-sized model is never run): the heads
give one row per anchor of ``ops.ssd_anchors(image, feature_shapes(model, image))``, in the
anchors' order. The tiny variant runs for real: a few Adam steps on one fixed batch must lower
``ops.ssd_loss``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxvision import models, ops
from jaxvision.models import ssd as ssd_lib
from tests.models._variables import random_variables

_KEY = jax.random.key(0)


def _outputs(model, image_shape, batch=2, **kw):
  x = jax.ShapeDtypeStruct((batch,) + tuple(image_shape) + (3,), jnp.float32)

  def run(x):
    variables = model.init(_KEY, x, train=False)
    return model.apply(variables, x, train=False, **kw)

  return jax.eval_shape(run, x)


@pytest.mark.parametrize("image", [(48, 64), (40, 40), (37, 53)], ids=str)
@pytest.mark.parametrize("num_classes", [2, 11])
def test_tiny_outputs_match_the_anchors(image, num_classes):
  model = models.SSDTiny(num_classes=num_classes)
  shapes = models.feature_shapes(model, image)
  assert len(shapes) == 3  # SSDTiny has three levels
  anchors = ops.ssd_anchors(image, shapes)
  num_anchors = anchors.shape[0]
  assert num_anchors == 4 * sum(h * w for h, w in shapes)
  out = _outputs(model, image, return_pyramid=True)
  assert out["classes"].shape == (2, num_anchors, num_classes)
  assert out["offsets"].shape == (2, num_anchors, 4)
  assert out["classes"].dtype == out["offsets"].dtype == jnp.float32
  assert [tuple(p.shape[1:3]) for p in out["pyramid"]] == shapes
  assert [p.shape[-1] for p in out["pyramid"]] == [32, 16, 16]  # backbone, pyramid_width


def test_tiny_feature_shapes():
  # Stride-2 stem, one stride-2 stage, 2x2 average pool: 1/8, then halvings (ceil).
  assert models.feature_shapes(models.SSDTiny(num_classes=3), (48, 64)) == [
      (6, 8), (3, 4), (2, 2)]
  assert models.feature_shapes(models.SSDTiny(num_classes=3), (48, 64, 3)) == [
      (6, 8), (3, 4), (2, 2)]


def test_book_feature_shapes():
  model = models.SSDBook(num_classes=11)
  shapes = models.feature_shapes(model, (480, 640))
  assert shapes == [(30, 40), (15, 20), (8, 10), (4, 5)]
  assert ops.ssd_anchors((480, 640), shapes).shape == (6400, 4)  # the book's 6400 anchors


def test_small_feature_shapes():
  shapes = models.feature_shapes(models.SSDSmall(num_classes=11), (120, 160))
  assert shapes == [(15, 20), (8, 10), (4, 5), (2, 3)]


def test_small_p2_starts_the_pyramid_at_stride_4():
  shapes = models.feature_shapes(models.SSDSmallP2(num_classes=11), (120, 160))
  assert shapes == [(30, 40), (15, 20), (8, 10), (4, 5)]
  out = _outputs(models.SSDSmallP2(num_classes=11, anchors_per_point=5), (120, 160), batch=1)
  assert out["classes"].shape == (1, 5 * sum(h * w for h, w in shapes), 11)


def test_pixel_aspect_ratios_are_square_in_pixels():
  model = models.SSDTiny(num_classes=3, anchors_per_point=3)
  kw = {"sizes": [(0.25, 0.3)] * 3, "aspect_ratios": (1.0, 0.25)}
  sides = np.asarray(ssd_lib.make_anchors(model, (48, 64), **kw))
  pixels = np.asarray(ssd_lib.make_anchors(model, (48, 64), aspect_ratio_unit="pixels", **kw))
  w = lambda a: a[:, 2] - a[:, 0]  # noqa: E731
  h = lambda a: a[:, 3] - a[:, 1]  # noqa: E731
  np.testing.assert_allclose((w(sides) / h(sides))[0:2], [64 / 48, 0.25 * 64 / 48], rtol=1e-5)
  np.testing.assert_allclose((w(pixels) / h(pixels))[0:2], [1.0, 0.25], rtol=1e-5)
  # The same area as the book's ratio-1 box of that size: sqrt(W H) s per side.
  np.testing.assert_allclose(w(pixels)[0] * h(pixels)[0], 0.25 ** 2 * 48 * 64, rtol=1e-5)
  with pytest.raises(ValueError, match="aspect_ratio_unit"):
    ssd_lib.make_anchors(model, (48, 64), aspect_ratio_unit="degrees", **kw)
  with pytest.raises(ValueError, match="anchors_per_point"):
    ssd_lib.make_anchors(model, (48, 64), aspect_ratios=(1.0, 2.0, 0.5))


def test_make_targets_ignore_band():
  anchors = jnp.array([[0., 0., 10., 10.], [0., 0., 10., 20.], [0., 0., 10., 14.],
                       [40., 40., 50., 50.]])
  boxes = jnp.array([[[0., 0., 10., 10.], [0., 0., 0., 0.]]])
  classes, n = jnp.array([[3, 0]]), jnp.array([1])
  # IoUs with the box: 1.0, 0.5, 0.714, 0.
  labels, _ = ssd_lib.make_targets(anchors, boxes, classes, n, match_iou=0.6, variances=None)
  assert labels.tolist() == [[3, 0, 3, 0]]
  labels, _ = ssd_lib.make_targets(anchors, boxes, classes, n, match_iou=0.6, variances=None,
                                   ignore_iou=0.4)
  assert labels.tolist() == [[3, -1, 3, 0]]  # 0.5 is in [0.4, 0.6): left out of the loss
  with pytest.raises(ValueError, match="ignore_iou"):
    ssd_lib.make_targets(anchors, boxes, classes, n, match_iou=0.5, variances=None,
                         ignore_iou=0.7)


def test_bfloat16_heads_return_float32():
  out = _outputs(models.SSDTiny(num_classes=5, dtype=jnp.bfloat16), (32, 32))
  assert out["classes"].dtype == out["offsets"].dtype == jnp.float32


def test_rows_follow_the_anchor_order():
  """Row ``a`` of the outputs is level ``l``, point ``(y, x)``, anchor ``k`` as in
  ``ops.ssd_anchors``: the head conv's ``[B, h, w, K * C]`` map, flattened row-major."""
  model = models.SSDTiny(num_classes=3)
  x = jax.random.uniform(jax.random.key(1), (1, 32, 48, 3))
  variables = random_variables(model, x)
  out, state = jax.jit(functools.partial(
      model.apply, train=False, capture_intermediates=True, mutable=["intermediates"]))(
          variables, x)
  inter = state["intermediates"]
  start = 0
  for level, (h, w) in enumerate(models.feature_shapes(model, (32, 48))):
    cls_map = inter[f"classes_{level}"]["__call__"][0]  # [1, h, w, 4 * 3]
    off_map = inter[f"offsets_{level}"]["__call__"][0]  # [1, h, w, 4 * 4]
    for y, xx, k in [(0, 0, 0), (h - 1, w - 1, 3), (h // 2, w - 1, 1)]:
      row = start + (y * w + xx) * 4 + k
      np.testing.assert_allclose(out["classes"][0, row], cls_map[0, y, xx, 3 * k:3 * k + 3],
                                 rtol=1e-6)
      np.testing.assert_allclose(out["offsets"][0, row], off_map[0, y, xx, 4 * k:4 * k + 4],
                                 rtol=1e-6)
    start += h * w * 4
  assert start == out["classes"].shape[1]


def test_bad_configuration_raises():
  for num_classes in (0, 1):
    with pytest.raises(ValueError, match="num_classes"):
      _outputs(models.SSDTiny(num_classes=num_classes), (32, 32))
  with pytest.raises(ValueError, match="num_levels"):
    _outputs(models.SSDTiny(num_classes=3, num_levels=0), (32, 32))


def test_a_few_adam_steps_lower_the_loss():
  model = models.SSDTiny(num_classes=4)
  image = (32, 32)
  anchors = ops.ssd_anchors(image, models.feature_shapes(model, image),
                            sizes=[(0.2, 0.3), (0.4, 0.5), (0.6, 0.8)])
  rng = np.random.default_rng(0)
  images = jnp.asarray(rng.random((2, 32, 32, 3)), jnp.float32)
  gt = jnp.array([[[4.0, 4.0, 14.0, 16.0], [16.0, 10.0, 30.0, 28.0]],
                  [[8.0, 8.0, 24.0, 24.0], [0.0, 0.0, 0.0, 0.0]]])
  gt_classes = jnp.array([[1, 3], [2, 0]])
  valid = gt_classes > 0
  matched, _ = ops.match_anchors(anchors, gt, valid, iou_threshold=0.5)
  safe = jnp.maximum(matched, 0)
  labels = jnp.where(matched >= 0, jnp.take_along_axis(gt_classes, safe, axis=1), 0)
  boxes = jnp.take_along_axis(gt, safe[..., None], axis=1)
  boxes = jnp.where((matched >= 0)[..., None], boxes, anchors)
  targets = ops.encode_boxes(boxes, anchors)
  assert int((labels > 0).sum()) >= 3

  variables = random_variables(model, images)
  params, batch_stats = variables["params"], variables["batch_stats"]
  tx = optax.adam(3e-3)
  opt_state = tx.init(params)

  @jax.jit
  def step(params, batch_stats, opt_state):
    def loss_fn(params):
      out, updates = model.apply({"params": params, "batch_stats": batch_stats}, images,
                                 train=True, mutable=["batch_stats"])
      loss, _ = ops.ssd_loss(out["classes"], out["offsets"], labels, targets,
                             localization="smooth_l1")
      return loss, updates["batch_stats"]

    (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state)
    return optax.apply_updates(params, updates), batch_stats, opt_state, loss

  losses = []
  for _ in range(8):
    params, batch_stats, opt_state, loss = step(params, batch_stats, opt_state)
    losses.append(float(loss))
  assert all(np.isfinite(losses))
  assert losses[-1] < 0.7 * losses[0], losses
