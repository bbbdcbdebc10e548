"""Neural style transfer (Gatys et al. 2016) on scikit-image's sample images, offline.

    python -m experiments.style_transfer --workdir runs/style --record
    python -m experiments.style_transfer --content me.jpg --style painting.jpg --workdir runs/me
    python -m experiments.style_transfer --vgg-weights vgg19.pth --workdir runs/imagenet

The notes' recipe (``jaxvision.style``): content = ``block5_conv2``, style = Gram matrices of
``block1_conv1 .. block5_conv1``, total variation; the image is the only parameter. ImageNet
VGG-19 weights cannot be downloaded here: ``--vgg-weights`` loads yours (torchvision's
``state_dict`` as ``.pth``/``.npz``, or Keras' ``.h5``); without it the feature network is
``--features``:

* ``random-vgg19`` (default): VGG-19 with random He-normal filters and average pooling
  (random deep features carry texture statistics, Ustyuzhaninov et al. 2016);
* ``fcn-backbone``: the ResNet backbone of the FCN trained here on coloured digit scenes
  (``experiments/results/fcn_cpu_weights.msgpack``), its stem to its last stage.

``--compare`` runs two pairs (chelsea x brick, astronaut x coffee) with both
feature networks and both optimisers (L-BFGS, Adam) into ``style_transfer_compare.png`` and a
loss-curve plot: the comparison behind the default (``experiments/results/style_transfer.md``).
Every run writes ``style_transfer.png`` (content | style | result) and ``results.json``.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

import numpy as np

from jaxvision import experiment, style, viz
from jaxvision.models import vgg as vgg_lib

HERE = pathlib.Path(__file__).resolve().parent
RESULTS_FILE = str(HERE / "results" / "style_transfer.json")
FCN_WEIGHTS = str(HERE / "results" / "fcn_cpu_weights.msgpack")
SAMPLES = ("astronaut", "chelsea", "coffee", "brick", "grass", "gravel")


def _square(image: np.ndarray) -> np.ndarray:
  h, w = image.shape[:2]
  s = min(h, w)
  return image[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]


def load_picture(name_or_path: str, size: int) -> np.ndarray:
  """A scikit-image sample name or an image file -> float [size, size, 3] (centre square)."""
  if name_or_path in SAMPLES:
    from skimage import data  # pylint: disable=import-outside-toplevel
    image = getattr(data, name_or_path)()
  else:
    try:
      image = experiment.read_image(name_or_path)
    except (FileNotFoundError, ValueError) as e:
      raise experiment.FlagError(f"{e} (or one of the samples: {', '.join(SAMPLES)})") from None
  return style.resize_image(_square(np.asarray(image)), (size, size))


def feature_network(kind: str, vgg_weights: str | None):
  """``(feature_fn, StyleConfig layer fields, description)``."""
  if vgg_weights:
    try:
      params, layout = vgg_lib.load_vgg_weights(vgg_weights)
    except (FileNotFoundError, ValueError, TypeError) as e:
      raise experiment.FlagError(f"--vgg-weights: {e}") from None
    fn, _ = style.vgg_feature_fn(params, layout=layout, pool="avg")
    return fn, {}, f"VGG-19 ({layout} weights from {vgg_weights})"
  if kind == "random-vgg19":
    fn, _ = style.vgg_feature_fn(seed=0, pool="avg")
    return fn, {}, "VGG-19, random He-normal filters"
  fn, names = style.segmenter_feature_fn(FCN_WEIGHTS)
  return fn, {"content_layer": names[-1], "style_layers": tuple(names)}, \
      "FCN backbone trained on digit scenes"


def main(argv=None):
  parser = argparse.ArgumentParser(prog="python -m experiments.style_transfer",
                                   description=__doc__, formatter_class=experiment.HelpFormatter)
  parser.add_argument("--workdir", required=True, help="PNGs and results.json")
  parser.add_argument("--content", default="chelsea",
                      help=f"an image file or a sample ({', '.join(SAMPLES)})")
  parser.add_argument("--style", default="brick", help="an image file or a sample")
  parser.add_argument("--size", type=int, default=160, help="side of the square images")
  parser.add_argument("--features", choices=("random-vgg19", "fcn-backbone"),
                      default="random-vgg19", help="the offline feature network")
  parser.add_argument("--vgg-weights", default=None, metavar="PATH",
                      help="ImageNet VGG-19 weights (torchvision .pth/.npz or Keras .h5)")
  parser.add_argument("--optimizer", choices=("lbfgs", "adam"), default="lbfgs")
  parser.add_argument("--steps", type=int, default=None,
                      help="optimiser steps (default: 50 for L-BFGS, 300 for Adam)")
  parser.add_argument("--style-weight", type=float, default=10.0)
  parser.add_argument("--content-weight", type=float, default=1.0)
  parser.add_argument("--tv-weight", type=float, default=1.0)
  parser.add_argument("--compare", action="store_true",
                      help="the feature-network x optimiser comparison (about 20 minutes at --size 128)")
  parser.add_argument("--record", nargs="?", const=RESULTS_FILE, default=None, metavar="FILE",
                      help="append the run to a results file")
  args = parser.parse_args(argv)
  with experiment.cli_errors(parser):
    if args.size < 16:
      raise experiment.FlagError(f"--size must be >= 16, got {args.size}.")
    if args.steps is not None and args.steps < 1:
      raise experiment.FlagError(f"--steps must be >= 1, got {args.steps}.")
    start = time.time()
    os.makedirs(args.workdir, exist_ok=True)
    if args.compare:
      results = compare(args)
    else:
      results = single(args)
    results.update({"command": experiment.command_line(argv, "experiments.style_transfer"),
                    "wall_seconds": round(time.time() - start, 1),
                    "machine": experiment.machine(), "date": time.strftime("%Y-%m-%d")})
    experiment.finish(args.workdir, results, record=args.record)
    return results


def _config(args, optimizer, layers):
  steps = args.steps or (50 if optimizer == "lbfgs" else 300)
  return style.StyleConfig(optimizer=optimizer, steps=steps, style_weight=args.style_weight,
                           content_weight=args.content_weight, tv_weight=args.tv_weight,
                           **layers)


def single(args):
  content = load_picture(args.content, args.size)
  style_image = load_picture(args.style, args.size)
  fn, layers, desc = feature_network(args.features, args.vgg_weights)
  cfg = _config(args, args.optimizer, layers)
  t = time.time()
  image, history = style.style_transfer(content, style_image, fn, cfg)
  seconds = time.time() - t
  path = os.path.join(args.workdir, "style_transfer.png")
  viz.save_image_grid(path, np.stack([[content, style_image, image]]),
                      title=f"Style transfer ({desc}; {cfg.optimizer}, {cfg.steps} steps)",
                      col_labels=["content: " + pathlib.Path(args.content).stem,
                                  "style: " + pathlib.Path(args.style).stem, "result"],
                      cell_inches=2.6)
  print(f"style transfer: loss {history['total'][0]:.3f} -> {history['total'][-1]:.3f} in "
        f"{seconds:.0f} s; wrote {path}")
  return {"features": desc, "optimizer": cfg.optimizer, "steps": cfg.steps, "size": args.size,
          "content": args.content, "style": args.style, "history": history,
          "seconds": round(seconds, 1), "pictures": [path]}


def compare(args):
  pairs = [("chelsea", "brick"), ("astronaut", "coffee")]
  nets = {k: feature_network(k, None) for k in ("random-vgg19", "fcn-backbone")}
  rows, row_labels, runs, curves = [], [], [], {}
  for content_name, style_name in pairs:
    content = load_picture(content_name, args.size)
    style_image = load_picture(style_name, args.size)
    row = [content, style_image]
    for key, (fn, layers, desc) in nets.items():
      for opt in ("lbfgs", "adam"):
        cfg = _config(args, opt, layers)
        t = time.time()
        image, history = style.style_transfer(content, style_image, fn, cfg)
        seconds = time.time() - t
        row.append(image)
        runs.append({"content": content_name, "style": style_name, "features": key,
                     "optimizer": opt, "steps": cfg.steps, "seconds": round(seconds, 1),
                     "loss_start": history["total"][0], "loss_end": history["total"][-1],
                     "content_end": history["content"][-1], "style_end": history["style"][-1]})
        print(f"{content_name} x {style_name}, {key}, {opt}: loss {history['total'][0]:.3f} -> "
              f"{history['total'][-1]:.3f} ({seconds:.0f} s)", flush=True)
        if content_name == pairs[0][0] and style_name == pairs[0][1]:
          x = np.asarray(history["step"], float)
          if opt == "lbfgs":
            x = x * (300 / cfg.steps)   # on one axis: the run's fraction of its steps
          curves[(key, opt)] = (x.tolist(), history["total"])
    rows.append(row)
    row_labels.append(f"{content_name} x {style_name}")
  cols = ["content", "style"] + [f"{k}\n{o}" for k in nets for o in ("lbfgs", "adam")]
  paths = [os.path.join(args.workdir, "style_transfer_compare.png"),
           os.path.join(args.workdir, "style_transfer_losses.png")]
  viz.save_image_grid(paths[0], np.stack(rows), title="Style transfer offline: random VGG-19 "
                      "vs a backbone trained here, L-BFGS vs Adam", row_labels=row_labels,
                      col_labels=cols, cell_inches=2.0)
  viz.save_line_plot(paths[1], curves, xlabel="step (L-BFGS iterations scaled to Adam's 300)",
                     ylabel="total loss (normalised terms)", log_y=True,
                     title=f"Loss curves, {pairs[0][0]} x {pairs[0][1]}")
  return {"compare": runs, "size": args.size, "pictures": paths}


if __name__ == "__main__":
  main(sys.argv[1:])
