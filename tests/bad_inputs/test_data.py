"""Bad input to the data readers: the book's label CSV and mask .npy, the book sources,
``datasets.load_dataset`` specs and the MNIST loader: one table.

Each row is a call on files written into a temporary directory ``d`` and what it must give:
an exception whose message names the file (and line and column, for a bad CSV row) or the
argument, or a documented value (dropped zero-area rows; boxes emptied by clipping dropped
with one warning per file, issue 13).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from jaxvision.data import datasets, mnist
from jaxvision.data.book import (BookDetectionSource, BookSegmentationSource, read_book_labels,
                                 read_book_masks)
from tests.bad_inputs._table import Returns, assert_outcome

HEADER = "frame,xmin,xmax,ymin,ymax,class_id\n"

# file name -> CSV body (after the header; None: the whole file is the text given)
_CSVS = {
    "ok.csv": "a.png,2,6,0,3,1\n",
    "empty.csv": None,
    "no_class.csv": "frame,xmin,xmax,ymin,ymax\na.png,1,2,3,4\n",
    "short.csv": "a.png,1,2,3\n",
    "word.csv": "a.png,1,two,3,4,1\n",
    "inf.csv": "a.png,1,inf,3,4,1\n",
    "x_inverted.csv": "a.png,5,2,3,4,1\n",
    "y_inverted.csv": "a.png,1,2,4,3,1\n",
    "class_zero.csv": "a.png,1,2,3,4,0\n",
    "class_half.csv": "a.png,1,2,3,4,1.5\n",
    "class_int64.csv": "a.png,1,2,3,4,1\na.png,1,2,3,4,2147483648\n",
    "coord_f64.csv": "a.png,1,2,3,1e39,1\n",
    "no_frame.csv": " ,1,2,3,4,1\n",
    "zero_area.csv": "a.png,1,1,3,4,1\nb.png,1,2,3,4,2\n",
    "outside.csv": "a.png,2,6,0,3,1\na.png,9,12,1,4,2\n",
    "two_boxes.csv": "a.png,2,6,0,3,1\na.png,1,5,1,4,2\n",
    "missing_image.csv": "nope.png,1,2,3,4,1\n",
}


@pytest.fixture(scope="module")
def d(tmp_path_factory):
  d = tmp_path_factory.mktemp("data")
  for name, body in _CSVS.items():
    (d / name).write_text("" if body is None else (body if body.startswith("frame") else
                                                   HEADER + body))
  Image.new("RGB", (8, 6)).save(d / "a.png")
  np.save(d / "list.npy", np.arange(3))
  np.save(d / "mask_4d.npy", {"a.png": np.zeros((2, 2, 1, 3))})
  np.save(d / "mask_negative.npy", {"a.png": np.array([[0, -1]])})
  np.save(d / "mask_float.npy", {"a.png": np.array([[0.0, 1.5]])})
  np.save(d / "mask_size.npy", {"a.png": np.zeros((2, 2), np.uint8)})
  (d / "book_dir").mkdir()
  (d / "mnist_empty").mkdir()
  (d / "bad_magic-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01" + b"\x00" * 8)
  (d / "truncated-idx1-ubyte").write_bytes(b"\x00\x00")
  return d


def _source_warns(d):
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    src = BookDetectionSource(d, d / "outside.csv")
  return src, [str(w.message) for w in caught if issubclass(w.category, UserWarning)]


def _load(spec, task="detection", **kw):
  return datasets.load_dataset(spec, task=task, image_size=(8, 8), **kw)


ROWS = [
    # --- read_book_labels -------------------------------------------------------------------
    ("labels-missing", lambda d: read_book_labels(d / "missing.csv"),
     (FileNotFoundError, r"missing\.csv.* does not exist")),
    ("labels-empty", lambda d: read_book_labels(d / "empty.csv"),
     (ValueError, r"empty\.csv: empty file; expected a header")),
    ("labels-no-column", lambda d: read_book_labels(d / "no_class.csv"),
     (ValueError, r"no_class\.csv: missing column 'class_id'")),
    ("labels-short-row", lambda d: read_book_labels(d / "short.csv"),
     (ValueError, r"short\.csv, line 2: expected 6 fields")),
    ("labels-not-a-number", lambda d: read_book_labels(d / "word.csv"),
     (ValueError, r"word\.csv, line 2: column 'xmax' must be a number, got 'two'")),
    ("labels-not-finite", lambda d: read_book_labels(d / "inf.csv"),
     (ValueError, r"inf\.csv, line 2: column 'xmax' must be finite")),
    ("labels-x-inverted", lambda d: read_book_labels(d / "x_inverted.csv"),
     (ValueError, r"x_inverted\.csv, line 2: xmax 2 < xmin 5")),
    ("labels-y-inverted", lambda d: read_book_labels(d / "y_inverted.csv"),
     (ValueError, r"y_inverted\.csv, line 2: ymax 3 < ymin 4")),
    ("labels-class-zero", lambda d: read_book_labels(d / "class_zero.csv"),
     (ValueError, r"class_zero\.csv, line 2: class_id must be a positive integer")),
    ("labels-class-half", lambda d: read_book_labels(d / "class_half.csv"),
     (ValueError, r"class_half\.csv, line 2: class_id must be a positive integer")),
    ("labels-class-past-int32", lambda d: read_book_labels(d / "class_int64.csv"),
     (ValueError, r"class_int64\.csv, line 3: column 'class_id' is '2147483648', past the "
      r"largest int32")),
    ("labels-coord-past-float32", lambda d: read_book_labels(d / "coord_f64.csv"),
     (ValueError, r"coord_f64\.csv, line 2: column 'ymax' is 1e\+39, beyond float32")),
    ("labels-no-frame", lambda d: read_book_labels(d / "no_frame.csv"),
     (ValueError, r"no_frame\.csv, line 2: empty 'frame'")),
    ("labels-zero-area-dropped", lambda d: read_book_labels(d / "zero_area.csv"),
     Returns(lambda r: r["a.png"][0].shape == (0, 4) and len(r["b.png"][1]) == 1,
             "zero-area row dropped; its frame stays, with no boxes")),
    # --- book sources -------------------------------------------------------------------------
    ("source-box-outside-image", _source_warns,
     Returns(lambda r: (int(r[0][0]["num_boxes"]) == 1 and len(r[1]) == 1
                        and "outside.csv" in r[1][0] and "'a.png' (1)" in r[1][0]),
             "dropped, one warning naming the file and frame")),
    ("source-max-boxes", lambda d: BookDetectionSource(d, d / "two_boxes.csv", max_boxes=1),
     (ValueError, r"'a\.png' has 2 boxes in .*two_boxes\.csv, more than `max_boxes` = 1")),
    ("source-max-boxes-zero", lambda d: BookDetectionSource(d, d / "ok.csv", max_boxes=0),
     (ValueError, r"`max_boxes` must be a positive int or None, got 0")),
    ("source-image-size", lambda d: BookDetectionSource(d, d / "ok.csv", image_size=(0, 4)),
     (ValueError, r"`image_size` must be a pair of positive ints")),
    ("source-missing-image", lambda d: BookDetectionSource(d, d / "missing_image.csv"),
     (FileNotFoundError, r"nope\.png.* does not exist")),
    # --- read_book_masks / BookSegmentationSource ----------------------------------------------
    ("masks-missing", lambda d: read_book_masks(d / "missing.npy"),
     (FileNotFoundError, r"missing\.npy.* does not exist")),
    ("masks-not-a-dict", lambda d: read_book_masks(d / "list.npy"),
     (ValueError, r"list\.npy: expected a pickled dict")),
    ("masks-bad-shape", lambda d: read_book_masks(d / "mask_4d.npy"),
     (ValueError, r"mask_4d\.npy: mask 'a\.png' must be \[H, W\] class ids")),
    ("masks-negative", lambda d: read_book_masks(d / "mask_negative.npy"),
     (ValueError, r"mask_negative\.npy: mask 'a\.png' has class ids in \[-1, 0\]")),
    ("masks-float", lambda d: read_book_masks(d / "mask_float.npy"),
     (ValueError, r"mask_float\.npy: mask 'a\.png' .* must hold integer class ids")),
    ("masks-size", lambda d: BookSegmentationSource(d, d / "mask_size.npy"),
     (ValueError, r"'a\.png': the image is \(6, 8\).*mask_size\.npy is \(2, 2\)")),
    # --- datasets.load_dataset specs -------------------------------------------------------------
    ("dataset-unknown", lambda d: _load("imagenet"),
     (ValueError, r"Unknown data set 'imagenet' \(`spec`\); the choices are")),
    ("dataset-task", lambda d: _load("scenes", task="classification"),
     (ValueError, r"`task` must be one of")),
    ("dataset-book-no-dir", lambda d: _load("book"),
     (ValueError, r"`spec` 'book': the book's layout needs a directory")),
    ("dataset-book-missing-dir", lambda d: _load(f"book:{d}/nowhere"),
     (FileNotFoundError, r"Book data directory .*nowhere.* does not exist")),
    ("dataset-book-missing-csv", lambda d: _load(f"book:{d}/book_dir"),
     (FileNotFoundError, r"book_dir/labels_train\.csv.* does not exist")),
    ("dataset-max-boxes", lambda d: _load("scenes", max_boxes=0),
     (ValueError, r"`max_boxes` must be a positive int or None")),
    # --- MNIST -----------------------------------------------------------------------------
    ("mnist-split", lambda d: mnist.load_mnist("validation", data_dir=d / "mnist_empty"),
     (ValueError, r"`split` must be one of")),
    ("mnist-missing-files", lambda d: mnist.load_mnist("train", data_dir=d / "mnist_empty"),
     (FileNotFoundError, r"mnist_empty")),
    ("idx-missing", lambda d: mnist.read_idx(d / "nothing-idx1-ubyte"),
     (FileNotFoundError, r"nothing-idx1-ubyte")),
    ("idx-bad-magic", lambda d: mnist.read_idx(d / "bad_magic-idx1-ubyte", magic=2051),
     (ValueError, r"bad_magic-idx1-ubyte: bad magic number 2049, expected 2051")),
    ("idx-truncated", lambda d: mnist.read_idx(d / "truncated-idx1-ubyte"),
     (ValueError, r"truncated-idx1-ubyte: truncated IDX file")),
]


@pytest.mark.parametrize("call, expected", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_bad_input(call, expected, d):
  assert_outcome(lambda: call(d), expected)
