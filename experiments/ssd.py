"""SSD object detection (Atienza ch. 11; Liu et al. 2016) on digit scenes or your own data.

    python -m experiments.ssd --workdir runs/ssd                          # train, cpu config
    python -m experiments.ssd --evaluate --workdir runs/ssd_eval \
        --restore-weights experiments/results/ssd_cpu_weights.msgpack
    python -m experiments.ssd --predict photo.jpg --restore-weights runs/ssd
    python -m experiments.ssd --dataset book:DIR --workdir runs/drinks     # the book's layout
    python -m experiments.ssd --table experiments/results/ssd.json        # the book's table

The model, anchors, targets, loss and post-processing are the library's
(:mod:`jaxvision.models.ssd`, :func:`jaxvision.tasks.ssd_task`,
:class:`jaxvision.inference.Detector`); this file holds the recipes and the CLI. The weights
written to ``<workdir>/weights.msgpack`` describe themselves: ``--evaluate`` and
``--predict`` need no other flag. Measured numbers: ``experiments/results/ssd.md``.

Configs (``--config``):

* ``cpu``: 120 x 160 scenes of 1-8 digits, 6000 train / 500 test, SSDSmallP2 (the pyramid
  starts at stride 4: 30x40, 15x20, 8x10, 4x5), 5 anchors per point (pixel aspect ratios 1,
  1/2, 1/3, 2 at s = linspace(0.1, 0.5), plus the square extra scale), matching at IoU 0.5
  with a [0.4, 0.5) ignore band, SSD's random zoom-out / crop-in (scale 0.5-2, half the
  images), colour jitter 0.3 and pixel noise (std up to 0.08), batch 32, Adam 6e-3 with a
  5% warm-up and cosine decay over 2200 steps (about 23 minutes on 2 cores, evaluations
  included), normalized offsets + smooth L1, 3:1 hard negatives (the book trains
  without mining; ``--hard-negatives 0``), the book's class-agnostic NMS (score 0.5, IoU
  0.2); evaluated every 550 steps. Why each piece: ``experiments/results/ssd_diagnosis.md``.
  The book's five loss configurations: ``--no-normalize --localization l1`` (raw),
  ``--no-normalize`` (raw + smooth L1), ``--localization l1`` (normalized), the default,
  ``--improved-loss``.
* ``book``: the book's geometry: 480 x 640, SSDBook (ResNet56v2), batch 4, 50,000 steps, the
  book's anchor sizes and step decay. An accelerator run.
* ``tiny``: 48 x 64, SSDTiny, a few steps (tests).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from typing import Any, Mapping

import optax

from jaxvision import experiment
from jaxvision.inference import DetectorSpec, build_model
from jaxvision.models import ssd as ssd_lib
from jaxvision.tasks import ssd_task

RESULTS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "ssd.json")


@dataclasses.dataclass(frozen=True)
class SSDConfig:
  """One SSD recipe: data, model, anchors, loss, schedule, post-processing."""

  model: str = "SSDSmall"
  image_size: tuple[int, int] = (120, 160)
  digit_size: tuple[float, float] = (0.15, 0.6)
  num_digits: tuple[int, int] = (1, 8)
  train_scenes: int = 6000
  test_scenes: int = 500
  batch_size: int = 32
  steps: int = 3000
  learning_rate: float = 1e-3
  schedule: str = "cosine"  # "cosine" decay to 0, "warmup_cosine" (5% linear warm-up
  # first), or "book": x0.1 after 30% and 80%
  anchor_scales: tuple[float, float] | None = (0.15, 0.75)  # None: the book's (0.2, 0.9)
  aspect_ratios: tuple[float, ...] = (1.0, 2.0, 0.5)  # of the s1 anchors; +1 square at s2
  aspect_ratio_unit: str = "sides"  # the book's (fractions of the image's sides) or "pixels"
  match_iou: float = 0.6  # the book's threshold for the extra anchors
  ignore_iou: float | None = None  # unmatched anchors at IoU >= this are left out of the loss
  zoom: tuple[float, float] | None = None  # SSD's zoom-in / zoom-out scale range
  zoom_probability: float = 0.5
  color_jitter: float = 0.0  # photometric augmentation strength (0: none)
  noise_std: float = 0.0  # pixel noise, std up to this per image (0: none)
  hard_negatives: float | None = 3.0  # the SSD paper's 3:1 mining; None: CE over all anchors
  normalize: bool = True  # offsets normalized by variances (0.1, 0.2)
  classification: str = "ce"  # or "focal"
  localization: str = "smooth_l1"  # or "l1"
  nms: str = "class_agnostic"  # the book's; or "per_class"
  soft_nms: bool = False
  score_threshold: float = 0.5
  nms_iou: float = 0.2
  max_detections: int = 32
  eval_every: int = 0
  checkpoint_every: int = 250
  log_every: int = 50
  eval_batch_size: int = 8
  pictures: int = 8


CONFIGS: dict[str, SSDConfig] = {
    # The recipe of experiments/results/ssd_diagnosis.md: a stride-4 first level, 5 anchors
    # per point with pixel aspect ratios (1, 1/2, 1/3, 2) at s = linspace(0.1, 0.5), matching
    # at IoU 0.5 with a [0.4, 0.5) ignore band, SSD's zoom-in/out augmentation, Adam 6e-3
    # with warm-up and cosine decay, photometric jitter and pixel noise.
    "cpu": SSDConfig(model="SSDSmallP2", anchor_scales=(0.1, 0.5),
                     aspect_ratios=(1.0, 0.5, 1 / 3, 2.0), aspect_ratio_unit="pixels",
                     match_iou=0.5, ignore_iou=0.4, zoom=(0.5, 2.0), color_jitter=0.3,
                     noise_std=0.08, learning_rate=6e-3, schedule="warmup_cosine",
                     steps=2200, eval_every=550),
    "book": SSDConfig(model="SSDBook", image_size=(480, 640), digit_size=(0.12, 0.6),
                      batch_size=4, steps=200 * 250, anchor_scales=None, schedule="book",
                      train_scenes=1000, test_scenes=50, checkpoint_every=1000),
    "tiny": SSDConfig(model="SSDTiny", image_size=(48, 64), digit_size=(0.3, 0.7),
                      num_digits=(1, 3), train_scenes=32, test_scenes=8, batch_size=8,
                      steps=3, checkpoint_every=2, log_every=1, max_detections=8, pictures=4),
}


def recipe_name(cfg: SSDConfig) -> str:
  """The book's name of a loss configuration, e.g. ``"normalized+smooth_l1"``."""
  parts = ["normalized" if cfg.normalize else "raw"]
  if cfg.localization == "smooth_l1":
    parts.append("smooth_l1")
  if cfg.classification == "focal":
    parts.append("focal")
  if cfg.soft_nms:
    parts.append("soft_nms")
  if cfg.nms != "class_agnostic":
    parts.append(cfg.nms)
  return "+".join(parts)


