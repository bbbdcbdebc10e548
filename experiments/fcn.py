"""The book's FCN with a PSPNet-style pyramid (Atienza ch. 12) on digit scenes.

    python -m experiments.fcn --workdir runs/fcn                     # train, cpu config
    python -m experiments.fcn --evaluate --restore-weights runs/fcn --workdir runs/fcn_eval
    python -m experiments.fcn --predict photo.jpg --restore-weights runs/fcn
    python -m experiments.fcn --dataset book:DIR --workdir runs/fcn_drinks

The model is :mod:`jaxvision.models.fcn`: ResNet v2 features at 1/4 size, a pyramid
[features, avgpool 2, conv s2, conv s2], each non-main level Conv 3x3 -> BN -> ReLU and
bilinear upsampling back to 1/4, concatenation, two ConvTranspose 3x3 / 2 and a 1 x 1 conv to
the 11 classes. ``cpu``: ``FCNSmall``; ``book``: ``FCNBook`` (ResNet56v2, 512 / 256 filters);
``tiny``: ``FCNTiny``. Image sides must be multiples of 4.

Data, loss, schedule, evaluation (the book's per-image mIoU and pixel accuracy, the dataset
confusion-matrix mIoU and per-class IoU), figures and results files are shared with the other
segmentation experiments: see :func:`jaxvision.tasks.segmentation_experiment`.
"""

from __future__ import annotations

import os
from typing import Any

from jaxvision import experiment, tasks

EXPERIMENT = tasks.segmentation_experiment(
    "fcn", results_file=os.path.join(os.path.dirname(__file__), "results", "segmentation.json"))
CONFIGS = EXPERIMENT.configs


def main(argv=None, **kwargs: Any) -> dict[str, Any]:
  return experiment.run_predictor_experiment(EXPERIMENT, argv, description=__doc__, **kwargs)


if __name__ == "__main__":
  main()
