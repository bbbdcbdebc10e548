"""Transfer learning with a frozen trunk (seed 001): train on digits 0-4, reuse the trunk for
digits 5-9 with a new head.

    python -m experiments.finetune --workdir runs/finetune --record
    python -m experiments.finetune --table

1. Pretrain the config's classifier on every MNIST training image of digits 0-4.
2. For 10, 100 and 1000 labelled training images per class of digits 5-9 (drawn with
   ``--seed`` + repeat), train three ways for the same number of steps and evaluate on every
   test image of 5-9:
   * ``frozen``: the pretrained trunk frozen (``optax.multi_transform`` with
     ``optax.set_to_zero`` on it, BatchNorm in inference mode), a new head trained — the
     trunk's parameters are bit-identical afterwards (checked here on every run, and tested);
   * ``finetune``: everything trained, the trunk at a tenth of the head's learning rate;
   * ``scratch``: the same network from a random initialisation.
``<workdir>`` gets ``results.json`` (every run), ``transfer.png`` (accuracy vs labels per
class, mean and range over repeats) and one sub-workdir per run (resumable).

Configs: ``cpu`` (PlainNetMNIST at half width, 480 pretraining steps of 128, 200 transfer
steps of 64, 2 repeats), ``tiny`` (smoke test).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import sys
import time
from typing import Any, Sequence

import jax
import numpy as np
import optax

from jaxvision import classification as cl
from jaxvision import experiment, finetune, viz
from jaxvision.data import MnistSource
from jaxvision.train import TrainConfig, train_and_evaluate

MODULE = "experiments.finetune"
RESULTS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                            "finetune.json")
MODES = ("frozen", "finetune", "scratch")


@dataclasses.dataclass(frozen=True)
class Config:
  model: str = "PlainNetMNIST"
  attributes: dict = dataclasses.field(default_factory=lambda: {"width": 0.5})
  pretrain_steps: int = 480
  pretrain_images: int | None = None       # None: every 0-4 training image
  transfer_steps: int = 200
  batch_size: int = 64
  learning_rate: float = 3e-3
  trunk_lr_fraction: float = 0.1
  labels_per_class: tuple[int, ...] = (10, 100, 1000)
  repeats: int = 2
  test_images: int | None = None
  shift: int = 1


CONFIGS = {"cpu": Config(),
           "tiny": Config(model="PlainNetTiny", attributes={}, pretrain_steps=10,
                          pretrain_images=400,
                          transfer_steps=4, batch_size=16, labels_per_class=(4,),
                          repeats=1, test_images=200)}


def _source(images, labels):
  return MnistSource.from_arrays(images, labels)


def _optimizer(mode: str, cfg: Config, params) -> optax.GradientTransformation:
  lr = optax.warmup_cosine_decay_schedule(0.0, cfg.learning_rate, 10,
                                          max(cfg.transfer_steps, 11))
  if mode == "scratch":
    return optax.adam(lr)
  labels = finetune.partition_params(params, head=("classifier",))
  if mode == "frozen":
    return finetune.frozen_trunk_optimizer(labels, optax.adam(lr))
  trunk_lr = optax.warmup_cosine_decay_schedule(0.0, cfg.learning_rate * cfg.trunk_lr_fraction,
                                                10, max(cfg.transfer_steps, 11))
  return finetune.discriminative_optimizer(labels, head=optax.adam(lr),
                                           trunk=optax.adam(trunk_lr))


def _train(spec, train, test, workdir, *, steps, batch_size, optimizer, seed, shift,
           initial=None, frozen=False):
  loss = functools.partial(cl.cross_entropy_loss, update_batch_stats=not frozen)
  task = cl.classification_task(spec, train, optimizer=optimizer, test_data=test, loss=loss,
                                shift=shift, initial_variables=initial)
  out = train_and_evaluate(TrainConfig(num_steps=steps, batch_size=batch_size, seed=seed,
                                       checkpoint_every=max(steps // 2, 1), log_every=100),
                           workdir, task=task)
  variables = {"params": out.state.params}
  if out.state.batch_stats:
    variables["batch_stats"] = out.state.batch_stats
  return jax.device_get(variables), out.results["eval"]["accuracy"]


def _same(a, b) -> bool:
  return all(np.array_equal(np.asarray(x), np.asarray(y))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def run(cfg: Config, name: str, workdir: str, data_dir, seed: int, digits=None) -> dict:
  start = time.time()
  if digits is None:
    try:
      train_all = MnistSource("train", data_dir=data_dir).arrays
      test_all = MnistSource("test", data_dir=data_dir).arrays
    except (FileNotFoundError, ValueError) as e:
      raise experiment.FlagError(f"--data-dir: {e}") from None
  else:
    train_all, test_all = digits
  low = train_all["label"] < 5
  x_low, y_low = train_all["image"][low], train_all["label"][low]
  if cfg.pretrain_images:
    x_low, y_low = x_low[:cfg.pretrain_images], y_low[:cfg.pretrain_images]
  t_low = test_all["label"] < 5
  t_high = ~t_low
  test_low = _source(test_all["image"][t_low][:cfg.test_images],
                     test_all["label"][t_low][:cfg.test_images])
  test_high = _source(test_all["image"][t_high][:cfg.test_images],
                      test_all["label"][t_high][:cfg.test_images] - 5)
  spec = cl.ClassifierSpec(model=cfg.model, num_classes=5, attributes=dict(cfg.attributes))
  base, base_acc = _train(spec, _source(x_low, y_low), test_low, os.path.join(workdir, "pretrain"),
                          steps=cfg.pretrain_steps, batch_size=cfg.batch_size * 2,
                          optimizer=optax.adam(optax.warmup_cosine_decay_schedule(
                              0.0, cfg.learning_rate, min(20, cfg.pretrain_steps // 4 + 1),
                              cfg.pretrain_steps + 1)),
                          seed=seed, shift=cfg.shift)
  print(f"pretrained on 0-4: test accuracy {base_acc:.4f}", flush=True)
  high = train_all["label"] >= 5
  x_high, y_high = train_all["image"][high], train_all["label"][high] - 5
  runs = []
  for n in cfg.labels_per_class:
    for r in range(cfg.repeats):
      idx = finetune.few_shot_subset(y_high, n, seed=seed * 1000 + r)
      train = _source(x_high[idx], y_high[idx])
      for mode in MODES:
        fresh = cl.init_classifier(spec, jax.random.key(seed * 7919 + r))
        fresh = {"params": fresh[0], **({"batch_stats": fresh[1]} if fresh[1] else {})}
        initial = fresh if mode == "scratch" else finetune.transplant_trunk(base, fresh)
        batch = min(cfg.batch_size, len(idx))
        t0 = time.time()
        variables, acc = _train(spec, train, test_high,
                                os.path.join(workdir, f"{mode}_{n}_{r}"),
                                steps=cfg.transfer_steps, batch_size=batch,
                                optimizer=_optimizer(mode, cfg, initial["params"]),
                                seed=seed + r, shift=cfg.shift, initial=initial,
                                frozen=mode == "frozen")
        row = {"mode": mode, "labels_per_class": n, "repeat": r, "test_accuracy": acc,
               "seconds": round(time.time() - t0, 1)}
        if mode == "frozen":
          trunk = {k: v for k, v in variables["params"].items() if k != "classifier"}
          trunk0 = {k: v for k, v in initial["params"].items() if k != "classifier"}
          row["trunk_bit_identical"] = _same(trunk, trunk0) and _same(
              variables.get("batch_stats", {}), initial.get("batch_stats", {}))
          if not row["trunk_bit_identical"]:
            raise AssertionError("the frozen trunk changed during training")
        runs.append(row)
        print(f"{mode:9s} {n:5d}/class repeat {r}: test accuracy on 5-9 {acc:.4f}", flush=True)
  summary = {}
  for mode in MODES:
    for n in cfg.labels_per_class:
      accs = [r["test_accuracy"] for r in runs if r["mode"] == mode and
              r["labels_per_class"] == n]
      summary[f"{mode}/{n}"] = {"mean": float(np.mean(accs)), "min": float(np.min(accs)),
                                "max": float(np.max(accs))}
  pic = os.path.join(workdir, "transfer.png")
  wrote = viz.save_line_plot(pic, {mode: (list(cfg.labels_per_class),
                                  [summary[f"{mode}/{n}"]["mean"] for n in cfg.labels_per_class])
                           for mode in MODES},
                     xlabel="labelled training images per class (digits 5-9)",
                     ylabel="test accuracy on digits 5-9", log_x=True,
                     title=f"{cfg.model}: trunk pretrained on digits 0-4 (frozen / fine-tuned) "
                           f"vs from scratch",
                     note=f"mean of {cfg.repeats} draws of the labelled images; "
                          f"{cfg.transfer_steps} steps each")
  return {"pretrain_accuracy_0_4": base_acc, "runs": runs, "summary": summary,
          "pictures": [pic] if wrote else [],   # no plot of a single labels_per_class
          "wall_seconds": round(time.time() - start, 1)}


def table(records: list[dict[str, Any]]) -> str:
  r = records[-1]
  ns = r["config"]["labels_per_class"]
  lines = [f"{r['config']['model']}, pretrained on digits 0-4 (test accuracy "
           f"{r['pretrain_accuracy_0_4']:.4f}); test accuracy on digits 5-9, mean "
           f"[min, max] over {r['config']['repeats']} draws:", "",
           "| labels per class | " + " | ".join(MODES) + " |", "|---:|" + "---:|" * len(MODES)]
  for n in ns:
    cells = [f"{s['mean']:.4f} [{s['min']:.3f}, {s['max']:.3f}]"
             for s in (r["summary"][f"{m}/{n}"] for m in MODES)]
    lines.append(f"| {n} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def main(argv: Sequence[str] | None = None, *, digits=None) -> dict[str, Any]:
  parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__,
                                   formatter_class=experiment.HelpFormatter)
  parser.add_argument("--config", default="cpu", choices=sorted(CONFIGS))
  parser.add_argument("--data-dir", default=None,
                      help="the MNIST IDX files (default: $JAXVISION_DATA_DIR, then "
                           "../shared/data/mnist when it exists)")
  parser.add_argument("--workdir", default=None, help="every run's workdir and the outputs")
  parser.add_argument("--seed", type=int, default=0, help="seeds the draws and the models")
  parser.add_argument("--record", nargs="?", const=RESULTS_FILE, default=None, metavar="FILE",
                      help=f"append to a results file (bare: {os.path.relpath(RESULTS_FILE)})")
  parser.add_argument("--table", action="store_true", help="print the last recorded run")
  args = parser.parse_args(argv)
  with experiment.cli_errors(parser):
    if args.table:
      text = table(json.loads(open(args.record or RESULTS_FILE, encoding="utf-8").read())["runs"])
      print(text)
      return {"table": text}
    if args.workdir is None:
      raise experiment.FlagError("--workdir is required.")
    if args.data_dir is None:
      args.data_dir = experiment.default_data_dir()
    cfg = CONFIGS[args.config]
    out = run(cfg, args.config, args.workdir, args.data_dir, args.seed, digits)
    results = {"command": experiment.command_line(argv, MODULE), "config_name": args.config,
               "config": dataclasses.asdict(cfg), **out, "machine": experiment.machine(),
               "date": time.strftime("%Y-%m-%d")}
    experiment.finish(args.workdir, results, record=args.record)
    print(table([results]))
    return results


if __name__ == "__main__":
  main(sys.argv[1:])
