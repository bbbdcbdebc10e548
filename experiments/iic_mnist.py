"""IIC on MNIST: cluster the digits with no labels (Ji et al. 2019; Atienza ch. 13).

    python -m experiments.iic_mnist --workdir runs/iic                    # train, cpu config
    python -m experiments.iic_mnist --workdir runs/iic --config seed004-alpha10 --record
    python -m experiments.iic_mnist --evaluate --restore-weights runs/iic --workdir runs/iic_eval

Trains on the 60,000 training images (labels unused), then reports on the 10,000 test
images: the Hungarian accuracy, NMI and ARI of every sub-head, the accuracy of the sub-head
with the lowest IIC loss (how the paper picks its head, no labels involved) and of the best
one. ``<workdir>`` gets ``results.json``, ``weights.msgpack`` (self-describing: ``--evaluate``
needs no other flag) and ``confusion.png``, the reported head's test confusion matrix with
the clusters in the Hungarian order; ``--record`` also appends the run to a results file.
Rerunning the same command resumes from the last checkpoint. Measured numbers:
``experiments/results/iic_mnist.json`` and the README.

Configs (``--config``):

* ``cpu``: the recipe for a 2-core CPU: a 16-32-64-128 VGG-F trunk, 5 heads of 10 and 5
  overclustering heads of 50, Adam 1e-3 with a cosine decay over 2600 steps (about 30
  minutes), batches of 256 images each repeated 3 times; view 1 is the centre 24 x 24 crop,
  view 2 a random affine distortion (rotation +-25 degrees half the time, scale 0.8-1.2,
  shift +-3 px) — the pairing matters more than the network.
* ``seed004`` / ``seed004-alpha10``: the seed's small conv net, Adam 1e-4, batch 1000, alpha
  1 / 10 on the marginal-entropy terms.
* ``book``: the book's VGG "F" on 24 x 24 views, one head, Adam 1e-3, batch 512, the book's
  twin view (rotation +-20 degrees or a 20/18/16 px crop).
* ``paper``: the paper's 5 x 5 net, 5 heads + 5 overclustering heads of 50, Adam 1e-4, 140
  images x 5 repeats per batch.
* ``tiny``: a smoke test on a few hundred images.

``--batch-size`` counts images; each is repeated ``repeats`` times (the config's) with fresh
distortions, so a step sees ``batch size * repeats`` pairs of views.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxvision import experiment, metrics, models, ops, viz
from jaxvision import weights as weights_lib
from jaxvision.data import ArraySource, load_mnist, transforms
from jaxvision.tasks import process_local_pipeline
from jaxvision.train import Task, TrainConfig, train_and_evaluate

MODULE = "experiments.iic_mnist"
RESULTS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                            "iic_mnist.json")
CONFUSION_FILE = "confusion.png"
EVAL_CHUNK = 1000  # test images per compiled prediction call


@dataclasses.dataclass(frozen=True)
class IICConfig:
  """One IIC recipe. ``batch_images * repeats`` pairs of views per step."""

  model: str = "fast_cpu"
  num_heads: int = 5
  num_overcluster_heads: int = 5
  num_overclusters: int = 50
  batch_images: int = 256  # --batch-size
  repeats: int = 3
  learning_rate: float = 1e-3
  schedule: str = "constant"  # or "cosine": decay to 0 over `steps`
  alpha: float = 1.0
  views: str = "affine"  # "affine" (centre crop vs random affine) or "book"
  steps: int = 2700  # ~30 minutes on a 2-core CPU (0.6 s per step)
  eval_every: int = 900
  checkpoint_every: int = 500
  log_every: int = 50
  train_images: int | None = None  # use only the first N training images (smoke tests)
  test_images: int | None = None
  loss_images: int = 2000  # training images on which the heads' losses are compared


CONFIGS: dict[str, IICConfig] = {
    "cpu": IICConfig(schedule="cosine", steps=2600),
    "seed004": IICConfig(model="seed004", learning_rate=1e-4, batch_images=1000, repeats=1,
                         num_overcluster_heads=0, steps=6000),
    "seed004-alpha10": IICConfig(model="seed004", learning_rate=1e-4, batch_images=1000,
                                 repeats=1, num_overcluster_heads=0, alpha=10.0, steps=6000),
    "book": IICConfig(model="book_vgg", num_heads=1, num_overcluster_heads=0,
                      batch_images=512, repeats=1, views="book", steps=20000),
    "paper": IICConfig(model="paper5x5", learning_rate=1e-4, batch_images=140, repeats=5,
                       steps=20000),
    "tiny": IICConfig(model="tiny", num_heads=2, num_overcluster_heads=1, num_overclusters=20,
                      batch_images=32, repeats=2, steps=4, eval_every=0, checkpoint_every=2,
                      log_every=2, train_images=256, test_images=200, loss_images=64),
}

FLAG_FIELDS = {"steps": "steps", "batch_size": "batch_images", "alpha": "alpha"}

# The keys of a run appended to the --record file.
RECORD_KEYS = ("command", "config_name", "mode", "wall_seconds", "machine", "test_accuracy",
               "best_head_accuracy", "mean_head_accuracy", "lowest_loss_head", "nmi", "ari",
               "head_accuracy", "head_losses", "evaluated_on", "final_step",
               "resumed_from_step", "seed", "restored_from", "experiment_config")

_MODELS = {
    "fast_cpu": models.IICFastCPU,
    "seed004": models.IICSeed004,
    "book_vgg": models.IICBookVGG,
    "paper5x5": models.IICPaper5x5,
    "tiny": models.IICTiny,
}


def build_model(cfg: IICConfig):
  return _MODELS[cfg.model](num_heads=cfg.num_heads,
                            num_overcluster_heads=cfg.num_overcluster_heads,
                            num_overclusters=cfg.num_overclusters)


def make_views(cfg: IICConfig, images, key):
  if cfg.views == "book":
    return transforms.rotate_or_crop_views(images, key, repeats=cfg.repeats)
  return transforms.iic_views(images, key, repeats=cfg.repeats)


def _head_losses(out, n, alpha):
  """Per-head IIC losses ``([H], [H_over])`` for outputs on ``concat(view1, view2)``."""
  clusters = out["clusters"]
  losses = ops.iic_loss(clusters[:, :n], clusters[:, n:], alpha=alpha)
  over = out["overclusters"]
  if over.shape[0]:
    over_losses = ops.iic_loss(over[:, :n], over[:, n:], alpha=alpha)
  else:
    over_losses = jnp.zeros((0,), jnp.float32)
  return losses, over_losses


def _learning_rate(cfg: IICConfig):
  if cfg.schedule == "cosine":
    return optax.cosine_decay_schedule(cfg.learning_rate, cfg.steps)
  if cfg.schedule == "constant":
    return cfg.learning_rate
  raise ValueError(f"`schedule` must be 'constant' or 'cosine', got {cfg.schedule!r}.")


@dataclasses.dataclass(frozen=True)
class Evaluation:
  """Evaluates variables on the held-out data: the loop's ``Task.evaluate`` and ``--evaluate``.

  Attributes:
    evaluate: ``evaluate(params, batch_stats) -> dict`` of
      :func:`jaxvision.metrics.evaluate_heads` plus ``"head_losses"``.
    predict_test: ``predict_test(params, batch_stats) -> [H, N]`` cluster of every test
      image per head.
    test_labels: ``[N]`` the test labels.
    num_train: training images the task reads.
  """

  evaluate: Callable[[Any, Any], dict[str, Any]]
  predict_test: Callable[[Any, Any], np.ndarray]
  test_labels: np.ndarray
  num_train: int


def model_shapes(cfg: IICConfig) -> dict[str, Any]:
  """``{"params", "batch_stats"}`` of ``cfg``'s model as ``jax.ShapeDtypeStruct`` s."""
  model = build_model(cfg)
  x = jax.ShapeDtypeStruct((2, 24, 24, 1), jnp.float32)
  return dict(jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x))


