"""Data for the experiment CLI tests: stand-in digits and a book-format folder (no MNIST), and
the check of the CLIs' ``--help`` output."""

from __future__ import annotations

import gzip
import pathlib
import re
import struct

import numpy as np
import pytest
from PIL import Image


def blob_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """``n`` uint8 [28, 28] blobs (a filled ellipse with a soft edge) and labels 0..9."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[:28, :28]
  images = np.zeros((n, 28, 28), np.uint8)
  for i in range(n):
    cy, cx = rng.uniform(10, 18, 2)
    ry, rx = rng.uniform(4, 10), rng.uniform(3, 9)
    r = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
    images[i] = np.clip((1.3 - r) * 255 / 0.6, 0, 255).astype(np.uint8)
  return images, rng.integers(0, 10, n)


_COLOURS = {1: (40, 90, 230), 2: (230, 40, 40), 3: (250, 170, 30)}  # water, soda, juice


def write_book_folder(root: pathlib.Path, *, num_train: int, num_test: int,
                      seed: int = 0) -> pathlib.Path:
  """A folder in the book's layout (Atienza ch. 11-12): JPEG-like images of different sizes
  with 1-3 coloured "drinks" each, ``labels_{train,test}.csv`` (``frame,xmin,xmax,ymin,
  ymax,class_id``), ``segmentation_{train,test}.npy`` (dicts of one-hot ``[H, W, 4]``
  masks) and ``classes.txt``."""
  root.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(seed)
  (root / "classes.txt").write_text("background\nwater\nsoda\njuice\n")
  for split, n in (("train", num_train), ("test", num_test)):
    rows, masks = ["frame,xmin,xmax,ymin,ymax,class_id"], {}
    for i in range(n):
      h, w = int(rng.integers(60, 100)), int(rng.integers(80, 130))
      image = rng.integers(60, 120, (h, w, 3)).astype(np.uint8)
      mask = np.zeros((h, w), np.uint8)
      for _ in range(int(rng.integers(1, 4))):
        c = int(rng.integers(1, 4))
        bw, bh = int(rng.integers(10, w // 2)), int(rng.integers(15, h // 2))
        x0, y0 = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
        image[y0:y0 + bh, x0:x0 + bw] = _COLOURS[c]
        mask[y0:y0 + bh, x0:x0 + bw] = c
        rows.append(f"{split}_{i}.png,{x0},{x0 + bw},{y0},{y0 + bh},{c}")
      Image.fromarray(image).save(root / f"{split}_{i}.png")
      masks[f"{split}_{i}.png"] = np.eye(4, dtype=np.uint8)[mask]
    (root / f"labels_{split}.csv").write_text("\n".join(rows) + "\n")
    np.save(root / f"segmentation_{split}.npy", masks)
  return root


def help_entries(text: str) -> dict[str, str]:
  """``--flag -> its help text`` (whitespace collapsed) from ``--help`` output."""
  entries, current = {}, None
  for line in text.splitlines():
    m = re.match(r"\s{2}(-[-\w]+)", line)
    if m:
      current = m.group(1)
      entries[current] = ""
    elif not line.strip() or not line.startswith(" "):
      current = None
    if current is not None:
      entries[current] += " " + line.strip()
  return {k: " ".join(v.split()) for k, v in entries.items()}


# The shared flags that take a value list their default in --help (switches and flags without a
# value default to off/unset).
WITH_DEFAULT = ("--config", "--steps", "--batch-size", "--seed", "--data-dir", "--progress",
                "--rho")


def check_help(capsys, main, flags) -> tuple[str, dict[str, str]]:
  """Runs a CLI's ``main(["--help"])``: it exits 0 and lists every flag of ``flags``, those in
  ``WITH_DEFAULT`` with their default; returns the help text and its :func:`help_entries`."""
  with pytest.raises(SystemExit) as e:
    main(["--help"])
  assert e.value.code == 0
  text = capsys.readouterr().out
  entries = help_entries(text)
  for flag in flags:
    assert flag in entries, flag
    if flag in WITH_DEFAULT:
      assert "default" in entries[flag], (flag, entries[flag])
  return text, entries


def write_idx(path, array, magic):
  """``array`` as a gzipped IDX file (MNIST's format)."""
  header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
  with gzip.open(path, "wb") as f:
    f.write(header + array.astype(np.uint8).tobytes())


def write_position_mnist(root: pathlib.Path, counts=(("train", 300), ("t10k", 220)), *,
                         noise: bool = False) -> str:
  """MNIST-format files of 8 x 5 blobs whose position encodes the label (learnable in a few
  steps), optionally on uniform noise in [0, 30); returns ``root``."""
  rng = np.random.default_rng(0)
  for prefix, n in counts:
    labels = rng.integers(0, 10, n)
    images = (rng.integers(0, 30, (n, 28, 28)).astype(np.uint8) if noise
              else np.zeros((n, 28, 28), np.uint8))
    for i, c in enumerate(labels):
      r, q = divmod(int(c), 5)
      images[i, 4 + 10 * r:12 + 10 * r, 2 + 5 * q:7 + 5 * q] = 255
    write_idx(root / f"{prefix}-images-idx3-ubyte.gz", images, 2051)
    write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", labels, 2049)
  return str(root)
