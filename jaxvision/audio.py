"""Autoregressive audio with a WaveNet (:mod:`jaxvision.models.wavenet`): a synthetic family of
waveforms, training on the library's loop, sampling, WAV files and spectrograms.

* :func:`tone_clips`: clips of 1-2 notes (from :data:`PITCHES`, each with two harmonics)
  under an attack / exponential-decay envelope, at :data:`SAMPLE_RATE` -- a family a small
  WaveNet learns in minutes on a CPU.
* :func:`wavenet_task`: next-sample prediction over mu-law classes (256), teacher forced:
  output ``t`` is trained against input ``t + 1``.
* :func:`nll_bits`: mean negative log-likelihood in bits per sample (a uniform model: 8 bits;
  the marginal distribution of the classes: its entropy, :func:`marginal_entropy_bits`).
* :func:`write_wav`, :func:`spectrogram`, :func:`dominant_frequencies`,
  :func:`save_audio_figure`.
"""

from __future__ import annotations

import functools
import os
import wave
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxvision.data import ArraySource
from jaxvision.models import wavenet as wn
from jaxvision.tasks import process_local_pipeline
from jaxvision.train import Task

__all__ = ["SAMPLE_RATE", "PITCHES", "tone_clips", "tone_sources", "wavenet_task", "nll_bits",
           "marginal_entropy_bits", "write_wav", "read_wav", "spectrogram",
           "dominant_frequencies", "save_audio_figure"]

SAMPLE_RATE = 4000
PITCHES = (220.0, 261.6, 329.6, 392.0, 440.0, 523.3)


def tone_clips(n: int, length: int, *, sample_rate: int = SAMPLE_RATE, seed: int = 0
               ) -> tuple[np.ndarray, np.ndarray]:
  """``(audio float32 [n, length] in [-1, 1], pitches float32 [n, 2])`` (the second pitch 0
  for a single note). Clip ``i`` depends only on ``(seed, i)``."""
  if int(n) < 1 or int(length) < 2:
    raise ValueError(f"`n` must be >= 1 and `length` >= 2, got {n!r}, {length!r}.")
  t = np.arange(int(length)) / float(sample_rate)
  audio = np.zeros((int(n), int(length)), np.float32)
  pitches = np.zeros((int(n), 2), np.float32)
  for i in range(int(n)):
    rng = np.random.default_rng((seed, i))
    notes = rng.choice(len(PITCHES), size=int(rng.integers(1, 3)), replace=False)
    x = np.zeros_like(t)
    for j, k in enumerate(notes):
      f = PITCHES[int(k)]
      pitches[i, j] = f
      phase = rng.uniform(0, 2 * np.pi, 3)
      tone = (np.sin(2 * np.pi * f * t + phase[0]) + 0.4 * np.sin(4 * np.pi * f * t + phase[1])
              + 0.15 * np.sin(6 * np.pi * f * t + phase[2]))
      onset = rng.uniform(0, 0.25) * t[-1]
      attack, decay = rng.uniform(0.005, 0.03), rng.uniform(0.15, 0.6)
      since = np.maximum(t - onset, 0)
      env = np.where(t < onset, 0.0, np.minimum(since / attack, 1.0) * np.exp(-since / decay))
      x += tone * env
    peak = np.max(np.abs(x))
    audio[i] = (x / peak * rng.uniform(0.5, 0.9) if peak > 0 else x).astype(np.float32)
  return audio, pitches


def tone_sources(train: int, test: int, length: int, *, seed: int = 0
                 ) -> tuple[ArraySource, ArraySource]:
  """Sources of ``{"audio": int32 [length] mu-law classes}``."""
  def make(n, s):
    audio, _ = tone_clips(n, length, seed=s)
    return ArraySource({"audio": np.asarray(wn.mu_law_encode(audio))})
  return make(train, seed), make(test, seed + 1)


def _nll(model, params, codes):
  logits = model.apply({"params": params}, codes[:, :-1])
  return optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32),
                                                         codes[:, 1:])


@functools.partial(jax.jit, static_argnums=0)
def _nll_sum(model, params, codes):
  return jnp.sum(_nll(model, params, codes))


def nll_bits(model, params, codes: Any, *, batch_size: int = 16) -> float:
  """Mean next-sample negative log-likelihood of ``codes [N, L]`` in bits per sample (one
  compiled program per model and batch shape, reused across calls: the training loop's
  evaluations do not recompile)."""
  codes = np.asarray(codes)
  total = 0.0
  for s in range(0, len(codes), batch_size):
    total += float(_nll_sum(model, params, jnp.asarray(codes[s:s + batch_size], jnp.int32)))
  return total / (codes.shape[0] * (codes.shape[1] - 1)) / np.log(2.0)


def marginal_entropy_bits(codes: Any, classes: int = 256) -> float:
  """Entropy of the classes' frequencies (bits): the NLL of a model that ignores the past."""
  counts = np.bincount(np.asarray(codes).ravel(), minlength=classes).astype(np.float64)
  p = counts[counts > 0] / counts.sum()
  return float(-(p * np.log2(p)).sum())


