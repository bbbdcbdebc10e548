"""Pallas kernels behind jaxvision's hot paths (installed as ``jaxvision.kernels``).

One module per kernel, each with its kernel body, a wrapper that picks blocks and calls
``pl.pallas_call(..., interpret=interpret)``, and a frozen config dataclass:

* ``jaxvision.kernels.iou``: ``iou_matrix`` (pairwise IoU / GIoU), ``IoUConfig``.
* ``jaxvision.kernels.nms``: ``suppression_mask``, ``keep_from_mask``, ``nms``,
  ``NMSConfig``.
* ``jaxvision.kernels.iic``: ``joint_probability``, ``iic_loss`` (custom VJP), ``IICConfig``.

Nothing is re-exported here: ``jaxvision.kernels.nms`` must stay the module (a re-exported
``nms`` function would shadow it). Kernels import only JAX (and ``jaxvision._checks``, which
imports only NumPy and JAX); the ops in ``jaxvision.ops`` choose between them and XLA.

Status of every kernel here. CI runs them in interpret mode on CPU. On GPU each call passes
``compiler_params=pallas.triton.CompilerParams(...)`` and so lowers through Pallas' Triton
backend: since JAX 0.10 a plain ``pl.pallas_call`` on GPU goes to Mosaic GPU, whose layout
rules these kernels do not follow. Without a GPU, ``jax.export(..., platforms=["cuda"])``
lowers every kernel to Triton IR (a CPU test in ``tests/kernels`` keeps it so), and Triton 3.9
compiled that IR to sm_90 (H100) cubin once, by hand. No kernel has run on a GPU yet, so GPU
results and speed are unverified (see ``GPU_VALIDATED``).
"""

# Kernels that have been compiled and checked against the oracles on a GPU. With
# ``implementation=None`` an op uses its kernel on a GPU only when it is listed here, and the
# XLA path otherwise, so a kernel that has never run on a GPU is never the silent default.
# No GPU has been available to this project yet, so the set is empty; pass
# ``implementation="pallas"`` to use a kernel explicitly.
GPU_VALIDATED: frozenset[str] = frozenset()
