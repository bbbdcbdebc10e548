"""`make demo`: what jaxvision does today, offline, in a few minutes on 2 CPU cores.

1. Detector-like boxes on a generated image, before and after NMS and soft-NMS -> PNG.
2. The benchmark suite's quick run (`python -m benchmarks.run --quick`): jaxvision against
   the NumPy oracles, and torchvision / TensorFlow when installed (`make bench-install`).
3. A short IIC run on MNIST (no labels; about two minutes) that prints its test accuracy,
   when MNIST is found: ``--mnist-dir``, ``$JAXVISION_DATA_DIR`` or ``../shared/data/mnist``.
4. Detection: the committed SSD weights (``experiments/results/ssd_cpu_weights.msgpack``,
   trained by ``python -m experiments.ssd --train``, see ``experiments/results/ssd.md``) on
   fresh test scenes of MNIST test digits: jitted inference + NMS on batches of 8, the book's
   metrics and mAP, and a PNG of the detections.
5. Segmentation: the committed FCN weights (``experiments/results/fcn_cpu_weights.msgpack``,
   trained by ``python -m experiments.fcn --train``) on fresh test scenes: the book's mIoU and
   pixel accuracy, and input / ground truth / prediction triptychs.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import shutil
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxvision import ops


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


def nms_example(out: pathlib.Path) -> None:
  image, gt = make_scene()
  boxes, scores = detector_proposals(gt)
  n = len(boxes)
  idx, count = ops.nms(boxes, scores, iou_threshold=0.5, max_output_size=n,
                       score_threshold=0.3)
  kept = np.asarray(idx)[: int(count)]
  s_idx, s_scores, s_count = ops.soft_nms(boxes, scores, sigma=0.5, score_threshold=0.3,
                                          max_output_size=n)
  s_kept = np.asarray(s_idx)[: int(s_count)]
  path = out / "nms.png"
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


def timing_table(out: pathlib.Path) -> None:
  """The benchmark suite's quick run: same inputs for every implementation, interleaved."""
  from benchmarks import run
  run.main(["--quick", "--out", str(out / "bench")])


