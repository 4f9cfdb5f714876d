"""The network: torchvision-compatible Mask R-CNN, export-friendly forward, checkpoint loading
(torchvision checkpoints, and detectron2's: maskrt.model.detectron2)."""

from .arch import ArchConfig, infer_config
from .checkpoint import Checkpoint, load_checkpoint
from .heads import DetectionParams
from .loader import LoadedModel, load_model, model_from_checkpoint, save_checkpoint
from .network import MaskRCNN, RawDetections
from .rpn import RPNParams
from .transform import InputPolicy

__all__ = [
    "ArchConfig", "Checkpoint", "DetectionParams", "InputPolicy", "LoadedModel", "MaskRCNN", "RPNParams",
    "RawDetections", "infer_config", "load_checkpoint", "load_model", "model_from_checkpoint", "save_checkpoint",
]
