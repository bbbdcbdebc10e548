"""Tests for jaxvision.data.tfds: VOC and Oxford-IIIT Pet sources from TFDS.

The conversions are checked on hand-made records in TFDS' format, served both by a stand-in
``tensorflow_datasets`` module (runs everywhere) and through the real ``tfds.data_source`` under
``tfds.testing.mock_data`` (only where tensorflow_datasets is installed).
"""

import pickle
import sys
import types

import numpy as np
import pytest

from jaxvision.data import make_pipeline
from jaxvision.data.tfds import PETS_MASK_CLASSES, VOC_CLASSES, oxford_pets_source, voc_source


@pytest.fixture
def tfds():
  return pytest.importorskip("tensorflow_datasets")  # not installed here: not counted


@pytest.fixture
def no_tfds(monkeypatch):
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # import -> ImportError


def voc_record(height, width, bbox, labels, seed=0):
  """A record as ``tfds.data_source("voc/2007")`` gives it (decoded, NumPy)."""
  rng = np.random.default_rng(seed)
  n = len(labels)
  return {
      "image": rng.integers(0, 256, (height, width, 3), dtype=np.uint8),
      "image/filename": "000005.jpg",
      "labels": np.unique(np.asarray(labels, np.int64)),
      "labels_no_difficult": np.unique(np.asarray(labels, np.int64)),
      "objects": {
          "bbox": np.asarray(bbox, np.float32).reshape(n, 4),
          "is_difficult": np.zeros(n, bool),
          "is_truncated": np.zeros(n, bool),
          "label": np.asarray(labels, np.int64),
          "pose": np.zeros(n, np.int64),
      },
  }


def pets_record(trimap, seed=0):
  """A record as ``tfds.data_source("oxford_iiit_pet")`` gives it (decoded, NumPy)."""
  rng = np.random.default_rng(seed)
  trimap = np.asarray(trimap, np.uint8)
  return {
      "image": rng.integers(0, 256, (*trimap.shape, 3), dtype=np.uint8),
      "segmentation_mask": trimap[..., None],
      "label": np.int64(3),
      "species": np.int64(1),
      "file_name": "Abyssinian_1.jpg",
      "head_bbox": np.zeros(4, np.float32),
  }


VOC_RECORDS = [
    # 20 x 40 (H x W): boxes [ymin, xmin, ymax, xmax] normalized; labels 0..19.
    voc_record(20, 40, [[0.1, 0.25, 0.5, 1.0], [0.0, 0.0, 1.0, 0.5]], [14, 0], seed=1),
    voc_record(30, 10, [[0.2, 0.1, 0.3, 0.9]], [19], seed=2),
    voc_record(10, 10, np.zeros((0, 4)), [], seed=3),  # no objects
]
TRIMAP = np.array([[2, 2, 1, 1], [2, 3, 1, 1], [3, 3, 3, 2]])  # 3 x 4
PETS_RECORDS = [pets_record(TRIMAP, seed=4), pets_record(np.full((5, 2), 1), seed=5)]


class Records(list):
  """A list of records with a batched read, as TFDS' ArrayRecord sources have."""

  def __init__(self, records):
    super().__init__(records)
    self.batched_reads = 0

  def __getitems__(self, keys):
    self.batched_reads += 1
    return [self[k] for k in keys]


class FakeTfds(types.ModuleType):
  """Stands in for tensorflow_datasets: ``data_source`` serves the records above."""

  def __init__(self):
    super().__init__("tensorflow_datasets")
    self.calls = []
    self.sources = {}

  def data_source(self, name, *, split, data_dir, download):
    self.calls.append((name, split, data_dir, download))
    records = {"voc/2007": VOC_RECORDS, "voc/2012": VOC_RECORDS[:1],
               "oxford_iiit_pet": PETS_RECORDS}[name]
    self.sources[name] = Records(records)
    return self.sources[name]


@pytest.fixture
def fake_tfds(monkeypatch):
  fake = FakeTfds()
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", fake)
  return fake