def make_task(cfg: IICConfig, data_dir: str | None, *,
              initial_variables: Mapping[str, Any] | None = None) -> tuple[Task, Evaluation]:
  """The IIC :class:`~jaxvision.train.Task` and the :class:`Evaluation` it reports with.

  ``initial_variables`` (``{"params", "batch_stats"}``) replace the random init of a fresh
  run (fine-tuning); a run that resumes from a checkpoint ignores them.
  """
  model = build_model(cfg)
  train_x, _ = load_mnist("train", data_dir=data_dir)
  test_x, test_y = load_mnist("test", data_dir=data_dir)
  if cfg.train_images:
    train_x = train_x[:cfg.train_images]
  if cfg.test_images:
    test_x, test_y = test_x[:cfg.test_images], test_y[:cfg.test_images]
  train_x, test_x = train_x[..., None], test_x[..., None]

  if initial_variables is None:
    def init(rng):
      x = jnp.zeros((2, 24, 24, 1), jnp.float32)
      variables = model.init(rng, x, train=False)
      return variables["params"], variables.get("batch_stats", {})
  else:
    fixed = jax.device_get(dict(initial_variables))

    def init(rng):
      del rng
      return (jax.tree.map(jnp.asarray, fixed["params"]),
              jax.tree.map(jnp.asarray, fixed.get("batch_stats", {})))

  def loss_fn(params, batch_stats, batch, rng):
    v1, v2 = make_views(cfg, batch["image"], rng)
    out, updates = model.apply({"params": params, "batch_stats": batch_stats},
                               jnp.concatenate([v1, v2]), train=True,
                               mutable=["batch_stats"])
    losses, over_losses = _head_losses(out, v1.shape[0], cfg.alpha)
    loss = jnp.mean(losses) + (jnp.mean(over_losses) if over_losses.shape[0] else 0.0)
    metrics_ = {"head_losses": losses}
    if over_losses.shape[0]:
      metrics_["overcluster_losses"] = over_losses
    return loss, (metrics_, updates["batch_stats"])

  def train_iter(seed, batch_size):
    return process_local_pipeline(ArraySource({"image": train_x}), batch_size=batch_size,
                                  seed=seed)

  @jax.jit
  def predict(params, batch_stats, images):
    x = transforms.center_crop(images.astype(jnp.float32) / 255.0, size=24)
    out = model.apply({"params": params, "batch_stats": batch_stats}, x, train=False)
    return jnp.argmax(out["clusters"], axis=-1)

  loss_x = train_x[:cfg.loss_images]

  @jax.jit
  def eval_losses(params, batch_stats, images):
    v1, v2 = make_views(cfg, images, jax.random.key(1234))
    out = model.apply({"params": params, "batch_stats": batch_stats},
                      jnp.concatenate([v1, v2]), train=False)
    return _head_losses(out, v1.shape[0], cfg.alpha)[0]

  def predict_test(params, batch_stats):
    return np.concatenate(
        [np.asarray(predict(params, batch_stats, test_x[i:i + EVAL_CHUNK]))
         for i in range(0, len(test_x), EVAL_CHUNK)], axis=1)

  def evaluate_variables(params, batch_stats):
    preds = predict_test(params, batch_stats)
    losses = np.asarray(eval_losses(params, batch_stats, loss_x))
    result = metrics.evaluate_heads(test_y, preds, losses, num_classes=10)
    result["head_losses"] = losses.tolist()
    return result

  task = Task(init=init, loss_fn=loss_fn, optimizer=optax.adam(_learning_rate(cfg)),
              train_iter=train_iter,
              evaluate=lambda state: evaluate_variables(state.params, state.batch_stats))
  return task, Evaluation(evaluate=evaluate_variables, predict_test=predict_test,
                          test_labels=test_y, num_train=len(train_x))


