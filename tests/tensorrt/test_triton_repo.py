"""`maskrt export ENGINE --triton-repo DIR` (maskrt/tensorrt/triton_repo.py) and its client, without a server.

- the repository's files; each config.pbtxt parsed by Triton's own ModelConfig message (protobuf
  text format, from the tritonclient wheel) and its tensors those of the plan's ONNX graph (names,
  element types, ranks, the graph's fixed dims); the plans are the engine's, byte for byte;
- the parse is a real check: a config with an unknown field or data type is refused;
- the client's request for a real frame, built with tritonclient.http, matches the config (every
  input, its datatype, its shape against the dims); its preprocessing equals torch's;
- the client runs standalone: in a python with numpy and tritonclient only (no torch, no maskrt);
- one-line errors: an engine without plans, a folder that is not an engine, a folder it did not write.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from maskrt.artifact import read_manifest
from maskrt.cli import main as cli_main
from maskrt.model import InputPolicy
from maskrt.model.transform import preprocess
from maskrt.tensorrt import triton_client, triton_repo
from tests.isolated import site_of

TYPES = {onnx.TensorProto.FLOAT: "FP32", onnx.TensorProto.FLOAT16: "FP16", onnx.TensorProto.INT64: "INT64",
         onnx.TensorProto.UINT8: "UINT8", onnx.TensorProto.BOOL: "BOOL"}
CLIENT = ("numpy", "tritonclient", "geventhttpclient", "python-rapidjson")  # pip install 'tritonclient[http]


@pytest.fixture(scope="module")
def repo(trt_plan_engine, tmp_path_factory):
    return triton_repo.export_triton_repo(trt_plan_engine, tmp_path_factory.mktemp("triton") / "models")


def frame(h=100, w=150, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def configs(repo: Path) -> dict:
    return {name: triton_repo.parse_config((repo / name / "config.pbtxt").read_text())
            for name in (triton_client.MODEL, triton_client.PASTE_MODEL)}


def tensors(items, message) -> list:
    return [(t.name, message.DataType.Name(t.data_type).removeprefix("TYPE_"), list(t.dims)) for t in items]


def onnx_tensors(values) -> list:
    out = []
    for v in values:
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim]
        out.append((v.name, TYPES[v.type.tensor_type.elem_type], dims))
    return out


def test_repository_layout_and_plans(repo, trt_plan_engine):
    assert sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file()) == [
        "README.md", "client.py", "maskrt/1/model.plan", "maskrt/config.pbtxt", "maskrt_input.json",
        "maskrt_paste/1/model.plan", "maskrt_paste/config.pbtxt"]
    assert (repo / "maskrt/1/model.plan").read_bytes() == (trt_plan_engine / "model.plan").read_bytes()
    assert (repo / "maskrt_paste/1/model.plan").read_bytes() == (trt_plan_engine / "paste.plan").read_bytes()
    assert (repo / "client.py").read_text() == Path(triton_client.__file__).read_text()
    settings = json.loads((repo / "maskrt_input.json").read_text())
    manifest = read_manifest(trt_plan_engine)
    assert settings["input_policy"] == manifest.input_policy and settings["classes"] == manifest.classes


def test_configs_parse_as_tritons_model_config_and_match_the_plans_graphs(repo, trt_plan_engine):
    message = triton_repo.config_schema()
    found = configs(repo)
    for name, graph in ((triton_client.MODEL, "model.onnx"), (triton_client.PASTE_MODEL, "paste.onnx")):
        config = found[name]
        assert (config.name, config.platform, config.max_batch_size) == (name, "tensorrt_plan", 0)
        assert not config.HasField("dynamic_batching")  # one image per request: detection counts differ
        [group] = config.instance_group
        assert (group.count, message.ModelInstanceGroup.Kind.Name(group.kind)) == (1, "KIND_GPU")
        model = onnx.load(str(trt_plan_engine / graph))
        for declared, exported in ((config.input, model.graph.input), (config.output, model.graph.output)):
            declared, exported = tensors(declared, message), onnx_tensors(exported)
            assert [d[:2] for d in declared] == [e[:2] for e in exported]  # names, element types
            for (name, _, dims), (_, _, graph_dims) in zip(declared, exported):  # ranks; the graph's fixed dims
                assert len(dims) == len(graph_dims) and all(g in (-1, d) for d, g in zip(dims, graph_dims)), name


@pytest.mark.parametrize("bad", ['data_type: TYPE_FLOAT32', 'dims: [ 1 ] colour: 3'])
def test_the_schema_check_refuses_what_triton_would(repo, bad):
    from google.protobuf import text_format

    text = (repo / "maskrt" / "config.pbtxt").read_text().replace("data_type: TYPE_INT64 dims: [ 2 ]", bad)
    with pytest.raises(text_format.ParseError):
        triton_repo.parse_config(text)


def test_the_clients_request_matches_the_config(repo):
    import tritonclient.http as http

    message = triton_repo.config_schema()
    settings = json.loads((repo / "maskrt_input.json").read_text())
    image = frame()
    arrays = triton_client.requests(image, settings)
    found = configs(repo)
    for name, arrays, io in ((triton_client.MODEL, arrays, triton_client.model_io(settings["precision"])),
                             (triton_client.PASTE_MODEL, triton_client.paste_requests(
                                 {"mask_probs": np.zeros((4, 28, 28), np.float32),
                                  "boxes": np.zeros((4, 4), np.float32)}, arrays["image_hw"], image),
                              triton_client.paste_io())):
        declared = {n: (t, d) for n, t, d in tensors(found[name].input, message)}
        request = triton_client.infer_inputs(http, arrays, io[0])
        assert sorted(i.name() for i in request) == sorted(declared)
        for tensor in request:
            datatype, dims = declared[tensor.name()]
            assert tensor.datatype() == datatype and len(tensor.shape()) == len(dims)
            assert all(d in (-1, s) for d, s in zip(dims, tensor.shape())), (tensor.name(), tensor.shape(), dims)
        outputs = {n for n, _, _ in tensors(found[name].output, message)}
        assert {n for n, _, _ in io[1]} == outputs


@pytest.mark.parametrize("precision,resize,channels", [("fp32", "torchvision", "RGB"), ("fp16", "torchvision", "RGB"),
                                                      ("fp32", "torchvision", "BGR"), ("fp32", "detectron2", "BGR")])
def test_client_preprocessing_equals_maskrts(precision, resize, channels):
    """torchvision's: numpy float32 vs torch's interpolate, both rounding every product and sum to
    float32 in an order that may differ: a few float32 ulps of values below 3 (1e-6); fp16: half an
    fp16 ulp. detectron2's: the same Pillow resize and float32 operations: identical."""
    scale = 255.0 if resize == "detectron2" else 1.0
    policy = {"min_size": 128, "max_size": 160, "mean": [0.485 * scale, 0.456 * scale, 0.406 * scale],
              "std": [0.229 * scale, 0.224 * scale, 0.225 * scale], "channels": channels, "resize": resize}
    image = frame(100, 150, seed=3)
    images, image_hw = triton_client.preprocess(image, {"input_policy": policy, "precision": precision})
    chw = torch.from_numpy(image).permute(2, 0, 1).float().div(255.0)
    want, sizes = preprocess([chw], InputPolicy.from_manifest(policy))
    assert image_hw.tolist() == list(sizes[0]) and images.shape == tuple(want.shape)
    tol = {"fp32": 1e-5, "fp16": 2e-3}[precision] if resize == "torchvision" else 0
    np.testing.assert_allclose(images.astype(np.float32), want.numpy(), atol=tol, rtol=0)
    assert images.dtype == (np.float16 if precision == "fp16" else np.float32)


