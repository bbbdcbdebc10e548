"""Evaluation metrics computed on the host (NumPy/SciPy); JAX arrays are accepted."""

from jaxvision.metrics.clustering import adjusted_rand_index
from jaxvision.metrics.clustering import contingency_matrix
from jaxvision.metrics.clustering import evaluate_heads
from jaxvision.metrics.clustering import hungarian_accuracy
from jaxvision.metrics.clustering import many_to_one_accuracy
from jaxvision.metrics.clustering import normalized_mutual_info
from jaxvision.metrics.detection import average_precision_voc
from jaxvision.metrics.detection import coco_map
from jaxvision.metrics.detection import detection_summary
from jaxvision.metrics.detection import image_detection_metrics
from jaxvision.metrics.detection import mask_average_precision
from jaxvision.metrics.detection import mask_iou
from jaxvision.metrics.detection_diagnosis import MISS_REASONS
from jaxvision.metrics.detection_diagnosis import anchor_coverage
from jaxvision.metrics.detection_diagnosis import classify_misses
from jaxvision.metrics.detection_diagnosis import ground_truth_found
from jaxvision.metrics.detection_diagnosis import size_bucket
from jaxvision.metrics.segmentation import confusion_matrix
from jaxvision.metrics.segmentation import image_miou
from jaxvision.metrics.segmentation import segmentation_metrics_from_confusion
from jaxvision.metrics.segmentation import segmentation_summary
from jaxvision.metrics.segmentation_diagnosis import ERROR_KINDS
from jaxvision.metrics.segmentation_diagnosis import boundary_band
from jaxvision.metrics.segmentation_diagnosis import object_confusion
from jaxvision.metrics.segmentation_diagnosis import segmentation_errors

__all__ = [
    "contingency_matrix", "hungarian_accuracy", "many_to_one_accuracy",
    "normalized_mutual_info", "adjusted_rand_index", "evaluate_heads",
    "image_detection_metrics", "detection_summary", "average_precision_voc", "coco_map",
    "mask_iou", "mask_average_precision",
    "anchor_coverage", "ground_truth_found", "classify_misses", "size_bucket", "MISS_REASONS",
    "confusion_matrix", "segmentation_metrics_from_confusion", "image_miou",
    "segmentation_summary", "segmentation_errors", "boundary_band", "object_confusion",
    "ERROR_KINDS",
]
