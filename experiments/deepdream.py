"""DeepDream (the TF tutorial's recipe) on the project's own MNIST classifier and on VGG-19.

    python -m experiments.deepdream --workdir runs/dream --record
    python -m experiments.deepdream --image photo.jpg --layers block4_conv1 --workdir runs/me

Gradient ascent on the mean activation of chosen layers, with the gradient divided by its
std, a random roll of the image before every step and octaves (``jaxvision.dream``). Two
networks, offline:

* ``mnist``: the committed MNIST classifier (``experiments/results/
  mnist_features_weights.msgpack``, ``MnistFeatureNet``): test digits upsampled 4x (its
  convolutions run at any size; its dense layers need 28 x 28, too small for octaves) and
  dreamed at ``conv0b`` (the first block's edge/stroke detectors) and ``conv1a``+``conv1b``
  (the second block), 3 octaves of 1.4;
* ``vgg``: VGG-19 with random He-normal filters (or ``--vgg-weights``) on scikit-image's
  ``coffee`` (or ``--image``) at ``block3_conv1`` and ``block4_conv1``.

Writes ``deepdream.png`` (originals beside their dreams) and ``results.json`` with the
objective at the start and end of every octave (it rises in each).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

import jax
import numpy as np

from jaxvision import dream, experiment, gan, style, viz
from jaxvision.models import vgg as vgg_lib

HERE = pathlib.Path(__file__).resolve().parent
RESULTS_FILE = str(HERE / "results" / "deepdream.json")
FEATURE_NET = str(HERE / "results" / "mnist_features_weights.msgpack")


def mnist_dreams(args, records):
  """Test digits (4x upsampled, as RGB for display) dreamed at two depths."""
  from jaxvision.data import load_mnist  # pylint: disable=import-outside-toplevel
  try:
    images, labels = load_mnist("test", data_dir=args.data_dir)
  except (FileNotFoundError, ValueError) as e:
    raise experiment.FlagError(f"--data-dir: {e}") from None
  try:
    net = gan.FeatureNet.load(args.feature_net)
  except (FileNotFoundError, ValueError) as e:
    raise experiment.FlagError(f"--feature-net: {e}") from None
  size = 28 * args.mnist_scale
  fn = dream.layer_feature_fn(net.model, net.variables, activation=jax.nn.relu,
                              features="conv")
  picks = [int(np.flatnonzero(labels == d)[0]) for d in (0, 3, 7)]
  rows = []
  for i in picks:
    x = np.asarray(style.resize_image(np.repeat(images[i][..., None], 3, -1), (size, size)))
    grey = x[..., :1]
    row = [x]
    for layers in (("conv0b",), ("conv1a", "conv1b")):
      cfg = dream.DreamConfig(layers=layers, octaves=3, octave_scale=1.4, steps=args.steps,
                              step_size=0.01, max_shift=4)
      out, recs = dream.deepdream(grey, fn, cfg, seed=i)
      row.append(np.repeat(out, 3, -1))
      records.append({"network": "MnistFeatureNet", "image": f"test digit #{i}",
                      "layers": list(layers), "octaves": recs})
    rows.append(row)
  return rows, [f"digit {labels[i]}" for i in picks], ["test digit (upsampled)", "conv0b",
                                                        "conv1a+conv1b"]


def vgg_dreams(args, records):
  from skimage import data  # pylint: disable=import-outside-toplevel
  if args.image:
    try:
      image = experiment.read_image(args.image)
    except (FileNotFoundError, ValueError) as e:
      raise experiment.FlagError(f"--image: {e}") from None
  else:
    image = data.coffee()
  h, w = image.shape[:2]
  s = min(h, w)
  image = image[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
  x = style.resize_image(image, (args.size, args.size))
  if args.vgg_weights:
    try:
      params, layout = vgg_lib.load_vgg_weights(args.vgg_weights)
    except (FileNotFoundError, ValueError, TypeError) as e:
      raise experiment.FlagError(f"--vgg-weights: {e}") from None
    fn, _ = style.vgg_feature_fn(params, layout=layout, last="block4_conv1")
  else:
    fn, _ = style.vgg_feature_fn(seed=0, last="block4_conv1")
  row, cols = [x], ["original"]
  for layers in (tuple(args.layers.split(",")) if args.layers else ("block3_conv1",),
                 ("block4_conv1",)):
    cfg = dream.DreamConfig(layers=layers, octaves=3, octave_scale=1.3, steps=args.steps,
                            step_size=0.01, max_shift=16)
    try:
      out, recs = dream.deepdream(x, fn, cfg, seed=1)
    except ValueError as e:
      raise experiment.FlagError(f"--layers: {e}") from None
    row.append(out)
    cols.append("+".join(layers))
    records.append({"network": "VGG-19" + ("" if args.vgg_weights else " (random)"),
                    "image": args.image or "coffee", "layers": list(layers), "octaves": recs})
  return [row], ["VGG-19" + ("" if args.vgg_weights else " random")], cols


def main(argv=None):
  parser = argparse.ArgumentParser(prog="python -m experiments.deepdream", description=__doc__,
                                   formatter_class=experiment.HelpFormatter)
  parser.add_argument("--workdir", required=True, help="deepdream.png and results.json")
  parser.add_argument("--networks", default="mnist,vgg", help="mnist, vgg or both")
  parser.add_argument("--data-dir", default=None, help="MNIST (default: $JAXVISION_DATA_DIR, "
                                                       "then ../shared/data/mnist)")
  parser.add_argument("--feature-net", default=FEATURE_NET, metavar="PATH",
                      help="the MNIST classifier")
  parser.add_argument("--image", default=None, help="the VGG network's image (default: coffee)")
  parser.add_argument("--layers", default=None,
                      help="comma-separated VGG layers for the first dream (default: "
                           "block3_conv1)")
  parser.add_argument("--vgg-weights", default=None, metavar="PATH",
                      help="ImageNet VGG-19 weights (torchvision .pth/.npz or Keras .h5)")
  parser.add_argument("--size", type=int, default=192, help="the VGG image's side")
  parser.add_argument("--mnist-scale", type=int, default=4, help="MNIST upsampling factor")
  parser.add_argument("--steps", type=int, default=20, help="ascent steps per octave")
  parser.add_argument("--record", nargs="?", const=RESULTS_FILE, default=None, metavar="FILE",
                      help="append the run to a results file")
  args = parser.parse_args(argv)
  with experiment.cli_errors(parser):
    nets = [n.strip() for n in args.networks.split(",") if n.strip()]
    if not nets or any(n not in ("mnist", "vgg") for n in nets):
      raise experiment.FlagError(f"--networks must list mnist and/or vgg, got {args.networks!r}.")
    for name in ("size", "steps", "mnist_scale"):
      if getattr(args, name) < 1:
        raise experiment.FlagError(f"--{name.replace('_', '-')} must be >= 1.")
    if args.data_dir is None:
      args.data_dir = experiment.default_data_dir()
    start = time.time()
    os.makedirs(args.workdir, exist_ok=True)
    records, pictures = [], []
    for net in nets:
      rows, row_labels, cols = (mnist_dreams if net == "mnist" else vgg_dreams)(args, records)
      path = os.path.join(args.workdir, f"deepdream_{net}.png")
      viz.save_image_grid(path, np.stack(rows), row_labels=row_labels, col_labels=cols,
                          title=("DeepDream on the MNIST classifier (test digits, 3 octaves)"
                                 if net == "mnist" else
                                 "DeepDream on VGG-19 (3 octaves of 1.3)"),
                          cell_inches=2.0)
      pictures.append(path)
    rises = all(o["end"] > o["start"] for r in records for o in r["octaves"])
    results = {"command": experiment.command_line(argv, "experiments.deepdream"),
               "dreams": records, "objective_rises_every_octave": rises,
               "pictures": pictures, "wall_seconds": round(time.time() - start, 1),
               "machine": experiment.machine(), "date": time.strftime("%Y-%m-%d")}
    experiment.finish(args.workdir, results, record=args.record)
    print(f"deepdream: {len(records)} dreams, objective rose in every octave: {rises}; wrote "
          f"{', '.join(pictures)}")
    return results


if __name__ == "__main__":
  main(sys.argv[1:])
