"""jaxvision: computer-vision algorithms in JAX/Flax."""

from jaxvision import ops
from jaxvision import reference

__version__ = "0.1.0"

__all__ = ["ops", "reference", "__version__"]
