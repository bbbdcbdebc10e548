"""WaveNet / TCN: mu-law vs the NumPy oracle, causality and the receptive field by
``jax.jacobian``, the last-step path and the sampler's cache against the full forward pass,
the whole network against a NumPy forward pass."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxvision import models
from jaxvision.models import wavenet as wn
from jaxvision.reference import sequence as ref

KEY = jax.random.key(0)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-1.5, 1.5, allow_nan=False), min_size=1, max_size=20),
       st.sampled_from([255, 15]))
def test_mu_law_matches_the_oracle_and_round_trips(xs, mu):
  x = np.asarray(xs, np.float32)
  q = np.asarray(wn.mu_law_encode(x, mu))
  want = ref.mu_law_encode(x, mu)
  # float32 vs float64: only a value on a quantisation boundary may land one class off.
  xc = np.clip(x.astype(np.float64), -1, 1)
  level = (np.sign(xc) * np.log1p(mu * np.abs(xc)) / np.log1p(mu) + 1) / 2 * mu + 0.5
  on_edge = np.abs(level - np.round(level)) < 1e-4
  assert np.all((q == want) | (on_edge & (np.abs(q - want) == 1)))
  assert q.min() >= 0 and q.max() <= mu
  back = np.asarray(wn.mu_law_decode(q, mu))
  np.testing.assert_allclose(back, ref.mu_law_decode(q, mu), atol=1e-5)
  # Round trip: within half a quantisation step in the companded domain.
  comp = lambda v: np.sign(v) * np.log1p(mu * np.abs(v)) / np.log1p(mu)  # noqa: E731
  assert np.all(np.abs(comp(back) - comp(np.clip(x, -1, 1))) <= 1.0 / mu + 1e-5)


def test_mu_law_by_hand_and_bad_mu():
  assert np.asarray(wn.mu_law_encode(np.array([-1.0, 0.0, 1.0]))).tolist() == [0, 128, 255]
  assert float(wn.mu_law_decode(255)) == pytest.approx(1.0)
  assert float(wn.mu_law_decode(0)) == pytest.approx(-1.0)
  with pytest.raises(ValueError, match="mu"):
    wn.mu_law_encode(0.5, mu=0)


def test_receptive_field_formula():
  assert wn.receptive_field(2, [1, 2, 4, 8]) == 16
  assert wn.receptive_field(3, [1, 2, 4]) == 15
  assert wn.receptive_field(7, (1, 2, 4, 8, 16, 32, 64, 128)) == 1 + 6 * 255


@pytest.mark.parametrize("k,dilations", [(2, (1, 2, 4)), (3, (1, 3)), (2, (1, 1, 2))])
def test_causal_and_receptive_field_on_the_graph(k, dilations):
  """d output[t] / d input[s] is zero for every s > t (causality) and for s <= t - RF, and
  nonzero for t - RF < s <= t: the receptive field is exactly the formula."""
  model = models.WaveNet(num_classes=3, channels=4, skip_channels=4, head_channels=4,
                         kernel_size=k, dilations=dilations, input_classes=None)
  t = 20
  x = jax.random.normal(KEY, (8, t, 1))        # 8 inputs: a dead ReLU hides a path in one
  v = model.init(jax.random.key(1), x)
  jac = jax.jacobian(lambda x: model.apply(v, x))(x)      # [B, T, K, B, T, 1]
  jac = np.einsum("btkbs->ts", np.abs(np.asarray(jac))[..., 0])   # [T_out, T_in]
  dep = jac > 1e-9
  rf = wn.receptive_field(k, dilations)
  for out in range(t):
    for src in range(t):
      assert dep[out, src] == (out - rf < src <= out), (out, src)


def _params_np(v):
  return jax.tree.map(np.asarray, v["params"])


@pytest.mark.parametrize("classes", [True, False])
def test_full_forward_matches_the_numpy_oracle(classes):
  dil = (1, 2, 4)
  model = models.WaveNet(num_classes=5, channels=3, skip_channels=4, head_channels=6,
                         kernel_size=2, dilations=dil, input_classes=7 if classes else None)
  rng = np.random.default_rng(0)
  x = rng.integers(0, 7, (2, 11)) if classes else rng.normal(size=(2, 11)).astype(np.float32)
  v = model.init(jax.random.key(2), x)
  np.testing.assert_allclose(np.asarray(model.apply(v, x)),
                             ref.wavenet_forward(_params_np(v), x, dil, classes=classes),
                             rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("k,dilations,t", [(2, (1, 2, 4, 8), 13), (3, (1, 2, 4), 30),
                                           (2, (1, 2, 4, 8, 16, 32), 7)])
def test_last_step_path_equals_the_full_pass(k, dilations, t):
  model = models.WaveNet(num_classes=4, channels=5, skip_channels=3, head_channels=4,
                         kernel_size=k, dilations=dilations, input_classes=None)
  x = jax.random.normal(KEY, (3, t, 2))
  v = model.init(jax.random.key(3), x)
  np.testing.assert_allclose(np.asarray(model.apply(v, x, last_step_only=True)),
                             np.asarray(model.apply(v, x))[:, -1], rtol=1e-5, atol=1e-5)


def test_last_step_positions_form_a_stride_two_tree():
  pos, taps = wn.needed_positions(1024, 2, tuple(2 ** i for i in range(10)))
  assert [len(p) for p in pos] == [2 ** (10 - l) for l in range(11)]
  assert pos[3].tolist() == list(range(1023 - 8 * 127, 1024, 8))
  assert taps[0].shape == (2, 512) and taps[0].min() >= 0


def test_seq_mnist_tcn_classifies_from_the_last_step():
  model = models.SeqMnistTCNTiny()
  x = jax.random.uniform(KEY, (2, 28, 28, 1))
  v = jax.jit(model.init)(jax.random.key(4), x)
  last = np.asarray(jax.jit(model.apply)(v, x))
  every = np.asarray(jax.jit(lambda v, x: model.apply(v, x, all_steps=True))(v, x))
  assert last.shape == (2, 10) and every.shape == (2, 784, 10)
  np.testing.assert_allclose(last, every[:, -1], rtol=1e-5, atol=1e-5)
  assert models.SeqMnistTCN().dilations[-1] == 512        # receptive field 1024 >= 784


def test_cached_steps_equal_the_full_pass_and_sampling():
  model = models.WaveNet(num_classes=9, channels=4, skip_channels=4, head_channels=4,
                         kernel_size=3, dilations=(1, 2, 4, 1), input_classes=9)
  seq = jax.random.randint(KEY, (2, 25), 0, 9)
  v = model.init(jax.random.key(5), seq)
  full = np.asarray(model.apply(v, seq))
  step = jax.jit(lambda x, c: model.apply(v, x, c, method=models.WaveNet.step))
  cache = wn.init_cache(model, 2)
  assert [c[0].shape for c in cache] == [(2, 2 * d, 4) for d in (1, 2, 4, 1)]
  outs = []
  for t in range(25):
    logits, cache = step(seq[:, t], cache)
    outs.append(np.asarray(logits))
  np.testing.assert_allclose(np.stack(outs, 1), full, rtol=1e-5, atol=1e-5)
  # Arg-max sampling is deterministic and each sample is the arg-max given the ones before.
  a = np.asarray(wn.sample(model, v, jax.random.key(0), length=12, batch=2, temperature=0))
  b = np.asarray(wn.sample(model, v, jax.random.key(9), length=12, batch=2, temperature=0))
  np.testing.assert_array_equal(a, b)
  inputs = np.concatenate([np.full((2, 1), 4), a[:, :-1]], 1)
  np.testing.assert_array_equal(np.asarray(model.apply(v, inputs)).argmax(-1), a)
  s = np.asarray(wn.sample(model, v, jax.random.key(1), length=30, batch=3))
  assert s.shape == (3, 30) and s.min() >= 0 and s.max() < 9


def test_bad_inputs():
  model = models.WaveNetTiny(num_classes=4, input_classes=4)
  v = model.init(KEY, jnp.zeros((1, 5), jnp.int32))
  with pytest.raises(TypeError, match="integer"):
    model.apply(v, jnp.zeros((1, 5)))
  for kw in ({"length": 0}, {"length": 3, "temperature": -1.0}):
    with pytest.raises(ValueError):
      wn.sample(model, v, KEY, **kw)
  with pytest.raises(ValueError, match="class inputs"):
    wn.sample(models.WaveNetTiny(input_classes=None), v, KEY, length=3)
