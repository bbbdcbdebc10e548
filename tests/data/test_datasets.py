"""Tests for jaxvision.data.datasets: every detection/segmentation data set by name.

The book's layout is written by the tests (PNG images of different sizes, label CSVs, mask
``.npy`` files); scenes use tiny synthetic digit pools (no MNIST); the TFDS specs run against a
stand-in ``tensorflow_datasets`` module everywhere and through ``tfds.testing.mock_data`` only
where tensorflow_datasets is installed.
"""

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jaxvision.data import (DATASETS, PETS_MASK_CLASSES, VOC_CLASSES, ArraySource, Dataset,
                            iterate_batches, load_dataset, scenes)
from tests.experiments._data import blob_digits

DETECTION_KEYS = {"image", "boxes", "classes", "num_boxes"}
SEGMENTATION_KEYS = {"image", "mask"}

# ---------------------------------------------------------------------------------------------
# The book's layout


# (H, W) of each image; a and b are the train split, c the test split.
SIZES = {"a.png": (30, 40), "b.png": (20, 10), "c.png": (50, 60)}
TRAIN_ROWS = ["a.png,4,20,2,12,1", "a.png,10,30,15,29,3", "b.png,0,10,0,20,2"]
TEST_ROWS = ["c.png,6,30,5,25,2", "c.png,0,60,0,50,1", "c.png,30,45,10,40,3"]  # 3 boxes


def write_book(directory: Path, *, image_subdir: str = "") -> dict[str, np.ndarray]:
  """The book's layout in ``directory``; returns the class-id masks by file name."""
  directory.mkdir(parents=True, exist_ok=True)
  image_dir = directory / image_subdir
  image_dir.mkdir(exist_ok=True)
  rng = np.random.default_rng(0)
  masks = {}
  for i, (name, (h, w)) in enumerate(SIZES.items()):
    pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(pixels).convert("L" if i == 1 else "RGB").save(image_dir / name)
    masks[name] = rng.integers(0, 4, (h, w)).astype(np.uint8)
  header = "frame,xmin,xmax,ymin,ymax,class_id\n"
  (directory / "labels_train.csv").write_text(header + "\n".join(TRAIN_ROWS) + "\n")
  (directory / "labels_test.csv").write_text(header + "\n".join(TEST_ROWS) + "\n")
  one_hot = np.eye(4, dtype=np.uint8)
  np.save(directory / "segmentation_train.npy",
          {"a.png": one_hot[masks["a.png"]], "b.png": masks["b.png"]})  # one-hot and ids
  np.save(directory / "segmentation_test.npy", {"c.png": one_hot[masks["c.png"]]})
  return masks


@pytest.fixture
def book(tmp_path):
  directory = tmp_path / "drinks"
  return directory, write_book(directory)


def test_book_detection(book):
  directory, _ = book
  ds = load_dataset(f"book:{directory}", task="detection", image_size=(24, 32))
  assert isinstance(ds, Dataset)
  assert ds.name == f"book:{directory.absolute()}" and ds.task == "detection"
  assert ds.image_size == (24, 32)
  assert ds.class_names == ("background", "1", "2", "3") and ds.num_classes == 4
  assert len(ds.train) == 2 and len(ds.test) == 1
  r = ds.train[0]
  assert set(r) == DETECTION_KEYS
  assert r["image"].dtype == np.uint8 and r["image"].shape == (24, 32, 3)
  # G is the most boxes of any image over train and test: 3 (in the test split).
  assert r["boxes"].dtype == np.float32 and r["boxes"].shape == (3, 4)
  assert ds.test[0]["boxes"].shape == (3, 4)
  # a.png is 30 x 40 (H x W): x scaled by 32 / 40, y by 24 / 30.
  sx, sy = 32 / 40, 24 / 30
  np.testing.assert_allclose(r["boxes"], [[4 * sx, 2 * sy, 20 * sx, 12 * sy],
                                          [10 * sx, 15 * sy, 30 * sx, 29 * sy], [0, 0, 0, 0]],
                             rtol=1e-6)
  assert r["classes"].tolist() == [1, 3, 0] and int(r["num_boxes"]) == 2
  # b.png is 20 x 10, its box the whole image: the whole resized image.
  np.testing.assert_allclose(ds.train[1]["boxes"][0], [0, 0, 32, 24], rtol=1e-6)
  sx, sy = 32 / 60, 24 / 50
  np.testing.assert_allclose(ds.test[0]["boxes"][2], [30 * sx, 10 * sy, 45 * sx, 40 * sy],
                             rtol=1e-6)
  assert ds.test[0]["classes"].tolist() == [2, 1, 3]
  batch = ds.train.get_batch(np.array([1, 0]))
  assert batch["image"].shape == (2, 24, 32, 3) and batch["num_boxes"].tolist() == [1, 2]


