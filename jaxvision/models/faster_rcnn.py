"""Faster R-CNN: a region proposal network and an ROI Align box head (Ren et al. 2015).

Two stages on one backbone feature map (stride ``s``):

1. **RPN.** A 3x3 conv, then per point and anchor an objectness logit and 4 box offsets.
   Anchors (:func:`rpn_anchors`) are ``len(anchor_sizes) * len(aspect_ratios)`` boxes per
   feature-map point, centred on it, of area ``size^2`` and pixel aspect ratio ``w / h``,
   in the order of the conv's outputs (row-major ``(y, x)``, then sizes, then ratios).
   :func:`propose` decodes every anchor, clips to the image, keeps the ``pre_nms_top_n``
   best by objectness, runs NMS at ``rpn_nms_iou`` and keeps ``num_proposals`` boxes per
   image: static shapes under ``jit`` (padding rows are marked in a ``valid`` mask).
2. **Box head.** :func:`jaxvision.ops.roi_align` (``aligned=True``, ``roi_size`` squared,
   ``sampling_ratio`` samples per bin axis) on the padded ``[B, R, 4]`` proposals, two fully
   connected layers, a class logit per class (0 = background) and class-specific box offsets
   (``encode_boxes`` with ``variances`` (0.1, 0.2), i.e. torchvision's weights (10, 10, 5,
   5)) relative to the proposal.

Training (:func:`rpn_targets`, :func:`sample_rois`, :func:`losses`, used by
:func:`jaxvision.tasks.faster_rcnn_task`): RPN anchors are positive at IoU >= 0.7 with a
ground-truth box (plus each box's best anchor), negative below 0.3, and ``rpn_batch`` of them
per image are sampled with at most half positives; ROIs are the proposals plus the ground
truth boxes, foreground at IoU >= 0.5, background below, ``rois_per_image`` sampled with at
most ``positive_fraction`` foreground. Losses: binary cross-entropy and Huber on the RPN's
sampled anchors, cross-entropy and Huber on the sampled ROIs, each normalised by the number
of sampled rows. Proposals carry no gradient (the approximate joint training of the paper).

Inference (:meth:`FasterRCNN.detect`): per-class scores and boxes of every proposal, then
class-aware NMS (:func:`jaxvision.ops.batched_nms`) to ``max_detections`` padded rows, the
format of :class:`jaxvision.inference.Detections`.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxvision import ops
from jaxvision.models.resnet import ResNetV2

__all__ = ["FasterRCNN", "FasterRCNNSmall", "FasterRCNNTiny", "rpn_anchors", "propose",
           "rpn_targets", "sample_balanced", "sample_rois", "losses", "BOX_VARIANCES"]

BOX_VARIANCES = (0.1, 0.2)  # the box head's offsets (torchvision's weights 10, 10, 5, 5)
RPN_VARIANCES = (1.0, 1.0)  # the RPN's (torchvision's weights 1, 1, 1, 1)

_he_normal = nn.initializers.variance_scaling(2.0, "fan_in", "truncated_normal")


def rpn_anchors(image_size: Sequence[int], feature_size: Sequence[int],
                sizes: Sequence[float], aspect_ratios: Sequence[float]) -> np.ndarray:
  """``[h * w * len(sizes) * len(aspect_ratios), 4]`` float32 xyxy anchors in pixels.

  Point ``(i, j)`` of an ``h x w`` map over an ``H x W`` image is centred at ``((j + 0.5)
  W / w, (i + 0.5) H / h)``; its anchors have area ``size^2`` and ``width / height = r``
  (``w = size sqrt(r)``, ``h = size / sqrt(r)``), sizes outer, ratios inner.

  >>> rpn_anchors((8, 8), (1, 1), sizes=[4], aspect_ratios=[1, 4]).tolist()
  [[2.0, 2.0, 6.0, 6.0], [0.0, 3.0, 8.0, 5.0]]
  """
  (img_h, img_w), (h, w) = (int(v) for v in image_size), (int(v) for v in feature_size)
  if min(img_h, img_w, h, w) < 1:
    raise ValueError(f"sizes must be positive, got image {image_size}, features {feature_size}.")
  sizes = np.asarray(sizes, np.float64)
  ratios = np.asarray(aspect_ratios, np.float64)
  if sizes.ndim != 1 or ratios.ndim != 1 or not len(sizes) or not len(ratios) or \
      (sizes <= 0).any() or (ratios <= 0).any():
    raise ValueError(f"`sizes` and `aspect_ratios` must be non-empty lists of positive "
                     f"numbers, got {sizes.tolist()} and {ratios.tolist()}.")
  bw = (sizes[:, None] * np.sqrt(ratios)[None]).ravel()
  bh = (sizes[:, None] / np.sqrt(ratios)[None]).ravel()
  cy = (np.arange(h) + 0.5) * img_h / h
  cx = (np.arange(w) + 0.5) * img_w / w
  cy, cx = np.meshgrid(cy, cx, indexing="ij")
  cx, cy = cx[..., None], cy[..., None]
  boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=-1)
  return boxes.reshape(-1, 4).astype(np.float32)


def _clip(boxes, image_size):
  h, w = image_size
  return jnp.stack([jnp.clip(boxes[..., 0], 0, w), jnp.clip(boxes[..., 1], 0, h),
                    jnp.clip(boxes[..., 2], 0, w), jnp.clip(boxes[..., 3], 0, h)], axis=-1)


def propose(objectness: jax.Array, offsets: jax.Array, anchors: jax.Array, *,
            image_size: Sequence[int], pre_nms_top_n: int, num_proposals: int,
            nms_iou: float = 0.7, min_size: float = 1.0) -> tuple[jax.Array, jax.Array]:
  """Region proposals from the RPN's outputs, per image, with static shapes.

  Args:
    objectness: ``[B, A]`` logits.
    offsets: ``[B, A, 4]`` offsets (``RPN_VARIANCES``) relative to ``anchors [A, 4]``.
    image_size: ``(H, W)``: boxes are clipped to the image.
    pre_nms_top_n: the best anchors by objectness kept before NMS.
    num_proposals: output rows ``P`` per image.
    nms_iou: NMS threshold; boxes with a side below ``min_size`` pixels are dropped.

  Returns:
    ``(boxes [B, P, 4], valid [B, P] bool)`` by decreasing objectness; invalid rows are 0.
  """
  k = min(int(pre_nms_top_n), objectness.shape[-1])
  scores, idx = jax.lax.top_k(objectness.astype(jnp.float32), k)
  boxes = ops.decode_boxes(jnp.take_along_axis(offsets, idx[..., None], axis=1),
                           anchors[idx], variances=RPN_VARIANCES)
  boxes = _clip(boxes, tuple(image_size))
  big = ((boxes[..., 2] - boxes[..., 0]) >= min_size) & ((boxes[..., 3] - boxes[..., 1])
                                                         >= min_size)
  keep, _ = ops.nms(boxes, scores, iou_threshold=float(nms_iou),
                    max_output_size=int(num_proposals), valid=big & jnp.isfinite(scores))
  valid = keep >= 0
  out = jnp.take_along_axis(boxes, jnp.maximum(keep, 0)[..., None], axis=1)
  return jnp.where(valid[..., None], out, 0.0), valid


class FasterRCNN(nn.Module):
  """Faster R-CNN on a single backbone level (see the module notes).

  Attributes:
    num_classes: classes including the background (0).
    backbone: a module factory returning ``{"features": [B, h, w, c]}``
      (a :mod:`jaxvision.models.resnet` partial).
    anchor_sizes: RPN anchor sides ``sqrt(area)`` in pixels of the model's input.
    aspect_ratios: RPN anchor ``width / height`` in pixels.
    rpn_width: channels of the RPN's 3x3 conv.
    pre_nms_top_n: anchors kept by objectness before the RPN's NMS.
    proposals_train / proposals_test: proposals per image in training / inference.
    rpn_nms_iou: the RPN's NMS threshold.
    roi_size: ROI Align output side; sampling_ratio: its samples per bin axis.
    head_width: the box head's fully connected width.
    dtype / param_dtype: computation / parameter dtypes.
  """

  num_classes: int
  backbone: Callable[..., nn.Module] = functools.partial(
      ResNetV2, depth=14, width=8, num_stages=2, stem_strides=2)
  anchor_sizes: tuple[float, ...] = (16.0, 32.0, 64.0)
  aspect_ratios: tuple[float, ...] = (1.0, 0.5, 0.25)
  rpn_width: int = 64
  pre_nms_top_n: int = 600
  proposals_train: int = 128
  proposals_test: int = 64
  rpn_nms_iou: float = 0.7
  roi_size: int = 7
  sampling_ratio: int = 2
  head_width: int = 256
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @property
  def anchors_per_point(self) -> int:
    return len(self.anchor_sizes) * len(self.aspect_ratios)

  def setup(self):
    if self.num_classes < 2:
      raise ValueError(f"`num_classes` must count the background and at least one class, "
                       f"got {self.num_classes}.")
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    a = self.anchors_per_point
    self.body = self.backbone(**kw)
    self.rpn_conv = nn.Conv(self.rpn_width, (3, 3), padding="SAME", kernel_init=_he_normal,
                            **kw)
    small = nn.initializers.normal(0.01)
    self.rpn_logits = nn.Conv(a, (1, 1), kernel_init=small, **kw)
    self.rpn_offsets = nn.Conv(4 * a, (1, 1), kernel_init=small, **kw)
    self.fc1 = nn.Dense(self.head_width, kernel_init=_he_normal, **kw)
    self.fc2 = nn.Dense(self.head_width, kernel_init=_he_normal, **kw)
    self.class_logits = nn.Dense(self.num_classes, kernel_init=small, **kw)
    self.box_offsets = nn.Dense(4 * self.num_classes, kernel_init=nn.initializers.normal(
        0.001), **kw)

  def features(self, x: jax.Array, *, train: bool) -> jax.Array:
    """``[B, H, W, 3] -> [B, h, w, c]`` backbone features."""
    return self.body(x, train=train)["features"]

  def rpn(self, features: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(objectness [B, A] logits, offsets [B, A, 4])``, A in :func:`rpn_anchors` order."""
    b, h, w, _ = features.shape
    t = nn.relu(self.rpn_conv(features))
    logits = self.rpn_logits(t).reshape(b, h * w * self.anchors_per_point)
    offsets = self.rpn_offsets(t).reshape(b, h * w * self.anchors_per_point, 4)
    return logits.astype(jnp.float32), offsets.astype(jnp.float32)

  def head(self, features: jax.Array, rois: jax.Array, *, image_size: Sequence[int]
           ) -> tuple[jax.Array, jax.Array]:
    """Box head on ``rois [B, R, 4]`` (input pixels): ``(class logits [B, R, C], offsets
    [B, R, C, 4])``."""
    b, r = rois.shape[:2]
    scale = features.shape[1] / float(image_size[0])
    pooled = ops.roi_align(features, rois, output_size=self.roi_size, spatial_scale=scale,
                           sampling_ratio=self.sampling_ratio, aligned=True)
    t = pooled.reshape(b, r, -1).astype(self.dtype)
    t = nn.relu(self.fc2(nn.relu(self.fc1(t))))
    logits = self.class_logits(t).astype(jnp.float32)
    offsets = self.box_offsets(t).reshape(b, r, self.num_classes, 4).astype(jnp.float32)
    return logits, offsets

  def anchors(self, image_size: Sequence[int], feature_size: Sequence[int]) -> np.ndarray:
    return rpn_anchors(image_size, feature_size, self.anchor_sizes, self.aspect_ratios)

  def __call__(self, x: jax.Array, *, train: bool) -> dict[str, jax.Array]:
    """Every output on ``x [B, H, W, 3]``: ``features``, ``objectness``, ``rpn_offsets``,
    ``proposals [B, P, 4]``, ``proposal_valid``, ``classes [B, P, C]`` logits, ``offsets
    [B, P, C, 4]``."""
    return self._forward(x, train=train)

  def _forward(self, x, *, train):
    image_size = x.shape[1:3]
    f = self.features(x, train=train)
    objectness, rpn_offsets = self.rpn(f)
    anchors = jnp.asarray(self.anchors(image_size, f.shape[1:3]))
    proposals, valid = propose(
        jax.lax.stop_gradient(objectness), jax.lax.stop_gradient(rpn_offsets), anchors,
        image_size=image_size, pre_nms_top_n=self.pre_nms_top_n,
        num_proposals=self.proposals_train if train else self.proposals_test,
        nms_iou=self.rpn_nms_iou)
    logits, offsets = self.head(f, proposals, image_size=image_size)
    return {"features": f, "objectness": objectness, "rpn_offsets": rpn_offsets,
            "proposals": proposals, "proposal_valid": valid, "classes": logits,
            "offsets": offsets}

  def detect(self, x: jax.Array, *, score_threshold: float, nms_iou: float,
             max_detections: int) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Padded detections ``(boxes [B, K, 4], scores [B, K], classes [B, K], num_valid [B])``
    on ``x`` (inference mode): every proposal's every foreground class whose softmax
    probability is ``> score_threshold``, its class-specific box clipped to the image, then
    class-aware NMS at ``nms_iou``; padding rows are class -1, score 0."""
    return self._postprocess(self._forward(x, train=False), x.shape[1:3],
                             score_threshold=score_threshold, nms_iou=nms_iou,
                             max_detections=max_detections)

  def _postprocess(self, out, image_size, *, score_threshold, nms_iou, max_detections):
    probs = jax.nn.softmax(out["classes"], axis=-1)[..., 1:]  # [B, P, C - 1]
    b, p, c = probs.shape
    boxes = ops.decode_boxes(out["offsets"][:, :, 1:], out["proposals"][:, :, None],
                             variances=BOX_VARIANCES)
    boxes = _clip(boxes, image_size).reshape(b, p * c, 4)
    scores = probs.reshape(b, p * c)
    classes = jnp.broadcast_to(jnp.arange(1, c + 1, dtype=jnp.int32), (b, p, c)).reshape(b, -1)
    valid = jnp.repeat(out["proposal_valid"], c, axis=1)
    keep, count = ops.batched_nms(boxes, scores, classes, iou_threshold=float(nms_iou),
                                  max_output_size=int(max_detections),
                                  score_threshold=float(score_threshold), valid=valid)
    ok = keep >= 0
    safe = jnp.maximum(keep, 0)
    det_boxes = jnp.where(ok[..., None], jnp.take_along_axis(boxes, safe[..., None], 1), 0.0)
    det_scores = jnp.where(ok, jnp.take_along_axis(scores, safe, 1), 0.0)
    det_classes = jnp.where(ok, jnp.take_along_axis(classes, safe, 1), -1)
    return det_boxes, det_scores, det_classes, count


# CPU-sized: SSDSmall's backbone (stride 4, 64 channels), 3 sizes x 3 ratios.
FasterRCNNSmall = functools.partial(FasterRCNN)
# For tests.
FasterRCNNTiny = functools.partial(
    FasterRCNN, backbone=functools.partial(ResNetV2, depth=8, width=4, num_stages=2,
                                           stem_strides=2),
    anchor_sizes=(12.0, 24.0), aspect_ratios=(1.0, 0.5), rpn_width=16, pre_nms_top_n=64,
    proposals_train=16, proposals_test=8, roi_size=4, head_width=32)


# ---------------------------------------------------------------------------------------------
# Training targets and losses.


def sample_balanced(positive: jax.Array, negative: jax.Array, rng: jax.Array, *, num: int,
                    positive_fraction: float) -> tuple[jax.Array, jax.Array]:
  """Random balanced sampling with static shapes, per row of ``[B, N]`` masks.

  Keeps at most ``floor(num * positive_fraction)`` positives (uniformly at random among
  them) and fills up to ``num`` with random negatives (fewer when there are not enough).
  Returns ``(positive_kept, negative_kept)`` boolean ``[B, N]`` masks.
  """
  cap = int(num * float(positive_fraction))
  kp, kn = jax.random.split(rng)

  def ranks(mask, key):
    u = jnp.where(mask, jax.random.uniform(key, mask.shape), -1.0)
    order = jnp.argsort(-u, axis=-1)
    return jnp.argsort(order, axis=-1)  # 0 for the highest priority

  pos = positive & (ranks(positive, kp) < cap)
  n_neg = int(num) - jnp.sum(pos, axis=-1, keepdims=True)
  neg = negative & ~positive & (ranks(negative & ~positive, kn) < n_neg)
  return pos, neg


def _best_gt(rois, boxes, gt_valid):
  """Per ROI ``[B, R]`` the best valid ground truth's IoU and index."""
  iou = jax.vmap(ops.box_iou)(rois, boxes)  # [B, R, G]
  iou = jnp.where(gt_valid[:, None, :], iou, -1.0)
  return jnp.max(iou, axis=-1), jnp.argmax(iou, axis=-1)


