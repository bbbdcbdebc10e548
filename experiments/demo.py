"""`make demo`: what jaxvision does today, offline, in a few minutes on 2 CPU cores.

    python -m experiments.demo --workdir demo_out

1. Detector-like boxes on a generated image, before and after NMS and soft-NMS -> PNG.
2. The benchmark suite's quick run (``python -m benchmarks.run --quick``, as a subprocess):
   jaxvision against the NumPy oracles, and torchvision / TensorFlow when installed
   (``make bench-install``).
3. A short IIC run on MNIST (no labels; about two minutes; ``python -m experiments.iic_mnist``
   as a subprocess) that prints its test accuracy.
4. Detection: the committed SSD weights (``experiments/results/ssd_cpu_weights.msgpack``,
   trained by ``python -m experiments.ssd``, see ``experiments/results/ssd.md``), loaded with
   ``jaxvision.inference.Detector``, on new scenes of MNIST test digits past the experiment's
   test set: jitted inference + NMS on batches of 8, the book's metrics and mAP, and a PNG of
   the detections beside the ground truth.
5. Segmentation: the committed FCN weights (``experiments/results/fcn_cpu_weights.msgpack``,
   trained by ``python -m experiments.fcn``) with ``jaxvision.inference.Segmenter`` on new
   scenes: the book's mIoU and pixel accuracy, and input / ground truth / prediction
   triptychs.

6. Generative models: the 1-D GAN warm-up, 64 samples of the committed DCGAN generator
   (``experiments/results/dcgan_cpu_generator.msgpack``) with their Frechet distance,
   DeepDream on the committed MNIST classifier and a small style transfer (the FCN backbone's
   features); ``python -m experiments.style_transfer`` runs the default (random VGG-19) recipe.

7. Sequence models: the committed sequential-MNIST TCN
   (``experiments/results/seq_mnist_weights.msgpack``, ``python -m experiments.seq_mnist``)
   on 2000 test digits read pixel by pixel, and a text CNN beside a bag of words on the
   negation corpus (trained here, a few seconds each): accuracy per sentence kind.

Steps 3-7 need MNIST (step 7's text part does not): ``--data-dir``, ``$JAXVISION_DATA_DIR`` or ``../shared/data/mnist``.
This file imports only jaxvision; the benchmark suite and the IIC experiment run as their
own processes.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shlex
import shutil
import subprocess
import sys
import time

import jax
import numpy as np

from jaxvision import experiment, ops, viz
from jaxvision.data import load_mnist, scenes
from jaxvision.inference import (Detector, Segmenter, evaluate_detector, evaluate_segmenter,
                                 ground_truth_lists)

REPO = pathlib.Path(__file__).resolve().parents[1]
RESULTS = REPO / "experiments" / "results"
SSD_WEIGHTS = RESULTS / "ssd_cpu_weights.msgpack"
FCN_WEIGHTS = RESULTS / "fcn_cpu_weights.msgpack"


def make_scene(seed: int = 0, height: int = 240, width: int = 320):
  """A generated RGB image with a few coloured objects and their ground-truth boxes."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:height, 0:width]
  image = np.stack([0.55 + 0.25 * xx / width, 0.6 + 0.2 * yy / height,
                    np.full_like(xx, 0.7, dtype=float)], axis=-1)
  image += rng.normal(0, 0.03, image.shape)
  gt = []
  for _ in range(5):
    w, h = rng.uniform(35, 90), rng.uniform(35, 90)
    x0, y0 = rng.uniform(5, width - w - 5), rng.uniform(5, height - h - 5)
    colour = rng.uniform(0.05, 0.9, 3)
    inside = ((xx - (x0 + w / 2)) / (w / 2)) ** 2 + ((yy - (y0 + h / 2)) / (h / 2)) ** 2 <= 1
    image[inside] = colour
    gt.append([x0, y0, x0 + w, y0 + h])
  return np.clip(image, 0, 1), np.asarray(gt, np.float32)


