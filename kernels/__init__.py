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