def learning_rate(cfg: SSDConfig):
  if cfg.schedule == "cosine":
    return optax.cosine_decay_schedule(cfg.learning_rate, cfg.steps)
  if cfg.schedule == "warmup_cosine":  # linear warm-up over 5% of the steps, then cosine
    return optax.warmup_cosine_decay_schedule(0.0, cfg.learning_rate,
                                              cfg.steps // 20, cfg.steps)
  if cfg.schedule == "book":  # Adam 1e-3, x0.1 after "epoch 60" of 200 and again at 80%
    return optax.piecewise_constant_schedule(
        cfg.learning_rate, {int(cfg.steps * 0.3): 0.1, int(cfg.steps * 0.8): 0.1})
  raise ValueError(f"`schedule` must be 'cosine', 'warmup_cosine' or 'book', got "
                   f"{cfg.schedule!r}.")


def detector_spec(cfg: SSDConfig, class_names) -> DetectorSpec:
  """The detector ``cfg`` trains: model, anchors and post-processing."""
  model = build_model(cfg.model, len(class_names))
  sizes = None
  if cfg.anchor_scales is not None:
    sizes = ssd_lib.anchor_sizes(model.num_levels, cfg.anchor_scales)
  return DetectorSpec(model=cfg.model, num_classes=len(class_names), image_size=cfg.image_size,
                      class_names=tuple(class_names), anchor_sizes=sizes,
                      aspect_ratios=cfg.aspect_ratios, aspect_ratio_unit=cfg.aspect_ratio_unit,
                      variances=(0.1, 0.2) if cfg.normalize else None, nms=cfg.nms,
                      soft_nms=cfg.soft_nms, score_threshold=cfg.score_threshold,
                      nms_iou=cfg.nms_iou, max_detections=cfg.max_detections)


def build(cfg: SSDConfig, data, initial_variables):
  spec = detector_spec(cfg, data.class_names)
  task = ssd_task(spec, data.train, optimizer=optax.adam(learning_rate(cfg)),
                  match_iou=cfg.match_iou, hard_negatives=cfg.hard_negatives or None,
                  ignore_iou=cfg.ignore_iou, zoom=cfg.zoom,
                  zoom_probability=cfg.zoom_probability, color_jitter=cfg.color_jitter,
                  noise_std=cfg.noise_std,
                  classification=cfg.classification, localization=cfg.localization,
                  test_data=data.test, eval_batch_size=cfg.eval_batch_size,
                  initial_variables=initial_variables)
  return spec, task


class _ImprovedLoss(argparse.Action):
  """``--improved-loss``: the book's focal loss + smooth L1."""

  def __call__(self, parser, namespace, values, option_string=None):
    namespace.classification = "focal"
    namespace.localization = "smooth_l1"


def add_flags(group) -> None:
  group.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=None,
                     help="offsets normalized by variances (0.1, 0.2); --no-normalize: the "
                          "book's raw pixel offsets")
  group.add_argument("--localization", choices=["l1", "smooth_l1"], default=None,
                     help="offset loss")
  group.add_argument("--smooth-l1", dest="localization", action="store_const",
                     const="smooth_l1", help="= --localization smooth_l1")
  group.add_argument("--classification", choices=["ce", "focal"], default=None,
                     help="class loss")
  group.add_argument("--improved-loss", nargs=0, action=_ImprovedLoss,
                     help="the book's improved loss: focal + smooth L1")
  group.add_argument("--hard-negatives", type=float, default=None,
                     help="negatives per positive kept by hard negative mining; 0: CE over "
                          "every anchor (the book)")
  group.add_argument("--match-iou", type=float, default=None,
                     help="IoU above which an anchor also matches a box (the book's 0.6)")
  group.add_argument("--anchor-scales", type=float, nargs=2, default=None,
                     metavar=("LO", "HI"), help="anchor sizes s = linspace(LO, HI, L + 1)")
  group.add_argument("--aspect-ratios", type=float, nargs="+", default=None, metavar="R",
                     help="width/height of the s1 anchors (one more square anchor at s2)")
  group.add_argument("--aspect-ratio-unit", choices=list(ssd_lib.ASPECT_RATIO_UNITS),
                     default=None, help="sides: of the image's sides (the book's); pixels")
  group.add_argument("--ignore-iou", type=float, default=None,
                     help="unmatched anchors with IoU >= this are left out of the loss")
  group.add_argument("--zoom", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                     help="SSD's random zoom-out / crop-in scale range (augmentation)")
  group.add_argument("--color-jitter", type=float, default=None, metavar="S",
                     help="photometric augmentation: brightness/contrast/saturation in "
                          "[1-S, 1+S], hue up to S/3")
  group.add_argument("--noise-std", type=float, default=None,
                     help="Gaussian pixel noise, std uniform in [0, this] per image")
  group.add_argument("--model", default=None, help="a detector in jaxvision.models")
  group.add_argument("--nms", choices=list(ssd_lib.NMS_MODES), default=None,
                     help="class_agnostic (the book's) or per_class (TF combined NMS)")
  group.add_argument("--soft-nms", action=argparse.BooleanOptionalAction, default=None,
                     help="Gaussian soft-NMS in the class-agnostic mode")
  group.add_argument("--nms-iou", type=float, default=None, help="suppression IoU")
  group.add_argument("--score-threshold", type=float, default=None,
                     help="minimum class probability of a detection")
  group.add_argument("--learning-rate", type=float, default=None, help="Adam's peak rate")
  group.add_argument("--schedule", choices=["cosine", "warmup_cosine", "book"], default=None,
                     help="learning-rate schedule")


