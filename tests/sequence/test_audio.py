"""Audio helpers: the tone family's pitches, WAV round trip, spectrogram peaks, the
likelihood baselines, a WaveNet that lowers its NLL in a few steps."""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest

from jaxvision import audio, models


def test_tone_clips_hold_the_family_pitches():
  x, pitches = audio.tone_clips(6, 4000, seed=2)
  assert x.shape == (6, 4000) and np.all(np.abs(x) <= 0.9 + 1e-6)
  for clip, p in zip(x, pitches):
    peak = audio.dominant_frequencies(clip)
    # The loudest partial is the fundamental of one of the clip's notes (1024-pt bins: 4 Hz).
    assert min(abs(peak - f) for f in p if f > 0) < 6, (peak, p)
  np.testing.assert_array_equal(audio.tone_clips(3, 4000, seed=2)[0], x[:3])


def test_wav_round_trip_and_errors(tmp_path):
  x = np.sin(np.linspace(0, 40, 500)) * 0.5
  path = audio.write_wav(tmp_path / "a.wav", x, 8000)
  y, rate = audio.read_wav(path)
  assert rate == 8000 and np.max(np.abs(y - x)) < 1e-4
  with pytest.raises(FileNotFoundError):
    audio.read_wav(tmp_path / "missing.wav")
  with pytest.raises(ValueError, match="empty"):
    audio.write_wav(tmp_path / "b.wav", [])


def test_spectrogram_of_a_pure_tone():
  t = np.arange(4000) / 4000
  s = audio.spectrogram(np.sin(2 * np.pi * 500 * t), n_fft=256, hop=64)
  assert s.shape == (1 + (4000 - 256) // 64, 129)
  assert np.all(s.argmax(-1) == 32)                          # 500 Hz / (4000 / 256) = bin 32
  assert audio.dominant_frequencies(np.sin(2 * np.pi * 500 * t)) == pytest.approx(500, abs=4)


def test_marginal_entropy_by_hand():
  assert audio.marginal_entropy_bits([0, 1, 2, 3]) == pytest.approx(2.0)
  assert audio.marginal_entropy_bits([5, 5, 5]) == pytest.approx(0.0)


def test_a_few_steps_lower_the_test_nll():
  train, test = audio.tone_sources(64, 8, 129, seed=0)
  model = models.WaveNet(num_classes=256, input_classes=256, channels=16, skip_channels=16,
                         head_channels=32, dilations=(1, 2, 4, 8))
  task = audio.wavenet_task(model, train, optimizer=optax.adam(3e-3), test_data=test)
  params, _ = jax.jit(task.init)(jax.random.key(0))
  before = audio.nll_bits(model, params, test.arrays["audio"])
  assert before == pytest.approx(8.0, abs=0.1)             # near uniform at init
  opt = optax.adam(3e-3)
  state = opt.init(params)
  batch = {"audio": train.arrays["audio"]}

  @jax.jit
  def step(params, state):
    g = jax.grad(lambda p: task.loss_fn(p, {}, batch, None)[0])(params)
    u, state = opt.update(g, state)
    return optax.apply_updates(params, u), state

  for _ in range(80):
    params, state = step(params, state)
  after = audio.nll_bits(model, params, test.arrays["audio"])
  # Below the marginal distribution's entropy: the model uses the past (seen: 8.03 -> ~7.0).
  assert after < min(before - 0.6, audio.marginal_entropy_bits(test.arrays["audio"]))
  with pytest.raises(ValueError, match="class inputs"):
    audio.wavenet_task(models.WaveNetTiny(input_classes=None), train, optimizer=opt)
