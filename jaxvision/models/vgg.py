"""VGG (Simonyan & Zisserman 2015) as a feature network, with loaders for published weights.

:class:`VGG` returns a dict of named activations, Keras' layer names: ``block{b}_conv{j}``
(after the ReLU, as Keras' layers output) and ``block{b}_pool``; ``VGG19`` is configuration E
(16 convolutions). No ImageNet weights can be downloaded here; bring your own and load them:

* torchvision's layout: ``torchvision.models.vgg19(weights=...).state_dict()`` (keys
  ``features.{i}.weight [O, I, 3, 3]`` / ``features.{i}.bias``), as a ``.pth`` file (needs
  torch) or an ``.npz`` of those keys; inputs RGB in ``[0, 1]`` normalised by ImageNet's mean
  and std;
* Keras' layout: ``keras.applications.VGG19(include_top=False)``'s weights (``block1_conv1``
  ... with ``kernel [3, 3, I, O]`` and ``bias``), as the ``.h5`` file Keras caches (needs
  h5py) or an ``.npz`` with keys ``block1_conv1/kernel`` ...; inputs BGR in ``[0, 255]`` minus
  the Caffe mean.

:func:`load_vgg_weights` detects the layout and returns ``(params, layout)``;
:func:`vgg_preprocess` applies that layout's input normalisation to RGB images in ``[0, 1]``;
:func:`export_vgg_weights` writes params back to either layout (the round trip is tested).
Without weights, ``VGG.init`` gives He-normal random filters (``kernel_init``), whose deep
features still carry texture statistics (Ustyuzhaninov et al. 2016): the offline default of
:mod:`jaxvision.style`.
"""

from __future__ import annotations

import functools
import os
import pathlib
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["VGG", "VGG19", "VGG19Small", "VGG19Tiny", "VGG19_BLOCKS", "vgg_layer_names",
           "torchvision_feature_indices", "load_vgg_weights", "export_vgg_weights", "vgg_deprocess",
           "vgg_preprocess", "LAYOUTS"]

VGG19_BLOCKS = ((64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512),
                (512, 512, 512, 512))
LAYOUTS = ("torchvision", "keras")
_TORCH_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_TORCH_STD = np.array([0.229, 0.224, 0.225], np.float32)
_CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)


def vgg_layer_names(blocks: Sequence[Sequence[int]] = VGG19_BLOCKS) -> list[str]:
  """The convolution names in order: ``block1_conv1, block1_conv2, block2_conv1, ...``."""
  return [f"block{b + 1}_conv{j + 1}" for b, block in enumerate(blocks) for j in range(len(block))]


def torchvision_feature_indices(blocks: Sequence[Sequence[int]] = VGG19_BLOCKS
                                ) -> dict[str, int]:
  """Convolution name -> its index in torchvision's ``features`` ``Sequential`` (each conv
  is followed by a ReLU, each block by a max pool): ``block1_conv1 -> 0``,
  ``block2_conv1 -> 5``, ``block5_conv4 -> 34`` for VGG-19."""
  out, i = {}, 0
  for b, block in enumerate(blocks):
    for j in range(len(block)):
      out[f"block{b + 1}_conv{j + 1}"] = i
      i += 2
    i += 1
  return out


class VGG(nn.Module):
  """VGG's convolutional part: ``images [N, H, W, 3] -> {layer name: activation}``.

  Attributes:
    blocks: channels of each block's 3 x 3 convolutions (a pool follows each block).
    width: multiplies every channel count (``0.25``: a 16x cheaper network).
    pool: ``"max"`` (the paper) or ``"avg"`` (Gatys et al. find it gives smoother
      style-transfer images); both 2 x 2, stride 2.
    last: stop after this layer (a name from :func:`vgg_layer_names` or ``block{b}_pool``);
      ``None`` runs every layer.

  The input is already normalised (:func:`vgg_preprocess`).
  """

  blocks: Sequence[Sequence[int]] = VGG19_BLOCKS
  width: float = 1.0
  pool: str = "max"
  last: str | None = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> dict[str, jax.Array]:
    del train
    if x.ndim != 4 or x.shape[-1] != 3:
      raise ValueError(f"`x` must be [N, H, W, 3], got shape {tuple(x.shape)}.")
    if self.pool not in ("max", "avg"):
      raise ValueError(f"`pool` must be 'max' or 'avg', got {self.pool!r}.")
    names = vgg_layer_names(self.blocks) + [f"block{b + 1}_pool" for b in range(len(self.blocks))]
    if self.last is not None and self.last not in names:
      raise ValueError(f"`last` must be one of {names}, got {self.last!r}.")
    out = {}
    h = x
    for b, block in enumerate(self.blocks):
      for j, f in enumerate(block):
        name = f"block{b + 1}_conv{j + 1}"
        h = nn.relu(nn.Conv(max(1, int(round(f * self.width))), (3, 3), padding=1,
                            kernel_init=nn.initializers.he_normal(), name=name)(h))
        out[name] = h
        if name == self.last:
          return out
      pool = nn.max_pool if self.pool == "max" else nn.avg_pool
      h = pool(h, (2, 2), (2, 2))
      out[f"block{b + 1}_pool"] = h
      if f"block{b + 1}_pool" == self.last:
        return out
    return out


