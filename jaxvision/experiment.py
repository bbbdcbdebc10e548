"""The skeleton of every experiment CLI: one flag vocabulary, one run record, one driver.

An experiment is a config per recipe (a frozen dataclass) plus the pieces that differ; this
module does the rest the same way for all of them (flax examples / big_vision style):

* :func:`add_flags` — the shared names: ``--config --steps --batch-size --seed --data-dir
  --dataset --workdir --restore-weights --evaluate --predict --record --distributed
  --progress`` (each where it applies), defaults shown in ``--help``;
* :func:`setup` — ``jax.distributed`` when ``--distributed``, the data directory
  (``$JAXVISION_DATA_DIR``, then ``../shared/data/mnist`` when it exists);
* :func:`finish` — ``<workdir>/results.json`` always, ``--record`` appends to a results file,
  only process 0 writes;
* :class:`PredictorExperiment` / :func:`run_predictor_experiment` — train / evaluate /
  predict of a detector or segmenter, weights written as self-describing files
  (:mod:`jaxvision.weights`) and read back with :class:`~jaxvision.inference.Detector` /
  :class:`~jaxvision.inference.Segmenter`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import pathlib
import platform
import shlex
import sys
import time
from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np

from jaxvision.train.loop import jsonable as _jsonable

__all__ = ["default_data_dir", "machine", "command_line", "append_run",
           "cumulative_wall_seconds", "add_flags", "setup", "finish", "config_overrides",
           "check_against_weights", "PredictorExperiment", "run_predictor_experiment",
           "read_image", "FlagError", "HelpFormatter", "cli_errors", "ClassifierExperiment",
           "run_classifier_experiment", "mnist_sources", "load_weights_spec",
           "classifier_table"]

_MNIST_FILES = ("train-images-idx3-ubyte", "train-images-idx3-ubyte.gz",
                "train-images.idx3-ubyte")


class FlagError(ValueError):
  """A command-line flag that cannot be honoured (a CLI prints it and exits with 2)."""


def default_data_dir() -> str | None:
  """``$JAXVISION_DATA_DIR``, else ``../shared/data/mnist`` (next to the working directory or
  to this checkout) when it holds MNIST, else None."""
  env = os.environ.get("JAXVISION_DATA_DIR")
  if env:
    return env
  roots = [pathlib.Path.cwd().parent, pathlib.Path(__file__).resolve().parents[2]]
  for root in roots:
    d = root / "shared" / "data" / "mnist"
    if any((d / f).exists() for f in _MNIST_FILES):
      return str(d)
  return None


def machine() -> dict[str, Any]:
  """What ran the experiment: CPU model and cores, accelerators, library versions."""
  cpu = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        if line.startswith("model name"):
          cpu = line.split(":", 1)[1].strip()
          break
  except OSError:
    pass
  devices = jax.devices()
  return {"host": platform.node(), "cpu": cpu, "cpu_cores": os.cpu_count(),
          "backend": jax.default_backend(), "devices": [d.device_kind for d in devices],
          "device_count": len(devices), "process_count": jax.process_count(),
          "python": platform.python_version(), "jax": jax.__version__}


def command_line(argv: Sequence[str] | None = None, module: str | None = None) -> str:
  """The command that is running, as a user would type it."""
  argv = sys.argv[1:] if argv is None else list(argv)
  if module is None:
    module = f"experiments.{pathlib.Path(sys.argv[0]).stem}"
  return " ".join(["python", "-m", module] + [shlex.quote(str(a)) for a in argv])


def append_run(path: str | os.PathLike, run: Mapping[str, Any]) -> pathlib.Path:
  """Appends ``run`` to the ``{"runs": [...]}`` JSON file at ``path`` (created if missing)."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  data = {"runs": []}
  if path.exists():
    data = json.loads(path.read_text())
    if not isinstance(data.get("runs"), list):
      raise ValueError(f"{path} is not a {{'runs': [...]}} results file.")
  data["runs"].append(_jsonable(dict(run)))
  tmp = path.with_suffix(".tmp")
  tmp.write_text(json.dumps(data, indent=2) + "\n")
  tmp.replace(path)
  return path


WALL_FILE = "wall_seconds.json"


def eval_history(workdir: str | os.PathLike) -> tuple[list[int], list[dict[str, Any]]]:
  """``(steps, metrics)`` of the evaluations a training run logged in
  ``workdir/metrics.jsonl`` (``--eval-every``), in file order; ``FileNotFoundError`` when the
  run logged nothing there."""
  steps, rows = [], []
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    for line in f:
      rec = json.loads(line)
      if rec.get("split") == "eval":
        steps.append(rec["step"])
        rows.append(rec["metrics"])
  return steps, rows


def cumulative_wall_seconds(workdir: str | os.PathLike, this_run: float) -> float:
  """Adds ``this_run`` to the wall time recorded in ``workdir`` by earlier (killed or
  resumed) invocations and stores the total: a resumed run reports its whole cost."""
  path = pathlib.Path(workdir) / WALL_FILE
  total = this_run
  if path.exists():
    total += float(json.loads(path.read_text()).get("wall_seconds", 0.0))
  if jax.process_index() == 0:
    path.write_text(json.dumps({"wall_seconds": total}))
  return total


