"""SegNet (Badrinarayanan et al. 2017) on digit scenes: unpooling with the encoder's indices.

    python -m experiments.segnet --train --data-dir DIR --workdir DIR [--config cpu] [--record]
    python -m experiments.segnet --evaluate --restore-weights WORKDIR --data-dir DIR --workdir DIR
        [--image-file out.png]

The model is :mod:`jaxvision.models.segnet`: Conv-BN-ReLU encoder blocks with
``max_pool_with_argmax``, decoder blocks that ``max_unpool`` to exactly those positions and
densify with Conv-BN-ReLU, a 1 x 1 conv to the 11 classes. ``cpu``: ``SegNetSmall``;
``book``: ``SegNet`` (the paper's VGG16 widths); ``tiny``: ``SegNetTiny``.

Data, loss, schedule, evaluation (the book's per-image mIoU and pixel accuracy, the dataset
confusion-matrix mIoU and per-class IoU), figures and results files are shared with the other
segmentation experiments: see :mod:`experiments._segmentation`.
"""

from __future__ import annotations

from typing import Any

from experiments import _segmentation

FAMILY = "segnet"
CONFIGS = _segmentation.CONFIGS[FAMILY]


def run(config_name: str, **kwargs: Any) -> dict[str, Any]:
  """:func:`experiments._segmentation.run` for SegNet."""
  return _segmentation.run(FAMILY, config_name, **kwargs)


def main(argv=None, **kwargs: Any) -> dict[str, Any]:
  return _segmentation.main(FAMILY, argv, description=__doc__.splitlines()[0], **kwargs)


if __name__ == "__main__":
  main()
