"""The import structure, read from the source with ``ast`` (nothing is imported or run).

Rules (docs/architecture.md):
* top-level packages: ``parascale_blender`` (the extension: engine + bpy layer + client) imports no
  other; ``bridge_server`` imports only ``parascale_blender``; ``parascale_tools`` may import both.
  No cycle between them.
* inside the extension, layers only import downwards: core < formats < client < blender.
* Blender's modules (bpy, mathutils, …) are imported only in ``parascale_blender/blender/`` (and by
  the tools that drive Blender); never by the engine, the client or the server.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("parascale_blender", "bridge_server", "parascale_tools")
BLENDER_MODULES = {"bpy", "bpy_extras", "mathutils", "bmesh", "gpu", "gpu_extras", "addon_utils", "bl_math"}
# (top-level package, importer) -> the top-level packages it may import besides itself
ALLOWED = {"parascale_blender": set(), "bridge_server": {"parascale_blender"}, "parascale_tools": set(PACKAGES)}
LAYERS = ("core", "formats", "client", "blender")  # inside parascale_blender, lowest first


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(root: Path, path: Path) -> set[str]:
    """Absolute names of every module imported anywhere in ``path`` (lazy imports included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    me = module_name(root, path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
                if node.module is None:  # from . import a, b: each name may be a module
                    out.update(f"{mod}.{a.name}" for a in node.names)
                out.add(mod)
            else:
                out.add(node.module)
    return out


def violations(root: Path) -> list[str]:
    """Every broken rule in the tree at ``root``, one line each (empty when the structure holds)."""
    found = []
    graph: dict[str, set[str]] = {p: set() for p in PACKAGES}
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            me = module_name(root, path)
            rel = path.relative_to(root).as_posix()
            parts = me.split(".")
            for name in imports_of(root, path):
                top = name.split(".")[0]
                if top in PACKAGES and top != pkg:
                    graph[pkg].add(top)
                    if top not in ALLOWED[pkg]:
                        found.append(f"{rel}: {pkg} imports {name}")
                if top in BLENDER_MODULES and pkg != "parascale_tools":
                    if not (pkg == "parascale_blender" and len(parts) > 1 and parts[1] == "blender"):
                        found.append(f"{rel}: imports {top} outside the bpy layer")
                if pkg == "parascale_blender" and top == pkg and len(parts) > 1 and parts[1] in LAYERS:
                    other = name.split(".")
                    if len(other) > 1 and other[1] in LAYERS and LAYERS.index(other[1]) > LAYERS.index(parts[1]):
                        found.append(f"{rel}: {parts[1]} imports {name} (a layer above it)")
    # cycles between top-level packages (a path back to oneself)
    for start in PACKAGES:
        seen, todo = set(), list(graph[start])
        while todo:
            p = todo.pop()
            if p == start:
                found.append(f"import cycle through {start}")
                break
            if p not in seen:
                seen.add(p)
                todo.extend(graph[p])
    return found


def test_the_repository_keeps_its_structure():
    assert violations(ROOT) == []


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for pkg in PACKAGES:
        (tmp_path / pkg).mkdir(exist_ok=True)
        (tmp_path / pkg / "__init__.py").touch()
    for name, text in files.items():
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        (p.parent / "__init__.py").touch()
        p.write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    "files, expected",
    [
        (
            {"parascale_blender/client/http.py": "import bridge_server.wire\n"},
            "parascale_blender imports bridge_server",
        ),
        (
            {
                "parascale_blender/core/a.py": "def f():\n    from ..formats import b\n",
                "parascale_blender/formats/b.py": "",
            },
            "core imports parascale_blender.formats",
        ),
        (
            {"parascale_blender/formats/c.py": "from ..blender import ops\n"},
            "formats imports parascale_blender.blender",
        ),
        ({"parascale_blender/core/d.py": "import bpy\n"}, "imports bpy outside the bpy layer"),
        ({"bridge_server/e.py": "from mathutils import Matrix\n"}, "imports mathutils outside the bpy layer"),
        ({"bridge_server/f.py": "from parascale_tools import cli\n"}, "import cycle through bridge_server"),
    ],
)
def test_each_rule_can_fail(tmp_path, files, expected):
    """The checker finds each kind of violation in a small tree built for it."""
    if "cycle" in expected:
        files = {**files, "parascale_tools/g.py": "import bridge_server\n"}
    found = violations(_tree(tmp_path, files))
    assert any(expected in line for line in found), found


def test_a_clean_tree_passes(tmp_path):
    files = {
        "parascale_blender/blender/ops.py": "import bpy\nfrom ..core import camera\nfrom ..client import http\n",
        "parascale_blender/core/camera.py": "import numpy\n",
        "parascale_blender/formats/io.py": "from ..core.camera import Trajectory\n",
        "parascale_blender/client/http.py": "from . import wire\nfrom ..formats import io\n",
        "bridge_server/app.py": "from parascale_blender.client import wire\n",
        "parascale_tools/demo.py": "import bpy\nimport bridge_server\nimport parascale_blender\n",
    }
    assert violations(_tree(tmp_path, files)) == []