# ---------------------------------------------------------------------------------------------
# Flags.


def add_flags(parser: argparse.ArgumentParser, *, configs: Sequence[str], default_config: str,
              results_file: str | os.PathLike, datasets: Sequence[str] | None = None,
              predict: bool = False, weights: bool = True, data_dir: bool = True,
              evaluate: bool = True, eval_every: bool = False) -> None:
  """Adds the shared flag vocabulary to ``parser`` (use
  ``argparse.ArgumentDefaultsHelpFormatter``). Flags whose value a config or a weights file
  can also give default to None ("from the config") so that an explicit flag is known.
  ``eval_every`` adds ``--eval-every`` (for CLIs whose config has an ``eval_every``)."""
  mode = parser.add_mutually_exclusive_group()
  mode.add_argument("--train", action="store_true",
                    help="train (the default mode), resuming from --workdir's checkpoints")
  if evaluate:
    mode.add_argument("--evaluate", action="store_true",
                      help="only evaluate --restore-weights (or --workdir's weights); the "
                           "config and data set come from the weights file")
  if predict:
    mode.add_argument("--predict", nargs="+", metavar="FILE", default=None,
                      help="run --restore-weights on image files of any size: writes "
                           "FILE-STEM.predictions.png and predictions.json to --workdir "
                           "(default: .) and prints the JSON")
  parser.add_argument("--config", default=None, choices=list(configs),
                      help=f"the recipe (default: {default_config}"
                           + ("; with --evaluate: the one stored in the weights)"
                              if evaluate and weights else ")"))
  parser.add_argument("--steps", type=int, default=None,
                      help="training steps (default: the config's)")
  if eval_every:
    parser.add_argument("--eval-every", type=int, default=None, metavar="N",
                        help="evaluate on the test split every N steps as well as at the "
                             "end (a learning curve in <workdir>/metrics.jsonl; default: the "
                             "config's, 0 = only at the end)")
  parser.add_argument("--batch-size", type=int, default=None,
                      help="global batch size, split over processes and devices (default: "
                           "the config's)")
  parser.add_argument("--seed", type=int, default=0, help="seeds parameters and data order")
  if data_dir:
    tfds = [d for d in (datasets or ()) if d in ("voc", "pets")]
    parser.add_argument("--data-dir", default=None,
                        help="the MNIST IDX files" + (
                            f" (or TFDS's data dir for --dataset {'/'.join(tfds)})"
                            if tfds else "") + " (default: $JAXVISION_DATA_DIR, then "
                        "../shared/data/mnist when it exists)")
  if datasets:
    parser.add_argument("--dataset", default=None,
                        help=f"one of {', '.join(datasets)} (default: scenes; with "
                             f"--evaluate: the weights' data set)")
  parser.add_argument("--workdir", default=None,
                      help="checkpoints, metrics.jsonl, results.json"
                           + (", weights.msgpack" if weights else "") + ", pictures "
                           "(required to train" + (" or evaluate)" if evaluate else ")"))
  if weights:
    parser.add_argument("--restore-weights", default=None, metavar="PATH",
                        help="a weights file or a workdir holding weights.msgpack: what "
                             + ("--evaluate / --predict run" if predict else "--evaluate runs")
                             + "; when training, the starting point of a fresh run "
                             "(fine-tuning)")
  parser.add_argument("--record", nargs="?", const=str(results_file), default=None,
                      metavar="FILE",
                      help=f"also append this run to a results file (bare --record: "
                           f"{os.path.relpath(results_file)}); results.json in --workdir "
                           f"is always written")
  dist = parser.add_argument_group("many hosts")
  dist.add_argument("--distributed", action="store_true",
                    help="call jax.distributed.initialize() (cluster auto-detection, or the "
                         "three flags below); each process reads its shard of the data, "
                         "process 0 writes the outputs")
  dist.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                    help="with --distributed: process 0's address for a manual launch")
  dist.add_argument("--num-processes", type=int, default=None,
                    help="with --distributed: number of processes (manual launch)")
  dist.add_argument("--process-id", type=int, default=None,
                    help="with --distributed: this process's index (manual launch)")
  parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                      help="a progress bar (default: when stderr is a terminal)")


def setup(args: argparse.Namespace) -> None:
  """Starts ``jax.distributed`` for ``--distributed`` and fills ``args.data_dir``."""
  manual = [args.coordinator, args.num_processes, args.process_id]
  if any(v is not None for v in manual) and not args.distributed:
    raise FlagError("--coordinator / --num-processes / --process-id need --distributed.")
  if args.distributed:
    from jaxvision.train import distributed  # pylint: disable=import-outside-toplevel
    distributed.initialize_distributed(coordinator=args.coordinator,
                                       num_processes=args.num_processes,
                                       process_id=args.process_id)
  if hasattr(args, "data_dir") and args.data_dir is None:
    dataset = getattr(args, "dataset", None) or "scenes"
    if dataset == "scenes":
      args.data_dir = default_data_dir()
  for name in ("steps", "batch_size"):
    v = getattr(args, name, None)
    if v is not None and v < 1:
      raise FlagError(f"--{name.replace('_', '-')} must be >= 1, got {v}.")
  v = getattr(args, "eval_every", None)
  if v is not None and v < 0:
    raise FlagError(f"--eval-every must be >= 0, got {v}.")


