"""A WaveNet learns a family of synthetic waveforms (1-2 notes with harmonics under an
attack / decay envelope, 4 kHz, :func:`jaxvision.audio.tone_clips`) and samples new ones
autoregressively, one sample at a time with a per-layer cache.

    python -m experiments.wavenet_tones --workdir runs/wavenet --record
    python -m experiments.wavenet_tones --evaluate --workdir runs/wavenet

Writes ``generated_<i>.wav`` and ``wavenet_tones.png`` (waveforms and spectrograms of real
and generated clips) to the workdir, and reports the test negative log-likelihood in bits per
sample against two baselines: a uniform model (8 bits) and the marginal class distribution
(a model that ignores the past). Model: mu-law 256 classes, 32 residual channels, kernel 2,
dilations 1 .. 512 (receptive field 1024 samples = 256 ms).

Configs: ``cpu`` (about 10 minutes on 2 cores), ``tiny`` (a smoke test).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

import jax
import numpy as np

from jaxvision import audio, experiment, models, weights
from jaxvision.models import wavenet as wn
from jaxvision.sequence import SequenceConfig, make_optimizer
from jaxvision.train.loop import jsonable

RESULTS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                            "wavenet_tones.json")

CONFIGS = {
    "cpu": SequenceConfig(model="WaveNet", attributes={"channels": 32, "skip_channels": 64,
                                                       "head_channels": 128},
                          steps=800, batch_size=8, learning_rate=2e-3, warmup_steps=50,
                          eval_every=400, checkpoint_every=200, log_every=50,
                          data={"train": 2000, "test": 64, "length": 2048,
                                "sample_seconds": 1.5, "samples": 4}),
    "tiny": SequenceConfig(model="WaveNetTiny", steps=3, batch_size=4, warmup_steps=1,
                           checkpoint_every=2, log_every=1,
                           data={"train": 16, "test": 4, "length": 64,
                                 "sample_seconds": 0.02, "samples": 2}),
}
KIND = "wavenet"


def _near_pitch(freq: float, tol: float = 0.03) -> bool:
  return any(abs(freq - p) <= tol * p or abs(freq - 2 * p) <= tol * 2 * p
             for p in audio.PITCHES)


def main(argv=None):
  parser = argparse.ArgumentParser(prog="python -m experiments.wavenet_tones",
                                   description=__doc__, formatter_class=experiment.HelpFormatter)
  experiment.add_flags(parser, configs=sorted(CONFIGS), default_config="cpu",
                       results_file=RESULTS_FILE, data_dir=False, eval_every=True)
  parser.add_argument("--temperature", type=float, default=1.0,
                      help="sampling temperature (0: arg-max)")
  args = parser.parse_args(argv)
  with experiment.cli_errors(parser):
    start = time.time()
    experiment.setup(args)
    if args.workdir is None:
      raise experiment.FlagError("--workdir is required.")
    if args.temperature < 0:
      raise experiment.FlagError(f"--temperature must be >= 0, got {args.temperature}.")
    overrides = experiment.config_overrides(args, {"steps": "steps", "batch_size": "batch_size",
                                                   "eval_every": "eval_every"})
    if args.evaluate:
      source = args.restore_weights or args.workdir
      variables, spec = experiment.load_weights_spec(source)
      if spec.get("kind") != KIND:
        raise experiment.FlagError(f"--restore-weights: {str(source)!r} holds a "
                                   f"{spec.get('kind')!r} model, not a {KIND!r}.")
      name = spec["config_name"]
      cfg = dataclasses.replace(CONFIGS[name], **{k: v for k, v in spec["config"].items()
                                                 if k in ("steps", "batch_size")})
      params = variables["params"]
      trained = False
    else:
      name = args.config or "cpu"
      cfg = dataclasses.replace(CONFIGS[name], **overrides)
    model = getattr(models, cfg.model)(**cfg.attributes)
    d = cfg.data
    train, test = audio.tone_sources(int(d["train"]), int(d["test"]), int(d["length"]) + 1,
                                     seed=args.seed)
    if not args.evaluate:
      from jaxvision.train import TrainConfig, train_and_evaluate  # pylint: disable=import-outside-toplevel
      task = audio.wavenet_task(model, train, optimizer=make_optimizer(cfg), test_data=test)
      out = train_and_evaluate(TrainConfig(num_steps=cfg.steps, batch_size=cfg.batch_size,
                                           seed=args.seed, checkpoint_every=cfg.checkpoint_every,
                                           log_every=cfg.log_every, eval_every=cfg.eval_every,
                                           progress=args.progress), args.workdir, task=task)
      params = out.state.params
      if jax.process_index() == 0:
        weights.save_weights(os.path.join(args.workdir, "weights.msgpack"), {"params": params},
                             {"kind": KIND, "model": cfg.model,
                              "attributes": dict(cfg.attributes), "config_name": name,
                              "config": jsonable(dataclasses.asdict(cfg))})
      trained = True
    test_codes = test.arrays["audio"]
    bits = audio.nll_bits(model, params, test_codes)
    marginal = audio.marginal_entropy_bits(train.arrays["audio"])
    # Sampling: one sample per step through the cache.
    length = int(float(d["sample_seconds"]) * audio.SAMPLE_RATE)
    t0 = time.time()
    codes = np.asarray(wn.sample(model, {"params": params}, jax.random.key(args.seed + 7),
                                 length=length, batch=int(d["samples"]),
                                 temperature=args.temperature))
    sample_seconds = time.time() - t0
    generated = np.asarray(wn.mu_law_decode(codes))
    wavs = [audio.write_wav(os.path.join(args.workdir, f"generated_{i}.wav"), g)
            for i, g in enumerate(generated)]
    real, _ = audio.tone_clips(int(d["samples"]), length, seed=args.seed + 1)
    freqs = [audio.dominant_frequencies(g) for g in generated]
    on_pitch = [bool(_near_pitch(f)) and float(np.std(g)) > 0.01
                for f, g in zip(freqs, generated)]
    png = audio.save_audio_figure(
        os.path.join(args.workdir, "wavenet_tones.png"), real, generated,
        title=f"WaveNet ({models.count_params(params):,} params): test {bits:.2f} bits/sample "
              f"vs {marginal:.2f} (marginal) and 8 (uniform)")
    wall = time.time() - start
    results = {
        "command": experiment.command_line(argv, "experiments.wavenet_tones"),
        "config_name": name, "config": dataclasses.asdict(cfg), "model": cfg.model,
        "params": models.count_params(params), "receptive_field": model.receptive_field,
        "test_bits_per_sample": round(bits, 4), "marginal_entropy_bits": round(marginal, 4),
        "uniform_bits": 8.0, "generated_dominant_hz": [round(f, 1) for f in freqs],
        "generated_on_a_family_pitch": on_pitch,
        "sampling_samples_per_sec": round(codes.size / sample_seconds, 1),
        "wavs": wavs, "pictures": [png], "machine": experiment.machine(),
        "date": time.strftime("%Y-%m-%d"),
    }
    if trained:
      results["wall_seconds"] = round(experiment.cumulative_wall_seconds(args.workdir, wall), 1)
      results["process_cpu_seconds"] = round(time.process_time(), 1)
      results["steps"] = cfg.steps
    experiment.finish(args.workdir, results, record=args.record if trained else None)
    print(f"wavenet_tones ({name}): test {bits:.3f} bits/sample (marginal {marginal:.3f}, "
          f"uniform 8); generated peaks {', '.join(f'{f:.0f} Hz' for f in freqs)}; "
          f"sampling {results['sampling_samples_per_sec']:.0f} samples/s")
    return results


if __name__ == "__main__":
  main(sys.argv[1:])
