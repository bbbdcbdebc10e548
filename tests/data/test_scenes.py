"""Tests of the MNIST-digit scene generator (``jaxvision.data.scenes``).

The pools are synthetic (no download, no ``/work/shared``): soft-edged blobs (the experiment
tests' ``blob_digits``) for the properties, and "ringed" digits whose ink levels are known
exactly for the ground-truth tests: with a digit size of exactly 28 pixels the patch is pasted
unresized, so the box (ink > 0.2), the mask (ink >= 0.5) and the painted pixels can be
predicted to the pixel. One test reruns the properties on the real MNIST files when they are
present (as ``tests/data/test_mnist.py``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jaxvision.data import scenes
from jaxvision.data.scenes import (CLASS_NAMES, SceneConfig, SceneSource, generate_scene,
                                   generate_scenes)
from jaxvision.viz import save_scene_preview
from tests.experiments._data import blob_digits

REAL_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mnist"

_KEYS = ("image", "boxes", "classes", "num_boxes", "mask")


def _ringed_geometry(label: int) -> tuple[int, int, int, int]:
  """Rows ``[r0, r1)`` and columns ``[c0, c1)`` of the ink (>= 0.2) of digit ``label``."""
  return 4 + label % 3, 21 + label % 4, 5 + label % 2, 19 + label % 5


def ringed_pool() -> tuple[np.ndarray, np.ndarray]:
  """One digit per label: a faint ring (40/255, below the box threshold) around a mid ring
  (100/255: box, not mask) around a solid core (255: box and mask), 2 pixels each."""
  images = np.zeros((10, 28, 28), np.uint8)
  for k in range(10):
    r0, r1, c0, c1 = _ringed_geometry(k)
    images[k, r0 - 2:r1 + 2, c0 - 2:c1 + 2] = 40
    images[k, r0:r1, c0:c1] = 100
    images[k, r0 + 2:r1 - 2, c0 + 2:c1 - 2] = 255
  return images, np.arange(10)


def _exact_config(**kw) -> SceneConfig:
  # min(H, W) = 64 and digit size 28 / 64: the 28x28 patch is pasted without resizing.
  return SceneConfig(image_size=(64, 96), digit_size=(28 / 64, 28 / 64), clutter=False, **kw)


def _valid(scene):
  n = int(scene["num_boxes"])
  return scene["boxes"][:n], scene["classes"][:n]


def check_scene(scene, config: SceneConfig):
  """The invariants every scene must satisfy."""
  h, w = config.image_size
  g = config.max_boxes
  assert scene["image"].shape == (h, w, 3) and scene["image"].dtype == np.uint8
  assert scene["mask"].shape == (h, w) and scene["mask"].dtype == np.uint8
  assert scene["boxes"].shape == (g, 4) and scene["boxes"].dtype == np.float32
  assert scene["classes"].shape == (g,) and scene["classes"].dtype == np.int32
  n = int(scene["num_boxes"])
  assert 1 <= n <= config.num_digits[1]
  boxes, classes = _valid(scene)
  assert ((classes >= 1) & (classes <= 10)).all()
  assert (scene["classes"][n:] == 0).all() and (scene["boxes"][n:] == 0).all()
  assert (boxes == np.round(boxes)).all()  # integer pixel edges
  x1, y1, x2, y2 = boxes.T
  assert (x1 >= 0).all() and (y1 >= 0).all() and (x2 <= w).all() and (y2 <= h).all()
  assert (x2 > x1).all() and (y2 > y1).all()
  assert set(np.unique(scene["mask"])) <= {0} | set(classes.tolist())
  # Every box holds ink of its class (a later digit may paint over part, never all of it).
  for (bx1, by1, bx2, by2), c in zip(boxes.astype(int), classes):
    assert (scene["mask"][by1:by2, bx1:bx2] == c).any(), (c, (bx1, by1, bx2, by2))
  # Every mask pixel of class c lies in some box of class c.
  for c in np.unique(scene["mask"][scene["mask"] > 0]):
    covered = np.zeros((h, w), bool)
    for (bx1, by1, bx2, by2), cls in zip(boxes.astype(int), classes):
      if cls == c:
        covered[by1:by2, bx1:bx2] = True
    assert covered[scene["mask"] == c].all(), c
  # Overlap bound: intersection / smaller area.
  for i in range(n):
    for j in range(i + 1, n):
      iw = min(x2[i], x2[j]) - max(x1[i], x1[j])
      ih = min(y2[i], y2[j]) - max(y1[i], y1[j])
      if iw > 0 and ih > 0:
        smaller = min((x2[i] - x1[i]) * (y2[i] - y1[i]), (x2[j] - x1[j]) * (y2[j] - y1[j]))
        assert iw * ih <= config.max_overlap * smaller + 1e-6


# ---------------------------------------------------------------------------------------------
# Invariants and determinism.


@pytest.mark.parametrize("config", [
    SceneConfig(image_size=(48, 64)),
    SceneConfig(image_size=(40, 40), num_digits=(3, 6), digit_size=(0.3, 0.6), max_overlap=0.3,
                max_boxes=10),
    SceneConfig(image_size=(32, 48), num_digits=(2, 2), clutter=False, max_overlap=0.0),
    SceneConfig(image_size=(48, 64), num_digits=(1, 10), digit_size=(0.13, 0.79),
                style="shapes"),
], ids=["default", "crowded", "no_overlap", "shapes_style"])
def test_scene_invariants(config):
  digits, labels = blob_digits(40, seed=0)
  out = generate_scenes(digits, labels, 12, config=config, seed=3)
  assert set(out) == set(_KEYS)
  assert out["num_boxes"].shape == (12,) and out["num_boxes"].dtype == np.int32
  for i in range(12):
    check_scene({k: v[i] for k, v in out.items()}, config)
  # The scenes are not all alike: digit counts and classes vary.
  assert len({tuple(c) for c in out["classes"]}) > 1


def test_scene_of_one_digit_never_exceeds_the_requested_count():
  digits, labels = blob_digits(40, seed=0)
  config = SceneConfig(image_size=(48, 64), num_digits=(1, 1), max_boxes=4)
  out = generate_scenes(digits, labels, 6, config=config)
  assert (out["num_boxes"] == 1).all()
  assert out["boxes"].shape == (6, 4, 4) and (out["classes"][:, 1:] == 0).all()


def test_determinism_prefix_and_seeds():
  digits, labels = blob_digits(40, seed=0)
  config = SceneConfig(image_size=(32, 40), num_digits=(1, 4))
  a = generate_scenes(digits, labels, 5, config=config, seed=11)
  b = generate_scenes(digits, labels, 5, config=config, seed=11)
  prefix = generate_scenes(digits, labels, 2, config=config, seed=11)
  tail = generate_scenes(digits, labels, 2, config=config, seed=11, start=3)
  other = generate_scenes(digits, labels, 5, config=config, seed=12)
  for k in _KEYS:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    np.testing.assert_array_equal(a[k][:2], prefix[k], err_msg=k)
    np.testing.assert_array_equal(a[k][3:5], tail[k], err_msg=k)
  single = generate_scene(digits, labels, 4, config=config, seed=11)
  for k in _KEYS:
    np.testing.assert_array_equal(a[k][4], single[k], err_msg=k)
  assert not np.array_equal(a["image"], other["image"])
  for i in range(5):  # another seed: every scene differs
    assert not np.array_equal(a["image"][i], other["image"][i])
  # Neighbouring scenes of one stream differ too.
  assert not np.array_equal(a["image"][0], a["image"][1])


# ---------------------------------------------------------------------------------------------
# Exact ground truth.


def test_single_digit_ground_truth_is_exact():
  digits, labels = ringed_pool()
  config = _exact_config(num_digits=(1, 1))
  out = generate_scenes(digits, labels, 10, config=config, seed=5)
  background = np.rint(np.float32(0.1) * 255)
  for i in range(10):
    scene = {k: v[i] for k, v in out.items()}
    check_scene(scene, config)
    (box,), (cls,) = _valid(scene)
    x1, y1, x2, y2 = box.astype(int)
    r0, r1, c0, c1 = _ringed_geometry(int(cls) - 1)
    # Tight around the ink above 0.2: the mid ring's extent, not the faint ring's.
    assert (x2 - x1, y2 - y1) == (c1 - c0, r1 - r0)
    # The mask is the solid core (ink >= 0.5), 2 pixels inside the box, and nothing else.
    want = np.zeros(config.image_size, np.uint8)
    want[y1 + 2:y2 - 2, x1 + 2:x2 - 2] = cls
    np.testing.assert_array_equal(scene["mask"], want)
    # The painted pixels are the faint ring's extent (2 pixels around the box); the plain
    # background is untouched elsewhere.
    changed = (scene["image"] != background).any(axis=-1)
    rows, cols = np.flatnonzero(changed.any(1)), np.flatnonzero(changed.any(0))
    assert (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1) == (x1 - 2, y1 - 2, x2 + 2, y2 + 2)
    # The core has one bright colour (value >= 0.75: some channel >= 191).
    core = scene["image"][y1 + 2:y2 - 2, x1 + 2:x2 - 2].reshape(-1, 3)
    assert (core == core[0]).all() and core[0].max() >= 191


def test_multi_digit_masks_are_exact_without_overlap():
  digits, labels = ringed_pool()
  config = _exact_config(num_digits=(2, 4), max_overlap=0.0)
  out = generate_scenes(digits, labels, 8, config=config, seed=1)
  assert out["num_boxes"].max() >= 2
  for i in range(8):
    scene = {k: v[i] for k, v in out.items()}
    check_scene(scene, config)
    want = np.zeros(config.image_size, np.uint8)
    for (x1, y1, x2, y2), cls in zip(*(a.astype(int) for a in _valid(scene))):
      r0, r1, c0, c1 = _ringed_geometry(cls - 1)
      assert (x2 - x1, y2 - y1) == (c1 - c0, r1 - r0)
      want[y1 + 2:y2 - 2, x1 + 2:x2 - 2] = cls
    np.testing.assert_array_equal(scene["mask"], want)


def test_blank_digits_are_skipped_and_an_all_blank_pool_is_an_error():
  digits, labels = ringed_pool()
  digits = digits.copy()
  digits[::2] = 0  # even labels blank: never boxed
  out = generate_scenes(digits, labels, 6, config=_exact_config(num_digits=(1, 3)))
  valid = np.concatenate([c[:n] for c, n in zip(out["classes"], out["num_boxes"])])
  assert (out["num_boxes"] >= 1).all() and ((valid - 1) % 2 == 1).all()
  with pytest.raises(ValueError, match="blank"):
    generate_scenes(np.zeros((3, 28, 28), np.uint8), np.arange(3), 1,
                    config=SceneConfig(image_size=(32, 32), clutter=False))


def test_digits_too_thin_for_the_mask_are_dropped():
  # A 2-pixel stroke shrunk 3.5 times keeps ink ~0.45: above the box threshold (0.2), below
  # the mask's (0.5). Such a digit would be a box with no mask pixel: it must not be placed.
  digits = np.zeros((2, 28, 28), np.uint8)
  digits[0, 4:24, 14:16] = 255
  digits[1, 6:22, 8:20] = 255
  config = SceneConfig(image_size=(32, 32), digit_size=(0.25, 0.25), num_digits=(1, 3),
                       clutter=False, max_overlap=0.5)
  out = generate_scenes(digits, np.array([1, 3]), 10, config=config)
  for i in range(10):
    check_scene({k: v[i] for k, v in out.items()}, config)
  assert set(np.unique(out["classes"])) == {0, 4}


# ---------------------------------------------------------------------------------------------
# Validation.


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(image_size=(8, 32)), ValueError, "image_size"),
    (dict(image_size=(32.0, 32)), TypeError, "image_size"),
    (dict(image_size=32), TypeError, "image_size"),
    (dict(image_size=(True, 32)), TypeError, "image_size"),
    (dict(num_digits=(3, 1)), ValueError, "num_digits"),
    (dict(num_digits=(0, 2)), ValueError, "num_digits"),
    (dict(digit_size=(0.5, 0.2)), ValueError, "digit_size"),
    (dict(digit_size=(0.0, 0.2)), ValueError, "digit_size"),
    (dict(digit_size=(0.5, 1.5)), ValueError, "digit_size"),
    (dict(digit_size=(0.1, 0.2, 0.3)), ValueError, "digit_size"),
    (dict(max_overlap=1.5), ValueError, "max_overlap"),
    (dict(max_overlap=-0.1), ValueError, "max_overlap"),
    (dict(num_digits=(1, 5), max_boxes=4), ValueError, "max_boxes"),
    (dict(placement_tries=0), ValueError, "placement_tries"),
])
def test_scene_config_validation(kwargs, error, match):
  with pytest.raises(error, match=match):
    SceneConfig(**kwargs)


def test_scene_config_defaults_and_repr():
  cfg = SceneConfig(num_digits=(2, 5))
  assert cfg.image_size == (240, 320) and cfg.max_boxes == 5 and cfg.clutter
  assert "num_digits=(2, 5)" in repr(cfg)


def test_generate_scenes_validation():
  digits, labels = blob_digits(5, seed=0)
  with pytest.raises(ValueError, match="digits"):
    generate_scenes(digits.astype(np.float32), labels, 1)
  with pytest.raises(ValueError, match="digits"):
    generate_scenes(digits[0], labels, 1)
  with pytest.raises(ValueError, match="labels"):
    generate_scenes(digits, labels[:3], 1)
  with pytest.raises(ValueError, match="digits"):
    generate_scenes(digits[:0], labels[:0], 1)
  for bad in (0, -1, True, 2.0):
    with pytest.raises(ValueError, match="num_scenes"):
      generate_scenes(digits, labels, bad)


# ---------------------------------------------------------------------------------------------
# SceneSource and previews.


def test_scene_source_with_a_digit_pool():
  pool = blob_digits(40, seed=0)
  config = SceneConfig(image_size=(32, 48), num_digits=(1, 3))
  train = SceneSource("train", 6, config=config, seed=2, digits=pool)
  again = SceneSource("train", 4, config=config, seed=2, digits=pool)
  test = SceneSource("test", 6, config=config, seed=2, digits=pool)
  assert len(train) == 6 and train.split == "train" and train.config is config
  record = train[3]
  assert set(record) == set(_KEYS)
  check_scene(record, config)
  for k in _KEYS:  # the prefix property holds for the source too
    np.testing.assert_array_equal(train.arrays[k][:4], again.arrays[k])
  # Train and test streams differ even on one pool (the split enters the seed).
  assert not np.array_equal(train.arrays["image"], test.arrays["image"])
  batch = train.get_batch(np.array([5, 0]))
  np.testing.assert_array_equal(batch["boxes"][1], train[0]["boxes"])
  with pytest.raises(ValueError, match="split"):
    SceneSource("val", 2, config=config, digits=pool)


@pytest.mark.skipif(not (REAL_DIR / "t10k-images-idx3-ubyte.gz").is_file(),
                    reason="the real MNIST files are not present")
def test_scene_source_on_real_mnist(monkeypatch):
  monkeypatch.delenv("JAXVISION_DATA_DIR", raising=False)
  config = SceneConfig(image_size=(96, 128))
  source = SceneSource("test", 16, data_dir=REAL_DIR, config=config, seed=0)
  for i in range(len(source)):
    check_scene(source[i], config)
  counts = source.arrays["num_boxes"]
  assert counts.min() >= 1 and counts.max() > 2
  # Digits are the real ones: about 10-30% of a digit's box is core ink.
  fill = []
  for i in range(len(source)):
    for (x1, y1, x2, y2), c in zip(*(a.astype(int) for a in _valid(source[i]))):
      fill.append((source[i]["mask"][y1:y2, x1:x2] == c).mean())
  assert 0.05 < np.median(fill) < 0.6


def test_save_scene_preview(tmp_path):
  # The drawing itself is tested in tests/test_viz.py; here: scenes go through it.
  digits, labels = blob_digits(40, seed=0)
  config = SceneConfig(image_size=(32, 40))
  out = generate_scenes(digits, labels, 5, config=config)
  plain = tmp_path / "sub" / "plain.png"
  layout = save_scene_preview(plain, out["image"], out["boxes"], out["classes"], columns=2)
  with Image.open(plain) as img:
    assert img.format == "PNG" and img.size == layout.size
  assert len(layout.origins) == 5 and len({x for x, _ in layout.origins}) == 2
  masked = tmp_path / "masked.png"
  scores = np.full(out["classes"].shape, 0.5, np.float32)
  layout = save_scene_preview(masked, out["image"], out["boxes"], out["classes"],
                              scores=scores, masks=out["mask"])
  with Image.open(masked) as img:
    grid = np.asarray(img.convert("RGB"))
  # The first tile's mask half (under the image) shows the class colours of its mask.
  (x, y), s = layout.origins[0], int(layout.scales[0])
  mask_half = grid[y + 32 * s:y + 64 * s:s, x:x + 40 * s:s]
  colours = scenes.class_colours(len(CLASS_NAMES))
  np.testing.assert_array_equal(mask_half, colours[out["mask"][0]])
  single = tmp_path / "single.png"
  layout = save_scene_preview(single, out["image"][0])  # one image, no boxes
  assert len(layout.origins) == 1
  with pytest.raises(ValueError, match="classes"):
    save_scene_preview(tmp_path / "x.png", out["image"], out["boxes"])
  with pytest.raises(ValueError, match="images"):
    save_scene_preview(tmp_path / "x.png", out["image"][..., 0])


def test_class_colours():
  c = scenes.class_colours(25)
  assert c.shape == (25, 3) and c.dtype == np.uint8
  assert (c[0] == 0).all() and len({tuple(x) for x in c}) == 25


def test_shapes_style_differs_from_texture_and_is_checked():
  digits, labels = blob_digits(20, seed=1)
  a = generate_scene(digits, labels, 0, config=SceneConfig(image_size=(48, 64)), seed=0)
  b = generate_scene(digits, labels, 0, config=SceneConfig(image_size=(48, 64), style="shapes"),
                     seed=0)
  assert not np.array_equal(a["image"], b["image"])
  with pytest.raises(ValueError, match="style"):
    SceneConfig(style="cartoon")