def detector_proposals(gt: np.ndarray, seed: int = 0, per_object: int = 40, clutter: int = 30):
  """Boxes a dense detector would emit: jittered copies of each object plus false positives.

  A proposal's score falls with its distance from the object, so the best box wins NMS.
  """
  rng = np.random.default_rng(seed)
  boxes, scores = [], []
  for x0, y0, x1, y1 in gt:
    w, h = x1 - x0, y1 - y0
    jitter = rng.normal(0, 0.12, (per_object, 4)) * np.array([w, h, w, h])
    b = np.array([x0, y0, x1, y1]) + jitter
    boxes.append(b)
    err = np.abs(jitter).sum(1) / (w + h)
    scores.append(np.clip(0.95 - 2.0 * err + rng.normal(0, 0.05, per_object), 0.05, 1.0))
  xy = rng.uniform(0, 280, (clutter, 2))
  wh = rng.uniform(15, 60, (clutter, 2))
  boxes.append(np.concatenate([xy, xy + wh], 1))
  scores.append(rng.uniform(0.05, 0.45, clutter))
  return np.concatenate(boxes).astype(np.float32), np.concatenate(scores).astype(np.float32)


def draw(image, panels, path):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.patches as patches
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.2))
  for ax, (title, boxes, scores) in zip(axes, panels):
    ax.imshow(image)
    for box, score in zip(boxes, scores):
      x0, y0, x1, y1 = box
      ax.add_patch(patches.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, linewidth=1.2,
                                     edgecolor=matplotlib.colormaps["autumn"](1 - score)))
      if len(boxes) <= 40:
        ax.text(x0, y0 - 1, f"{score:.2f}", fontsize=6, color="black",
                bbox=dict(facecolor="white", alpha=0.6, pad=0.5, linewidth=0))
    ax.set_title(title, fontsize=10)
    ax.axis("off")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def nms_example(workdir: pathlib.Path) -> None:
  image, gt = make_scene()
  boxes, scores = detector_proposals(gt)
  n = len(boxes)
  idx, count = ops.nms(boxes, scores, iou_threshold=0.5, max_output_size=n,
                       score_threshold=0.3)
  kept = np.asarray(idx)[: int(count)]
  s_idx, s_scores, s_count = ops.soft_nms(boxes, scores, sigma=0.5, score_threshold=0.3,
                                          max_output_size=n)
  s_kept = np.asarray(s_idx)[: int(s_count)]
  path = workdir / "nms.png"
  draw(image, [
      (f"{n} detector boxes", boxes, scores),
      (f"NMS (IoU > 0.5, score > 0.3): {len(kept)} kept", boxes[kept], scores[kept]),
      (f"Gaussian soft-NMS (sigma 0.5, score >= 0.3): {len(s_kept)} kept", boxes[s_kept],
       np.asarray(s_scores)[: int(s_count)]),
  ], path)
  best_iou = np.asarray(ops.box_iou(gt, boxes[kept])).max(axis=1)
  print(f"NMS: {n} boxes -> {len(kept)} kept; soft-NMS: {len(s_kept)} kept "
        f"(rescored); every object's best kept box has IoU >= {best_iou.min():.2f}. "
        f"Wrote {path}")


def run_module(module: str, *args) -> int:
  """Runs ``python -m module args...`` from the repository root, its output streamed to
  ours; returns its exit status."""
  cmd = [sys.executable, "-m", module, *(str(a) for a in args)]
  print("$ python -m " + " ".join(shlex.quote(c) for c in cmd[2:]), flush=True)
  return subprocess.run(cmd, cwd=REPO, check=False).returncode


def timing_table(workdir: pathlib.Path) -> None:
  """The benchmark suite's quick run: same inputs for every implementation, interleaved in
  one process (the demo's few minutes have no room for one worker process per
  implementation, the full suite's method)."""
  print("\n== Benchmarks: jaxvision against the oracles and the peers (quick run) ==")
  rc = run_module("benchmarks.run", "--quick", "--method", "inprocess", "--out",
                  workdir.resolve() / "bench")
  if rc:
    print(f"the benchmark run exited with status {rc}; see its output above.")


def _scene_config(spec) -> scenes.SceneConfig:
  """The scenes the weights were trained on (their spec's training config)."""
  cfg = spec.training.get("config", {})
  return scenes.SceneConfig(image_size=cfg.get("image_size", spec.image_size),
                            digit_size=cfg["digit_size"], num_digits=cfg["num_digits"])


def _new_test_scenes(spec, data_dir: str, num_scenes: int) -> dict[str, np.ndarray] | None:
  """Scenes 10,000.. of MNIST test digits: past the experiments' test scenes, so never seen
  during training or model selection (None, said, when MNIST is not in ``data_dir``)."""
  try:
    digits = load_mnist("test", data_dir=data_dir)
  except FileNotFoundError as e:
    print(f"MNIST not found in {data_dir}: {e}; skipping.")
    return None
  return scenes.generate_scenes(*digits, num_scenes, config=_scene_config(spec), seed=1,
                                start=10_000)