def test_book_detection_max_boxes(book):
  directory, _ = book
  ds = load_dataset(f"book:{directory}", task="detection", image_size=(8, 8), max_boxes=5)
  assert ds.train[0]["boxes"].shape == (5, 4) and ds.test[0]["classes"].shape == (5,)
  with pytest.raises(ValueError, match=r"'c.png' has 3 boxes.*`max_boxes` = 2"):
    load_dataset(f"book:{directory}", task="detection", image_size=(8, 8), max_boxes=2)
  for bad in (0, 1.5, True):
    with pytest.raises(ValueError, match="max_boxes"):
      load_dataset(f"book:{directory}", task="detection", image_size=(8, 8), max_boxes=bad)


def test_book_segmentation(book):
  directory, masks = book
  ds = load_dataset(f"book:{directory}", task="segmentation", image_size=(60, 80))
  assert ds.task == "segmentation" and ds.image_size == (60, 80)
  assert ds.class_names == ("background", "1", "2", "3")
  assert len(ds.train) == 2 and len(ds.test) == 1
  r = ds.train[0]
  assert set(r) == SEGMENTATION_KEYS
  assert r["image"].shape == (60, 80, 3) and r["image"].dtype == np.uint8
  assert r["mask"].shape == (60, 80) and r["mask"].dtype == np.uint8
  # a.png is 30 x 40: doubled, nearest neighbour repeats every class id.
  np.testing.assert_array_equal(r["mask"], np.repeat(np.repeat(masks["a.png"], 2, 0), 2, 1))
  assert ds.train[1]["mask"].shape == ds.test[0]["mask"].shape == (60, 80)
  assert set(np.unique(ds.test[0]["mask"])) <= {0, 1, 2, 3}


def test_book_class_names_files(book):
  directory, _ = book
  spec = f"book:{directory}"
  (directory / "classes.txt").write_text("background\nwater\nsoda\njuice\n\n")
  for task in ("detection", "segmentation"):
    ds = load_dataset(spec, task=task, image_size=(16, 16))
    assert ds.class_names == ("background", "water", "soda", "juice") and ds.num_classes == 4
  (directory / "classes.json").write_text(json.dumps(["bg", "a", "b", "c", "d"]))
  with pytest.raises(ValueError, match="both classes.txt and classes.json"):
    load_dataset(spec, task="detection", image_size=(16, 16))
  (directory / "classes.txt").unlink()
  ds = load_dataset(spec, task="detection", image_size=(16, 16))
  assert ds.class_names == ("bg", "a", "b", "c", "d") and ds.num_classes == 5
  # Fewer names than the data's class ids, malformed files.
  (directory / "classes.json").write_text(json.dumps(["bg", "a", "b"]))
  with pytest.raises(ValueError, match=r"classes\.json names 3 classes.*class id 3"):
    load_dataset(spec, task="segmentation", image_size=(16, 16))
  for content, match in (('{"a": 1}', "JSON list"), ("[1, 2]", "JSON list"),
                         ("not json", "not valid JSON"), ('["bg"]', "at least one class"),
                         ('["bg", "a", "a", "b"]', "'a' appears more than once")):
    (directory / "classes.json").write_text(content)
    with pytest.raises(ValueError, match=match):
      load_dataset(spec, task="detection", image_size=(16, 16))
  (directory / "classes.json").unlink()
  (directory / "classes.txt").write_text("background\n\nwater\nsoda\njuice\n")
  with pytest.raises(ValueError, match=r"classes\.txt: blank line 2"):
    load_dataset(spec, task="detection", image_size=(16, 16))


