"""The package's layering, checked from the source: nothing imports a layer above its own.

primitives -> layers -> models -> train/data -> cli. The one sanctioned crossing: a primitive module registers its
verify cases (``funcnn.verify.registry``) and builds them from the loop-level reference, so both are allowed there.
"""
import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "funcnn"

# For each package (by prefix), the funcnn modules it must never import.
FORBIDDEN = {
    "funcnn.primitives": ["funcnn.layers", "funcnn.models", "funcnn.train", "funcnn.data", "funcnn.cli",
                          "funcnn.describe", "funcnn.interop", "funcnn.deploy", "funcnn.viz", "funcnn.io",
                          "funcnn.verify.check", "funcnn.verify.sweep", "funcnn.verify.primal"],
    "funcnn.verify.reference": ["funcnn.primitives", "funcnn.layers", "funcnn.models", "funcnn.train"],
    "funcnn.layers": ["funcnn.models", "funcnn.train", "funcnn.data", "funcnn.cli", "funcnn.verify"],
    "funcnn.models": ["funcnn.train", "funcnn.data", "funcnn.cli", "funcnn.verify"],
    "funcnn.data": ["funcnn.primitives", "funcnn.layers", "funcnn.models", "funcnn.train", "funcnn.cli"],
    "funcnn.train": ["funcnn.cli"],
}


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: pathlib.Path) -> set[str]:
    """Absolute names of every funcnn module the file imports, at any depth (lazy imports count too)."""
    module = _module_name(path)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if node.module is None:
                found.update(f"{name}.{alias.name}" for alias in node.names)
            else:
                found.add(name)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name == "funcnn" or name.startswith("funcnn.")}


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_the_walk_finds_the_package():
    names = {_module_name(p) for p in SOURCES}
    assert {"funcnn.primitives.conv.rules", "funcnn.layers.core", "funcnn.train.fit", "funcnn.cli"} <= names


def test_the_parser_resolves_relative_imports():
    imports = _imports(PACKAGE / "layers" / "core.py")
    assert any(name.startswith("funcnn.primitives") for name in imports), imports


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: _module_name(p))
def test_no_module_imports_a_layer_above_it(path):
    module = _module_name(path)
    rules = [bad for prefix, forbidden in FORBIDDEN.items()
             if module == prefix or module.startswith(prefix + ".") for bad in forbidden]
    offending = sorted(name for name in _imports(path) for bad in rules
                       if name == bad or name.startswith(bad + "."))
    assert not offending, f"{module} imports {offending}, which sit above it in the layering"
