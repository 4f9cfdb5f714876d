"""The engine folder format (NAME.maskrt/): manifest.json, its checks, and the payload hashes.

Below both the builders (which write it) and the engine (whose backends read it)."""

from .checks import CPU_STAGES, MANIFEST_NAME, replaceable_reason
from .manifest import FORMAT_VERSION, Manifest, is_engine_dir, read_manifest, verify_files, write_manifest

__all__ = ["CPU_STAGES", "FORMAT_VERSION", "MANIFEST_NAME", "Manifest", "is_engine_dir", "read_manifest",
           "replaceable_reason", "verify_files", "write_manifest"]
