"""SSD: a whole training step and batched inference + NMS, vs the same network in PyTorch.

* ``SSD train step``: ``models.SSDSmall(num_classes=11)`` (ResNet v2 backbone: depth 14,
  width 8, 2 stages, stride-2 stem; 4-level pyramid; 3x3 class / offset heads, 4 anchors per
  point) at 120 x 160, batch 32, ``ops.ssd_loss`` (cross entropy summed over every anchor +
  smooth L1 over the positives, both divided by the number of positives) on normalized
  offsets (variances 0.1 / 0.2), Adam 1e-3 — jaxvision (flax + optax under ``jit``) vs the
  same architecture in PyTorch eager mode (``torch.optim.Adam``), started from the same
  weights (copied from flax). The time ratio is the images/s ratio.

  Two cases: ``targets precomputed`` is the like-for-like one (the goal, >= 1x): both sides
  get the same labels / offset targets, computed once by
  ``jaxvision.models.ssd.make_targets`` (``ops.match_anchors`` + ``ops.encode_boxes``, match
  IoU 0.6). ``targets in step`` is jaxvision's training recipe: the loss of
  ``jaxvision.tasks.ssd_task`` (here with the CE over every anchor, no hard negative mining),
  which matches anchors to the ground truth inside the jitted step, against the same PyTorch
  step (which still gets the precomputed targets, so it does less work; no goal).
* ``SSD inference + NMS, batch 8``: ``jaxvision.inference.Detector`` (one jitted function:
  network, softmax, ``decode_boxes``, the book's class-agnostic ``detection_nms`` with class
  threshold 0.5, IoU 0.2, at most 32 detections) vs PyTorch eager (``inference_mode``: the
  network, softmax, the same decoding, then per image the anchors whose arg-max class is not
  the background with score >= 0.5 and ``torchvision.ops.nms`` at IoU 0.2, first 32 kept).
  torchvision suppresses ``IoU > 0.2`` where the book (and ``detection_nms``) suppress
  ``IoU >= 0.2``; with float IoUs the two only differ on exact ties. No goal.

The PyTorch network: ``Conv2d`` with TF/flax ``'SAME'`` padding (symmetric ``padding=`` when
it is symmetric, otherwise an explicit ``F.pad`` first: the stride-2 stem and pyramid convs on
even sides pad one pixel at the bottom / right only), ``BatchNorm2d(eps=1e-5,
momentum=0.1)`` (flax's decay 0.9), ``ELU``; its parameter count is asserted equal to the flax
model's, and its outputs / loss are checked against jaxvision's from the same weights.
Inputs are synthetic scenes (1-8 noise-filled boxes of 0.15-0.6 of the image height on a
black background, classes 1-10), uint8, divided by 255 inside both steps. For the inference
case the weights are untrained, with the background logit of the class heads raised by
``BACKGROUND_BIAS``: about 89% of the anchors are then background and 40-150 per image are NMS
candidates (class score >= 0.5), a detector-like load (without it, ~2/3 of the anchors would
be candidates, which would mostly time the NMS).

Noise: PyTorch's OpenMP threads spin-wait at every op's barrier. On a machine whose cores are
busy with other work (load above the core count), that made its CPU training step 2-6x
slower in our runs, so the ratios then flatter jaxvision; ``OMP_WAIT_POLICY=PASSIVE`` removes
that effect (on an idle machine the default is the fair setting). Compare runs on an idle
machine, or run both ways.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import comparators
from benchmarks.common import Case
from jaxvision import compat, ops
from jaxvision.data import ArraySource, scenes
from jaxvision.inference import Detector, DetectorSpec, build_model
from jaxvision.models import ssd as ssd_lib
from jaxvision.tasks import ssd_task

VARIANCES = (0.1, 0.2)  # the book's --normalize
BACKGROUND_BIAS = 4.0  # inference case: added to the class heads' background logits
MATCH_IOU = 0.6  # the book's IoU for the anchors matched beyond the bipartite pass
ANCHOR_SCALES = (0.15, 0.75)  # anchor sizes s = linspace(0.15, 0.75, L + 1)

# The CPU SSD recipe (experiments/ssd.py's `cpu` config, written out so that benchmarks/
# imports jaxvision only): SSDSmall on 120 x 160 digit scenes (background + 10 classes),
# trained with batches of 32; the book's class-agnostic NMS.
RECIPE = DetectorSpec(
    model="SSDSmall", num_classes=len(scenes.CLASS_NAMES), image_size=(120, 160),
    class_names=scenes.CLASS_NAMES, anchor_sizes=ssd_lib.anchor_sizes(4, ANCHOR_SCALES),
    variances=VARIANCES, nms="class_agnostic", score_threshold=0.5, nms_iou=0.2,
    max_detections=32)
TRAIN_BATCH = 32
INFERENCE_BATCH = 8  # Detector.detect's default batch
# `--smoke`: the tiny test model at 48 x 64 (3 pyramid levels).
SMOKE = dataclasses.replace(RECIPE, model="SSDTiny", image_size=(48, 64),
                            anchor_sizes=ssd_lib.anchor_sizes(3, ANCHOR_SCALES),
                            max_detections=8)


# ---------------------------------------------------------------------------------------------
# Inputs.


def _scenes(batch: int, image_size, num_classes: int, *, max_boxes: int = 8, seed: int = 0):
  """Synthetic detection batch: uint8 ``[B, H, W, 3]`` images, padded ``[B, G, 4]`` boxes,
  ``[B, G]`` classes and ``[B]`` counts (as ``jaxvision.data.scenes`` arrays)."""
  rng = np.random.default_rng(seed)
  h, w = image_size
  images = np.zeros((batch, h, w, 3), np.uint8)
  boxes = np.zeros((batch, max_boxes, 4), np.float32)
  classes = np.zeros((batch, max_boxes), np.int32)
  num = rng.integers(1, max_boxes + 1, batch).astype(np.int32)
  for i in range(batch):
    for j in range(num[i]):
      bh = rng.uniform(0.15, 0.6) * h
      bw = bh * rng.uniform(0.6, 1.0)
      y0, x0 = rng.uniform(0, h - bh), rng.uniform(0, w - bw)
      boxes[i, j] = (x0, y0, x0 + bw, y0 + bh)
      classes[i, j] = rng.integers(1, num_classes)
      ys, xs = slice(int(y0), int(y0 + bh)), slice(int(x0), int(x0 + bw))
      images[i, ys, xs] = rng.integers(0, 256, images[i, ys, xs].shape, dtype=np.uint8)
  return images, boxes, classes, num


def _setup(mode: str, *, inference: bool):
  """``(spec, model, anchors, batch)``: the CPU recipe's SSDSmall at 120 x 160, or the tiny
  test model for ``--smoke``."""
  spec = SMOKE if mode == "smoke" else RECIPE
  if inference:
    batch = 2 if mode == "smoke" else INFERENCE_BATCH
  else:
    batch = 4 if mode == "smoke" else TRAIN_BATCH
  model = build_model(spec.model, spec.num_classes)
  anchors = ssd_lib.make_anchors(model, spec.image_size, sizes=spec.anchor_sizes,
                                 aspect_ratios=spec.aspect_ratios)
  return spec, model, anchors, batch


# ---------------------------------------------------------------------------------------------
# The same network in PyTorch.


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
  """TF / flax ``'SAME'`` padding ``(before, after)`` of one spatial axis."""
  out = -(-size // stride)
  total = max((out - 1) * stride + kernel - size, 0)
  return total // 2, total - total // 2


def _torch_ssd(torch, model):
  """A ``torch.nn.Module`` with the architecture of the flax ``models.SSD`` ``model``
  (``forward(x uint8 NCHW) -> (classes [B, A, C] logits, offsets [B, A, 4])``), plus
  ``load_flax(variables)``."""
  nn, F = torch.nn, torch.nn.functional
  bb = model.backbone.keywords  # functools.partial(ResNetV2, depth=..., ...)
  depth, width = bb["depth"], bb["width"]
  num_stages, stem_strides = bb.get("num_stages", 3), bb.get("stem_strides", 1)
  n = (depth - 2) // (3 * num_stages)
  k, c = model.anchors_per_point, model.num_classes

  class SameConv2d(nn.Conv2d):
    """``Conv2d`` with flax's ``padding='SAME'``."""

    def forward(self, x):
      (t, b), (l, r) = (_same_pads(s, kk, st) for s, kk, st in
                        zip(x.shape[2:], self.kernel_size, self.stride))
      if t == b and l == r:
        return F.conv2d(x, self.weight, self.bias, self.stride, (t, l))
      return F.conv2d(F.pad(x, (l, r, t, b)), self.weight, self.bias, self.stride)

  def bn(ch):  # flax BatchNorm(momentum=0.9, epsilon=1e-5)
    return nn.BatchNorm2d(ch, eps=1e-5, momentum=0.1)

  class Backbone(nn.Module):
    """``models.ResNetV2``; ``convs`` / ``bns`` in flax's creation order (Conv_i, BatchNorm_i)."""

    def __init__(self):
      super().__init__()
      convs, bns, self.plan = [], [], []

      def conv(cin, cout, kernel, stride=1, bias=True):
        convs.append(SameConv2d(cin, cout, kernel, stride, bias=bias))
        return len(convs) - 1

      def norm(ch):
        bns.append(bn(ch))
        return len(bns) - 1

      self.stem = (conv(3, width, 3, stem_strides, bias=False), norm(width))
      cin, inner = width, width
      for s in range(num_stages):
        out = inner * 4 if s == 0 else inner * 2
        for b in range(n):
          stride = 2 if s > 0 and b == 0 else 1
          pre = None if s == 0 and b == 0 else norm(cin)
          shortcut = conv(cin, out, 1, stride) if b == 0 else None
          c1 = conv(cin, inner, 1, stride)
          n1 = norm(inner)
          c2 = conv(inner, inner, 3)
          n2 = norm(inner)
          c3 = conv(inner, out, 1)
          self.plan.append((pre, shortcut, c1, n1, c2, n2, c3))
          cin = out
        inner = out
      self.final = norm(cin)
      self.channels = cin
      self.convs, self.bns = nn.ModuleList(convs), nn.ModuleList(bns)

    def forward(self, x):
      cv, bn_ = self.convs, self.bns
      x = F.relu(bn_[self.stem[1]](cv[self.stem[0]](x)))
      for pre, shortcut, c1, n1, c2, n2, c3 in self.plan:
        y = x if pre is None else F.relu(bn_[pre](x))
        skip = x if shortcut is None else cv[shortcut](x)
        y = cv[c1](y)
        y = cv[c2](F.relu(bn_[n1](y)))
        y = cv[c3](F.relu(bn_[n2](y)))
        x = skip + y
      return F.relu(bn_[self.final](x))

  class SSD(nn.Module):

    def __init__(self):
      super().__init__()
      self.backbone = Backbone()
      ch = self.backbone.channels
      pw = model.pyramid_width or ch
      self.pyramid_convs = nn.ModuleList()
      self.pyramid_bns = nn.ModuleList()
      cin = ch
      for _ in range(model.num_levels - 1):
        self.pyramid_convs.append(SameConv2d(cin, pw, 3, 2, bias=False))
        self.pyramid_bns.append(bn(pw))
        cin = pw
      widths = [ch] + [pw] * (model.num_levels - 1)
      self.class_heads = nn.ModuleList([SameConv2d(w, k * c, 3) for w in widths])
      self.offset_heads = nn.ModuleList([SameConv2d(w, k * 4, 3) for w in widths])

    def forward(self, images):
      x = self.backbone(images.float() / 255.0)
      (t, b), (l, r) = (_same_pads(s, 2, 2) for s in x.shape[2:])
      level = F.avg_pool2d(F.pad(x, (l, r, t, b)) if t + b + l + r else x, 2, 2)
      levels = [level]
      for conv, norm in zip(self.pyramid_convs, self.pyramid_bns):
        level = F.elu(norm(conv(level)))
        levels.append(level)
      classes, offsets = [], []
      for level, ch, oh in zip(levels, self.class_heads, self.offset_heads):
        bsz = level.shape[0]
        classes.append(ch(level).permute(0, 2, 3, 1).reshape(bsz, -1, c))
        offsets.append(oh(level).permute(0, 2, 3, 1).reshape(bsz, -1, 4))
      return torch.cat(classes, 1), torch.cat(offsets, 1)

    @torch.no_grad()
    def load_flax(self, variables):
      params, stats = variables["params"], variables["batch_stats"]
      bb_name = next(name for name in params if name.startswith("ResNet"))

      def t(a):
        return torch.from_numpy(np.array(a, np.float32))

      def set_conv(mod, p):
        mod.weight.copy_(t(p["kernel"]).permute(3, 2, 0, 1))
        if mod.bias is not None:
          mod.bias.copy_(t(p["bias"]))

      def set_bn(mod, p, s):
        mod.weight.copy_(t(p["scale"]))
        mod.bias.copy_(t(p["bias"]))
        mod.running_mean.copy_(t(s["mean"]))
        mod.running_var.copy_(t(s["var"]))

      for i, mod in enumerate(self.backbone.convs):
        set_conv(mod, params[bb_name][f"Conv_{i}"])
      for i, mod in enumerate(self.backbone.bns):
        set_bn(mod, params[bb_name][f"BatchNorm_{i}"], stats[bb_name][f"BatchNorm_{i}"])
      for i, (conv, norm) in enumerate(zip(self.pyramid_convs, self.pyramid_bns)):
        set_conv(conv, params[f"Conv_{i}"])
        set_bn(norm, params[f"BatchNorm_{i}"], stats[f"BatchNorm_{i}"])
      for i, (ch, oh) in enumerate(zip(self.class_heads, self.offset_heads)):
        set_conv(ch, params[f"classes_{i}"])
        set_conv(oh, params[f"offsets_{i}"])
      return self

  return SSD()


