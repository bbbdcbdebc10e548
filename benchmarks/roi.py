"""ROI Align / ROI Pool: forward + backward vs torchvision, on a Mask R-CNN-sized case.

The case: 2 images of 800 x 1088, a stride-16 map (``[2, 50, 68, 256]``), 256 proposals per
image (sides 32-512 pixels, some past the border), 7 x 7 (box head) and 14 x 14 (mask head)
outputs, ``sampling_ratio`` 2 (Mask R-CNN's) and -1 (torchvision's adaptive default),
``aligned=True``. The timed step is what training does: the pooled features and the gradient
of ``sum(pooled * w)`` with respect to the map (``jax.value_and_grad`` under ``jit`` vs
``torchvision.ops.roi_align`` + ``backward()`` on NCHW tensors, features transposed once
outside the timing). ``check`` asserts the outputs and gradients agree and that two runs of
jaxvision's gradient are bit-identical (torchvision's CPU backward is deterministic too; its
CUDA one is not, pytorch/vision #1058).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import comparators
from benchmarks.common import Case
from jaxvision import ops


def proposals(num_images: int, per_image: int, image_hw=(800, 1088), *, seed: int = 0):
  """``[K, 5]`` float32 rows (image, x1, y1, x2, y2), sides log-uniform in [32, 512]."""
  rng = np.random.default_rng(seed)
  k = num_images * per_image
  side = np.exp(rng.uniform(np.log(32), np.log(512), size=(k, 2)))
  centre = rng.uniform(0, 1, size=(k, 2)) * np.array(image_hw[::-1])
  boxes = np.concatenate([centre - side / 2, centre + side / 2], axis=1)
  index = np.repeat(np.arange(num_images), per_image)
  return np.concatenate([index[:, None], boxes], axis=1).astype(np.float32)


def _case(mode, op, out, sampling_ratio, device):
  torch, tv = comparators.torch(), comparators.torchvision()
  where = comparators.torch_device(device)
  if mode == "smoke":
    shape, per_image, image_hw = (1, 8, 10, 4), 6, (128, 160)
  else:
    shape, per_image, image_hw = (2, 50, 68, 256), 256, (800, 1088)
  rng = np.random.default_rng(0)
  features = rng.normal(size=shape).astype(np.float32)
  rois = proposals(shape[0], per_image, image_hw)
  k = len(rois)
  weights = rng.normal(size=(k, out, out, shape[-1])).astype(np.float32)
  scale = 1 / 16
  if op == "roi_align":
    kw = dict(output_size=out, spatial_scale=scale, sampling_ratio=sampling_ratio, aligned=True)
    name = f"roi_align fwd+bwd {k} boxes {out}x{out} sr={sampling_ratio}"
  else:
    kw = dict(output_size=out, spatial_scale=scale)
    name = f"roi_pool fwd+bwd {k} boxes {out}x{out}"
  fn = getattr(ops, op)
  jf, jr, jw = jnp.asarray(features), jnp.asarray(rois), jnp.asarray(weights)
  step = jax.jit(jax.value_and_grad(lambda f: jnp.sum(fn(f, jr, **kw) * jw)))

  def mine():
    return step(jf)

  impls = {"jaxvision": mine}
  missing = []
  if tv is not None and where is not None:
    tf_ = torch.from_numpy(features.transpose(0, 3, 1, 2).copy()).to(where)
    tr = torch.from_numpy(rois).to(where)
    tw = torch.from_numpy(weights.transpose(0, 3, 1, 2).copy()).to(where)
    tv_op = getattr(tv.ops, op)

    def theirs():
      x = tf_.detach().requires_grad_(True)
      y = tv_op(x, tr, **{"output_size": out, "spatial_scale": scale,
                         **({"sampling_ratio": sampling_ratio, "aligned": True}
                            if op == "roi_align" else {})})
      loss = (y * tw).sum()
      loss.backward()
      return loss, x.grad

    impls["torchvision"] = comparators.synced(theirs, device)
  else:
    missing.append("torchvision")

  def check(outs):
    loss, grad = outs["jaxvision"]
    loss2, grad2 = step(jf)
    if not np.array_equal(np.asarray(grad), np.asarray(grad2)):
      raise AssertionError(f"{name}: two runs of the gradient differ")
    if "torchvision" in outs:
      t_loss, t_grad = outs["torchvision"]
      t_grad = t_grad.cpu().numpy().transpose(0, 2, 3, 1)
      scale_ = max(1.0, float(np.abs(t_grad).max()))
      np.testing.assert_allclose(np.asarray(grad), t_grad, atol=2e-4 * scale_, rtol=2e-4)
      np.testing.assert_allclose(float(loss), float(t_loss.detach()), rtol=1e-3)

  return Case(family="roi", name=name, size=k, subject="jaxvision", impls=impls,
              goals={"torchvision": 1.0}, missing=missing, check=check, reps=5)


def cases(mode: str, device: str = "cpu") -> list[Case]:
  if mode == "smoke":
    return [_case(mode, "roi_align", 2, -1, device), _case(mode, "roi_pool", 2, -1, device)]
  settings = [("roi_align", 7, 2), ("roi_align", 14, 2), ("roi_pool", 7, None)]
  if mode == "full":
    settings += [("roi_align", 7, -1), ("roi_align", 14, -1)]
  return [_case(mode, op, out, sr, device) for op, out, sr in settings]
