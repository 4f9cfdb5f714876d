"""`maskrt export ENGINE --triton-repo DIR`: an engine in another runtime's format (maskrt.tensorrt.triton_repo)."""

from __future__ import annotations

import sys


def run(args) -> int:
    from ..tensorrt.triton_repo import export_triton_repo

    out = export_triton_repo(args.engine, args.triton_repo, instances=args.instances)
    print(f"Triton model repository written to {out} (see {out}/README.md)", file=sys.stderr)
    return 0