def iic_example(workdir: pathlib.Path, data_dir: str | None, steps: int = 180) -> float | None:
  """A short IIC run (the ``cpu`` recipe, ``steps`` steps) on MNIST; returns the accuracy."""
  print("\n== IIC: clustering MNIST without labels ==")
  if data_dir is None:
    print("MNIST not found: pass --data-dir DIR or set JAXVISION_DATA_DIR to a directory "
          "with the IDX files; skipping the IIC example.")
    return None
  run_dir = workdir.resolve() / "iic"
  shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run each time, not a resume
  rc = run_module("experiments.iic_mnist", "--config", "cpu", "--steps", max(int(steps), 1),
                  "--data-dir", data_dir, "--workdir", run_dir, "--no-progress")
  results_file = run_dir / "results.json"
  if rc or not results_file.exists():
    print(f"the IIC run failed (status {rc}); skipping the IIC example.")
    return None
  results = json.loads(results_file.read_text())
  acc = results["test_accuracy"]
  print(f"IIC after {steps} steps ({results['wall_seconds']} s): test accuracy {acc:.4f} "
        f"(lowest-loss head), best head {results['best_head_accuracy']:.4f}; "
        f"confusion matrix in {run_dir}/confusion.png. The full recipe: "
        f"python -m experiments.iic_mnist --config cpu --data-dir {data_dir} --workdir DIR")
  return acc


def _evaluate_on_new_scenes(heading: str, model_name: str, example: str,
                            weights: pathlib.Path, load, evaluate, data_dir: str | None,
                            num_scenes: int):
  """Prints ``heading``, loads ``weights`` with ``load`` and ``evaluate``s them (batches of 8)
  on ``num_scenes`` new test scenes; returns (model, scenes, metrics, start time), or None,
  said, when MNIST or the weights are missing."""
  print(f"\n== {heading} ==")
  if data_dir is None or not weights.exists():
    print(f"MNIST or the {model_name} weights not found; skipping the {example} example.")
    return None
  start = time.perf_counter()
  model = load(weights)
  test = _new_test_scenes(model.spec, data_dir, num_scenes)
  if test is None:
    return None
  return model, test, evaluate(model, test, batch_size=8), start


def detection_example(workdir: pathlib.Path, data_dir: str | None, num_scenes: int = 96,
                      pictures: int = 8) -> dict | None:
  """Runs the committed SSD weights on ``num_scenes`` new test scenes; returns the metrics."""
  evaluated = _evaluate_on_new_scenes("SSD: detecting digits in cluttered scenes", "SSD",
                                      "detection", SSD_WEIGHTS, Detector.load,
                                      evaluate_detector, data_dir, num_scenes)
  if evaluated is None:
    return None
  detector, test, result, start = evaluated
  shown = {k: v[:pictures] for k, v in test.items()}
  path = workdir / "ssd_detections.png"
  recipe = detector.spec.training.get("recipe", detector.spec.model)
  viz.save_detections(path, shown["image"], detector.detect(shown["image"], batch_size=8),
                      ground_truth=ground_truth_lists(shown), class_names=detector.class_names,
                      side_by_side=True,
                      title=f"SSD ({recipe}) on new test scenes: ground truth (dashed, left) "
                            f"beside the predictions (solid, right)")
  print(f"SSD ({recipe}) on {num_scenes} new test scenes: mAP@0.5 {result['map50']:.3f}, "
        f"COCO mAP {result['map']:.3f}, book precision {result['precision']:.3f} / recall "
        f"{result['recall']:.3f} / mIoU {result['miou']:.3f} "
        f"({time.perf_counter() - start:.1f} s). Wrote {path}")
  return result