def rpn_targets(anchors: jax.Array, boxes: jax.Array, num_boxes: jax.Array, *,
                positive_iou: float = 0.7, negative_iou: float = 0.3
                ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """``(positive [B, A], negative [B, A], offsets [B, A, 4])`` for the RPN: positive at IoU
  ``>= positive_iou`` or the best anchor of a box (:func:`jaxvision.ops.match_anchors`),
  negative below ``negative_iou`` and unmatched, the band between ignored."""
  valid = jnp.arange(boxes.shape[1]) < jnp.asarray(num_boxes)[:, None]
  matched, iou = ops.match_anchors(anchors, boxes, valid, iou_threshold=positive_iou)
  positive = matched >= 0
  negative = ~positive & (iou < negative_iou)
  gt = jnp.take_along_axis(boxes, jnp.maximum(matched, 0)[..., None], axis=1)
  gt = jnp.where(positive[..., None], gt, anchors)
  return positive, negative, ops.encode_boxes(gt, anchors, variances=RPN_VARIANCES)


def sample_rois(proposals: jax.Array, proposal_valid: jax.Array, boxes: jax.Array,
                classes: jax.Array, num_boxes: jax.Array, rng: jax.Array, *,
                rois_per_image: int, positive_fraction: float = 0.25, fg_iou: float = 0.5
                ) -> dict[str, jax.Array]:
  """The box head's training ROIs: proposals plus the ground truth, ``rois_per_image`` sampled.

  Returns ``{"rois" [B, R, 4], "labels" [B, R] int32 (0 background), "offsets" [B, R, 4]
  (``BOX_VARIANCES`` targets of the matched box), "weight" [B, R] (1 for a sampled row, 0 for
  filler when too few ROIs are eligible), "gt_index" [B, R] (the best ground-truth row)}``.
  The sampled foreground rows come first (at most ``rois_per_image * positive_fraction``).
  """
  gt_valid = jnp.arange(boxes.shape[1]) < jnp.asarray(num_boxes)[:, None]
  rois = jnp.concatenate([proposals, boxes], axis=1)
  valid = jnp.concatenate([proposal_valid, gt_valid], axis=1)
  iou, gt_index = _best_gt(rois, boxes, gt_valid)
  fg = valid & (iou >= fg_iou)
  bg = valid & ~fg
  pos, neg = sample_balanced(fg, bg, rng, num=rois_per_image,
                             positive_fraction=positive_fraction)
  priority = pos.astype(jnp.float32) * 2 + neg.astype(jnp.float32)
  _, take = jax.lax.top_k(priority, int(rois_per_image))
  picked = jnp.take_along_axis(rois, take[..., None], axis=1)
  is_fg = jnp.take_along_axis(pos, take, axis=1)
  weight = (is_fg | jnp.take_along_axis(neg, take, axis=1)).astype(jnp.float32)
  g = jnp.take_along_axis(gt_index, take, axis=1)
  labels = jnp.where(is_fg, jnp.take_along_axis(classes, g, axis=1), 0).astype(jnp.int32)
  gt = jnp.take_along_axis(boxes, g[..., None], axis=1)
  gt = jnp.where(is_fg[..., None], gt, picked)
  offsets = ops.encode_boxes(gt, picked, variances=BOX_VARIANCES)
  return {"rois": picked, "labels": labels, "offsets": offsets, "weight": weight,
          "gt_index": g}


def losses(model: FasterRCNN, params, batch_stats, images: jax.Array, boxes: jax.Array,
           classes: jax.Array, num_boxes: jax.Array, rng: jax.Array, *, rpn_batch: int = 256,
           rois_per_image: int = 64, positive_fraction: float = 0.25, huber_delta: float = 1.0,
           extra_loss: Callable[..., jax.Array] | None = None
           ) -> tuple[jax.Array, tuple[dict[str, jax.Array], Any]]:
  """The four Faster R-CNN losses on a batch (training mode).

  ``extra_loss(variables, features, sampled, image_size) -> (loss, parts)``, if given: its
  loss is added to the total and its parts to ``parts`` (Mask R-CNN's mask loss; ``sampled``
  is :func:`sample_rois`' dict).

  Returns ``(total, (parts, new_batch_stats))`` with ``parts`` ``rpn_objectness``,
  ``rpn_box``, ``classification``, ``box``, ``num_foreground`` (mean foreground ROIs per
  image).
  """
  variables = {"params": params, "batch_stats": batch_stats}
  image_size = images.shape[1:3]
  feats, updates = model.apply(variables, images, train=True, method=FasterRCNN.features,
                               mutable=["batch_stats"])
  objectness, rpn_offsets = model.apply(variables, feats, method=FasterRCNN.rpn)
  anchors = jnp.asarray(rpn_anchors(image_size, feats.shape[1:3], model.anchor_sizes,
                                    model.aspect_ratios))
  r_rpn, r_roi = jax.random.split(rng)
  positive, negative, targets = rpn_targets(anchors, boxes, num_boxes)
  pos, neg = sample_balanced(positive, negative, r_rpn, num=rpn_batch, positive_fraction=0.5)
  sampled = (pos | neg).astype(jnp.float32)
  n_rpn = jnp.maximum(jnp.sum(sampled), 1.0)
  bce = optax.sigmoid_binary_cross_entropy(objectness, pos.astype(jnp.float32))
  rpn_objectness = jnp.sum(bce * sampled) / n_rpn
  rpn_box = jnp.sum(ops.smooth_l1_loss(rpn_offsets, targets, delta=huber_delta) * pos) / n_rpn

  proposals, valid = propose(jax.lax.stop_gradient(objectness),
                             jax.lax.stop_gradient(rpn_offsets), anchors,
                             image_size=image_size, pre_nms_top_n=model.pre_nms_top_n,
                             num_proposals=model.proposals_train, nms_iou=model.rpn_nms_iou)
  s = sample_rois(proposals, valid, boxes, classes, num_boxes, r_roi,
                  rois_per_image=rois_per_image, positive_fraction=positive_fraction)
  logits, offsets = model.apply(variables, feats, s["rois"], image_size=image_size,
                                method=FasterRCNN.head)
  n_roi = jnp.maximum(jnp.sum(s["weight"]), 1.0)
  ce = ops.softmax_cross_entropy(logits, s["labels"])
  classification = jnp.sum(ce * s["weight"]) / n_roi
  own = jnp.take_along_axis(offsets, s["labels"][..., None, None], axis=2)[:, :, 0]
  fg = (s["labels"] > 0).astype(jnp.float32) * s["weight"]
  box = jnp.sum(ops.smooth_l1_loss(own, s["offsets"], delta=huber_delta) * fg) / n_roi
  total = rpn_objectness + rpn_box + classification + box
  parts = {"rpn_objectness": rpn_objectness, "rpn_box": rpn_box,
           "classification": classification, "box": box,
           "num_foreground": jnp.sum(fg) / images.shape[0]}
  if extra_loss is not None:
    value, more = extra_loss(variables, feats, s, image_size)
    total = total + value
    parts.update(more)
  return total, (parts, updates["batch_stats"])

