"""A YOLO v1-style one-stage grid detector (Redmon et al. 2016) on a ResNet v2 backbone.

The image is divided into an ``S_h x S_w`` grid (the backbone's features, one stride-2 conv
block more: stride 8 on the cpu model). Every cell predicts ``boxes_per_cell`` boxes, each
``(tx, ty, tw, th, confidence)``, and one distribution over the foreground classes
(``num_classes - 1`` logits; class 0, the background, is what a low confidence means):

* centre ``((j + sigmoid(tx)) W / S_w, (i + sigmoid(ty)) H / S_h)`` for cell ``(i, j)``;
* size ``(sigmoid(tw)^2 W, sigmoid(th)^2 H)``: the network predicts the square root of the
  size as a fraction of the image, as v1 does, so an error on a small box costs more;
* score of class ``c``: ``sigmoid(confidence) * softmax(class logits)[c]``.

Training (:func:`targets`, :func:`loss`): the cell holding a ground-truth box's centre is
responsible for it (when two centres share a cell, the later box in the list wins: v1's
one-object-per-cell limit), and of its boxes the one whose prediction overlaps the ground
truth most (IoU, no gradient) is the responsible predictor. Loss, summed over the grid and
averaged over the images (v1's weights): ``lambda_coord = 5`` times the squared error of
the responsible predictor's centre (in cell units) and square-root size; the squared error
of its confidence to the IoU of its prediction (no gradient through the IoU); ``lambda_noobj
= 0.5`` times the squared confidence of every other predictor; the cross-entropy of the
cell's classes where a cell holds an object (v1 used squared error here).

Inference (:meth:`YOLO.detect`): every cell x box x class whose score is above the threshold,
class-aware NMS to ``max_detections`` rows (the format of
:class:`jaxvision.inference.Detections`).
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxvision import ops
from jaxvision.models.resnet import ResNetV2

__all__ = ["YOLO", "YOLOSmall", "YOLOTiny", "decode", "targets", "loss"]

_he_normal = nn.initializers.variance_scaling(2.0, "fan_in", "truncated_normal")


class YOLO(nn.Module):
  """YOLO v1-style detector (see the module notes).

  Attributes:
    num_classes: classes including the background (0).
    backbone: a module factory returning ``{"features": [B, h, w, c]}``.
    boxes_per_cell: predictors per grid cell (v1: 2).
    extra_strides: stride-2 conv blocks after the backbone (the grid is the backbone's
      stride times ``2 ** extra_strides``).
    width: channels of the detection convs.
  """

  num_classes: int
  backbone: Callable[..., nn.Module] = functools.partial(
      ResNetV2, depth=14, width=8, num_stages=2, stem_strides=2)
  boxes_per_cell: int = 2
  extra_strides: int = 1
  width: int = 128
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> dict[str, jax.Array]:
    """``x [B, H, W, 3]`` -> ``{"boxes": [B, S_h, S_w, K, 4]`` raw ``(tx, ty, tw, th)``,
    ``"confidence": [B, S_h, S_w, K]`` logits, ``"classes": [B, S_h, S_w, C - 1]`` logits``}``
    with ``K = boxes_per_cell``."""
    if self.num_classes < 2:
      raise ValueError(f"`num_classes` must count the background and at least one class, "
                       f"got {self.num_classes}.")
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    t = self.backbone(**kw)(x, train=train)["features"]
    for s in range(self.extra_strides + 1):
      t = nn.Conv(self.width, (3, 3), strides=2 if s < self.extra_strides else 1,
                  padding="SAME", use_bias=False, kernel_init=_he_normal, **kw)(t)
      t = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, **kw)(t)
      t = nn.leaky_relu(t, 0.1)
    k, c = self.boxes_per_cell, self.num_classes - 1
    out = nn.Conv(k * 5 + c, (1, 1), kernel_init=nn.initializers.normal(0.01),
                  bias_init=functools.partial(_output_bias, boxes_per_cell=k), **kw)(t)
    out = out.astype(jnp.float32)
    b, h, w, _ = out.shape
    boxes = out[..., :k * 5].reshape(b, h, w, k, 5)
    return {"boxes": boxes[..., :4], "confidence": boxes[..., 4], "classes": out[..., k * 5:]}

  def detect(self, x: jax.Array, *, score_threshold: float, nms_iou: float,
             max_detections: int) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Padded detections ``(boxes [B, M, 4], scores [B, M], classes [B, M] (1..C-1, -1
    padding), num_valid [B])`` in input pixels, clipped to the image (inference mode; see
    the module notes)."""
    out = self(x, train=False)
    h, w = x.shape[1:3]
    boxes = jnp.clip(decode(out["boxes"], (h, w)), 0.0,
                     jnp.array([w, h, w, h], jnp.float32))  # [B, h, w, K, 4], in the image
    conf = jax.nn.sigmoid(out["confidence"])[..., None]  # [B, h, w, K, 1]
    probs = jax.nn.softmax(out["classes"], axis=-1)[..., None, :]  # [B, h, w, 1, C - 1]
    scores = conf * probs  # [B, h, w, K, C - 1]
    b, c = x.shape[0], self.num_classes - 1
    n = scores.shape[1] * scores.shape[2] * scores.shape[3]
    flat_boxes = jnp.repeat(boxes.reshape(b, n, 4), c, axis=1)
    flat_scores = scores.reshape(b, n * c)
    classes = jnp.tile(jnp.arange(1, c + 1, dtype=jnp.int32), (b, n))
    keep, count = ops.batched_nms(flat_boxes, flat_scores, classes,
                                  iou_threshold=float(nms_iou),
                                  max_output_size=int(max_detections),
                                  score_threshold=float(score_threshold))
    ok = keep >= 0
    safe = jnp.maximum(keep, 0)
    return (jnp.where(ok[..., None], jnp.take_along_axis(flat_boxes, safe[..., None], 1), 0.0),
            jnp.where(ok, jnp.take_along_axis(flat_scores, safe, 1), 0.0),
            jnp.where(ok, jnp.take_along_axis(classes, safe, 1), -1), count)