def test_book_images_subdirectory(tmp_path):
  directory = tmp_path / "drinks"
  masks = write_book(directory, image_subdir="images")
  assert not list(directory.glob("*.png"))
  ds = load_dataset(f"book:{directory}", task="segmentation", image_size=(30, 40))
  np.testing.assert_array_equal(ds.train[0]["mask"], masks["a.png"])
  ds = load_dataset(f"book:{directory}", task="detection", image_size=(30, 40))
  np.testing.assert_allclose(ds.train[0]["boxes"][0], [4, 2, 20, 12])


@pytest.mark.parametrize("task,missing", [
    ("detection", "labels_train.csv"), ("detection", "labels_test.csv"),
    ("segmentation", "segmentation_train.npy"), ("segmentation", "segmentation_test.npy"),
])
def test_book_missing_files(book, task, missing):
  directory, _ = book
  (directory / missing).unlink()
  expected = {"detection": r"labels_train\.csv and labels_test\.csv",
              "segmentation": r"segmentation_train\.npy and segmentation_test\.npy"}[task]
  with pytest.raises(FileNotFoundError, match=rf"{missing.replace('.', '[.]')}' does not "
                                              rf"exist; .*{expected}"):
    load_dataset(f"book:{directory}", task=task, image_size=(8, 8))


def test_book_missing_directory_and_image(book, tmp_path):
  directory, _ = book
  with pytest.raises(FileNotFoundError, match=r"nowhere' does not exist; .*labels_train"):
    load_dataset(f"book:{tmp_path / 'nowhere'}", task="detection", image_size=(8, 8))
  (directory / "c.png").unlink()
  with pytest.raises(FileNotFoundError, match=r"c\.png"):
    load_dataset(f"book:{directory}", task="detection", image_size=(8, 8))
  for spec in ("book", "book:", "book:  "):
    with pytest.raises(ValueError, match="book:DIR"):
      load_dataset(spec, task="detection", image_size=(8, 8))


def test_book_home_directory(book, monkeypatch):
  directory, _ = book
  monkeypatch.setenv("HOME", str(directory.parent))
  ds = load_dataset("book:~/drinks", task="detection", image_size=(8, 8))
  assert ds.name == f"book:{directory.absolute()}" and len(ds.test) == 1


# ---------------------------------------------------------------------------------------------
# Scenes


DIGITS = {"train": blob_digits(20, seed=0), "test": blob_digits(20, seed=1)}


def test_scenes_detection():
  ds = load_dataset("scenes", task="detection", image_size=(32, 48), train_scenes=5,
                    test_scenes=3, digits=DIGITS, seed=3)
  assert ds.name == "scenes" and ds.image_size == (32, 48)
  assert ds.class_names == scenes.CLASS_NAMES and ds.num_classes == 11
  assert len(ds.train) == 5 and len(ds.test) == 3
  assert isinstance(ds.train, ArraySource)
  assert set(ds.train.arrays) == set(ds.test.arrays) == DETECTION_KEYS  # no mask
  r = ds.test[0]
  assert r["image"].shape == (32, 48, 3) and r["boxes"].shape == (8, 4)
  assert r["boxes"].dtype == np.float32 and r["classes"].dtype == np.int32
  # The same scenes as a SceneSource with the default config of that size.
  expected = scenes.SceneSource("test", 3, config=scenes.SceneConfig(image_size=(32, 48)),
                                seed=3, digits=DIGITS["test"])
  for k in DETECTION_KEYS:
    np.testing.assert_array_equal(ds.test.arrays[k], expected.arrays[k])
  other = load_dataset("scenes", task="detection", image_size=(32, 48), train_scenes=5,
                       test_scenes=3, digits=DIGITS, seed=4)
  assert not np.array_equal(other.test.arrays["image"], ds.test.arrays["image"])