def config_overrides(args: argparse.Namespace, mapping: Mapping[str, str]) -> dict[str, Any]:
  """``{config field: value}`` for the flags in ``mapping`` (``flag dest -> field``) that the
  command line set (those whose value is not None)."""
  return {field: getattr(args, dest) for dest, field in mapping.items()
          if getattr(args, dest, None) is not None}


def check_against_weights(overrides: Mapping[str, Any], trained: Mapping[str, Any],
                          source: str) -> None:
  """Refuses flags that contradict how ``source``'s weights were trained."""
  for key, value in overrides.items():
    if key in trained:
      have = trained[key]
      same = (list(have) == list(value) if isinstance(value, (list, tuple)) else have == value)
      if not same:
        raise FlagError(f"the flag for {key!r} says {value!r} but {source} was trained with "
                        f"{key}={have!r}; drop the flag (the weights file says how to run "
                        f"it).")


def finish(workdir: str | os.PathLike | None, results: Mapping[str, Any], *,
           record: str | os.PathLike | None = None, keep: Sequence[str] | None = None) -> None:
  """Writes ``<workdir>/results.json`` and, with ``record``, appends the ``keep`` keys to
  that results file; only process 0 writes."""
  if jax.process_index() != 0:
    return
  if workdir is not None:
    os.makedirs(workdir, exist_ok=True)
    path = pathlib.Path(workdir) / "results.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(_jsonable(dict(results)), indent=2) + "\n")
    tmp.replace(path)
  if record:
    run = {k: results[k] for k in (keep or results) if k in results}
    append_run(record, run)


