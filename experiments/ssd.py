"""SSD object detection on scenes of real MNIST digits (Atienza ch. 11), end to end.

    python -m experiments.ssd --train --data-dir DIR --workdir DIR [--normalize]
        [--smooth-l1] [--improved-loss] [--soft-nms] [--config cpu]
    python -m experiments.ssd --evaluate --restore-weights WORKDIR_OR_FILE --data-dir DIR
        --workdir DIR [--image-file out.png]

The book's script, on the offline scene set of :mod:`jaxvision.data.scenes` (11 classes: the
background and the digits 0-9): a ResNet v2 backbone with a 4-level pyramid and per-level
class / offset heads (:mod:`jaxvision.models.ssd`), anchors from ``ops.ssd_anchors``, ground
truth from ``ops.match_anchors`` (bipartite pass + IoU >= ``--threshold``, 0.6 as the book)
and ``ops.encode_boxes`` (``--normalize``: variances 0.1 / 0.2; otherwise the raw pixel
differences of the corners), loss CE + L1 (``--smooth-l1``: Huber; ``--improved-loss``: focal
+ Huber; ``--hard-negatives``: the SSD paper's 3:1 mining), trained with the shared loop
(:func:`jaxvision.train.train_and_evaluate`: checkpoints, resume, logs).

One deviation from the book, on by default in every config: hard negative mining 3:1 (the
SSD paper's; ``--hard-negatives 0`` restores the book's CE over every anchor). The book trains
200 epochs; at a CPU budget of a few epochs its recipe does not get off the ground. Measured
on 32 test scenes overfitted for 200 steps (batches of 16, Adam 1e-3): mean probability of
the true class on positive anchors 0.19 without mining, 0.22 with the focal loss, 0.93 with
3:1 mining (99.4% of positive anchors classified right); 1-2 positive anchors per object
against ~1600 background anchors is too few for the unmined loss to teach the classifier.

Evaluation on the test scenes (MNIST test digits) uses one jitted function per batch of 8:
network, softmax, offset decoding and the book's class-agnostic NMS (``--soft-nms``: soft-NMS)
— or per-class ``multiclass_nms`` with ``--nms multiclass``. Reported: the book's per-image
mIoU / precision / recall (class threshold 0.5, NMS IoU 0.2), VOC mAP@0.5 and COCO
mAP@[.5:.95] (computed from the same NMS with the class threshold lowered to
``map_class_threshold`` 0.05, so the precision-recall curve is complete). Results go to
``<workdir>/results.json`` and, with ``--record``, ``experiments/results/ssd.json``;
``--image-file`` writes test scenes with their labelled detections.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments import _common
from jaxvision import metrics, models, ops
from jaxvision.data import ArraySource, scenes
from jaxvision.train import Task, TrainConfig, write_results


@dataclasses.dataclass(frozen=True)
class SSDConfig:
  """One SSD recipe (scene data, model, anchors, schedule)."""

  model: str = "small"
  image_size: tuple[int, int] = (120, 160)
  digit_size: tuple[float, float] = (0.15, 0.6)
  num_digits: tuple[int, int] = (1, 8)
  train_scenes: int = 6000
  test_scenes: int = 500
  batch_size: int = 32
  num_steps: int = 1500
  learning_rate: float = 1e-3
  schedule: str = "cosine"  # "cosine" decay to 0, or "book": x0.1 after 30% of the steps
  anchor_scales: tuple[float, float] | None = (0.15, 0.75)  # s = linspace(lo, hi, L + 1)
  threshold: float = 0.6  # the book's --threshold for the extra anchors
  hard_negatives: float | None = 3.0  # the SSD paper's 3:1 mining (see the module notes)
  class_threshold: float = 0.5
  iou_threshold: float = 0.2
  map_class_threshold: float = 0.05
  max_detections: int = 32
  eval_every: int = 0
  checkpoint_every: int = 250
  log_every: int = 50


CONFIGS: dict[str, SSDConfig] = {
    # A 2-core CPU: 120 x 160 scenes, the small ResNet v2 SSD, 1500 steps of 32 (8 epochs of
    # 6000 scenes, ~10 minutes).
    "cpu": SSDConfig(eval_every=750),
    # The book's geometry: 480 x 640, ResNet56v2, batch 4, the book's anchor sizes.
    "book": SSDConfig(model="book", image_size=(480, 640), digit_size=(0.12, 0.6),
                      batch_size=4, num_steps=200 * 250, anchor_scales=None,
                      schedule="book", train_scenes=1000, test_scenes=50),
    "tiny": SSDConfig(model="tiny", image_size=(48, 64), digit_size=(0.3, 0.7),
                      num_digits=(1, 3), train_scenes=32, test_scenes=8, batch_size=8,
                      num_steps=3, checkpoint_every=2, log_every=1, max_detections=8),
}

_MODELS = {"small": models.SSDSmall, "book": models.SSDBook, "tiny": models.SSDTiny}
NUM_CLASSES = len(scenes.CLASS_NAMES)  # background + 10 digits


@dataclasses.dataclass(frozen=True)
class LossOptions:
  """The book's flags."""

  normalize: bool = False
  smooth_l1: bool = False
  improved_loss: bool = False
  soft_nms: bool = False
  nms: str = "book"  # "book" (class-agnostic, Listing 11.12.1) or "multiclass"

  @property
  def name(self) -> str:
    parts = ["normalized" if self.normalize else "raw"]
    if self.smooth_l1 or self.improved_loss:
      parts.append("smooth_l1")
    if self.improved_loss:
      parts.append("focal")
    if self.soft_nms:
      parts.append("soft_nms")
    if self.nms != "book":
      parts.append(self.nms)
    return "+".join(parts)


