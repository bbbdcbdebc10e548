"""One table of the trained detectors: SSD, YOLO, Faster R-CNN (and any other ``Detector``).

    python -m experiments.detectors --data-dir ../shared/data/mnist \\
        --weights SSD=experiments/results/ssd_cpu_weights.msgpack \\
                  YOLO=experiments/results/yolo_cpu_weights.msgpack \\
                  "Faster R-CNN=experiments/results/faster_rcnn_cpu_weights.msgpack" \\
        --out experiments/results/detectors.md

For every weights file (:func:`jaxvision.inference.detector_card`): parameters, training
images/s (steps x batch / training wall time, evaluations included, from the weights' own
record), inference images/s measured here in this one run (batch 8, jitted, best of 3 passes
over 64 test scenes, every detector in turn, so the ratios are comparable), and mAP@0.5 /
COCO mAP / precision / recall evaluated here on the test scenes the weights were trained
for.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import numpy as np

from jaxvision import experiment
from jaxvision.data import SceneConfig, SceneSource
from jaxvision.inference import Detector, detector_card, evaluate_detector


def _scenes(spec, data_dir, num):
  cfg = spec.training.get("config", {})
  config = SceneConfig(image_size=tuple(spec.image_size),
                       digit_size=tuple(cfg.get("digit_size", (0.15, 0.6))),
                       num_digits=tuple(cfg.get("num_digits", (1, 8))))
  return SceneSource("test", num_scenes=num, data_dir=data_dir, config=config)


def table(rows: list[dict[str, Any]]) -> str:
  """Markdown: one row per detector."""
  head = ("| detector | model | params | train images/s | inference images/s | mAP@0.5 | "
          "COCO mAP | precision | recall | mask AP@0.5 | training wall (s) | steps |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|\n")
  f = lambda v, d=3: "-" if v is None else f"{v:.{d}f}"  # noqa: E731
  lines = []
  for r in rows:
    m = r["metrics"]
    lines.append(f"| {r['name']} | {r['model']} | {r['params']:,} | "
                 f"{f(r['train_images_per_s'], 1)} | {f(r['inference_images_per_s'], 1)} | "
                 f"{f(m.get('map50'))} | {f(m.get('map'))} | {f(m.get('precision'))} | "
                 f"{f(m.get('recall'))} | {f(m.get('mask_map50'))} | "
                 f"{f(r['train_wall_seconds'], 0)} | "
                 f"{r['train_steps'] or '-'} |")
  return head + "\n".join(lines) + "\n"


def main(argv=None) -> list[dict[str, Any]]:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--weights", nargs="+", required=True, metavar="NAME=PATH",
                      help="detectors to compare, each NAME=weights file or workdir")
  parser.add_argument("--data-dir", default=experiment.default_data_dir(),
                      help="MNIST directory (default: $JAXVISION_DATA_DIR)")
  parser.add_argument("--test-scenes", type=int, default=500, help="scenes for the metrics")
  parser.add_argument("--timing-scenes", type=int, default=64, help="scenes for the timing")
  parser.add_argument("--out", default=None, help="write the Markdown table here too")
  args = parser.parse_args(argv)
  named = []
  for item in args.weights:
    name, sep, path = item.partition("=")
    if not sep or not name or not path:
      parser.error(f"--weights: expected NAME=PATH, got {item!r}")
    if not os.path.exists(path):
      parser.error(f"--weights: no such file {path!r}")
    named.append((name, Detector.load(path)))
  rows = []
  for name, det in named:
    test = _scenes(det.spec, args.data_dir, args.test_scenes)
    timing = np.stack([test[i]["image"] for i in range(args.timing_scenes)])
    card = detector_card(det, timing)
    card["metrics"] = evaluate_detector(det, test)
    card["name"] = name
    rows.append(card)
    print(f"{name}: {card['metrics']['map50']:.3f} mAP@0.5, "
          f"{card['inference_images_per_s']:.1f} inference images/s", flush=True)
  text = table(rows)
  command = experiment.command_line(argv, "experiments.detectors")
  where = experiment.machine()
  text += (f"\nMeasured {time.strftime('%Y-%m-%d')} on {where.get('cpu', 'cpu')} "
           f"({where.get('cpu_cores', os.cpu_count())} cores, {where.get('backend')}): "
           f"`{command}`\n")
  print(text, end="")
  if args.out:
    with open(args.out, "w", encoding="utf-8") as f:
      f.write(text)
  return rows


if __name__ == "__main__":
  main(sys.argv[1:])
