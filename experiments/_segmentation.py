"""Semantic segmentation of digit scenes, shared by ``experiments.fcn``, ``.segnet``, ``.unet``.

The source book (Atienza ch. 12) segments photographs of drinks with an FCN; here the offline
stand-in is :mod:`jaxvision.data.scenes`: RGB scenes of real MNIST digits on a cluttered
background with exact per-pixel masks, 11 classes (background and the digits 0-9). Train
scenes use the MNIST training digits, test scenes the test digits.

* Model: one of :mod:`jaxvision.models.fcn` / ``segnet`` / ``unet`` (``--config`` picks the
  variant: ``cpu`` the small one, ``book`` the full-size one, ``tiny`` the test one); every
  model returns logits, and the softmax is part of the loss.
* Loss: pixel-wise softmax cross-entropy averaged over the pixels of the batch (the book's
  ``categorical_crossentropy`` on a softmax output).
* Optimizer: Adam 1e-3 with the book's step decays scaled to the step budget
  (``schedule="book"``: x0.5 after 40 %, x0.1 after 60 %, x0.05 after 80 % of the steps, as
  the book's x0.5 / x0.1 / x0.05 after epochs 40 / 60 / 80 of 100), or ``"cosine"``.
* Training: the shared loop (:func:`jaxvision.train.train_and_evaluate`: checkpoints every
  ``checkpoint_every`` steps, automatic resume, ``metrics.jsonl``); the final weights are
  also written to ``<workdir>/weights.msgpack``.
* Evaluation on the test scenes, two families of numbers
  (:mod:`jaxvision.metrics.segmentation`): the book's — per-image mIoU over the classes
  present in the image's ground truth (background included) and per-image pixel accuracy,
  averaged over the images (``miou``, ``pixel_accuracy``) — and the dataset-level ones from
  one confusion matrix over all test pixels (``dataset_miou``, ``per_class_iou``,
  ``dataset_pixel_accuracy``).
* Figures: ``<workdir>/triptychs.png`` (and ``--image-file``): test scenes as rows of input
  / ground truth / prediction, one fixed colour per class
  (:func:`jaxvision.data.scenes.class_colours`), as the book's figure 12.5.3.
* Results: ``<workdir>/results.json``; ``--record`` appends a run to
  ``experiments/results/segmentation.json``.

Configs (``--config``), the same data for the three families:

* ``cpu``: 120 x 160 scenes (1-6 digits of 20-60 % of the short side), 3000 train and 500
  test scenes, batch 8, the small variant, Adam 5e-3 (a short budget; see ``_configs``)
  with the book's step decays, a step budget of about 8 minutes of training on 2 CPU cores
  (per family, from measured steps/s; see ``CPU_STEPS``).
* ``book``: the book's recipe at its scale: 480 x 640 scenes, 1000 train / 100 test scenes,
  batch 4, 100 epochs (25,000 steps), the full-size variant (the book's FCN on ResNet56v2;
  the papers' SegNet and U-Net). An accelerator run.
* ``tiny``: 32 x 40 scenes, a few dozen, the tiny variants, 3 steps (smoke tests).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from PIL import Image, ImageDraw

from experiments import _common
from jaxvision import metrics, models
from jaxvision.data import ArraySource, scenes
from jaxvision.train import (Task, TrainConfig, TrainState, data_mesh, replicated_sharding,
                             write_results)

NUM_CLASSES = len(scenes.CLASS_NAMES)  # background + 10 digits
RESULTS_FILE = _common.RESULTS_DIR / "segmentation.json"
TRIPTYCH_FILE = "triptychs.png"


@dataclasses.dataclass(frozen=True)
class SegConfig:
  """One segmentation recipe: scene data, model size, schedule."""

  model: str = "small"  # "small", "book" or "tiny": the family's variant
  image_size: tuple[int, int] = (120, 160)
  digit_size: tuple[float, float] = (0.2, 0.6)
  num_digits: tuple[int, int] = (1, 6)
  train_scenes: int = 3000
  test_scenes: int = 500
  batch_size: int = 8
  num_steps: int = 600
  learning_rate: float = 1e-3
  schedule: str = "book"  # "book" (x0.5 / x0.1 / x0.05 at 40 / 60 / 80 %) or "cosine"
  eval_every: int = 0
  checkpoint_every: int = 200
  log_every: int = 25
  eval_batch_size: int = 10
  triptychs: int = 6  # test scenes in the PNG


_MODELS = {
    "fcn": {"small": models.FCNSmall, "book": models.FCNBook, "tiny": models.FCNTiny},
    "segnet": {"small": models.SegNetSmall, "book": models.SegNet, "tiny": models.SegNetTiny},
    "unet": {"small": models.UNetSmall, "book": models.UNet, "tiny": models.UNetTiny},
}
FAMILIES = tuple(_MODELS)

# Training steps of the cpu config: about 8 minutes at the steps/s measured with the training
# loop on the 2-core CPU (batch 8, 120 x 160) while one other training run shared it:
# FCNSmall 1.2, SegNetSmall 2.65, UNetSmall 1.13 (about half that with three runs at once).
CPU_STEPS = {"fcn": 600, "segnet": 1200, "unet": 560}


def _configs(family: str) -> dict[str, SegConfig]:
  return {
      # Adam 5e-3 rather than the book's 1e-3: with 1e-3 the first ~100 of a few hundred
      # steps go to learning the class prior (loss after 100 steps of 8 scenes, 1e-3 vs
      # 5e-3: FCNSmall 0.19 vs 0.13, SegNetSmall 1.13 vs 0.17, UNetSmall 0.85 vs 0.15).
      "cpu": SegConfig(num_steps=CPU_STEPS[family], learning_rate=5e-3),
      "book": SegConfig(model="book", image_size=(480, 640), digit_size=(0.12, 0.6),
                        num_digits=(1, 8), train_scenes=1000, test_scenes=100, batch_size=4,
                        num_steps=25000, checkpoint_every=1000, log_every=100,
                        eval_batch_size=4),
      "tiny": SegConfig(model="tiny", image_size=(32, 40), digit_size=(0.4, 0.8),
                        num_digits=(1, 2), train_scenes=16, test_scenes=6, batch_size=4,
                        num_steps=3, checkpoint_every=2, log_every=1, eval_batch_size=4,
                        triptychs=3),
  }


CONFIGS: dict[str, dict[str, SegConfig]] = {family: _configs(family) for family in FAMILIES}


def build_model(family: str, cfg: SegConfig):
  return _MODELS[family][cfg.model](num_classes=NUM_CLASSES)


def model_name(family: str, cfg: SegConfig) -> str:
  """The variant's public name, e.g. ``"FCNSmall"``."""
  for name in models.__all__:
    if getattr(models, name) is _MODELS[family][cfg.model]:
      return name
  return f"{family}-{cfg.model}"


