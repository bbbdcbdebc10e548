"""jaxvision.models."""
