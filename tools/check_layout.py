"""Check maskrt's layout rules on the source tree (run by tests/test_layout.py; also by hand).

    python tools/check_layout.py        # prints every violation, exit 1 if there is one

The rules (docs/ARCHITECTURE.md):
- no import circle among the modules of maskrt/, nor among those of benchmarks/;
- layers only import downward: a module of maskrt/ imports modules of its own package, of a lower
  layer (LAYERS), or leaf utilities; never a higher layer; maskrt/ never imports tests/ or
  benchmarks/;
- `import tensorrt` only inside maskrt/tensorrt/; pycocotools' COCOeval only in
  maskrt/evaluation/coco_eval.py.

Every import counts, also those inside functions (lazy imports are dependencies too); only
`if TYPE_CHECKING:` blocks are skipped. Static: nothing is imported.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Lowest first. A module may import its own top-level package, any lower layer, and the leaf layer.
LAYERS: list[tuple[str, ...]] = [
    ("maskrt._version", "maskrt.errors", "maskrt.hashing", "maskrt.progress", "maskrt.signals", "maskrt.machine",
     "maskrt.local_ray",
     "maskrt.options"),                                            # leaf utilities
    ("maskrt.kernels",),                                           # the three ops
    ("maskrt.safeio",),                                            # every file written
    ("maskrt.model", "maskrt.data", "maskrt.tracking"),            # the network; synthetic data; tracker
    ("maskrt.artifact",),                                          # the engine-folder format
    ("maskrt.engine",),                                            # runtime: backends, Detections, streams
    ("maskrt.evaluation",),                                        # COCO AP (one COCOeval)
    ("maskrt.tensorrt",),                                          # the TensorRT target
    ("maskrt.builders",),                                          # checkpoint -> engine folder
    ("maskrt.api", "maskrt.testing"),                              # maskrt.load; seeded models for tests
    ("maskrt.distributed", "maskrt.serve", "maskrt.gpu_verify"),   # maskrt batch, maskrt serve, GPU checks
    ("maskrt.commands",),                                          # one module per CLI command
    ("maskrt.cli",),                                               # argument parsing
]
FACADE = "maskrt"  # the package's __init__: lazy public names, exempt
LEAF = 0
TENSORRT_HOME = "maskrt.tensorrt"
COCOEVAL_HOME = "maskrt.evaluation.coco_eval"


@dataclass
class Graph:
    modules: dict[str, Path] = field(default_factory=dict)
    edges: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    external: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # module -> names imported


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _skipped(node: ast.AST, parents: dict) -> bool:
    """Inside `if TYPE_CHECKING:`."""
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def _imports(tree: ast.Module, module: str, is_package: bool):
    """(target module or name, is_from) for every import statement of a module."""
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if _skipped(node, parents):
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield target, tuple(alias.name for alias in node.names)


def build_graph(root: Path, packages: tuple[str, ...] = ("maskrt", "benchmarks")) -> Graph:
    graph = Graph()
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            graph.modules[module_name(path, root)] = path
    for module, path in graph.modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for target, names in _imports(tree, module, path.name == "__init__.py"):
            graph.external[module].add(target)
            for name in names:
                graph.external[module].add(f"{target}.{name}")
            resolved = [f"{target}.{n}" for n in names if f"{target}.{n}" in graph.modules]
            if len(resolved) < len(names) or not names:
                resolved.append(target) if target in graph.modules else None
            graph.edges[module].update(r for r in resolved if r != module)
    return graph


def cycles(graph: Graph, prefix: str) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), among modules under prefix."""
    nodes = [m for m in graph.modules if m == prefix or m.startswith(prefix + ".")]
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.edges.get(v, ()):
            if w not in nodes:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for v in nodes:
        if v not in index:
            visit(v)
    return found


def layer_of(module: str) -> tuple[int, str] | None:
    """(layer index, the unit it belongs to) of a maskrt module; None for the facade."""
    if module == FACADE:
        return None
    for rank, units in enumerate(LAYERS):
        for unit in units:
            if module == unit or module.startswith(unit + "."):
                return rank, unit
    raise KeyError(f"{module} is in no layer of tools/check_layout.py: add its package to LAYERS")


def upward_imports(graph: Graph) -> list[str]:
    problems = []
    for module, targets in sorted(graph.edges.items()):
        if not module.startswith("maskrt"):
            continue
        for target in sorted(targets):
            if target.startswith(("tests", "benchmarks", "tools")):
                problems.append(f"{module} imports {target}: maskrt never imports tests, benchmarks or tools")
                continue
            if not target.startswith("maskrt"):
                continue
            src, dst = layer_of(module), layer_of(target)
            if src is None or dst is None or src[1] == dst[1] or dst[0] == LEAF:
                continue
            if dst[0] >= src[0]:
                problems.append(f"{module} (layer {src[0]}, {src[1]}) imports {target} (layer {dst[0]}, {dst[1]})")
    return problems


def misplaced_imports(graph: Graph) -> list[str]:
    problems = []
    for module, names in sorted(graph.external.items()):
        if not module.startswith("maskrt"):
            continue
        if any(n == "tensorrt" or n.startswith("tensorrt.") for n in names) and \
                not module.startswith(TENSORRT_HOME):
            problems.append(f"{module} imports tensorrt: only {TENSORRT_HOME} may")
        if any(n.endswith("COCOeval") for n in names) and module != COCOEVAL_HOME:
            problems.append(f"{module} imports COCOeval: only {COCOEVAL_HOME} may")
    return problems


def violations(root: Path = ROOT) -> list[str]:
    graph = build_graph(root)
    problems = [f"import circle: {' -> '.join(c)}" for prefix in ("maskrt", "benchmarks") for c in cycles(graph, prefix)]
    return problems + upward_imports(graph) + misplaced_imports(graph)


def main() -> int:
    problems = violations()
    for problem in problems:
        print(problem)
    print(f"{len(problems)} layout violation(s)" if problems else "layout: no circle, no upward import")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