def learning_rate(cfg: SegConfig):
  """Adam's learning rate: the book's step decays scaled to ``num_steps``, or cosine."""
  if cfg.schedule == "book":
    n = cfg.num_steps
    # piecewise_constant_schedule multiplies the scales up: 0.5, 0.5 * 0.2, 0.1 * 0.5.
    return optax.piecewise_constant_schedule(
        cfg.learning_rate, {int(0.4 * n): 0.5, int(0.6 * n): 0.2, int(0.8 * n): 0.5})
  if cfg.schedule == "cosine":
    return optax.cosine_decay_schedule(cfg.learning_rate, cfg.num_steps)
  raise ValueError(f"`schedule` must be 'book' or 'cosine', got {cfg.schedule!r}.")


def _images(x):
  return x.astype(jnp.float32) / 255.0


def pixel_loss(logits, labels):
  """Mean pixel-wise softmax cross-entropy: ``logits [B, H, W, C]``, ``labels [B, H, W]``."""
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels.astype(jnp.int32))
  return jnp.mean(ce)


def make_data(cfg: SegConfig, data_dir: str | None, *, digits=None):
  """``(train_arrays, test_arrays)``: ``{"image", "mask"}`` of the train and test scenes.

  ``digits``: optional ``{"train": (images, labels), "test": (...)}`` digit pools instead
  of MNIST (tests)."""
  scene_cfg = scenes.SceneConfig(image_size=cfg.image_size, digit_size=cfg.digit_size,
                                 num_digits=cfg.num_digits)
  out = []
  for split, n in (("train", cfg.train_scenes), ("test", cfg.test_scenes)):
    source = scenes.SceneSource(split, n, data_dir=data_dir, config=scene_cfg,
                                digits=None if digits is None else digits[split])
    out.append({k: source.arrays[k] for k in ("image", "mask")})
  return tuple(out)


