"""YOLO v1-style detector (``jaxvision.models.yolo``): decoding and grid targets by hand and
against NumPy loops, the loss by hand, a tiny model's training steps lowering the loss,
detection shapes under jit and the Detector path."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings, strategies as st

from jaxvision import models
from jaxvision.inference import Detector, DetectorSpec
from jaxvision.models import yolo


def _logit(p):
  return float(np.log(p / (1 - p)))


def test_decode_by_hand():
  raw = jnp.zeros((1, 2, 4, 1, 4))
  # Cell (1, 2) of a 2 x 4 grid on a 40 x 80 image: cells are 20 x 20.
  raw = raw.at[0, 1, 2, 0].set([_logit(0.25), _logit(0.5), _logit(0.5), _logit(0.3 ** 0.5)])
  box = yolo.decode(raw, (40, 80))[0, 1, 2, 0]
  # Centre ((2 + 0.25) * 20, (1 + 0.5) * 20) = (45, 30); size (0.25 * 80, 0.3 * 40) = (20, 12).
  np.testing.assert_allclose(box, [35, 24, 55, 36], atol=1e-4)


def _np_targets(boxes, classes, num, grid, image_size):
  gh, gw = grid
  obj = np.zeros((len(boxes), gh, gw), bool)
  box = np.zeros((len(boxes), gh, gw, 4), np.float32)
  cls = np.zeros((len(boxes), gh, gw), np.int32)
  for b in range(len(boxes)):
    for g in range(num[b]):
      x1, y1, x2, y2 = boxes[b, g]
      if x2 <= x1 or y2 <= y1:
        continue
      j = min(max(int(np.floor((x1 + x2) / 2 * gw / image_size[1])), 0), gw - 1)
      i = min(max(int(np.floor((y1 + y2) / 2 * gh / image_size[0])), 0), gh - 1)
      obj[b, i, j], box[b, i, j], cls[b, i, j] = True, boxes[b, g], classes[b, g]
  return obj, box, cls


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_targets_match_a_numpy_loop(seed):
  rng = np.random.default_rng(seed)
  xy = rng.uniform(-5, 70, size=(3, 6, 2))
  wh = rng.uniform(-3, 25, size=(3, 6, 2))  # some degenerate boxes
  boxes = np.concatenate([xy, xy + wh], -1).astype(np.float32)
  classes = rng.integers(1, 5, size=(3, 6)).astype(np.int32)
  num = rng.integers(0, 7, size=3).astype(np.int32)
  t = yolo.targets(jnp.asarray(boxes), jnp.asarray(classes), jnp.asarray(num), (3, 4), (48, 64))
  obj, box, cls = _np_targets(boxes, classes, num, (3, 4), (48, 64))
  np.testing.assert_array_equal(t["object"], obj)
  np.testing.assert_allclose(t["box"], box)
  np.testing.assert_array_equal(t["class"], cls)


def test_loss_by_hand():
  # One 1 x 2 grid, one box per cell, 2 foreground classes; image 10 x 20.
  outputs = {"boxes": jnp.zeros((1, 1, 2, 1, 4)), "confidence": jnp.zeros((1, 1, 2, 1)),
             "classes": jnp.zeros((1, 1, 2, 2))}
  # GT centred in cell 0 at (5, 5), 5 x 2.5: the prediction is the centred box of the cell
  # (sigmoid 0 = 0.5), size (0.25 * 20, 0.25 * 10) = (5, 2.5): IoU 1.
  gt = jnp.array([[[2.5, 3.75, 7.5, 6.25]]])
  total, parts = yolo.loss(outputs, gt, jnp.array([[2]]), jnp.array([1]), (10, 20))
  # coord: x, y exact (0.5 vs 0.5); sqrt sizes sqrt(0.25) = 0.5 exact -> 0.
  np.testing.assert_allclose(parts["coord"], 0.0, atol=1e-10)
  np.testing.assert_allclose(parts["object"], (0.5 - 1.0) ** 2, rtol=1e-6)
  np.testing.assert_allclose(parts["no_object"], 0.5 * 0.5 ** 2, rtol=1e-6)  # cell 1
  np.testing.assert_allclose(parts["classification"], np.log(2), rtol=1e-6)
  np.testing.assert_allclose(total, sum(float(v) for v in parts.values()), rtol=1e-6)
  # Shift the GT: coord = 5 * (dx^2 + ...) with dx in cell units.
  gt2 = jnp.array([[[4.5, 3.75, 9.5, 6.25]]])  # centre x 7 -> 0.7 of cell 0
  _, p2 = yolo.loss(outputs, gt2, jnp.array([[2]]), jnp.array([1]), (10, 20))
  np.testing.assert_allclose(p2["coord"], 5 * (0.7 - 0.5) ** 2, rtol=1e-5)


@pytest.fixture(scope="module")
def tiny():
  model = models.YOLOTiny(num_classes=4)
  x = jnp.zeros((1, 48, 64, 3))
  init = jax.jit(lambda key, x: model.init(key, x, train=False))  # eager flax calls are slow
  return model, init(jax.random.key(0, impl="rbg"), x)


def test_shapes_jit_and_initial_confidence(tiny):
  model, variables = tiny
  out = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, jnp.zeros((2, 48, 64, 3)))
  assert out["boxes"].shape == (2, 6, 8, 2, 4) and out["confidence"].shape == (2, 6, 8, 2)
  assert out["classes"].shape == (2, 6, 8, 3)
  assert float(jax.nn.sigmoid(out["confidence"]).max()) < 0.05  # the 0.01 prior
  det = jax.jit(lambda v, x: model.apply(v, x, method="detect", score_threshold=0.0,
                                         nms_iou=0.5, max_detections=7))(
      variables, jnp.zeros((2, 48, 64, 3)))
  assert [d.shape for d in det] == [(2, 7, 4), (2, 7), (2, 7), (2,)]
  boxes, scores, classes, count = (np.asarray(d) for d in det)
  assert (count == 7).all() and (classes >= 1).all() and (classes <= 3).all()
  assert (np.diff(scores, axis=1) <= 0).all()


def test_training_steps_lower_the_loss(tiny):
  model, variables = tiny
  rng = np.random.default_rng(0)
  images = rng.uniform(0, 0.2, size=(2, 48, 64, 3)).astype(np.float32)
  boxes = np.array([[[5, 5, 17, 29], [30, 10, 50, 40]], [[10, 10, 30, 40], [0, 0, 0, 0]]],
                   np.float32)
  for b, g in ((0, 0), (0, 1), (1, 0)):
    x1, y1, x2, y2 = boxes[b, g].astype(int)
    images[b, y1:y2, x1:x2] = 0.9
  classes, num = jnp.array([[1, 2], [3, 0]]), jnp.array([2, 1])
  opt = optax.adam(3e-3)

  def loss(params, bs):
    out, upd = model.apply({"params": params, "batch_stats": bs}, jnp.asarray(images),
                           train=True, mutable=["batch_stats"])
    total, _ = yolo.loss(out, jnp.asarray(boxes), classes, num, (48, 64))
    return total, upd["batch_stats"]

  @jax.jit
  def step(params, bs, st):
    (l, bs), g = jax.value_and_grad(loss, has_aux=True)(params, bs)
    u, st = opt.update(g, st, params)
    return optax.apply_updates(params, u), bs, st, l

  params, bs = variables["params"], variables["batch_stats"]
  st = opt.init(params)
  losses = []
  for _ in range(15):
    params, bs, st, l = step(params, bs, st)
    losses.append(float(l))
  assert np.isfinite(losses).all() and losses[-1] < 0.7 * losses[0]


def test_detector_path(tiny, tmp_path):
  model, variables = tiny
  spec = DetectorSpec(model="YOLOTiny", num_classes=4, image_size=(48, 64), nms="per_class",
                      variances=None, score_threshold=0.0, max_detections=5)
  det = Detector(spec, variables)
  assert det.end_to_end
  det.save(tmp_path / "y.msgpack")
  image = np.random.default_rng(1).integers(0, 255, (24, 32, 3), dtype=np.uint8)
  a, b = det(image), Detector.load(tmp_path / "y.msgpack")(image)
  np.testing.assert_array_equal(a.boxes, b.boxes)
  assert int(a.num_valid) == 5 and float(a.boxes.min()) >= 0
  assert float(a.boxes[:, 0::2].max()) <= 32 and float(a.boxes[:, 1::2].max()) <= 24


def test_bad_num_classes():
  with pytest.raises(ValueError, match="`num_classes`"):
    models.YOLOTiny(num_classes=1).init(jax.random.key(0), jnp.zeros((1, 48, 64, 3)),
                                        train=False)
