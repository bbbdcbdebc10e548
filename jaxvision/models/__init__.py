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
from jaxvision.models.resnet import (ResNet11v2, ResNet20v1, ResNet20v2, ResNet56v2, ResNetTiny,
                                     ResNetV1, ResNetV2)
from jaxvision.models.ssd import SSD, SSDBook, SSDSmall, SSDSmallP2, SSDTiny, feature_shapes
from jaxvision.models.fcn import FCN, FCNBook, FCNMedium, FCNSmall, FCNTiny, SubpixelConvTranspose
from jaxvision.models.segnet import SegNet, SegNetSmall, SegNetTiny
from jaxvision.models.faster_rcnn import FasterRCNN, FasterRCNNSmall, FasterRCNNTiny
from jaxvision.models.mask_rcnn import MaskRCNN, MaskRCNNSmall, MaskRCNNTiny
from jaxvision.models.yolo import YOLO, YOLOSmall, YOLOTiny
from jaxvision.models.unet import UNet, UNetSmall, UNetTiny
from jaxvision.models.capsnet import CapsNet, CapsNetMedium, CapsNetPaper, CapsNetSmall, CapsNetTiny
from jaxvision.models.mobilenet import (MobileNet, MobileNetMNIST, MobileNetTiny, PlainNetMNIST,
                                       PlainNetTiny)
from jaxvision.models.localizer import Localizer, LocalizerSmall, LocalizerTiny
from jaxvision.models.gan import (DCGANDiscriminator, DCGANDiscriminator64,
                                  DCGANDiscriminatorMNIST, DCGANDiscriminatorTiny, DCGANGenerator,
                                  DCGANGenerator64, DCGANGeneratorMNIST, DCGANGeneratorTiny,
                                  LinearGenerator, MLPDiscriminator, MnistFeatureNet,
                                  MnistFeatureNetTiny)
from jaxvision.models.vgg import VGG, VGG19, VGG19Small, VGG19Tiny
from jaxvision.models.wavenet import (SeqMnistTCN, SeqMnistTCNTiny, WaveNet, WaveNetTiny)
from jaxvision.models.text import BagOfWords, BagOfWordsTiny, TextCNN, TextCNNTiny
from jaxvision.models.video import (Video2Plus1D, Video2Plus1DTiny, Video3D, Video3DTiny,
                                    VideoLSTM, VideoLSTMTiny, VideoSingleFrame,
                                    VideoSingleFrameTiny)
from jaxvision.models.vqa import (QuestionOnly, QuestionOnlyTiny, RelationNet, RelationNetTiny,
                                  VQANet, VQANetTiny)
from jaxvision.models import layers

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
    "ResNetV1", "ResNetV2", "ResNet20v1", "ResNet56v2", "ResNet20v2", "ResNet11v2",
    "ResNetTiny",
    "SSD", "SSDBook", "SSDSmall", "SSDSmallP2", "SSDTiny", "feature_shapes",
    "FCN", "FCNBook", "FCNSmall", "FCNMedium", "FCNTiny", "SubpixelConvTranspose",
    "SegNet", "SegNetSmall", "SegNetTiny",
    "UNet", "UNetSmall", "UNetTiny",
    "FasterRCNN", "FasterRCNNSmall", "FasterRCNNTiny",
    "YOLO", "YOLOSmall", "YOLOTiny",
    "MaskRCNN", "MaskRCNNSmall", "MaskRCNNTiny",
    "CapsNet", "CapsNetPaper", "CapsNetMedium", "CapsNetSmall", "CapsNetTiny",
    "MobileNet", "MobileNetMNIST", "PlainNetMNIST", "MobileNetTiny", "PlainNetTiny",
    "Localizer", "LocalizerSmall", "LocalizerTiny",
    "LinearGenerator", "MLPDiscriminator", "DCGANGenerator", "DCGANDiscriminator",
    "DCGANGenerator64", "DCGANDiscriminator64", "DCGANGeneratorMNIST", "DCGANDiscriminatorMNIST",
    "DCGANGeneratorTiny", "DCGANDiscriminatorTiny", "MnistFeatureNet", "MnistFeatureNetTiny",
    "VGG", "VGG19", "VGG19Small", "VGG19Tiny",
    "WaveNet", "WaveNetTiny", "SeqMnistTCN", "SeqMnistTCNTiny",
    "TextCNN", "TextCNNTiny", "BagOfWords", "BagOfWordsTiny",
    "VideoLSTM", "Video3D", "Video2Plus1D", "VideoSingleFrame", "VideoLSTMTiny",
    "Video3DTiny", "Video2Plus1DTiny", "VideoSingleFrameTiny",
    "VQANet", "QuestionOnly", "RelationNet", "VQANetTiny", "QuestionOnlyTiny", "RelationNetTiny",
]
