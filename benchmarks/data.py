"""Deterministic, realistic benchmark inputs (NumPy float32).

With ``$JAXVISION_BENCH_INPUTS`` set (``benchmarks.run`` sets it), each input is written once
to an ``.npz`` there by the first process that asks and read back by every other, so the
worker processes of an isolated run time the same bytes.
"""

from __future__ import annotations

import functools
import os
import pathlib

import numpy as np


def _from_file(fn):
  """Caches ``fn``'s tuple of arrays in ``$JAXVISION_BENCH_INPUTS/<fn>-<args>.npz``."""

  @functools.wraps(fn)
  def wrapper(*args, **kwargs):
    folder = os.environ.get("JAXVISION_BENCH_INPUTS")
    if not folder:
      return fn(*args, **kwargs)
    key = "-".join([fn.__name__, *map(str, args)]
                   + [f"{k}={v}" for k, v in sorted(kwargs.items())])
    path = pathlib.Path(folder) / f"{key}.npz"
    if path.exists():
      with np.load(path) as f:
        return tuple(f[f"a{i}"] for i in range(len(f.files)))
    out = fn(*args, **kwargs)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, **{f"a{i}": a for i, a in enumerate(out)})
    os.replace(tmp, path)  # atomic: a reader sees the whole file or none
    return out

  return wrapper


@_from_file
def uniform_boxes(n: int, *, seed: int = 0, extent: float = 1000.0) -> tuple[np.ndarray, np.ndarray]:
  """``n`` boxes scattered uniformly over an ``extent``-pixel image, sides 10-100 px."""
  rng = np.random.default_rng(seed)
  xy = rng.uniform(0, extent, (n, 2))
  wh = rng.uniform(10, 100, (n, 2))
  boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
  return boxes, rng.uniform(0, 1, n).astype(np.float32)


@_from_file
def clustered_boxes(n: int, *, seed: int = 0, extent: float = 1000.0,
                    per_object: int = 100) -> tuple[np.ndarray, np.ndarray]:
  """Detector-like boxes: ``n / per_object`` objects, each with a cloud of jittered proposals.

  Proposals around an object have centres jittered by ~10% of its size and sides scaled by
  0.7-1.3, so they overlap heavily, as a dense detector's raw outputs do.
  """
  rng = np.random.default_rng(seed)
  k = max(1, n // per_object)
  centres = rng.uniform(50, extent - 50, (k, 2))
  sizes = rng.uniform(20, 200, (k, 2))
  owner = rng.integers(0, k, n)
  ctr = centres[owner] + rng.normal(0, 0.1, (n, 2)) * sizes[owner]
  wh = sizes[owner] * rng.uniform(0.7, 1.3, (n, 2))
  boxes = np.concatenate([ctr - wh / 2, ctr + wh / 2], axis=1).astype(np.float32)
  return boxes, rng.uniform(0, 1, n).astype(np.float32)


def boxes(kind: str, n: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  return {"uniform": uniform_boxes, "clustered": clustered_boxes}[kind](n, seed=seed)


@_from_file
def ssd_outputs(batch: int = 8, num_anchors: int = 8732, num_classes: int = 21, *,
                objects: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """SSD300-like decoded boxes ``[B, A, 4]`` (normalized) and softmax scores ``[B, A, C]``.

  Background (column 0) dominates; anchors that overlap one of a few objects per image put
  most of their mass on that object's class. Scores above 0.01 per class: a few percent.
  """
  rng = np.random.default_rng(seed)
  ctr = rng.uniform(0, 1, (batch, num_anchors, 2))
  wh = rng.uniform(0.04, 0.6, (batch, num_anchors, 2))
  boxes = np.concatenate([ctr - wh / 2, ctr + wh / 2], axis=-1)
  logits = rng.normal(0, 1, (batch, num_anchors, num_classes))
  logits[..., 0] += 5.0
  for b in range(batch):
    obj_ctr = rng.uniform(0.1, 0.9, (objects, 2))
    obj_cls = rng.integers(1, num_classes, objects)
    dist = np.linalg.norm(ctr[b, :, None, :] - obj_ctr[None], axis=-1)  # [A, objects]
    near = dist.argmin(axis=1)
    close = dist.min(axis=1) < 0.08
    logits[b, close, obj_cls[near[close]]] += rng.uniform(4, 9, close.sum())
  probs = np.exp(logits - logits.max(-1, keepdims=True))
  probs /= probs.sum(-1, keepdims=True)
  return boxes.astype(np.float32), probs.astype(np.float32)


@_from_file
def padded_gt(batch: int, max_gt: int, *, seed: int = 0, extent: float = 300.0,
              ) -> tuple[np.ndarray, np.ndarray]:
  """``[B, G, 4]`` ground-truth boxes (1..G valid per image) and their validity mask."""
  rng = np.random.default_rng(seed)
  xy = rng.uniform(0, extent * 0.8, (batch, max_gt, 2))
  wh = rng.uniform(extent * 0.05, extent * 0.4, (batch, max_gt, 2))
  gt = np.concatenate([xy, np.minimum(xy + wh, extent)], axis=-1).astype(np.float32)
  count = rng.integers(1, max_gt + 1, batch)
  valid = np.arange(max_gt)[None, :] < count[:, None]
  return np.where(valid[..., None], gt, 0.0).astype(np.float32), valid
