"""jaxvision.models: flax.linen networks, one file per family, variants as partials."""

from jaxvision.models.iic import (
    BookVGGTrunk,
    FastCPUTrunk,
    IICBookVGG,
    IICFastCPU,
    IICModel,
    IICPaper5x5,
    IICSeed004,
    IICTiny,
    IICTrunk,
    Paper5x5Trunk,
    Seed004Trunk,
    TinyTrunk,
    count_params,
)
from jaxvision.models.mine import MineEncoder, MineMLP, MineStatisticsNetwork

__all__ = [
    "IICTrunk",
    "IICModel",
    "BookVGGTrunk",
    "Paper5x5Trunk",
    "Seed004Trunk",
    "FastCPUTrunk",
    "TinyTrunk",
    "IICBookVGG",
    "IICPaper5x5",
    "IICSeed004",
    "IICFastCPU",
    "IICTiny",
    "MineStatisticsNetwork",
    "MineMLP",
    "MineEncoder",
    "count_params",
]