FLAG_FIELDS = {name: name for name in (
    "normalize", "localization", "classification", "hard_negatives", "match_iou",
    "anchor_scales", "aspect_ratios", "aspect_ratio_unit", "ignore_iou", "zoom", "model",
    "schedule", "color_jitter", "noise_std", "nms", "soft_nms", "nms_iou", "score_threshold",
    "learning_rate")}


def summary(results: Mapping[str, Any]) -> str:
  f = lambda k: "-" if results.get(k) is None else f"{results[k]:.3f}"  # noqa: E731
  return (f"SSD {results.get('model')} ({results.get('mode')}): mAP@0.5 {f('map50')}, COCO "
          f"mAP {f('map')}, precision {f('precision')}, recall {f('recall')}, mIoU "
          f"{f('miou')} on {results.get('evaluated_on')}; wall {results.get('wall_seconds')} s")


EXPERIMENT = experiment.PredictorExperiment(
    name="ssd", kind="detector", configs=CONFIGS, build=build, flags=add_flags,
    flag_fields=FLAG_FIELDS, results_file=RESULTS_FILE, summary=summary,
    datasets=("scenes", "book:DIR", "voc"),
    extra_results=lambda cfg: {"recipe": recipe_name(cfg)})


BOOK_TABLE = {  # Atienza, Table 11.13.1 (drinks data set, 640 x 480)
    "raw": (0.64, 0.87, 0.87),
    "raw+smooth_l1": (0.61, 0.86, 0.85),
    "normalized": (0.53, 0.90, 0.87),
    "normalized+smooth_l1": (0.50, 0.85, 0.83),
    "normalized+smooth_l1+focal": (0.51, 0.85, 0.83),
}


