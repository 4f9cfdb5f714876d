"""Architecture inference from state-dict keys and shapes, against torchvision's constructors."""

from __future__ import annotations

import pytest
import torch
from torchvision.models import _api as torchvision_api
from torchvision.models import resnet
from torchvision.models.detection import MaskRCNN, maskrcnn_resnet50_fpn, maskrcnn_resnet50_fpn_v2
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

from maskrt.model import infer_config
from maskrt.model.arch import upgrade_legacy_keys


@pytest.mark.parametrize("depth", [18, 34, 50, 101])
def test_resnet_depths(depth):
    backbone = resnet_fpn_backbone(backbone_name=f"resnet{depth}", weights=None, trainable_layers=5)
    sd = MaskRCNN(backbone, num_classes=9).state_dict()
    cfg = infer_config(sd)
    assert (cfg.depth, cfg.num_classes, cfg.fpn_channels, cfg.variant) == (depth, 9, 256, "v1")
    assert cfg.backbone_norm == "frozen"  # resnet_fpn_backbone defaults to FrozenBatchNorm2d


def test_v1_and_v2_layouts():
    v1 = infer_config(maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91).state_dict())
    v2 = infer_config(maskrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None, num_classes=3).state_dict())
    assert v1.name == "maskrcnn_resnet50_fpn" and v1.box_head == "mlp" and v1.representation_size == 1024
    assert v2.name == "maskrcnn_resnet50_fpn_v2" and v2.box_head == "conv" and v2.box_conv_layers == (256,) * 4
    assert v2.rpn_conv_depth == 2 and v2.fpn_norm and v2.mask_head_norm and v2.num_classes == 3


def test_legacy_key_names_are_upgraded():
    sd = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=4).state_dict()
    legacy = {}
    for k, v in sd.items():
        k = k.replace("rpn.head.conv.0.0.", "rpn.head.conv.")
        for i in range(4):
            k = k.replace(f"roi_heads.mask_head.{i}.0.", f"roi_heads.mask_head.mask_fcn{i + 1}.")
        legacy[k] = v
    assert "rpn.head.conv.weight" in legacy and "roi_heads.mask_head.mask_fcn4.weight" in legacy
    assert upgrade_legacy_keys(legacy).keys() == sd.keys()


def test_unsupported_resnet_is_reported():
    from maskrt.errors import CheckpointError

    body = resnet.ResNet(resnet.BasicBlock, [1, 1, 1, 1])
    sd = {f"backbone.body.{k}": v for k, v in body.state_dict().items()}
    sd.update(maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=2).state_dict())
    sd = {k: v for k, v in sd.items() if not k.startswith("backbone.body.layer") or ".0." in k[:25]}
    sd = {k: v for k, v in sd.items() if "conv3" not in k}
    with pytest.raises(CheckpointError, match="unsupported ResNet body"):
        infer_config(sd)


def test_torchvision_names_load_through_the_weights_api(monkeypatch):
    """`torchvision:NAME` asks torchvision's weights API for the COCO state dict (download stubbed)."""
    from maskrt.model import load_model

    requested = []

    def fake_download(url, *args, **kwargs):
        requested.append(url)
        torch.manual_seed(0)
        return maskrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None, num_classes=91).state_dict()

    monkeypatch.setattr(torchvision_api, "load_state_dict_from_url", fake_download)
    loaded = load_model("torchvision:maskrcnn_resnet50_fpn_v2")
    assert requested and requested[0].startswith("https://download.pytorch.org/models/maskrcnn_resnet50_fpn_v2")
    assert loaded.config.variant == "v2" and len(loaded.classes) == 91 and loaded.classes[1] == "person"


def test_torchvision_download_failure_is_one_line(monkeypatch):
    from urllib.error import URLError

    from maskrt.errors import CheckpointError
    from maskrt.model import load_model

    def offline(url, *args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(torchvision_api, "load_state_dict_from_url", offline)
    with pytest.raises(CheckpointError, match="could not download torchvision:maskrcnn_resnet50_fpn weights"):
        load_model("torchvision:maskrcnn_resnet50_fpn")
    with pytest.raises(CheckpointError, match="unknown torchvision model"):
        load_model("torchvision:fasterrcnn")
