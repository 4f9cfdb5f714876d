"""Checks of every manifest.json field. A malformed value is one EngineError line naming the
field; every payload name must stay inside the engine folder (relative, no `..`, no symlink
leading out), and every file a backend loads must be listed (and so hashed) in `files`."""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from pathlib import Path, PurePosixPath

from ..errors import EngineError
from ..model.arch import NUMERICS, ArchConfig
from ..model.heads import DetectionParams
from ..model.rpn import RPNParams
from ..model.transform import CHANNEL_ORDERS, RESIZE_MODES

MANIFEST_NAME = "manifest.json"
CPU_STAGES = ("dense", "box", "mask")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_CHOICES = {"backbone_norm": ("frozen", "batch"), "box_head": ("mlp", "conv"), "numerics": NUMERICS}
SOURCE_FORMATS = ("torchvision", "detectron2")  # source.format: whose checkpoint the engine was built from
_DEPTHS = (18, 34, 50, 101, 152)


class _Bad(Exception):
    def __init__(self, field: str, problem: str):
        super().__init__(f"{field} {problem}")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


def _dict(data, field: str) -> dict:
    if not isinstance(data, dict):
        raise _Bad(field, f"must be an object, got {type(data).__name__}")
    return data


def _positive_int(v, field: str) -> int:
    if not _is_int(v) or v < 1:
        raise _Bad(field, f"must be a positive integer, got {v!r}")
    return v


def check_name(name, field: str = "files") -> str:
    """A payload name: a relative POSIX path inside the engine folder (no '..', '.', '' parts)."""
    if not isinstance(name, str) or not name:
        raise _Bad(field, f"has a name that is not a non-empty string: {name!r}")
    parts = name.split("/")
    if PurePosixPath(name).is_absolute() or "\\" in name or "\0" in name or any(p in ("", ".", "..") for p in parts):
        raise _Bad(field, f"names {name!r}, which is not a plain path inside the engine folder")
    if name == MANIFEST_NAME:
        raise _Bad(field, "lists manifest.json itself")
    return name


def _files(v) -> dict[str, str]:
    files = _dict(v, "files")
    if not files:
        raise _Bad("files", "is empty: an engine lists (and hashes) every payload file")
    for name, digest in files.items():
        check_name(name)
        if not isinstance(digest, str) or not _HEX64.match(digest):
            raise _Bad("files", f"has no sha256 (64 hex digits) for {name}: {digest!r}")
    return files


def _config(v) -> ArchConfig:
    cfg = dict(_dict(v, "config"))
    hints = typing.get_type_hints(ArchConfig)
    fields = {f.name: f for f in dataclasses.fields(ArchConfig)}
    for key in cfg:
        if key not in fields:
            raise _Bad("config", f"has an unknown key {key!r}")
    for name, f in fields.items():
        where = f"config.{name}"
        if name not in cfg:
            if f.default is dataclasses.MISSING:
                raise _Bad(where, "is missing")
            continue
        value, kind = cfg[name], hints[name]
        if kind is int:
            _positive_int(value, where)
        elif kind is bool and not isinstance(value, bool):
            raise _Bad(where, f"must be true or false, got {value!r}")
        elif kind is str and value not in _CHOICES.get(name, ()):
            raise _Bad(where, f"must be one of {', '.join(_CHOICES.get(name, ()))}, got {value!r}")
        elif typing.get_origin(kind) is tuple:
            if not isinstance(value, list) or not all(_is_int(x) and x >= 1 for x in value):
                raise _Bad(where, f"must be a list of positive integers, got {value!r}")
            cfg[name] = tuple(value)
    if cfg["depth"] not in _DEPTHS:
        raise _Bad("config.depth", f"must be one of {', '.join(map(str, _DEPTHS))}, got {cfg['depth']!r}")
    if cfg["num_classes"] < 2:
        raise _Bad("config.num_classes", f"must be at least 2 (background + one class), got {cfg['num_classes']}")
    return ArchConfig(**cfg)


