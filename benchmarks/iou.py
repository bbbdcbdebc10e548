"""IoU family: the pairwise IoU / GIoU matrix."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import comparators, data
from benchmarks.common import Case
from jaxvision import ops
from jaxvision.reference import boxes as ref


def _close(subject: str, outs: dict, convert: dict) -> None:
  mine = np.asarray(outs[subject])
  for name, out in outs.items():
    if name != subject:
      np.testing.assert_allclose(mine, convert[name](out), atol=1e-5, err_msg=name)


def _write_floor(n: int, m: int):
  """Writes an ``[n, m]`` float32 array from a scalar: the memory-bandwidth floor of any
  kernel producing an ``n x m`` IoU matrix (it writes the same bytes, reads nothing)."""
  fill = jax.jit(lambda v: jnp.broadcast_to(v, (n, m)) + 0.0)
  value = jnp.float32(0.5)
  return lambda: fill(value)


def cases(mode: str, device: str = "cpu") -> list[Case]:
  tv, torch = comparators.torchvision(), comparators.torch()
  where = comparators.torch_device(device)
  sizes = {"smoke": (64,), "quick": (1000, 5000),
           "full": (1000, 5000, 10000) + ((20000,) if device == "gpu" else ())}[mode]
  giou_sizes = (64,) if mode == "smoke" else (5000,)
  out = []
  for fn_name, n_list, tv_name, ref_name in (
      ("box_iou", sizes, "box_iou", "box_iou"),
      ("generalized_box_iou", giou_sizes, "generalized_box_iou", "generalized_box_iou")):
    for n in n_list:
      b1, _ = data.uniform_boxes(n, seed=1)
      b2, _ = data.uniform_boxes(n, seed=2)
      j1, j2 = jnp.asarray(b1), jnp.asarray(b2)
      fn = getattr(ops, fn_name)
      convert = {"numpy-reference": np.asarray}
      if device == "gpu":
        subject = "jaxvision-pallas"
        impls = {subject: functools.partial(fn, j1, j2, implementation="pallas"),
                 "jaxvision-xla": functools.partial(fn, j1, j2, implementation="xla")}
        convert["jaxvision-xla"] = np.asarray
        impls["write-bandwidth floor"] = _write_floor(n, n)
        goals = {"write-bandwidth floor": 0.5}  # within 2x of the floor
      else:
        subject = "jaxvision"
        impls = {subject: functools.partial(fn, j1, j2)}
        goals = {"torchvision": 10.0} if (fn_name == "box_iou" and n == 5000) else {}
        if fn_name == "box_iou":
          # The same floor on the CPU: box_iou within 2x of filling its output.
          impls["write-bandwidth floor"] = _write_floor(n, n)
          goals["write-bandwidth floor"] = 0.5
      if n <= 1000:
        impls["numpy-reference"] = functools.partial(getattr(ref, ref_name), b1, b2)
      missing = []
      if tv is not None and where is not None:
        t1, t2 = torch.from_numpy(b1).to(where), torch.from_numpy(b2).to(where)
        impls["torchvision"] = comparators.synced(
            functools.partial(getattr(tv.ops, tv_name), t1, t2), device)
        convert["torchvision"] = lambda o: o.cpu().numpy()
      else:
        missing.append("torchvision")

      def check(outs, subject=subject, convert=convert):
        outs = {k: v for k, v in outs.items() if k != "write-bandwidth floor"}
        _close(subject, outs, convert)

      out.append(Case(
          family="iou", name=f"{fn_name} {n}x{n}", size=n, subject=subject, impls=impls,
          goals=goals, missing=missing, check=check, reps=5))
  return out
