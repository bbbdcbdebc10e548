"""Classification + localisation: one network names the single digit in a 64 x 64 scene and
draws its box (the first detection step of the survey).

    python -m experiments.localization --workdir runs/loc --record
    python -m experiments.localization --table

Images: the scene generator with exactly one MNIST digit at a random scale (patch side 0.3-0.9
of the image) and position on the textured background; 60,000 training scenes from the MNIST
training digits and 2,000 test scenes from the test digits. The model (LocalizerSmall: a
7-conv BatchNorm trunk with CoordConv input channels, average + max pooling, a class head and
a box head) is trained with cross-entropy + 2 x (L1 + 1 - GIoU). Reported: class accuracy,
the fraction of test images whose box has IoU > 0.5 with the truth, the mean IoU, and both.
``<workdir>`` gets ``results.json``, ``weights.msgpack`` and ``localization.png`` (ground
truth beside the prediction for 16 test scenes).

Configs: ``cpu`` (60,000 training scenes, 3000 steps of 64, Adam 2e-3 with a cosine decay,
box weight 2), ``scenes20k`` (the same on 20,000 scenes), ``short`` (20,000 scenes, 1500 steps,
box weight 5: the first recipe), ``tiny`` (smoke test). Measured: ``experiments/results/
localization.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from typing import Any, Sequence

import numpy as np
import optax

from jaxvision import experiment, viz
from jaxvision import weights as weights_lib
from jaxvision import localization as loc
from jaxvision.models import count_params, localizer
from jaxvision.train import TrainConfig, train_and_evaluate

MODULE = "experiments.localization"
RESULTS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                            "localization.json")


@dataclasses.dataclass(frozen=True)
class Config:
  model: str = "LocalizerSmall"
  steps: int = 1500
  batch_size: int = 64
  learning_rate: float = 2e-3
  warmup_steps: int = 50
  box_weight: float = 5.0
  train_images: int = 20000
  test_images: int = 2000
  image_size: int = 64
  eval_every: int = 500
  checkpoint_every: int = 250
  log_every: int = 100


CONFIGS = {"cpu": Config(steps=3000, box_weight=2.0, eval_every=1000, train_images=60000),
           "scenes20k": Config(steps=3000, box_weight=2.0, eval_every=1000),
           "short": Config(),
           "tiny": Config(model="LocalizerTiny", steps=20, batch_size=16, train_images=128,
                          test_images=64, image_size=48, eval_every=0, checkpoint_every=10,
                          log_every=10)}


def _data(cfg: Config, data_dir, digits=None):
  try:
    train = loc.localization_source("train", cfg.train_images, data_dir=data_dir,
                                    image_size=cfg.image_size, digits=digits)
    test = loc.localization_source("test", cfg.test_images, data_dir=data_dir,
                                   image_size=cfg.image_size, digits=digits)
  except (FileNotFoundError, ValueError) as e:
    raise experiment.FlagError(f"--data-dir: {e}") from None
  return train, test


def picture(path: str, model, variables, test, count: int = 16, name: str | None = None) -> None:
  images = test.arrays["image"][:count]
  classes, boxes, probs = loc.localize(model, variables, images)
  h = images.shape[1]
  truth = test.arrays["box"][:count] * h
  names = ("background",) + tuple(str(d) for d in range(10))
  dets = [{"boxes": boxes[i:i + 1], "classes": classes[i:i + 1] + 1,
           "scores": probs[i, classes[i]:classes[i] + 1]} for i in range(count)]
  gt = [{"boxes": truth[i:i + 1], "classes": test.arrays["label"][i:i + 1] + 1}
        for i in range(count)]
  viz.save_detections(path, images, dets, ground_truth=gt, class_names=names,
                      side_by_side=True, columns=8, min_tile=192,
                      title=f"{name or type(model).__name__}: ground truth (dashed, left) beside the "
                            f"predicted class and box (solid, right) on test scenes")


def table(runs: list[dict[str, Any]]) -> str:
  lines = ["| config | model | params | class accuracy | IoU > 0.5 | mean IoU | both | "
           "train scenes | steps | wall (s) |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
  for r in runs:
    e = r["evaluation"]
    lines.append(f"| {r['config_name']} | {r['config']['model']} | {r['params']:,} | "
                 f"{e['accuracy']:.4f} | {e['iou_above_0.5']:.4f} | {e['mean_iou']:.3f} | "
                 f"{e['correct_and_iou_above_0.5']:.4f} | {r['config']['train_images']} | "
                 f"{r['config']['steps']} | {r['wall_seconds']} |")
  return "\n".join(lines)


def main(argv: Sequence[str] | None = None, *, digits=None) -> dict[str, Any]:
  parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__,
                                   formatter_class=experiment.HelpFormatter)
  experiment.add_flags(parser, configs=sorted(CONFIGS), default_config="cpu",
                       results_file=RESULTS_FILE, eval_every=True)
  parser.add_argument("--table", action="store_true", help="print the recorded runs and exit")
  args = parser.parse_args(argv)
  with experiment.cli_errors(parser):
    if args.table:
      path = args.record or RESULTS_FILE
      text = table(json.loads(open(path, encoding="utf-8").read())["runs"])
      print(text)
      return {"table": text}
    start = time.time()
    experiment.setup(args)
    if args.workdir is None:
      raise experiment.FlagError("--workdir is required.")
    overrides = experiment.config_overrides(args, {"steps": "steps", "batch_size": "batch_size",
                                                   "eval_every": "eval_every"})
    if args.evaluate:
      source = args.restore_weights or args.workdir
      variables, spec = experiment.load_weights_spec(source)
      experiment.check_against_weights(overrides, spec.get("config", {}), repr(str(source)))
      name = spec.get("config_name", "cpu")
      cfg = Config(**spec["config"])
    else:
      name = args.config or "cpu"
      cfg = dataclasses.replace(CONFIGS[name], **overrides)
    model = getattr(localizer, cfg.model)()
    train, test = _data(cfg, args.data_dir, digits)
    if not args.evaluate:
      lr = optax.warmup_cosine_decay_schedule(0.0, cfg.learning_rate, cfg.warmup_steps,
                                              max(cfg.steps, cfg.warmup_steps + 1))
      task = loc.localization_task(model, train, optimizer=optax.adam(lr), test_data=test,
                                   box_weight=cfg.box_weight, image_size=cfg.image_size)
      out = train_and_evaluate(TrainConfig(num_steps=cfg.steps, batch_size=cfg.batch_size,
                                           seed=args.seed, eval_every=cfg.eval_every,
                                           checkpoint_every=cfg.checkpoint_every,
                                           log_every=cfg.log_every, progress=args.progress),
                               args.workdir, task=task)
      variables = {"params": out.state.params, "batch_stats": out.state.batch_stats}
      weights_lib.save_weights(os.path.join(args.workdir, "weights.msgpack"), variables,
                               {"kind": "localizer", "config_name": name,
                                "config": dataclasses.asdict(cfg)})
    evaluation = loc.evaluate_localizer(model, variables, test)
    pic = os.path.join(args.workdir, "localization.png")
    picture(pic, model, variables, test, name=cfg.model)
    results = {"command": experiment.command_line(argv, MODULE), "config_name": name,
               "config": dataclasses.asdict(cfg), "params": count_params(variables["params"]),
               "evaluation": evaluation, "pictures": [pic], "machine": experiment.machine(),
               "date": time.strftime("%Y-%m-%d")}
    if not args.evaluate:
      results["wall_seconds"] = round(experiment.cumulative_wall_seconds(
          args.workdir, time.time() - start), 1)
    experiment.finish(args.workdir, results, record=None if args.evaluate else args.record)
    print(f"localization ({name}): class accuracy {evaluation['accuracy']:.4f}, IoU > 0.5 for "
          f"{evaluation['iou_above_0.5']:.4f}, mean IoU {evaluation['mean_iou']:.3f}")
    return results


if __name__ == "__main__":
  main(sys.argv[1:])
