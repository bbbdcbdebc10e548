"""Pure ``jax.numpy`` vision ops: jit- and vmap-compatible, static shapes, batched."""

from jaxvision.ops.anchors import multibox_prior
from jaxvision.ops.anchors import ssd_anchors
from jaxvision.ops.boxes import box_area
from jaxvision.ops.boxes import box_convert
from jaxvision.ops.boxes import box_iou
from jaxvision.ops.boxes import complete_box_iou
from jaxvision.ops.boxes import distance_box_iou
from jaxvision.ops.boxes import generalized_box_iou
from jaxvision.ops.information import iic_loss
from jaxvision.ops.information import joint_probability
from jaxvision.ops.information import mine_loss
from jaxvision.ops.information import mine_lower_bound
from jaxvision.ops.losses import focal_loss
from jaxvision.ops.losses import soft_dice_loss
from jaxvision.ops.losses import hard_negative_mask
from jaxvision.ops.losses import l1_loss
from jaxvision.ops.losses import smooth_l1_loss
from jaxvision.ops.losses import softmax_cross_entropy
from jaxvision.ops.losses import ssd_loss
from jaxvision.ops.matching import decode_boxes
from jaxvision.ops.matching import encode_boxes
from jaxvision.ops.matching import match_anchors
from jaxvision.ops.nms import batched_nms
from jaxvision.ops.nms import detection_nms
from jaxvision.ops.nms import multiclass_nms
from jaxvision.ops.nms import nms
from jaxvision.ops.nms import soft_nms
from jaxvision.ops.pooling import max_pool_with_argmax
from jaxvision.ops.pooling import max_unpool
from jaxvision.ops.roi import fpn_levels
from jaxvision.ops.roi import multiscale_roi_align
from jaxvision.ops.roi import roi_align
from jaxvision.ops.roi import roi_pool

__all__ = [
    "box_area", "box_convert", "box_iou", "generalized_box_iou", "distance_box_iou",
    "complete_box_iou", "ssd_anchors", "multibox_prior", "match_anchors", "encode_boxes",
    "decode_boxes", "nms", "batched_nms", "soft_nms", "multiclass_nms", "detection_nms",
    "joint_probability", "iic_loss", "mine_lower_bound", "mine_loss",
    "max_pool_with_argmax", "max_unpool", "roi_align", "roi_pool", "multiscale_roi_align",
    "fpn_levels",
    "softmax_cross_entropy", "focal_loss", "soft_dice_loss", "l1_loss", "smooth_l1_loss", "hard_negative_mask",
    "ssd_loss",
]
