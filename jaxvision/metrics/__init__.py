"""Evaluation metrics computed on the host (NumPy/SciPy); JAX arrays are accepted."""

from jaxvision.metrics.clustering import adjusted_rand_index
from jaxvision.metrics.clustering import contingency_matrix
from jaxvision.metrics.clustering import evaluate_heads
from jaxvision.metrics.clustering import hungarian_accuracy
from jaxvision.metrics.clustering import many_to_one_accuracy
from jaxvision.metrics.clustering import normalized_mutual_info

__all__ = [
    "contingency_matrix", "hungarian_accuracy", "many_to_one_accuracy",
    "normalized_mutual_info", "adjusted_rand_index", "evaluate_heads",
]
