"""The convolution zoo on MNIST: a MobileNet-style classifier (depthwise-separable blocks)
beside a plain conv net of the same widths and strides (full 3 x 3 convolutions).

    python -m experiments.conv_zoo --config mobilenet --workdir runs/mobilenet --record
    python -m experiments.conv_zoo --config plain --workdir runs/plain --record
    python -m experiments.conv_zoo --table          # params, FLOPs, accuracy, images/s

Both train on the 60,000 training images (1-px random shifts) for 2 epochs with AdamW and a
cosine decay, and report test accuracy, parameters, forward FLOPs per image (XLA's cost
analysis), and training and inference images/s on this machine. ``<workdir>`` gets
``results.json``, ``weights.msgpack`` and ``errors.png`` (misclassified test digits).
The layers themselves (dilated, transposed, spatially separable, depthwise, depthwise-
separable) are in :mod:`jaxvision.models.layers`; the depthwise-separable block's speed
against PyTorch is in the benchmark suite (``python -m benchmarks.run --only conv``).

Configs: ``mobilenet`` (MobileNetMNIST), ``plain`` (PlainNetMNIST), ``mobilenet_tiny`` /
``plain_tiny`` (smoke tests on 512 images).
"""

from __future__ import annotations

import os
import sys
from typing import Any, Mapping, Sequence

import numpy as np

from jaxvision import experiment, viz
from jaxvision.classification import ClassifierConfig

RESULTS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                            "conv_zoo.json")

_FULL = dict(steps=940, batch_size=128, learning_rate=3e-3, warmup_steps=50,
             weight_decay=1e-4, shift=1, eval_every=470, checkpoint_every=235)
_TINY = dict(steps=20, batch_size=32, learning_rate=3e-3, warmup_steps=5, train_images=512,
             test_images=256, checkpoint_every=10, log_every=10)
CONFIGS = {
    "mobilenet": ClassifierConfig(model="MobileNetMNIST", **_FULL),
    "plain": ClassifierConfig(model="PlainNetMNIST", **_FULL),
    "mobilenet_tiny": ClassifierConfig(model="MobileNetTiny", **_TINY),
    "plain_tiny": ClassifierConfig(model="PlainNetTiny", **_TINY),
}


def pictures(classifier, test: Mapping[str, np.ndarray], workdir: str) -> list[str]:
  """errors.png: up to 20 misclassified test digits, true -> predicted."""
  preds, _ = classifier.predict(test["image"])
  wrong = np.flatnonzero(preds != test["label"])[:20]
  if len(wrong) == 0:
    return []
  path = os.path.join(workdir, "errors.png")
  viz.save_image_grid(path, test["image"][wrong][None],
                      col_labels=[f"{test['label'][i]}->{preds[i]}" for i in wrong],
                      title=f"{classifier.spec.model}: misclassified test digits "
                            f"(true->predicted), {int((preds != test['label']).sum())} of "
                            f"{len(preds)}", cell_inches=0.7)
  return [path]


EXPERIMENT = experiment.ClassifierExperiment(name="conv_zoo", configs=CONFIGS,
                                             default_config="mobilenet",
                                             results_file=RESULTS_FILE, pictures=pictures,
                                             table=experiment.classifier_table)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
  return experiment.run_classifier_experiment(EXPERIMENT, argv, __doc__)


if __name__ == "__main__":
  main(sys.argv[1:])
