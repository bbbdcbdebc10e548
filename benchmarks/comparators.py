"""The optional comparators (extra ``bench``): imported once, each None when not installed."""

from __future__ import annotations

import functools
import os

from benchmarks.common import optional_import


@functools.cache
def torch():
  mod = optional_import("torch")
  if mod is not None:
    mod.set_num_threads(os.cpu_count() or 1)
  return mod


@functools.cache
def torchvision():
  return optional_import("torchvision") if torch() is not None else None


@functools.cache
def tf():
  # torchvision (through torch._dynamo) imports triton, whose LLVM segfaults when loaded
  # after TensorFlow's: always import the torch side first.
  torchvision()
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  mod = optional_import("tensorflow")
  if mod is not None:
    try:  # keep TF off any GPU JAX uses; the CPU is what we compare on unless asked.
      mod.config.set_visible_devices([], "GPU")
    except Exception:  # noqa: BLE001
      pass
  return mod


def versions() -> dict[str, str | None]:
  out = {}
  for name, get in (("torch", torch), ("torchvision", torchvision), ("tensorflow", tf)):
    mod = get()
    out[name] = getattr(mod, "__version__", None) if mod is not None else None
  return out


def torch_device(device: str) -> str | None:
  """Where torch runs for a ``--device``: "cuda" on a GPU run (None if torch has no CUDA)."""
  mod = torch()
  if mod is None:
    return None
  if device == "gpu":
    return "cuda" if mod.cuda.is_available() else None
  return "cpu"


def torch_for(device: str):
  """torch when it can run on a ``--device`` (CUDA for "gpu"), else None."""
  return torch() if torch_device(device) is not None else None


def sync(device: str) -> None:
  """Waits for torch's queued CUDA work on GPU runs (CUDA calls are async); no-op on CPU."""
  if device == "gpu":
    torch().cuda.synchronize()


def synced(fn, device: str):
  """``fn`` followed by ``torch.cuda.synchronize()`` on GPU runs (CUDA calls are async)."""
  if device != "gpu":
    return fn

  def call(*args, **kwargs):
    out = fn(*args, **kwargs)
    sync(device)
    return out

  return call
