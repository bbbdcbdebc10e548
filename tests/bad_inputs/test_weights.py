"""Bad weight files and mismatched models: every row is refused when the file is loaded,
naming the file and, where it applies, the model it holds and the model asked for."""

from __future__ import annotations

import pathlib
import re

import numpy as np
import pytest
from flax import serialization

from jaxvision import weights
from jaxvision.inference import Detector, Segmenter

ROOT = pathlib.Path(__file__).resolve().parents[2]
SSD = ROOT / "experiments/results/ssd_cpu_weights.msgpack"
FCN = ROOT / "experiments/results/fcn_cpu_weights.msgpack"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
  d = tmp_path_factory.mktemp("weights")
  data = SSD.read_bytes()
  (d / "truncated.msgpack").write_bytes(data[:len(data) // 2])
  (d / "garbage.msgpack").write_bytes(b"\x93\x01\x02")
  (d / "legacy.msgpack").write_bytes(serialization.to_bytes({"params": {"w": np.zeros(2)},
                                                             "batch_stats": {}}))
  variables, spec = weights.load_weights(SSD)
  weights.save_weights(d / "ssdsmall_as_tiny.msgpack", variables, {**spec, "model": "SSDTiny"})
  seg_vars, seg_spec = weights.load_weights(FCN)
  weights.save_weights(d / "fcnsmall_as_tiny.msgpack", seg_vars,
                       {**seg_spec, "model": "FCNTiny"})
  weights.save_weights(d / "classes.msgpack", variables, {**spec, "num_classes": 5,
                                                          "class_names": None})
  weights.save_weights(d / "unknown_model.msgpack", variables, {**spec, "model": "NoNet"})
  weights.save_weights(d / "no_kind.msgpack", variables, {"model": "SSDSmall"})
  weights.save_weights(d / "bad_spec.msgpack", variables, {**spec, "nms": "book"})
  (d / "dir_without_weights").mkdir()
  return d


# (loader, file, exception, message regex); {d} is the fixture's directory.
ROWS = [
    (Detector.load, "{d}/missing.msgpack", FileNotFoundError, "no weights file .*missing"),
    (Detector.load, "{d}/dir_without_weights", FileNotFoundError,
     "no weights.msgpack in the directory .*dir_without_weights"),
    (Detector.load, "{d}/truncated.msgpack", ValueError,
     "truncated.msgpack.* not a readable msgpack"),
    (Detector.load, "{d}/garbage.msgpack", ValueError, "garbage.msgpack"),
    (Detector.load, "{d}/legacy.msgpack", ValueError, "legacy.msgpack.*without a model "
     "description"),
    (Detector.load, "{d}/ssdsmall_as_tiny.msgpack", ValueError,
     "ssdsmall_as_tiny.msgpack.* do not fit SSDTiny.*shapes differ"),
    (Segmenter.load, "{d}/fcnsmall_as_tiny.msgpack", ValueError,
     "fcnsmall_as_tiny.msgpack.* do not fit FCNTiny"),
    (Detector.load, "{d}/classes.msgpack", ValueError, "classes.msgpack.* do not fit SSDSmall"),
    (Detector.load, "{d}/unknown_model.msgpack", ValueError, "unknown model 'NoNet'"),
    (Detector.load, "{d}/no_kind.msgpack", ValueError, r"holds a model \(SSDSmall\), not a "
     "detector"),
    (Detector.load, "{d}/bad_spec.msgpack", ValueError, "`nms` must be one of"),
    (Segmenter.load, str(SSD), ValueError, r"holds a detector \(SSDSmallP2\), not a segmenter"),
    (Detector.load, str(FCN), ValueError, r"holds a segmenter \(FCNSmall\), not a detector"),
]


@pytest.mark.parametrize("load, path, error, message", ROWS,
                         ids=[f"{r[0].__qualname__}:{pathlib.Path(r[1]).name}" for r in ROWS])
def test_bad_weight_files(load, path, error, message, files):
  with pytest.raises(error) as e:
    load(path.replace("{d}", str(files)))
  assert re.search(message, str(e.value), re.S), str(e.value)
