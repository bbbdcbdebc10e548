"""`make demo`: its NMS example writes its figure, its flags are the shared vocabulary, and it
imports only jaxvision (the benchmarks and the IIC run are subprocesses)."""

import ast
import json
import pathlib
import subprocess

from experiments import demo


def test_nms_example_writes_png(tmp_path, capsys):
  demo.nms_example(tmp_path)
  png = tmp_path / "nms.png"
  assert png.stat().st_size > 10_000
  assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  out = capsys.readouterr().out
  assert "kept" in out


def test_scene_proposals_are_detector_like():
  image, gt = demo.make_scene(seed=3)
  boxes, scores = demo.detector_proposals(gt, seed=3)
  assert image.shape == (240, 320, 3) and 0 <= image.min() and image.max() <= 1
  assert boxes.shape == (len(gt) * 40 + 30, 4) and scores.shape == (len(boxes),)
  assert ((scores > 0) & (scores <= 1)).all()


def test_flags_are_the_shared_vocabulary():
  args = demo.make_parser().parse_args([])
  assert args.workdir == pathlib.Path("demo_out") and args.steps == 180
  args = demo.make_parser().parse_args(["--workdir", "w", "--data-dir", "d", "--steps", "7"])
  assert (args.workdir, args.data_dir, args.steps) == (pathlib.Path("w"), "d", 7)


def test_imports_only_jaxvision():
  tree = ast.parse(pathlib.Path(demo.__file__).read_text())
  modules = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      modules |= {a.name.split(".")[0] for a in node.names}
    elif isinstance(node, ast.ImportFrom):
      modules.add((node.module or "").split(".")[0])
  assert not modules & {"experiments", "benchmarks"}


def test_iic_example_runs_the_cli_and_reads_its_results(tmp_path, monkeypatch, capsys):
  calls = []

  def fake_run(cmd, cwd, check):
    calls.append(cmd)
    workdir = pathlib.Path(cmd[cmd.index("--workdir") + 1])
    workdir.mkdir(parents=True)
    (workdir / "results.json").write_text(json.dumps(
        {"test_accuracy": 0.5, "best_head_accuracy": 0.75, "wall_seconds": 1.5}))
    return subprocess.CompletedProcess(cmd, 0)

  monkeypatch.setattr(demo.subprocess, "run", fake_run)
  assert demo.iic_example(tmp_path, "mnist_dir", steps=3) == 0.5
  (cmd,) = calls
  assert cmd[1:3] == ["-m", "experiments.iic_mnist"]
  assert {"--config", "cpu", "--steps", "3", "--data-dir", "mnist_dir", "--no-progress"} <= set(
      cmd)
  assert "best head 0.7500" in capsys.readouterr().out
  assert demo.iic_example(tmp_path, None) is None  # no MNIST: skipped