def wavenet_task(model: wn.WaveNet, train_data, *, optimizer: optax.GradientTransformation,
                 test_data=None) -> Task:
  """Teacher-forced next-sample cross-entropy on ``{"audio": int32 [L]}`` records; the
  evaluation reports the test NLL in bits per sample."""
  if model.input_classes is None:
    raise ValueError("`model` must read class inputs (`input_classes`), e.g. mu-law audio.")

  def init(rng):
    key = jax.random.wrap_key_data(jax.random.bits(rng, (4,), jnp.uint32), impl="rbg")
    return model.init(key, jnp.zeros((1, 8), jnp.int32))["params"], {}

  def loss_fn(params, batch_stats, batch, rng):
    del rng
    codes = batch["audio"].astype(jnp.int32)
    loss = jnp.mean(_nll(model, params, codes))
    return loss, ({"bits_per_sample": loss / np.log(2.0)}, batch_stats)

  def train_iter(seed, batch_size):
    return process_local_pipeline(train_data, batch_size=batch_size, seed=seed)

  evaluate = None
  if test_data is not None:
    def evaluate(state):
      return {"test_bits_per_sample": nll_bits(model, state.params,
                                               test_data.arrays["audio"])}

  return Task(init=init, loss_fn=loss_fn, optimizer=optimizer, train_iter=train_iter,
              evaluate=evaluate)


def write_wav(path: str | os.PathLike, audio: Any, sample_rate: int = SAMPLE_RATE) -> str:
  """Mono 16-bit PCM of ``audio`` in ``[-1, 1]`` (clipped)."""
  x = np.asarray(audio, np.float64).ravel()
  if x.size == 0:
    raise ValueError("`audio` is empty.")
  pcm = (np.clip(x, -1, 1) * 32767).astype("<i2")
  with wave.open(os.fspath(path), "wb") as f:
    f.setnchannels(1)
    f.setsampwidth(2)
    f.setframerate(int(sample_rate))
    f.writeframes(pcm.tobytes())
  return str(path)


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
  """``(float32 audio in [-1, 1], sample rate)`` of a mono 16-bit WAV file."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"no WAV file {str(path)!r}.")
  with wave.open(os.fspath(path), "rb") as f:
    if f.getsampwidth() != 2 or f.getnchannels() != 1:
      raise ValueError(f"{str(path)!r}: only mono 16-bit PCM is read.")
    rate = f.getframerate()
    data = np.frombuffer(f.readframes(f.getnframes()), "<i2")
  return data.astype(np.float32) / 32767.0, rate


def spectrogram(audio: Any, *, n_fft: int = 256, hop: int = 64) -> np.ndarray:
  """``[frames, n_fft // 2 + 1]`` magnitudes (Hann window) of a 1-D signal."""
  x = np.asarray(audio, np.float64).ravel()
  if x.size < n_fft:
    x = np.pad(x, (0, n_fft - x.size))
  frames = 1 + (x.size - n_fft) // hop
  idx = np.arange(n_fft)[None] + hop * np.arange(frames)[:, None]
  return np.abs(np.fft.rfft(x[idx] * np.hanning(n_fft)[None], axis=-1))


def dominant_frequencies(audio: Any, sample_rate: int = SAMPLE_RATE, *, n_fft: int = 1024
                         ) -> float:
  """The frequency (Hz) of the largest peak of the clip's average spectrum."""
  spec = spectrogram(audio, n_fft=n_fft, hop=n_fft // 4).mean(0)
  spec[0] = 0.0
  return float(np.argmax(spec) * sample_rate / n_fft)


def save_audio_figure(path: str | os.PathLike, real: Sequence[np.ndarray],
                      generated: Sequence[np.ndarray], *, sample_rate: int = SAMPLE_RATE,
                      title: str = "") -> str:
  """A PNG: for each clip a waveform and a spectrogram (log magnitude, frequency up), real
  training clips in the left column, generated ones in the right, the family's pitches
  marked."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  rows = max(len(real), len(generated))
  fig, axes = plt.subplots(2 * rows, 2, figsize=(12, 2.6 * rows), squeeze=False,
                           gridspec_kw={"height_ratios": [1, 2] * rows})
  for col, (clips, name) in enumerate(((real, "real (training family)"),
                                       (generated, "generated by the WaveNet"))):
    for r in range(rows):
      wave_ax, spec_ax = axes[2 * r, col], axes[2 * r + 1, col]
      if r >= len(clips):
        wave_ax.axis("off")
        spec_ax.axis("off")
        continue
      x = np.asarray(clips[r])
      t = np.arange(x.size) / sample_rate
      wave_ax.plot(t, x, lw=0.4)
      wave_ax.set_xlim(0, t[-1])
      wave_ax.set_ylim(-1, 1)
      wave_ax.set_xticks([])
      wave_ax.set_title(f"{name} {r}", fontsize=9)
      s = spectrogram(x)
      spec_ax.imshow(20 * np.log10(s.T + 1e-4), origin="lower", aspect="auto",
                     extent=(0, t[-1], 0, sample_rate / 2), cmap="magma", vmin=-60)
      for f in PITCHES:
        spec_ax.axhline(f, color="white", lw=0.3, ls=":")
      spec_ax.set_ylabel("Hz", fontsize=8)
      spec_ax.set_xlabel("seconds", fontsize=8)
  fig.suptitle(title + "\n(dotted lines: the family's pitches)", fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=80)
  plt.close(fig)
  return str(path)
