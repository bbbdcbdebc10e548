"""Mask R-CNN (``jaxvision.models.mask_rcnn``) and the mask metrics: instance maps, mask
targets and pasting by hand and against NumPy loops, mask AP against box AP, a tiny model's
training steps lowering every loss, and the Detector's instance path."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings, strategies as st

from jaxvision import metrics, models
from jaxvision.inference import Detector, DetectorSpec, evaluate_detector
from jaxvision.inference import _has_field  # pylint: disable=protected-access
from jaxvision.models import mask_rcnn


def test_instance_masks_by_hand():
  semantic = np.zeros((1, 4, 6), np.int32)
  semantic[0, :, :3] = 2
  semantic[0, 1:3, 3:] = 5
  boxes = jnp.array([[[0.0, 0, 2, 4], [1, 0, 6, 2], [0, 0, 0, 0]]])
  classes = jnp.array([[2, 5, 0]])
  inst = np.asarray(mask_rcnn.instance_masks(jnp.asarray(semantic), boxes, classes))
  assert inst.shape == (1, 4, 6, 3)
  want0 = np.zeros((4, 6)); want0[:, :2] = 1  # class 2 inside x < 2
  want1 = np.zeros((4, 6)); want1[1, 3:] = 1  # class 5 inside y < 2
  np.testing.assert_array_equal(inst[0, ..., 0], want0)
  np.testing.assert_array_equal(inst[0, ..., 1], want1)
  np.testing.assert_array_equal(inst[0, ..., 2], 0)  # padding


def test_mask_targets_of_the_box_itself_and_of_a_shifted_roi():
  inst = np.zeros((1, 16, 16, 1), np.float32)
  inst[0, 4:12, 4:8] = 1  # left half of the box (4, 4, 12, 12)
  rois = jnp.array([[[4.0, 4, 12, 12], [8, 4, 16, 12]]])
  t = np.asarray(mask_rcnn.mask_targets(jnp.asarray(inst), rois, jnp.zeros((1, 2), jnp.int32),
                                        4))
  np.testing.assert_array_equal(t[0, 0], [[1, 1, 0, 0]] * 4)
  np.testing.assert_array_equal(t[0, 1], 0)  # the ROI right of the instance


def _np_paste(mask, box, h, w):
  m = mask.shape[0]
  out = np.zeros((h, w))
  for y in range(h):
    for x in range(w):
      cx, cy = x + 0.5, y + 0.5
      if not (box[0] <= cx < box[2] and box[1] <= cy < box[3]):
        continue
      u = min(max((cx - box[0]) / (box[2] - box[0]) * m - 0.5, 0), m - 1)
      v = min(max((cy - box[1]) / (box[3] - box[1]) * m - 0.5, 0), m - 1)
      u0, v0 = int(np.floor(u)), int(np.floor(v))
      u1, v1 = min(u0 + 1, m - 1), min(v0 + 1, m - 1)
      fu, fv = u - u0, v - v0
      out[y, x] = ((1 - fv) * ((1 - fu) * mask[v0, u0] + fu * mask[v0, u1])
                   + fv * ((1 - fu) * mask[v1, u0] + fu * mask[v1, u1]))
  return out


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_paste_masks_matches_a_numpy_loop(seed):
  rng = np.random.default_rng(seed)
  masks = rng.uniform(size=(1, 3, 5, 5)).astype(np.float32)
  xy = rng.uniform(-4, 14, size=(1, 3, 2))
  boxes = np.concatenate([xy, xy + rng.uniform(1, 10, size=(1, 3, 2))], -1).astype(np.float32)
  got = np.asarray(mask_rcnn.paste_masks(jnp.asarray(masks), jnp.asarray(boxes), (12, 16),
                                         threshold=None))
  for k in range(3):
    np.testing.assert_allclose(got[0, k], _np_paste(masks[0, k], boxes[0, k], 12, 16),
                               atol=1e-5)
  hard = mask_rcnn.paste_masks(jnp.asarray(masks), jnp.asarray(boxes), (12, 16))
  assert hard.dtype == jnp.bool_
  np.testing.assert_array_equal(hard, got > 0.5)


def test_mask_iou_and_mask_ap_equal_box_ap_for_filled_boxes():
  a = np.zeros((2, 4, 4), bool); a[0, :2, :2] = True; a[1] = True
  np.testing.assert_allclose(metrics.mask_iou(a, a[:1]), [[1.0], [0.25]])
  rng = np.random.default_rng(0)
  preds, gts, mpreds, mgts = [], [], [], []

  def fill(boxes):
    m = np.zeros((len(boxes), 20, 20), bool)
    for i, (x1, y1, x2, y2) in enumerate(boxes.astype(int)):
      m[i, y1:y2, x1:x2] = True
    return m

  for _ in range(6):
    g = rng.integers(0, 10, size=(3, 2))
    gb = np.concatenate([g, g + rng.integers(3, 10, (3, 2))], 1)
    p = gb + rng.integers(-2, 3, size=gb.shape)
    p[:, 2:] = np.maximum(p[:, 2:], p[:, :2] + 1)
    gb, p = np.clip(gb, 0, 20), np.clip(p, 0, 20)
    gc, pc, ps = rng.integers(1, 3, 3), rng.integers(1, 3, 3), rng.uniform(size=3)
    gts.append({"boxes": gb, "classes": gc})
    preds.append({"boxes": p, "classes": pc, "scores": ps})
    mgts.append({"masks": fill(gb), "classes": gc})
    mpreds.append({"masks": fill(p), "classes": pc, "scores": ps})
  box = metrics.average_precision_voc(preds, gts)
  mask = metrics.mask_average_precision(mpreds, mgts)
  assert mask["map"] == pytest.approx(box["map"]) and 0 < mask["map"] < 1
  with pytest.raises(ValueError, match="masks"):
    metrics.mask_average_precision([{"masks": np.zeros((4, 4)), "classes": [1], "scores": [1]}],
                                   mgts[:1])


@pytest.fixture(scope="module")
def tiny():
  model = models.MaskRCNNTiny(num_classes=4)
  x = jnp.zeros((2, 48, 64, 3))
  init = jax.jit(lambda key, x: model.init(key, x, train=False))  # eager flax calls are slow
  return model, init(jax.random.key(0, impl="rbg"), x)


def _scene():
  rng = np.random.default_rng(0)
  images = rng.uniform(0, 0.2, size=(2, 48, 64, 3)).astype(np.float32)
  semantic = np.zeros((2, 48, 64), np.int32)
  boxes = np.array([[[5, 5, 17, 29], [30, 10, 50, 40]], [[10, 10, 30, 40], [0, 0, 0, 0]]],
                   np.float32)
  classes = np.array([[1, 2], [3, 0]])
  for b, g in ((0, 0), (0, 1), (1, 0)):
    x1, y1, x2, y2 = boxes[b, g].astype(int)
    images[b, y1:y2, x1:(x1 + x2) // 2] = 0.9  # the left half of each box is the object
    semantic[b, y1:y2, x1:(x1 + x2) // 2] = classes[b, g]
  return images, semantic, boxes, classes, np.array([2, 1])


def test_training_steps_lower_every_loss(tiny):
  model, variables = tiny
  images, semantic, boxes, classes, num = (jnp.asarray(a) for a in _scene())
  opt = optax.adam(3e-3)

  def loss(params, bs, key):
    return mask_rcnn.losses(model, params, bs, images, boxes, classes, num, semantic, key,
                            rpn_batch=32, rois_per_image=8)

  @jax.jit
  def step(params, bs, st, key):
    (l, (parts, bs)), g = jax.value_and_grad(loss, has_aux=True)(params, bs, key)
    u, st = opt.update(g, st, params)
    return optax.apply_updates(params, u), bs, st, parts

  params, bs = variables["params"], variables["batch_stats"]
  st = opt.init(params)
  history = []
  for i in range(15):
    params, bs, st, parts = step(params, bs, st, jax.random.key(i))
    history.append({k: float(v) for k, v in parts.items()})
  assert set(history[0]) == {"rpn_objectness", "rpn_box", "classification", "box",
                             "num_foreground", "mask"}
  assert history[0]["mask"] == pytest.approx(np.log(2), abs=0.05)  # logits start near 0
  assert history[-1]["mask"] < 0.8 * history[0]["mask"]
  assert history[-1]["classification"] < history[0]["classification"]


def test_detect_masks_detector_and_evaluation(tiny, tmp_path):
  model, variables = tiny
  out = jax.jit(lambda v, x: model.apply(v, x, method="detect_masks", score_threshold=0.0,
                                         nms_iou=0.5, max_detections=5))(
      variables, jnp.zeros((2, 48, 64, 3)))
  assert [a.shape for a in out] == [(2, 5, 4), (2, 5), (2, 5), (2,), (2, 5, 8, 8)]
  masks, classes = np.asarray(out[4]), np.asarray(out[2])
  assert ((masks >= 0) & (masks <= 1)).all() and (masks[classes < 0] == 0).all()
  spec = DetectorSpec(model="MaskRCNNTiny", num_classes=4, image_size=(48, 64), nms="per_class",
                      score_threshold=0.0, max_detections=5)
  det = Detector(spec, variables)
  assert det.has_masks and det.end_to_end
  images, semantic, boxes, classes, num = _scene()
  u8 = (images * 255).astype(np.uint8)
  inst = det.detect_instances(np.repeat(u8, 2, axis=1), batch_size=2)  # 96 x 64 inputs
  assert inst[0]["masks"].shape == (len(inst[0]["boxes"]), 96, 64)
  data = {"image": u8, "boxes": boxes, "classes": classes, "num_boxes": num, "mask": semantic}
  ev = evaluate_detector(det, data, batch_size=2)
  assert 0 <= ev["mask_map50"] <= 1 and 0 <= ev["map50"] <= 1
  # Without a "mask" field the evaluation is the box one (evaluate_detector's other path,
  # covered by the SSD tests); what decides it:
  assert not _has_field({k: v for k, v in data.items() if k != "mask"}, "mask")
  assert _has_field(data, "mask")
