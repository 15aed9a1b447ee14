"""The package's layering: nothing imports a layer above its own, checked two ways.

primitives -> layers -> models -> train/data -> cli, with verify above the primitives (it checks them; they register
their cases in ``funcnn.primitives.cases`` and receive the reference from the checker). From the source: every
import statement, lazy ones included. At run time: what a fresh interpreter holds in ``sys.modules`` after importing
each layer, which also catches an import made indirectly (a package's ``__init__``).
"""
import ast
import json
import pathlib
import subprocess
import sys

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "funcnn"

# For each package (by prefix), the funcnn modules it must never import.
FORBIDDEN = {
    "funcnn.primitives": ["funcnn.layers", "funcnn.models", "funcnn.train", "funcnn.data", "funcnn.cli",
                          "funcnn.describe", "funcnn.interop", "funcnn.deploy", "funcnn.viz", "funcnn.io",
                          "funcnn.verify", "funcnn.curvature"],
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


# file names that may repeat: a package's own files, and the earlier import path funcnn/reference.py (README: it warns
# on import and goes in the next release; funcnn/verify/reference.py is the module)
MAY_REPEAT = {"__init__.py", "__main__.py", "reference.py"}


def test_no_two_modules_share_a_file_name():
    """One meaning per name: a file name says which module it is, wherever it is imported from."""
    by_name = {}
    for path in SOURCES:
        by_name.setdefault(path.name, []).append(str(path.relative_to(PACKAGE.parent)))
    repeated = {name: paths for name, paths in by_name.items() if len(paths) > 1 and name not in MAY_REPEAT}
    assert not repeated, repeated


def test_no_package_attribute_depends_on_import_order():
    """A lazily exported name of a package is never also one of its submodules (importing the submodule would replace
    the attribute: `funcnn.verify.check` was the decorator or the module depending on what ran first)."""
    import funcnn
    import funcnn.verify

    for package in (funcnn, funcnn.verify):
        folder = pathlib.Path(package.__file__).parent
        submodules = {p.stem for p in folder.glob("*.py") if p.stem != "__init__"} | \
                     {p.name for p in folder.iterdir() if (p / "__init__.py").exists()}
        exported = set(package._NAMES)
        assert not exported & submodules, (package.__name__, sorted(exported & submodules))


def test_the_walk_finds_the_package():
    names = {_module_name(p) for p in SOURCES}
    assert {"funcnn.primitives.conv.rules", "funcnn.layers.core", "funcnn.train.fit", "funcnn.cli"} <= names


def test_the_parser_resolves_relative_imports():
    imports = _imports(PACKAGE / "layers" / "core.py")
    assert any(name.startswith("funcnn.primitives") for name in imports), imports


def _rules(module: str) -> list:
    """The modules `module` must never import (from every FORBIDDEN prefix it falls under)."""
    return [bad for prefix, forbidden in FORBIDDEN.items()
            if module == prefix or module.startswith(prefix + ".") for bad in forbidden]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: _module_name(p))
def test_no_module_imports_a_layer_above_it(path):
    module = _module_name(path)
    offending = sorted(name for name in _imports(path) for bad in _rules(module)
                       if name == bad or name.startswith(bad + "."))
    assert not offending, f"{module} imports {offending}, which sit above it in the layering"


LAYERS = ["funcnn.primitives", "funcnn.layers", "funcnn.models", "funcnn.data", "funcnn.train", "funcnn.verify.checker"]


def test_importing_a_layer_loads_nothing_above_it():
    """In a fresh interpreter: `import funcnn.primitives` loads no module of verify, layers, models, ...; and so on
    up the layering."""
    probe = ("import importlib, json, sys; importlib.import_module(sys.argv[1]); "
             "print(json.dumps(sorted(m for m in sys.modules if m == 'funcnn' or m.startswith('funcnn.'))))")
    for layer in LAYERS:
        done = subprocess.run([sys.executable, "-c", probe, layer], capture_output=True, text=True, check=True)
        loaded = json.loads(done.stdout.strip().splitlines()[-1])
        above = sorted(m for m in loaded for bad in _rules(layer) if m == bad or m.startswith(bad + "."))
        assert not above, f"import {layer} loaded {above}, which sit above it"


def test_the_command_line_parser_loads_no_jax():
    """`funcnn --help` answers before JAX is imported: building the parser (the verifier's options included) loads
    the standard library and funcnn's name tables only."""
    probe = "import sys, funcnn.cli; funcnn.cli.build_parser(); print(sorted(m for m in sys.modules if m == 'jax' or m.startswith('jax.')))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
