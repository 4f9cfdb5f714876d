"""The engine artifact: a directory NAME.maskrt/ with manifest.json and its payload files.

manifest.json holds the format version, the maskrt / runtime versions, the target and
precision, the input-size policy, class names, thresholds, the architecture, and the sha256 of
every payload file and of the source checkpoint. Loading checks every field (`checks`), that
every payload name stays inside the folder and every loaded file is listed, and the hashes; it
reports the first problem in one line (EngineError). Builders write this format and backends
read it; it sits below both (it imports only model's parameter records).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import EngineError
from ..hashing import sha256_file
from ..model.arch import ArchConfig
from ..options import PRECISIONS, TARGETS
from .checks import MANIFEST_NAME, confined, manifest_kwargs

FORMAT_VERSION = 1


@dataclass
class Manifest:
    target: str
    precision: str
    classes: list[str]
    config: ArchConfig
    input_policy: dict  # {"min_size", "max_size", "mean", "std", "size_divisible"}
    thresholds: dict  # detection and RPN parameters the engine was built with
    files: dict[str, str] = field(default_factory=dict)  # payload path -> sha256
    source: dict = field(default_factory=dict)  # {"path", "sha256"} of the checkpoint
    stages: dict[str, str] = field(default_factory=dict)  # stage name -> payload file
    versions: dict[str, str] = field(default_factory=dict)
    # int8 engines: {"nncf", "preset", "calibration": {"source", "size", "sha256"}, "samples",
    # "stages", "float_groups", "float_layers"} (maskrt.builders.quantize); empty otherwise
    quantization: dict = field(default_factory=dict)
    # cpu engines: the box stage's fully connected layers, {"form": "matmul" | "conv1x1",
    # "chosen_by", "ms": {form: median ms}, "rows", "precision"} (maskrt.builders.box_forms);
    # empty for engines built before it (matmul)
    box_form: dict = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict, where: Path) -> "Manifest":
        """From parsed JSON, every field checked (one EngineError line naming the field)."""
        return cls(**manifest_kwargs(data, where, dataclasses.fields(cls), TARGETS, PRECISIONS))


def is_engine_dir(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and (path / MANIFEST_NAME).is_file()


def write_manifest(engine_dir: Path, manifest: Manifest) -> None:
    """Hash every payload file listed in manifest.files and write manifest.json (checked as a
    reader will check it, so a builder bug cannot write an engine that does not load)."""
    manifest.files = {name: sha256_file(engine_dir / name) for name in sorted(manifest.files)}
    text = manifest.to_json()
    Manifest.from_dict(json.loads(text), engine_dir)
    (engine_dir / MANIFEST_NAME).write_text(text)


def read_manifest(engine_dir: str | Path, verify: bool = True) -> Manifest:
    """Read and check an engine directory; every problem is one EngineError line."""
    engine_dir = Path(engine_dir)
    if not engine_dir.exists():
        raise EngineError(f"engine not found: {engine_dir}")
    path = engine_dir / MANIFEST_NAME
    if not path.is_file():
        raise EngineError(f"{engine_dir} is not a maskrt engine (no {MANIFEST_NAME})")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EngineError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise EngineError(f"{path} is not a maskrt manifest")
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise EngineError(f"{engine_dir} has engine format version {version}; this maskrt reads version "
                          f"{FORMAT_VERSION}: rebuild it with `maskrt build`")
    manifest = Manifest.from_dict(data, engine_dir)
    if verify:
        verify_files(engine_dir, manifest)
    return manifest


def verify_files(engine_dir: Path, manifest: Manifest) -> None:
    """Every listed file exists inside the folder and matches its sha256 (the stages' files are
    listed: checked when the manifest was read)."""
    for name, expected in manifest.files.items():
        file = confined(engine_dir, name)
        if not file.is_file():
            raise EngineError(f"{engine_dir}: payload file {name} is missing")
        if sha256_file(file) != expected:
            raise EngineError(f"{engine_dir}: {name} does not match its sha256 in the manifest (corrupt or modified)")
