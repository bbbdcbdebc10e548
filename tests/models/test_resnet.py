"""Tests of the ResNet v1 / v2 backbones (``jaxvision.models.resnet``).

Shapes, strides and channels of every stage are traced with ``jax.eval_shape`` (nothing is
computed); the parameter count of the book's ResNet56v2 is checked against a count written
out from the book's ``resnet_v2`` layer by layer; a tiny variant runs for real to check the
BatchNorm modes (batch statistics and a 0.9-momentum update in training, running averages in
evaluation).
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxvision import models
from jaxvision.models import resnet
from tests.models._variables import random_variables

_KEY = jax.random.key(0)


def _shapes(model, image_shape, batch=2, dtype=jnp.float32):
  """``(variables, outputs)`` as shape structs."""
  x = jax.ShapeDtypeStruct((batch,) + tuple(image_shape), dtype)

  def run(x):
    variables = model.init(_KEY, x, train=False)
    return variables, model.apply(variables, x, train=False)

  return jax.eval_shape(run, x)


def _count(tree) -> int:
  return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(tree))


# ---------------------------------------------------------------------------------------------
# Shapes.


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("num_stages", [1, 2, 3, 4])
@pytest.mark.parametrize("stem_strides", [1, 2])
def test_stage_shapes_strides_and_channels(version, num_stages, stem_strides):
  width, n = 4, 1
  if version == "v1":
    model = resnet.ResNetV1(depth=2 * num_stages * n + 2, width=width, num_stages=num_stages,
                            stem_strides=stem_strides)
    channels = [width * 2 ** s for s in range(num_stages)]
  else:
    model = resnet.ResNetV2(depth=3 * num_stages * n + 2, width=width, num_stages=num_stages,
                            stem_strides=stem_strides)
    channels = [width * 4 * 2 ** s for s in range(num_stages)]  # 16 -> 64, 128, 256 (x4)
  _, out = _shapes(model, (32, 48, 3))
  assert len(out["stages"]) == num_stages
  for s, (stage, c) in enumerate(zip(out["stages"], channels)):
    stride = stem_strides * 2 ** s
    assert stage.shape == (2, 32 // stride, 48 // stride, c), (s, stage.shape)
  assert out["features"].shape == out["stages"][-1].shape


def test_odd_sizes_round_up():
  _, out = _shapes(resnet.ResNetV2(depth=11, width=4, stem_strides=2), (30, 45, 3))
  # SAME stride-2 convs: ceil at every halving.
  assert [s.shape[1:3] for s in out["stages"]] == [(15, 23), (8, 12), (4, 6)]


def test_book_variants():
  _, out = _shapes(models.ResNet56v2(), (32, 32, 3))
  assert [s.shape[1:] for s in out["stages"]] == [(32, 32, 64), (16, 16, 128), (8, 8, 256)]
  _, out = _shapes(models.ResNet56v2(stem_strides=2), (480, 640, 3), batch=1)
  assert out["features"].shape == (1, 60, 80, 256)  # 1/8 with a stride-2 stem
  _, out = _shapes(models.ResNet20v1(), (32, 32, 3))
  assert [s.shape[-1] for s in out["stages"]] == [16, 32, 64]
  _, out = _shapes(models.ResNetTiny(), (16, 16, 3))
  assert [s.shape[1:] for s in out["stages"]] == [(16, 16, 16), (8, 8, 32)]
  for partial in (models.ResNet20v2, models.ResNet11v2):
    _, out = _shapes(partial(), (16, 16, 3))
    assert out["features"].shape == (2, 4, 4, 256)


def test_bfloat16_computation_float32_params():
  variables, out = _shapes(resnet.ResNetV2(depth=11, width=4, dtype=jnp.bfloat16),
                           (16, 16, 3))
  assert out["features"].dtype == jnp.bfloat16
  assert {a.dtype for a in jax.tree.leaves(variables["params"])} == {jnp.dtype(jnp.float32)}


# ---------------------------------------------------------------------------------------------
# Depth validation.


@pytest.mark.parametrize("cls,depth,num_stages", [
    (resnet.ResNetV1, 21, 3),    # not 6n + 2
    (resnet.ResNetV1, 2, 3),     # n = 0
    (resnet.ResNetV1, 8, 2),     # 4n + 2 for two stages: 8 is not
    (resnet.ResNetV1, 20.0, 3),  # not an int
    (resnet.ResNetV1, True, 3),
    (resnet.ResNetV2, 20 + 1, 3),
    (resnet.ResNetV2, 2, 3),
    (resnet.ResNetV2, 11, 2),    # 6n + 2 for two stages
    (resnet.ResNetV2, 56, 4),    # 12n + 2 for four stages
])
def test_depth_validation(cls, depth, num_stages):
  with pytest.raises(ValueError, match="`depth`"):
    _shapes(cls(depth=depth, num_stages=num_stages, width=4), (16, 16, 3))


# ---------------------------------------------------------------------------------------------
# Parameter count of the book's ResNet56v2.


def _book_resnet_v2_counts(depth=56, width=16, stages=3, in_channels=3):
  """``(trainable, non_trainable)`` of the book's ``resnet_v2`` up to its final BN-ReLU (no
  classifier), written out from the Keras code: every ``resnet_layer`` conv has a bias, every
  BatchNormalization has gamma / beta (trainable) and a moving mean / variance."""
  n = (depth - 2) // (3 * stages)
  train = nontrain = 0

  def conv(k, cin, cout):
    nonlocal train
    train += k * k * cin * cout + cout

  def bn(c):
    nonlocal train, nontrain
    train += 2 * c
    nontrain += 2 * c

  conv(3, in_channels, width)  # stem: conv-BN-ReLU
  bn(width)
  cin, inner = width, width
  for s in range(stages):
    out = inner * 4 if s == 0 else inner * 2
    for b in range(n):
      if not (s == 0 and b == 0):
        bn(cin)          # pre-activation of the 1x1 conv
      conv(1, cin, inner)
      bn(inner)
      conv(3, inner, inner)
      bn(inner)
      conv(1, inner, out)
      if b == 0:
        conv(1, cin, out)  # projection shortcut
      cin = out
    inner = out
  bn(cin)  # the final BN-ReLU
  return train, nontrain


def test_resnet56v2_parameter_count():
  variables, _ = _shapes(models.ResNet56v2(), (32, 32, 3), batch=1)
  params, stats = _count(variables["params"]), _count(variables["batch_stats"])
  book_train, book_stats = _book_resnet_v2_counts()
  print(f"ResNet56v2 (3 stages, width 16): {params:,} params, {stats:,} batch stats; the "
        f"book's backbone: {book_train:,} trainable, {book_stats:,} non-trainable")
  # With the book's classifier (8x8 average pool, Dense 256 -> 10) this is the 1,673,738
  # parameters of the book's model summary. The one difference: the stem conv has no bias
  # here (a BatchNorm follows it).
  assert book_train + 256 * 10 + 10 + book_stats == 1_673_738
  assert params == book_train - 16
  assert stats == book_stats
  assert 1_600_000 < params < 1_700_000  # ~1.65 M


def test_resnet20v1_parameter_count():
  variables, _ = _shapes(models.ResNet20v1(), (32, 32, 3), batch=1)
  params = _count(variables["params"])
  # Stem 3x3x3x16 + BN; 9 blocks of two 3x3 convs + 2 BN; 1x1 projections with BN at the
  # two stage changes (no conv biases).
  want = 3 * 3 * 3 * 16 + 32
  cin = 16
  for s in range(3):
    c = 16 * 2 ** s
    for b in range(3):
      want += 9 * cin * c + 9 * c * c + 4 * c
      if cin != c:
        want += cin * c + 2 * c
      cin = c
  assert params == want


# ---------------------------------------------------------------------------------------------
# BatchNorm in training and evaluation.


@pytest.mark.parametrize("cls", [resnet.ResNetV1, resnet.ResNetV2])
def test_train_updates_batch_stats_eval_uses_them(cls):
  model = cls(depth=8 if cls is resnet.ResNetV2 else 6, width=4, num_stages=2)
  x = jax.random.normal(jax.random.key(1), (4, 8, 8, 3)) * 2.0 + 1.0
  variables = random_variables(model, x)
  train_apply = jax.jit(functools.partial(model.apply, train=True, mutable=["batch_stats"]))
  eval_apply = jax.jit(functools.partial(model.apply, train=False))
  out, updates = train_apply(variables, x)
  new_stats = updates["batch_stats"]
  old_leaves = jax.tree.leaves(variables["batch_stats"])
  new_leaves = jax.tree.leaves(new_stats)
  assert len(old_leaves) == len(new_leaves) > 0
  assert all(not np.allclose(a, b) for a, b in zip(old_leaves, new_leaves))
  # The stem BN: mean <- 0.9 * 0 + 0.1 * batch mean of the stem conv's output, var likewise.
  stem = nn.Conv(4, (3, 3), use_bias=False, padding="SAME")
  y = stem.apply({"params": variables["params"]["Conv_0"]}, x)
  bn = new_stats["BatchNorm_0"]
  np.testing.assert_allclose(bn["mean"], 0.1 * y.mean((0, 1, 2)), rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(bn["var"], 0.9 + 0.1 * y.var((0, 1, 2)), rtol=1e-4, atol=1e-6)
  # Training normalises with the batch, evaluation with the running averages.
  eval_out = eval_apply(variables, x)
  assert not np.allclose(out["features"], eval_out["features"])
  again = eval_apply({"params": variables["params"], "batch_stats": new_stats}, x)
  assert not np.allclose(again["features"], eval_out["features"])
  # Evaluation is deterministic and does not need a mutable collection.
  np.testing.assert_array_equal(eval_out["features"],
                                eval_apply(variables, x)["features"])
  # Training without a mutable batch_stats is an error (flax refuses the update).
  with pytest.raises(Exception, match="batch_stats"):
    jax.eval_shape(functools.partial(model.apply, train=True), variables, x)
  if cls is resnet.ResNetV2:
    assert (np.asarray(out["features"]) >= 0).all()  # the final BN-ReLU


def test_v2_book_block_structure():
  """Block 0 of stage 0 has no pre-activation; the others do; every block-0 has a biased
  1x1 projection shortcut."""
  variables, _ = _shapes(resnet.ResNetV2(depth=20, width=4), (8, 8, 3), batch=1)
  p = variables["params"]
  convs = sorted((k for k in p if k.startswith("Conv_")), key=lambda k: int(k[5:]))
  norms = [k for k in p if k.startswith("BatchNorm_")]
  n = 2
  # stem + per block 3 convs + a shortcut for each stage's block 0.
  assert len(convs) == 1 + 3 * 3 * n + 3
  # stem BN + per block 2 inner BNs + pre-activations (all blocks but the very first) + final.
  assert len(norms) == 1 + 2 * 3 * n + (3 * n - 1) + 1
  assert "bias" not in p["Conv_0"] and all("bias" in p[k] for k in convs[1:])
  assert p["Conv_1"]["kernel"].shape == (1, 1, 4, 16)  # stage 0 block 0: projection 4 -> 16