VGG19 = functools.partial(VGG, blocks=VGG19_BLOCKS)
VGG19Small = functools.partial(VGG, blocks=VGG19_BLOCKS, width=0.25)
VGG19Tiny = functools.partial(VGG, blocks=((4,), (8,), (8,)), width=1.0)


def vgg_preprocess(images: Any, layout: str = "torchvision") -> jax.Array:
  """RGB images in ``[0, 1]`` ``[N, H, W, 3]`` -> the network input of ``layout``'s weights
  (torchvision: ``(x - mean) / std``; keras: BGR, ``255 x - caffe mean``)."""
  x = jnp.asarray(images, jnp.float32)
  if layout == "torchvision":
    return (x - _TORCH_MEAN) / _TORCH_STD
  if layout == "keras":
    return x[..., ::-1] * 255.0 - _CAFFE_MEAN_BGR
  raise ValueError(f"`layout` must be one of {LAYOUTS}, got {layout!r}.")


def vgg_deprocess(x: Any, layout: str = "torchvision") -> jax.Array:
  """The inverse of :func:`vgg_preprocess` (no clipping)."""
  x = jnp.asarray(x, jnp.float32)
  if layout == "torchvision":
    return x * _TORCH_STD + _TORCH_MEAN
  if layout == "keras":
    return ((x + _CAFFE_MEAN_BGR) / 255.0)[..., ::-1]
  raise ValueError(f"`layout` must be one of {LAYOUTS}, got {layout!r}.")


def _read_weight_file(path: pathlib.Path) -> dict[str, np.ndarray]:
  suffix = path.suffix.lower()
  if suffix == ".npz":
    with np.load(path) as f:
      return {k: np.asarray(f[k]) for k in f.files}
  if suffix in (".pth", ".pt"):
    try:
      import torch  # pylint: disable=import-outside-toplevel
    except ImportError:
      raise ValueError(f"reading {path} needs torch (pip install torch), or save the "
                       f"state_dict as .npz: np.savez(f, **{{k: v.numpy() for k, v in "
                       f"sd.items()}}).") from None
    sd = torch.load(path, map_location="cpu", weights_only=True)
    if hasattr(sd, "state_dict"):
      sd = sd.state_dict()
    return {k: v.detach().cpu().numpy() for k, v in sd.items()}
  if suffix in (".h5", ".hdf5", ".keras"):
    try:
      import h5py  # pylint: disable=import-outside-toplevel
    except ImportError:
      raise ValueError(f"reading {path} needs h5py (pip install h5py).") from None
    out = {}
    with h5py.File(path, "r") as f:
      def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
          out[name] = np.asarray(obj)
      f.visititems(visit)
    return out
  raise ValueError(f"{path}: VGG weights must be .npz, .pth/.pt (torch) or .h5 (Keras), "
                   f"got {suffix or 'no suffix'!r}.")


def _keras_entry(arrays: Mapping[str, np.ndarray], name: str, what: str) -> np.ndarray | None:
  """Finds ``name``'s kernel/bias among Keras-style keys (``block1_conv1/kernel``,
  ``block1_conv1/block1_conv1/kernel:0``, ``layers/.../vars/0``)."""
  for key, value in arrays.items():
    parts = key.replace(":0", "").split("/")
    if name in parts and parts[-1] == what:
      return value
  return None