def _param_count(variables) -> int:
  return sum(int(np.size(a)) for a in jax.tree_util.tree_leaves(variables["params"]))


def _torch_model_like(torch, model, variables, where):
  """The PyTorch twin of ``model`` with the flax ``variables`` copied in (same count of
  parameters asserted)."""
  net = _torch_ssd(torch, model).load_flax(variables).to(where)
  mine, theirs = _param_count(variables), sum(p.numel() for p in net.parameters())
  if mine != theirs:
    raise AssertionError(f"SSD parameter counts differ: flax {mine}, torch {theirs}")
  return net


def _torch_ssd_loss(torch, classes, offsets, labels, targets):
  """``ops.ssd_loss(..., classification="ce", localization="smooth_l1")``."""
  F = torch.nn.functional
  positive = labels > 0
  denom = positive.sum().clamp_min(1).float()
  ce = F.cross_entropy(classes.reshape(-1, classes.shape[-1]), labels.reshape(-1),
                       reduction="sum")
  loc = F.smooth_l1_loss(offsets, targets, reduction="none", beta=1.0).sum(-1)
  return (ce + (loc * positive).sum()) / denom


def _torch_decode(torch, offsets, anchors, variances=VARIANCES):
  """``ops.decode_boxes`` (positive anchor sides)."""
  v0, v1 = variances
  clip = math.log(1000.0 / 16)
  wa, ha = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
  cxa, cya = anchors[:, 0] + 0.5 * wa, anchors[:, 1] + 0.5 * ha
  cx = cxa + offsets[..., 0] * v0 * wa
  cy = cya + offsets[..., 1] * v0 * ha
  w = wa * torch.exp(torch.clamp_max(offsets[..., 2] * v1, clip))
  h = ha * torch.exp(torch.clamp_max(offsets[..., 3] * v1, clip))
  return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], -1)


