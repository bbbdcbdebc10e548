"""Tests for jaxvision.data.book: the book's drinks label CSV, segmentation .npy and sources."""

import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jaxvision.data import make_pipeline
from jaxvision.data.book import (BookDetectionSource, BookSegmentationSource, read_book_labels,
                                 read_book_masks)

HEADER = "frame,xmin,xmax,ymin,ymax,class_id\n"


def write_csv(path: Path, rows: list[str], header: str = HEADER) -> Path:
  path.write_text(header + "".join(row + "\n" for row in rows))
  return path


def write_image(path: Path, height: int, width: int, seed: int, mode: str = "RGB") -> np.ndarray:
  """A random PNG; returns its pixels as RGB uint8."""
  rng = np.random.default_rng(seed)
  pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
  image = Image.fromarray(pixels)
  if mode != "RGB":
    image = image.convert(mode)
  image.save(path)
  return np.asarray(Image.open(path).convert("RGB"))


# ---------------------------------------------------------------------------------------------
# read_book_labels


def test_read_book_labels_column_order_and_grouping(tmp_path):
  # Rows as the book writes them: frame, xmin, xmax, ymin, ymax, class_id.
  path = write_csv(tmp_path / "labels.csv", [
      "0001000.jpg,10,60,20,30,1",
      "0001001.jpg,5,7,100,140,3",
      "0001000.jpg,200.5,250,15,90,2",
      "",  # blank lines are ignored
      "0001000.jpg,0,640,0,480,3",
  ])
  labels = read_book_labels(path)
  assert list(labels) == ["0001000.jpg", "0001001.jpg"]  # first-appearance order
  boxes, classes = labels["0001000.jpg"]
  assert boxes.dtype == np.float32 and boxes.shape == (3, 4)
  assert classes.dtype == np.int32 and classes.tolist() == [1, 2, 3]
  # xyxy = (xmin, ymin, xmax, ymax), NOT the CSV's (xmin, xmax, ymin, ymax).
  np.testing.assert_array_equal(boxes, [[10, 20, 60, 30], [200.5, 15, 250, 90],
                                        [0, 0, 640, 480]])
  boxes, classes = labels["0001001.jpg"]
  np.testing.assert_array_equal(boxes, [[5, 100, 7, 140]])
  assert classes.tolist() == [3]


def test_read_book_labels_columns_found_by_name(tmp_path):
  path = write_csv(tmp_path / "labels.csv", ["3,a.jpg,9,2,1,8,extra"],
                   header=" class_id , frame,ymax,xmin,ymin,xmax,comment\r\n")
  boxes, classes = read_book_labels(path)["a.jpg"]
  np.testing.assert_array_equal(boxes, [[2, 1, 8, 9]])
  assert classes.tolist() == [3]


def test_read_book_labels_drops_zero_area_boxes(tmp_path):
  path = write_csv(tmp_path / "labels.csv", ["a.jpg,5,5,0,10,1", "a.jpg,0,10,3,3,2",
                                             "b.jpg,1,2,3,4,1"])
  labels = read_book_labels(path)
  assert labels["a.jpg"][0].shape == (0, 4) and labels["a.jpg"][1].shape == (0,)
  assert labels["b.jpg"][1].tolist() == [1]


@pytest.mark.parametrize("header,column", [
    ("frame,xmin,xmax,ymin,class_id\n", "ymax"),
    ("image,xmin,xmax,ymin,ymax,class_id\n", "frame"),
    ("frame,xmin,xmax,ymin,ymax,label\n", "class_id"),
])
def test_read_book_labels_missing_column(tmp_path, header, column):
  path = write_csv(tmp_path / "bad.csv", ["a.jpg,1,2,3,4,1"], header=header)
  with pytest.raises(ValueError, match=rf"bad\.csv.*missing column '{column}'"):
    read_book_labels(path)