def _variances(opts: LossOptions):
  return (0.1, 0.2) if opts.normalize else None


def build_model(cfg: SSDConfig):
  return _MODELS[cfg.model](num_classes=NUM_CLASSES)


def make_anchors(model, cfg: SSDConfig) -> jax.Array:
  shapes = models.feature_shapes(model, cfg.image_size)
  sizes = None
  if cfg.anchor_scales is not None:
    s = np.linspace(cfg.anchor_scales[0], cfg.anchor_scales[1], len(shapes) + 1)
    sizes = [(float(s[i]), float(np.sqrt(s[i] * s[i + 1]))) for i in range(len(shapes))]
  return ops.ssd_anchors(cfg.image_size, shapes, sizes=sizes)


def make_targets(anchors, boxes, classes, num_boxes, *, threshold, variances):
  """``(labels [B, A], offset_targets [B, A, 4])`` from padded ground truth."""
  valid = jnp.arange(boxes.shape[1]) < num_boxes[:, None]
  matched, _ = ops.match_anchors(anchors, boxes, valid, iou_threshold=threshold)
  safe = jnp.maximum(matched, 0)
  labels = jnp.where(matched >= 0, jnp.take_along_axis(classes, safe, axis=1), 0)
  gt = jnp.take_along_axis(boxes, safe[..., None], axis=1)
  gt = jnp.where((matched >= 0)[..., None], gt, anchors)
  return labels.astype(jnp.int32), ops.encode_boxes(gt, anchors, variances=variances)


def _images(x):
  return x.astype(jnp.float32) / 255.0


def _learning_rate(cfg: SSDConfig):
  if cfg.schedule == "cosine":
    return optax.cosine_decay_schedule(cfg.learning_rate, cfg.num_steps)
  if cfg.schedule == "book":  # Adam 1e-3, step decay after "epoch 60" of 200
    return optax.piecewise_constant_schedule(
        cfg.learning_rate, {int(cfg.num_steps * 0.3): 0.1, int(cfg.num_steps * 0.8): 0.1})
  raise ValueError(f"`schedule` must be 'cosine' or 'book', got {cfg.schedule!r}.")