# ---------------------------------------------------------------------------------------------
# Cases.


def train_cases(mode: str, device: str = "cpu") -> list[Case]:
  torch = comparators.torch_for(device)
  where = "cuda" if device == "gpu" else "cpu"
  spec, model, anchors, batch = _setup(mode, inference=False)
  images, boxes, classes, num = _scenes(batch, spec.image_size, spec.num_classes)
  x, jboxes, jclasses, jnum = (jnp.asarray(a) for a in (images, boxes, classes, num))
  labels, targets = jax.jit(functools.partial(
      ssd_lib.make_targets, match_iou=MATCH_IOU, variances=spec.variances))(
          anchors, jboxes, jclasses, jnum)
  variables = model.init(jax.random.key(0), jnp.zeros((1,) + tuple(spec.image_size) + (3,)),
                         train=False)
  tx = optax.adam(1e-3)
  # jaxvision's training loss: targets matched inside the step, the same CE + smooth L1 as
  # `loss_fn` below (every anchor in the CE, as the PyTorch side).
  task = ssd_task(spec, ArraySource({"image": images, "boxes": boxes, "classes": classes,
                                     "num_boxes": num}),
                  optimizer=tx, match_iou=MATCH_IOU, hard_negatives=None,
                  classification="ce", localization="smooth_l1")
  h, w = spec.image_size
  size = f"{batch}x{h}x{w}"
  params_note = f", {_param_count(variables)} params"  # torch's count is asserted equal

  def loss_fn(params, batch_stats, images, labels, targets):
    out, upd = model.apply({"params": params, "batch_stats": batch_stats},
                           images.astype(jnp.float32) / 255.0, train=True,
                           mutable=["batch_stats"])
    loss, _ = ops.ssd_loss(out["classes"], out["offsets"], labels, targets,
                           classification="ce", localization="smooth_l1")
    return loss, upd["batch_stats"]

  def loss_in_step(params, batch_stats, images, boxes, classes, num):
    batch = {"image": images, "boxes": boxes, "classes": classes, "num_boxes": num}
    loss, (_, batch_stats) = task.loss_fn(params, batch_stats, batch, None)
    return loss, batch_stats

  def make_step(loss):
    # The same compilation as jaxvision.train's step (see jaxvision.compat).
    @functools.partial(jax.jit, donate_argnums=(0, 1, 2),
                       compiler_options=compat.compiler_options())
    def step(params, batch_stats, opt_state, *data):
      (value, batch_stats), grads = jax.value_and_grad(loss, has_aux=True)(
          params, batch_stats, *data)
      updates, opt_state = tx.update(grads, opt_state, params)
      return optax.apply_updates(params, updates), batch_stats, opt_state, value

    return step

  if torch is not None:
    t_images = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).to(where)
    t_labels = torch.from_numpy(np.array(labels)).long().to(where)
    t_targets = torch.from_numpy(np.array(targets)).to(where)

  out = []
  variants = (("targets precomputed", loss_fn, (x, labels, targets), {"torch": 1.0}),
              ("jaxvision targets in step", loss_in_step, (x, jboxes, jclasses, jnum), {}))
  for label, loss, data, goals in variants:
    step = make_step(loss)
    # Fresh copies: the step donates its state.
    init = jax.tree_util.tree_map(jnp.array, (variables["params"], variables["batch_stats"]))
    state = {"s": (init[0], init[1], tx.init(init[0]))}
    losses = {"jaxvision": [], "torch": []}

    def jaxvision_step(step=step, state=state, data=data, losses=losses):
      p, b, o, value = step(*state["s"], *data)
      state["s"] = (p, b, o)
      losses["jaxvision"].append(value)
      return value

    impls = {"jaxvision": jaxvision_step}
    missing = []
    if torch is not None:
      net = _torch_model_like(torch, model, variables, where)
      net.train()
      opt = torch.optim.Adam(net.parameters(), lr=1e-3)

      def torch_step(net=net, opt=opt, losses=losses):
        opt.zero_grad(set_to_none=True)
        cls, off = net(t_images)
        value = _torch_ssd_loss(torch, cls, off, t_labels, t_targets)
        value.backward()
        opt.step()
        comparators.sync(device)
        value = value.detach().cpu()
        losses["torch"].append(value)
        return value

      impls["torch"] = torch_step
    else:
      missing.append("torch")

    def check(outs, losses=losses):
      del outs
      if not losses["torch"]:
        return
      # Same weights and data: the first step's loss (before any update) must agree; the
      # second (after one Adam update) to float32 noise (measured: ~1e-5 relative).
      got = [float(v) for v in losses["jaxvision"][:2]]
      want = [float(v) for v in losses["torch"][:2]]
      np.testing.assert_allclose(got[0], want[0], rtol=1e-4)
      np.testing.assert_allclose(got[1], want[1], rtol=1e-3)

    out.append(Case(family="ssd", name=f"SSD train step {size} ({label}{params_note})",
                    size=batch, subject="jaxvision", impls=impls, goals=goals,
                    missing=missing, check=check, reps=5))
  return out


