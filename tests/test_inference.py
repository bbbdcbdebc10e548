"""Detector and Segmenter (jaxvision.inference): any input size, batches, saving, evaluation.

Randomly initialised tiny models: the properties checked (boxes mapped back to the input's
pixels, batch / single / list agreement, uint8 vs float, round trips, evaluation equal to
the metrics of the detections) do not need a trained model."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxvision import metrics
from jaxvision.inference import (Detector, DetectorSpec, Segmenter, SegmenterSpec, batches,
                                 build_model, diagnose_detector, evaluate_detector,
                                 evaluate_segmenter, ground_truth_lists)
from jaxvision.tasks import model_init


def _variables(spec):
  model = build_model(spec.model, spec.num_classes)
  # The rbg key compiles these conv nets' init ~10x faster than threefry (jaxvision.tasks).
  params, batch_stats = model_init(model, spec.image_size)(jax.random.key(0))
  return {"params": params, "batch_stats": batch_stats}


@pytest.fixture(scope="module")
def detector():
  spec = DetectorSpec(model="SSDTiny", num_classes=4, image_size=(48, 64),
                      class_names=("background", "a", "b", "c"), score_threshold=0.0,
                      max_detections=8)
  return Detector(spec, _variables(spec))


@pytest.fixture(scope="module")
def segmenter():
  spec = SegmenterSpec(model="FCNTiny", num_classes=3, image_size=(32, 40))
  return Segmenter(spec, _variables(spec))


def _noise(shape, seed=0):
  return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _padded_records(rng, num, *, image_seed):
  """Noise images with ``num[i]`` random boxes of classes 1-3 each, padded to 3 rows."""
  n = len(num)
  boxes = np.zeros((n, 3, 4), np.float32)
  classes = np.zeros((n, 3), np.int32)
  for i in range(n):
    for j in range(num[i]):
      x, y = rng.uniform(0, 40), rng.uniform(0, 30)
      boxes[i, j] = [x, y, x + rng.uniform(8, 24), y + rng.uniform(8, 18)]
      classes[i, j] = rng.integers(1, 4)
  return {"image": _noise((n, 48, 64, 3), image_seed), "boxes": boxes, "classes": classes,
          "num_boxes": num}


def test_boxes_are_in_the_input_images_pixels(detector):
  big = _noise((96, 128, 3)).astype(np.float32) / 255
  small = jax.image.resize(jnp.asarray(big)[None], (1, 48, 64, 3), "linear", antialias=True)
  d_big, d_small = detector(big), detector(small[0])
  n = int(d_small.num_valid)
  assert n > 0 and int(d_big.num_valid) == n
  np.testing.assert_array_equal(d_big.classes, d_small.classes)
  np.testing.assert_allclose(d_big.scores, d_small.scores, rtol=1e-4)
  np.testing.assert_allclose(d_big.boxes[:n], 2 * np.asarray(d_small.boxes[:n]), rtol=1e-4,
                             atol=1e-3)


def test_single_batch_list_and_dtypes_agree(detector):
  a, b = _noise((48, 64, 3), 1), _noise((30, 50, 3), 2)
  batch = detector(np.stack([a, a]))
  single = detector(a)
  assert batch.boxes.shape == (2, 8, 4) and single.boxes.shape == (8, 4)
  for x, y in zip(single, batch):  # another batch size: another conv order, an ulp apart
    np.testing.assert_allclose(x, y[1], rtol=1e-5, atol=1e-5)
  as_float = detector(a.astype(np.float32) / 255)
  for x, y in zip(single, as_float):
    np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5)
  listed = detector([a, b])
  for i, im in enumerate((a, b)):
    for x, y in zip(listed, detector(im)):
      np.testing.assert_array_equal(x[i], y)
  valid = np.arange(8) < np.asarray(single.num_valid)
  assert np.all((np.asarray(single.classes) >= 1) == valid)  # never background, -1 padding
  assert np.all(np.asarray(single.boxes)[~valid] == 0)


def test_detect_pads_the_last_batch(detector):
  images = _noise((5, 48, 64, 3), 3)
  out = detector.detect(images, batch_size=2)
  assert len(out) == 5
  for im, d in zip(images, out):
    ref = detector(im)
    k = int(ref.num_valid)
    np.testing.assert_array_equal(d["classes"], ref.classes[:k])
    np.testing.assert_allclose(d["boxes"], ref.boxes[:k], rtol=1e-5)


def test_save_load_round_trip_and_wrong_kind(detector, tmp_path):
  path = detector.save(tmp_path / "det.msgpack")
  again = Detector.load(path)
  assert again.spec == detector.spec and again.class_names[1] == "a"
  image = _noise((48, 64, 3), 4)
  for x, y in zip(detector(image), again(image)):
    np.testing.assert_array_equal(x, y)
  with pytest.raises(ValueError, match="detector.*SSDTiny"):
    Segmenter.load(path)


def test_bad_inputs_name_the_argument(detector):
  with pytest.raises(TypeError, match="images"):
    detector(np.zeros((48, 64, 3), np.int32))
  with pytest.raises(ValueError, match="images"):
    detector(np.zeros((48, 64), np.uint8))
  with pytest.raises(ValueError, match="images"):
    detector(np.zeros((48, 64, 4), np.uint8))
  with pytest.raises(ValueError, match="images"):
    detector([])
  with pytest.raises(ValueError, match="score_threshold"):
    detector(np.zeros((48, 64, 3), np.uint8), score_threshold=1.5)
  with pytest.raises(ValueError, match="batch_size"):
    detector.detect(np.zeros((2, 48, 64, 3), np.uint8), batch_size=0)


def test_spec_validation():
  with pytest.raises(ValueError, match="nms"):
    DetectorSpec(model="SSDTiny", num_classes=3, image_size=(48, 64), nms="book")
  with pytest.raises(ValueError, match="nms_iou"):
    DetectorSpec(model="SSDTiny", num_classes=3, image_size=(48, 64), nms_iou=2.0)
  with pytest.raises(ValueError, match="class_names"):
    DetectorSpec(model="SSDTiny", num_classes=3, image_size=(48, 64), class_names=("x",))
  with pytest.raises(ValueError, match="image_size"):
    SegmenterSpec(model="FCNTiny", num_classes=3, image_size=(0, 4))
  with pytest.raises(ValueError, match="unknown model"):
    build_model("NoSuchNet", 3)
  spec = DetectorSpec(model="SSDTiny", num_classes=3, image_size=[48, 64],
                      anchor_sizes=[[0.2, 0.3]] * 3)
  assert DetectorSpec.from_dict(spec.to_dict()) == spec
  assert spec.class_names == ("background", "1", "2")


def test_wrong_variables_are_refused():
  spec = DetectorSpec(model="SSDTiny", num_classes=4, image_size=(48, 64))
  other = DetectorSpec(model="SSDTiny", num_classes=5, image_size=(48, 64))
  with pytest.raises(ValueError, match="do not fit SSDTiny"):
    Detector(spec, _variables(other))


def test_evaluate_detector_equals_the_metrics_of_its_detections(detector):
  rng = np.random.default_rng(5)
  n = 5
  data = _padded_records(rng, rng.integers(1, 4, n).astype(np.int32), image_seed=6)
  got = evaluate_detector(detector, data, batch_size=2)
  dets = detector.detect(data["image"], batch_size=2)
  truth = ground_truth_lists(data)
  assert got["num_images"] == n
  assert got["miou"] == pytest.approx(metrics.detection_summary(dets, truth)["miou"])
  low = detector.detect(data["image"], score_threshold=0.05)
  voc = metrics.average_precision_voc(low, truth, iou_threshold=0.5)["map"]
  assert got["map50"] == pytest.approx(float(voc))


def test_segmenter_masks_at_the_input_size(segmenter):
  a, b = _noise((32, 40, 3), 7), _noise((50, 70, 3), 8)
  logits = segmenter.model.apply(segmenter.variables, jnp.asarray(a)[None] / 255.0,
                                 train=False)
  np.testing.assert_array_equal(segmenter(a), np.argmax(logits[0], axis=-1))
  assert segmenter(b).shape == (50, 70) and segmenter(b).dtype == jnp.int32
  listed = segmenter([a, b])
  np.testing.assert_array_equal(listed[1], segmenter(b))
  np.testing.assert_array_equal(segmenter.segment(np.stack([a] * 3), batch_size=2),
                                np.stack([segmenter(a)] * 3))


def test_evaluate_segmenter_on_its_own_predictions_is_perfect(segmenter, tmp_path):
  images = _noise((3, 32, 40, 3), 9)
  masks = segmenter.segment(images)
  got = evaluate_segmenter(segmenter, {"image": images, "mask": masks}, batch_size=2)
  assert got["miou"] == pytest.approx(1.0) and got["pixel_accuracy"] == pytest.approx(1.0)
  again = Segmenter.load(segmenter.save(tmp_path / "seg.msgpack"))
  np.testing.assert_array_equal(again.segment(images), masks)


def test_batches_pad_with_zeros():
  out = list(batches(np.arange(5 * 2).reshape(5, 2) + 1, 2))
  assert [k for _, k in out] == [2, 2, 1]
  assert out[-1][0].tolist() == [[9, 10], [0, 0]]


def test_dense_outputs_agree_with_the_detections(detector):
  images = _noise((2, 48, 64, 3), 9)
  probs, boxes = detector.dense_outputs(images)
  assert probs.shape == (2, detector.anchors.shape[0], 4) and boxes.shape[-1] == 4
  np.testing.assert_allclose(np.asarray(probs).sum(-1), 1.0, rtol=1e-5)
  det = detector(images)
  # The top detection is the anchor with the highest non-background probability.
  best = np.asarray(probs)[0, :, 1:].max(-1)
  assert float(det.scores[0, 0]) == pytest.approx(float(best.max()), rel=1e-5)
  np.testing.assert_allclose(det.boxes[0, 0], np.asarray(boxes)[0, best.argmax()], rtol=1e-4,
                             atol=1e-3)
  # At another input size the boxes are in that size's pixels: the model sees the image
  # resized to its input, and the boxes come back scaled by 2.
  big = np.random.default_rng(4).uniform(size=(2, 96, 128, 3)).astype(np.float32)
  small = np.asarray(jax.image.resize(jnp.asarray(big), (2, 48, 64, 3), "linear",
                                     antialias=True))
  _, boxes_big = detector.dense_outputs(big)
  _, boxes_small = detector.dense_outputs(small)
  np.testing.assert_allclose(np.asarray(boxes_big), 2 * np.asarray(boxes_small), rtol=1e-4,
                             atol=1e-3)
  with pytest.raises(ValueError, match="one array"):
    detector.dense_outputs([images[0], images[1, :40]])


def test_diagnose_detector_accounts_for_every_box(detector):
  n = 4
  num = np.array([1, 3, 2, 2], np.int32)
  data = _padded_records(np.random.default_rng(2), num, image_seed=3)
  boxes = data["boxes"]
  d = diagnose_detector(detector, data, batch_size=3, match_iou=0.5)
  total = int(num.sum())
  assert d["num_images"] == n
  for k in ("classes", "size_bucket", "best_anchor_iou", "positives", "reason", "found"):
    assert len(d[k]) == total, k
  assert set(d["reason"]) <= {"found", *metrics.MISS_REASONS}
  assert np.array_equal(d["reason"] == "found", d["found"])
  found = np.concatenate(metrics.ground_truth_found(detector.detect(data["image"]),
                                                    ground_truth_lists(data)))
  np.testing.assert_array_equal(d["found"], found)
  cov = metrics.anchor_coverage(detector.anchors, boxes[1, :3], match_iou=0.5)
  np.testing.assert_allclose(d["best_anchor_iou"][1:4], cov["best_iou"], rtol=1e-6)