def make_predict(model, anchors, cfg: SSDConfig, opts: LossOptions, *, class_threshold):
  """A jitted ``(params, batch_stats, images [B, H, W, 3] uint8) -> detections`` function:
  network, softmax, decode and NMS in one XLA computation."""
  variances = _variances(opts)

  @jax.jit
  def predict(params, batch_stats, images):
    out = model.apply({"params": params, "batch_stats": batch_stats}, _images(images),
                      train=False)
    probs = jax.nn.softmax(out["classes"], axis=-1)
    boxes = ops.decode_boxes(out["offsets"], anchors, variances=variances)
    if opts.nms == "multiclass":
      det = ops.multiclass_nms(boxes, probs[..., 1:], iou_threshold=0.45,
                               score_threshold=class_threshold,
                               max_output_size_per_class=cfg.max_detections,
                               max_total_size=cfg.max_detections)
      det_boxes, det_scores, det_classes, count = det
      return det_boxes, det_scores, jnp.where(det_classes >= 0, det_classes + 1, -1), count
    idx, scores, cls, count = ops.detection_nms(
        probs, boxes, class_threshold=class_threshold, iou_threshold=cfg.iou_threshold,
        soft=opts.soft_nms, max_output_size=cfg.max_detections)
    det_boxes = jnp.take_along_axis(boxes, jnp.maximum(idx, 0)[..., None], axis=-2)
    return det_boxes, scores, cls, count

  return predict


def _to_lists(det, num: int):
  boxes, scores, classes, count = (np.asarray(a) for a in det)
  out = []
  for i in range(num):
    n = int(count[i])
    out.append({"boxes": boxes[i, :n], "scores": scores[i, :n], "classes": classes[i, :n]})
  return out


def _ground_truth(arrays) -> list[dict[str, np.ndarray]]:
  return [{"boxes": arrays["boxes"][i, :n], "classes": arrays["classes"][i, :n]}
          for i, n in enumerate(arrays["num_boxes"])]


def detect_all(predict, params, batch_stats, images, batch: int = 8):
  """Detections for every image, in jitted batches of ``batch`` (the last one padded)."""
  out = []
  for i in range(0, len(images), batch):
    chunk = images[i:i + batch]
    n = len(chunk)
    if n < batch:
      chunk = np.concatenate([chunk, np.zeros((batch - n,) + chunk.shape[1:], chunk.dtype)])
    out.extend(_to_lists(predict(params, batch_stats, chunk), n))
  return out


def evaluate_detections(book_dets, map_dets, ground_truth) -> dict[str, Any]:
  book = metrics.book_detection_summary(book_dets, ground_truth)
  voc = metrics.average_precision_voc(map_dets, ground_truth, iou_threshold=0.5)
  coco = metrics.coco_map(map_dets, ground_truth)
  return {"miou": float(book["miou"]), "precision": float(book["precision"]),
          "recall": float(book["recall"]), "map50": float(voc["map"]),
          "map": float(coco["map"]), "coco_map50": float(coco["map50"])}