def _input_policy(v) -> dict:
    pol = _dict(v, "input_policy")
    allowed = {"min_size", "max_size", "mean", "std", "size_divisible", "channels", "resize"}
    for key in pol:
        if key not in allowed:
            raise _Bad("input_policy", f"has an unknown key {key!r}")
    for key in ("min_size", "max_size", "mean", "std"):
        if key not in pol:
            raise _Bad(f"input_policy.{key}", "is missing")
    _positive_int(pol["min_size"], "input_policy.min_size")
    _positive_int(pol["max_size"], "input_policy.max_size")
    if "size_divisible" in pol:
        _positive_int(pol["size_divisible"], "input_policy.size_divisible")
    for key in ("mean", "std"):
        val = pol[key]
        if not isinstance(val, list) or len(val) != 3 or not all(_is_number(x) for x in val):
            raise _Bad(f"input_policy.{key}", f"must be a list of 3 numbers, got {val!r}")
    if not all(x > 0 for x in pol["std"]):
        raise _Bad("input_policy.std", f"must be positive, got {pol['std']!r}")
    for key, choices in (("channels", CHANNEL_ORDERS), ("resize", RESIZE_MODES)):
        if key in pol and pol[key] not in choices:
            raise _Bad(f"input_policy.{key}", f"must be one of {', '.join(choices)}, got {pol[key]!r}")
    return pol


def _params(v, field: str, cls) -> dict:
    """The fields of dataclass `cls` (DetectionParams, RPNParams), all present, ints positive
    (sampling_ratio may be 0: adaptive), floats finite and >= 0, thresholds at most 1."""
    params = _dict(v, field)
    hints = typing.get_type_hints(cls)
    for key in params:
        if key not in hints:
            raise _Bad(field, f"has an unknown key {key!r}")
    for name, kind in hints.items():
        where = f"{field}.{name}"
        if name not in params:
            raise _Bad(where, "is missing")
        value = params[name]
        if kind is int:
            if not _is_int(value) or value < (0 if name == "sampling_ratio" else 1):
                raise _Bad(where, f"must be a positive integer, got {value!r}")
        elif not _is_number(value) or value < 0 or (name.endswith("_thresh") and value > 1):
            limit = " in [0, 1]" if name.endswith("_thresh") else " >= 0"
            raise _Bad(where, f"must be a number{limit}, got {value!r}")
    return params


def _thresholds(v) -> dict:
    th = dict(_dict(v, "thresholds"))
    for key in th:
        if key not in ("detection", "rpn"):
            raise _Bad("thresholds", f"has an unknown key {key!r}")
    for key, cls in (("detection", DetectionParams), ("rpn", RPNParams)):
        if key not in th:
            raise _Bad(f"thresholds.{key}", "is missing")
        th[key] = _params(th[key], f"thresholds.{key}", cls)
    return th


def _strings(v, field: str) -> dict:
    d = _dict(v, field)
    for key, val in d.items():
        if not isinstance(val, str):
            raise _Bad(f"{field}.{key}", f"must be a string, got {val!r}")
    return d


def _stages(v, target: str, files: dict) -> dict:
    stages = _strings(v, "stages")
    if target == "cpu" and stages and set(stages) != set(CPU_STAGES):
        missing = [s for s in CPU_STAGES if s not in stages]
        what = f"lacks stage {missing[0]!r}" if missing else f"has unknown stages {sorted(set(stages) - set(CPU_STAGES))}"
        raise _Bad("stages", what)
    if target == "tensorrt" and set(stages) - {"model", "paste"}:
        raise _Bad("stages", f"has unknown stages {sorted(set(stages) - {'model', 'paste'})}")
    for stage, name in stages.items():
        check_name(name, f"stages.{stage}")
        loaded = [name]
        if target == "cpu":
            if not name.endswith(".xml"):
                raise _Bad(f"stages.{stage}", f"must name an OpenVINO .xml file, got {name!r}")
            loaded.append(name[:-4] + ".bin")
        for file in loaded:
            if file not in files:
                raise _Bad(f"stages.{stage}", f"loads {file}, which files does not list (so it is not hashed)")
    return stages


BOX_FORMS = ("matmul", "conv1x1", "split_k")  # maskrt.builders.box_forms.FORMS
TIMED_ALWAYS = ("matmul", "conv1x1")  # split_k is timed only where a layer is split


def _box_form(v) -> dict:
    """{} (engines from before the choice: matmul) or the builder's record of the choice."""
    record = _dict(v, "box_form")
    if not record:
        return record
    for key in record:
        if key not in ("form", "chosen_by", "ms", "rows", "precision"):
            raise _Bad("box_form", f"has an unknown key {key!r}")
    if record.get("form") not in BOX_FORMS:
        raise _Bad("box_form.form", f"must be one of {', '.join(BOX_FORMS)}, got {record.get('form')!r}")
    for key in ("chosen_by", "precision"):
        if not isinstance(record.get(key), str):
            raise _Bad(f"box_form.{key}", f"must be a string, got {record.get(key)!r}")
    _positive_int(record.get("rows"), "box_form.rows")
    ms = _dict(record.get("ms"), "box_form.ms")
    if (not set(TIMED_ALWAYS) <= set(ms) <= set(BOX_FORMS) or record["form"] not in ms
            or not all(_is_number(t) and t > 0 for t in ms.values())):
        raise _Bad("box_form.ms", f"must give a positive time for each of {', '.join(TIMED_ALWAYS)} and the form "
                                  f"chosen (of {', '.join(BOX_FORMS)}), got {ms!r}")
    return record