@pytest.mark.parametrize("row,match", [
    ("a.jpg,50,10,0,5,1", r"line 3: xmax 10 < xmin 50"),
    ("a.jpg,0,5,9,1,1", r"line 3: ymax 1 < ymin 9"),
    ("a.jpg,0,5,0,5,0", r"line 3: class_id must be a positive integer \(0 is the background"),
    ("a.jpg,0,5,0,5,-2", r"line 3: class_id must be a positive integer"),
    ("a.jpg,0,5,0,5,1.5", r"line 3: class_id must be a positive integer"),
    ("a.jpg,0,5,0,5,cat", r"line 3: column 'class_id' must be a number"),
    ("a.jpg,0,five,0,5,1", r"line 3: column 'xmax' must be a number"),
    ("a.jpg,0,5,0,nan,1", r"line 3: column 'ymax' must be finite"),
    ("a.jpg,0,5,0", r"line 3: expected 6 fields"),
    (",0,5,0,5,1", r"line 3: empty 'frame'"),
])
def test_read_book_labels_bad_rows_name_file_and_line(tmp_path, row, match):
  path = write_csv(tmp_path / "labels_train.csv", ["ok.jpg,0,5,0,5,1", row])
  with pytest.raises(ValueError, match=r"labels_train\.csv, " + match):
    read_book_labels(path)


def test_read_book_labels_empty_and_missing_files(tmp_path):
  (tmp_path / "empty.csv").write_text("")
  with pytest.raises(ValueError, match=r"empty\.csv: empty file"):
    read_book_labels(tmp_path / "empty.csv")
  with pytest.raises(FileNotFoundError, match="nope.csv"):
    read_book_labels(tmp_path / "nope.csv")
  assert read_book_labels(write_csv(tmp_path / "header_only.csv", [])) == {}


# ---------------------------------------------------------------------------------------------
# BookDetectionSource


@pytest.fixture
def drinks(tmp_path):
  """Three 30x40 (H x W) images and a label CSV with 2, 1 and 3 objects."""
  pixels = {name: write_image(tmp_path / name, 30, 40, seed, mode)
            for seed, (name, mode) in enumerate([("a.png", "RGB"), ("b.png", "L"),
                                                  ("c.png", "RGBA")])}
  csv = write_csv(tmp_path / "labels.csv", [
      "a.png,4,20,2,12,1", "b.png,0,40,0,30,2", "a.png,10,30,15,29,3",
      "c.png,1,2,3,4,1", "c.png,5,9,6,8,2", "c.png,30,41,20,31,3",  # overhangs by a pixel
  ])
  return tmp_path, csv, pixels


def test_detection_source_records(drinks):
  directory, csv, pixels = drinks
  src = BookDetectionSource(directory, csv)
  assert len(src) == 3 and src.frames == ["a.png", "b.png", "c.png"]
  r = src[0]
  assert set(r) == {"image", "boxes", "classes", "num_boxes"}
  assert r["image"].dtype == np.uint8 and r["image"].shape == (30, 40, 3)
  assert r["boxes"].dtype == np.float32 and r["boxes"].shape == (3, 4)  # G = max count = 3
  assert r["classes"].dtype == np.int32 and r["num_boxes"].dtype == np.int32
  np.testing.assert_array_equal(r["image"], pixels["a.png"])
  np.testing.assert_array_equal(r["boxes"], [[4, 2, 20, 12], [10, 15, 30, 29], [0, 0, 0, 0]])
  assert r["classes"].tolist() == [1, 3, 0] and int(r["num_boxes"]) == 2
  np.testing.assert_array_equal(src[1]["image"], pixels["b.png"])  # grey -> RGB
  np.testing.assert_array_equal(src[2]["image"], pixels["c.png"])  # RGBA -> RGB
  # Clipped to the 40 x 30 image.
  np.testing.assert_array_equal(src[2]["boxes"][2], [30, 20, 40, 30])
  batch = src.get_batch(np.array([2, 0]))
  assert batch["boxes"].shape == (2, 3, 4) and batch["num_boxes"].tolist() == [3, 2]


