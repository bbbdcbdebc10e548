"""SegNet (Badrinarayanan et al. 2017) on digit scenes: unpooling with the encoder's indices.

    python -m experiments.segnet --workdir runs/segnet                     # train, cpu config
    python -m experiments.segnet --evaluate --restore-weights runs/segnet --workdir runs/segnet_eval
    python -m experiments.segnet --predict photo.jpg --restore-weights runs/segnet
    python -m experiments.segnet --dataset book:DIR --workdir runs/segnet_drinks
    python -m experiments.segnet --dataset pets --config pets --workdir runs/segnet_pets \
        --data-dir ~/tensorflow_datasets   # Oxford-IIIT Pet trimaps, prepared by TFDS

``--dataset pets`` reads ``tfds.data_source("oxford_iiit_pet")`` (``pip install
jaxvision[tfds]``; prepare it once with ``tfds build oxford_iiit_pet --data_dir DIR``, the
CLI does not download) with the trimap classes background / pet / border; the ``pets`` config trains the
paper's ``SegNet`` at 128 x 128 for about 20 epochs (an accelerator run). The seed project
reports about 88% validation pixel accuracy there.

The model is :mod:`jaxvision.models.segnet`: Conv-BN-ReLU encoder blocks with
``max_pool_with_argmax``, decoder blocks that ``max_unpool`` to exactly those positions and
densify with Conv-BN-ReLU, a 1 x 1 conv to the 11 classes. ``cpu``: ``SegNetSmall``;
``book``: ``SegNet`` (the paper's VGG16 widths); ``tiny``: ``SegNetTiny``.

Data, loss, schedule, evaluation (the book's per-image mIoU and pixel accuracy, the dataset
confusion-matrix mIoU and per-class IoU), figures and results files are shared with the other
segmentation experiments: see :func:`jaxvision.tasks.segmentation_experiment`.
"""

from __future__ import annotations

import os
from typing import Any

from jaxvision import experiment, tasks

EXPERIMENT = tasks.segmentation_experiment(
    "segnet", results_file=os.path.join(os.path.dirname(__file__), "results", "segmentation.json"))
CONFIGS = EXPERIMENT.configs


def main(argv=None, **kwargs: Any) -> dict[str, Any]:
  return experiment.run_predictor_experiment(EXPERIMENT, argv, description=__doc__, **kwargs)


if __name__ == "__main__":
  main()
