"""jaxvision: computer-vision algorithms in JAX/Flax."""

from jaxvision import _workarounds

_workarounds.apply()  # before any computation creates the CPU backend

from jaxvision import ops  # pylint: disable=wrong-import-position
from jaxvision import reference  # pylint: disable=wrong-import-position

__version__ = "0.1.0"

__all__ = ["ops", "reference", "__version__"]