def _output_bias(key, shape, dtype=jnp.float32, *, boxes_per_cell):
  """Zero, but confidence logits at -4.6 (probability 0.01, RetinaNet's prior): otherwise
  the no-object term of hundreds of empty cells at confidence 0.5 swamps the first steps."""
  del key
  bias = jnp.zeros(shape, dtype)
  return bias.at[jnp.arange(boxes_per_cell) * 5 + 4].set(-4.6)


# CPU-sized: SSDSmall's stride-4 backbone, one stride-2 block: a stride-8 grid (15 x 20 at
# 120 x 160), 2 boxes per cell.
YOLOSmall = functools.partial(YOLO)
# For tests.
YOLOTiny = functools.partial(
    YOLO, backbone=functools.partial(ResNetV2, depth=8, width=4, num_stages=2, stem_strides=2),
    width=16)


def decode(raw: jax.Array, image_size) -> jax.Array:
  """``[B, S_h, S_w, K, 4]`` raw outputs -> xyxy boxes in pixels of an ``(H, W)`` image."""
  h, w = raw.shape[1:3]
  img_h, img_w = float(image_size[0]), float(image_size[1])
  s = jax.nn.sigmoid(raw)
  cx = (jnp.arange(w, dtype=jnp.float32)[None, None, :, None] + s[..., 0]) * img_w / w
  cy = (jnp.arange(h, dtype=jnp.float32)[None, :, None, None] + s[..., 1]) * img_h / h
  bw, bh = s[..., 2] ** 2 * img_w, s[..., 3] ** 2 * img_h
  return jnp.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=-1)


def targets(boxes: jax.Array, classes: jax.Array, num_boxes: jax.Array, grid, image_size
            ) -> dict[str, jax.Array]:
  """The grid's ground truth: ``{"object" [B, S_h, S_w] bool, "box" [B, S_h, S_w, 4] xyxy,
  "class" [B, S_h, S_w] int32}``, the box whose centre falls in each cell (the last such
  valid box in the list; degenerate boxes are ignored)."""
  gh, gw = int(grid[0]), int(grid[1])
  img_h, img_w = float(image_size[0]), float(image_size[1])
  g = boxes.shape[1]
  valid = (jnp.arange(g) < jnp.asarray(num_boxes)[:, None]) & \
      (boxes[..., 2] > boxes[..., 0]) & (boxes[..., 3] > boxes[..., 1])
  cx = (boxes[..., 0] + boxes[..., 2]) / 2
  cy = (boxes[..., 1] + boxes[..., 3]) / 2
  j = jnp.clip(jnp.floor(cx * gw / img_w), 0, gw - 1).astype(jnp.int32)
  i = jnp.clip(jnp.floor(cy * gh / img_h), 0, gh - 1).astype(jnp.int32)
  cell = i * gw + j  # [B, G]
  hit = (cell[..., None] == jnp.arange(gh * gw)) & valid[..., None]  # [B, G, cells]
  rank = jnp.where(hit, jnp.arange(1, g + 1)[None, :, None], 0)
  owner = jnp.argmax(rank, axis=1)  # [B, cells]: the last valid box in the cell
  has = jnp.any(hit, axis=1)
  box = jnp.take_along_axis(boxes, owner[..., None], axis=1)
  cls = jnp.take_along_axis(classes, owner, axis=1)
  b = boxes.shape[0]
  return {"object": has.reshape(b, gh, gw),
          "box": jnp.where(has[..., None], box, 0.0).reshape(b, gh, gw, 4),
          "class": jnp.where(has, cls, 0).astype(jnp.int32).reshape(b, gh, gw)}