def make_predict(model):
  """A jitted ``(params, batch_stats, images uint8 [B, H, W, 3]) -> uint8 [B, H, W]``."""

  @jax.jit
  def predict(params, batch_stats, images):
    logits = model.apply({"params": params, "batch_stats": batch_stats}, _images(images),
                         train=False)
    return jnp.argmax(logits, axis=-1).astype(jnp.uint8)

  return predict


def predict_all(predict, params, batch_stats, images, *, batch: int) -> np.ndarray:
  """``[N, H, W]`` predicted classes, in jitted batches of ``batch`` (the last one padded)."""
  out = []
  for i in range(0, len(images), batch):
    chunk = images[i:i + batch]
    n = len(chunk)
    if n < batch:
      chunk = np.concatenate([chunk, np.zeros((batch - n,) + chunk.shape[1:], chunk.dtype)])
    out.append(np.asarray(predict(params, batch_stats, chunk))[:n])
  return np.concatenate(out)


def evaluate_masks(labels, predictions) -> dict[str, Any]:
  """The book's per-image numbers and the dataset-level ones (see the module docstring)."""
  book = metrics.book_segmentation_summary(labels, predictions, num_classes=NUM_CLASSES)
  cm = metrics.confusion_matrix(labels, predictions, num_classes=NUM_CLASSES)
  dataset = metrics.segmentation_metrics_from_confusion(cm)
  return {"miou": book["miou"], "pixel_accuracy": book["pixel_accuracy"],
          "dataset_miou": dataset["miou"],
          "dataset_pixel_accuracy": dataset["pixel_accuracy"],
          "per_class_iou": dataset["per_class_iou"]}


def make_init(model, cfg: SegConfig):
  """``init(rng) -> (params, batch_stats)``: the model's random initialisation.

  The parameters are drawn with an ``"rbg"`` key (XLA's RngBitGenerator) made from bits of
  ``rng``: still a deterministic function of the seed, but XLA:CPU compiles it about 10x
  faster than the default threefry key's init of these conv nets (measured 1.8 s vs 18.7 s
  for ``UNetTiny`` on a loaded 2-core CPU), which dominated the short runs and tests. The
  draws may differ between backends (the usual caveat of ``rbg``).
  """

  def init(rng):
    key = jax.random.wrap_key_data(jax.random.bits(rng, (4,), jnp.uint32), impl="rbg")
    x = jnp.zeros((1,) + tuple(cfg.image_size) + (3,), jnp.float32)
    variables = model.init(key, x, train=False)
    return variables["params"], variables.get("batch_stats", {})

  return init


def _constant_init(weights):
  def init(rng):
    del rng
    return jax.tree.map(jnp.asarray, weights)

  return init


def make_task(family: str, cfg: SegConfig, data_dir: str | None, *, digits=None,
              initial_weights=None) -> tuple[Task, dict[str, Any]]:
  """The segmentation :class:`~jaxvision.train.Task` and what evaluation needs.

  ``initial_weights``: optional ``(params, batch_stats)`` to start from instead of a random
  initialisation (``--train --restore-weights``)."""
  if family not in _MODELS:
    raise ValueError(f"`family` must be one of {FAMILIES}, got {family!r}.")
  model = build_model(family, cfg)
  train_arrays, test_arrays = make_data(cfg, data_dir, digits=digits)
  if initial_weights is None:
    init = make_init(model, cfg)
  else:
    init = _constant_init(jax.device_get(initial_weights))

  def loss_fn(params, batch_stats, batch, rng):
    del rng
    logits, updates = model.apply({"params": params, "batch_stats": batch_stats},
                                  _images(batch["image"]), train=True, mutable=["batch_stats"])
    labels = batch["mask"].astype(jnp.int32)
    accuracy = jnp.mean(jnp.argmax(logits, axis=-1) == labels)
    return pixel_loss(logits, labels), ({"pixel_accuracy": accuracy}, updates["batch_stats"])

  def train_iter(seed, batch_size):
    return _common.process_local_pipeline(ArraySource(train_arrays), batch_size=batch_size,
                                          seed=seed)

  predict = make_predict(model)

  def predict_test(params, batch_stats):
    return predict_all(predict, params, batch_stats, test_arrays["image"],
                       batch=cfg.eval_batch_size)

  def evaluate(state):
    return evaluate_masks(test_arrays["mask"], predict_test(state.params, state.batch_stats))

  extras = {"model": model, "predict": predict, "predict_test": predict_test,
            "test": test_arrays}
  task = Task(init=init, loss_fn=loss_fn, optimizer=optax.adam(learning_rate(cfg)),
              train_iter=train_iter, evaluate=evaluate)
  return task, extras