def _model_of(run: Mapping[str, Any]) -> str:
  """The model of a recorded run (runs before 2026-12 stored ``ssd_config.model = "small"``)."""
  if "model" in run:
    return str(run["model"])
  old = run.get("ssd_config", {}).get("model")
  return {"small": "SSDSmall", "book": "SSDBook", "tiny": "SSDTiny"}.get(old, str(old or "-"))


def results_table(runs: list[dict[str, Any]], model: str | None = None) -> str:
  """Markdown laid out like the book's Table 11.13.1 (a column per configuration and
  training length; the last run wins), mAP rows added, the book's numbers in parentheses.
  ``model``: only the runs of that model (recipes differ by model here)."""
  latest = {}
  for r in runs:
    if model is not None and _model_of(r) != model:
      continue
    latest[(r.get("recipe", r.get("config")), r["epochs"])] = r
  configs = [c for c in BOOK_TABLE if any(k[0] == c for k in latest)]
  configs += sorted({k[0] for k in latest} - set(configs))
  keys = [k for c in configs for k in sorted(k for k in latest if k[0] == c)]
  counts = {c: sum(k[0] == c for k in keys) for c in configs}
  labels = [c if counts[c] == 1 else f"{c}, {e} epochs" for c, e in keys]
  head = "| | " + " | ".join(labels) + " |\n|---|" + "---|" * len(keys) + "\n"
  rows = []
  for key, label, book_i in (("miou", "mIoU", 0), ("precision", "precision", 1),
                             ("recall", "recall", 2), ("map50", "mAP@0.5", None),
                             ("map", "mAP@[.5:.95]", None)):
    cells = []
    for c in keys:
      v = latest[c].get(key)
      cell = "-" if v is None else f"{v:.3f}"
      if book_i is not None and c[0] in BOOK_TABLE:
        cell += f" ({BOOK_TABLE[c[0]][book_i]:.2f})"
      cells.append(cell)
    rows.append(f"| {label} | " + " | ".join(cells) + " |")
  for key, label in (("model", "model"), ("image_size", "image size"), ("epochs", "epochs"),
                     ("wall_seconds", "wall time (s)")):
    rows.append(f"| {label} | " + " | ".join(
        "x".join(map(str, latest[c][key])) if key == "image_size" else
        str(_model_of(latest[c]) if key == "model" else latest[c][key]) for c in keys) + " |")
  cmds = "\n".join(f"- {label}: `{latest[c]['command']}`" for c, label in zip(keys, labels))
  return head + "\n".join(rows) + "\n\nCommands:\n\n" + cmds + "\n"


def main(argv=None, *, digits=None) -> dict[str, Any] | None:
  argv = sys.argv[1:] if argv is None else list(argv)
  if argv[:1] == ["--table"]:
    if len(argv) != 2:
      raise SystemExit("usage: python -m experiments.ssd --table RESULTS_JSON")
    with open(argv[1], encoding="utf-8") as f:
      runs = json.load(f)["runs"]
    models = list(dict.fromkeys(_model_of(r) for r in reversed(runs)))  # newest first
    print("\n".join(f"### {m}\n\n" + results_table(runs, m) for m in models), end="")
    return None
  return experiment.run_predictor_experiment(EXPERIMENT, argv, description=__doc__,
                                             digits=digits)


if __name__ == "__main__":
  main()
