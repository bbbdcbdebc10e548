"""jaxvision.data: MNIST loading, grain pipelines and JAX augmentations."""

from jaxvision.data.mnist import (ENV_VAR, IMAGES_MAGIC, LABELS_MAGIC, MnistSource, load_mnist,
                                  read_idx)
from jaxvision.data.pipeline import ArraySource, make_pipeline
from jaxvision.data.transforms import (binarize, book_views, center_crop, color_jitter,
                                       gaussian_noise, iic_views, random_affine,
                                       random_crop_resize, random_horizontal_flip,
                                       random_resized_crop, random_rotation)

__all__ = [
    # mnist
    "ENV_VAR", "IMAGES_MAGIC", "LABELS_MAGIC", "MnistSource", "load_mnist", "read_idx",
    # pipeline
    "ArraySource", "make_pipeline",
    # transforms
    "center_crop", "random_crop_resize", "random_resized_crop", "random_rotation",
    "random_affine", "binarize", "gaussian_noise", "random_horizontal_flip", "color_jitter",
    "iic_views", "book_views",
]