def read_image(path: str | os.PathLike) -> np.ndarray:
  """``uint8 [H, W, 3]`` RGB pixels of an image file (any format PIL reads)."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  p = pathlib.Path(path).expanduser()
  if not p.is_file():
    raise FileNotFoundError(f"no image file {str(p)!r}.")
  try:
    with Image.open(p) as im:
      return np.asarray(im.convert("RGB"), dtype=np.uint8)
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(f"{str(p)!r} is not an image PIL can read ({e}).") from None


# ---------------------------------------------------------------------------------------------
# The driver of detector / segmenter experiments.


@dataclasses.dataclass(frozen=True)
class PredictorExperiment:
  """What one detection or segmentation experiment supplies to the shared driver.

  Attributes:
    name: the CLI's module stem, e.g. ``"ssd"`` (``python -m experiments.ssd``).
    kind: ``"detector"`` or ``"segmenter"``.
    configs: recipe name -> config dataclass (fields used here: ``image_size``, ``steps``,
      ``batch_size``, ``checkpoint_every``, ``log_every``, ``eval_every``,
      ``eval_batch_size``, ``train_scenes``, ``test_scenes``, ``digit_size``,
      ``num_digits``, ``pictures``).
    build: ``build(config, dataset, initial_variables) -> (spec, task)``; the spec's
      ``training`` is filled in by the driver.
    default_config: the recipe used without ``--config``.
    flags: ``add(parser)`` for the experiment's own flags.
    flag_fields: flag dest -> config field, for the experiment's own flags.
    results_file: the default of a bare ``--record``.
    summary: ``summary(results) -> str``, the line printed at the end.
    datasets: the ``--dataset`` values the experiment accepts.
    extra_results: ``extra_results(config) -> dict`` added to the results of a run.
  """

  name: str
  kind: str
  configs: Mapping[str, Any]
  build: Callable[[Any, Any, Any], tuple[Any, Any]]
  default_config: str = "cpu"
  flags: Callable[[argparse.ArgumentParser], None] | None = None
  flag_fields: Mapping[str, str] = dataclasses.field(default_factory=dict)
  results_file: str = "results.json"
  summary: Callable[[Mapping[str, Any]], str] | None = None
  datasets: tuple[str, ...] = ("scenes", "book:DIR", "voc", "pets")
  extra_results: Callable[[Any], Mapping[str, Any]] | None = None


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
  """Defaults shown (unless the help says it or there is none), the description (a module
  docstring) kept as written."""

  def _get_help_string(self, action):
    text = action.help or ""
    if ("default" in text or action.default is None or action.default is False
        or action.default is argparse.SUPPRESS or not action.option_strings):
      return text
    return text + " (default: %(default)s)"


def make_parser(exp: PredictorExperiment, description: str | None) -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog=f"python -m experiments.{exp.name}",
                                   description=description,
                                   formatter_class=HelpFormatter)
  add_flags(parser, configs=sorted(exp.configs), default_config=exp.default_config,
            results_file=exp.results_file, datasets=exp.datasets, predict=True,
            eval_every=True)
  if exp.flags is not None:
    exp.flags(parser.add_argument_group(f"{exp.name} recipe (default: the config's)"))
  return parser


def _predictor_class(kind: str):
  from jaxvision import inference  # pylint: disable=import-outside-toplevel
  return inference.Detector if kind == "detector" else inference.Segmenter


def _load_data(exp: PredictorExperiment, cfg, dataset: str, data_dir, *, digits=None,
               train: bool = True):
  from jaxvision import inference  # pylint: disable=import-outside-toplevel
  from jaxvision.data import datasets, scenes  # pylint: disable=import-outside-toplevel
  scene_config = scenes.SceneConfig(image_size=tuple(cfg.image_size),
                                    digit_size=tuple(cfg.digit_size),
                                    num_digits=tuple(cfg.num_digits))
  task = "detection" if exp.kind == "detector" else "segmentation"
  if exp.kind == "detector" and inference._model_can(  # pylint: disable=protected-access
      cfg.model, "detect_masks"):
    task = "instances"
  try:
    return datasets.load_dataset(dataset, task=task, image_size=tuple(cfg.image_size),
                                 data_dir=data_dir, scene_config=scene_config,
                                 train_scenes=cfg.train_scenes if train else 1,
                                 test_scenes=cfg.test_scenes, digits=digits,
                                 require_train=train)
  except (ValueError, FileNotFoundError, ImportError) as e:
    raise FlagError(f"--dataset {dataset}: {e}") from None


def _config_from(exp: PredictorExperiment, name: str, fields: Mapping[str, Any]):
  base = exp.configs[name]
  known = {f.name for f in dataclasses.fields(base)}
  clean = {k: (tuple(tuple(x) if isinstance(x, list) else x for x in v)
               if isinstance(v, list) and v and isinstance(v[0], list)
               else tuple(v) if isinstance(v, list) else v)
           for k, v in fields.items() if k in known}
  return dataclasses.replace(base, **clean)


def _pictures(exp: PredictorExperiment, predictor, data, paths: Sequence[str], count: int):
  """Test images with predictions beside the ground truth."""
  from jaxvision import inference, viz  # pylint: disable=import-outside-toplevel
  keys = ("image", "boxes", "classes", "num_boxes") if exp.kind == "detector" else (
      "image", "mask")
  masks = (exp.kind == "detector" and predictor.has_masks
           and inference._has_field(data, "mask"))  # pylint: disable=protected-access
  if masks:
    keys += ("mask",)
  rec = next(inference._records(data, keys, count))  # pylint: disable=protected-access
  for path in paths:
    if masks:
      viz.save_instance_masks(path, rec["image"], predictor.detect_instances(
          rec["image"], batch_size=count), inference.ground_truth_lists(rec), rec["mask"],
                              class_names=predictor.class_names,
                              title=f"{predictor.spec.model}: ground truth (dashed boxes, true "
                                    f"masks) beside the detections and their predicted masks")
    elif exp.kind == "detector":
      dets = predictor.detect(rec["image"], batch_size=count)
      viz.save_detections(path, rec["image"], dets,
                          ground_truth=inference.ground_truth_lists(rec),
                          class_names=predictor.class_names, side_by_side=True,
                          title=f"{predictor.spec.model}: ground truth (dashed, left) beside "
                                f"the predictions (solid, right)")
    else:
      preds = predictor.segment(rec["image"], batch_size=count)
      viz.save_segmentation_triptychs(path, rec["image"], rec["mask"], preds,
                                      class_names=predictor.class_names,
                                      title=f"{predictor.spec.model} on test images")


def _predict_files(exp: PredictorExperiment, predictor, files: Sequence[str], out_dir: str
                   ) -> dict[str, Any]:
  """Runs ``predictor`` on image files; one PNG per file and one JSON for all in
  ``out_dir``."""
  from jaxvision import viz  # pylint: disable=import-outside-toplevel
  try:
    images = [read_image(f) for f in files]
  except (FileNotFoundError, ValueError) as e:
    raise FlagError(f"--predict: {e}") from None
  names = predictor.class_names
  main = jax.process_index() == 0
  if main:
    os.makedirs(out_dir, exist_ok=True)
  out: dict[str, Any] = {"model": predictor.spec.model, "class_names": list(names),
                         "images": []}
  for f, im in zip(files, images):
    stem = pathlib.Path(f).stem
    png = os.path.join(out_dir, f"{stem}.predictions.png")
    entry: dict[str, Any] = {"file": str(f), "height": int(im.shape[0]),
                             "width": int(im.shape[1]), "png": png}
    if exp.kind == "detector":
      d = jax.device_get(predictor(im))
      k = int(d.num_valid)
      det = {"boxes": np.asarray(d.boxes[:k]), "scores": np.asarray(d.scores[:k]),
             "classes": np.asarray(d.classes[:k])}
      entry["detections"] = [
          {"box_xyxy": [round(float(v), 1) for v in b], "score": round(float(s), 4),
           "class": int(c), "name": names[int(c)]}
          for b, s, c in zip(det["boxes"], det["scores"], det["classes"])]
      if main:
        viz.save_detections(png, im[None], [det], class_names=names,
                            title=f"{stem}: {k} detection(s)")
    else:
      mask = np.asarray(predictor(im))
      counts = np.bincount(mask.ravel(), minlength=len(names))
      entry["pixels_per_class"] = {names[c]: int(n) for c, n in enumerate(counts) if n}
      if main:
        viz.save_detections(png, im[None], None, class_names=names, masks=mask[None],
                            title=f"{stem}: predicted classes")
    out["images"].append(entry)
  if main:
    pathlib.Path(out_dir, "predictions.json").write_text(json.dumps(out, indent=2) + "\n")
  return out


def run_predictor_experiment(exp: PredictorExperiment, argv: Sequence[str] | None = None, *,
                             description: str | None = None, digits=None) -> dict[str, Any]:
  """Parses ``argv`` and trains, evaluates or predicts; returns the results dict.

  ``digits``: ``{"train": (images, labels), "test": (...)}`` digit pools that replace MNIST
  in the scene generator (tests)."""
  parser = make_parser(exp, description)
  args = parser.parse_args(argv)
  with cli_errors(parser):
    return _run(exp, args, argv, digits)


@contextlib.contextmanager
def cli_errors(parser: argparse.ArgumentParser):
  """A CLI's user errors as messages, not tracebacks: a :class:`FlagError` exits 2 through
  ``parser.error``; a workdir held by another run exits 1 with the lock's message."""
  from jaxvision.train.lock import WorkdirLockedError  # pylint: disable=import-outside-toplevel
  try:
    yield
  except FlagError as e:
    parser.error(str(e))
  except WorkdirLockedError as e:
    print(f"{parser.prog}: error: {e}", file=sys.stderr)
    raise SystemExit(1) from None