def test_detection_source_padding_and_resize(drinks):
  directory, csv, _ = drinks
  src = BookDetectionSource(directory, csv, max_boxes=5, image_size=(60, 20))
  r = src[0]
  assert r["image"].shape == (60, 20, 3) and r["boxes"].shape == (5, 4)
  # x scaled by 20/40, y by 60/30.
  np.testing.assert_allclose(r["boxes"][:2], [[2, 4, 10, 24], [5, 30, 15, 58]])
  np.testing.assert_array_equal(r["boxes"][2:], 0)
  assert r["classes"].tolist() == [1, 3, 0, 0, 0] and int(r["num_boxes"]) == 2
  np.testing.assert_allclose(src[1]["boxes"][0], [0, 0, 20, 60])
  # A mean colour survives a bilinear resize.
  small = BookDetectionSource(directory, csv, image_size=(15, 20))
  assert abs(small[0]["image"].mean() - src[0]["image"].mean()) < 3
  with pytest.raises(ValueError, match=r"'c.png' has 3 boxes.*`max_boxes` = 2"):
    BookDetectionSource(directory, csv, max_boxes=2)
  for bad in (0, -1, 2.5, True):
    with pytest.raises(ValueError, match="max_boxes"):
      BookDetectionSource(directory, csv, max_boxes=bad)
  with pytest.raises(ValueError, match="image_size"):
    BookDetectionSource(directory, csv, image_size=(32,))


def test_detection_source_in_a_pipeline(drinks):
  directory, csv, _ = drinks
  src = BookDetectionSource(directory, csv, image_size=(16, 16))
  batches = list(make_pipeline(src, batch_size=2, seed=0, num_epochs=2, num_threads=0))
  assert len(batches) == 3
  assert batches[0]["image"].shape == (2, 16, 16, 3) and batches[0]["boxes"].shape == (2, 3, 4)
  counts = sorted(int(n) for b in batches for n in b["num_boxes"])
  assert counts == [1, 1, 2, 2, 3, 3]
  assert pickle.loads(pickle.dumps(src))[1]["classes"].tolist() == [2, 0, 0]


def test_detection_source_errors(drinks, tmp_path):
  directory, csv, _ = drinks
  (directory / "b.png").unlink()
  with pytest.raises(FileNotFoundError, match=r"b\.png"):
    BookDetectionSource(directory, csv)
  write_image(directory / "b.png", 31, 40, 9)
  with pytest.raises(ValueError, match=r"different sizes.*'b.png'.*image_size"):
    BookDetectionSource(directory, csv)
  assert len(BookDetectionSource(directory, csv, image_size=(8, 8))) == 3
  with pytest.raises(ValueError, match="no labelled frames"):
    BookDetectionSource(directory, write_csv(tmp_path / "none.csv", []))


# ---------------------------------------------------------------------------------------------
# read_book_masks / BookSegmentationSource


def one_hot(classes: np.ndarray, num_classes: int) -> np.ndarray:
  """The book's ground-truth layout: [H, W, 1 + 3] with channel 0 background."""
  return np.eye(num_classes, dtype=np.uint8)[classes]


def test_read_book_masks_formats(tmp_path):
  rng = np.random.default_rng(0)
  ids = rng.integers(0, 4, (6, 7))
  path = tmp_path / "segmentation_train.npy"
  np.save(path, {
      "one_hot.jpg": one_hot(ids, 4),
      "float_one_hot.jpg": one_hot(ids, 4).astype(np.float32),
      "scores.jpg": one_hot(ids, 4) * 0.8 + 0.05,
      "ids.jpg": ids.astype(np.int64),
      "ids_channel.jpg": ids[..., None].astype(np.float32),
  })
  masks = read_book_masks(path)
  assert list(masks) == ["one_hot.jpg", "float_one_hot.jpg", "scores.jpg", "ids.jpg",
                         "ids_channel.jpg"]
  for name, mask in masks.items():
    assert mask.dtype == np.uint8 and mask.shape == (6, 7), name
    np.testing.assert_array_equal(mask, ids, err_msg=name)
  # All-zero pixels (no channel set) count as background.
  np.save(path, {"x.jpg": np.zeros((2, 2, 4), np.uint8)})
  np.testing.assert_array_equal(read_book_masks(path)["x.jpg"], 0)


@pytest.mark.parametrize("content,match", [
    (np.arange(3), "expected a pickled dict"),
    ({"a.jpg": np.zeros((2, 2, 2, 2))}, r"'a.jpg' must be \[H, W\]"),
    ({"a.jpg": np.full((2, 2), 1.5)}, "integer class ids"),
    ({"a.jpg": np.full((2, 2), -1)}, r"in \[-1, -1\]"),
    ({"a.jpg": np.full((2, 2), 300)}, r"in \[0, 255\]"),
])
def test_read_book_masks_errors(tmp_path, content, match):
  path = tmp_path / "seg.npy"
  np.save(path, content)
  with pytest.raises(ValueError, match=match):
    read_book_masks(path)
  with pytest.raises(FileNotFoundError, match="missing.npy"):
    read_book_masks(tmp_path / "missing.npy")


