"""RPN proposals per image as a setting: RPNParams.with_proposals, checkpoint metadata, load(proposals=N).

The oracle is torchvision's MaskRCNN built with rpn_pre_nms_top_n_test = rpn_post_nms_top_n_test = N
(its RegionProposalNetwork at those settings), on the same weights and image."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import maskrt
from maskrt import kernels
from maskrt.errors import CheckpointError, MaskrtError
from maskrt.model import RPNParams, load_model, save_checkpoint
from tests.conftest import random_image, small_torchvision_maskrcnn
from tests.model.test_parity import assert_same_detections, torchvision_reference


@pytest.mark.parametrize("base, proposals, want", [
    ((1000, 1000), 300, (300, 300)),   # torchvision / detectron2 test settings: pre per level = N
    ((2000, 1000), 300, (600, 300)),   # the checkpoint's ratio is kept
    ((1000, 1000), 1, (1, 1)),
    ((1000, 3000), 1, (1, 1)),         # pre-NMS never drops to 0 (ceil)
    ((1000, 1000), 5000, (5000, 5000)),
])
def test_with_proposals_scales_pre_nms_in_the_checkpoints_ratio(base, proposals, want):
    got = RPNParams(pre_nms_top_n=base[0], post_nms_top_n=base[1], nms_thresh=0.6).with_proposals(proposals)
    assert (got.pre_nms_top_n, got.post_nms_top_n) == want
    assert got.nms_thresh == 0.6  # nothing else changes


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    oracle = small_torchvision_maskrcnn(num_classes=3, seed=7)
    path = tmp_path_factory.mktemp("rpn") / "m.safetensors"
    save_checkpoint(path, oracle.state_dict(), min_size=320, max_size=512)
    return path, oracle.state_dict()


@pytest.mark.parametrize("proposals", [25, 150])
def test_load_with_proposals_matches_torchvision_at_that_setting(weights, proposals):
    path, state = weights
    oracle = small_torchvision_maskrcnn(num_classes=3, seed=7, box_score_thresh=0.01, min_size=320, max_size=512,
                                        rpn_pre_nms_top_n_test=proposals, rpn_post_nms_top_n_test=proposals)
    oracle.load_state_dict(state)
    seg = maskrt.load(path, backend="torch", score_threshold=0.01, proposals=proposals)
    image = random_image(np.random.default_rng(proposals), 300, 420)
    with kernels.use("reference"):
        ours = seg(image)
    assert_same_detections(ours, torchvision_reference(oracle, image))


def test_the_box_stage_sees_at_most_n_proposals(weights):
    path, _ = weights
    seg = maskrt.load(path, backend="torch", proposals=40)
    heads = seg.backend.detector.heads
    rows, box_fn = [], heads.box_fn
    heads.box_fn = lambda x: rows.append(x.shape[0]) or box_fn(x)
    seg(random_image(np.random.default_rng(0), 300, 420))
    assert rows == [40]  # a random-weight RPN keeps far more than 40 boxes after NMS


def test_checkpoint_metadata_sets_the_default_and_load_overrides_it(tmp_path, weights):
    _, state = weights
    path = save_checkpoint(tmp_path / "p.safetensors", state, proposals=120)
    params = load_model(path).model.detector.proposals.params
    assert (params.pre_nms_top_n, params.post_nms_top_n) == (120, 120)
    plain = load_model(weights[0]).model.detector.proposals.params
    assert (plain.pre_nms_top_n, plain.post_nms_top_n) == (1000, 1000)  # no metadata: torchvision's
    seg = maskrt.load(path, backend="torch", proposals=30)
    assert seg.backend.detector.proposals.params.post_nms_top_n == 30


def test_bad_proposals_metadata_is_one_line(tmp_path, weights):
    from safetensors.torch import save_file

    path = tmp_path / "bad.safetensors"
    save_file({k: v.contiguous() for k, v in weights[1].items()}, str(path), metadata={"proposals": "0"})
    with pytest.raises(CheckpointError, match="metadata proposals must be a positive integer, got 0"):
        load_model(path)


@pytest.mark.parametrize("value", [0, -3, 2.5, "100", True])
def test_load_refuses_a_proposal_count_that_is_not_a_positive_integer(weights, value):
    with pytest.raises(MaskrtError, match="proposals must be a positive integer"):
        maskrt.load(weights[0], backend="torch", proposals=value)


def test_bundled_model_default_comes_from_its_metadata():
    from maskrt.builders.calibration import bundled_checkpoint
    from maskrt.model import load_checkpoint

    meta = load_checkpoint(bundled_checkpoint()).metadata
    params = load_model(bundled_checkpoint()).model.detector.proposals.params
    assert params.post_nms_top_n == meta["proposals"] < 1000
    assert params.pre_nms_top_n == meta["proposals"]


@pytest.mark.parametrize("numerics", ["torchvision", "detectron2"])
@pytest.mark.parametrize("stride", [(4, 4), (61, 64), (32, 8)])
def test_the_compiled_pick_equals_torchvision_s_anchors_and_delta_layout(numerics, stride):
    """The proposals' compiled pass (picked_anchors_and_deltas) against torchvision's own layout: its
    AnchorGenerator.grid_anchors for the level's anchors and concat_box_prediction_layers for the
    deltas, rows `index` of each, bit for bit; detectron2's cells are not integers, a stride of 61 is
    torchvision's at P6 of an 800-row batch. The deltas also as a strided view (copied first)."""
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.rpn import concat_box_prediction_layers

    from maskrt.model.rpn import cell_anchors, on_host, picked_anchors_and_deltas

    h, w = 13, 17
    cells = cell_anchors(numerics)[1]  # 3 cells of one level
    a = cells.shape[0]
    g = torch.Generator().manual_seed(7)
    wide = torch.randn(1, 4 * a, h, w + 5, generator=g)
    index = torch.cat([torch.tensor([0, h * w * a - 1]), torch.randperm(h * w * a, generator=g)[:200]])
    generator = AnchorGenerator(((32,),), ((0.5, 1.0, 2.0),))
    generator.cell_anchors = [cells]
    want_anchors = generator.grid_anchors([[h, w]], [[torch.tensor(stride[0]), torch.tensor(stride[1])]])[0]
    for deltas in (wide[..., :w].contiguous(), wide[..., :w]):
        assert on_host(deltas, stride)
        want_deltas = concat_box_prediction_layers([torch.zeros(1, a, h, w)], [deltas])[1]
        picked, anchors = picked_anchors_and_deltas(index, deltas, cells, w, stride)
        assert torch.equal(picked, want_deltas[index])
        assert torch.equal(anchors, want_anchors[index])


def test_traced_or_tensor_strides_keep_the_torch_ops():
    """A traced graph (the TensorRT export) and tensor strides keep the Gather ops, not the compiled pass."""
    from maskrt.model.rpn import on_host

    deltas = torch.zeros(1, 12, 4, 4)
    assert on_host(deltas, (4, 4))
    assert not on_host(deltas, (torch.tensor(4), torch.tensor(4)))
    assert not on_host(deltas.double(), (4, 4))
    seen = []

    def level(x):
        seen.append(on_host(x, (4, 4)))
        return x + 1

    torch.jit.trace(level, deltas, check_trace=False)
    assert seen == [False]
