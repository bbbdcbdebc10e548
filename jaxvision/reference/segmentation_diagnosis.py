"""NumPy oracles of :mod:`jaxvision.metrics.segmentation_diagnosis`: plain per-pixel loops."""

from __future__ import annotations

import collections

import numpy as np


def boundary_band(label: np.ndarray, width: int = 1) -> np.ndarray:
  """One ``[H, W]`` mask: True where some pixel within Chebyshev distance ``width`` (inside
  the image) has another class."""
  h, w = label.shape
  out = np.zeros((h, w), bool)
  for i in range(h):
    for j in range(w):
      for di in range(-width, width + 1):
        for dj in range(-width, width + 1):
          a, b = i + di, j + dj
          if 0 <= a < h and 0 <= b < w and label[a, b] != label[i, j]:
            out[i, j] = True
  return out


def object_classes(label: np.ndarray, prediction: np.ndarray) -> list[tuple[int, int, int]]:
  """``(true class, majority predicted foreground class or 0, size)`` of every 8-connected
  object of one foreground class in one ``[H, W]`` mask, by breadth-first search."""
  h, w = label.shape
  seen = np.zeros((h, w), bool)
  out = []
  for i in range(h):
    for j in range(w):
      c = int(label[i, j])
      if c == 0 or seen[i, j]:
        continue
      queue, votes, size = collections.deque([(i, j)]), collections.Counter(), 0
      seen[i, j] = True
      while queue:
        a, b = queue.popleft()
        size += 1
        if prediction[a, b] > 0:
          votes[int(prediction[a, b])] += 1
        for da in (-1, 0, 1):
          for db in (-1, 0, 1):
            x, y = a + da, b + db
            if 0 <= x < h and 0 <= y < w and not seen[x, y] and label[x, y] == c:
              seen[x, y] = True
              queue.append((x, y))
      best = 0
      if votes:
        top = max(votes.values())
        best = min(k for k, v in votes.items() if v == top)
      out.append((c, best, size))
  return out
