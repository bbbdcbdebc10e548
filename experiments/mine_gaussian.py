"""MINE on bivariate Gaussians: estimate I(X; Y) and compare with -0.5 ln(1 - rho^2).

    python -m experiments.mine_gaussian --workdir runs/mine                  # book config
    python -m experiments.mine_gaussian --workdir runs/mine --config wide --rho 0.5 --record

For each correlation ``rho``, a statistics network ``T(x, y)`` is trained on the shared loop
to maximise the Donsker-Varadhan bound ``E_joint[T] - ln E_marginal[e^T]``: joint pairs come
from a fixed pool of correlated samples, marginal pairs pair each ``x`` with the ``y`` of a
random other row of the same batch. The reported estimate is the bound of the trained ``T``
on fresh samples (so it is not fitted to the data it is scored on), next to the analytic
value (0.1438 at rho = 0.5; the source book reports 0.142).

Each rho trains in ``<workdir>/rho<RHO>/`` (checkpoints, ``metrics.jsonl``,
``results.json``); ``<workdir>/results.json`` holds every rho of the invocation, and
``--record`` appends one run per rho to a results file. Rerunning the same command resumes;
a finished rho is evaluated again without training. There is no data directory, no
``--evaluate`` and no ``--restore-weights``: the data are drawn from the seed.

Configs (``--config``): ``book`` — the book's network (Dense(16) on x + Dense(16) on y,
ReLU, Dense(1)), Adam 0.01, batch 1000, 1000 steps, plain gradient; ``wide`` — 128 hidden
units, Adam 1e-3 with a cosine decay, batch 2000, 3000 steps, MINE's moving-average
gradient correction (decay 0.99); ``long`` — 256 hidden units, batch 5000, 10,000 steps
from a pool of 10^6 pairs, otherwise as ``wide``; ``tiny`` — a smoke test. All but ``tiny``
score on 2,000,000 fresh samples.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxvision import experiment, models, ops
from jaxvision.data import ArraySource
from jaxvision.reference import mine as mine_ref
from jaxvision.tasks import process_local_pipeline
from jaxvision.train import Task, TrainConfig, train_and_evaluate

MODULE = "experiments.mine_gaussian"
RESULTS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                            "mine_gaussian.json")


@dataclasses.dataclass(frozen=True)
class MineConfig:
  hidden: int = 16
  learning_rate: float = 0.01
  cosine_decay: bool = False
  batch_size: int = 1000
  steps: int = 1000
  ema_decay: float = 0.0  # 0: plain DV gradient; > 0: MINE's bias-corrected gradient
  pool_size: int = 200_000  # joint samples the batches are drawn from
  eval_samples: int = 2_000_000


CONFIGS = {
    "book": MineConfig(),
    "wide": MineConfig(hidden=128, learning_rate=1e-3, cosine_decay=True, batch_size=2000,
                       steps=3000, ema_decay=0.99),
    "long": MineConfig(hidden=256, learning_rate=1e-3, cosine_decay=True, batch_size=5000,
                       steps=10000, ema_decay=0.99, pool_size=1_000_000),
    "tiny": MineConfig(steps=5, batch_size=100, pool_size=1000, eval_samples=10_000),
}
RHOS = (0.2, 0.5, 0.8, 0.9)

# The keys of a run appended to the --record file (one run per rho).
RECORD_KEYS = ("command", "config_name", "experiment_config", "rho", "estimate", "analytic",
               "relative_error", "seed", "wall_seconds", "final_step", "resumed_from_step",
               "machine")


def make_task(cfg: MineConfig, rho: float, seed: int) -> Task:
  net = models.MineStatisticsNetwork(hidden=cfg.hidden)
  joint, _ = mine_ref.sample_gaussian_pairs(cfg.pool_size, rho, seed=seed)
  joint = joint.astype(np.float32)

  def init(rng):
    params = net.init(rng, jnp.zeros(2), jnp.zeros(2))["params"]
    return params, {"ema": jnp.ones((), jnp.float32)}  # E[e^T] is ~1 for T ~ 0 at init

  def loss_fn(params, state, batch, rng):
    xy = batch["xy"]
    x, y = xy[:, 0], xy[:, 1]
    y_marginal = y[jax.random.permutation(rng, y.shape[0])]
    t_joint = net.apply({"params": params}, x, y)
    t_marginal = net.apply({"params": params}, x, y_marginal)
    if cfg.ema_decay > 0:  # the value is -DV either way; only the gradient differs
      loss, ema = ops.mine_loss(t_joint, t_marginal, ema=state["ema"], decay=cfg.ema_decay)
    else:
      loss, ema = -ops.mine_lower_bound(t_joint, t_marginal), state["ema"]
    return loss, ({"dv_bound": -loss}, {"ema": ema})

  def train_iter(seed_, batch_size):
    return process_local_pipeline(ArraySource({"xy": joint}), batch_size=batch_size,
                                  seed=seed_)

  eval_joint, eval_marginal = mine_ref.sample_gaussian_pairs(cfg.eval_samples, rho,
                                                            seed=seed + 10_000)

  @jax.jit
  def bound_on(params, joint_xy, marginal_xy):
    t_j = net.apply({"params": params}, joint_xy[:, 0], joint_xy[:, 1])
    t_m = net.apply({"params": params}, marginal_xy[:, 0], marginal_xy[:, 1])
    return ops.mine_lower_bound(t_j, t_m)

  def evaluate(state):
    return {"estimate": float(bound_on(state.params, eval_joint.astype(np.float32),
                                       eval_marginal.astype(np.float32)))}

  schedule = (optax.cosine_decay_schedule(cfg.learning_rate, cfg.steps)
              if cfg.cosine_decay else cfg.learning_rate)
  return Task(init=init, loss_fn=loss_fn, optimizer=optax.adam(schedule),
              train_iter=train_iter, evaluate=evaluate)


def _check_rhos(rhos: Sequence[float]) -> tuple[float, ...]:
  rhos = tuple(float(r) for r in rhos)
  if not rhos:
    raise experiment.FlagError("--rho needs at least one value.")
  for rho in rhos:
    if not -1.0 < rho < 1.0:
      raise experiment.FlagError(f"--rho must be in (-1, 1), got {rho}.")
  return rhos


def run(config_name: str, *, workdir: str, rhos: Sequence[float] = RHOS,
        steps: int | None = None, batch_size: int | None = None, seed: int = 0,
        record: str | None = None, progress: bool | None = None,
        config: MineConfig | None = None, command: str | None = None) -> list[dict[str, Any]]:
  """Trains and scores one network per ``rho``; returns one results dict per rho.

  Args:
    config_name: a key of :data:`CONFIGS` (recorded as the run's config name).
    workdir: one ``rho<RHO>/`` directory per rho, and ``results.json`` with all of them.
    rhos: correlations in (-1, 1).
    steps, batch_size: override the config's.
    seed: seeds the samples, the parameters and the data order.
    record: also append one run per trained rho to this ``{"runs": [...]}`` file.
    progress: a progress bar (None: when stderr is a terminal).
    config: replaces the named config's settings (the name is still recorded).
    command: the command line to record (default: the equivalent CLI command).
  """
  if config is None and config_name not in CONFIGS:
    raise ValueError(f"`config` must be one of {sorted(CONFIGS)}, got {config_name!r}.")
  rhos = _check_rhos(rhos)
  cfg = CONFIGS[config_name] if config is None else config
  overrides = {"steps": steps, "batch_size": batch_size}
  cfg = dataclasses.replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
  if command is None:
    argv = ["--config", config_name, "--workdir", workdir, "--rho", *map(str, rhos)]
    for flag, value in (("--steps", steps), ("--batch-size", batch_size),
                        ("--seed", seed or None)):
      if value is not None:
        argv += [flag, str(value)]
    command = experiment.command_line(argv, MODULE)
  main_process = jax.process_index() == 0
  runs = []
  for rho in rhos:
    start = time.time()
    rho_dir = os.path.join(workdir, f"rho{rho}")
    task = make_task(cfg, rho, seed)
    out = train_and_evaluate(
        TrainConfig(num_steps=cfg.steps, batch_size=cfg.batch_size, seed=seed,
                    checkpoint_every=max(cfg.steps // 4, 1),
                    log_every=max(cfg.steps // 10, 1), progress=progress),
        rho_dir, task=task)
    analytic = mine_ref.gaussian_mutual_information(rho)
    estimate = out.results["eval"]["estimate"]
    result = {
        "mode": "train", "command": command, "config_name": config_name,
        "experiment_config": dataclasses.asdict(cfg), "rho": rho, "seed": seed,
        "estimate": estimate, "analytic": analytic,
        "relative_error": (estimate - analytic) / analytic if analytic else None,
        "wall_seconds": round(experiment.cumulative_wall_seconds(rho_dir, time.time() - start),
                              1),
        "final_step": out.results.get("final_step"),
        "resumed_from_step": out.results.get("resumed_from_step"),
        "machine": experiment.machine(),
    }
    trained = result["resumed_from_step"] != result["final_step"]
    experiment.finish(rho_dir, {**out.results, **result},
                      record=record if trained else None, keep=RECORD_KEYS)
    if main_process:
      print(summary(result))
      if record and not trained:
        print(f"rho={rho}: nothing trained in this invocation (at step "
              f"{result['final_step']}); not recording.")
    runs.append(result)
  experiment.finish(workdir, {
      "mode": "train", "command": command, "config_name": config_name,
      "experiment_config": dataclasses.asdict(cfg), "seed": seed, "runs": runs,
      "wall_seconds": round(sum(r["wall_seconds"] for r in runs), 1),
      "machine": experiment.machine()})
  return runs


def summary(result: dict[str, Any]) -> str:
  """The line printed for one rho."""
  error = ("" if result["relative_error"] is None
           else f" ({100 * result['relative_error']:+.2f}%)")
  return (f"MINE {result['config_name']} rho={result['rho']}: estimate "
          f"{result['estimate']:.4f}, analytic {result['analytic']:.4f}{error}; wall "
          f"{result['wall_seconds']} s")


# ---------------------------------------------------------------------------------------------
# The command line.


def make_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__,
                                   formatter_class=experiment.HelpFormatter)
  experiment.add_flags(parser, configs=sorted(CONFIGS), default_config="book",
                       results_file=RESULTS_FILE, weights=False, data_dir=False)
  group = parser.add_argument_group("mine_gaussian recipe")
  group.add_argument("--rho", type=float, nargs="+", default=list(RHOS), metavar="RHO",
                     help="the correlations to estimate I(X; Y) at, each in (-1, 1)")
  return parser


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
  argv = sys.argv[1:] if argv is None else list(argv)
  parser = make_parser()
  args = parser.parse_args(argv)
  with experiment.cli_errors(parser):
    experiment.setup(args)
    if args.evaluate:
      raise experiment.FlagError(
          "--evaluate does not apply to MINE (no weights are saved); rerun the training "
          "command on the same --workdir: a finished rho is scored again without training.")
    if args.workdir is None:
      raise experiment.FlagError("--workdir is required.")
    _check_rhos(args.rho)
    return run(args.config or "book", workdir=args.workdir, rhos=args.rho, steps=args.steps,
               batch_size=args.batch_size, seed=args.seed, record=args.record,
               progress=args.progress, command=experiment.command_line(argv, MODULE))


if __name__ == "__main__":
  main()