def _run(exp: PredictorExperiment, args, argv, digits) -> dict[str, Any]:
  start = time.time()
  setup(args)
  cls = _predictor_class(exp.kind)
  overrides = config_overrides(args, {"steps": "steps", "batch_size": "batch_size",
                                      "eval_every": "eval_every", **exp.flag_fields})

  if args.predict:
    if args.restore_weights is None:
      raise FlagError("--predict needs --restore-weights (a weights file or a workdir).")
    predictor = _load(cls, args.restore_weights, "--restore-weights")
    out = _predict_files(exp, predictor, args.predict, args.workdir or ".")
    _say(json.dumps(out, indent=2))
    return out

  if args.workdir is None:
    raise FlagError("--workdir is required to train or evaluate.")
  os.makedirs(args.workdir, exist_ok=True)

  if args.evaluate:
    source = args.restore_weights or args.workdir
    predictor = _load(cls, source, "--restore-weights" if args.restore_weights else "--workdir")
    trained = dict(predictor.spec.training)
    trained_cfg = trained.get("config", {})
    config_name = trained.get("config_name", exp.default_config)
    if args.config is not None and args.config != config_name and config_name in exp.configs:
      raise FlagError(f"--config {args.config} but {source} was trained with the "
                      f"{config_name!r} config; drop --config.")
    check_against_weights({k: v for k, v in overrides.items()
                           if k not in ("steps", "batch_size", "eval_every")}, trained_cfg,
                          repr(source))
    cfg = _config_from(exp, config_name if config_name in exp.configs else exp.default_config,
                       trained_cfg)
    dataset_name = args.dataset or trained.get("dataset", "scenes")
    data = _load_data(exp, cfg, dataset_name, args.data_dir, digits=digits, train=False)
    _check_classes(predictor, data)
    from jaxvision import inference  # pylint: disable=import-outside-toplevel
    ev = (inference.evaluate_detector(predictor, data.test, batch_size=cfg.eval_batch_size)
          if exp.kind == "detector" else
          inference.evaluate_segmenter(predictor, data.test, batch_size=cfg.eval_batch_size))
    results = {**(exp.extra_results(cfg) if exp.extra_results else {}),
               "mode": "evaluate", "restored_from": str(source), "model": predictor.spec.model,
               "config_name": config_name, "dataset": dataset_name, "eval": ev, **ev,
               "trained_by": trained.get("command"), "trained_steps": trained.get("steps"),
               "evaluated_on": f"{len(data.test)} test images of {dataset_name}",
               "command": command_line(argv, f"experiments.{exp.name}"),
               "wall_seconds": round(time.time() - start, 1), "machine": machine()}
    if jax.process_index() == 0:
      _pictures(exp, predictor, data.test, [os.path.join(args.workdir, "predictions.png")],
                min(getattr(cfg, "pictures", 8), len(data.test)))
    finish(args.workdir, results)
    _say(_summary(exp, results))
    return results

  # Training.
  config_name = args.config or exp.default_config
  cfg = dataclasses.replace(exp.configs[config_name], **overrides)
  dataset_name = args.dataset or "scenes"
  start_from = initial = None
  if args.restore_weights is not None:  # fine-tuning: checked before any data is read
    start_from = _load(cls, args.restore_weights, "--restore-weights")
    if start_from.spec.model != cfg.model:
      raise FlagError(f"--restore-weights {args.restore_weights} holds a "
                      f"{start_from.spec.model} but the {config_name!r} config trains a "
                      f"{cfg.model}; pick the config the weights were trained with "
                      f"({start_from.spec.training.get('config_name')!r}).")
  data = _load_data(exp, cfg, dataset_name, args.data_dir, digits=digits)
  if start_from is not None:
    _check_classes(start_from, data)
    initial = start_from.variables
  spec, task = exp.build(cfg, data, initial)
  from jaxvision import train  # pylint: disable=import-outside-toplevel
  train_cfg = train.TrainConfig(num_steps=cfg.steps, batch_size=cfg.batch_size, seed=args.seed,
                          checkpoint_every=cfg.checkpoint_every, log_every=cfg.log_every,
                          eval_every=cfg.eval_every, progress=args.progress)
  out = train.train_and_evaluate(train_cfg, args.workdir, task=task)
  variables = {"params": out.state.params, "batch_stats": out.state.batch_stats}
  results = dict(out.results)
  ev = results.get("eval", {})
  steps_done = results.get("final_step")
  wall = round(cumulative_wall_seconds(args.workdir, time.time() - start), 1)
  command = command_line(argv, f"experiments.{exp.name}")
  training = {"experiment": exp.name, "config_name": config_name,
              "config": _jsonable(dataclasses.asdict(cfg)), "dataset": dataset_name,
              "command": command, "steps": steps_done, "seed": args.seed,
              "restored_from": args.restore_weights, "wall_seconds": wall,
              "machine": machine(), "test_metrics": {k: v for k, v in ev.items()
                                                     if not isinstance(v, list)}}
  spec = dataclasses.replace(spec, training=training)
  predictor = cls(spec, variables)
  if jax.process_index() == 0:
    predictor.save(os.path.join(args.workdir, "weights.msgpack"))
    _pictures(exp, predictor, data.test, [os.path.join(args.workdir, "predictions.png")],
              min(getattr(cfg, "pictures", 8), len(data.test)))
  trained_steps = (steps_done or 0) - (results.get("resumed_from_step") or 0)
  results.update({
      **(exp.extra_results(cfg) if exp.extra_results else {}),
      "mode": "train", "model": spec.model, "config_name": config_name,
      "dataset": dataset_name, "num_classes": spec.num_classes,
      "class_names": list(spec.class_names), "experiment_config": training["config"],
      "image_size": list(cfg.image_size), "steps": steps_done,
      "epochs": round((steps_done or 0) * cfg.batch_size / max(len(data.train), 1), 2),
      "params": int(sum(np.size(x) for x in jax.tree.leaves(variables["params"]))),
      "evaluated_on": f"{len(data.test)} test images of {dataset_name}", **ev,
      "command": command, "wall_seconds": wall, "machine": training["machine"],
  })
  record = args.record if trained_steps > 0 else None
  if args.record and not record:
    _say(f"Nothing trained in this invocation (the workdir was at step {steps_done}); "
          f"not recording.")
  finish(args.workdir, results, record=record,
         keep=[k for k in results if k not in ("train", "eval", "config")])
  _say(_summary(exp, results))
  return results


