"""Video classification: clips of an MNIST digit moving in one of 8 directions, rotating or
growing (:mod:`jaxvision.video`), labelled by digit and motion; four models compared.

    python -m experiments.video --config lstm --workdir runs/video_lstm --record
    python -m experiments.video --config conv3d --workdir runs/video_3d --record
    python -m experiments.video --config conv2plus1d --workdir runs/video_2p1d --record
    python -m experiments.video --config single_frame --workdir runs/video_frame --record
    python -m experiments.video --table

Models (:mod:`jaxvision.models.video`): a frame CNN + LSTM (``nn.RNN``), a 3-D conv net, a
(2+1)-D net (each 3-D convolution split into spatial and temporal ones), and a single-frame
baseline (the middle frame only). Each has a digit head and a motion head whose logits sum
into the joint (digit, motion) class. Clips: 8 frames of 32 x 32; 10,000 training clips from
the MNIST training digits, 2,000 test clips from the test digits.

Configs: ``lstm``, ``conv3d``, ``conv2plus1d``, ``single_frame``, ``tiny`` (a smoke test).
"""

from __future__ import annotations

import os
import sys

import numpy as np

from jaxvision import sequence, video
from jaxvision.sequence import SequenceConfig

RESULTS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                            "video.json")

_DATA = {"train": 10000, "test": 2000, "frames": 8, "size": 32}


def _cfg(model, **kw):
  return SequenceConfig(model=model, steps=800, batch_size=32, learning_rate=2e-3,
                        warmup_steps=50, eval_every=400, log_every=100, checkpoint_every=400,
                        data=_DATA, **kw)


# Widths sized for a CPU: the 3-D nets at 8-16-32 channels cost about as much per clip as the
# frame CNN (16-32) run on all 8 frames.
CONFIGS = {
    "lstm": _cfg("VideoLSTM"),
    "conv3d": _cfg("Video3D", attributes={"width": 8}),
    "conv2plus1d": _cfg("Video2Plus1D", attributes={"width": 8}),
    "single_frame": _cfg("VideoSingleFrame"),
    "tiny": SequenceConfig(model="Video3DTiny", steps=4, batch_size=8, warmup_steps=1,
                           checkpoint_every=2, log_every=2,
                           data={"train": 64, "test": 32, "frames": 8, "size": 32}),
}


def _data(cfg, args):
  return video.experiment_data(cfg.data, args.data_dir)


def _report(clf, test, workdir):
  arrays = test.arrays
  preds, _ = clf.predict({"clip": arrays["clip"]})
  acc = video.factorised_accuracy(preds, test)
  path = os.path.join(workdir, "video_predictions.png")
  pick = np.random.default_rng(0).choice(len(preds), size=min(8, len(preds)), replace=False)
  video.save_clip_predictions(
      path, arrays["clip"][pick], arrays["label"][pick], preds[pick],
      title=f"{clf.spec.model}: digit accuracy {acc['digit_accuracy']:.3f}, motion accuracy "
            f"{acc['motion_accuracy']:.3f}")
  return {**acc, "pictures": [path]}


def table(runs):
  latest = {}
  for r in runs:
    latest[r["config_name"]] = r
  lines = ["| config | model | params | joint accuracy | digit accuracy | motion accuracy | "
           "train clips/s | inference clips/s | wall (s) |", "|---|---|" + "---:|" * 7]
  for name, r in latest.items():
    lines.append(f"| {name} | {r['model']} | {r['params']:,} | {r['test_accuracy']:.3f} | "
                 f"{r['digit_accuracy']:.3f} | {r['motion_accuracy']:.3f} | "
                 f"{r.get('train_examples_per_sec', '-')} | "
                 f"{r.get('inference_examples_per_sec', '-')} | {r.get('wall_seconds', '-')} |")
  return "\n".join(lines)


EXPERIMENT = sequence.InputsExperiment(
    name="video", configs=CONFIGS, data=_data, default_config="lstm",
    results_file=RESULTS_FILE, report=_report, table=table)


def main(argv=None):
  return sequence.run_inputs_experiment(EXPERIMENT, argv, description=__doc__)


if __name__ == "__main__":
  main(sys.argv[1:])