def _find_mnist(explicit: str | None) -> str | None:
  from jaxvision.data import mnist  # pylint: disable=import-outside-toplevel
  candidates = [explicit, os.environ.get(mnist.ENV_VAR),
                str(pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist")]
  for c in candidates:
    if c and (mnist._find_files(c, "train") is not None):  # pylint: disable=protected-access
      return c
  return None


def iic_example(out: pathlib.Path, mnist_dir: str | None, steps: int = 180) -> float | None:
  """A short IIC run (the `cpu` recipe, ``steps`` steps) on MNIST; returns the accuracy."""
  print("\n== IIC: clustering MNIST without labels ==")
  data_dir = _find_mnist(mnist_dir)
  if data_dir is None:
    print("MNIST not found: pass --mnist-dir DIR or set JAXVISION_DATA_DIR to a directory "
          "with the IDX files; skipping the IIC example.")
    return None
  from experiments import iic_mnist  # pylint: disable=import-outside-toplevel
  workdir = out / "iic"
  shutil.rmtree(workdir, ignore_errors=True)  # a fresh run each time, not a resume
  cfg = dataclasses.replace(iic_mnist.CONFIGS["cpu"], num_steps=max(int(steps), 1),
                            eval_every=0, checkpoint_every=0, log_every=30)
  results = iic_mnist.run("cpu", config=cfg, data_dir=data_dir, workdir=str(workdir),
                          progress=False)
  acc = results["test_accuracy"]
  print(f"IIC after {steps} steps ({results['wall_seconds']} s): test accuracy {acc:.4f} "
        f"(lowest-loss head), best head {results['best_head_accuracy']:.4f}; "
        f"confusion matrix in {workdir}/confusion.png. The full recipe: "
        f"python -m experiments.iic_mnist --config cpu --data-dir {data_dir} --workdir DIR")
  return acc


SSD_WEIGHTS = pathlib.Path(__file__).resolve().parent / "results" / "ssd_cpu_weights.msgpack"


def detection_example(out: pathlib.Path, mnist_dir: str | None, num_scenes: int = 96) -> dict | None:
  """Runs the committed SSD weights on ``num_scenes`` test scenes; returns the metrics."""
  print("\n== SSD: detecting digits in cluttered scenes ==")
  data_dir = _find_mnist(mnist_dir)
  if data_dir is None or not SSD_WEIGHTS.exists():
    print("MNIST or the SSD weights not found; skipping the detection example.")
    return None
  from experiments import _common, ssd  # pylint: disable=import-outside-toplevel
  from jaxvision.data import load_mnist, scenes  # pylint: disable=import-outside-toplevel
  start = time.perf_counter()
  cfg = ssd.CONFIGS["cpu"]
  opts = ssd.LossOptions(**_common.weights_metadata(SSD_WEIGHTS).get("flags", {}))
  model = ssd.build_model(cfg)
  anchors = ssd.make_anchors(model, cfg)
  scene_cfg = scenes.SceneConfig(image_size=cfg.image_size, digit_size=cfg.digit_size,
                                 num_digits=cfg.num_digits)
  # Scenes past the experiment's 500 test scenes: never seen during model selection.
  test = scenes.generate_scenes(*load_mnist("test", data_dir=data_dir), num_scenes,
                                config=scene_cfg, seed=1, start=10_000)
  def init(rng):
    variables = model.init(rng, jnp.zeros((1,) + cfg.image_size + (3,)), train=False)
    return variables["params"], variables["batch_stats"]

  params, batch_stats = _common.load_weights_for(SSD_WEIGHTS, init)
  predict = ssd.make_predict(model, anchors, cfg, opts, class_threshold=cfg.class_threshold)
  predict_map = ssd.make_predict(model, anchors, cfg, opts,
                                 class_threshold=cfg.map_class_threshold)
  gt = ssd._ground_truth(test)  # pylint: disable=protected-access
  result = ssd.evaluate_detections(
      ssd.detect_all(predict, params, batch_stats, test["image"]),
      ssd.detect_all(predict_map, params, batch_stats, test["image"]), gt)
  path = out / "ssd_detections.png"
  ssd.write_detections_png(path, predict, params, batch_stats, test)
  print(f"SSD ({opts.name}) on {num_scenes} new test scenes: mAP@0.5 {result['map50']:.3f}, "
        f"COCO mAP {result['map']:.3f}, book precision {result['precision']:.3f} / recall "
        f"{result['recall']:.3f} / mIoU {result['miou']:.3f} "
        f"({time.perf_counter() - start:.1f} s). Wrote {path}")
  return result


FCN_WEIGHTS = pathlib.Path(__file__).resolve().parent / "results" / "fcn_cpu_weights.msgpack"


def segmentation_example(out: pathlib.Path, mnist_dir: str | None,
                         num_scenes: int = 48) -> dict | None:
  """Runs the committed FCN weights on ``num_scenes`` test scenes; returns the metrics."""
  print("\n== FCN: segmenting digits pixel by pixel ==")
  data_dir = _find_mnist(mnist_dir)
  if data_dir is None or not FCN_WEIGHTS.exists():
    print("MNIST or the FCN weights not found; skipping the segmentation example.")
    return None
  from experiments import _common, _segmentation  # pylint: disable=import-outside-toplevel
  from jaxvision.data import load_mnist, scenes  # pylint: disable=import-outside-toplevel
  start = time.perf_counter()
  cfg = _segmentation.CONFIGS["fcn"]["cpu"]
  model = _segmentation.build_model("fcn", cfg)
  scene_cfg = scenes.SceneConfig(image_size=cfg.image_size, digit_size=cfg.digit_size,
                                 num_digits=cfg.num_digits)
  test = scenes.generate_scenes(*load_mnist("test", data_dir=data_dir), num_scenes,
                                config=scene_cfg, seed=1, start=10_000)
  params, batch_stats = _common.load_weights_for(FCN_WEIGHTS, _segmentation.make_init(model, cfg))
  predict = _segmentation.make_predict(model)
  pred = _segmentation.predict_all(predict, params, batch_stats, test["image"], batch=8)
  result = _segmentation.evaluate_masks(test["mask"], pred)
  path = out / "fcn_triptychs.png"
  _segmentation.save_triptychs(path, test["image"][:4], test["mask"][:4], pred[:4])
  print(f"FCN on {num_scenes} new test scenes: mIoU {result['miou']:.3f} (the book's, per "
        f"image), pixel accuracy {100 * result['pixel_accuracy']:.2f}% "
        f"({time.perf_counter() - start:.1f} s). Wrote {path}")
  return result


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("demo_out"))
  p.add_argument("--mnist-dir", default=None, help="directory with the MNIST IDX files")
  p.add_argument("--iic-steps", type=int, default=180)
  args = p.parse_args(argv)
  args.out.mkdir(parents=True, exist_ok=True)
  start = time.perf_counter()
  print(f"jaxvision demo on {jax.devices()[0].platform.upper()} ({jax.device_count()} device(s))")
  nms_example(args.out)
  timing_table(args.out)
  iic_example(args.out, args.mnist_dir, steps=args.iic_steps)
  detection_example(args.out, args.mnist_dir)
  segmentation_example(args.out, args.mnist_dir)
  print(f"\ndemo finished in {time.perf_counter() - start:.1f} s; outputs in {args.out}/")


if __name__ == "__main__":
  main()