def _load(cls, path, flag: str):
  """``cls.load(path)`` with a missing or unusable file reported as a flag error."""
  try:
    return cls.load(path)
  except (FileNotFoundError, ValueError) as e:
    raise FlagError(f"{flag} {path}: {e}") from None


def _say(text: str) -> None:
  """Prints on process 0 only."""
  if jax.process_index() == 0:
    print(text, flush=True)


def _check_classes(predictor, data) -> None:
  if data.num_classes != predictor.spec.num_classes:
    raise FlagError(f"the weights predict {predictor.spec.num_classes} classes but the "
                    f"{data.name!r} data set has {data.num_classes}.")


def _summary(exp: PredictorExperiment, results: Mapping[str, Any]) -> str:
  if exp.summary is not None:
    return exp.summary(results)
  keys = [k for k in ("map50", "map", "miou", "precision", "recall", "pixel_accuracy",
                      "dataset_miou") if isinstance(results.get(k), float)]
  body = ", ".join(f"{k} {results[k]:.3f}" for k in keys)
  return f"{results.get('model')} ({results.get('mode')}): {body}; wall " \
         f"{results.get('wall_seconds')} s"


# ---------------------------------------------------------------------------------------------
# The driver of classification experiments (CapsNet, the convolution zoo, fine-tuning).


@dataclasses.dataclass(frozen=True)
class ClassifierExperiment:
  """What one MNIST-style classification experiment supplies to the shared driver.

  Attributes:
    name: the CLI's module stem (``python -m experiments.<name>``).
    configs: recipe name -> :class:`jaxvision.classification.ClassifierConfig`.
    default_config: used without ``--config``.
    results_file: the default of a bare ``--record``.
    pictures: ``pictures(classifier, test_arrays, workdir) -> [paths]`` written after
      training or evaluation (``test_arrays``: ``{"image", "label"}`` NumPy arrays).
    data: ``data(config, data_dir) -> (train_source, test_source)``; default MNIST
      (``train_images`` / ``test_images`` of the config).
    num_classes: the classifier's outputs.
    table: ``table(runs) -> str``: with it the CLI has ``--table``, which prints the runs of
      the results file (``--record`` FILE, or the default) and exits.
  """

  name: str
  configs: Mapping[str, Any]
  default_config: str = "cpu"
  results_file: str = "results.json"
  pictures: Callable[[Any, Mapping[str, np.ndarray], str], Sequence[str]] | None = None
  data: Callable[[Any, Any], tuple[Any, Any]] | None = None
  num_classes: int = 10
  table: Callable[[list[dict[str, Any]]], str] | None = None