def make_task(cfg: SSDConfig, opts: LossOptions, data_dir: str | None, *,
              digits=None) -> tuple[Task, dict[str, Any]]:
  """The SSD :class:`~jaxvision.train.Task` and what evaluation needs.

  ``digits``: optional ``{"train": (images, labels), "test": (...)}`` digit pools instead of
  MNIST (tests)."""
  model = build_model(cfg)
  anchors = make_anchors(model, cfg)
  scene_cfg = scenes.SceneConfig(image_size=cfg.image_size, digit_size=cfg.digit_size,
                                 num_digits=cfg.num_digits)
  train = scenes.SceneSource("train", cfg.train_scenes, data_dir=data_dir, config=scene_cfg,
                             digits=None if digits is None else digits["train"])
  test = scenes.SceneSource("test", cfg.test_scenes, data_dir=data_dir, config=scene_cfg,
                            digits=None if digits is None else digits["test"])
  train_arrays = {k: v for k, v in train.arrays.items() if k != "mask"}
  test_arrays = test.arrays
  variances = _variances(opts)

  def init(rng):
    x = jnp.zeros((1,) + tuple(cfg.image_size) + (3,), jnp.float32)
    variables = model.init(rng, x, train=False)
    return variables["params"], variables.get("batch_stats", {})

  def loss_fn(params, batch_stats, batch, rng):
    del rng
    labels, targets = make_targets(anchors, batch["boxes"], batch["classes"],
                                   batch["num_boxes"], threshold=cfg.threshold,
                                   variances=variances)
    out, updates = model.apply({"params": params, "batch_stats": batch_stats},
                               _images(batch["image"]), train=True, mutable=["batch_stats"])
    loss, parts = ops.ssd_loss(
        out["classes"], out["offsets"], labels, targets,
        classification="focal" if opts.improved_loss else "ce",
        localization="smooth_l1" if (opts.smooth_l1 or opts.improved_loss) else "l1",
        hard_negative_ratio=cfg.hard_negatives)
    return loss, (parts, updates["batch_stats"])

  def train_iter(seed, batch_size):
    return _common.process_local_pipeline(ArraySource(train_arrays),
                                          batch_size=batch_size, seed=seed)

  predict = make_predict(model, anchors, cfg, opts, class_threshold=cfg.class_threshold)
  predict_map = make_predict(model, anchors, cfg, opts,
                             class_threshold=cfg.map_class_threshold)
  ground_truth = _ground_truth(test_arrays)

  def evaluate(state):
    images = test_arrays["image"]
    book_dets = detect_all(predict, state.params, state.batch_stats, images)
    map_dets = detect_all(predict_map, state.params, state.batch_stats, images)
    return evaluate_detections(book_dets, map_dets, ground_truth)

  extras = {"model": model, "anchors": anchors, "predict": predict, "test": test_arrays,
            "init": init, "evaluate_params": evaluate}
  tx = optax.adam(_learning_rate(cfg))
  return Task(init=init, loss_fn=loss_fn, optimizer=tx, train_iter=train_iter,
              evaluate=evaluate), extras


def write_detections_png(path, predict, params, batch_stats, test_arrays, count: int = 8):
  images = test_arrays["image"][:count]
  dets = detect_all(predict, params, batch_stats, images)
  g = max(1, max(len(d["boxes"]) for d in dets))
  boxes = np.zeros((len(dets), g, 4), np.float32)
  classes = np.zeros((len(dets), g), np.int32)
  scores = np.zeros((len(dets), g), np.float32)
  for i, d in enumerate(dets):
    n = len(d["boxes"])
    boxes[i, :n], classes[i, :n], scores[i, :n] = d["boxes"], d["classes"], d["scores"]
  scenes.save_scene_preview(path, images, boxes, classes, scores=scores)