def inference_cases(mode: str, device: str = "cpu") -> list[Case]:
  torch, tv = comparators.torch_for(device), comparators.torchvision()
  where = "cuda" if device == "gpu" else "cpu"
  spec, model, anchors, batch = _setup(mode, inference=True)
  images = _scenes(batch, spec.image_size, spec.num_classes, seed=1)[0]
  variables = model.init(jax.random.key(0), jnp.zeros((1,) + tuple(spec.image_size) + (3,)),
                         train=False)
  # Untrained heads call ~2/3 of the anchors foreground; a background bias brings that to a
  # detector-like ~10% (quick / full: 40-150 NMS candidates per image).
  bias = 2.0 if mode == "smoke" else BACKGROUND_BIAS
  params = dict(variables["params"])
  for name in params:
    if name.startswith("classes_"):  # channels: anchor-major, class 0 first
      params[name] = {"kernel": params[name]["kernel"],
                      "bias": params[name]["bias"].at[::model.num_classes].add(bias)}
  variables = {"params": params, "batch_stats": variables["batch_stats"]}
  # One jitted call: network, softmax, decoding and the spec's NMS (the images are already
  # at the model's input size, so nothing is resized).
  detector = Detector(spec, variables)
  x = jnp.asarray(images)
  impls = {"jaxvision": functools.partial(detector, x)}
  missing = []
  name = f"SSD inference + NMS, batch {batch} ({_param_count(variables)} params)"
  if torch is not None and tv is not None:
    net = _torch_model_like(torch, model, variables, where).eval()
    t_images = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).to(where)
    t_anchors = torch.from_numpy(np.array(anchors)).to(where)
    thr, iou, top = spec.score_threshold, spec.nms_iou, spec.max_detections

    def torch_predict():
      with torch.inference_mode():
        cls, off = net(t_images)
        probs = torch.softmax(cls, -1)
        boxes = _torch_decode(torch, off, t_anchors, spec.variances)
        scores, objects = probs.max(-1)
        out = []
        for b, s, o in zip(boxes, scores, objects):
          cand = torch.nonzero((o > 0) & (s >= thr), as_tuple=True)[0]
          keep = tv.ops.nms(b[cand], s[cand], iou)[:top]
          idx = cand[keep]
          out.append((b[idx].cpu(), s[idx].cpu(), o[idx].cpu()))
        comparators.sync(device)
        return out

    impls["torch+torchvision.nms"] = torch_predict
  else:
    missing.append("torch+torchvision.nms")

  def check(outs):
    det_boxes, det_scores, det_classes, count = (np.asarray(a) for a in outs["jaxvision"])
    if count.sum() == 0:
      raise AssertionError("SSD inference benchmark: no detections, the NMS does no work")
    if "torch+torchvision.nms" not in outs:
      return
    for i, (tb, ts, tc) in enumerate(outs["torch+torchvision.nms"]):
      n = int(count[i])
      if n != len(tb) or not np.array_equal(det_classes[i, :n], tc.numpy()):
        raise AssertionError(f"image {i}: jaxvision kept {n} boxes (classes "
                             f"{det_classes[i, :n].tolist()}), torch {len(tb)} "
                             f"({tc.numpy().tolist()})")
      np.testing.assert_allclose(det_boxes[i, :n], tb.numpy(), rtol=1e-4, atol=1e-2)
      np.testing.assert_allclose(det_scores[i, :n], ts.numpy(), rtol=1e-4, atol=1e-5)

  return [Case(family="ssd", name=name, size=batch, subject="jaxvision", impls=impls,
               missing=missing, check=check, reps=7)]


def cases(mode: str, device: str = "cpu") -> list[Case]:
  return train_cases(mode, device) + inference_cases(mode, device)