def mnist_sources(cfg, data_dir) -> tuple[Any, Any]:
  """``(train, test)`` MNIST sources, cut to ``cfg.train_images`` / ``cfg.test_images``."""
  from jaxvision.data import MnistSource  # pylint: disable=import-outside-toplevel
  try:
    train, test = MnistSource("train", data_dir=data_dir), MnistSource("test", data_dir=data_dir)
  except (FileNotFoundError, ValueError) as e:
    raise FlagError(f"--data-dir: {e}") from None

  def cut(src, n):
    if n is None or n >= len(src):
      return src
    a = src.arrays
    return MnistSource.from_arrays(a["image"][:n], a["label"][:n])

  return cut(train, cfg.train_images), cut(test, cfg.test_images)


def _classifier_arrays(source) -> dict[str, np.ndarray]:
  arrays = source.arrays
  return {"image": arrays["image"], "label": arrays["label"]}


def _predict_images(classifier, files: Sequence[str]) -> dict[str, Any]:
  from PIL import Image  # pylint: disable=import-outside-toplevel
  h, w, c = classifier.spec.image_shape
  images = []
  for f in files:
    rgb = read_image(f)
    im = Image.fromarray(rgb).convert("L" if c == 1 else "RGB").resize((w, h),
                                                                       Image.BILINEAR)
    images.append(np.asarray(im, np.uint8).reshape(h, w, c))
  classes, scores = classifier.predict(np.stack(images))
  names = classifier.spec.class_names
  return {"predictions": [{"file": str(f), "class": int(k), "name": names[int(k)],
                           "scores": [round(float(v), 5) for v in s]}
                          for f, k, s in zip(files, classes, scores)]}