def test_segmentation_source(tmp_path):
  rng = np.random.default_rng(1)
  ids = {name: rng.integers(0, 4, (10, 12)) for name in ("a.png", "b.png")}
  pixels = {name: write_image(tmp_path / name, 10, 12, i) for i, name in enumerate(ids)}
  np.save(tmp_path / "seg.npy", {name: one_hot(v, 4) for name, v in ids.items()})
  src = BookSegmentationSource(tmp_path, tmp_path / "seg.npy")
  assert len(src) == 2 and src.frames == ["a.png", "b.png"]
  r = src[1]
  assert set(r) == {"image", "mask"}
  assert r["image"].dtype == np.uint8 and r["image"].shape == (10, 12, 3)
  assert r["mask"].dtype == np.uint8 and r["mask"].shape == (10, 12)
  np.testing.assert_array_equal(r["image"], pixels["b.png"])
  np.testing.assert_array_equal(r["mask"], ids["b.png"])
  # Nearest-neighbour: doubling repeats every class id, never blends them.
  big = BookSegmentationSource(tmp_path, tmp_path / "seg.npy", image_size=(20, 24))
  np.testing.assert_array_equal(big[0]["mask"], np.repeat(np.repeat(ids["a.png"], 2, 0), 2, 1))
  assert big[0]["image"].shape == (20, 24, 3)
  small = BookSegmentationSource(tmp_path, tmp_path / "seg.npy", image_size=(5, 3))
  assert small.get_batch([0, 1])["mask"].shape == (2, 5, 3)
  assert set(np.unique(small.arrays["mask"])) <= {0, 1, 2, 3}


def test_segmentation_source_errors(tmp_path):
  write_image(tmp_path / "a.png", 10, 12, 0)
  np.save(tmp_path / "seg.npy", {"a.png": np.zeros((10, 11), np.uint8)})
  with pytest.raises(ValueError, match=r"'a.png'.*\(10, 12\).*\(10, 11\)"):
    BookSegmentationSource(tmp_path, tmp_path / "seg.npy")
  np.save(tmp_path / "seg.npy", {"gone.png": np.zeros((10, 12), np.uint8)})
  with pytest.raises(FileNotFoundError, match=r"gone\.png"):
    BookSegmentationSource(tmp_path, tmp_path / "seg.npy")
  np.save(tmp_path / "seg.npy", {})
  with pytest.raises(ValueError, match="no masks"):
    BookSegmentationSource(tmp_path, tmp_path / "seg.npy")


# ---------------------------------------------------------------------------------------------
# Issue 13: boxes emptied by clipping, class ids past int32.


def test_detection_source_drops_boxes_empty_after_clipping(tmp_path):
  for name in ("a.png", "b.png", "c.png"):
    write_image(tmp_path / name, 6, 8, seed=len(name))
  path = write_csv(tmp_path / "labels.csv", [
      "a.png,2,6,0,3,1",
      "a.png,9,12,1,4,2",   # x past the right border (width 8): zero width after clipping
      "a.png,1,5,-4,-1,3",  # above the top: zero height
      "b.png,7,10,1,5,2",   # overhangs: clipped to [7, 1, 8, 5], kept
      "c.png,8,9,0,6,1",    # on the border: x1 = x2 = 8
  ])
  with pytest.warns(UserWarning) as record:
    src = BookDetectionSource(tmp_path, path, max_boxes=3)
  assert len(record) == 1  # once per file
  message = str(record[0].message)
  assert "labels.csv" in message and "'a.png' (2)" in message and "'c.png' (1)" in message
  assert "b.png" not in message and "dropped 3 box(es)" in message
  a, b, c = src[0], src[1], src[2]
  assert int(a["num_boxes"]) == 1 and a["classes"].tolist() == [1, 0, 0]
  np.testing.assert_array_equal(a["boxes"][0], [2, 0, 6, 3])
  np.testing.assert_array_equal(a["boxes"][1:], 0)
  assert int(b["num_boxes"]) == 1
  np.testing.assert_array_equal(b["boxes"][0], [7, 1, 8, 5])
  assert int(c["num_boxes"]) == 0 and not c["boxes"].any() and not c["classes"].any()
  # Every kept box has a positive area (so match_anchors / encode_boxes get no empty GT).
  boxes, counts = src.get_batch([0, 1, 2])["boxes"], [1, 1, 0]
  for row, n in zip(boxes, counts):
    assert ((row[:n, 2] > row[:n, 0]) & (row[:n, 3] > row[:n, 1])).all()


