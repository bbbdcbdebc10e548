"""IIC on MNIST: cluster the digits with no labels (Ji et al. 2019; Atienza ch. 13).

    python -m experiments.iic_mnist --data-dir DIR --workdir DIR --config cpu

Trains on the 60,000 training images (labels unused), then reports on the 10,000 test
images: the Hungarian accuracy, NMI and ARI of every sub-head, the accuracy of the sub-head
with the lowest IIC loss (how the paper picks its head, no labels involved) and of the best
one. Results go to ``<workdir>/results.json`` (and, with ``--record``, are appended to
``experiments/results/iic_mnist.json``); a confusion-matrix PNG of the reported head goes to
the workdir. Rerunning the same command resumes from the last checkpoint.

Configs (``--config``):

* ``cpu``: the recipe for a 2-core CPU: a 16-32-64-128 VGG-F trunk, 5 heads of 10 and 5
  overclustering heads of 50, Adam 1e-3 with a cosine decay over 2600 steps (about 30
  minutes), batches of 256 images each repeated 3 times; view
  1 is the centre 24 x 24 crop, view 2 a random affine distortion (rotation +-25 degrees half
  the time, scale 0.8-1.2, shift +-3 px) — the pairing matters more than the network.
* ``seed004`` / ``seed004-alpha10``: the seed's small conv net, Adam 1e-4, batch 1000, alpha
  1 / 10 on the marginal-entropy terms.
* ``book``: the book's VGG "F" on 24 x 24 views, one head, Adam 1e-3, batch 512, the book's
  twin view (rotation +-20 degrees or a 20/18/16 px crop).
* ``paper``: the paper's 5 x 5 net, 5 heads + 5 overclustering heads of 50, Adam 1e-4, 140
  images x 5 repeats per batch.
* ``tiny``: a smoke test on a few hundred images.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import pathlib
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments import _common
from jaxvision import metrics, models, ops, viz
from jaxvision.data import ArraySource, load_mnist
from jaxvision.data import transforms
from jaxvision.train import Task, TrainConfig, train_and_evaluate, write_results


@dataclasses.dataclass(frozen=True)
class IICConfig:
  """One IIC recipe. ``batch_images * repeats`` pairs of views per step."""

  model: str = "fast_cpu"
  num_heads: int = 5
  num_overcluster_heads: int = 5
  num_overclusters: int = 50
  batch_images: int = 256
  repeats: int = 3
  learning_rate: float = 1e-3
  schedule: str = "constant"  # or "cosine": decay to 0 over num_steps
  alpha: float = 1.0
  views: str = "affine"  # "affine" (centre crop vs random affine) or "book"
  num_steps: int = 2700  # ~30 minutes on a 2-core CPU (0.6 s per step)
  eval_every: int = 900
  checkpoint_every: int = 500
  log_every: int = 50
  train_images: int | None = None  # use only the first N training images (smoke tests)
  test_images: int | None = None
  loss_images: int = 2000  # training images on which the heads' losses are compared


CONFIGS: dict[str, IICConfig] = {
    "cpu": IICConfig(schedule="cosine", num_steps=2600),
    "seed004": IICConfig(model="seed004", learning_rate=1e-4, batch_images=1000, repeats=1,
                         num_overcluster_heads=0, num_steps=6000),
    "seed004-alpha10": IICConfig(model="seed004", learning_rate=1e-4, batch_images=1000,
                                 repeats=1, num_overcluster_heads=0, alpha=10.0,
                                 num_steps=6000),
    "book": IICConfig(model="book_vgg", num_heads=1, num_overcluster_heads=0,
                      batch_images=512, repeats=1, views="book", num_steps=20000),
    "paper": IICConfig(model="paper5x5", learning_rate=1e-4, batch_images=140, repeats=5,
                       num_steps=20000),
    "tiny": IICConfig(model="tiny", num_heads=2, num_overcluster_heads=1, num_overclusters=20,
                      batch_images=32, repeats=2, num_steps=4, eval_every=0,
                      checkpoint_every=2, log_every=2, train_images=256, test_images=200,
                      loss_images=64),
}

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
    return transforms.book_views(images, key, repeats=cfg.repeats)
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
    return optax.cosine_decay_schedule(cfg.learning_rate, cfg.num_steps)
  if cfg.schedule == "constant":
    return cfg.learning_rate
  raise ValueError(f"`schedule` must be 'constant' or 'cosine', got {cfg.schedule!r}.")


def make_task(cfg: IICConfig, data_dir: str | None) -> tuple[Task, dict[str, Any]]:
  """The IIC :class:`~jaxvision.train.Task` and the held-out data it evaluates on."""
  model = build_model(cfg)
  train_x, train_y = load_mnist("train", data_dir=data_dir)
  test_x, test_y = load_mnist("test", data_dir=data_dir)
  if cfg.train_images:
    train_x, train_y = train_x[:cfg.train_images], train_y[:cfg.train_images]
  if cfg.test_images:
    test_x, test_y = test_x[:cfg.test_images], test_y[:cfg.test_images]
  train_x, test_x = train_x[..., None], test_x[..., None]

  def init(rng):
    x = jnp.zeros((2, 24, 24, 1), jnp.float32)
    variables = model.init(rng, x, train=False)
    return variables["params"], variables.get("batch_stats", {})

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
    return _common.process_local_pipeline(ArraySource({"image": train_x}),
                                          batch_size=batch_size, seed=seed)

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
    """``[H, N]`` cluster of every test image per head, in batches of one compiled shape."""
    return np.concatenate(
        [np.asarray(predict(params, batch_stats, test_x[i:i + 1000]))
         for i in range(0, len(test_x), 1000)], axis=1)

  def evaluate(state):
    preds = predict_test(state.params, state.batch_stats)
    losses = np.asarray(eval_losses(state.params, state.batch_stats, loss_x))
    result = metrics.evaluate_heads(test_y, preds, losses, num_classes=10)
    result["head_losses"] = losses.tolist()
    return result

  extras = {"predict_test": predict_test, "test_y": test_y}
  return Task(init=init, loss_fn=loss_fn,
              optimizer=optax.adam(_learning_rate(cfg)),
              train_iter=train_iter, evaluate=evaluate), extras


def run(config_name: str, *, data_dir: str | None, workdir: str, steps: int | None = None,
        alpha: float | None = None, seed: int = 0, progress: bool | None = None,
        record: str | None = None, config: IICConfig | None = None) -> dict[str, Any]:
  """Trains and evaluates one config; returns the results dict (also in results.json).

  ``config`` overrides the named config's settings (the name is still recorded). A rerun in
  the same ``workdir`` resumes; ``wall_seconds`` adds up every invocation's time, and a
  rerun that has nothing left to train is not appended to ``record`` again.
  """
  start = time.time()
  if config is None and config_name not in CONFIGS:
    raise ValueError(f"`config` must be one of {sorted(CONFIGS)}, got {config_name!r}.")
  cfg = CONFIGS[config_name] if config is None else config
  if steps is not None:
    cfg = dataclasses.replace(cfg, num_steps=steps)
  if alpha is not None:
    cfg = dataclasses.replace(cfg, alpha=alpha)
  task, extras = make_task(cfg, data_dir)
  train_cfg = TrainConfig(num_steps=cfg.num_steps, batch_size=cfg.batch_images, seed=seed,
                          checkpoint_every=cfg.checkpoint_every, log_every=cfg.log_every,
                          eval_every=cfg.eval_every, progress=progress)
  out = train_and_evaluate(train_cfg, workdir, task=task)
  ev = out.results.get("eval", {})
  results = dict(out.results)
  results.update({
      "command": _common.command_line(),
      "config": config_name,
      "iic_config": dataclasses.asdict(cfg),
      "evaluated_on": f"MNIST test set ({len(extras['test_y'])} images); trained on "
                      f"{cfg.train_images or 60000} training images without labels",
      "test_accuracy": ev.get("lowest_loss_accuracy"),
      "best_head_accuracy": ev.get("best_head_accuracy"),
      "mean_head_accuracy": ev.get("mean_accuracy"),
      "wall_seconds": round(_common.cumulative_wall_seconds(workdir, time.time() - start), 1),
      "machine": _common.machine(),
  })
  write_results(workdir, results)
  if jax.process_index() == 0 and ev:
    head = ev["lowest_loss_head"]
    preds = extras["predict_test"](out.state.params, out.state.batch_stats)[head]
    cm = metrics.contingency_matrix(extras["test_y"], preds, num_classes=10,
                                    num_clusters=10)
    viz.save_confusion_matrix(cm, os.path.join(workdir, "confusion.png"),
                              title=f"IIC {config_name}: head {head}, test accuracy "
                                    f"{ev['lowest_loss_accuracy']:.4f}")
  trained = results.get("resumed_from_step") != results.get("final_step")
  if record and jax.process_index() == 0 and trained:
    keep = ("command", "config", "wall_seconds", "machine", "test_accuracy",
            "best_head_accuracy", "mean_head_accuracy", "evaluated_on", "final_step",
            "resumed_from_step", "iic_config")
    run_record = {k: results[k] for k in keep if k in results}
    run_record["head_accuracy"] = ev.get("accuracy")
    run_record["head_losses"] = ev.get("head_losses")
    _common.append_run(record, run_record)
  return results


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--data-dir", default=None,
                 help="directory with the MNIST IDX files (default: $JAXVISION_DATA_DIR, "
                      "then TFDS)")
  p.add_argument("--workdir", required=True, help="checkpoints, logs, results.json")
  p.add_argument("--config", default="cpu", choices=sorted(CONFIGS))
  p.add_argument("--steps", type=int, default=None, help="override the config's steps")
  p.add_argument("--alpha", type=float, default=None, help="override the config's alpha")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--record", nargs="?", const=str(_common.RESULTS_DIR / "iic_mnist.json"),
                 default=None, help="append this run to a results file "
                                    "(default experiments/results/iic_mnist.json)")
  p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
  args = p.parse_args(argv)
  results = run(args.config, data_dir=args.data_dir, workdir=args.workdir, steps=args.steps,
                alpha=args.alpha, seed=args.seed, progress=args.progress, record=args.record)
  print(f"IIC {args.config}: test accuracy (lowest-loss head) {results['test_accuracy']}, "
        f"best head {results['best_head_accuracy']}, wall {results['wall_seconds']} s")


if __name__ == "__main__":
  main()
