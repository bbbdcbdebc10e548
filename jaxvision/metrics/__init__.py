"""jaxvision.metrics."""