def segmentation_example(workdir: pathlib.Path, data_dir: str | None, num_scenes: int = 48,
                         pictures: int = 4) -> dict | None:
  """Runs the committed FCN weights on ``num_scenes`` new test scenes; returns the metrics."""
  evaluated = _evaluate_on_new_scenes("FCN: segmenting digits pixel by pixel", "FCN",
                                      "segmentation", FCN_WEIGHTS, Segmenter.load,
                                      evaluate_segmenter, data_dir, num_scenes)
  if evaluated is None:
    return None
  segmenter, test, result, start = evaluated
  images = test["image"][:pictures]
  path = workdir / "fcn_triptychs.png"
  viz.save_segmentation_triptychs(path, images, test["mask"][:pictures],
                                  segmenter.segment(images, batch_size=8),
                                  class_names=segmenter.class_names,
                                  title=f"{segmenter.spec.model} on new test scenes: input, "
                                        f"ground truth, prediction")
  print(f"FCN on {num_scenes} new test scenes: mIoU {result['miou']:.3f} (the book's, per "
        f"image; {result['dataset_miou']:.3f} over all pixels), pixel accuracy "
        f"{100 * result['pixel_accuracy']:.2f}% ({time.perf_counter() - start:.1f} s). "
        f"Wrote {path}")
  return result


def generative_example(workdir: pathlib.Path, data_dir: str | None) -> None:
  """One small result of each generative family (well under a minute)."""
  # pylint: disable=import-outside-toplevel
  from jaxvision import dream, gan, style
  print("\n== Generative models and image optimisation ==")
  t = time.perf_counter()
  warm = gan.train_gaussian_gan(steps=3000, learning_rate=3e-3)
  path = workdir / "gan_gaussian.png"
  viz.save_line_plot(path, {"real N(4, 1.25^2)": (warm.grid, warm.real_density),
                            "generated (step 3000)": (warm.grid, warm.fake_density[-1])},
                     xlabel="x", ylabel="density", title="1-D GAN: linear generator vs MLP")
  print(f"1-D GAN: generated mean {warm.mean[-1]:.2f}, std {warm.std[-1]:.2f} (target 4, 1.25) "
        f"in {time.perf_counter() - t:.1f} s. Wrote {path}")
  gen = gan.Generator.load(RESULTS / "dcgan_cpu_generator.msgpack")
  feature_net = gan.FeatureNet.load(RESULTS / "mnist_features_weights.msgpack")
  path = gan.sample_grid(gen, workdir / "dcgan_samples.png", feature_net=feature_net,
                         title="DCGAN (committed cpu weights): 64 samples")
  print(f"DCGAN: 64 samples of the committed generator (python -m experiments.dcgan trains it)."
        f" Wrote {path}")
  try:
    test, _ = load_mnist("test", data_dir=data_dir)
    train, _ = load_mnist("train", data_dir=data_dir)
  except (FileNotFoundError, ValueError) as e:
    print(f"MNIST not found ({e}); skipping the Frechet distance and DeepDream.")
    test = None
  if test is not None:
    rep = gan.generator_report(gen.sample(2000, seed=1), test, train[:2000], feature_net)
    print(f"DCGAN Frechet distance on the feature net's features, 2000 samples: "
          f"{rep['frechet_distance']:.1f} (floor, 2000 training images: {rep['floor']:.1f}); "
          f"smallest class {100 * rep['min_class_fraction']:.1f}%")
    fn = dream.layer_feature_fn(feature_net.model, feature_net.variables, activation=jax.nn.relu,
                                features="conv")
    digit = np.repeat(np.kron(test[0], np.ones((2, 2), np.uint8))[..., None], 1, -1)
    out, recs = dream.deepdream(digit, fn, dream.DreamConfig(layers=("conv1a", "conv1b"),
                                                             octaves=2, octave_scale=1.4,
                                                             steps=10, step_size=0.01,
                                                             max_shift=4))
    path = workdir / "deepdream.png"
    viz.save_image_grid(path, np.stack([[digit / 255.0, out]]), col_labels=["test digit",
                                                                              "dreamed"],
                        title="DeepDream on the MNIST classifier (conv1a + conv1b)",
                        cell_inches=2.0)
    print("DeepDream: objective per octave " + ", ".join(
        f"{r['start']:.3f}->{r['end']:.3f}" for r in recs) + f". Wrote {path}")
  try:
    from skimage import data as skdata
  except ImportError:
    print("scikit-image not installed; skipping style transfer.")
    return
  content = style.resize_image(skdata.chelsea()[:, 75:375], (96, 96))
  brick = style.resize_image(skdata.brick(), (96, 96))
  fn, names = style.segmenter_feature_fn(RESULTS / "fcn_cpu_weights.msgpack")
  image, hist = style.style_transfer(content, brick, fn, style.StyleConfig(
      optimizer="lbfgs", steps=20, content_layer=names[-1], style_layers=tuple(names)))
  path = workdir / "style_transfer.png"
  viz.save_image_grid(path, np.stack([[content, brick, image]]), title="Style transfer "
                      "(small: the FCN backbone's features, 20 L-BFGS steps)",
                      col_labels=["content", "style", "result"], cell_inches=2.0)
  print(f"Style transfer: loss {hist['total'][0]:.2f} -> {hist['total'][-1]:.2f}. Wrote {path}. "
        f"The default recipe (random VGG-19, 160 px, about 5 minutes): python -m "
        f"experiments.style_transfer --workdir runs/style")
  print(f"generative examples: {time.perf_counter() - t:.1f} s")