def test_scenes_segmentation_and_config():
  config = scenes.SceneConfig(image_size=(40, 40), num_digits=(1, 2), clutter=False)
  ds = load_dataset("scenes", task="segmentation", image_size=(40, 40), scene_config=config,
                    train_scenes=2, test_scenes=2, digits=DIGITS)
  assert set(ds.train.arrays) == SEGMENTATION_KEYS
  assert ds.train[0]["mask"].shape == (40, 40) and ds.train[0]["mask"].dtype == np.uint8
  assert ds.train[0]["mask"].max() >= 1
  ds = load_dataset("scenes", task="detection", image_size=(40, 40), scene_config=config,
                    train_scenes=2, test_scenes=2, digits=DIGITS)
  assert ds.train[0]["boxes"].shape == (2, 4)  # the config's max_boxes
  ds = load_dataset("scenes", task="detection", image_size=(32, 32), max_boxes=10,
                    train_scenes=1, test_scenes=1, digits=DIGITS)
  assert ds.train[0]["boxes"].shape == (10, 4)


def test_scenes_errors():
  config = scenes.SceneConfig(image_size=(40, 40))
  kw = dict(task="detection", train_scenes=1, test_scenes=1, digits=DIGITS)
  with pytest.raises(ValueError, match=r"`scene_config.image_size` \(40, 40\) differs from "
                                       r"`image_size` \(32, 40\)"):
    load_dataset("scenes", image_size=(32, 40), scene_config=config, **kw)
  with pytest.raises(ValueError, match="`max_boxes` 9 differs from `scene_config.max_boxes` 8"):
    load_dataset("scenes", image_size=(40, 40), scene_config=config, max_boxes=9, **kw)
  with pytest.raises(ValueError, match="max_boxes"):  # fewer rows than digits per scene
    load_dataset("scenes", image_size=(40, 40), max_boxes=3, **kw)
  for name in ("train_scenes", "test_scenes"):
    with pytest.raises(ValueError, match=f"`{name}` must be a positive int"):
      load_dataset("scenes", image_size=(40, 40), **{**kw, name: 0})
  with pytest.raises(ValueError, match="`digits` must be a mapping with 'train' and 'test'"):
    load_dataset("scenes", image_size=(40, 40), **{**kw, "digits": {"train": DIGITS["train"]}})


# ---------------------------------------------------------------------------------------------
# Specs, tasks and arguments


@pytest.mark.parametrize("spec", ["mnist", "coco", "voc2010", "pet", ""])
def test_unknown_spec_lists_choices(spec):
  with pytest.raises(ValueError, match=r"'scenes', 'book:DIR', 'voc', 'voc2007', 'voc2012', "
                                       r"'pets'"):
    load_dataset(spec, task="detection", image_size=(8, 8))


@pytest.mark.parametrize("spec,task", [("pets", "detection"), ("voc", "segmentation"),
                                       ("voc2012", "segmentation")])
def test_task_mismatch(fake_tfds, spec, task):
  with pytest.raises(ValueError, match=rf"'{spec}' has no {task} data \(`task`='{task}'\)"):
    load_dataset(spec, task=task, image_size=(8, 8))
  assert fake_tfds.calls == []


def test_bad_arguments(book):
  directory, _ = book
  for task in ("classification", None, "Detection"):
    with pytest.raises(ValueError, match="`task` must be one of"):
      load_dataset("scenes", task=task, image_size=(8, 8))
  for size in (None, (8,), (0, 8), (8.0, 8)):
    with pytest.raises(ValueError, match="image_size"):
      load_dataset(f"book:{directory}", task="detection", image_size=size)
  with pytest.raises(ValueError, match="task"):
    Dataset("x", "depth", [], [], ("background",), (8, 8))
  with pytest.raises(ValueError, match="class_names"):
    Dataset("x", "detection", [], [], (), (8, 8))


