"""`maskrt export ENGINE --triton-repo DIR`: a Triton Inference Server model repository from an engine.

    DIR/
      maskrt/config.pbtxt        platform tensorrt_plan, the plan's inputs and outputs (-1: dynamic),
      maskrt/1/model.plan        the engine's model.plan (every plugin ahead of time: no Python in the
                                 server, no plugin library to load)
      maskrt_paste/config.pbtxt  the same for paste.plan (boxes to the original image, masks pasted)
      maskrt_paste/1/model.plan
      maskrt_input.json          input policy, precision, class names (what a client preprocesses with)
      client.py                  maskrt/tensorrt/triton_client.py as is: numpy + tritonclient
      README.md                  how to serve it and call it

Configs: max_batch_size 0 (the plans take one image; the detection count is per image, so no
dynamic batching: concurrency comes from `instances` model instances on the GPU, KIND_GPU), one
version. Each config is checked by parsing it with Triton's own ModelConfig message (protobuf
text format; `config_schema()` loads it from the tritonclient wheel) when tritonclient is
installed. What only a server can show (UNVERIFIED here): that it loads the plans (same TensorRT
version as the server's container; a driver that takes the PTX's ISA) and runs them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..artifact import is_engine_dir, read_manifest
from ..errors import MaskrtError
from . import triton_client

REPO_MARKER = "maskrt_input.json"
PLATFORM = "tensorrt_plan"


def config_pbtxt(name: str, io: tuple[list, list], instances: int = 1) -> str:
    """The model's config.pbtxt (protobuf text format of Triton's ModelConfig)."""
    def tensors(items):
        return ",\n".join(f'  {{ name: "{n}" data_type: TYPE_{t} dims: [ {", ".join(map(str, d))} ] }}'
                          for n, t, d in items)

    return (f'# written by maskrt export --triton-repo: batch 1 per request, no dynamic batching\n'
            f'name: "{name}"\nplatform: "{PLATFORM}"\nmax_batch_size: 0\n'
            f'input [\n{tensors(io[0])}\n]\noutput [\n{tensors(io[1])}\n]\n'
            f'instance_group [ {{ count: {instances} kind: KIND_GPU }} ]\n'
            f'version_policy: {{ latest: {{ num_versions: 1 }} }}\n')


def config_schema():
    """Triton's model_config_pb2 module (ModelConfig, DataType, ...) from the installed tritonclient
    wheel, loaded by file path: tritonclient.grpc's package import needs grpc and protobuf < 7, the
    generated messages only the protobuf runtime (maskrt's venv has protobuf 7, which Ray Serve
    needs). None when tritonclient is not installed."""
    import importlib.util

    spec = importlib.util.find_spec("tritonclient")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "grpc" / "model_config_pb2.py"
    module_spec = importlib.util.spec_from_file_location("maskrt_triton_model_config_pb2", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def parse_config(text: str, schema=None):
    """text parsed as Triton's ModelConfig (google.protobuf.text_format: an unknown field or enum
    value is a ParseError); MaskrtError when tritonclient is missing."""
    from google.protobuf import text_format

    schema = schema or config_schema()
    if schema is None:
        raise MaskrtError("checking a config.pbtxt needs tritonclient (pip install 'tritonclient[http]')")
    return text_format.Parse(text, schema.ModelConfig())


def export_triton_repo(engine_dir: str | Path, out: str | Path, instances: int = 1) -> Path:
    """Write the repository (module docstring) from a built TensorRT engine folder; returns `out`."""
    from ..safeio import DirectoryOutput

    if not is_engine_dir(engine_dir):
        raise MaskrtError(f"{engine_dir} is not an engine folder (maskrt build ... -o NAME.maskrt)")
    manifest = read_manifest(engine_dir)
    if manifest.target != "tensorrt" or "model" not in manifest.stages:
        raise MaskrtError(f"{engine_dir} holds no TensorRT plan (target {manifest.target}, stages "
                          f"{sorted(manifest.stages) or 'none: built with --onnx-only'}); build it with "
                          "maskrt build --target tensorrt on a GPU machine")
    if instances < 1:
        raise MaskrtError(f"--instances must be a positive integer, got {instances}")
    models = {triton_client.MODEL: (manifest.stages["model"], triton_client.model_io(manifest.precision))}
    if "paste" in manifest.stages:
        models[triton_client.PASTE_MODEL] = (manifest.stages["paste"], triton_client.paste_io())
    schema = config_schema()
    dest = DirectoryOutput(out, "Triton model repository", _replaceable)
    try:
        tmp = dest.new_dir()
        for name, (plan, io) in models.items():
            text = config_pbtxt(name, io, instances)
            if schema is not None:
                parse_config(text, schema)
            (tmp / name / "1").mkdir(parents=True)
            (tmp / name / "config.pbtxt").write_text(text)
            shutil.copyfile(Path(engine_dir) / plan, tmp / name / "1" / "model.plan")
        settings = {"input_policy": manifest.input_policy, "precision": manifest.precision,
                    "classes": manifest.classes, "engine": str(engine_dir)}
        (tmp / REPO_MARKER).write_text(json.dumps(settings, indent=2) + "\n")
        shutil.copyfile(triton_client.__file__, tmp / "client.py")
        (tmp / "README.md").write_text(readme(manifest, sorted(models)))
        dest.commit()
    finally:
        dest.close()
    return Path(out)


def _replaceable(path: Path) -> str | None:
    return None if (path / REPO_MARKER).is_file() else "is not a model repository maskrt wrote"


def readme(manifest, models: list[str]) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in sorted(manifest.versions.items()))
    return f"""# maskrt on Triton Inference Server

Written by `maskrt export --triton-repo` from an engine built with maskrt ({versions}).
Models: {", ".join(models)} (TensorRT plans; every maskrt plugin is compiled into the plan, so the
server needs no plugin library and no Python backend).

## Serve

The plans run only with the TensorRT version that built them (use the Triton container of that
TensorRT release) and a driver that supports the kernels' PTX (CUDA 12.8 or later for triton 3.6,
12.9 for triton 3.8):

    docker run --gpus all --rm -p 8000:8000 -p 8001:8001 -v $PWD:/models \\
        nvcr.io/nvidia/tritonserver:<release>-py3 tritonserver --model-repository=/models

## Call

    pip install numpy pillow 'tritonclient[http]'
    python client.py IMAGE.jpg [--masks] [--url localhost:8000]

One JSON line per detection (label, score, box in the image's pixels; with --masks the pixel count
of its mask). client.py preprocesses as maskrt does ({manifest.input_policy['min_size']} /
{manifest.input_policy['max_size']} px, {manifest.precision}) from maskrt_input.json; the inputs
and outputs are in each model's config.pbtxt. Each request is one image (max_batch_size 0); for
throughput raise the instance_group count and send requests concurrently.
"""
