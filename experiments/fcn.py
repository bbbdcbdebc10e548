"""The book's FCN with a PSPNet-style pyramid (Atienza ch. 12) on digit scenes.

    python -m experiments.fcn --train --data-dir DIR --workdir DIR [--config cpu] [--record]
    python -m experiments.fcn --evaluate --restore-weights WORKDIR --data-dir DIR --workdir DIR
        [--image-file out.png]

The model is :mod:`jaxvision.models.fcn`: ResNet v2 features at 1/4 size, a pyramid
[features, avgpool 2, conv s2, conv s2], each non-main level Conv 3x3 -> BN -> ReLU and
bilinear upsampling back to 1/4, concatenation, two ConvTranspose 3x3 / 2 and a 1 x 1 conv to
the 11 classes. ``cpu``: ``FCNSmall``; ``book``: ``FCNBook`` (ResNet56v2, 512 / 256 filters);
``tiny``: ``FCNTiny``. Image sides must be multiples of 4.

Data, loss, schedule, evaluation (the book's per-image mIoU and pixel accuracy, the dataset
confusion-matrix mIoU and per-class IoU), figures and results files are shared with the other
segmentation experiments: see :mod:`experiments._segmentation`.
"""

from __future__ import annotations

from typing import Any

from experiments import _segmentation

FAMILY = "fcn"
CONFIGS = _segmentation.CONFIGS[FAMILY]


def run(config_name: str, **kwargs: Any) -> dict[str, Any]:
  """:func:`experiments._segmentation.run` for FCN."""
  return _segmentation.run(FAMILY, config_name, **kwargs)


def main(argv=None, **kwargs: Any) -> dict[str, Any]:
  return _segmentation.main(FAMILY, argv, description=__doc__.splitlines()[0], **kwargs)


if __name__ == "__main__":
  main()