def check_fields(data: dict, manifest_fields, targets, precisions) -> dict:
    """Manifest keyword arguments from the parsed JSON, every field checked (raises _Bad).
    manifest_fields: dataclasses.fields(Manifest)."""
    fields = {f.name: f for f in manifest_fields}
    for key in data:
        if key not in fields:
            raise _Bad(key, "is not a manifest field")
    for name, f in fields.items():
        if name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise _Bad(name, "is missing")
    out = dict(data)
    if out["target"] not in targets:
        raise _Bad("target", f"must be one of {', '.join(targets)}, got {out['target']!r}")
    if out["precision"] not in precisions:
        raise _Bad("precision", f"must be one of {', '.join(precisions)}, got {out['precision']!r}")
    if "files" not in out:
        raise _Bad("files", "is missing: an engine lists (and hashes) every payload file")
    out["config"] = _config(out["config"])
    classes = out["classes"]
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise _Bad("classes", f"must be a list of class names (strings), got {str(classes)[:60]}")
    if len(classes) != out["config"].num_classes:
        raise _Bad("classes", f"has {len(classes)} names for a {out['config'].num_classes}-class model")
    out["input_policy"] = _input_policy(out["input_policy"])
    out["thresholds"] = _thresholds(out["thresholds"])
    out["files"] = _files(out["files"])
    out["stages"] = _stages(out.get("stages", {}), out["target"], out["files"])
    _source(out.get("source", {}))
    out["versions"] = _strings(out.get("versions", {}), "versions")
    out["box_form"] = _box_form(out.get("box_form", {}))
    return out


def _source(v) -> dict:
    """{"path", "sha256"} of the checkpoint; a detectron2 one also {"format": "detectron2", "config":
    its YAML or "", "assumed": {config key: the model zoo's value maskrt assumed}}."""
    source = _dict(v, "source")
    for key in source:
        if key not in ("path", "sha256", "format", "config", "assumed"):
            raise _Bad("source", f"has an unknown key {key!r}")
    for key in ("path", "sha256", "config"):
        if not isinstance(source.get(key, ""), str):
            raise _Bad(f"source.{key}", f"must be a string, got {source[key]!r}")
    if source.get("format", "torchvision") not in SOURCE_FORMATS:
        raise _Bad("source.format", f"must be one of {', '.join(SOURCE_FORMATS)}, got {source['format']!r}")
    assumed = _dict(source.get("assumed", {}), "source.assumed")
    for key, value in assumed.items():
        if not _plain_value(value):
            raise _Bad(f"source.assumed.{key}",
                       f"must be a config value (string, number, boolean or list), got {value!r}")
    return source


def _plain_value(v) -> bool:
    if isinstance(v, list):
        return all(_plain_value(x) for x in v)
    return isinstance(v, (str, bool)) or _is_number(v)


def manifest_kwargs(data: dict, where: Path, manifest_fields, targets, precisions) -> dict:
    """check_fields with each problem as one EngineError line."""
    try:
        return check_fields(data, manifest_fields, targets, precisions)
    except _Bad as exc:
        raise EngineError(f"{where}: manifest.json field {exc}") from None


def confined(engine_dir: Path, name: str) -> Path:
    """engine_dir / name, refused (EngineError) if it resolves outside engine_dir (a symlink)."""
    path = engine_dir / name
    root = engine_dir.resolve()
    resolved = path.resolve()
    if resolved != root and root not in resolved.parents:
        raise EngineError(f"{engine_dir}: payload file {name} leads outside the engine folder")
    return path


def replaceable_reason(path: Path) -> str | None:
    """None when folder `path` is a maskrt engine holding only manifest.json and the files its
    manifest lists (so replacing it loses nothing else); else why not, as a phrase."""
    import json

    manifest = path / MANIFEST_NAME
    if not manifest.is_file():
        return "is not a maskrt engine (no manifest.json)"
    try:
        data = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return "has an unreadable manifest.json"
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict) or not files or not _is_int(data.get("format_version")):
        return "is not a maskrt engine (its manifest.json lists no payload files)"
    listed = {MANIFEST_NAME, *(k for k in files if isinstance(k, str))}
    for item in sorted(path.rglob("*")):
        rel = item.relative_to(path).as_posix()
        if (item.is_symlink() or not item.is_dir()) and rel not in listed:
            return f"holds {rel}, which is not part of the engine"
    return None
