"""Video classification data: clips of one MNIST digit moving, rotating or growing, labelled
by digit and motion (a "moving MNIST" made for classification), for the models of
:mod:`jaxvision.models.video`.

A clip is ``uint8 [T, S, S, 1]``. Motions (:data:`MOTIONS`): a translation at 2 px per
frame in one of 8 compass directions (from a random start that keeps the whole path inside
the frame), an anticlockwise rotation (12 degrees per frame, from a random tilt) or growth
(the digit's size from 55% to 100%), the last two in place. A single frame shows the digit
but not where it is going: the single-frame baseline's motion accuracy measures how much of
the motion label a still image gives away.

Records: ``{"clip", "label": digit * 10 + motion, "digit", "motion"}``.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np
from scipy import ndimage

from jaxvision.data import ArraySource

__all__ = ["MOTIONS", "moving_digit_clips", "clip_sources", "experiment_data",
           "factorised_accuracy", "save_clip_predictions"]

MOTIONS = ("east", "north-east", "north", "north-west", "west", "south-west", "south",
           "south-east", "rotate", "grow")
_SPEED = 2.0     # pixels per frame
_SIZE = 16.0     # the digit's box (pixels) while moving or rotating


def _warp(digit: np.ndarray, centre, angle_deg: float, size: float, out: int) -> np.ndarray:
  """``digit [28, 28]`` drawn ``size`` px wide, rotated by ``angle`` about its centre,
  centred at ``centre = (y, x)`` of an ``out x out`` frame (bilinear)."""
  scale = 28.0 / size                                    # input px per output px
  a = np.deg2rad(angle_deg)
  rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
  matrix = rot * scale
  offset = np.array([13.5, 13.5]) - matrix @ np.asarray(centre, np.float64)
  return ndimage.affine_transform(digit.astype(np.float32), matrix, offset, output_shape=(out, out),
                                  order=1, cval=0.0)


def moving_digit_clips(digits: np.ndarray, labels: np.ndarray, n: int, *, frames: int = 8,
                       size: int = 32, seed: int = 0) -> dict[str, np.ndarray]:
  """``n`` clips from the ``[N, 28, 28]`` uint8 ``digits``: clip ``i`` depends only on
  ``(seed, i)``. Returns arrays ``clip [n, frames, size, size, 1]`` uint8, ``digit``,
  ``motion`` and ``label = digit * 10 + motion`` (int32)."""
  digits = np.asarray(digits)
  if digits.ndim == 4 and digits.shape[-1] == 1:
    digits = digits[..., 0]
  if digits.ndim != 3 or digits.shape[1:] != (28, 28):
    raise ValueError(f"`digits` must be [N, 28, 28], got shape {digits.shape}.")
  labels = np.asarray(labels)
  if labels.shape != (len(digits),):
    raise ValueError(f"`labels` must be [{len(digits)}], got shape {labels.shape}.")
  if int(frames) < 2 or int(size) < 24 or int(n) < 1:
    raise ValueError(f"need n >= 1, frames >= 2 and size >= 24, got {n}, {frames}, {size}.")
  travel = _SPEED * (frames - 1)
  if _SIZE + travel > size:
    raise ValueError(f"a {frames}-frame path at {_SPEED:g} px/frame does not fit a {size}-px "
                     f"frame; use fewer frames or a larger size.")
  clips = np.zeros((n, frames, size, size, 1), np.uint8)
  out_digit = np.zeros(n, np.int32)
  out_motion = np.zeros(n, np.int32)
  half = _SIZE / 2
  for i in range(n):
    rng = np.random.default_rng((seed, i))
    k = int(rng.integers(len(digits)))
    motion = int(rng.integers(len(MOTIONS)))
    img = digits[k]
    t = np.arange(frames)
    if motion < 8:
      a = np.deg2rad(45.0 * motion)
      v = np.array([-np.sin(a), np.cos(a)]) * _SPEED      # (dy, dx); north is up
      lo = half - np.minimum(v, 0) * (frames - 1)
      hi = size - half - np.maximum(v, 0) * (frames - 1)
      start = rng.uniform(lo, hi)
      centres = start[None] + t[:, None] * v[None]
      angles, sizes = np.zeros(frames), np.full(frames, _SIZE)
    else:
      c = rng.uniform(size / 2 - 3, size / 2 + 3, 2)
      centres = np.repeat(c[None], frames, 0)
      if motion == 8:
        angles = rng.uniform(-30, 30) + 12.0 * t
        sizes = np.full(frames, _SIZE)
      else:
        angles = np.zeros(frames)
        sizes = np.linspace(0.55, 1.0, frames) * min(size - 4, 1.5 * _SIZE)
    for f in range(frames):
      clips[i, f, :, :, 0] = np.clip(_warp(img, centres[f], angles[f], sizes[f], size), 0,
                                     255).astype(np.uint8)
    out_digit[i], out_motion[i] = int(labels[k]), motion
  return {"clip": clips, "digit": out_digit, "motion": out_motion,
          "label": out_digit * len(MOTIONS) + out_motion}


def clip_sources(train_digits, train_labels, test_digits, test_labels, *, train: int,
                 test: int, frames: int = 8, size: int = 32, seed: int = 0):
  """``(train, test)`` :class:`~jaxvision.data.ArraySource` s of clips: training clips from
  the training digits, test clips from the test digits."""
  return (ArraySource(moving_digit_clips(train_digits, train_labels, train, frames=frames,
                                         size=size, seed=seed)),
          ArraySource(moving_digit_clips(test_digits, test_labels, test, frames=frames,
                                         size=size, seed=seed + 1)))


def experiment_data(data: Mapping[str, Any], data_dir: Any = None):
  """``(train, test, spec_fields)`` for :func:`jaxvision.sequence.run_inputs_experiment`:
  MNIST from ``data_dir`` (or ``$JAXVISION_DATA_DIR``), ``data = {"train": N, "test": M,
  "frames": T, "size": S, "seed": s}``."""
  from jaxvision.data import MnistSource  # pylint: disable=import-outside-toplevel
  tr, te = MnistSource("train", data_dir=data_dir), MnistSource("test", data_dir=data_dir)
  frames, size = int(data.get("frames", 8)), int(data.get("size", 32))
  train, test = clip_sources(tr.arrays["image"], tr.arrays["label"], te.arrays["image"],
                             te.arrays["label"], train=int(data.get("train", 10000)),
                             test=int(data.get("test", 2000)), frames=frames, size=size,
                             seed=int(data.get("seed", 0)))
  names = tuple(f"{d} {m}" for d in range(10) for m in MOTIONS)
  fields = {"inputs": {"clip": ((frames, size, size, 1), "uint8")}, "num_classes": 100,
            "class_names": names, "attributes": {"num_motions": len(MOTIONS)},
            "metadata": {"motion_names": list(MOTIONS)}}
  return train, test, fields


def factorised_accuracy(predictions: np.ndarray, data) -> dict[str, Any]:
  """Digit accuracy, motion accuracy and motion accuracy per motion of joint predictions
  (``d * 10 + m``) on records with ``digit`` and ``motion``."""
  arrays = data if isinstance(data, Mapping) else data.arrays
  pred = np.asarray(predictions)
  pd, pm = pred // len(MOTIONS), pred % len(MOTIONS)
  d, m = np.asarray(arrays["digit"]), np.asarray(arrays["motion"])
  return {"digit_accuracy": float(np.mean(pd == d)), "motion_accuracy": float(np.mean(pm == m)),
          "motion_accuracy_per_motion": {MOTIONS[k]: float(np.mean(pm[m == k] == k))
                                         for k in range(len(MOTIONS)) if np.any(m == k)}}


def save_clip_predictions(path: str | os.PathLike, clips: np.ndarray, truth: Sequence[int],
                          predictions: Sequence[int], *, title: str = "") -> str:
  """A PNG: one row of frames per clip, captioned with the true and predicted (digit,
  motion), green when both are right, red otherwise."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  clips = np.asarray(clips)
  n, t = clips.shape[:2]
  fig, axes = plt.subplots(n, t, figsize=(1.1 * t + 2.6, 1.15 * n + 0.6), squeeze=False)
  for i in range(n):
    for f in range(t):
      ax = axes[i, f]
      ax.imshow(clips[i, f, :, :, 0], cmap="gray", vmin=0, vmax=255)
      ax.set_xticks([])
      ax.set_yticks([])
      if i == 0:
        ax.set_title(f"t={f}", fontsize=8)
    y, p = int(truth[i]), int(predictions[i])
    text = (f"true {y // 10} {MOTIONS[y % 10]}\npred {p // 10} {MOTIONS[p % 10]}")
    axes[i, -1].text(1.08, 0.5, text, transform=axes[i, -1].transAxes, fontsize=8,
                     va="center", color="green" if y == p else "red")
  fig.suptitle(title, fontsize=10)
  fig.subplots_adjust(left=0.02, right=0.78, top=0.9, bottom=0.02, wspace=0.05, hspace=0.1)
  fig.savefig(path, dpi=80)
  plt.close(fig)
  return str(path)
