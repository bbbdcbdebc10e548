"""Faster R-CNN (``jaxvision.models.faster_rcnn``): anchors by hand, proposals, sampling and
targets against NumPy loops and properties, a tiny model's training step lowering the loss,
detection shapes under jit, and the Detector path."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings, strategies as st

from jaxvision import models, ops
from jaxvision.inference import Detector, DetectorSpec
from jaxvision.models import faster_rcnn as fr
from jaxvision.reference import boxes as ref_boxes


def test_rpn_anchors_by_hand_and_order():
  a = fr.rpn_anchors((4, 8), (2, 2), sizes=[2, 4], aspect_ratios=[1, 4])
  assert a.shape == (2 * 2 * 4, 4) and a.dtype == np.float32
  # Point (0, 0) is centred at (2, 1); sizes outer, ratios inner.
  np.testing.assert_allclose(a[:4], [[1, 0, 3, 2], [0, 0.5, 4, 1.5], [0, -1, 4, 3],
                                     [-2, 0, 6, 2]])
  # Point (0, 1) (row-major) is centred at (6, 1); point (1, 0) at (2, 3).
  np.testing.assert_allclose(a[4], [5, 0, 7, 2])
  np.testing.assert_allclose(a[8], [1, 2, 3, 4])
  w, h = a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]
  np.testing.assert_allclose(w * h, np.tile([4, 4, 16, 16], 4), rtol=1e-6)


@pytest.mark.parametrize("kwargs, match", [
    (dict(sizes=[], aspect_ratios=[1]), "`sizes`"),
    (dict(sizes=[4], aspect_ratios=[0]), "`aspect_ratios`"),
    (dict(sizes=[-1], aspect_ratios=[1]), "`sizes`"),
])
def test_rpn_anchors_bad_input(kwargs, match):
  with pytest.raises(ValueError, match=match):
    fr.rpn_anchors((8, 8), (2, 2), **kwargs)


def _np_propose(obj, off, anchors, image_size, pre, post, iou):
  """NumPy loop: top-``pre`` by score, decode, clip, drop < 1 px, greedy NMS, ``post``."""
  order = np.argsort(-obj, kind="stable")[:pre]
  boxes = np.asarray(ops.decode_boxes(off[order], anchors[order], variances=(1.0, 1.0)))
  h, w = image_size
  boxes = np.stack([boxes[:, 0].clip(0, w), boxes[:, 1].clip(0, h), boxes[:, 2].clip(0, w),
                    boxes[:, 3].clip(0, h)], 1)
  ok = ((boxes[:, 2] - boxes[:, 0]) >= 1) & ((boxes[:, 3] - boxes[:, 1]) >= 1)
  kept = []
  for i in range(len(boxes)):
    if not ok[i]:
      continue
    if all(ref_boxes.box_iou(boxes[i:i + 1], boxes[j:j + 1])[0, 0] <= iou for j in kept):
      kept.append(i)
    if len(kept) == post:
      break
  return boxes[kept]


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_propose_matches_a_numpy_loop(seed):
  rng = np.random.default_rng(seed)
  anchors = fr.rpn_anchors((32, 48), (4, 6), sizes=[8, 16], aspect_ratios=[1, 0.5])
  obj = rng.normal(size=(2, len(anchors))).astype(np.float32)
  off = (rng.normal(size=(2, len(anchors), 4)) * 0.3).astype(np.float32)
  boxes, valid = jax.jit(lambda o, d: fr.propose(o, d, jnp.asarray(anchors), image_size=(32, 48),
                                                  pre_nms_top_n=40, num_proposals=12,
                                                  nms_iou=0.5))(obj, off)
  for b in range(2):
    want = _np_propose(obj[b], off[b], anchors, (32, 48), 40, 12, 0.5)
    n = int(valid[b].sum())
    assert n == len(want) and valid[b][:n].all()
    np.testing.assert_allclose(boxes[b, :n], want, atol=1e-4)
    np.testing.assert_array_equal(boxes[b, n:], 0.0)
    assert (boxes[b, :, 2] <= 48).all() and (boxes[b, :, 3] <= 32).all()


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 40), st.floats(0.1, 1.0))
def test_sample_balanced_properties(seed, num, fraction):
  rng = np.random.default_rng(seed)
  positive = rng.uniform(size=(3, 50)) < rng.uniform(0, 0.5)
  negative = ~positive & (rng.uniform(size=(3, 50)) < 0.7)
  pos, neg = fr.sample_balanced(jnp.asarray(positive), jnp.asarray(negative),
                                jax.random.key(seed % 1000), num=num, positive_fraction=fraction)
  pos, neg = np.asarray(pos), np.asarray(neg)
  cap = int(num * fraction)
  for b in range(3):
    assert not (pos[b] & ~positive[b]).any() and not (neg[b] & ~negative[b]).any()
    assert pos[b].sum() == min(positive[b].sum(), cap)
    assert neg[b].sum() == min(negative[b].sum(), num - pos[b].sum())


def test_sample_balanced_is_uniform_among_positives():
  positive = jnp.ones((1, 10), bool)
  counts = np.zeros(10)
  for i in range(300):
    pos, _ = fr.sample_balanced(positive, ~positive, jax.random.key(i), num=4,
                                positive_fraction=0.5)
    counts += np.asarray(pos[0])
  # Each of the 10 is kept with probability 2/10: 60 of 300 expected (sd ~7).
  assert counts.sum() == 600 and counts.min() > 30 and counts.max() < 90


def test_rpn_targets_thresholds():
  anchors = jnp.array([[0.0, 0, 10, 10], [0, 0, 10, 8], [0, 0, 10, 4], [20, 20, 30, 30],
                       [0, 0, 10, 6]])
  boxes = jnp.array([[[0.0, 0, 10, 10], [0, 0, 0, 0]]])
  pos, neg, off = fr.rpn_targets(anchors, boxes, jnp.array([1]))
  # IoUs 1, 0.8, 0.4, 0, 0.6: >= 0.7 positive; < 0.3 negative; 0.4 and 0.6 ignored.
  np.testing.assert_array_equal(pos[0], [True, True, False, False, False])
  np.testing.assert_array_equal(neg[0], [False, False, False, True, False])
  np.testing.assert_allclose(off[0, 0], 0.0, atol=1e-6)
  # Centre y 5 vs 4 over the anchor height 8; log(10 / 8) in height.
  np.testing.assert_allclose(off[0, 1], [0, 1 / 8, 0, np.log(10 / 8)], atol=1e-6)


def test_sample_rois_labels_offsets_and_ground_truth_included():
  proposals = jnp.array([[[0.0, 0, 10, 10], [0, 0, 10, 4], [30, 30, 40, 40], [0, 0, 0, 0]]])
  valid = jnp.array([[True, True, True, False]])
  boxes = jnp.array([[[0.0, 0, 10, 9], [50, 50, 60, 60]]])
  classes = jnp.array([[3, 7]])
  s = fr.sample_rois(proposals, valid, boxes, classes, jnp.array([1]), jax.random.key(0),
                     rois_per_image=6, positive_fraction=0.5)
  rois, labels, weight = (np.asarray(s[k][0]) for k in ("rois", "labels", "weight"))
  # Eligible: 3 valid proposals + 1 real GT (the padded GT row is out). Foreground (IoU >= 0.5
  # with GT 0): proposal 0 (0.9) and the GT itself -> 2 <= cap 3; background: proposals 1
  # (IoU 40 / 90) and 2 (0).
  assert weight.sum() == 4 and (labels > 0).sum() == 2
  assert set(labels[labels > 0].tolist()) == {3}
  fg_rois = rois[labels > 0].tolist()
  assert [0, 0, 10, 10] in fg_rois and [0, 0, 10, 9] in fg_rois
  i = fg_rois.index([0, 0, 10, 10])
  want = ops.encode_boxes(jnp.array([[0.0, 0, 10, 9]]), jnp.array([[0.0, 0, 10, 10]]),
                          variances=fr.BOX_VARIANCES)
  np.testing.assert_allclose(np.asarray(s["offsets"][0])[labels > 0][i], want[0], atol=1e-6)
  assert (labels[(weight > 0) & (labels == 0)] == 0).all()


@pytest.fixture(scope="module")
def tiny():
  model = models.FasterRCNNTiny(num_classes=4)
  x = jnp.zeros((2, 48, 64, 3))
  init = jax.jit(lambda key, x: model.init(key, x, train=False))  # eager flax calls are slow
  return model, init(jax.random.key(0, impl="rbg"), x)


def _scene(rng):
  images = rng.uniform(0, 0.2, size=(2, 48, 64, 3)).astype(np.float32)
  boxes = np.array([[[5, 5, 17, 29], [30, 10, 50, 40]], [[10, 10, 30, 40], [0, 0, 0, 0]]],
                   np.float32)
  for b, (x1, y1, x2, y2) in ((0, boxes[0, 0]), (0, boxes[0, 1]), (1, boxes[1, 0])):
    images[b, int(y1):int(y2), int(x1):int(x2)] = 0.9
  return (jnp.asarray(images), jnp.asarray(boxes), jnp.array([[1, 2], [3, 0]]),
          jnp.array([2, 1]))


def test_shapes_and_jit(tiny):
  model, variables = tiny
  out = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, jnp.zeros((2, 48, 64, 3)))
  a = 12 * 16 * 4  # stride-4 map of 48 x 64, 2 sizes x 2 ratios
  assert out["objectness"].shape == (2, a) and out["rpn_offsets"].shape == (2, a, 4)
  assert out["proposals"].shape == (2, 8, 4) and out["classes"].shape == (2, 8, 4)
  assert out["offsets"].shape == (2, 8, 4, 4)
  det = jax.jit(lambda v, x: model.apply(v, x, method="detect", score_threshold=0.0,
                                         nms_iou=0.5, max_detections=5))(
      variables, jnp.zeros((2, 48, 64, 3)))
  assert [d.shape for d in det] == [(2, 5, 4), (2, 5), (2, 5), (2,)]
  boxes, scores, classes, count = (np.asarray(d) for d in det)
  for b in range(2):
    n = int(count[b])
    assert (classes[b, :n] >= 1).all() and (classes[b, n:] == -1).all()
    assert (np.diff(scores[b, :n]) <= 0).all() and (scores[b, n:] == 0).all()
    assert (boxes[b, :, 0] >= 0).all() and (boxes[b, :, 2] <= 64).all()


def test_a_training_step_lowers_the_loss_and_gradients_are_finite(tiny):
  model, variables = tiny
  images, boxes, classes, num = _scene(np.random.default_rng(0))
  opt = optax.adam(3e-3)

  def loss(params, bs, key):
    return fr.losses(model, params, bs, images, boxes, classes, num, key, rpn_batch=32,
                     rois_per_image=8)

  @jax.jit
  def step(params, bs, st, key):
    (l, (parts, bs)), g = jax.value_and_grad(loss, has_aux=True)(params, bs, key)
    u, st = opt.update(g, st, params)
    finite = jnp.all(jnp.stack([jnp.isfinite(x).all() for x in jax.tree.leaves(g)]))
    return optax.apply_updates(params, u), bs, st, l, parts, finite

  params, bs = variables["params"], variables["batch_stats"]
  st = jax.jit(opt.init)(params)
  first = None
  for i in range(12):
    params, bs, st, l, parts, finite = step(params, bs, st, jax.random.key(i))
    assert bool(finite)  # every gradient leaf
    first = float(l) if first is None else first
  assert set(parts) == {"rpn_objectness", "rpn_box", "classification", "box", "num_foreground"}
  assert float(parts["num_foreground"]) >= 1  # the ground truth boxes are always ROIs
  assert float(l) < 0.8 * first


def test_detector_path_saves_loads_and_detects(tiny, tmp_path):
  model, variables = tiny
  spec = DetectorSpec(model="FasterRCNNTiny", num_classes=4, image_size=(48, 64),
                      nms="per_class", score_threshold=0.0, nms_iou=0.5, max_detections=6)
  det = Detector(spec, variables)
  assert det.end_to_end and not det.has_masks
  with pytest.raises(ValueError, match="no mask head"):
    det.detect_instances(np.zeros((1, 48, 64, 3), np.uint8))
  det.save(tmp_path / "w.msgpack")
  again = Detector.load(tmp_path / "w.msgpack")
  image = np.random.default_rng(1).integers(0, 255, (96, 128, 3), dtype=np.uint8)
  a, b = det(image), again(image)
  np.testing.assert_array_equal(a.boxes, b.boxes)
  assert a.boxes.shape == (6, 4) and int(a.num_valid) > 0
  assert float(a.boxes[:, 2].max()) > 64  # mapped back to the 128-wide input
  with pytest.raises(ValueError, match="detects itself"):
    det.dense_outputs(image)
  with pytest.raises(ValueError, match="detects itself"):
    _ = det.anchors


def test_bad_num_classes():
  model = models.FasterRCNNTiny(num_classes=1)
  with pytest.raises(ValueError, match="`num_classes`"):
    model.init(jax.random.key(0, impl="rbg"), jnp.zeros((1, 48, 64, 3)), train=False)


def test_faster_rcnn_task_loss_and_bad_arguments(tiny):
  from jaxvision.data import ArraySource
  from jaxvision.tasks import faster_rcnn_task
  model, variables = tiny
  images, boxes, classes, num = _scene(np.random.default_rng(0))
  data = ArraySource({"image": np.asarray(images * 255, np.uint8), "boxes": np.asarray(boxes),
                      "classes": np.asarray(classes), "num_boxes": np.asarray(num)})
  spec = DetectorSpec(model="FasterRCNNTiny", num_classes=4, image_size=(48, 64),
                      nms="per_class")
  task = faster_rcnn_task(spec, data, optimizer=optax.adam(1e-3), rpn_batch=32,
                          rois_per_image=8, zoom=(0.8, 1.25), color_jitter=0.2)
  batch = next(iter(task.train_iter(0, 2)))
  loss, (parts, stats) = jax.jit(task.loss_fn)(variables["params"], variables["batch_stats"],
                                               batch, jax.random.key(1))
  assert np.isfinite(float(loss)) and float(parts["num_foreground"]) >= 1
  for kwargs, match in ((dict(rpn_batch=0), "`rpn_batch`"),
                        (dict(positive_fraction=0.0), "`positive_fraction`"),
                        (dict(color_jitter=1.5), "`color_jitter`")):
    with pytest.raises(ValueError, match=match):
      faster_rcnn_task(spec, data, optimizer=optax.adam(1e-3), **kwargs)
  with pytest.raises(ValueError, match="FasterRCNN variant"):
    faster_rcnn_task(DetectorSpec(model="YOLOTiny", num_classes=4, image_size=(48, 64)), data,
                     optimizer=optax.adam(1e-3))