# ---------------------------------------------------------------------------------------------
# Figures.


def save_triptychs(path: str | os.PathLike, images, labels, predictions, *,
                   num_classes: int = NUM_CLASSES, class_names=scenes.CLASS_NAMES,
                   scale: int | None = None) -> None:
  """Writes rows of input / ground truth / prediction, one fixed colour per class, as a PNG.

  Args:
    path: the PNG file (its directory is created).
    images: ``[N, H, W, 3]`` uint8 scenes.
    labels: ``[N, H, W]`` ground-truth classes.
    predictions: ``[N, H, W]`` predicted classes.
    num_classes: colours to use (:func:`jaxvision.data.scenes.class_colours`).
    class_names: names for the legend under the rows.
    scale: integer nearest-neighbour magnification; None picks one that makes the tiles at
      least 120 pixels wide.
  """
  images, labels, predictions = (np.asarray(a) for a in (images, labels, predictions))
  if images.ndim != 4 or images.shape[-1] != 3 or labels.shape != images.shape[:3] or (
      predictions.shape != labels.shape):
    raise ValueError(f"`images` [N, H, W, 3], `labels` and `predictions` [N, H, W] expected, "
                     f"got {images.shape}, {labels.shape}, {predictions.shape}.")
  colours = scenes.class_colours(num_classes)
  h, w = images.shape[1:3]
  scale = max(1, -(-120 // w)) if scale is None else int(scale)
  gap, header, swatch = 4, 16, 14
  th, tw = h * scale, w * scale
  legend_rows = -(-num_classes // 6)
  width = 3 * tw + 4 * gap
  height = header + len(images) * (th + gap) + gap + legend_rows * (swatch + 4) + 4
  canvas = Image.new("RGB", (max(width, 6 * 60), height), (255, 255, 255))
  draw = ImageDraw.Draw(canvas)
  for col, title in enumerate(("input", "ground truth", "prediction")):
    draw.text((gap + col * (tw + gap) + 2, 2), title, fill=(0, 0, 0))
  for row, (img, lab, pred) in enumerate(zip(images, labels, predictions)):
    top = header + row * (th + gap)
    for col, tile in enumerate((img.astype(np.uint8), colours[lab.astype(np.int64) % len(
        colours)], colours[pred.astype(np.int64) % len(colours)])):
      tile = np.repeat(np.repeat(tile, scale, axis=0), scale, axis=1)
      canvas.paste(Image.fromarray(tile), (gap + col * (tw + gap), top))
  top = header + len(images) * (th + gap) + gap
  for c in range(num_classes):
    r, q = divmod(c, 6)
    x, y = gap + q * 60, top + r * (swatch + 4)
    draw.rectangle([x, y, x + swatch, y + swatch], fill=tuple(int(v) for v in colours[c]),
                   outline=(128, 128, 128))
    name = class_names[c] if c < len(class_names) else str(c)
    draw.text((x + swatch + 3, y + 1), "bg" if name == "background" else name, fill=(0, 0, 0))
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  canvas.save(path)


# ---------------------------------------------------------------------------------------------
# Weights.


def _checkpoint_dir(path: pathlib.Path) -> tuple[pathlib.Path, int | None] | None:
  """``(orbax directory, step or None)`` for a workdir, its ``checkpoints/`` or a step dir."""
  if (path / "checkpoints").is_dir():
    return path / "checkpoints", None
  if path.is_dir() and path.name.isdigit() and (path / "state").is_dir():
    return path.parent, int(path.name)
  if path.is_dir() and any(p.name.isdigit() for p in path.iterdir()):
    return path, None
  return None


def load_weights(path: str | os.PathLike, init, optimizer) -> tuple[Any, Any]:
  """``(params, batch_stats)`` from ``path``.

  ``path`` is a ``weights.msgpack``, a workdir holding one, or -- for a run stopped before it
  wrote one -- a workdir with orbax checkpoints, its ``checkpoints/`` directory (the latest
  step) or one step directory in it. ``init`` (``rng -> (params, batch_stats)``) and
  ``optimizer`` give the structure to restore into (the checkpoint holds the optimizer
  state too); they are only traced (``jax.eval_shape``), never compiled or run.
  """
  path = pathlib.Path(path)
  key = jax.random.key(0)
  params, batch_stats = jax.eval_shape(init, key)
  try:
    return _common.load_weights(path, params, batch_stats)
  except FileNotFoundError:
    found = _checkpoint_dir(path) if path.is_dir() else None
    if found is None:
      raise
  import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
  directory, step = found
  replicated = replicated_sharding(data_mesh())
  target = jax.eval_shape(lambda k: TrainState.create(
      params=params, batch_stats=batch_stats, tx=optimizer, rng=k), key)
  target = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=replicated),
                        target)
  manager = ocp.CheckpointManager(directory.resolve(), item_names=("state", "data_iter"))
  try:
    step = manager.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"no {_common.WEIGHTS_FILE} and no committed checkpoint in "
                              f"{str(path)!r}.")
    restored = manager.restore(
        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))
  finally:
    manager.close()
  return restored["state"].params, restored["state"].batch_stats