def _pairwise_same_shape_iou(a, b):
  """IoU of boxes ``a[..., 4]`` and ``b[..., 4]`` element-wise."""
  ix = jnp.maximum(jnp.minimum(a[..., 2], b[..., 2]) - jnp.maximum(a[..., 0], b[..., 0]), 0)
  iy = jnp.maximum(jnp.minimum(a[..., 3], b[..., 3]) - jnp.maximum(a[..., 1], b[..., 1]), 0)
  inter = ix * iy

  def area(x):
    return jnp.maximum(x[..., 2] - x[..., 0], 0) * jnp.maximum(x[..., 3] - x[..., 1], 0)

  union = area(a) + area(b) - inter
  return jnp.where(union > 0, inter / jnp.where(union > 0, union, 1.0), 0.0)


def loss(outputs: dict[str, jax.Array], boxes: jax.Array, classes: jax.Array,
         num_boxes: jax.Array, image_size, *, lambda_coord: float = 5.0,
         lambda_noobj: float = 0.5) -> tuple[jax.Array, dict[str, jax.Array]]:
  """YOLO v1's loss (see the module notes) of :class:`YOLO`'s outputs against padded
  ground truth ``boxes [B, G, 4]``, ``classes [B, G]`` (1..C-1), ``num_boxes [B]``.

  Returns ``(total, {"coord", "object", "no_object", "classification"})``, each averaged
  over the images.
  """
  raw, conf = outputs["boxes"], outputs["confidence"]
  b, gh, gw, k = conf.shape
  t = targets(boxes, classes, num_boxes, (gh, gw), image_size)
  pred = decode(raw, image_size)  # [B, h, w, K, 4]
  iou = _pairwise_same_shape_iou(pred, t["box"][..., None, :])  # [B, h, w, K]
  iou = jax.lax.stop_gradient(iou)
  best = jax.nn.one_hot(jnp.argmax(iou, axis=-1), k, dtype=bool)
  resp = best & t["object"][..., None]  # [B, h, w, K]
  img_h, img_w = float(image_size[0]), float(image_size[1])
  gt = t["box"]
  gx = (gt[..., 0] + gt[..., 2]) / 2 * gw / img_w
  gy = (gt[..., 1] + gt[..., 3]) / 2 * gh / img_h
  want = jnp.stack([gx - jnp.floor(gx), gy - jnp.floor(gy),
                    jnp.sqrt(jnp.maximum(gt[..., 2] - gt[..., 0], 0) / img_w),
                    jnp.sqrt(jnp.maximum(gt[..., 3] - gt[..., 1], 0) / img_h)], axis=-1)
  s = jax.nn.sigmoid(raw)  # (x, y in cell units; sqrt of the size fractions)
  coord = jnp.sum(jnp.sum((s - want[..., None, :]) ** 2, axis=-1) * resp)
  c = jax.nn.sigmoid(conf)
  obj = jnp.sum((c - iou) ** 2 * resp)
  noobj = jnp.sum(c ** 2 * ~resp)
  ce = ops.softmax_cross_entropy(outputs["classes"], jnp.maximum(t["class"] - 1, 0))
  cls = jnp.sum(ce * t["object"])
  parts = {"coord": lambda_coord * coord / b, "object": obj / b,
           "no_object": lambda_noobj * noobj / b, "classification": cls / b}
  return sum(parts.values()), parts
