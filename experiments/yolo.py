"""A YOLO v1-style grid detector (Redmon et al. 2016) on digit scenes or your own data.

    python -m experiments.yolo --workdir runs/yolo                        # train, cpu config
    python -m experiments.yolo --evaluate --workdir runs/yolo_eval --restore-weights runs/yolo
    python -m experiments.yolo --predict photo.jpg --restore-weights runs/yolo
    python -m experiments.yolo --dataset book:DIR --workdir runs/drinks

The model, targets, loss and detection are the library's (:mod:`jaxvision.models.yolo`,
:func:`jaxvision.tasks.yolo_task`, :class:`jaxvision.inference.Detector`); this file holds the
recipes and the CLI. Measured numbers: ``experiments/results/detectors.md``.

Configs (``--config``):

* ``cpu``: the SSD cpu recipe's scenes (120 x 160, 1-8 digits, 6000 train / 500 test) and
  augmentation (zoom 0.5-2, colour jitter 0.3, pixel noise), YOLOSmall (SSDSmall's stride-4
  backbone and one stride-2 block: a 15 x 20 grid, 2 boxes per cell), v1's loss weights
  (coord 5, no-object 0.5), batch 32, Adam 3e-3 with warm-up and cosine decay, class-aware
  NMS at IoU 0.5, score 0.3.
* ``tiny``: 48 x 64, YOLOTiny, a few steps (tests).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any, Mapping

import optax

from jaxvision import experiment
from jaxvision.inference import DetectorSpec
from jaxvision.tasks import yolo_task

RESULTS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "yolo.json")


@dataclasses.dataclass(frozen=True)
class YOLOConfig:
  """One YOLO recipe: data, model, loss weights, schedule, post-processing."""

  model: str = "YOLOSmall"
  image_size: tuple[int, int] = (120, 160)
  digit_size: tuple[float, float] = (0.15, 0.6)
  num_digits: tuple[int, int] = (1, 8)
  train_scenes: int = 6000
  test_scenes: int = 500
  batch_size: int = 32
  steps: int = 2200
  learning_rate: float = 3e-3
  lambda_coord: float = 5.0
  lambda_noobj: float = 0.5
  zoom: tuple[float, float] | None = (0.5, 2.0)
  zoom_probability: float = 0.5
  color_jitter: float = 0.3
  noise_std: float = 0.08
  score_threshold: float = 0.3
  nms_iou: float = 0.5
  max_detections: int = 32
  eval_every: int = 0
  checkpoint_every: int = 250
  log_every: int = 50
  eval_batch_size: int = 8
  pictures: int = 8


CONFIGS: dict[str, YOLOConfig] = {
    "cpu": YOLOConfig(eval_every=550),
    "tiny": YOLOConfig(model="YOLOTiny", image_size=(48, 64), digit_size=(0.3, 0.7),
                       num_digits=(1, 3), train_scenes=32, test_scenes=8, batch_size=4,
                       steps=3, checkpoint_every=2, log_every=1, max_detections=8, pictures=4,
                       zoom=None),
}


def build(cfg: YOLOConfig, data, initial_variables):
  spec = DetectorSpec(model=cfg.model, num_classes=len(data.class_names),
                      image_size=cfg.image_size, class_names=tuple(data.class_names),
                      variances=None, nms="per_class", score_threshold=cfg.score_threshold,
                      nms_iou=cfg.nms_iou, max_detections=cfg.max_detections)
  schedule = optax.warmup_cosine_decay_schedule(0.0, cfg.learning_rate,
                                                max(cfg.steps // 20, 1), cfg.steps)
  task = yolo_task(spec, data.train, optimizer=optax.adam(schedule),
                   lambda_coord=cfg.lambda_coord, lambda_noobj=cfg.lambda_noobj, zoom=cfg.zoom,
                   zoom_probability=cfg.zoom_probability, color_jitter=cfg.color_jitter,
                   noise_std=cfg.noise_std, test_data=data.test,
                   eval_batch_size=cfg.eval_batch_size, initial_variables=initial_variables)
  return spec, task


def add_flags(group) -> None:
  group.add_argument("--model", default=None, help="a YOLO variant in jaxvision.models")
  group.add_argument("--learning-rate", type=float, default=None, help="Adam's peak rate")
  group.add_argument("--lambda-coord", type=float, default=None, help="box loss weight")
  group.add_argument("--lambda-noobj", type=float, default=None,
                     help="weight of the confidence loss of boxes without an object")
  group.add_argument("--score-threshold", type=float, default=None,
                     help="minimum confidence x class probability of a detection")
  group.add_argument("--nms-iou", type=float, default=None, help="class-aware NMS IoU")


FLAG_FIELDS = {name: name for name in ("model", "learning_rate", "lambda_coord", "lambda_noobj",
                                       "score_threshold", "nms_iou")}


def summary(results: Mapping[str, Any]) -> str:
  f = lambda k: "-" if results.get(k) is None else f"{results[k]:.3f}"  # noqa: E731
  return (f"YOLO {results.get('model')} ({results.get('mode')}): mAP@0.5 {f('map50')}, COCO "
          f"mAP {f('map')}, precision {f('precision')}, recall {f('recall')} on "
          f"{results.get('evaluated_on')}; wall {results.get('wall_seconds')} s")


EXPERIMENT = experiment.PredictorExperiment(
    name="yolo", kind="detector", configs=CONFIGS, build=build, flags=add_flags,
    flag_fields=FLAG_FIELDS, results_file=RESULTS_FILE, summary=summary,
    datasets=("scenes", "book:DIR", "voc"))


def main(argv=None, *, digits=None) -> dict[str, Any] | None:
  argv = sys.argv[1:] if argv is None else list(argv)
  return experiment.run_predictor_experiment(EXPERIMENT, argv, description=__doc__,
                                             digits=digits)


if __name__ == "__main__":
  main()