# ---------------------------------------------------------------------------------------------
# Runs.


def run(family: str, config_name: str, *, data_dir: str | None, workdir: str,
        train: bool = True, restore_weights: str | None = None,
        image_file: str | None = None, steps: int | None = None, seed: int = 0,
        progress: bool | None = None, record: str | None = None,
        config: SegConfig | None = None, digits=None) -> dict[str, Any]:
  """Trains and evaluates (``train=True``) or only evaluates one configuration.

  ``train=True`` trains in ``workdir`` (resuming from its checkpoints; ``restore_weights``
  then only sets the starting point of a fresh run), evaluates, writes
  ``weights.msgpack``; ``train=False`` evaluates ``restore_weights`` (default: the weights
  in ``workdir``). Either way the results go to ``<workdir>/results.json``, the triptychs to
  ``<workdir>/triptychs.png`` and ``image_file``; ``record`` appends a run that trained to
  that results file. Returns the results dict.
  """
  start = time.time()
  if family not in CONFIGS:
    raise ValueError(f"`family` must be one of {FAMILIES}, got {family!r}.")
  if config is None and config_name not in CONFIGS[family]:
    raise ValueError(f"`config` must be one of {sorted(CONFIGS[family])}, got "
                     f"{config_name!r}.")
  cfg = CONFIGS[family][config_name] if config is None else config
  if steps is not None:
    cfg = dataclasses.replace(cfg, num_steps=steps)
  os.makedirs(workdir, exist_ok=True)
  random_init = make_init(build_model(family, cfg), cfg)
  tx = optax.adam(learning_rate(cfg))
  initial = None
  if train and restore_weights is not None:
    initial = load_weights(restore_weights, random_init, tx)
  task, extras = make_task(family, cfg, data_dir, digits=digits, initial_weights=initial)
  if train:
    train_cfg = TrainConfig(num_steps=cfg.num_steps, batch_size=cfg.batch_size, seed=seed,
                            checkpoint_every=cfg.checkpoint_every, log_every=cfg.log_every,
                            eval_every=cfg.eval_every, progress=progress)
    params, batch_stats, results = _common.train_and_save(train_cfg, workdir, task)
    ev = results.get("eval", {})
    steps_done = results.get("final_step")
  else:
    source = workdir if restore_weights is None else restore_weights
    params, batch_stats = load_weights(source, random_init, tx)
    ev = dict(task.evaluate(_common.EvalState(params, batch_stats)))
    results = {"eval": ev, "restored_from": str(source)}
    steps_done = None
  trained_steps = (results.get("final_step") or 0) - (results.get("resumed_from_step") or 0)
  results.update({
      "model": model_name(family, cfg),
      "family": family,
      "config": config_name,
      "seg_config": dataclasses.asdict(cfg),
      "params": models.count_params(params),
      "image_size": list(cfg.image_size),
      "steps": steps_done,
      "epochs": (round(steps_done * cfg.batch_size / cfg.train_scenes, 2)
                 if steps_done is not None else None),
      "evaluated_on": f"{cfg.test_scenes} test scenes (MNIST test digits), {NUM_CLASSES} "
                      "classes",
      **{k: ev.get(k) for k in ("miou", "pixel_accuracy", "dataset_miou",
                                "dataset_pixel_accuracy", "per_class_iou")},
      "command": _common.command_line(),
      # Training adds up the time of every (resumed) invocation; an evaluation is on its own.
      "wall_seconds": round(_common.cumulative_wall_seconds(workdir, time.time() - start)
                            if train else time.time() - start, 1),
      "machine": _common.machine(),
  })
  write_results(workdir, results)
  if jax.process_index() == 0:
    n = min(cfg.triptychs, cfg.test_scenes)
    test = extras["test"]
    preds = predict_all(extras["predict"], params, batch_stats, test["image"][:n],
                        batch=cfg.eval_batch_size)
    for path in {os.path.join(workdir, TRIPTYCH_FILE), image_file} - {None}:
      save_triptychs(path, test["image"][:n], test["mask"][:n], preds)
  if record and train and jax.process_index() == 0 and trained_steps > 0:
    keep = ("model", "miou", "pixel_accuracy", "dataset_miou", "per_class_iou", "params",
            "image_size", "epochs", "steps", "wall_seconds", "command", "machine", "config",
            "dataset_pixel_accuracy", "seg_config", "evaluated_on")
    _common.append_run(record, {k: results.get(k) for k in keep})
  return results