def test_the_client_runs_without_torch_or_maskrt(repo, tmp_path):
    """client.py, imported from the repository in a python that has numpy and tritonclient only,
    builds its requests for a frame (what it would send)."""
    np.save(tmp_path / "frame.npy", frame())
    code = ("import json, sys, numpy as np, tritonclient.http as http, client; "
            "s = json.load(open('maskrt_input.json')); a = client.requests(np.load(sys.argv[1]), s); "
            "r = client.infer_inputs(http, a, client.model_io(s['precision'])[0]); "
            "print(json.dumps([[i.name(), i.datatype(), i.shape()] for i in r] + "
            "[m for m in ('torch', 'maskrt') if m in sys.modules]))")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TRITON_INTERPRET")}
    env["PYTHONPATH"] = f"{site_of(tmp_path, CLIENT)}{os.pathsep}{repo}"
    out = subprocess.run([sys.executable, "-S", "-c", code, str(tmp_path / "frame.npy")], cwd=repo, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    sent = json.loads(out.stdout)
    assert [s[:2] for s in sent] == [["images", "FP32"], ["image_hw", "INT64"]]  # and no torch, no maskrt


def test_cli_export_and_its_one_line_errors(trt_plan_engine, trt_onnx_engine, tmp_path, capsys):
    assert cli_main(["export", str(trt_plan_engine), "--triton-repo", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "maskrt" / "config.pbtxt").is_file()
    assert cli_main(["export", str(trt_plan_engine), "--triton-repo", str(tmp_path / "r")]) == 0  # its own: replaced
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("not a repository")
    for args, message in ((["export", str(trt_onnx_engine), "--triton-repo", str(tmp_path / "x")], "no TensorRT plan"),
                          (["export", str(tmp_path), "--triton-repo", str(tmp_path / "x")], "not an engine folder"),
                          (["export", str(trt_plan_engine), "--triton-repo", str(tmp_path / "other")],
                           "is not a model repository maskrt wrote"),
                          (["export", str(trt_plan_engine), "--triton-repo", str(tmp_path / "x"), "--instances", "0"],
                           "--instances must be a positive integer")):  # (every range: tests/test_cli_numbers.py)
        capsys.readouterr()
        assert cli_main(args) == 2
        err = capsys.readouterr().err
        assert err.startswith("maskrt: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists() and (tmp_path / "other" / "keep.txt").is_file()
