"""Damaged checkpoints: restoring a checkpoint directory whose newest step is damaged falls
back to the step before it with one warning naming the damaged step directory (and moves that
directory aside); when every step is damaged, one line names the directory and the steps."""

from __future__ import annotations

import logging
import re
import shutil

import pytest

from jaxvision.train import Checkpointer
from tests.train import _ckpt_damage
from tests.train.test_checkpoint import _iterator, _state

FALLS_BACK = "damaged checkpoint -> falls back with a warning"
ALL_DAMAGED = "all damaged -> one-line error"
WARNING = (r"^checkpoint {d}/3 cannot be restored \({error}: [^\n]*\); resuming from step 2; "
           r"moved to {d}/3\.damaged-\d{8}T\d{6}Z\.$")

# (damage kind, steps damaged, outcome, message regex); {d} is the checkpoint directory.
ROWS = [
    ("truncate", (3,), FALLS_BACK, WARNING.replace("{error}", "ValueError")),
    ("garbage", (3,), FALLS_BACK, WARNING.replace("{error}", "ValueError")),
    ("metadata", (3,), FALLS_BACK, WARNING.replace("{error}", "ValueError")),
    ("manifest", (3,), FALLS_BACK, WARNING.replace("{error}", "ValueError")),
    ("item", (3,), FALLS_BACK, WARNING.replace("{error}", "KeyError")),
    ("truncate", (1, 2, 3), ALL_DAMAGED,
     r"^no checkpoint in {d} can be restored into this state: tried steps 3 \(ValueError\), "
     r"2 \(ValueError\), 1 \(ValueError\); see the warnings above\.$"),
    ("item", (1, 2, 3), ALL_DAMAGED,
     r"^no checkpoint in {d} can be restored into this state: tried steps 3 \(KeyError\), "
     r"2 \(KeyError\), 1 \(KeyError\); see the warnings above\.$"),
]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
  directory = tmp_path_factory.mktemp("saved") / "ckpt"
  _ckpt_damage.save_steps(directory)
  return directory


@pytest.mark.parametrize("kind, steps, outcome, message", ROWS,
                         ids=[f"{r[0]}-steps{''.join(map(str, r[1]))}" for r in ROWS])
def test_damaged_checkpoints(kind, steps, outcome, message, saved, tmp_path, caplog):
  d = tmp_path / "ckpt"
  shutil.copytree(saved, d)
  for step in steps:
    _ckpt_damage.DAMAGES[kind][0](str(d / str(step)))
  pattern = message.replace("{d}", re.escape(str(d)))
  with Checkpointer(d, save_every=1, keep=3) as ckpt:
    if outcome == FALLS_BACK:
      state, _ = ckpt.restore(_state(0.0), _iterator())
      assert ckpt.restored_step == 2 and float(state.params["w"][0, 0]) == 2.0
      warnings = [r.getMessage() for r in caplog.records
                  if r.name == "jaxvision.train.checkpoint" and r.levelno == logging.WARNING]
      assert len(warnings) == 1 and re.search(pattern, warnings[0]), warnings
      assert ckpt.save(3, _state(3.0), _iterator())
    else:
      with pytest.raises(RuntimeError) as e:
        ckpt.restore(_state(0.0), _iterator())
      assert re.search(pattern, str(e.value)), str(e.value)
