"""Sequential MNIST: a digit read one pixel at a time (784 steps) by a dilated causal
convolution stack (a WaveNet / TCN, :class:`jaxvision.models.SeqMnistTCN`), classified from
its final step.

    python -m experiments.seq_mnist --workdir runs/seq_mnist --record
    python -m experiments.seq_mnist --evaluate --restore-weights runs/seq_mnist
    python -m experiments.seq_mnist --table

Bai et al. (2018) report 99.0% with a ~70k-parameter TCN (kernel 7, 8 levels); the goal
here is >= 98% within 30 CPU-minutes. The model: gated residual blocks with kernel 2 and
dilations 1, 2, ..., 512 (receptive field 1024 >= 784), 32 channels, 78k parameters. Only the
positions the final output depends on are computed (a stride-2 tree, ~1k positions instead of
784 x 10), the same function as running the stack over every step (tested).

Configs (``--config``): ``cpu`` (6 epochs, batch 64), ``tiny`` (a smoke test).
"""

from __future__ import annotations

import os
import sys

from jaxvision import experiment, sequence
from jaxvision.classification import ClassifierConfig

RESULTS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                            "seq_mnist.json")

CONFIGS = {
    "cpu": ClassifierConfig(model="SeqMnistTCN", steps=5600, batch_size=64,
                            learning_rate=2e-3, warmup_steps=200, eval_every=1400,
                            checkpoint_every=700, log_every=200),
    "tiny": ClassifierConfig(model="SeqMnistTCNTiny", steps=6, batch_size=16,
                             learning_rate=3e-3, warmup_steps=1, train_images=256,
                             test_images=128, checkpoint_every=3, log_every=3),
}

def _pictures(classifier, test, workdir):
  path = os.path.join(workdir, "seq_mnist_reading.png")
  sequence.save_sequential_mnist_figure(path, classifier, test["image"], test["label"])
  return [path]


EXPERIMENT = experiment.ClassifierExperiment(
    name="seq_mnist", configs=CONFIGS, default_config="cpu", results_file=RESULTS_FILE,
    pictures=_pictures, table=experiment.classifier_table)


def main(argv=None):
  return experiment.run_classifier_experiment(EXPERIMENT, argv, description=__doc__)


if __name__ == "__main__":
  main(sys.argv[1:])