# ---------------------------------------------------------------------------------------------
# Runs.


def _reported(ev: Mapping[str, Any]) -> dict[str, Any]:
  """The top-level metrics of a results dict, from :class:`Evaluation`'s output."""
  if not ev:
    return {}
  head = ev["lowest_loss_head"]
  return {"test_accuracy": ev["lowest_loss_accuracy"],
          "best_head_accuracy": ev["best_head_accuracy"],
          "mean_head_accuracy": ev["mean_accuracy"], "lowest_loss_head": head,
          "nmi": ev["nmi"][head], "ari": ev["ari"][head], "head_accuracy": ev["accuracy"],
          "head_losses": ev.get("head_losses")}


def _save_confusion(path: str, evaluation: Evaluation, params, batch_stats,
                    ev: Mapping[str, Any], title: str) -> None:
  """The reported head's test contingency matrix, clusters in the Hungarian order."""
  head = ev["lowest_loss_head"]
  preds = evaluation.predict_test(params, batch_stats)[head]
  cm = metrics.contingency_matrix(evaluation.test_labels, preds, num_classes=10,
                                  num_clusters=10)
  viz.save_confusion_matrix(cm, path, column_order="hungarian",
                            title=f"{title}: head {head}, test accuracy "
                                  f"{ev['lowest_loss_accuracy']:.4f}")


