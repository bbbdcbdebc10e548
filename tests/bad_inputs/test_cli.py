"""Bad command lines: every row exits with a clear message naming the flag or the file, never
a traceback. Rows stop before any data is read or anything compiles."""

from __future__ import annotations

import pathlib
import re

import numpy as np
import pytest
from flax import serialization

from experiments import fcn, iic_mnist, mine_gaussian, ssd
from jaxvision import weights


@pytest.fixture(scope="module")
def files(tmp_path_factory):
  d = tmp_path_factory.mktemp("cli")
  (d / "garbage.msgpack").write_bytes(b"\x00\x01not msgpack")
  (d / "legacy.msgpack").write_bytes(serialization.to_bytes({"params": {"w": np.zeros(2)}}))
  (d / "notes.txt").write_text("not an image")
  (d / "empty_workdir").mkdir()
  weights.save_weights(d / "segmenter.msgpack", {"params": {}},
                       {"kind": "segmenter", "model": "FCNTiny", "num_classes": 3,
                        "image_size": [32, 40]})
  return d


# (cli, argv, exit code, message regex); {d} is the fixture's directory.
ROWS = [
    ("ssd", ["--config", "tiny"], 2, "--workdir is required"),
    ("ssd", ["--config", "nope", "--workdir", "{d}/w"], 2, "invalid choice: 'nope'"),
    ("ssd", ["--workdir", "{d}/w", "--steps", "0"], 2, "--steps must be >= 1"),
    ("ssd", ["--workdir", "{d}/w", "--batch-size", "-4"], 2, "--batch-size must be >= 1"),
    ("ssd", ["--workdir", "{d}/w", "--steps", "ten"], 2, "invalid int value"),
    ("ssd", ["--workdir", "{d}/w", "--coordinator", "h:1"], 2, "need --distributed"),
    ("ssd", ["--evaluate", "--predict", "x.png"], 2, "not allowed with argument"),
    ("ssd", ["--predict", "x.png"], 2, "--predict needs --restore-weights"),
    ("ssd", ["--evaluate", "--workdir", "{d}/empty_workdir"], 2,
     "no weights.msgpack in the directory"),
    ("ssd", ["--evaluate", "--restore-weights", "{d}/missing.msgpack", "--workdir", "{d}/e"], 2,
     "no weights file .*missing.msgpack"),
    ("ssd", ["--evaluate", "--restore-weights", "{d}/garbage.msgpack", "--workdir", "{d}/e"], 2,
     "garbage.msgpack.*not a readable msgpack"),
    ("ssd", ["--evaluate", "--restore-weights", "{d}/legacy.msgpack", "--workdir", "{d}/e"], 2,
     "without a model description"),
    ("ssd", ["--evaluate", "--restore-weights", "{d}/segmenter.msgpack", "--workdir", "{d}/e"],
     2, r"holds a segmenter \(FCNTiny\), not a detector"),
    ("ssd", ["--predict", "{d}/notes.txt", "--restore-weights",
             "experiments/results/ssd_cpu_weights.msgpack", "--workdir", "{d}/p"], 2,
     "notes.txt.*not an image"),
    ("ssd", ["--predict", "{d}/nope.png", "--restore-weights",
             "experiments/results/ssd_cpu_weights.msgpack", "--workdir", "{d}/p"], 2,
     "no image file .*nope.png"),
    ("ssd", ["--config", "tiny", "--dataset", "nope", "--workdir", "{d}/w"], 2,
     "--dataset nope: .*'scenes'"),
    ("ssd", ["--config", "tiny", "--dataset", "book:{d}/no_such_dir", "--workdir", "{d}/w"], 2,
     "--dataset book:.*labels_train.csv"),
    ("ssd", ["--config", "tiny", "--dataset", "pets", "--workdir", "{d}/w"], 2,
     "--dataset pets: .*detection"),
    ("ssd", ["--workdir", "{d}/w", "--restore-weights",
             "experiments/results/fcn_cpu_weights.msgpack"], 2, "holds a segmenter"),
    ("fcn", ["--config", "tiny", "--workdir", "{d}/w", "--restore-weights",
             "experiments/results/fcn_cpu_weights.msgpack"], 2,
     "holds a FCNSmall but the 'tiny' config trains a FCNTiny"),
    ("fcn", ["--config", "tiny", "--dataset", "voc", "--workdir", "{d}/w"], 2,
     "--dataset voc: .*segmentation"),
    ("fcn", ["--evaluate", "--restore-weights", "experiments/results/ssd_cpu_weights.msgpack",
             "--workdir", "{d}/e"], 2, r"holds a detector \(SSDSmallP2\), not a segmenter"),
    ("fcn", ["--evaluate", "--restore-weights", "experiments/results/fcn_cpu_weights.msgpack",
             "--workdir", "{d}/e", "--config", "tiny"], 2,
     "--config tiny but .* was trained with the 'cpu' config"),
    ("fcn", ["--evaluate", "--restore-weights", "experiments/results/fcn_cpu_weights.msgpack",
             "--workdir", "{d}/e", "--learning-rate", "0.1"], 2,
     "'learning_rate' says 0.1 but .* was trained with learning_rate=0.008"),
    ("iic_mnist", ["--workdir", "{d}/w", "--steps", "0"], 2, "--steps"),
    ("iic_mnist", ["--config", "tiny"], 2, "--workdir"),
    ("mine_gaussian", ["--workdir", "{d}/w", "--rho", "1.5"], 2, "--rho"),
    ("mine_gaussian", ["--workdir", "{d}/w", "--evaluate"], 2, "does not apply to MINE"),
]
_CLIS = {"ssd": ssd, "fcn": fcn, "iic_mnist": iic_mnist, "mine_gaussian": mine_gaussian}


@pytest.mark.parametrize("cli, argv, code, message", ROWS,
                         ids=[f"{r[0]}:{' '.join(r[1])[:60]}" for r in ROWS])
def test_bad_command_lines(cli, argv, code, message, files, capsys, monkeypatch):
  monkeypatch.chdir(pathlib.Path(__file__).resolve().parents[2])  # the committed weights
  argv = [a.replace("{d}", str(files)) for a in argv]
  with pytest.raises(SystemExit) as e:
    _CLIS[cli].main(argv)
  err = capsys.readouterr().err
  assert e.value.code == code, err
  assert "Traceback" not in err
  assert re.search(message, err, re.S), err
