"""What a segmenter gets wrong: per-class IoU, digit-vs-digit confusion against boundary errors,
whole digits read as another, and learning curves, from a self-describing weights file alone.

    python -m experiments.segmentation_diagnosis \\
        --restore-weights experiments/results/fcn_cpu_weights.msgpack --output diag.md
    python -m experiments.segmentation_diagnosis --learning-curves runs/a runs/b \\
        --curve-png curves.png

Prints a Markdown report (``--output FILE`` also writes it, ``--json FILE`` the numbers). The
test split is rebuilt from the training record inside the weights (``--dataset`` for another
data set, e.g. ``book:DIR``). The analysis is :func:`jaxvision.inference.diagnose_segmenter`
(:mod:`jaxvision.metrics.segmentation_diagnosis`); ``--learning-curves`` plots the
evaluations training runs logged (``--eval-every``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import numpy as np

from jaxvision import experiment, viz
from jaxvision.data import datasets, scenes
from jaxvision.inference import Segmenter, diagnose_segmenter
from jaxvision.metrics import ERROR_KINDS


def _f(x, pct=False) -> str:
  if x is None or not np.isfinite(x):
    return "-"
  return f"{100 * x:.1f}%" if pct else f"{x:.3f}"


def test_data(segmenter: Segmenter, dataset: str | None, data_dir):
  training = segmenter.spec.training
  cfg = dict(training.get("config", {}))
  size = tuple(segmenter.spec.image_size)
  scene_config = scenes.SceneConfig(
      image_size=size, digit_size=tuple(cfg.get("digit_size", (0.2, 0.6))),
      num_digits=tuple(cfg.get("num_digits", (1, 6))))
  return datasets.load_dataset(dataset or training.get("dataset", "scenes"),
                               task="segmentation", image_size=size, data_dir=data_dir,
                               scene_config=scene_config, train_scenes=1,
                               test_scenes=int(cfg.get("test_scenes", 500)),
                               require_train=False).test


def report(segmenter: Segmenter, data, *, boundary_width: int) -> tuple[str, dict[str, Any]]:
  t0 = time.time()
  d = diagnose_segmenter(segmenter, data, boundary_width=boundary_width)
  names = segmenter.class_names
  e, objects = d["errors"], np.asarray(d["object_confusion"])
  lines = [f"## {segmenter.spec.model} on {d['num_images']} test images", "",
           f"Book per-image mIoU {_f(d['miou'])}, dataset mIoU {_f(d['dataset_miou'])} "
           f"(11 classes), over the digits {_f(d['dataset_foreground_miou'])}; pixel "
           f"accuracy {_f(d['pixel_accuracy'], True)}.", "",
           "### Per class", "",
           f"| class | pixels (truth) | IoU | IoU without the {boundary_width}-px boundary "
           "band | objects | read as this class | read as background | read as another "
           "digit |", "|---|---|---|---|---|---|---|---|"]
  cm = np.asarray(e["confusion"])
  for c, name in enumerate(names):
    n_obj = int(objects[c].sum())
    right = int(objects[c, c]) if c else 0
    bg = int(objects[c, 0]) if c else 0
    lines.append(f"| {name} | {int(cm[c].sum()):,} | {_f(e['per_class_iou'][c])} | "
                 f"{_f(e['per_class_iou_without_band'][c])} | {n_obj if c else ''} | "
                 f"{right if c else ''} | {bg if c else ''} | "
                 f"{(n_obj - right - bg) if c else ''} |")
  total = max(e["errors"], 1)
  lines += ["", f"### The {e['errors']:,} wrong pixels ({_f(e['errors'] / e['pixels'], True)} "
            f"of all), by kind and place", "",
            f"The boundary band holds the pixels within {boundary_width} px of a pixel of "
            f"another true class ({_f(e['band_pixels'] / e['pixels'], True)} of all pixels).",
            "", "| kind | on the boundary band | inside | total |", "|---|---|---|---|"]
  for k in ERROR_KINDS:
    b, i = e["counts"][k]["boundary"], e["counts"][k]["interior"]
    lines.append(f"| {k.replace('_', ' ')} | {b:,} ({_f(b / total, True)}) | "
                 f"{i:,} ({_f(i / total, True)}) | {b + i:,} ({_f((b + i) / total, True)}) |")
  lines += ["", f"Digit mIoU {_f(e['foreground_miou'])} counting every pixel, "
            f"{_f(e['foreground_miou_without_band'])} with the boundary band left out.", ""]
  off = [(int(objects[t, p]), names[t], names[p]) for t in range(1, len(names))
         for p in range(1, len(names)) if t != p and objects[t, p]]
  off.sort(reverse=True)
  n_objects = int(objects[1:].sum())
  n_wrong = sum(n for n, _, _ in off)
  lines += ["### Whole digits read as another", "",
            f"{n_wrong} of {n_objects} ground-truth digits (connected components of one class "
            f"in the truth) are mostly predicted as another digit, "
            f"{int(objects[1:, 0].sum())} mostly as background. Most frequent: " +
            (", ".join(f"{t} as {p} ({n})" for n, t, p in off[:8]) or "none") + ".",
            "", f"({time.time() - t0:.0f} s)", ""]
  return "\n".join(lines), d


def learning_curves(workdirs, path: str) -> dict[str, list]:
  """The evaluations each run logged in ``metrics.jsonl`` (``--eval-every``), plotted."""
  series, out = {}, {}
  keys = (("miou", "book mIoU"), ("dataset_foreground_miou", "digit mIoU"))
  for wd in workdirs:
    name = os.path.basename(os.path.normpath(wd))
    steps, rows = experiment.eval_history(wd)
    out[name] = [{"step": s, **{k: r.get(k) for k, _ in keys + (("dataset_miou", ""),)}}
                 for s, r in zip(steps, rows)]
    for key, label in keys:
      if any(r.get(key) is not None for r in rows):
        series[(name, label)] = (steps, [r.get(key) for r in rows])
  viz.save_line_plot(path, series, xlabel="training step", ylabel="on the test split",
                     title="Segmentation learning curves (--eval-every)")
  return out


def main(argv=None) -> dict[str, Any]:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--restore-weights", default=None, help="a weights file or workdir")
  parser.add_argument("--data-dir", default=None, help="MNIST directory (scenes)")
  parser.add_argument("--dataset", default=None, help="default: the one trained on")
  parser.add_argument("--boundary-width", type=int, default=1,
                      help="half-width in pixels of the boundary band")
  parser.add_argument("--output", default=None, help="also write the Markdown here")
  parser.add_argument("--json", default=None, help="write the numbers here")
  parser.add_argument("--learning-curves", nargs="+", default=None, metavar="WORKDIR",
                      help="plot the eval entries of these training workdirs to --curve-png")
  parser.add_argument("--curve-png", default="segmentation_learning_curves.png")
  args = parser.parse_args(argv)
  if args.learning_curves:
    try:
      curves = learning_curves(args.learning_curves, args.curve_png)
    except FileNotFoundError as e:
      parser.error(f"--learning-curves: {e}")
    print(json.dumps(curves, indent=1))
    return curves
  with experiment.cli_errors(parser):
    if args.restore_weights is None:
      raise experiment.FlagError("--restore-weights is required.")
    if args.boundary_width < 1:
      raise experiment.FlagError(f"--boundary-width must be >= 1, got {args.boundary_width}.")
    try:
      segmenter = Segmenter.load(args.restore_weights)
    except (FileNotFoundError, ValueError) as e:
      raise experiment.FlagError(f"--restore-weights {args.restore_weights}: {e}") from None
  data_dir = args.data_dir or experiment.default_data_dir()
  try:
    data = test_data(segmenter, args.dataset, data_dir)
  except (FileNotFoundError, ValueError) as e:
    parser.error(f"--dataset: {e}")
  text, numbers = report(segmenter, data, boundary_width=args.boundary_width)
  numbers["command"] = experiment.command_line(argv, "experiments.segmentation_diagnosis")
  print(text)
  if args.output:
    with open(args.output, "w", encoding="utf-8") as f:
      f.write(text)
  if args.json:
    with open(args.json, "w", encoding="utf-8") as f:
      json.dump(numbers, f, indent=1)
  return numbers


if __name__ == "__main__":
  main(sys.argv[1:])
