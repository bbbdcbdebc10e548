"""Digit scenes written in the book's layout, e.g. a second scene style to test a model on.

    python -m experiments.scenes --out /tmp/scenes_shapes --style shapes \\
        --digit-size 0.13 0.79 --num-digits 1 10 --test-scenes 500 --seed 1
    python -m experiments.ssd --evaluate --restore-weights W --dataset book:/tmp/scenes_shapes

Writes ``labels_{train,test}.csv`` (``frame,xmin,xmax,ymin,ymax,class_id``),
``segmentation_{train,test}.npy`` (one-hot masks), ``classes.txt`` and the PNG images
(:func:`jaxvision.data.write_book_split`), plus ``preview.png``: what any CLI reads with
``--dataset book:DIR``. Digits come from the MNIST test split (``--split train`` for the
training digits). ``--digit-size`` is the side of the resized 28 x 28 patch as a fraction of
the image's shorter side; the ink is about 0.7 of it in height, so ``0.13 0.79`` gives digits
0.09-0.55 of the image height.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from jaxvision import data as jdata
from jaxvision import experiment, viz


def main(argv=None, *, digits=None) -> str:
  """``digits``: an ``(images [N, 28, 28] uint8, labels [N])`` pool instead of MNIST
  (tests)."""
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--out", required=True, help="output directory")
  parser.add_argument("--data-dir", default=None, help="MNIST directory")
  parser.add_argument("--style", choices=list(jdata.scenes.STYLES), default="shapes")
  parser.add_argument("--image-size", type=int, nargs=2, default=(120, 160), metavar=("H", "W"))
  parser.add_argument("--digit-size", type=float, nargs=2, default=(0.13, 0.79),
                      metavar=("LO", "HI"))
  parser.add_argument("--num-digits", type=int, nargs=2, default=(1, 10), metavar=("LO", "HI"))
  parser.add_argument("--train-scenes", type=int, default=0,
                      help="0: a test set only (what --evaluate needs)")
  parser.add_argument("--test-scenes", type=int, default=500)
  parser.add_argument("--split", choices=["train", "test"], default="test",
                      help="MNIST split the digits come from")
  parser.add_argument("--seed", type=int, default=1)
  args = parser.parse_args(argv)
  with experiment.cli_errors(parser):
    if args.train_scenes < 0 or args.test_scenes < 1:
      raise experiment.FlagError(f"--test-scenes must be >= 1 and --train-scenes >= 0, got "
                                 f"{args.test_scenes} and {args.train_scenes}.")
    try:
      config = jdata.SceneConfig(image_size=args.image_size, digit_size=args.digit_size,
                                 num_digits=args.num_digits, style=args.style)
    except ValueError as e:
      raise experiment.FlagError(str(e)) from None
    if digits is None:
      try:
        digits = jdata.load_mnist(args.split, data_dir=args.data_dir
                                  or experiment.default_data_dir())
      except (FileNotFoundError, ValueError) as e:
        raise experiment.FlagError(f"--data-dir: {e}") from None
  digits, labels = digits
  t0 = time.time()
  for split, n, seed in (("train", args.train_scenes, args.seed),
                         ("test", args.test_scenes, args.seed + 1000)):
    if n > 0:
      records = jdata.generate_scenes(digits, labels, n, config=config, seed=seed)
      jdata.write_book_split(args.out, split, records, class_names=jdata.CLASS_NAMES)
      last = records
  viz.save_scene_preview(os.path.join(args.out, "preview.png"), last["image"][:8],
                         last["boxes"][:8], last["classes"][:8],
                         class_names=jdata.CLASS_NAMES,
                         title=f"{args.style} scenes, digits {args.digit_size[0]}-"
                               f"{args.digit_size[1]} of the shorter side (ground truth)")
  print(f"wrote {args.train_scenes} train / {args.test_scenes} test scenes to {args.out} "
        f"({time.time() - t0:.0f} s)")
  return args.out


if __name__ == "__main__":
  main(sys.argv[1:])
