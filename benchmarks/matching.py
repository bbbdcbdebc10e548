"""Anchor matching + offset encoding: the SSD target-assignment hot path."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import data
from benchmarks.common import Case
from jaxvision import ops
from jaxvision.reference import matching as ref


@functools.partial(jax.jit, static_argnames=("iou_threshold",))
def _targets(anchors, gt, valid, *, iou_threshold):
  matched, _ = ops.match_anchors(anchors, gt, valid, iou_threshold=iou_threshold)
  boxes = jnp.take_along_axis(gt, jnp.maximum(matched, 0)[..., None], axis=-2)
  return matched, ops.encode_boxes(boxes, anchors)


def cases(mode: str) -> list[Case]:
  batch, num_anchors, max_gt = {"smoke": (2, 256, 5), "quick": (8, 8732, 50),
                                "full": (32, 8732, 50)}[mode]
  thr = 0.5
  anchors, _ = data.uniform_boxes(num_anchors, seed=3, extent=300.0)
  gt, valid = data.padded_gt(batch, max_gt)
  ja, jg, jv = jnp.asarray(anchors), jnp.asarray(gt), jnp.asarray(valid)
  impls = {
      "jaxvision": functools.partial(_targets, ja, jg, jv, iou_threshold=thr),
      "numpy-reference": lambda: [
          ref.match_anchors(anchors, gt[b], valid[b], iou_threshold=thr) for b in range(batch)],
  }

  def check(outs):
    mine = np.asarray(outs["jaxvision"][0])
    theirs = np.stack([np.asarray(m[0]) for m in outs["numpy-reference"]])
    if not np.array_equal(mine, theirs):
      raise AssertionError("match_anchors disagrees with the NumPy oracle")

  return [Case(family="matching",
               name=f"match_anchors+encode {num_anchors}x{max_gt} batch {batch}",
               size=num_anchors, subject="jaxvision", impls=impls, check=check, reps=3)]
