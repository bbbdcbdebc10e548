"""Mask R-CNN: Faster R-CNN plus a mask head on ROI Align features (He et al. 2017).

:class:`MaskRCNN` is a :class:`~jaxvision.models.faster_rcnn.FasterRCNN` with one more
branch: :func:`jaxvision.ops.roi_align` (``aligned=True``, ``mask_roi_size`` squared) on the
same features, ``mask_convs`` 3x3 convs, a 2x2 stride-2 transposed conv and a 1x1 conv to one
mask logit map per class: ``[B, R, 2 mask_roi_size, 2 mask_roi_size, C]``; the mask of an ROI
is the map of its class (decoupled per-class sigmoid masks, the paper's choice).

Instance ground truth (:func:`instance_masks`): scenes carry a semantic mask (the class of
every pixel); instance ``g`` is the pixels of its class inside its box. Mask targets
(:func:`mask_targets`): each foreground training ROI's instance map resampled to the mask
head's grid with ROI Align (the paper's way of cropping ground truth to a proposal),
thresholded at 0.5. Mask loss: mean binary cross-entropy of the class's map over the
foreground ROIs (:func:`losses`, added to Faster R-CNN's four).

Inference: :meth:`MaskRCNN.detect` (boxes, as Faster R-CNN) and
:meth:`MaskRCNN.detect_masks` (boxes plus each detection's mask probabilities on the mask
grid); :func:`paste_masks` resamples those to the image (bilinear inside the box, 0 outside)
for instance masks ``[B, K, H, W]``.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxvision import ops
from jaxvision.models import faster_rcnn
from jaxvision.models.faster_rcnn import FasterRCNN
from jaxvision.models.resnet import ResNetV2

__all__ = ["MaskRCNN", "MaskRCNNSmall", "MaskRCNNTiny", "instance_masks", "mask_targets",
           "paste_masks", "losses"]

_he_normal = nn.initializers.variance_scaling(2.0, "fan_in", "truncated_normal")


class MaskRCNN(FasterRCNN):
  """Faster R-CNN with a mask head (see the module notes).

  Attributes (beyond :class:`FasterRCNN`'s):
    mask_roi_size: ROI Align output side of the mask head (its masks are twice that).
    mask_width: channels of the mask head's convs.
    mask_convs: 3x3 convs before the upsampling.
  """

  mask_roi_size: int = 14
  mask_width: int = 64
  mask_convs: int = 2

  def setup(self):
    super().setup()
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    self.mask_layers = [nn.Conv(self.mask_width, (3, 3), padding="SAME",
                                kernel_init=_he_normal, **kw) for _ in range(self.mask_convs)]
    self.mask_up = nn.ConvTranspose(self.mask_width, (2, 2), strides=(2, 2),
                                    kernel_init=_he_normal, **kw)
    self.mask_logits = nn.Conv(self.num_classes, (1, 1), **kw)

  def mask_head(self, features: jax.Array, rois: jax.Array, *, image_size: Sequence[int]
                ) -> jax.Array:
    """Mask logits ``[B, R, m, m, C]`` (``m = 2 mask_roi_size``) for ``rois [B, R, 4]``."""
    b, r = rois.shape[:2]
    scale = features.shape[1] / float(image_size[0])
    t = ops.roi_align(features, rois, output_size=self.mask_roi_size, spatial_scale=scale,
                      sampling_ratio=self.sampling_ratio, aligned=True)
    t = t.reshape(b * r, *t.shape[2:]).astype(self.dtype)
    for conv in self.mask_layers:
      t = nn.relu(conv(t))
    t = self.mask_logits(nn.relu(self.mask_up(t))).astype(jnp.float32)
    return t.reshape(b, r, *t.shape[1:])

  def __call__(self, x: jax.Array, *, train: bool) -> dict[str, jax.Array]:
    """Faster R-CNN's outputs plus ``"masks"``: mask logits of every proposal."""
    out = self._forward(x, train=train)
    out["masks"] = self.mask_head(out["features"], out["proposals"], image_size=x.shape[1:3])
    return out

  def detect_masks(self, x: jax.Array, *, score_threshold: float, nms_iou: float,
                   max_detections: int) -> tuple[jax.Array, ...]:
    """:meth:`detect`'s ``(boxes, scores, classes, num_valid)`` plus ``masks [B, K, m, m]``,
    the sigmoid mask of each detection's class on the mask grid of its box (0 for padding);
    :func:`paste_masks` puts them in the image."""
    out = self._forward(x, train=False)
    boxes, scores, classes, count = self._postprocess(
        out, x.shape[1:3], score_threshold=score_threshold, nms_iou=nms_iou,
        max_detections=max_detections)
    logits = self.mask_head(out["features"], boxes, image_size=x.shape[1:3])  # [B,K,m,m,C]
    own = jnp.take_along_axis(logits, jnp.maximum(classes, 0)[:, :, None, None, None],
                              axis=-1)[..., 0]
    masks = jnp.where((classes >= 0)[:, :, None, None], jax.nn.sigmoid(own), 0.0)
    return boxes, scores, classes, count, masks


# CPU-sized: FasterRCNNSmall plus a 7 x 7 ROI Align mask head of two 32-wide convs (14 x 14
# masks: the digits are 18-72 pixels tall). The paper's 14 x 14 / 256-wide / 4-conv head
# (28 x 28 masks) is `MaskRCNN(mask_roi_size=14, mask_width=256, mask_convs=4)`; a 14 x 14,
# 64-wide, 2-conv head trained at under 0.4 steps/s on one core (0.25 s of each step).
MaskRCNNSmall = functools.partial(MaskRCNN, mask_roi_size=7, mask_width=32)
MaskRCNNTiny = functools.partial(
    MaskRCNN, backbone=functools.partial(ResNetV2, depth=8, width=4, num_stages=2,
                                         stem_strides=2),
    anchor_sizes=(12.0, 24.0), aspect_ratios=(1.0, 0.5), rpn_width=16, pre_nms_top_n=64,
    proposals_train=16, proposals_test=8, roi_size=4, head_width=32, mask_roi_size=4,
    mask_width=8, mask_convs=1)


def instance_masks(semantic: jax.Array, boxes: jax.Array, classes: jax.Array) -> jax.Array:
  """``[B, H, W, G]`` float instance maps: pixel ``(y, x)`` of instance ``g`` is 1 when the
  semantic mask ``[B, H, W]`` holds ``classes[b, g]`` there and the pixel's centre is inside
  ``boxes[b, g]`` (xyxy pixels); padding rows (class 0) are empty."""
  h, w = semantic.shape[1:3]
  ys = jnp.arange(h, dtype=jnp.float32)[None, :, None, None] + 0.5
  xs = jnp.arange(w, dtype=jnp.float32)[None, None, :, None] + 0.5
  bx = boxes[:, None, None, :, :]  # [B, 1, 1, G, 4]
  inside = (xs >= bx[..., 0]) & (xs < bx[..., 2]) & (ys >= bx[..., 1]) & (ys < bx[..., 3])
  same = semantic[..., None] == classes[:, None, None, :]
  return (inside & same & (classes > 0)[:, None, None, :]).astype(jnp.float32)


def mask_targets(instances: jax.Array, rois: jax.Array, gt_index: jax.Array, size: int
                 ) -> jax.Array:
  """Binary ``[B, R, size, size]`` targets: instance ``gt_index [B, R]`` of ``instances
  [B, H, W, G]`` resampled onto each ROI's grid (ROI Align, aligned, 2 samples per bin),
  ``>= 0.5``."""
  crops = ops.roi_align(instances, rois, output_size=size, sampling_ratio=2, aligned=True)
  own = jnp.take_along_axis(crops, gt_index[:, :, None, None, None], axis=-1)[..., 0]
  return (own >= 0.5).astype(jnp.float32)


def paste_masks(masks: jax.Array, boxes: jax.Array, image_size: Sequence[int], *,
                threshold: float | None = 0.5) -> jax.Array:
  """Masks on each box's grid ``[B, K, m, m]`` -> image masks ``[B, K, H, W]``.

  A pixel centre inside box ``k`` reads the mask bilinearly at its position on the box's
  ``m x m`` grid (edge values extend to the box's border); pixels outside are 0. With a
  ``threshold`` the result is boolean (``> threshold``), else the probabilities.
  """
  h, w = int(image_size[0]), int(image_size[1])
  m = masks.shape[-1]
  ys = jnp.arange(h, dtype=jnp.float32) + 0.5
  xs = jnp.arange(w, dtype=jnp.float32) + 0.5

  def one(mask, box):
    bw = jnp.maximum(box[2] - box[0], 1e-6)
    bh = jnp.maximum(box[3] - box[1], 1e-6)
    u = jnp.clip((xs - box[0]) / bw * m - 0.5, 0, m - 1)  # [W]
    v = jnp.clip((ys - box[1]) / bh * m - 0.5, 0, m - 1)  # [H]
    u0, v0 = jnp.floor(u).astype(jnp.int32), jnp.floor(v).astype(jnp.int32)
    u1, v1 = jnp.minimum(u0 + 1, m - 1), jnp.minimum(v0 + 1, m - 1)
    fu, fv = (u - u0)[None, :], (v - v0)[:, None]
    g = lambda vi, ui: mask[vi][:, ui]  # noqa: E731
    val = ((1 - fv) * ((1 - fu) * g(v0, u0) + fu * g(v0, u1))
           + fv * ((1 - fu) * g(v1, u0) + fu * g(v1, u1)))
    inside = (((xs >= box[0]) & (xs < box[2]))[None, :]
              & ((ys >= box[1]) & (ys < box[3]))[:, None])
    return jnp.where(inside, val, 0.0)

  out = jax.vmap(jax.vmap(one))(masks.astype(jnp.float32), boxes.astype(jnp.float32))
  return out if threshold is None else out > float(threshold)


def losses(model: MaskRCNN, params, batch_stats, images: jax.Array, boxes: jax.Array,
           classes: jax.Array, num_boxes: jax.Array, semantic: jax.Array, rng: jax.Array, *,
           rpn_batch: int = 256, rois_per_image: int = 64, positive_fraction: float = 0.25,
           instances: jax.Array | None = None) -> tuple[jax.Array, tuple[dict, Any]]:
  """Faster R-CNN's four losses (:func:`jaxvision.models.faster_rcnn.losses`) plus
  ``"mask"``: the mean per-pixel binary cross-entropy of each foreground ROI's class map
  against :func:`mask_targets`. ``semantic [B, H, W]``: the per-pixel class mask (instance
  maps from :func:`instance_masks`, or pass ``instances [B, H, W, G]`` directly, e.g. after
  augmenting them with the image)."""
  def mask_loss(variables, feats, sampled, image_size):
    n_fg = int(rois_per_image * float(positive_fraction))  # the fg rows come first
    rois = sampled["rois"][:, :n_fg]
    labels = sampled["labels"][:, :n_fg]
    fg = ((labels > 0) & (sampled["weight"][:, :n_fg] > 0)).astype(jnp.float32)
    inst = instance_masks(semantic, boxes, classes) if instances is None else instances
    size = 2 * model.mask_roi_size
    target = mask_targets(inst, rois, sampled["gt_index"][:, :n_fg], size)
    logits = model.apply(variables, feats, rois, image_size=image_size,
                         method=MaskRCNN.mask_head)
    own = jnp.take_along_axis(logits, labels[:, :, None, None, None], axis=-1)[..., 0]
    bce = jnp.mean(optax.sigmoid_binary_cross_entropy(own, target), axis=(-2, -1))
    value = jnp.sum(bce * fg) / jnp.maximum(jnp.sum(fg), 1.0)
    return value, {"mask": value}

  return faster_rcnn.losses(
      model, params, batch_stats, images, boxes, classes, num_boxes, rng, rpn_batch=rpn_batch,
      rois_per_image=rois_per_image, positive_fraction=positive_fraction,
      extra_loss=mask_loss)