def run(config_name: str, opts: LossOptions, *, data_dir: str | None, workdir: str,
        train: bool = True, restore_weights: str | None = None, image_file: str | None = None,
        steps: int | None = None, seed: int = 0, progress: bool | None = None,
        record: str | None = None, config: SSDConfig | None = None,
        digits=None) -> dict[str, Any]:
  """Trains (or only evaluates) one configuration; returns the results dict."""
  start = time.time()
  if config is None and config_name not in CONFIGS:
    raise ValueError(f"`config` must be one of {sorted(CONFIGS)}, got {config_name!r}.")
  cfg = CONFIGS[config_name] if config is None else config
  if steps is not None:
    cfg = dataclasses.replace(cfg, num_steps=steps)
  if not train and restore_weights is None:
    raise ValueError("evaluating (train=False, --evaluate) needs --restore-weights (a "
                     "workdir or a weights file).")
  task, extras = make_task(cfg, opts, data_dir, digits=digits)
  os.makedirs(workdir, exist_ok=True)
  if train:
    train_cfg = TrainConfig(num_steps=cfg.num_steps, batch_size=cfg.batch_size, seed=seed,
                            checkpoint_every=cfg.checkpoint_every, log_every=cfg.log_every,
                            eval_every=cfg.eval_every, progress=progress)
    params, batch_stats, results = _common.train_and_save(train_cfg, workdir, task)
    ev = results.get("eval", {})
  else:
    params, batch_stats = _common.load_weights_for(restore_weights, task.init)
    ev = task.evaluate(_common.EvalState(params, batch_stats))
    results = {"eval": ev, "restored_from": str(restore_weights)}
  trained_steps = results.get("final_step", 0) - (results.get("resumed_from_step") or 0)
  results.update({
      "command": _common.command_line(),
      "config": opts.name,
      "config_name": config_name,
      "ssd_config": dataclasses.asdict(cfg),
      "flags": dataclasses.asdict(opts),
      "image_size": list(cfg.image_size),
      "epochs": round(cfg.num_steps * cfg.batch_size / cfg.train_scenes, 2),
      "evaluated_on": f"{cfg.test_scenes} test scenes (MNIST test digits)",
      **{k: ev.get(k) for k in ("map50", "map", "miou", "precision", "recall")},
      "wall_seconds": round(_common.cumulative_wall_seconds(workdir, time.time() - start), 1),
      "machine": _common.machine(),
  })
  write_results(workdir, results)
  if image_file and jax.process_index() == 0:
    write_detections_png(image_file, extras["predict"], params, batch_stats, extras["test"])
  if record and train and jax.process_index() == 0 and trained_steps > 0:
    keep = ("config", "map50", "map", "miou", "precision", "recall", "image_size", "epochs",
            "wall_seconds", "command", "machine", "ssd_config", "flags", "evaluated_on",
            "final_step")
    _common.append_run(record, {k: results[k] for k in keep if k in results})
  return results


BOOK_TABLE = {  # Atienza, Table 11.13.1 (drinks data set, 640 x 480)
    "raw": (0.64, 0.87, 0.87),
    "raw+smooth_l1": (0.61, 0.86, 0.85),
    "normalized": (0.53, 0.90, 0.87),
    "normalized+smooth_l1": (0.50, 0.85, 0.83),
    "normalized+smooth_l1+focal": (0.51, 0.85, 0.83),
}


