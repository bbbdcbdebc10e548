"""jaxvision: computer-vision algorithms in JAX/Flax.

Modules: ``ops`` (boxes, anchors, matching, NMS, losses, pooling, IIC/MINE objectives, with
Pallas kernels in ``kernels``), ``reference`` (NumPy oracles), ``models`` (flax networks),
``data`` (MNIST, digit scenes, the book's formats, TFDS, pipelines, transforms), ``train``
(the sharded training loop, checkpoints, multi-host), ``metrics``, ``inference``
(``Detector`` / ``Segmenter``: load, run on any images, evaluate), ``weights``
(self-describing weight files), ``tasks`` (training tasks), ``experiment`` (the CLI
skeleton) and ``viz`` (pictures). Only ``ops`` and ``reference`` are imported with the
package; import the others by name.
"""

from jaxvision import ops
from jaxvision import reference

__version__ = "0.1.0"

__all__ = ["ops", "reference", "__version__"]