def test_datasets_table_names_every_spec():
  assert list(DATASETS) == ["scenes", "book:DIR", "voc", "voc2007", "voc2012", "pets"]
  assert all(isinstance(v, str) and v for v in DATASETS.values())


# ---------------------------------------------------------------------------------------------
# TFDS specs, with a stand-in tensorflow_datasets


def voc_record(height, width, bbox, labels):
  n = len(labels)
  return {"image": np.full((height, width, 3), 7, np.uint8),
          "objects": {"bbox": np.asarray(bbox, np.float32).reshape(n, 4),
                      "label": np.asarray(labels, np.int64)}}


VOC_RECORDS = [voc_record(20, 40, [[0.1, 0.25, 0.5, 1.0]], [14]),
               voc_record(10, 10, np.zeros((0, 4)), [])]
PETS_RECORDS = [{"image": np.zeros((3, 4, 3), np.uint8),
                 "segmentation_mask": np.array([[2, 2, 1, 1], [2, 3, 1, 1], [3, 3, 3, 2]],
                                               np.uint8)[..., None]}]


class FakeTfds(types.ModuleType):
  """Stands in for tensorflow_datasets: ``data_source`` serves the records above."""

  def __init__(self):
    super().__init__("tensorflow_datasets")
    self.calls = []

  def data_source(self, name, *, split, data_dir, download):
    self.calls.append((name, split, data_dir, download))
    return list({"voc/2007": VOC_RECORDS, "voc/2012": VOC_RECORDS,
                 "oxford_iiit_pet": PETS_RECORDS}[name])


@pytest.fixture
def fake_tfds(monkeypatch):
  fake = FakeTfds()
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", fake)
  return fake


@pytest.mark.parametrize("spec,name,splits", [
    ("voc", "voc/2007", ("train", "test")), ("VOC2007", "voc/2007", ("train", "test")),
    ("voc2012", "voc/2012", ("train", "validation")),
])
def test_voc_specs(fake_tfds, spec, name, splits):
  ds = load_dataset(spec, task="detection", image_size=(10, 20), data_dir="/tfds",
                    seed=5, train_scenes=3, scene_config=scenes.SceneConfig())  # ignored
  assert fake_tfds.calls == [(name, split, "/tfds", False) for split in splits]
  assert ds.name == spec.lower() and ds.task == "detection" and ds.image_size == (10, 20)
  assert ds.class_names == ("background",) + VOC_CLASSES and ds.num_classes == 21
  assert ds.class_names[15] == "person"
  r = ds.train[0]
  assert set(r) == DETECTION_KEYS and r["image"].shape == (10, 20, 3)
  assert r["boxes"].shape == (50, 4)  # voc_source's default G
  np.testing.assert_allclose(r["boxes"][0], [0.25 * 20, 0.1 * 10, 20, 0.5 * 10], rtol=1e-6)
  assert r["classes"][:2].tolist() == [15, 0] and int(r["num_boxes"]) == 1
  assert ds.test.get_batch([1, 0])["num_boxes"].tolist() == [0, 1]


def test_voc_max_boxes_and_download(fake_tfds):
  ds = load_dataset("voc", task="detection", image_size=(8, 8), max_boxes=4, download=True)
  assert ds.test[0]["boxes"].shape == (4, 4)
  assert fake_tfds.calls[0] == ("voc/2007", "train", None, True)


def test_pets_spec(fake_tfds):
  ds = load_dataset("pets", task="segmentation", image_size=(6, 8), data_dir="/tfds")
  assert fake_tfds.calls == [("oxford_iiit_pet", "train", "/tfds", False),
                             ("oxford_iiit_pet", "test", "/tfds", False)]
  assert ds.class_names == PETS_MASK_CLASSES == ("background", "pet", "border")
  assert ds.num_classes == 3 and ds.image_size == (6, 8)
  r = ds.test[0]
  assert set(r) == SEGMENTATION_KEYS and r["image"].shape == (6, 8, 3)
  assert r["mask"].shape == (6, 8) and set(np.unique(r["mask"])) == {0, 1, 2}