def test_detection_source_max_boxes_counts_kept_boxes(tmp_path):
  write_image(tmp_path / "a.png", 6, 8, seed=0)
  path = write_csv(tmp_path / "labels.csv", ["a.png,2,6,0,3,1", "a.png,9,12,1,4,2"])
  with pytest.warns(UserWarning, match="a.png"):
    src = BookDetectionSource(tmp_path, path, max_boxes=1)
  assert int(src[0]["num_boxes"]) == 1


def test_detection_source_without_clipped_boxes_does_not_warn(tmp_path, recwarn):
  write_image(tmp_path / "a.png", 6, 8, seed=0)
  BookDetectionSource(tmp_path, write_csv(tmp_path / "labels.csv", ["a.png,2,6,0,3,1"]))
  assert not [w for w in recwarn if "dropped" in str(w.message)]


@pytest.mark.parametrize("row, column", [
    ("a.jpg,1,2,3,4,2147483648", "class_id"),  # int32 max + 1
    ("a.jpg,1,2,3,4,99999999999999999999", "class_id"),
    ("a.jpg,1,1e39,3,4,1", "xmax"),  # beyond float32
])
def test_read_book_labels_values_past_the_dtypes(tmp_path, row, column):
  path = write_csv(tmp_path / "labels.csv", ["a.jpg,1,2,3,4,1", row])
  with pytest.raises(ValueError, match=rf"labels\.csv, line 3: column '{column}'"):
    read_book_labels(path)


def test_read_book_labels_int32_max_class_is_fine(tmp_path):
  path = write_csv(tmp_path / "labels.csv", ["a.jpg,1,2,3,4,2147483647"])
  assert read_book_labels(path)["a.jpg"][1].tolist() == [2147483647]


def test_write_book_split_round_trips_through_the_readers(tmp_path):
  from jaxvision.data import write_book_split  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (3, 20, 30, 3), dtype=np.uint8)
  boxes = np.zeros((3, 2, 4), np.float32)
  boxes[:, 0] = [1, 2, 11.5, 12]
  boxes[1, 1] = [5, 5, 25, 19]
  classes = np.array([[1, 0], [2, 1], [1, 0]], np.int32)
  num = np.array([1, 2, 1], np.int32)
  mask = rng.integers(0, 3, (3, 20, 30)).astype(np.uint8)
  names = ("background", "a", "b")
  write_book_split(tmp_path, "test", {"image": images, "boxes": boxes, "classes": classes,
                                      "num_boxes": num, "mask": mask}, class_names=names)
  assert (tmp_path / "classes.txt").read_text().split() == list(names)
  src = BookDetectionSource(tmp_path, tmp_path / "labels_test.csv", max_boxes=2)
  for i in range(3):
    r = src[i]
    np.testing.assert_array_equal(r["image"], images[i])  # PNG: lossless
    assert int(r["num_boxes"]) == num[i]
    np.testing.assert_allclose(r["boxes"][:num[i]], boxes[i, :num[i]])
    np.testing.assert_array_equal(r["classes"][:num[i]], classes[i, :num[i]])
  seg = BookSegmentationSource(tmp_path, tmp_path / "segmentation_test.npy")
  np.testing.assert_array_equal(np.stack([seg[i]["mask"] for i in range(3)]), mask)
  with pytest.raises(ValueError, match="split"):
    write_book_split(tmp_path, "val", {"image": images, "boxes": boxes, "classes": classes,
                                       "num_boxes": num})
  with pytest.raises(ValueError, match="class_names"):
    write_book_split(tmp_path, "test", {"image": images, "boxes": boxes, "classes": classes,
                                        "num_boxes": num, "mask": mask})