def check_voc(src, image_size=(240, 320)):
  assert len(src) == 3
  h, w = image_size
  r = src[0]
  assert set(r) == {"image", "boxes", "classes", "num_boxes"}
  assert r["image"].dtype == np.uint8 and r["image"].shape == (h, w, 3)
  assert r["boxes"].dtype == np.float32 and r["classes"].dtype == np.int32
  assert r["num_boxes"].dtype == np.int32 and r["num_boxes"].shape == ()
  assert int(r["num_boxes"]) == 2
  # [ymin, xmin, ymax, xmax] normalized -> [x1, y1, x2, y2] pixels of the resized image.
  np.testing.assert_allclose(r["boxes"][:2], [[0.25 * w, 0.1 * h, w, 0.5 * h],
                                              [0, 0, 0.5 * w, h]], rtol=1e-6)
  np.testing.assert_array_equal(r["boxes"][2:], 0)
  assert r["classes"][:3].tolist() == [15, 1, 0]  # labels + 1; 0 pads
  assert VOC_CLASSES[15 - 1] == "person" and VOC_CLASSES[1 - 1] == "aeroplane"
  np.testing.assert_allclose(src[1]["boxes"][0], [0.1 * w, 0.2 * h, 0.9 * w, 0.3 * h],
                             rtol=1e-6)
  assert src[1]["classes"][0] == 20
  empty = src[-1]
  assert int(empty["num_boxes"]) == 0 and not empty["boxes"].any() and not empty[
      "classes"].any()


def check_pets(src, image_size):
  assert len(src) == 2
  r = src[0]
  assert set(r) == {"image", "mask"}
  assert r["image"].dtype == np.uint8 and r["image"].shape == (*image_size, 3)
  assert r["mask"].dtype == np.uint8 and r["mask"].shape == image_size
  assert PETS_MASK_CLASSES == ("background", "pet", "border")


# ---------------------------------------------------------------------------------------------
# Without TFDS, or with a stand-in module


def test_missing_tfds_raises_import_error_with_hint(no_tfds):
  for make in (lambda: voc_source("train"), lambda: oxford_pets_source("train")):
    with pytest.raises(ImportError, match=r"pip install jaxvision\[tfds\]"):
      make()


def test_bad_arguments(fake_tfds):
  with pytest.raises(ValueError, match="year"):
    voc_source("train", year=2010)
  for bad in (0, 1.5, None):
    with pytest.raises(ValueError, match="max_boxes"):
      voc_source("train", max_boxes=bad)
  with pytest.raises(ValueError, match="image_size"):
    oxford_pets_source("train", image_size=(0, 4))
  assert fake_tfds.calls == []


def test_voc_source_conversion(fake_tfds):
  src = voc_source("validation", data_dir="/data", max_boxes=4)
  assert fake_tfds.calls == [("voc/2007", "validation", "/data", False)]
  check_voc(src)
  assert src[0]["boxes"].shape == (4, 4)
  # The image is a bilinear resize: its mean survives.
  assert abs(src[0]["image"].mean() - VOC_RECORDS[0]["image"].mean()) < 3
  batch = src.get_batch(np.array([2, 0, 1]))
  assert fake_tfds.sources["voc/2007"].batched_reads == 1
  assert batch["image"].shape == (3, 240, 320, 3) and batch["boxes"].shape == (3, 4, 4)
  assert batch["num_boxes"].tolist() == [0, 2, 1]
  np.testing.assert_array_equal(batch["boxes"][1], src[0]["boxes"])
  with pytest.raises(IndexError):
    src[3]


def test_voc_source_options(fake_tfds):
  src = voc_source("train", image_size=None, max_boxes=1, year=2012, download=True)
  assert fake_tfds.calls == [("voc/2012", "train", None, True)]
  r = src[0]
  np.testing.assert_array_equal(r["image"], VOC_RECORDS[0]["image"])  # not resized
  # Only the first max_boxes objects are kept; pixels of the original 20 x 40 image.
  np.testing.assert_allclose(r["boxes"], [[10, 2, 40, 10]])
  assert r["classes"].tolist() == [15] and int(r["num_boxes"]) == 1
  bad = voc_record(4, 4, [[0, 0, 1, 1]], [1])
  bad["objects"]["label"] = np.array([1, 2])
  with pytest.raises(ValueError, match="1 boxes but 2 labels"):
    voc_source("train", year=2012)._fn(bad)