def test_tfds_specs_without_tfds(monkeypatch):
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # import -> ImportError
  for spec, task in (("voc", "detection"), ("pets", "segmentation")):
    with pytest.raises(ImportError, match=r"pip install jaxvision\[tfds\]"):
      load_dataset(spec, task=task, image_size=(8, 8))


def test_tfds_specs_through_mock_data():
  tfds = pytest.importorskip("tensorflow_datasets")

  def serve(builder, split, **kwargs):
    del split, kwargs
    return list({"voc": VOC_RECORDS, "oxford_iiit_pet": PETS_RECORDS}[builder.name])

  with tfds.testing.mock_data(as_data_source_fn=serve):
    voc = load_dataset("voc2012", task="detection", image_size=(10, 20))
    pets = load_dataset("pets", task="segmentation", image_size=(6, 8))
  assert len(voc.train) == len(voc.test) == 2 and int(voc.train[0]["num_boxes"]) == 1
  assert pets.test[0]["mask"].shape == (6, 8)


# ---------------------------------------------------------------------------------------------
# iterate_batches


class RecordList(list):
  """A source with no get_batch: records are read one by one."""


@pytest.mark.parametrize("make", [ArraySource, lambda arrays: RecordList(
    [{k: v[i] for k, v in arrays.items()} for i in range(len(arrays["x"]))])])
def test_iterate_batches_pads_the_last_batch(make):
  arrays = {"x": np.arange(1, 8, dtype=np.int32), "boxes": np.ones((7, 3, 4), np.float32),
            "num_boxes": np.full(7, 2, np.int32)}
  source = make(arrays)
  out = list(iterate_batches(source, 3))
  assert [n for _, n in out] == [3, 3, 1]
  for batch, _ in out:
    assert batch["x"].shape == (3,) and batch["x"].dtype == np.int32
    assert batch["boxes"].shape == (3, 3, 4) and batch["boxes"].dtype == np.float32
    assert batch["num_boxes"].shape == (3,)
  assert [b["x"].tolist() for b, _ in out] == [[1, 2, 3], [4, 5, 6], [7, 0, 0]]
  last, _ = out[-1]
  np.testing.assert_array_equal(last["boxes"][1:], 0)
  assert last["num_boxes"].tolist() == [2, 0, 0]
  kept = np.concatenate([b["x"][:n] for b, n in out])
  np.testing.assert_array_equal(kept, arrays["x"])  # every record once, in order
  assert [n for _, n in iterate_batches(source, 3, drop_remainder=True)] == [3, 3]
  assert [n for _, n in iterate_batches(source, 7)] == [7]
  big = list(iterate_batches(source, 10))
  assert len(big) == 1 and big[0][1] == 7 and big[0][0]["x"].shape == (10,)
  assert list(iterate_batches(source, 10, drop_remainder=True)) == []


def test_iterate_batches_on_a_dataset(book):
  directory, _ = book
  ds = load_dataset(f"book:{directory}", task="detection", image_size=(8, 8))
  (batch, n), = list(iterate_batches(ds.train, 4))
  assert n == 2 and batch["image"].shape == (4, 8, 8, 3) and batch["boxes"].shape == (4, 3, 4)
  assert batch["num_boxes"].tolist() == [2, 1, 0, 0]


def test_iterate_batches_errors():
  source = ArraySource({"x": np.arange(3)})
  for bad in (0, -1, 2.0, True, None):
    with pytest.raises(ValueError, match="`batch_size` must be a positive int"):
      iterate_batches(source, bad)
  with pytest.raises(TypeError, match="source"):
    iterate_batches(42, 2)
  assert list(iterate_batches(RecordList(), 2)) == []
