"""Why an SSD misses digits: anchor coverage, recall by class and size, and the reason of every
miss, from a self-describing weights file alone.

    python -m experiments.ssd_diagnosis \\
        --restore-weights experiments/results/ssd_cpu_weights.msgpack --anchor-designs
    python -m experiments.ssd_diagnosis --restore-weights W --anchors-only   # coverage only

Prints a Markdown report (``--output FILE`` also writes it, ``--json FILE`` the numbers). The
test scenes are rebuilt from the training record inside the weights (``--dataset`` for
another data set); the analysis is :func:`jaxvision.inference.diagnose_detector` and
:mod:`jaxvision.metrics.detection_diagnosis`. ``--anchor-designs`` adds the coverage of
other anchor layouts on the model's pyramid (``ANCHOR_DESIGNS``), ``--postprocessing`` the
metrics of the same weights under other NMS settings, and ``--learning-curves WORKDIR...``
plots the evaluations a training run logged (``--eval-every``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import numpy as np

import jaxvision
from jaxvision import experiment, metrics, viz
from jaxvision.data import datasets, scenes
from jaxvision.inference import Detector, diagnose_detector
from jaxvision.models import ssd as ssd_lib

SIZE_EDGES = (0.16, 0.28)
SIZE_NAMES = ("small (h < 0.16 H)", "medium (0.16-0.28 H)", "large (h >= 0.28 H)")


def _pct(x) -> str:
  return "-" if x is None or not np.isfinite(x) else f"{100 * x:.1f}%"


def test_data(detector: Detector, dataset: str | None, data_dir, scene_overrides=None):
  training = detector.spec.training
  cfg = dict(training.get("config", {}))
  cfg.update(scene_overrides or {})
  size = tuple(detector.spec.image_size)
  scene_config = scenes.SceneConfig(
      image_size=size, digit_size=tuple(cfg.get("digit_size", (0.15, 0.6))),
      num_digits=tuple(cfg.get("num_digits", (1, 8))))
  return datasets.load_dataset(dataset or training.get("dataset", "scenes"), task="detection",
                               image_size=size, data_dir=data_dir, scene_config=scene_config,
                               train_scenes=1, test_scenes=int(cfg.get("test_scenes", 500)),
                               require_train=False).test


def coverage_rows(anchors, gt_boxes, classes, buckets, match_iou) -> dict[str, Any]:
  cov = metrics.anchor_coverage(anchors, gt_boxes, match_iou=match_iou)
  best, pos = cov["best_iou"], cov["positives"]
  out = {"boxes": int(len(best)), "best_iou_mean": float(best.mean()),
         "best_iou_ge_0.5": float(np.mean(best >= 0.5)),
         "best_iou_ge_0.7": float(np.mean(best >= 0.7)),
         f"best_iou_ge_{match_iou}": float(np.mean(best >= match_iou)),
         "positives_mean": float(pos.mean()),
         "positives_hist": {str(k): int(v) for k, v in zip(*np.unique(np.minimum(pos, 10),
                                                                       return_counts=True))}}
  out["by_class"] = {int(c): float(np.mean(best[classes == c] >= match_iou))
                     for c in np.unique(classes)}
  out["by_size"] = {SIZE_NAMES[b]: float(np.mean(best[buckets == b] >= match_iou))
                    for b in np.unique(buckets)}
  return out


# Anchor layouts to compare on the same boxes (coverage only, no training): name ->
# (sizes rule, aspect ratios as ssd_anchors takes them, i.e. of the image's sides; on the
# 120 x 160 scenes a pixel ratio r is the side ratio 0.75 r).
ANCHOR_DESIGNS = {
    "book rule s=linspace(0.2,0.9), ar (1,2,1/2)": ((0.2, 0.9), (1, 2, 0.5)),
    "s=linspace(0.15,0.75), ar (1,2,1/2) (cpu before)": ((0.15, 0.75), (1, 2, 0.5)),
    "s=linspace(0.15,0.75), SSD paper ar (1,2,1/2,3,1/3)": ((0.15, 0.75), (1, 2, 0.5, 3, 1 / 3)),
    "s=linspace(0.1,0.5), SSD paper ar (1,2,1/2,3,1/3)": ((0.1, 0.5), (1, 2, 0.5, 3, 1 / 3)),
    "s=linspace(0.1,0.5), pixel ar (1,1/2,1/3,2) (cpu now)": ((0.1, 0.5), (0.75, 0.375, 0.25, 1.5)),
    "s=linspace(0.1,0.5), pixel ar (1,1/2,1/3,1/4,2)": ((0.1, 0.5),
                                                        (0.75, 0.375, 0.25, 0.1875, 1.5)),
}


def report(detector: Detector, data, *, match_iou: float, anchors_only: bool,
           designs: bool) -> tuple[str, dict[str, Any]]:
  spec = detector.spec
  h, w = spec.image_size
  arrays = data.arrays if hasattr(data, "arrays") else data
  n = np.asarray(arrays["num_boxes"])
  gt = np.concatenate([np.asarray(arrays["boxes"][i, :k]) for i, k in enumerate(n)])
  gt_classes = np.concatenate([np.asarray(arrays["classes"][i, :k]) for i, k in enumerate(n)])
  buckets = metrics.size_bucket(gt, h, SIZE_EDGES)
  names = spec.class_names
  lines = [f"Model {spec.model}, input {h}x{w}, {detector.anchors.shape[0]} anchors "
           f"({len(spec.aspect_ratios) + 1} per point), matching IoU {match_iou}; "
           f"{len(n)} test images, {len(gt)} ground-truth boxes.", ""]
  numbers: dict[str, Any] = {"model": spec.model, "anchors": int(detector.anchors.shape[0]),
                             "match_iou": match_iou, "boxes": int(len(gt))}
  cov = coverage_rows(np.asarray(detector.anchors), gt, gt_classes, buckets, match_iou)
  numbers["coverage"] = cov
  lines += ["### Anchor coverage", "",
            f"Best-anchor IoU: mean {cov['best_iou_mean']:.3f}; >= 0.5 for "
            f"{_pct(cov['best_iou_ge_0.5'])} of boxes, >= 0.7 for "
            f"{_pct(cov['best_iou_ge_0.7'])}, >= the matching IoU {match_iou} for "
            f"{_pct(cov[f'best_iou_ge_{match_iou}'])}. Positive anchors per box: mean "
            f"{cov['positives_mean']:.2f}; histogram (count: boxes, 10 = 10 or more) "
            f"{cov['positives_hist']}.", "",
            "| class | " + " | ".join(names[c] for c in cov["by_class"]) + " |",
            "|---|" + "---|" * len(cov["by_class"]),
            f"| best IoU >= {match_iou} | " + " | ".join(_pct(v) for v in cov["by_class"].values())
            + " |", "",
            "| size bucket | boxes | best IoU >= " + str(match_iou) + " |", "|---|---|---|"]
  for b, name in enumerate(SIZE_NAMES):
    lines.append(f"| {name} | {int(np.sum(buckets == b))} | {_pct(cov['by_size'].get(name))} |")
  lines.append("")
  if designs:
    shapes = ssd_lib.feature_shapes(detector.model, spec.image_size)
    from jaxvision import ops  # pylint: disable=import-outside-toplevel
    lines += ["Other anchor layouts on the same boxes and pyramid "
              f"({', '.join(f'{a}x{b}' for a, b in shapes)}):", "",
              "| layout | anchors | mean best IoU | best >= 0.5 | best >= 0.7 | "
              f"positives/box at {match_iou} | best >= {match_iou}: small | medium | large |",
              "|---|---|---|---|---|---|---|---|---|"]
    numbers["designs"] = {}
    for name, (scales, ratios) in ANCHOR_DESIGNS.items():
      anchors = np.asarray(ops.ssd_anchors(spec.image_size, shapes,
                                           sizes=ssd_lib.anchor_sizes(len(shapes), scales),
                                           aspect_ratios=ratios))
      c = coverage_rows(anchors, gt, gt_classes, buckets, match_iou)
      numbers["designs"][name] = c
      lines.append(f"| {name} | {len(anchors)} | {c['best_iou_mean']:.3f} | "
                   f"{_pct(c['best_iou_ge_0.5'])} | {_pct(c['best_iou_ge_0.7'])} | "
                   f"{c['positives_mean']:.2f} | " + " | ".join(
                       _pct(c['by_size'].get(s)) for s in SIZE_NAMES) + " |")
    lines.append("")
  if anchors_only:
    return "\n".join(lines), numbers

  t0 = time.time()
  d = diagnose_detector(detector, data, match_iou=match_iou, size_edges=SIZE_EDGES)
  results = jaxvision.inference.evaluate_detector(detector, data)
  numbers["metrics"] = {k: results[k] for k in ("map50", "map", "precision", "recall", "miou")}
  low = detector.detect(arrays["image"], score_threshold=0.05)
  truth = jaxvision.inference.ground_truth_lists(arrays)
  ap = metrics.average_precision_voc(low, truth)["per_class"]
  found, reason = d["found"], d["reason"]
  numbers["per_class"] = {names[c]: {"ap50": float(ap.get(c, np.nan)),
                                     "recall": float(found[d["classes"] == c].mean())}
                          for c in np.unique(d["classes"])}
  numbers["recall_by_size"] = {SIZE_NAMES[b]: float(found[d["size_bucket"] == b].mean())
                               for b in np.unique(d["size_bucket"])}
  misses = {r: int(np.sum(reason == r)) for r in metrics.MISS_REASONS}
  numbers["misses"] = misses
  m = results
  lines += ["### Detection", "",
            f"mAP@0.5 {m['map50']:.3f}, COCO mAP {m['map']:.3f}, the book's precision "
            f"{m['precision']:.3f} / recall {m['recall']:.3f} / mIoU {m['miou']:.3f} "
            f"(score threshold {spec.score_threshold}, {spec.nms} NMS at IoU {spec.nms_iou}); "
            f"VOC recall at that threshold {found.mean():.3f}.", "",
            "| class | " + " | ".join(numbers["per_class"]) + " |",
            "|---|" + "---|" * len(numbers["per_class"]),
            "| AP@0.5 | " + " | ".join(f"{v['ap50']:.3f}" for v in numbers["per_class"].values())
            + " |",
            "| recall | " + " | ".join(f"{v['recall']:.3f}" for v in numbers["per_class"].values())
            + " |", "", "| size bucket | boxes | recall | " + " | ".join(
                metrics.MISS_REASONS) + " |", "|---|---|---|" + "---|" * len(metrics.MISS_REASONS)]
  for b, name in enumerate(SIZE_NAMES):
    sel = d["size_bucket"] == b
    lines.append(f"| {name} | {int(sel.sum())} | {_pct(found[sel].mean() if sel.any() else None)}"
                 " | " + " | ".join(str(int(np.sum(reason[sel] == r)))
                                    for r in metrics.MISS_REASONS) + " |")
  lines.append(f"| all | {len(found)} | {_pct(found.mean())} | " + " | ".join(
      str(v) for v in misses.values()) + " |")
  lines += ["", f"Reasons (first that applies): no_anchor = no decoded box overlaps it by 0.5 "
            f"and no anchor reaches {match_iou}; mislocalized = an anchor reaches it but no "
            "decoded box does; suppressed = a candidate of the right class overlaps it but NMS "
            "(or the output limit) removed it; wrong_class = the candidates overlapping it are "
            "of another class; background = boxes overlap it but no class clears the score "
            f"threshold. ({time.time() - t0:.0f} s)", ""]
  return "\n".join(lines), numbers


def learning_curves(workdirs, path: str) -> dict[str, list]:
  """mAP@0.5 / recall / precision against the step from the eval entries of each run's
  ``metrics.jsonl`` (``--eval-every``), plotted to ``path``."""
  series, out = {}, {}
  for wd in workdirs:
    name = os.path.basename(os.path.normpath(wd))
    steps, rows = experiment.eval_history(wd)
    out[name] = [{"step": s, **{k: r.get(k) for k in ("map50", "map", "precision", "recall")}}
                 for s, r in zip(steps, rows)]
    for key, label in (("map50", "mAP@0.5"), ("map", "COCO mAP"),
                       ("precision", "the book's precision"), ("recall", "the book's recall")):
      series[(name, label)] = (steps, [r.get(key) for r in rows])
  viz.save_line_plot(path, series, xlabel="training step", ylabel="on the test split",
                     title="SSD learning curves (evaluations logged by --eval-every)")
  return out


POSTPROCESSING = (  # (nms, nms_iou, score_threshold): the book's first
    ("class_agnostic", 0.2, 0.5), ("class_agnostic", 0.45, 0.5), ("per_class", 0.45, 0.5),
    ("per_class", 0.5, 0.4), ("per_class", 0.5, 0.3),
)


def postprocessing_rows(detector: Detector, data) -> tuple[str, list[dict[str, Any]]]:
  """The same weights under other NMS modes / IoUs / score thresholds (no retraining)."""
  import dataclasses  # pylint: disable=import-outside-toplevel
  rows = []
  lines = ["### Post-processing of the same weights", "",
           "| NMS | IoU | score threshold | mAP@0.5 | COCO mAP | precision | recall | mIoU |",
           "|---|---|---|---|---|---|---|---|"]
  for nms, iou, thr in POSTPROCESSING:
    spec = dataclasses.replace(detector.spec, nms=nms, nms_iou=iou, score_threshold=thr)
    m = jaxvision.inference.evaluate_detector(Detector(spec, detector.variables), data)
    rows.append({"nms": nms, "nms_iou": iou, "score_threshold": thr,
                 **{k: m[k] for k in ("map50", "map", "precision", "recall", "miou")}})
    lines.append(f"| {nms} | {iou} | {thr} | {m['map50']:.3f} | {m['map']:.3f} | "
                 f"{m['precision']:.3f} | {m['recall']:.3f} | {m['miou']:.3f} |")
  return "\n".join(lines) + "\n", rows


def main(argv=None) -> dict[str, Any]:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--restore-weights", default=None, help="a weights file or workdir")
  parser.add_argument("--data-dir", default=None, help="MNIST directory (scenes)")
  parser.add_argument("--dataset", default=None, help="default: the one trained on")
  parser.add_argument("--match-iou", type=float, default=None,
                      help="default: the training record's match_iou")
  parser.add_argument("--anchors-only", action="store_true")
  parser.add_argument("--anchor-designs", action="store_true")
  parser.add_argument("--postprocessing", action="store_true",
                      help="also evaluate the weights under other NMS settings")
  parser.add_argument("--output", default=None, help="also write the Markdown here")
  parser.add_argument("--json", default=None, help="write the numbers here")
  parser.add_argument("--learning-curves", nargs="+", default=None, metavar="WORKDIR",
                      help="plot the eval entries of these training workdirs to --curve-png")
  parser.add_argument("--curve-png", default="ssd_learning_curves.png")
  args = parser.parse_args(argv)
  if args.learning_curves:
    curves = learning_curves(args.learning_curves, args.curve_png)
    print(json.dumps(curves, indent=1))
    return curves
  with experiment.cli_errors(parser):
    if args.restore_weights is None:
      raise experiment.FlagError("--restore-weights is required.")
    try:
      detector = Detector.load(args.restore_weights)
    except (FileNotFoundError, ValueError) as e:
      raise experiment.FlagError(f"--restore-weights {args.restore_weights}: {e}") from None
  data_dir = args.data_dir or experiment.default_data_dir()
  try:
    data = test_data(detector, args.dataset, data_dir)
  except (FileNotFoundError, ValueError) as e:
    parser.error(f"--dataset: {e}")
  match_iou = args.match_iou or float(detector.spec.training.get("config", {}).get(
      "match_iou", 0.5))
  text, numbers = report(detector, data, match_iou=match_iou, anchors_only=args.anchors_only,
                         designs=args.anchor_designs)
  if args.postprocessing:
    extra, numbers["postprocessing"] = postprocessing_rows(detector, data)
    text += "\n" + extra
  numbers["command"] = experiment.command_line(argv, "experiments.ssd_diagnosis")
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
