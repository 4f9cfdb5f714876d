"""The input transform's sizes against torchvision's GeneralizedRCNNTransform, and images so thin
that a side would round to 0 pixels (issue 16, item 10)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.models.detection.transform import GeneralizedRCNNTransform

import maskrt
from maskrt.model.transform import InputPolicy


@pytest.mark.parametrize("size", [(240, 320), (333, 250), (64, 500), (1, 5), (700, 900), (10, 2000)])
def test_resized_size_is_torchvision_s_where_torchvision_works(size):
    policy = InputPolicy(320, 512)
    tv = GeneralizedRCNNTransform(320, 512, [0.0] * 3, [1.0] * 3)
    tv.eval()
    resized = tv(list(torch.rand(1, 3, *size)))[0].image_sizes[0]
    assert policy.resized_size(*size) == tuple(resized)


@pytest.fixture(scope="module")
def torch_seg(small_checkpoint):
    return maskrt.load(small_checkpoint, backend="torch", score_threshold=0.0)


@pytest.mark.parametrize("shape", [(1, 600, 3), (600, 1, 3), (2, 5000, 3), (5000, 2, 3)])
def test_thin_images_keep_a_pixel_and_are_segmented(torch_seg, shape):
    """torchvision fails on these (a side resized to 0); maskrt keeps at least one pixel, so the
    image is segmented and its masks come back at the input's size."""
    with pytest.raises(RuntimeError):
        GeneralizedRCNNTransform(320, 512, [0.0] * 3, [1.0] * 3).eval()(list(torch.rand(1, 3, *shape[:2])))
    assert min(InputPolicy(320, 512).resized_size(*shape[:2])) == 1
    dets = torch_seg(np.full(shape, 120, np.uint8))
    assert dets.masks.shape == (len(dets), *shape[:2])


@pytest.mark.parametrize("size", [(320, 480), (300, 512)])  # already at the policy's size: no resampling
def test_an_image_at_its_size_is_normalised_as_torchvision_does(size):
    """normalize_and_resize returns the normalised image itself when the policy keeps its size;
    bitwise what torchvision's transform gives (its interpolation to the same size)."""
    from maskrt.model.transform import normalize_and_resize

    policy = InputPolicy(320, 512)
    assert policy.resized_size(*size) == size
    image = torch.rand(3, *size, generator=torch.Generator().manual_seed(0))
    tv = GeneralizedRCNNTransform(320, 512, list(policy.mean), list(policy.std))
    tv.eval()
    want = tv([image])[0].tensors[0, :, : size[0], : size[1]]
    assert torch.equal(normalize_and_resize(image, policy), want)


def _torchvision_batch(images: list[torch.Tensor], policy: InputPolicy) -> tuple[torch.Tensor, list]:
    tv = GeneralizedRCNNTransform(policy.min_size, policy.max_size, list(policy.mean), list(policy.std))
    tv.eval()
    batch = tv([img.contiguous() for img in images])[0]
    return batch.tensors, [tuple(s) for s in batch.image_sizes]


def _host_frames(sizes, seed=0):
    """RGB frames as the CPU engine passes them: Tensor[3, h, w] uint8 views of channels-last memory
    (every value 0..255 present)."""
    rng = np.random.default_rng(seed)
    return [torch.from_numpy(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).permute(2, 0, 1) for h, w in sizes]


def _as_floats(frames):
    """The frames' float32 images in [0, 1], uint8 / 255 over the same memory layout (to_float_chw's)."""
    return [frame.float().div_(255) for frame in frames]


@pytest.mark.parametrize("frames", ["uint8", "float32"])
@pytest.mark.parametrize("sizes", [[(320, 480)], [(600, 800)], [(300, 512), (320, 416)], [(240, 320)],
                                   [(576, 768), (320, 480)]])
def test_host_preprocess_is_torchvision_s_batch_bit_for_bit(sizes, frames):
    """The host's one-pass normalisation (into the padded batch at the policy's size, before the
    resampling otherwise; 600x800 is normalised by two threads) gives torchvision's batch of the
    float images exactly, padding zeros included: from float32 images, and from uint8 frames (their
    values looked up in a table torch's ops computed)."""
    from maskrt.model.transform import NORMALIZE_THREADED_PIXELS, preprocess

    policy = InputPolicy(320, 512) if sizes != [(600, 800)] else InputPolicy(600, 800)
    assert 600 * 800 >= NORMALIZE_THREADED_PIXELS
    uint8 = _host_frames(sizes)
    images = _as_floats(uint8)
    batch, resized = preprocess(uint8 if frames == "uint8" else images, policy)
    want, want_sizes = _torchvision_batch(images, policy)
    assert resized == want_sizes
    assert batch.shape == want.shape and torch.equal(batch, want)


@pytest.mark.parametrize("frames", ["uint8", "float32"])
def test_host_preprocess_bgr_takes_the_channels_in_the_network_s_order(frames):
    """channels="BGR": the network's channel k is the image's channel 2 - k, normalised with the
    policy's mean and std (given in the network's order): torchvision's batch of the flipped image."""
    from maskrt.model.transform import preprocess

    policy = InputPolicy(320, 512, mean=(0.1, 0.5, 0.9), std=(0.2, 0.3, 0.4), channels="BGR")
    uint8 = _host_frames([(320, 480), (400, 300)], seed=1)
    images = _as_floats(uint8)
    batch, _ = preprocess(uint8 if frames == "uint8" else images, policy)
    want, _ = _torchvision_batch([img.flip(0) for img in images], policy)
    assert torch.equal(batch, want)


def test_uint8_frames_off_the_host_path_are_taken_as_value_over_255():
    """Where the one-pass normalisation does not apply (here detectron2's transform), a uint8 frame
    is converted to the float image first: the same batch as from that float image."""
    from maskrt.model.transform import preprocess

    policy = InputPolicy(320, 512, mean=(103.5, 116.3, 123.7), std=(1.0, 1.0, 1.0), channels="BGR",
                         resize="detectron2")
    uint8 = _host_frames([(240, 300)], seed=2)
    batch, sizes = preprocess(uint8, policy)
    want, want_sizes = preprocess(_as_floats(uint8), policy)
    assert sizes == want_sizes and torch.equal(batch, want)
