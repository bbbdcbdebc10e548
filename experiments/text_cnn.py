"""Sentiment from text: the survey's text CNN (embedding -> 1-D convolutions of widths 2, 3, 4
-> max over time -> dense) beside a bag-of-words baseline, on a generated corpus whose labels
depend on word order, or on IMDB through TFDS.

    python -m experiments.text_cnn --config cnn --workdir runs/text_cnn --record
    python -m experiments.text_cnn --config bow --workdir runs/text_bow --record
    python -m experiments.text_cnn --table
    python -m experiments.text_cnn --config imdb_cnn --data-dir ~/tensorflow_datasets \
        --workdir runs/imdb_cnn                      # needs `tfds build imdb_reviews`

The offline corpus (:func:`jaxvision.text.negation_corpus`): plain sentences ("the plot was
good"), negated ones ("the plot was not good") and contrast pairs ("the plot was not good ,
it was dull" / "the plot was not dull , it was good") that hold the same words with opposite
labels -- no bag of words can beat 50% on those. The bag-of-words model
(:class:`jaxvision.models.BagOfWords`) shows it; the CNN's width-2 filters read "not good".

Configs: ``cnn``, ``bow`` (negation corpus, 8000 / 2000 sentences), ``imdb_cnn``, ``imdb_bow``
(IMDB, 25k / 25k reviews, 256 tokens), ``tiny`` (a smoke test).
"""

from __future__ import annotations

import os
import sys

from jaxvision import sequence, text
from jaxvision.sequence import SequenceConfig

RESULTS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                            "text_cnn.json")

_NEG = {"dataset": "negation", "train": 8000, "test": 2000, "length": 24}
_IMDB = {"dataset": "imdb", "length": 256, "max_vocab": 20000}

CONFIGS = {
    "cnn": SequenceConfig(model="TextCNN", attributes={"embed_dim": 32, "features": 32},
                          steps=600, batch_size=64, learning_rate=3e-3, eval_every=200,
                          log_every=100, data=_NEG),
    "bow": SequenceConfig(model="BagOfWords", attributes={"embed_dim": 32, "hidden": 64},
                          steps=600, batch_size=64, learning_rate=3e-3, eval_every=200,
                          log_every=100, data=_NEG),
    "imdb_cnn": SequenceConfig(model="TextCNN", attributes={"embed_dim": 64, "features": 64,
                                                            "widths": (3, 4, 5)},
                               steps=800, batch_size=64, learning_rate=1e-3,
                               weight_decay=1e-4, data=_IMDB),
    "imdb_bow": SequenceConfig(model="BagOfWords", attributes={"embed_dim": 64},
                               steps=800, batch_size=64, learning_rate=1e-3, data=_IMDB),
    "tiny": SequenceConfig(model="TextCNNTiny", steps=4, batch_size=16, warmup_steps=1,
                           checkpoint_every=2, log_every=2,
                           data={"dataset": "negation", "train": 128, "test": 64,
                                 "length": 16}),
}


def _data(cfg, args):
  data = dict(cfg.data)
  return text.experiment_data(data, args.data_dir if data.get("dataset") == "imdb" else None)


def _report(clf, test, workdir):
  path = os.path.join(workdir, "text_report.png")
  text.save_text_report(path, clf, test, title=f"{clf.spec.model} on the "
                        f"{clf.spec.metadata['dataset']} corpus")
  return {"pictures": [path]}


EXPERIMENT = sequence.InputsExperiment(
    name="text_cnn", configs=CONFIGS, data=_data, default_config="cnn",
    results_file=RESULTS_FILE, group="kind", report=_report, table=sequence.inputs_table)


def main(argv=None):
  return sequence.run_inputs_experiment(EXPERIMENT, argv, description=__doc__)


if __name__ == "__main__":
  main(sys.argv[1:])