def results_table(runs: list[dict[str, Any]]) -> str:
  """Markdown table of recorded runs (one row each, in file order), with the book's best FCN
  numbers (mIoU 0.91, pixel accuracy 97.9% on its drinks set) as the reference row."""
  lines = ["| model | params | image size | steps (epochs) | mIoU (book, per image) | "
           "pixel accuracy | dataset mIoU | wall (s) |",
           "|---|---|---|---|---|---|---|---|"]
  for r in runs:
    lines.append(
        f"| {r['model']} | {r['params']:,} | {'x'.join(map(str, r['image_size']))} | "
        f"{r['steps']} ({r['epochs']}) | {r['miou']:.3f} | {100 * r['pixel_accuracy']:.2f}% | "
        f"{r['dataset_miou']:.3f} | {r['wall_seconds']} |")
  lines.append("| book FCN (drinks, 4 classes) | | 480x640 | 100 epochs | 0.91 | 97.9% | | |")
  cmds = "\n".join(f"- {r['model']}: `{r['command']}`" for r in runs)
  return "\n".join(lines) + "\n\nCommands:\n\n" + cmds + "\n"


def main(family: str, argv=None, *, description: str | None = None, digits=None):
  """The CLI of one family (``experiments.fcn`` etc.); ``digits`` is for tests."""
  p = argparse.ArgumentParser(description=description)
  mode = p.add_mutually_exclusive_group(required=True)
  mode.add_argument("--train", action="store_true",
                    help="train, then evaluate (resumes in --workdir)")
  mode.add_argument("--evaluate", action="store_true",
                    help="only evaluate --restore-weights (default: --workdir's weights)")
  p.add_argument("--restore-weights", default=None,
                 help="a workdir, weights.msgpack or orbax checkpoint directory to evaluate "
                      "(with --train: to start from)")
  p.add_argument("--data-dir", default=None,
                 help="directory with the MNIST IDX files (default: $JAXVISION_DATA_DIR)")
  p.add_argument("--workdir", required=True, help="checkpoints, logs, results.json, PNGs")
  p.add_argument("--config", default="cpu", choices=sorted(CONFIGS[family]))
  p.add_argument("--num-steps", type=int, default=None, help="override the config's steps")
  p.add_argument("--image-file", default=None,
                 help="also write the input / ground truth / prediction triptychs here")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--record", nargs="?", const=str(RESULTS_FILE), default=None,
                 help="append this run to a results file (default "
                      "experiments/results/segmentation.json)")
  p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
  args = p.parse_args(argv)
  results = run(family, args.config, data_dir=args.data_dir, workdir=args.workdir,
                train=args.train, restore_weights=args.restore_weights,
                image_file=args.image_file, steps=args.num_steps, seed=args.seed,
                progress=args.progress, record=args.record, digits=digits)
  print(f"{results['model']} ({args.config}): mIoU {results['miou']} (book, per image), "
        f"pixel accuracy {results['pixel_accuracy']}, dataset mIoU "
        f"{results['dataset_miou']}, wall {results['wall_seconds']} s")
  return results
