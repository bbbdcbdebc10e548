"""The MNIST classifier behind the GAN experiments' Frechet distance (``jaxvision.gan``).

    python -m experiments.mnist_features --workdir runs/features --record
    cp runs/features/weights.msgpack experiments/results/mnist_features_weights.msgpack

Trains :class:`jaxvision.models.MnistFeatureNet` (two 3 x 3 conv pairs + max pooling, a
128-unit dense layer whose activations are the features, 10 logits; 0.47 M parameters,
1.9 MB) on the 60,000 training images with 1-px random shifts. The committed weights
(``experiments/results/mnist_features_weights.msgpack``) are what ``python -m
experiments.dcgan`` measures generated digits with; retraining changes every recorded distance,
so keep them.

Configs (``--config``): ``cpu`` (3 epochs, about 4 minutes on 2 cores), ``tiny`` (a smoke test).
"""

from __future__ import annotations

import os
import sys

from jaxvision import experiment
from jaxvision.classification import ClassifierConfig

RESULTS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                            "mnist_features.json")

CONFIGS = {
    "cpu": ClassifierConfig(model="MnistFeatureNet", steps=1400, batch_size=128,
                            learning_rate=2e-3, warmup_steps=50, shift=1, eval_every=700,
                            checkpoint_every=700),
    "tiny": ClassifierConfig(model="MnistFeatureNetTiny", steps=20, batch_size=32,
                             learning_rate=3e-3, warmup_steps=2, train_images=512,
                             test_images=256, checkpoint_every=10, log_every=10),
}

EXPERIMENT = experiment.ClassifierExperiment(
    name="mnist_features", configs=CONFIGS, default_config="cpu", results_file=RESULTS_FILE,
    table=experiment.classifier_table)


def main(argv=None):
  return experiment.run_classifier_experiment(EXPERIMENT, argv, description=__doc__)


if __name__ == "__main__":
  main(sys.argv[1:])