def _evaluated_on(cfg: IICConfig, evaluation: Evaluation) -> str:
  return (f"MNIST test set ({len(evaluation.test_labels)} images); trained on "
          f"{evaluation.num_train} training images without labels")


def _command(config_name: str, **flags) -> str:
  """The CLI command equivalent to a :func:`run` / :func:`evaluate` call from Python."""
  argv = ["--config", config_name] if config_name else []
  for name, value in flags.items():
    if value is True:
      argv.append(f"--{name.replace('_', '-')}")
    elif value is not None and value is not False:
      argv += [f"--{name.replace('_', '-')}", str(value)]
  return experiment.command_line(argv, MODULE)


def run(config_name: str, *, data_dir: str | None, workdir: str, steps: int | None = None,
        batch_size: int | None = None, alpha: float | None = None, seed: int = 0,
        progress: bool | None = None, record: str | None = None,
        restore_weights: str | None = None, config: IICConfig | None = None,
        command: str | None = None) -> dict[str, Any]:
  """Trains and evaluates one config; returns the results dict (also in results.json).

  Args:
    config_name: a key of :data:`CONFIGS` (recorded as the run's config name).
    data_dir: the MNIST IDX files (None: ``$JAXVISION_DATA_DIR``, then TFDS).
    workdir: checkpoints, ``metrics.jsonl``, ``results.json``, ``weights.msgpack``,
      ``confusion.png``. A rerun in the same workdir resumes; ``wall_seconds`` adds up every
      invocation's time, and a rerun with nothing left to train is not recorded again.
    steps, batch_size, alpha: override the config's ``steps``, ``batch_images``, ``alpha``.
    seed: seeds parameters and data order.
    progress: a progress bar (None: when stderr is a terminal).
    record: also append the run to this ``{"runs": [...]}`` file.
    restore_weights: start a fresh run from these weights (a file or a workdir).
    config: replaces the named config's settings (the name is still recorded).
    command: the command line to record (default: the equivalent CLI command).
  """
  start = time.time()
  if config is None and config_name not in CONFIGS:
    raise ValueError(f"`config` must be one of {sorted(CONFIGS)}, got {config_name!r}.")
  cfg = CONFIGS[config_name] if config is None else config
  overrides = {"steps": steps, "batch_images": batch_size, "alpha": alpha}
  cfg = dataclasses.replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
  if command is None:
    command = _command(config_name, steps=steps, batch_size=batch_size, alpha=alpha,
                       seed=seed or None, data_dir=data_dir, workdir=workdir,
                       restore_weights=restore_weights)
  initial = None
  if restore_weights is not None:
    initial, _ = _load_iic_weights(restore_weights, cfg)
  task, evaluation = make_task(cfg, data_dir, initial_variables=initial)
  train_cfg = TrainConfig(num_steps=cfg.steps, batch_size=cfg.batch_images, seed=seed,
                          checkpoint_every=cfg.checkpoint_every, log_every=cfg.log_every,
                          eval_every=cfg.eval_every, progress=progress)
  out = train_and_evaluate(train_cfg, workdir, task=task)
  ev = out.results.get("eval", {})
  wall = round(experiment.cumulative_wall_seconds(workdir, time.time() - start), 1)
  results = dict(out.results)
  results.update({
      "mode": "train", "command": command, "config_name": config_name,
      "experiment_config": dataclasses.asdict(cfg), "seed": seed,
      "restored_from": restore_weights,
      "evaluated_on": _evaluated_on(cfg, evaluation), **_reported(ev),
      "wall_seconds": wall, "machine": experiment.machine(),
  })
  params, batch_stats = out.state.params, out.state.batch_stats
  if jax.process_index() == 0:
    spec = {"experiment": "iic_mnist", "model": cfg.model, "config_name": config_name,
            "config": dataclasses.asdict(cfg), "num_classes": 10,
            "input": "uint8 [28, 28, 1] MNIST digits; the centre 24 x 24 crop / 255",
            "training": {"command": command, "steps": results.get("final_step"),
                         "seed": seed, "restored_from": restore_weights,
                         "wall_seconds": wall, "test_accuracy": results.get("test_accuracy"),
                         "lowest_loss_head": results.get("lowest_loss_head")}}
    weights_lib.save_weights(os.path.join(workdir, weights_lib.WEIGHTS_FILE),
                             {"params": params, "batch_stats": batch_stats}, spec)
    if ev:
      _save_confusion(os.path.join(workdir, CONFUSION_FILE), evaluation, params, batch_stats,
                      ev, f"IIC {config_name}")
  trained = results.get("resumed_from_step") != results.get("final_step")
  if record and not trained and jax.process_index() == 0:
    print(f"Nothing trained in this invocation (the workdir was at step "
          f"{results.get('final_step')}); not recording.")
  experiment.finish(workdir, results, record=record if trained else None, keep=RECORD_KEYS)
  return results