def test_oxford_pets_source_conversion(fake_tfds):
  src = oxford_pets_source("test", image_size=(3, 4))  # the trimap's own size: no resize
  assert fake_tfds.calls == [("oxford_iiit_pet", "test", None, False)]
  # Trimap 1 (pet) -> 1, 2 (background) -> 0, 3 (border) -> 2.
  np.testing.assert_array_equal(src[0]["mask"], [[0, 0, 1, 1], [0, 2, 1, 1], [2, 2, 2, 0]])
  np.testing.assert_array_equal(src[0]["image"], PETS_RECORDS[0]["image"])
  big = oxford_pets_source("train", image_size=(6, 8))
  check_pets(big, (6, 8))
  # Nearest neighbour: doubling repeats each class id.
  np.testing.assert_array_equal(big[0]["mask"], np.repeat(np.repeat(src[0]["mask"], 2, 0), 2, 1))
  assert big[1]["mask"].shape == (6, 8) and (big[1]["mask"] == 1).all()
  batch = big.get_batch([1, 0])
  assert batch["mask"].shape == (2, 6, 8) and batch["image"].shape == (2, 6, 8, 3)
  bad = pets_record(np.array([[0, 1], [2, 3]]))
  with pytest.raises(ValueError, match=r"trimap values .* found values in \[0, 3\]"):
    big._fn(bad)
  bad = pets_record(np.ones((2, 2)))
  bad["segmentation_mask"] = np.ones((3, 2, 1), np.uint8)
  with pytest.raises(ValueError, match="same size"):
    big._fn(bad)


def test_sources_in_a_pipeline_and_pickle(fake_tfds):
  src = voc_source("train", image_size=(8, 8), max_boxes=3)
  batches = list(make_pipeline(src, batch_size=3, seed=0, num_epochs=2, num_threads=0))
  assert [b["boxes"].shape for b in batches] == [(3, 3, 4)] * 2
  assert sorted(int(n) for b in batches for n in b["num_boxes"]) == [0, 0, 1, 1, 2, 2]
  copy = pickle.loads(pickle.dumps(src))
  np.testing.assert_array_equal(copy[0]["boxes"], src[0]["boxes"])
  pets = oxford_pets_source("train", image_size=(4, 4))
  batches = list(make_pipeline(pets, batch_size=2, seed=1, num_epochs=1, num_threads=0))
  assert len(batches) == 1 and batches[0]["mask"].shape == (2, 4, 4)
  assert "oxford_pets_source" in repr(pets) and "len=2" in repr(pets)


# ---------------------------------------------------------------------------------------------
# Through the real tfds.data_source, under tfds.testing.mock_data


def serve(builder, split, **kwargs):
  """``as_data_source_fn`` for mock_data: the hand-made records of the data set."""
  del kwargs
  records = {"voc": VOC_RECORDS, "oxford_iiit_pet": PETS_RECORDS}[builder.name]
  return Records(records) if split == "train" else list(records)


@pytest.mark.parametrize("split", ["train", "test"])  # with and without __getitems__
def test_voc_source_through_tfds_mock_data(tfds, split):
  with tfds.testing.mock_data(as_data_source_fn=serve):
    src = voc_source(split, max_boxes=5)
  check_voc(src)
  assert src.get_batch([1, 2])["num_boxes"].tolist() == [1, 0]


def test_oxford_pets_source_through_tfds_mock_data(tfds):
  with tfds.testing.mock_data(as_data_source_fn=serve):
    src = oxford_pets_source("test", image_size=(6, 8))
  check_pets(src, (6, 8))
  assert set(np.unique(src.get_batch([0, 1])["mask"])) == {0, 1, 2}


def test_random_mock_data(tfds):
  """TFDS' random mock records are not valid VOC/Pet records: reading one raises clearly."""
  with tfds.testing.mock_data(num_examples=3, policy=tfds.testing.MockPolicy.USE_CODE):
    voc = voc_source("train")
    pets = oxford_pets_source("train")
  assert len(voc) == 3 and len(pets) == 3
  with pytest.raises(ValueError, match="Oxford-IIIT Pet"):
    pets.get_batch([0, 1])  # the mock's __getitems__ has another signature: per-record reads


def test_voc_record_drops_boxes_empty_after_clipping():
  """Issue 13: a box outside the image is empty after clipping to [0, 1]; it is dropped with
  its label (it would be matched at IoU 0 with an infinite log-size target)."""
  from jaxvision.data.tfds import _voc_record
  record = {"image": np.zeros((10, 20, 3), np.uint8),
            "objects": {"bbox": np.array([[1.1, 0.2, 1.3, 0.4],    # below the image
                                          [0.1, 0.2, 0.5, 0.6],    # kept
                                          [0.3, 0.5, 0.3, 0.9],    # zero height
                                          [0.5, 0.5, 1.2, 1.5]]),  # overhangs: clipped
                        "label": np.array([4, 7, 2, 0])}}
  out = _voc_record(record, image_size=None, max_boxes=3)
  assert int(out["num_boxes"]) == 2 and out["classes"].tolist() == [8, 1, 0]
  np.testing.assert_allclose(out["boxes"], [[4, 1, 12, 5], [10, 5, 20, 10], [0, 0, 0, 0]])
