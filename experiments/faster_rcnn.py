"""Faster R-CNN and Mask R-CNN (Ren et al. 2015, He et al. 2017) on digit scenes or your data.

    python -m experiments.faster_rcnn --workdir runs/frcnn                 # train, cpu config
    python -m experiments.faster_rcnn --evaluate --workdir runs/frcnn_eval \\
        --restore-weights runs/frcnn
    python -m experiments.faster_rcnn --predict photo.jpg --restore-weights runs/frcnn
    python -m experiments.faster_rcnn --dataset book:DIR --workdir runs/drinks
    python -m experiments.faster_rcnn --config mask_cpu --workdir runs/mask    # Mask R-CNN

The model, targets, losses and detection are the library's
(:mod:`jaxvision.models.faster_rcnn`, :mod:`jaxvision.models.mask_rcnn`,
:func:`jaxvision.tasks.faster_rcnn_task`, :func:`jaxvision.tasks.mask_rcnn_task`,
:class:`jaxvision.inference.Detector`); this file holds the recipes and the CLI. A Mask
R-CNN model (``--config mask_cpu`` / ``mask_tiny``, or ``--model MaskRCNNSmall``) trains on
the scenes' masks too, reports ``mask_map50`` (mask AP at IoU 0.5) beside the box numbers and
draws its masks in ``predictions.png``. Measured numbers: ``experiments/results/detectors.md``.

Configs (``--config``):

* ``cpu``: the SSD cpu recipe's scenes (120 x 160, 1-8 digits, 6000 train / 500 test) and
  augmentation (zoom 0.5-2, colour jitter 0.3, pixel noise), FasterRCNNSmall (SSDSmall's
  stride-4 backbone; RPN anchors of sides 16, 32, 64 px at w/h 1, 1/2, 1/4; 128 proposals in
  training, 64 in inference; 7 x 7 ROI Align, two 256-wide layers), 256 RPN anchors and 64
  ROIs per image, batch 16, 2500 steps, Adam 3e-3 with warm-up and cosine decay, class-aware
  NMS at IoU 0.5, score 0.5.
* ``mask_cpu``: ``cpu`` with MaskRCNNSmall (a 7 x 7 ROI Align mask head, two 32-wide 3x3
  convs, 2x upsampling to 14 x 14 masks, one per class), 1500 steps.
* ``tiny`` / ``mask_tiny``: 48 x 64, FasterRCNNTiny / MaskRCNNTiny, a few steps (tests).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any, Mapping

import optax

from jaxvision import experiment, models
from jaxvision.inference import DetectorSpec, spec_model
from jaxvision.models import faster_rcnn
from jaxvision.tasks import faster_rcnn_task, mask_rcnn_task

RESULTS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                            "faster_rcnn.json")


@dataclasses.dataclass(frozen=True)
class FasterRCNNConfig:
  """One Faster R-CNN recipe: data, model, sampling, schedule, post-processing."""

  model: str = "FasterRCNNSmall"
  image_size: tuple[int, int] = (120, 160)
  digit_size: tuple[float, float] = (0.15, 0.6)
  num_digits: tuple[int, int] = (1, 8)
  train_scenes: int = 6000
  test_scenes: int = 500
  batch_size: int = 16
  steps: int = 3000
  learning_rate: float = 3e-3
  rpn_batch: int = 256
  rois_per_image: int = 64
  positive_fraction: float = 0.25
  zoom: tuple[float, float] | None = (0.5, 2.0)
  zoom_probability: float = 0.5
  color_jitter: float = 0.3
  noise_std: float = 0.08
  score_threshold: float = 0.5
  nms_iou: float = 0.5
  max_detections: int = 32
  eval_every: int = 0
  checkpoint_every: int = 250
  log_every: int = 50
  eval_batch_size: int = 8
  pictures: int = 8


CONFIGS: dict[str, FasterRCNNConfig] = {
    "cpu": FasterRCNNConfig(steps=2500, eval_every=1250),
    "mask_cpu": FasterRCNNConfig(model="MaskRCNNSmall", steps=1500, eval_every=750),
    "tiny": FasterRCNNConfig(model="FasterRCNNTiny", image_size=(48, 64), digit_size=(0.3, 0.7),
                             num_digits=(1, 3), train_scenes=32, test_scenes=8, batch_size=4,
                             steps=3, rpn_batch=32, rois_per_image=8, checkpoint_every=2,
                             log_every=1, max_detections=8, pictures=4, zoom=None),
}
CONFIGS["mask_tiny"] = dataclasses.replace(CONFIGS["tiny"], model="MaskRCNNTiny", zoom=(0.8, 1.25))


def learning_rate(cfg: FasterRCNNConfig):
  """Linear warm-up over 5% of the steps, then cosine decay to 0."""
  return optax.warmup_cosine_decay_schedule(0.0, cfg.learning_rate, max(cfg.steps // 20, 1),
                                            cfg.steps)


def build(cfg: FasterRCNNConfig, data, initial_variables):
  spec = DetectorSpec(model=cfg.model, num_classes=len(data.class_names),
                      image_size=cfg.image_size, class_names=tuple(data.class_names),
                      variances=faster_rcnn.BOX_VARIANCES, nms="per_class",
                      score_threshold=cfg.score_threshold, nms_iou=cfg.nms_iou,
                      max_detections=cfg.max_detections)
  make_task = (mask_rcnn_task if isinstance(spec_model(spec), models.MaskRCNN)
               else faster_rcnn_task)
  task = make_task(spec, data.train, optimizer=optax.adam(learning_rate(cfg)),
                   rpn_batch=cfg.rpn_batch, rois_per_image=cfg.rois_per_image,
                   positive_fraction=cfg.positive_fraction, zoom=cfg.zoom,
                   zoom_probability=cfg.zoom_probability, color_jitter=cfg.color_jitter,
                   noise_std=cfg.noise_std, test_data=data.test,
                   eval_batch_size=cfg.eval_batch_size, initial_variables=initial_variables)
  return spec, task


def add_flags(group) -> None:
  group.add_argument("--model", default=None,
                     help="a FasterRCNN or MaskRCNN variant in jaxvision.models")
  group.add_argument("--learning-rate", type=float, default=None, help="Adam's peak rate")
  group.add_argument("--rpn-batch", type=int, default=None, help="RPN anchors sampled per image")
  group.add_argument("--rois-per-image", type=int, default=None,
                     help="ROIs sampled per image for the box head")
  group.add_argument("--score-threshold", type=float, default=None,
                     help="minimum class probability of a detection")
  group.add_argument("--nms-iou", type=float, default=None, help="class-aware NMS IoU")


FLAG_FIELDS = {name: name for name in ("model", "learning_rate", "rpn_batch", "rois_per_image",
                                       "score_threshold", "nms_iou")}


def summary(results: Mapping[str, Any]) -> str:
  f = lambda k: "-" if results.get(k) is None else f"{results[k]:.3f}"  # noqa: E731
  masks = "" if results.get("mask_map50") is None else f", mask AP@0.5 {f('mask_map50')}"
  return (f"{results.get('model')} ({results.get('mode')}): mAP@0.5 "
          f"{f('map50')}, COCO mAP {f('map')}, precision {f('precision')}, recall "
          f"{f('recall')}{masks} on {results.get('evaluated_on')}; wall "
          f"{results.get('wall_seconds')} s")


EXPERIMENT = experiment.PredictorExperiment(
    name="faster_rcnn", kind="detector", configs=CONFIGS, build=build, flags=add_flags,
    flag_fields=FLAG_FIELDS, results_file=RESULTS_FILE, summary=summary,
    datasets=("scenes", "book:DIR", "voc"))


def main(argv=None, *, digits=None) -> dict[str, Any] | None:
  argv = sys.argv[1:] if argv is None else list(argv)
  return experiment.run_predictor_experiment(EXPERIMENT, argv, description=__doc__,
                                             digits=digits)


if __name__ == "__main__":
  main()
