"""CapsNet on MNIST (Sabour et al. 2017): dynamic routing between capsules.

    python -m experiments.capsnet --workdir runs/capsnet --record          # cpu config
    python -m experiments.capsnet --evaluate --restore-weights runs/capsnet --workdir runs/eval
    python -m experiments.capsnet --predict digit.png --restore-weights runs/capsnet
    python -m experiments.capsnet --table               # the recorded runs

Trains on the 60,000 training images (2-px random shifts, the paper's only augmentation) and
reports the test accuracy on the 10,000 test images. ``<workdir>`` gets ``results.json``,
``weights.msgpack`` (load it with ``jaxvision.classification.Classifier.load``),
``reconstructions.png`` (test digits above their reconstructions from the predicted capsule)
and ``perturbations.png`` (each dimension of one digit's capsule moved by -0.25..0.25, as the
paper's Fig. 4). Rerunning the same command resumes from the last checkpoint.

Configs (``--config``):

* ``cpu``: CapsNetSmall (64 9 x 9 filters, 16 x 8-D primary capsules, 16-D digit capsules,
  3 routing iterations, decoder 512-1024-784: 2.8 M parameters), batches of 128, Adam 2e-3
  with a warm-up and cosine decay over 3400 steps (7.3 epochs): 99.43% in 27.1 minutes on a
  2-core CPU (``experiments/results/capsnet.md``).
* ``short``: the same at 1e-3 for 2200 steps (4.7 epochs): 99.18% in 18.4 minutes.
* ``medium``: CapsNetMedium (128 filters, 3.5 M parameters), 2000 steps (4.3 epochs).
* ``paper``: the paper's network (256 filters, 32 x 8-D primary capsules: 8.2 M parameters),
  batches of 128, 10 epochs (about 5 hours on 2 cores).
* ``tiny``: a smoke test on 512 images.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Mapping, Sequence

import numpy as np

from jaxvision import experiment, viz
from jaxvision.classification import ClassifierConfig
from jaxvision.models import capsnet

RESULTS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                            "capsnet.json")
EPOCH = 60000 / 128

CONFIGS = {
    "cpu": ClassifierConfig(model="CapsNetSmall", loss="capsnet", steps=3400, batch_size=128,
                            learning_rate=2e-3, warmup_steps=100, shift=2, eval_every=680,
                            checkpoint_every=340),
    "short": ClassifierConfig(model="CapsNetSmall", loss="capsnet", steps=2200,
                              batch_size=128, learning_rate=1e-3, warmup_steps=100, shift=2,
                              eval_every=440, checkpoint_every=220),
    "medium": ClassifierConfig(model="CapsNetMedium", loss="capsnet", steps=2000,
                               batch_size=128, learning_rate=1e-3, warmup_steps=100, shift=2,
                               eval_every=500, checkpoint_every=250),
    "paper": ClassifierConfig(model="CapsNetPaper", loss="capsnet", steps=4690,
                              batch_size=128, learning_rate=1e-3, warmup_steps=100, shift=2,
                              eval_every=469, checkpoint_every=100),
    "tiny": ClassifierConfig(model="CapsNetTiny", loss="capsnet", steps=30, batch_size=32,
                             learning_rate=3e-3, warmup_steps=5, shift=2, train_images=512,
                             test_images=256, checkpoint_every=15, log_every=10),
}


def pictures(classifier, test: Mapping[str, np.ndarray], workdir: str) -> list[str]:
  """reconstructions.png and perturbations.png."""
  model, variables = classifier.model, classifier.variables
  images = test["image"].astype(np.float32) / 255.0
  labels = test["label"]
  # Two test digits of each class, first occurrence order.
  picks = [int(i) for c in range(10) for i in np.flatnonzero(labels == c)[:2]]
  pred, recon = capsnet.reconstructions(model, variables, images[picks])
  pred, recon = np.asarray(pred), np.asarray(recon)
  grid = np.stack([images[picks], recon])                       # [2, N, 28, 28, 1]
  cols = [f"{labels[i]}->{p}" for i, p in zip(picks, pred)]
  paths = [os.path.join(workdir, "reconstructions.png"),
           os.path.join(workdir, "perturbations.png")]
  viz.save_image_grid(paths[0], grid, row_labels=["test image", "reconstruction"],
                      col_labels=cols, cell_inches=0.7,
                      title=f"{classifier.spec.model}: test digits (top) and their "
                            f"reconstructions from the predicted capsule (bottom); "
                            f"column = true->predicted")
  offsets = np.round(np.arange(-0.25, 0.2501, 0.05), 2)
  cls, pert = capsnet.perturbed_reconstructions(model, variables, images[picks[6]], offsets)
  viz.save_image_grid(paths[1], np.asarray(pert),
                      row_labels=[f"dim {d}" for d in range(pert.shape[0])],
                      col_labels=[f"{o + 0.0:+.2f}" for o in offsets], cell_inches=0.6,
                      title=f"{classifier.spec.model}: each dimension of the class-{cls} "
                            f"capsule of one test digit shifted by -0.25..+0.25, decoded")
  return paths


EXPERIMENT = experiment.ClassifierExperiment(name="capsnet", configs=CONFIGS,
                                             results_file=RESULTS_FILE, pictures=pictures,
                                             table=experiment.classifier_table)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
  return experiment.run_classifier_experiment(EXPERIMENT, argv, __doc__)


if __name__ == "__main__":
  main(sys.argv[1:])
