"""The course notes' first GAN: a linear generator learns a 1-D Gaussian.

    python -m experiments.gan_gaussian --workdir runs/gan1d --record

Two runs (``jaxvision.gan.train_gaussian_gan``, a few seconds each on a CPU):

1. the warm-up: ``x = a z + b`` (``z ~ N(0, 1)``) against a 3-layer MLP discriminator on
   ``N(4, 1.25^2)``, non-saturating generator loss, Adam: the generated mean and std reach
   the target's; ``gan_gaussian.png`` shows the real density and the generated one over training;
2. why the saturating loss stalls: the same pair on ``N(8, 1.25^2)`` with the discriminator
   first trained for 3000 steps against the initial generator (it rejects every sample), then
   plain SGD (momentum 0.9, lr 0.01): the non-saturating loss moves the generator to the target
   at once, the saturating one (minimax ``log(1 - D(G(z)))``, whose gradient vanishes as
   ``D(G(z)) -> 0``) barely moves for hundreds of steps (``gan_gaussian_saturation.png``).
   Adam hides much of the difference: it rescales tiny gradients.

``<workdir>/results.json`` gets the numbers; ``--record`` appends them to
``experiments/results/gan_gaussian.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from jaxvision import experiment, gan, viz

RESULTS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                            "gan_gaussian.json")


def main(argv=None):
  parser = argparse.ArgumentParser(prog="python -m experiments.gan_gaussian", description=__doc__,
                                   formatter_class=experiment.HelpFormatter)
  parser.add_argument("--workdir", required=True, help="results.json and the PNGs")
  parser.add_argument("--steps", type=int, default=3000, help="generator steps of each run")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--record", nargs="?", const=RESULTS_FILE, default=None, metavar="FILE",
                      help="append the run to a results file (bare: "
                           "experiments/results/gan_gaussian.json)")
  args = parser.parse_args(argv)
  with experiment.cli_errors(parser):
    if args.steps < 1:
      raise experiment.FlagError(f"--steps must be >= 1, got {args.steps}.")
    start = time.time()
    os.makedirs(args.workdir, exist_ok=True)
    warm = gan.train_gaussian_gan(target_mean=4.0, target_std=1.25, steps=args.steps,
                                  learning_rate=3e-3, seed=args.seed)
    picks = np.unique(np.linspace(0, len(warm.steps) - 1, 5).round().astype(int))
    series = {"real N(4, 1.25^2)": (warm.grid, warm.real_density)}
    for i in picks:
      series[f"generated, step {int(warm.steps[i])}"] = (warm.grid, warm.fake_density[i])
    paths = [os.path.join(args.workdir, "gan_gaussian.png"),
             os.path.join(args.workdir, "gan_gaussian_saturation.png")]
    viz.save_line_plot(paths[0], series, xlabel="x", ylabel="density",
                       title="1-D GAN warm-up: linear generator vs 3-layer MLP discriminator "
                             "(non-saturating loss, Adam)",
                       note=f"final generated mean {warm.mean[-1]:.2f}, std {warm.std[-1]:.2f} "
                            f"(target 4.00, 1.25)")
    runs = {}
    for name, sat in (("non-saturating", False), ("saturating", True)):
      runs[name] = gan.train_gaussian_gan(target_mean=8.0, target_std=1.25, steps=args.steps,
                                          learning_rate=0.01, optimizer="sgd", d_pretrain=3000,
                                          saturating=sat, seed=args.seed)
    viz.save_line_plot(paths[1], {f"{k} -log D(G(z))" if k == "non-saturating" else
                                  f"{k} log(1 - D(G(z)))": (r.steps, r.mean)
                                  for k, r in runs.items()},
                       xlabel="generator step", ylabel="generated mean (target 8)",
                       title="Saturating vs non-saturating G loss (D pre-trained to reject G; "
                             "SGD)")
    reach = {}
    for k, r in runs.items():
      hit = np.flatnonzero(np.abs(r.mean - 8.0) < 0.5)
      reach[k] = int(r.steps[hit[0]]) if len(hit) else None
    results = {
        "command": experiment.command_line(argv, "experiments.gan_gaussian"),
        "warmup": {"target_mean": 4.0, "target_std": 1.25, "final_mean": float(warm.mean[-1]),
                   "final_std": float(warm.std[-1]), "steps": args.steps},
        "saturation": {k: {"steps_to_within_0.5_of_mean": reach[k],
                           "mean_at_step_500": float(np.interp(500, r.steps, r.mean)),
                           "final_mean": float(r.mean[-1])} for k, r in runs.items()},
        "pictures": paths, "wall_seconds": round(time.time() - start, 1),
        "machine": experiment.machine(), "date": time.strftime("%Y-%m-%d"),
    }
    experiment.finish(args.workdir, results, record=args.record)
    print(f"warm-up: generated mean {warm.mean[-1]:.3f} std {warm.std[-1]:.3f} (target 4, 1.25);"
          f" steps to reach the far target: " + ", ".join(f"{k} {v}" for k, v in reach.items()))
    return results


if __name__ == "__main__":
  main(sys.argv[1:])
