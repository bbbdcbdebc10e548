"""DCGAN (Radford et al. 2016) as the course notes build it, on MNIST, coloured MNIST or a folder.

    python -m experiments.dcgan --workdir runs/dcgan --record          # MNIST 28 x 28 (cpu)
    python -m experiments.dcgan --config coloured --workdir runs/dcgan64
    python -m experiments.dcgan --config folder --data-dir ~/pokemon --workdir runs/pokemon
    python -m experiments.dcgan --evaluate --restore-weights runs/dcgan --workdir runs/eval
    python -m experiments.dcgan --table

Generator: dense projection of ``z`` + BatchNorm + ReLU, 4 x 4 stride-2 transposed
convolutions + BatchNorm + ReLU, ``tanh`` (data scaled to ``[-1, 1]``); discriminator: 4 x 4
stride-2 convolutions, BatchNorm, LeakyReLU(0.2); Adam(b1 = 0.5) with the same learning
rate for both, decayed linearly to 0; simultaneous updates on the library's training loop,
real and generated images in one BatchNorm batch (``jaxvision.gan``'s docstring).

The metric (MNIST configs): the Frechet distance between the penultimate features of a small
MNIST classifier (committed: ``experiments/results/mnist_features_weights.msgpack``, trained by
``python -m experiments.mnist_features``) on 10,000 samples and on the 10,000 test images,
beside its floor (10,000 training images vs the test images), and the samples' class
histogram by the same classifier (every digit should be >= 5%). ``<workdir>`` gets
``results.json``, ``weights.msgpack`` (``jaxvision.gan.Generator.load``), ``metrics.jsonl``
(the distance after every epoch), ``samples_step*.png`` (a fixed 8 x 8 grid of latents after
every epoch), ``samples.png`` and ``interpolation.png``. Rerunning resumes from the
checkpoints.

Configs (``--config``):

* ``cpu``: MNIST 28 x 28 (7x7x128 -> 14x14x64 -> 28x28x1, discriminator 64-128), batches of
  64, lr 2e-4, 2.5 epochs, single-threaded (``--threads``) on one core within 30 CPU minutes;
* ``cpu_ema``: ``cpu`` sampling from a moving average of the generator's weights (decay
  0.999), the raw generator's distance reported beside it;
* ``mnist32``: MNIST padded to 32 x 32, a 4x4x128 -> 8 -> 16 -> 32 generator;
* ``coloured``: MNIST digits coloured as in the scenes, 64 x 64 RGB, the notes' 64 x 64
  network at a quarter of the width (256-128-64-32);
* ``folder``: the same network on every image of ``--data-dir`` (centre-cropped, 64 x 64);
* ``tiny``: a smoke test.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import sys
import time

import jax
import numpy as np

from jaxvision import experiment, gan
from jaxvision.train.loop import jsonable

HERE = pathlib.Path(__file__).resolve().parent
RESULTS_FILE = str(HERE / "results" / "dcgan.json")
FEATURE_NET = str(HERE / "results" / "mnist_features_weights.msgpack")

MNIST_SPEC = gan.GANSpec("DCGANGeneratorMNIST", "DCGANDiscriminatorMNIST")
CONFIGS = {
    "cpu": gan.GANConfig(spec=MNIST_SPEC, dataset="mnist", steps=2300, batch_size=64,
                         learning_rate=2e-4, eval_every=940, eval_samples=10000),
    "cpu_ema": gan.GANConfig(spec=MNIST_SPEC, dataset="mnist", steps=2300, batch_size=64,
                             learning_rate=2e-4, eval_every=940, eval_samples=10000,
                             ema_decay=0.999),
    "mnist32": gan.GANConfig(
        spec=gan.GANSpec("DCGANGenerator", "DCGANDiscriminator",
                         {"features": (128, 64, 32), "base": 4, "channels": 1,
                          "latent_dim": 64}, {"features": (32, 64, 128)}),
        dataset="mnist", steps=2300, batch_size=64, eval_every=940),
    "coloured": gan.GANConfig(spec=gan.GANSpec("DCGANGenerator64", "DCGANDiscriminator64"),
                              dataset="coloured_mnist", steps=3000, batch_size=64,
                              train_images=20000, eval_every=1000),
    "folder": gan.GANConfig(spec=gan.GANSpec("DCGANGenerator64", "DCGANDiscriminator64"),
                            dataset="folder", steps=5000, batch_size=64, eval_every=1000),
    "tiny": gan.GANConfig(spec=gan.GANSpec("DCGANGeneratorTiny", "DCGANDiscriminatorTiny"),
                          dataset="mnist", steps=12, batch_size=16, learning_rate=1e-3, ema_decay=0.9,
                          train_images=256, eval_every=6, eval_samples=128,
                          checkpoint_every=6, log_every=6),
}
KEEP = ("command", "config_name", "config", "dataset", "steps", "epochs", "wall_seconds",
        "frechet_distance_raw_generator", "frechet_distance_train_mode_batchnorm",
        "cpu_seconds", "threads", "frechet_distance", "floor", "ratio", "class_fractions",
        "min_class_fraction", "curve", "samples_mode", "machine", "date", "pictures")


def _data(cfg, data_dir):
  """(train source, test images or None, floor images or None)."""
  if cfg.dataset == "folder":
    if data_dir is None:
      raise experiment.FlagError("--config folder needs --data-dir (a folder of images).")
    try:
      return gan.image_folder_source(data_dir, size=cfg.spec.image_shape[0]), None, None
    except (FileNotFoundError, ValueError) as e:
      raise experiment.FlagError(f"--data-dir: {e}") from None
  from jaxvision.data import load_mnist  # pylint: disable=import-outside-toplevel
  try:
    train, _ = load_mnist("train", data_dir=data_dir)
    test, _ = load_mnist("test", data_dir=data_dir)
  except (FileNotFoundError, ValueError) as e:
    raise experiment.FlagError(f"--data-dir: {e}") from None
  if cfg.train_images is not None:
    train = train[:cfg.train_images]
  if cfg.dataset == "coloured_mnist":
    return gan.coloured_mnist_source(train, size=cfg.spec.image_shape[0]), None, None
  n = min(cfg.eval_samples, len(test), len(train))
  return (gan.mnist_gan_source(train, size=cfg.spec.image_shape[0]), test[:n], train[:n])


def _fmt(value, scale=1.0, digits=2) -> str:
  return "-" if value is None else f"{scale * value:.{digits}f}"


def table(runs) -> str:
  lines = ["| config | steps (epochs) | Frechet distance | floor | ratio | min class % | "
           "CPU min | wall min |", "|---|---|---|---|---|---|---|---|"]
  for r in runs:
    lines.append(
        f"| {r.get('config_name')} | {r.get('steps')} ({r.get('epochs')}) | "
        f"{_fmt(r.get('frechet_distance'))} | {_fmt(r.get('floor'))} | {_fmt(r.get('ratio'))} | "
        f"{_fmt(r.get('min_class_fraction'), 100, 1)} | {_fmt(r.get('cpu_seconds'), 1 / 60, 1)} | "
        f"{_fmt(r.get('wall_seconds'), 1 / 60, 1)} |")
  return "\n".join(lines)


def main(argv=None):
  parser = argparse.ArgumentParser(prog="python -m experiments.dcgan", description=__doc__,
                                   formatter_class=experiment.HelpFormatter)
  experiment.add_flags(parser, configs=sorted(CONFIGS), default_config="cpu",
                       results_file=RESULTS_FILE, eval_every=True)
  parser.add_argument("--feature-net", default=FEATURE_NET, metavar="PATH",
                      help="the MNIST classifier of the Frechet distance")
  parser.add_argument("--samples", type=int, default=None,
                      help="samples per Frechet distance (default: the config's)")
  parser.add_argument("--table", action="store_true", help="print the recorded runs and exit")
  args = parser.parse_args(argv)
  with experiment.cli_errors(parser):
    if args.table:
      path = pathlib.Path(args.record or RESULTS_FILE)
      if not path.exists():
        raise experiment.FlagError(f"no results file {str(path)!r} to tabulate.")
      text = table(json.loads(path.read_text())["runs"])
      print(text)
      return {"table": text}
    start, cpu_start = time.time(), time.process_time()
    experiment.setup(args)
    if args.workdir is None:
      raise experiment.FlagError("--workdir is required.")
    if args.samples is not None and args.samples < 2:
      raise experiment.FlagError(f"--samples must be >= 2, got {args.samples}.")
    overrides = experiment.config_overrides(args, {"steps": "steps", "batch_size": "batch_size",
                                                   "eval_every": "eval_every",
                                                   "samples": "eval_samples"})
    if args.evaluate:
      source = args.restore_weights or args.workdir
      try:
        generator = gan.Generator.load(source)
      except (FileNotFoundError, ValueError) as e:
        raise experiment.FlagError(f"--restore-weights: {e}") from None
      _, spec = experiment.load_weights_spec(source)
      name = spec.get("config_name", "cpu")
      cfg = dataclasses.replace(CONFIGS.get(name, CONFIGS["cpu"]), spec=generator.spec)
      if "samples" in overrides or "eval_samples" in overrides:
        cfg = dataclasses.replace(cfg, eval_samples=overrides["eval_samples"])
    else:
      name = args.config or "cpu"
      cfg = dataclasses.replace(CONFIGS[name], **overrides)
    train_data, test_images, floor_images = _data(cfg, args.data_dir)
    feature_net = None
    if test_images is not None:
      try:
        feature_net = gan.FeatureNet.load(args.feature_net)
      except (FileNotFoundError, ValueError) as e:
        raise experiment.FlagError(f"--feature-net: {e}") from None
    if not args.evaluate:
      generator, _ = gan.train_gan(cfg, args.workdir, train_data, seed=args.seed,
                                   feature_net=feature_net, test_images=test_images,
                                   floor_images=floor_images, progress=args.progress)
      if jax.process_index() == 0:
        generator.save(os.path.join(args.workdir, "weights.msgpack"), config_name=name,
                       config=jsonable(dataclasses.asdict(cfg)))
    results = {"command": experiment.command_line(argv, "experiments.dcgan"),
               "config_name": name, "config": dataclasses.asdict(cfg), "dataset": cfg.dataset,
               "samples_mode": "eval (BatchNorm running averages)"}
    pictures = []
    if jax.process_index() == 0:
      pictures.append(gan.sample_grid(generator, os.path.join(args.workdir, "samples.png"),
                                      title=f"DCGAN ({name}): 64 samples",
                                      feature_net=feature_net))
      pictures.append(gan.interpolation_grid(generator,
                                             os.path.join(args.workdir, "interpolation.png")))
    if feature_net is not None:
      reference = gan.reference_statistics(test_images, floor_images, feature_net)
      samples = generator.sample(cfg.eval_samples, seed=args.seed + 777)
      results.update(gan.generator_report(samples, test_images, floor_images, feature_net,
                                          reference=reference))
      results["frechet_distance_train_mode_batchnorm"] = gan.generator_report(
          generator.sample(cfg.eval_samples, seed=args.seed + 777, train_mode=True),
          test_images, floor_images, feature_net, reference=reference)["frechet_distance"]
      pictures.append(_histogram(results, os.path.join(args.workdir, "class_histogram.png")))
    results["pictures"] = pictures
    if not args.evaluate:
      steps, evals = experiment.eval_history(args.workdir)
      results["curve"] = [{"step": s, **{k: e.get(k) for k in (
          "frechet_distance", "ratio", "min_class_fraction", "frechet_distance_raw") if k in e}}
                          for s, e in zip(steps, evals)]
      if cfg.ema_decay and evals and "frechet_distance_raw" in evals[-1]:
        results["frechet_distance_raw_generator"] = evals[-1]["frechet_distance_raw"]
      results["steps"] = cfg.steps
      results["epochs"] = round(cfg.steps * cfg.batch_size / len(train_data), 2)
      results["wall_seconds"] = round(experiment.cumulative_wall_seconds(
          args.workdir, time.time() - start), 1)
      results["cpu_seconds"] = round(time.process_time() - cpu_start, 1)
      results["threads"] = os.environ.get("XLA_FLAGS", "")
    results["machine"], results["date"] = experiment.machine(), time.strftime("%Y-%m-%d")
    experiment.finish(args.workdir, results, record=None if args.evaluate else args.record,
                      keep=KEEP)
    if feature_net is not None:
      print(f"dcgan ({name}): Frechet distance {results['frechet_distance']:.3f}, floor "
            f"{results['floor']:.3f} (ratio {results['ratio']:.2f}); smallest class "
            f"{100 * results['min_class_fraction']:.1f}%")
    else:
      print(f"dcgan ({name}): wrote {', '.join(pictures)}")
    return results


def _histogram(results, path) -> str:
  from jaxvision import viz  # pylint: disable=import-outside-toplevel
  frac = results["class_fractions"]
  viz.save_line_plot(path, {"samples": (list(range(10)), [100 * f for f in frac]),
                            "uniform (10%)": ([0, 9], [10, 10]),
                            "goal floor (5%)": ([0, 9], [5, 5])},
                     xlabel="digit (the feature net's reading)", ylabel="% of samples",
                     title=f"Class histogram of {results['num_samples']} samples",
                     note=f"Frechet distance {results['frechet_distance']:.2f}, floor "
                          f"{results['floor']:.2f}")
  return path


if __name__ == "__main__":
  main(sys.argv[1:])
