"""U-Net (Ronneberger et al. 2015) on digit scenes.

    python -m experiments.unet --train --data-dir DIR --workdir DIR [--config cpu] [--record]
    python -m experiments.unet --evaluate --restore-weights WORKDIR --data-dir DIR --workdir DIR
        [--image-file out.png]

The model is :mod:`jaxvision.models.unet`: double 3x3 Conv-BN-ReLU blocks, max pools
down, 2x2 / 2 transposed convs up, the skip of each level concatenated, a 1 x 1 conv to the
11 classes. ``cpu``: ``UNetSmall``; ``book``: ``UNet`` (the paper's 64-1024 widths);
``tiny``: ``UNetTiny``.

Data, loss, schedule, evaluation (the book's per-image mIoU and pixel accuracy, the dataset
confusion-matrix mIoU and per-class IoU), figures and results files are shared with the other
segmentation experiments: see :mod:`experiments._segmentation`.
"""

from __future__ import annotations

from typing import Any

from experiments import _segmentation

FAMILY = "unet"
CONFIGS = _segmentation.CONFIGS[FAMILY]


def run(config_name: str, **kwargs: Any) -> dict[str, Any]:
  """:func:`experiments._segmentation.run` for UNet."""
  return _segmentation.run(FAMILY, config_name, **kwargs)


def main(argv=None, **kwargs: Any) -> dict[str, Any]:
  return _segmentation.main(FAMILY, argv, description=__doc__.splitlines()[0], **kwargs)


if __name__ == "__main__":
  main()