def load_vgg_weights(source: str | os.PathLike | Mapping[str, Any],
                     blocks: Sequence[Sequence[int]] = VGG19_BLOCKS, *,
                     layout: str | None = None) -> tuple[dict[str, Any], str]:
  """Published VGG weights -> ``(params for VGG(blocks), layout)``.

  Args:
    source: a file (``.npz``, ``.pth``/``.pt``, ``.h5``) or a mapping of arrays (a
      torchvision ``state_dict``, tensors or arrays; or Keras names).
    blocks: the architecture the weights are for (VGG-19 by default).
    layout: ``"torchvision"`` or ``"keras"``; ``None`` detects it from the keys.

  Returns:
    ``params`` (``{"block1_conv1": {"kernel", "bias"}, ...}``; pass
    ``{"params": params}`` to ``VGG(blocks).apply``) and the layout, which selects
    :func:`vgg_preprocess`'s normalisation.

  Raises:
    FileNotFoundError: no such file. ValueError: a missing layer or a shape that does not
    match ``blocks`` (named), or an unknown layout.
  """
  if isinstance(source, (str, os.PathLike)):
    path = pathlib.Path(source)
    if not path.is_file():
      raise FileNotFoundError(f"no VGG weight file at {path}.")
    arrays, where = _read_weight_file(path), str(path)
  elif isinstance(source, Mapping):
    arrays = {k: (v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v))
              for k, v in source.items()}
    where = "the weights"
  else:
    raise TypeError(f"`source` must be a path or a mapping of arrays, got "
                    f"{type(source).__name__}.")
  if layout is None:
    layout = "torchvision" if any(k.startswith("features.") for k in arrays) else "keras"
  if layout not in LAYOUTS:
    raise ValueError(f"`layout` must be one of {LAYOUTS}, got {layout!r}.")
  params: dict[str, Any] = {}
  in_ch = 3
  indices = torchvision_feature_indices(blocks)
  for name, out_ch in zip(vgg_layer_names(blocks), [f for b in blocks for f in b]):
    if layout == "torchvision":
      i = indices[name]
      w, b = arrays.get(f"features.{i}.weight"), arrays.get(f"features.{i}.bias")
      if w is None or b is None:
        raise ValueError(f"{where}: no 'features.{i}.weight'/'features.{i}.bias' "
                         f"({name}) in torchvision layout.")
      kernel = np.transpose(w, (2, 3, 1, 0))
    else:
      kernel, b = _keras_entry(arrays, name, "kernel"), _keras_entry(arrays, name, "bias")
      if kernel is None or b is None:
        raise ValueError(f"{where}: no kernel/bias for {name!r} in Keras layout.")
    if kernel.shape != (3, 3, in_ch, out_ch) or b.shape != (out_ch,):
      raise ValueError(f"{where}: {name} has kernel {kernel.shape} and bias {b.shape}; "
                       f"this VGG needs (3, 3, {in_ch}, {out_ch}) and ({out_ch},).")
    params[name] = {"kernel": jnp.asarray(kernel, jnp.float32),
                    "bias": jnp.asarray(b, jnp.float32)}
    in_ch = out_ch
  return params, layout


def export_vgg_weights(params: Mapping[str, Any], layout: str = "torchvision",
                       blocks: Sequence[Sequence[int]] = VGG19_BLOCKS) -> dict[str, np.ndarray]:
  """``VGG`` params -> a dict in ``layout`` (torchvision ``state_dict`` keys, or Keras'
  ``block1_conv1/kernel``), the inverse of :func:`load_vgg_weights`."""
  if layout not in LAYOUTS:
    raise ValueError(f"`layout` must be one of {LAYOUTS}, got {layout!r}.")
  out = {}
  indices = torchvision_feature_indices(blocks)
  for name in vgg_layer_names(blocks):
    kernel = np.asarray(params[name]["kernel"])
    bias = np.asarray(params[name]["bias"])
    if layout == "torchvision":
      out[f"features.{indices[name]}.weight"] = np.ascontiguousarray(
          np.transpose(kernel, (3, 2, 0, 1)))
      out[f"features.{indices[name]}.bias"] = bias
    else:
      out[f"{name}/kernel"] = kernel
      out[f"{name}/bias"] = bias
  return out
