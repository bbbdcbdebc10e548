"""MINE on bivariate Gaussians: estimate I(X; Y) and compare with -0.5 ln(1 - rho^2).

    python -m experiments.mine_gaussian --workdir DIR [--config book|wide] [--rho 0.2 0.5 ...]

For each correlation ``rho``, a statistics network ``T(x, y)`` is trained on the shared loop
to maximise the Donsker-Varadhan bound ``E_joint[T] - ln E_marginal[e^T]``: joint pairs come
from a fixed pool of correlated samples, marginal pairs pair each ``x`` with the ``y`` of a
random other row of the same batch. The reported estimate is the bound of the trained ``T``
on 2,000,000 *fresh* samples (so it is not fitted to the data it is scored on), next to the
analytic value (0.1438 at rho = 0.5; the source book reports 0.142).

Configs: ``book`` — the book's network (Dense(16) on x + Dense(16) on y, ReLU, Dense(1)),
Adam 0.01, batch 1000, 1000 steps, plain gradient; ``wide`` — 128 hidden units, Adam 1e-3
with a cosine decay, batch 2000, 3000 steps, MINE's moving-average gradient correction
(decay 0.99); ``long`` — 256 hidden units, batch 5000, 10,000 steps from a pool of 10^6
pairs, otherwise as ``wide``; ``tiny`` — a smoke test.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments import _common
from jaxvision import models, ops
from jaxvision.data import ArraySource
from jaxvision.reference import mine as mine_ref
from jaxvision.train import Task, TrainConfig, train_and_evaluate, write_results


@dataclasses.dataclass(frozen=True)
class MineConfig:
  hidden: int = 16
  learning_rate: float = 0.01
  cosine_decay: bool = False
  batch_size: int = 1000
  num_steps: int = 1000
  ema_decay: float = 0.0  # 0: plain DV gradient; > 0: MINE's bias-corrected gradient
  pool_size: int = 200_000  # joint samples the batches are drawn from
  eval_samples: int = 2_000_000


CONFIGS = {
    "book": MineConfig(),
    "wide": MineConfig(hidden=128, learning_rate=1e-3, cosine_decay=True, batch_size=2000,
                       num_steps=3000, ema_decay=0.99),
    "long": MineConfig(hidden=256, learning_rate=1e-3, cosine_decay=True, batch_size=5000,
                       num_steps=10000, ema_decay=0.99, pool_size=1_000_000),
    "tiny": MineConfig(num_steps=5, batch_size=100, pool_size=1000, eval_samples=10_000),
}
RHOS = (0.2, 0.5, 0.8, 0.9)


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
    return _common.process_local_pipeline(ArraySource({"xy": joint}), batch_size=batch_size,
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

  schedule = (optax.cosine_decay_schedule(cfg.learning_rate, cfg.num_steps)
              if cfg.cosine_decay else cfg.learning_rate)
  return Task(init=init, loss_fn=loss_fn, optimizer=optax.adam(schedule),
              train_iter=train_iter, evaluate=evaluate)


def run(config_name: str, *, workdir: str, rhos=RHOS, seed: int = 0,
        record: str | None = None, progress: bool | None = None) -> list[dict[str, Any]]:
  if config_name not in CONFIGS:
    raise ValueError(f"`config` must be one of {sorted(CONFIGS)}, got {config_name!r}.")
  cfg = CONFIGS[config_name]
  runs = []
  for rho in rhos:
    start = time.time()
    rho_dir = os.path.join(workdir, f"rho{rho}")
    task = make_task(cfg, rho, seed)
    out = train_and_evaluate(
        TrainConfig(num_steps=cfg.num_steps, batch_size=cfg.batch_size, seed=seed,
                    checkpoint_every=max(cfg.num_steps // 4, 1), log_every=max(
                        cfg.num_steps // 10, 1), progress=progress),
        rho_dir, task=task)
    analytic = mine_ref.gaussian_mutual_information(rho)
    estimate = out.results["eval"]["estimate"]
    result = {
        "command": _common.command_line(),
        "config": config_name,
        "mine_config": dataclasses.asdict(cfg),
        "rho": rho,
        "estimate": estimate,
        "analytic": analytic,
        "relative_error": (estimate - analytic) / analytic if analytic else None,
        "wall_seconds": round(_common.cumulative_wall_seconds(rho_dir, time.time() - start),
                              1),
        "final_step": out.results.get("final_step"),
        "resumed_from_step": out.results.get("resumed_from_step"),
        "machine": _common.machine(),
    }
    write_results(rho_dir, {**out.results, **result})
    error = ("" if result["relative_error"] is None
             else f" ({100 * result['relative_error']:+.2f}%)")
    print(f"MINE {config_name} rho={rho}: estimate {estimate:.4f}, analytic {analytic:.4f}"
          f"{error}, {result['wall_seconds']} s")
    runs.append(result)
    if (record and jax.process_index() == 0
        and result["resumed_from_step"] != result["final_step"]):
      _common.append_run(record, result)
  return runs


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--workdir", required=True)
  p.add_argument("--config", default="book", choices=sorted(CONFIGS))
  p.add_argument("--rho", type=float, nargs="+", default=list(RHOS))
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--record", nargs="?", const=str(_common.RESULTS_DIR / "mine_gaussian.json"),
                 default=None, help="append the runs to a results file "
                                    "(default experiments/results/mine_gaussian.json)")
  p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
  args = p.parse_args(argv)
  for rho in args.rho:
    if not -1.0 < rho < 1.0:
      raise SystemExit(f"--rho must be in (-1, 1), got {rho}")
  run(args.config, workdir=args.workdir, rhos=args.rho, seed=args.seed, record=args.record,
      progress=args.progress)


if __name__ == "__main__":
  main()