def results_table(runs: list[dict[str, Any]]) -> str:
  """Markdown laid out like the book's Table 11.13.1 (a column per configuration), with the
  mAP rows added and the book's numbers in parentheses. A configuration recorded at several
  training lengths gets a column per length (labelled with its epochs); for the same
  configuration and length the last run wins."""
  latest = {}
  for r in runs:
    latest[(r["config"], r["epochs"])] = r
  configs = [c for c in BOOK_TABLE if any(k[0] == c for k in latest)]
  configs += sorted({k[0] for k in latest} - set(configs))
  keys = [k for c in configs for k in sorted(k for k in latest if k[0] == c)]
  counts = {c: sum(k[0] == c for k in keys) for c in configs}
  labels = [c if counts[c] == 1 else f"{c}, {e} epochs" for c, e in keys]
  order = keys
  head = "| | " + " | ".join(labels) + " |\n|---|" + "---|" * len(order) + "\n"
  rows = []
  for key, label, book_i in (("miou", "mIoU", 0), ("precision", "precision", 1),
                             ("recall", "recall", 2), ("map50", "mAP@0.5", None),
                             ("map", "mAP@[.5:.95]", None)):
    cells = []
    for c in order:
      v = latest[c].get(key)
      cell = "-" if v is None else f"{v:.3f}"
      if book_i is not None and c[0] in BOOK_TABLE:
        cell += f" ({BOOK_TABLE[c[0]][book_i]:.2f})"
      cells.append(cell)
    rows.append(f"| {label} | " + " | ".join(cells) + " |")
  for key, label in (("image_size", "image size"), ("epochs", "epochs"),
                     ("wall_seconds", "wall time (s)")):
    rows.append(f"| {label} | " + " | ".join(
        "x".join(map(str, latest[c][key])) if key == "image_size" else str(latest[c][key])
        for c in order) + " |")
  cmds = "\n".join(f"- {label}: `{latest[c]['command']}`" for c, label in zip(order, labels))
  return head + "\n".join(rows) + "\n\nCommands:\n\n" + cmds + "\n"


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  mode = p.add_mutually_exclusive_group(required=True)
  mode.add_argument("--train", action="store_true", help="train (resumes in --workdir)")
  mode.add_argument("--evaluate", action="store_true", help="evaluate --restore-weights")
  mode.add_argument("--table", metavar="RESULTS_JSON", default=None,
                    help="print the Markdown table of a results file (e.g. "
                         "experiments/results/ssd.json) and exit")
  p.add_argument("--restore-weights", default=None,
                 help="a workdir or weights.msgpack to evaluate")
  p.add_argument("--image-file", default=None, help="write test scenes with detections here")
  p.add_argument("--normalize", action="store_true", help="normalized offsets (0.1 / 0.2)")
  p.add_argument("--smooth-l1", action="store_true", help="Huber offset loss")
  p.add_argument("--improved-loss", action="store_true", help="focal loss + Huber")
  p.add_argument("--soft-nms", action="store_true", help="soft-NMS at inference")
  p.add_argument("--nms", default="book", choices=["book", "multiclass"])
  p.add_argument("--hard-negatives", type=float, default=None,
                 help="negatives per positive kept by hard negative mining (the config's "
                      "default is 3, the SSD paper's); 0 turns mining off (the book: CE over "
                      "every anchor)")
  p.add_argument("--threshold", type=float, default=None,
                 help="IoU threshold for the extra anchors (default 0.6, the book's)")
  p.add_argument("--data-dir", default=None,
                 help="directory with the MNIST IDX files (default: $JAXVISION_DATA_DIR)")
  p.add_argument("--workdir", default=None)
  p.add_argument("--config", default="cpu", choices=sorted(CONFIGS))
  p.add_argument("--steps", type=int, default=None)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--record", nargs="?", const=str(_common.RESULTS_DIR / "ssd.json"),
                 default=None, help="append to a results file (default "
                                    "experiments/results/ssd.json)")
  p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
  args = p.parse_args(argv)
  if args.table:
    import json  # pylint: disable=import-outside-toplevel
    with open(args.table) as f:
      print(results_table(json.load(f)["runs"]), end="")
    return
  if args.workdir is None:
    p.error("--workdir is required with --train / --evaluate")
  cfg = CONFIGS[args.config]
  if args.hard_negatives is not None:
    cfg = dataclasses.replace(cfg, hard_negatives=args.hard_negatives or None)
  if args.evaluate and args.restore_weights is None:
    p.error("--evaluate needs --restore-weights (a workdir or a weights.msgpack file)")
  if args.threshold is not None:
    cfg = dataclasses.replace(cfg, threshold=args.threshold)
  opts = LossOptions(normalize=args.normalize, smooth_l1=args.smooth_l1,
                     improved_loss=args.improved_loss, soft_nms=args.soft_nms, nms=args.nms)
  results = run(args.config, opts, data_dir=args.data_dir, workdir=args.workdir,
                train=args.train, restore_weights=args.restore_weights,
                image_file=args.image_file, steps=args.steps, seed=args.seed,
                progress=args.progress, record=args.record, config=cfg)
  print(f"SSD {results['config']}: mAP@0.5 {results['map50']}, mAP {results['map']}, "
        f"mIoU {results['miou']}, precision {results['precision']}, recall "
        f"{results['recall']}, wall {results['wall_seconds']} s")


if __name__ == "__main__":
  main()
