"""Pallas kernels behind jaxvision's hot paths (installed as ``jaxvision.kernels``).

One module per kernel, each with its kernel body, a wrapper that picks blocks and calls
``pl.pallas_call(..., interpret=interpret)``, and a frozen config dataclass:

* ``jaxvision.kernels.iou``: ``iou_matrix`` (pairwise IoU / GIoU), ``IoUConfig``.
* ``jaxvision.kernels.nms``: ``suppression_mask``, ``keep_from_mask``, ``nms``,
  ``NMSConfig``.
* ``jaxvision.kernels.iic``: ``joint_probability``, ``iic_loss`` (custom VJP), ``IICConfig``.

Nothing is re-exported here: ``jaxvision.kernels.nms`` must stay the module (a re-exported
``nms`` function would shadow it). Kernels import only JAX; the ops in ``jaxvision.ops``
choose between them and XLA.
"""

# Kernels that have been compiled and checked against the oracles on a GPU. With
# ``implementation=None`` an op uses its kernel on a GPU only when it is listed here, and the
# XLA path otherwise, so a kernel that has never run on a GPU is never the silent default.
# No GPU has been available to this project yet, so the set is empty; pass
# ``implementation="pallas"`` to use a kernel explicitly.
GPU_VALIDATED: frozenset[str] = frozenset()