def sequence_example(workdir: pathlib.Path, data_dir: str | None) -> None:
  """The committed sequential-MNIST TCN on test digits; text CNN vs bag of words."""
  from jaxvision import sequence, text  # pylint: disable=import-outside-toplevel
  from jaxvision.classification import Classifier, evaluate_classifier  # pylint: disable=import-outside-toplevel
  from jaxvision.data import MnistSource  # pylint: disable=import-outside-toplevel
  t = time.perf_counter()
  print("\n== Sequence models ==")
  try:
    test = MnistSource("test", data_dir=data_dir)
    clf = Classifier.load(RESULTS / "seq_mnist_weights.msgpack")
    images, labels = test.arrays["image"][:2000], test.arrays["label"][:2000]
    acc = evaluate_classifier(clf, {"image": images, "label": labels})["accuracy"]
    path = sequence.save_sequential_mnist_figure(workdir / "seq_mnist_reading.png", clf,
                                                 images, labels)
    print(f"Sequential MNIST (784 pixels one at a time, a 78k-parameter dilated causal TCN): "
          f"{acc:.4f} on 2000 test digits. Wrote {path}.")
  except (FileNotFoundError, ValueError) as e:
    print(f"MNIST or the TCN weights not found ({e}); skipping sequential MNIST.")
  train, test_text, fields = text.experiment_data({"dataset": "negation", "train": 4000,
                                                   "test": 1000, "length": 24})
  fields = dict(fields)
  attributes = fields.pop("attributes")
  for model in ("TextCNN", "BagOfWords"):
    spec = sequence.InputsSpec(model=model, attributes={**attributes, "embed_dim": 32},
                               **fields)
    cfg = sequence.SequenceConfig(model=model, steps=300, batch_size=64, learning_rate=3e-3,
                                  checkpoint_every=0, log_every=300)
    run_dir = workdir / f"text_{model}"
    shutil.rmtree(run_dir, ignore_errors=True)
    clf, _ = sequence.train_inputs_classifier(spec, train, test_text, cfg, run_dir)
    ev = sequence.evaluate_inputs_classifier(clf, test_text, group="kind")
    path = text.save_text_report(workdir / f"text_{model}.png", clf, test_text)
    print(f"{model}: accuracy {ev['accuracy']:.3f}; per kind " + ", ".join(
        f"{k} {v:.3f}" for k, v in ev["group_accuracy"].items()) + f". Wrote {path}.")
  print("(contrast sentences hold the same words for both labels: a bag of words cannot beat "
        "0.5 on them)")
  print(f"sequence examples: {time.perf_counter() - t:.1f} s")


def make_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="python -m experiments.demo", description=__doc__,
                              formatter_class=experiment.HelpFormatter)
  p.add_argument("--workdir", type=pathlib.Path, default=pathlib.Path("demo_out"),
                 help="where the PNGs, the benchmark tables and the IIC run go")
  p.add_argument("--data-dir", default=experiment.default_data_dir(),
                 help="directory with the MNIST IDX files")
  p.add_argument("--steps", type=int, default=180, help="IIC training steps")
  return p


def main(argv=None) -> None:
  args = make_parser().parse_args(argv)
  args.workdir.mkdir(parents=True, exist_ok=True)
  start = time.perf_counter()
  print(f"jaxvision demo on {jax.devices()[0].platform.upper()} ({jax.device_count()} "
        f"device(s))")
  nms_example(args.workdir)
  timing_table(args.workdir)
  iic_example(args.workdir, args.data_dir, steps=args.steps)
  detection_example(args.workdir, args.data_dir)
  segmentation_example(args.workdir, args.data_dir)
  generative_example(args.workdir, args.data_dir)
  sequence_example(args.workdir, args.data_dir)
  print(f"\ndemo finished in {time.perf_counter() - start:.1f} s; outputs in {args.workdir}/")


if __name__ == "__main__":
  main()
