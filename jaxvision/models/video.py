"""Video classifiers over clips ``[B, T, H, W, C]``, with a factorised output: a digit head and
a motion head whose logits are summed into joint ``(digit, motion)`` logits ``[B, D * M]``
(class ``d * M + m``). The joint softmax then factorises, so cross-entropy on the joint label
is the sum of the two heads' cross-entropies and the joint arg-max is the pair of arg-maxes.

* :class:`VideoLSTM`: a frame CNN applied to every frame, an LSTM (``nn.RNN``) over the frame
  features, the last state classified.
* :class:`Video3D`: 3 x 3 x 3 convolutions over (time, height, width).
* :class:`Video2Plus1D`: each 3-D convolution split into a spatial 1 x 3 x 3 and a temporal
  3 x 1 x 1 one with a ReLU between (Tran et al. 2018), about the same parameter count.
* :class:`VideoSingleFrame`: the frame CNN on the middle frame only -- the baseline that shows
  which labels need motion.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax.numpy as jnp

__all__ = ["joint_logits", "FrameEncoder", "VideoLSTM", "Video3D", "Video2Plus1D",
           "VideoSingleFrame", "VideoLSTMTiny", "Video3DTiny", "Video2Plus1DTiny",
           "VideoSingleFrameTiny"]


def joint_logits(digit: jnp.ndarray, motion: jnp.ndarray) -> jnp.ndarray:
  """``[B, D]``, ``[B, M]`` -> ``[B, D * M]`` with entry ``d * M + m = digit_d + motion_m``."""
  return (digit[:, :, None] + motion[:, None, :]).reshape(digit.shape[0], -1)


class _Heads(nn.Module):
  num_classes: int
  num_motions: int

  @nn.compact
  def __call__(self, h):
    if self.num_classes % self.num_motions:
      raise ValueError(f"`num_classes` ({self.num_classes}) must be digits x motions "
                       f"({self.num_motions}).")
    digits = self.num_classes // self.num_motions
    return joint_logits(nn.Dense(digits, name="digit")(h),
                        nn.Dense(self.num_motions, name="motion")(h))


class FrameEncoder(nn.Module):
  """Two conv + max-pool stages and a dense layer; keeps position (flatten, not a global
  pool), which the LSTM needs to see a digit move."""

  width: int = 16
  features: int = 64

  @nn.compact
  def __call__(self, x):
    for i, c in enumerate((self.width, 2 * self.width)):
      x = nn.relu(nn.Conv(c, (3, 3), name=f"conv{i}")(x))
      x = nn.max_pool(x, (2, 2), (2, 2))
    return nn.relu(nn.Dense(self.features, name="dense")(x.reshape(x.shape[0], -1)))


class VideoLSTM(nn.Module):
  num_classes: int = 100
  num_motions: int = 10
  width: int = 16
  features: int = 64
  hidden: int = 64

  @nn.compact
  def __call__(self, clip, train: bool = False):
    del train
    b, t = clip.shape[:2]
    f = FrameEncoder(self.width, self.features, name="frames")(
        clip.reshape(b * t, *clip.shape[2:])).reshape(b, t, -1)
    h = nn.RNN(nn.OptimizedLSTMCell(self.hidden), name="lstm")(f)[:, -1]
    return _Heads(self.num_classes, self.num_motions, name="heads")(h)


class VideoSingleFrame(nn.Module):
  num_classes: int = 100
  num_motions: int = 10
  width: int = 16
  features: int = 64

  @nn.compact
  def __call__(self, clip, train: bool = False):
    del train
    h = FrameEncoder(self.width, self.features, name="frames")(clip[:, clip.shape[1] // 2])
    return _Heads(self.num_classes, self.num_motions, name="heads")(h)


class _Conv3D(nn.Module):
  features: int
  factorised: bool = False

  @nn.compact
  def __call__(self, x):
    if not self.factorised:
      return nn.relu(nn.Conv(self.features, (3, 3, 3), name="conv")(x))
    # (2+1)-D: the middle width that keeps the parameter count of the 3-D convolution
    # (Tran et al.: M = 27 c_in c_out / (9 c_in + 3 c_out)).
    c_in = x.shape[-1]
    mid = max(1, (27 * c_in * self.features) // (9 * c_in + 3 * self.features))
    x = nn.relu(nn.Conv(mid, (1, 3, 3), name="spatial")(x))
    return nn.relu(nn.Conv(self.features, (3, 1, 1), name="temporal")(x))


class Video3D(nn.Module):
  num_classes: int = 100
  num_motions: int = 10
  width: int = 16
  features: int = 128
  factorised: bool = False

  @nn.compact
  def __call__(self, clip, train: bool = False):
    del train
    x = clip
    pools = ((1, 2, 2), (2, 2, 2), (2, 2, 2))
    for i, (c, p) in enumerate(zip((self.width, 2 * self.width, 4 * self.width), pools)):
      x = _Conv3D(c, self.factorised, name=f"block{i}")(x)
      x = nn.max_pool(x, p, p)
    h = nn.relu(nn.Dense(self.features, name="dense")(x.reshape(x.shape[0], -1)))
    return _Heads(self.num_classes, self.num_motions, name="heads")(h)


Video2Plus1D = functools.partial(Video3D, factorised=True)
VideoLSTMTiny = functools.partial(VideoLSTM, width=4, features=8, hidden=8)
VideoSingleFrameTiny = functools.partial(VideoSingleFrame, width=4, features=8)
Video3DTiny = functools.partial(Video3D, width=4, features=8)
Video2Plus1DTiny = functools.partial(Video3D, width=4, features=8, factorised=True)
