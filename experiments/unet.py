"""U-Net (Ronneberger et al. 2015) on digit scenes.

    python -m experiments.unet --workdir runs/unet                     # train, cpu config
    python -m experiments.unet --evaluate --restore-weights runs/unet --workdir runs/unet_eval
    python -m experiments.unet --predict photo.jpg --restore-weights runs/unet
    python -m experiments.unet --dataset book:DIR --workdir runs/unet_drinks

The model is :mod:`jaxvision.models.unet`: double 3x3 Conv-BN-ReLU blocks, max pools
down, 2x2 / 2 transposed convs up, the skip of each level concatenated, a 1 x 1 conv to the
11 classes. ``cpu``: ``UNetSmall``; ``book``: ``UNet`` (the paper's 64-1024 widths);
``tiny``: ``UNetTiny``.

Data, loss, schedule, evaluation (the book's per-image mIoU and pixel accuracy, the dataset
confusion-matrix mIoU and per-class IoU), figures and results files are shared with the other
segmentation experiments: see :func:`jaxvision.tasks.segmentation_experiment`.
"""

from __future__ import annotations

import os
from typing import Any

from jaxvision import experiment, tasks

EXPERIMENT = tasks.segmentation_experiment(
    "unet", results_file=os.path.join(os.path.dirname(__file__), "results", "segmentation.json"))
CONFIGS = EXPERIMENT.configs


def main(argv=None, **kwargs: Any) -> dict[str, Any]:
  return experiment.run_predictor_experiment(EXPERIMENT, argv, description=__doc__, **kwargs)


if __name__ == "__main__":
  main()