def _load_iic_weights(source: str, cfg: IICConfig | None = None
                      ) -> tuple[dict[str, Any], dict[str, Any]]:
  """``(variables, spec)`` of an IIC weights file, checked against ``cfg``'s model (default:
  the config stored in the file)."""
  variables, spec = weights_lib.load_weights(source)
  if spec.get("experiment") != "iic_mnist":
    raise experiment.FlagError(
        f"{source} holds weights of {spec.get('experiment') or spec.get('model')!r}, not of "
        f"an IIC model written by experiments.iic_mnist.")
  if cfg is None:
    cfg = config_from_spec(spec)
  try:
    variables = weights_lib.check_variables(variables, model_shapes(cfg), source=str(source),
                                            model=f"the {cfg.model!r} IIC model")
  except ValueError as e:
    raise experiment.FlagError(str(e)) from None
  return variables, spec


def config_from_spec(spec: Mapping[str, Any]) -> IICConfig:
  """The :class:`IICConfig` stored in a weights file's spec (unknown fields dropped)."""
  known = {f.name for f in dataclasses.fields(IICConfig)}
  return IICConfig(**{k: v for k, v in dict(spec.get("config", {})).items() if k in known})


def evaluate(source: str, *, data_dir: str | None, workdir: str, alpha: float | None = None,
             config_name: str | None = None, command: str | None = None) -> dict[str, Any]:
  """Evaluates saved weights (a file or a workdir) on the test set; returns the results.

  The config comes from the weights file; ``alpha`` and ``config_name``, when given, must
  agree with it. Writes ``results.json`` and ``confusion.png`` to ``workdir``.
  """
  start = time.time()
  variables, spec = _load_iic_weights(source)
  cfg = config_from_spec(spec)
  trained_name = spec.get("config_name")
  if config_name is not None and config_name != trained_name:
    raise experiment.FlagError(f"--config {config_name} but {source} was trained with the "
                               f"{trained_name!r} config; drop --config.")
  overrides = {"alpha": alpha} if alpha is not None else {}
  experiment.check_against_weights(overrides, spec.get("config", {}), repr(str(source)))
  if command is None:
    command = _command("", evaluate=True, restore_weights=source, data_dir=data_dir,
                       workdir=workdir)
  _, evaluation = make_task(cfg, data_dir)
  params, batch_stats = variables["params"], variables.get("batch_stats", {})
  ev = evaluation.evaluate(params, batch_stats)
  training = spec.get("training", {})
  results = {
      "mode": "evaluate", "command": command, "restored_from": str(source),
      "config_name": trained_name, "experiment_config": dataclasses.asdict(cfg),
      "trained_by": training.get("command"), "trained_steps": training.get("steps"),
      "eval": ev, "evaluated_on": _evaluated_on(cfg, evaluation), **_reported(ev),
      "wall_seconds": round(time.time() - start, 1), "machine": experiment.machine(),
  }
  if jax.process_index() == 0:
    _save_confusion(os.path.join(workdir, CONFUSION_FILE), evaluation, params, batch_stats,
                    ev, f"IIC {trained_name} (restored)")
  experiment.finish(workdir, results)
  return results


