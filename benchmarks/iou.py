"""IoU family: the pairwise IoU / GIoU matrix."""

from __future__ import annotations

import functools

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


def cases(mode: str, device: str = "cpu") -> list[Case]:
  tv, torch = comparators.torchvision(), comparators.torch()
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
      impls = {"jaxvision": functools.partial(getattr(ops, fn_name), j1, j2)}
      convert = {"numpy-reference": np.asarray}
      if n <= 1000:
        impls["numpy-reference"] = functools.partial(getattr(ref, ref_name), b1, b2)
      missing = []
      if tv is not None:
        t1, t2 = torch.from_numpy(b1), torch.from_numpy(b2)
        impls["torchvision"] = functools.partial(getattr(tv.ops, tv_name), t1, t2)
        convert["torchvision"] = lambda o: o.numpy()
      else:
        missing.append("torchvision")
      goals = {"torchvision": 10.0} if (fn_name == "box_iou" and n == 5000) else {}
      out.append(Case(
          family="iou", name=f"{fn_name} {n}x{n}", size=n, subject="jaxvision", impls=impls,
          goals=goals, missing=missing,
          check=functools.partial(_close, "jaxvision", convert=convert), reps=5))
  return out
