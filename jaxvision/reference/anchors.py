"""NumPy oracles for anchor boxes: plain loops over levels, pixels and box shapes.

The slow, obviously-correct versions of ``jaxvision.ops.anchors``: every anchor is appended
one at a time, in the documented order, from the textbook formulas (the source book's
``anchor_boxes`` for SSD, d2l's ``multibox_prior``). Float64 throughout; NumPy only.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["ssd_anchors", "multibox_prior"]


def ssd_anchors(image_shape, feature_shapes, *, sizes=None, aspect_ratios=(1, 2, 0.5)):
  """The book's SSD anchors: ``[A, 4]`` float64 ``xyxy`` boxes in pixels.

  For level ``i`` of ``L`` the sizes are ``(s_i, sqrt(s_i s_{i+1}))`` with
  ``s = linspace(0.2, 0.9, L + 1)`` unless ``sizes`` gives the pairs. At each point of an
  ``h x w`` map (rows, then columns) the centre is ``((x + 0.5) W / w, (y + 0.5) H / h)``;
  one box per aspect ratio ``ar`` at the first size (``W s1 sqrt(ar)`` by ``H s1 / sqrt(ar)``)
  and one ``W s2`` by ``H s2`` box at the second.

  >>> ssd_anchors((4, 4), [(1, 1)], sizes=[(0.5, 1.0)], aspect_ratios=(1,)).tolist()
  [[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 4.0, 4.0]]
  """
  image_h, image_w = image_shape[0], image_shape[1]
  num_levels = len(feature_shapes)
  if sizes is None:
    s = np.linspace(0.2, 0.9, num_levels + 1)
    sizes = [(s[i], math.sqrt(s[i] * s[i + 1])) for i in range(num_levels)]
  boxes = []
  for level in range(num_levels):
    h, w = feature_shapes[level][0], feature_shapes[level][1]
    s1, s2 = sizes[level]
    for y in range(h):
      for x in range(w):
        cx = (x + 0.5) * image_w / w
        cy = (y + 0.5) * image_h / h
        shapes = [(image_w * s1 * math.sqrt(ar), image_h * s1 / math.sqrt(ar))
                  for ar in aspect_ratios]
        shapes.append((image_w * s2, image_h * s2))
        for box_w, box_h in shapes:
          boxes.append((cx - box_w / 2, cy - box_h / 2, cx + box_w / 2, cy + box_h / 2))
  return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def multibox_prior(feature_shape, *, sizes, ratios):
  """d2l's ``multibox_prior``: ``[h w (n + m - 1), 4]`` float64 normalized ``xyxy`` boxes.

  Pixels row-major; per pixel the shapes ``(s_1, r_1) .. (s_n, r_1)`` then
  ``(s_1, r_2) .. (s_1, r_m)``, each ``s sqrt(r) h / w`` wide and ``s / sqrt(r)`` high, centred
  at ``((x + 0.5) / w, (y + 0.5) / h)``.

  >>> multibox_prior((1, 1), sizes=(0.5,), ratios=(1,)).tolist()
  [[0.25, 0.25, 0.75, 0.75]]
  """
  h, w = feature_shape
  shapes = [(s, ratios[0]) for s in sizes] + [(sizes[0], r) for r in ratios[1:]]
  boxes = []
  for y in range(h):
    for x in range(w):
      cx = (x + 0.5) / w
      cy = (y + 0.5) / h
      for s, r in shapes:
        box_w = s * math.sqrt(r) * h / w
        box_h = s / math.sqrt(r)
        boxes.append((cx - box_w / 2, cy - box_h / 2, cx + box_w / 2, cy + box_h / 2))
  return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