def summary(results: Mapping[str, Any]) -> str:
  """The line printed at the end of a run."""
  f = lambda k: "-" if results.get(k) is None else f"{results[k]:.4f}"  # noqa: E731
  return (f"IIC {results.get('config_name')} ({results.get('mode')}): test accuracy "
          f"{f('test_accuracy')} (lowest-loss head {results.get('lowest_loss_head')}), best "
          f"head {f('best_head_accuracy')}, mean {f('mean_head_accuracy')}, NMI {f('nmi')}, "
          f"ARI {f('ari')}; wall {results.get('wall_seconds')} s")


# ---------------------------------------------------------------------------------------------
# The command line.


def make_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__,
                                   formatter_class=experiment.HelpFormatter)
  experiment.add_flags(parser, configs=sorted(CONFIGS), default_config="cpu",
                       results_file=RESULTS_FILE)
  group = parser.add_argument_group("iic_mnist recipe (default: the config's)")
  group.add_argument("--alpha", type=float, default=None,
                     help="weight of the marginal-entropy terms of the IIC loss")
  return parser


def _check_flags(args: argparse.Namespace) -> None:
  if args.alpha is not None and not args.alpha > 0:
    raise experiment.FlagError(f"--alpha must be > 0, got {args.alpha}.")
  if args.workdir is None:
    raise experiment.FlagError("--workdir is required.")
  if args.evaluate:
    for dest in ("steps", "batch_size", "record"):
      if getattr(args, dest) is not None:
        raise experiment.FlagError(f"--{dest.replace('_', '-')} has no effect with "
                                   f"--evaluate; drop it.")


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
  argv = sys.argv[1:] if argv is None else list(argv)
  parser = make_parser()
  args = parser.parse_args(argv)
  with experiment.cli_errors(parser):
    try:
      experiment.setup(args)
      _check_flags(args)
      command = experiment.command_line(argv, MODULE)
      if args.evaluate:
        results = evaluate(args.restore_weights or args.workdir, data_dir=args.data_dir,
                           workdir=args.workdir, alpha=args.alpha, config_name=args.config,
                           command=command)
      else:
        results = run(args.config or "cpu", data_dir=args.data_dir, workdir=args.workdir,
                      steps=args.steps, batch_size=args.batch_size, alpha=args.alpha,
                      seed=args.seed, progress=args.progress, record=args.record,
                      restore_weights=args.restore_weights, command=command)
    except FileNotFoundError as e:
      raise experiment.FlagError(str(e)) from None
  if jax.process_index() == 0:
    print(summary(results))
  return results


if __name__ == "__main__":
  main()