def run_classifier_experiment(exp: ClassifierExperiment, argv: Sequence[str] | None = None,
                              description: str | None = None) -> dict[str, Any]:
  """Parses ``argv`` and trains, evaluates (``--evaluate``) or predicts (``--predict``);
  returns the results (also in ``<workdir>/results.json``)."""
  from jaxvision import classification as cl  # pylint: disable=import-outside-toplevel
  from jaxvision import models  # pylint: disable=import-outside-toplevel
  # pylint: disable-next=import-outside-toplevel
  from jaxvision.train import TrainConfig, train_and_evaluate
  parser = argparse.ArgumentParser(prog=f"python -m experiments.{exp.name}",
                                   description=description, formatter_class=HelpFormatter)
  add_flags(parser, configs=sorted(exp.configs), default_config=exp.default_config,
            results_file=exp.results_file, predict=True, eval_every=True)
  if exp.table is not None:
    parser.add_argument("--table", action="store_true",
                        help="print the table of the recorded runs (the --record file) and "
                             "exit")
  args = parser.parse_args(argv)
  with cli_errors(parser):
    if getattr(args, "table", False):
      path = pathlib.Path(args.record or exp.results_file)
      if not path.exists():
        raise FlagError(f"no results file {str(path)!r} to tabulate.")
      text = exp.table(json.loads(path.read_text())["runs"])
      _say(text)
      return {"table": text}
    start = time.time()
    setup(args)
    if args.predict:
      if args.restore_weights is None:
        raise FlagError("--predict needs --restore-weights (a weights file or a workdir).")
      clf = _load_classifier(args.restore_weights)
      out = _predict_images(clf, args.predict)
      _say(json.dumps(out, indent=2))
      return out
    if args.workdir is None:
      raise FlagError("--workdir is required to train or evaluate.")
    os.makedirs(args.workdir, exist_ok=True)
    overrides = config_overrides(args, {"steps": "steps", "batch_size": "batch_size",
                                        "eval_every": "eval_every"})
    if args.evaluate:
      source = args.restore_weights or args.workdir
      variables, spec = load_weights_spec(source)
      try:
        clf = cl.Classifier(cl.ClassifierSpec.from_dict(spec), variables)
      except (KeyError, ValueError) as e:
        raise FlagError(f"--restore-weights: {e}") from None
      name = args.config or spec.get("config_name", exp.default_config)
      cfg = _config_from(exp, name if name in exp.configs else exp.default_config,
                         spec.get("config", {}))
      _, test_data = (exp.data or mnist_sources)(cfg, args.data_dir)
      check_against_weights(overrides, spec.get("config", {}), repr(str(source)))
      trained = False
    else:
      name = args.config or exp.default_config
      cfg = dataclasses.replace(exp.configs[name], **overrides)
      spec = cl.ClassifierSpec(model=cfg.model, num_classes=exp.num_classes,
                               attributes=dict(cfg.attributes))
      initial = None
      if args.restore_weights:
        initial = _load_classifier(args.restore_weights).variables
      train_data, test_data = (exp.data or mnist_sources)(cfg, args.data_dir)
      task = cl.classification_task(spec, train_data, optimizer=cl.make_optimizer(cfg),
                                    test_data=test_data, loss=cl.config_loss(cfg),
                                    shift=cfg.shift, initial_variables=initial)
      out = train_and_evaluate(TrainConfig(num_steps=cfg.steps, batch_size=cfg.batch_size,
                                           seed=args.seed, checkpoint_every=cfg.checkpoint_every,
                                           log_every=cfg.log_every, eval_every=cfg.eval_every,
                                           progress=args.progress),
                               args.workdir, task=task)
      variables = out.state.variables() if hasattr(out.state, "variables") else {
          "params": out.state.params, "batch_stats": out.state.batch_stats}
      variables = {k: v for k, v in variables.items() if v}
      clf = cl.Classifier(spec, variables)
      if jax.process_index() == 0:
        clf.save(os.path.join(args.workdir, "weights.msgpack"), config_name=name,
                 config=_jsonable(dataclasses.asdict(cfg)))
      trained = True
      train_results = out.results
    evaluation = cl.evaluate_classifier(clf, test_data)
    pictures = []
    if exp.pictures is not None and jax.process_index() == 0:
      pictures = list(exp.pictures(clf, _classifier_arrays(test_data), args.workdir))
    wall = time.time() - start
    flops = cl.forward_flops(clf)
    speed_images = _classifier_arrays(test_data)["image"][:2000]
    results = {
        "command": command_line(argv, f"experiments.{exp.name}"),
        "forward_flops_per_image": flops,
        "inference_images_per_sec": round(cl.inference_images_per_sec(clf, speed_images), 1),
        "config_name": name, "config": dataclasses.asdict(cfg),
        "model": cfg.model, "params": models.count_params(clf.variables.get("params", {})),
        "test_accuracy": evaluation["accuracy"], "test_error": evaluation["error_rate"],
        "per_class_accuracy": evaluation["per_class_accuracy"],
        "num_test_images": evaluation["num_images"], "pictures": pictures,
        "machine": machine(), "date": time.strftime("%Y-%m-%d"),
    }
    if trained:
      results["wall_seconds"] = round(cumulative_wall_seconds(args.workdir, wall), 1)
      # This process's CPU time (all threads; a resumed run counts its own part only).
      results["process_cpu_seconds"] = round(time.process_time(), 1)
      results["train_images_per_sec"] = (None if not train_results["steps_per_sec"] else
                                         round(train_results["steps_per_sec"]
                                               * cfg.batch_size, 1))
      results["epochs"] = round(cfg.steps * cfg.batch_size / len(train_data), 2)
      results["steps"] = cfg.steps
    else:
      results["evaluated"] = str(args.restore_weights or args.workdir)
    finish(args.workdir, results, record=args.record if trained else None)
    _say(f"{exp.name} ({name}, {cfg.model}): test accuracy {evaluation['accuracy']:.4f} "
         f"(error {100 * evaluation['error_rate']:.2f}%) on {evaluation['num_images']} images"
         + (f", {results['wall_seconds']:.0f} s" if trained else ""))
    return results


def load_weights_spec(source) -> tuple[dict[str, Any], dict[str, Any]]:
  from jaxvision import weights as weights_lib  # pylint: disable=import-outside-toplevel
  try:
    return weights_lib.load_weights(source)
  except (FileNotFoundError, ValueError) as e:
    raise FlagError(f"--restore-weights: {e}") from None


def _load_classifier(source):
  from jaxvision import classification as cl  # pylint: disable=import-outside-toplevel
  try:
    return cl.Classifier.load(source)
  except (FileNotFoundError, ValueError) as e:
    raise FlagError(f"--restore-weights: {e}") from None


def classifier_table(runs: Sequence[Mapping[str, Any]]) -> str:
  """A Markdown table of :func:`run_classifier_experiment` results, one row per config (its
  latest run): params, forward MFLOPs per image, test accuracy, train and inference
  images/s, epochs, wall time."""
  latest: dict[str, Mapping[str, Any]] = {}
  for r in runs:
    latest[r["config_name"]] = r
  lines = ["| config | model | params | forward MFLOPs/image | test accuracy | train images/s "
           "| inference images/s | epochs | wall (s) |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
  for name, r in latest.items():
    flops = r.get("forward_flops_per_image")
    lines.append(f"| {name} | {r['model']} | {r['params']:,} | "
                 f"{'-' if flops is None else f'{flops / 1e6:.1f}'} | "
                 f"{r['test_accuracy']:.4f} | {r.get('train_images_per_sec', '-')} | "
                 f"{r.get('inference_images_per_sec', '-')} | {r.get('epochs', '-')} | "
                 f"{r.get('wall_seconds', '-')} |")
  return "\n".join(lines)
