"""The site's build hooks (mkdocs.yml: `hooks`).

- The API reference is written from the package's own `__all__` lists before the pages are read, so that every
  public name has an entry, and after the build every entry is checked against the site's inventory
  (`objects.inv`): the build fails when a name did not render.
- The experiments page's figures are made by the commands beside them: every `python experiments/NAME.py --quick
  --out docs/figures/NAME` line of `experiments.md` runs (two at a time) unless its directory already holds that
  run's `results.json` (CI's test run leaves them there). An experiment whose optional tool does not run in this
  environment (kfac-jax) says so on the page instead of its figure; any other failure fails the build.
"""

from __future__ import annotations

import ast
import concurrent.futures
import importlib
import inspect
import pathlib
import re
import subprocess
import sys
import types
import zlib

DOCS = pathlib.Path(__file__).resolve().parent
ROOT = DOCS.parent
REFERENCE = DOCS / "reference"

# the reference's pages: the subpackages, and the modules `funcnn.__all__` names
PAGES = ("primitives", "primitives.conv", "primitives.pool", "layers", "models", "train", "data", "verify",
         "curvature", "deploy", "detection", "init", "interop", "viz")

_written: dict[str, str] = {}  # public name -> the defining path rendered for it
manual: set[str] = set()  # the paths written from the object (`_entry_from_object`), not by mkdocstrings


def _defined_in(obj, name: str, package: str) -> str:
    """The dotted path where `name` is defined: a function's or class's module and qualified name, or, for a value
    (a constant, a table), the module under `package` whose source assigns it at the top level."""
    if isinstance(obj, types.ModuleType):
        return obj.__name__
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if (inspect.isfunction(obj) or inspect.isclass(obj)) and module and qualname and "<" not in qualname:
        return f"{module}.{qualname}"
    for candidate in sorted(m for m in list(sys.modules) if m == package or m.startswith(package + ".")):
        mod = sys.modules[candidate]
        if getattr(mod, name, None) is not obj or not getattr(mod, "__file__", None):
            continue
        tree = ast.parse(pathlib.Path(mod.__file__).read_text())
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return f"{candidate}.{name}"
    raise RuntimeError(f"docs: cannot find where {package}.{name} is defined")


def _made_at_runtime(obj, name: str) -> bool:
    """A function or class no `def` / `class` statement names (the 1-, 2-, 3-D names a factory makes, the
    activations): documented from the object itself, which carries the real signature and docstring."""
    if not (inspect.isfunction(obj) or inspect.isclass(obj)):
        return False
    source = pathlib.Path(inspect.getfile(obj)).read_text()
    return not re.search(rf"^(?:async def|def|class) {re.escape(obj.__name__)}\b", source, re.M)


def _entry_from_object(obj, path: str) -> list[str]:
    """A reference entry written from a runtime-made function: its heading (anchored at its dotted path, so that
    cross-references find it), its real signature and its docstring."""
    doc = inspect.getdoc(obj) or ""
    return [f"## `{obj.__name__}` {{ #{path} }}", "", "```python", f"{path}{inspect.signature(obj)}", "```", "",
            "```text", doc, "```", ""]


def _public(module_name: str):
    module = importlib.import_module(f"funcnn.{module_name}")
    names = getattr(module, "__all__", None)
    if not names:
        raise RuntimeError(f"docs: funcnn.{module_name} has no __all__ to document")
    for name in names:
        yield name, getattr(module, name)


def write_reference() -> dict[str, str]:
    """Write docs/reference/*.md; return {public name: rendered path} for the check after the build."""
    REFERENCE.mkdir(exist_ok=True)
    written, rendered = {}, set()
    manual.clear()
    for page in PAGES:
        lines = [f"# funcnn.{page}", "", f"::: funcnn.{page}", "    options:", "      members: false",
                 "      show_root_heading: false", ""]
        for name, obj in _public(page):
            path = _defined_in(obj, name, f"funcnn.{page}")
            written[f"funcnn.{page}.{name}"] = path
            if isinstance(obj, types.ModuleType):
                target = path.removeprefix("funcnn.")
                link = f"{target}.md" if target in PAGES else None
                lines += [f"## `{name}`", "", f"The module [`{path}`]({link})." if link else
                          f"::: {path}\n    options:\n      show_root_heading: false\n      heading_level: 3", ""]
                if not link:
                    rendered.add(path)
                continue
            if path in rendered:  # shown on an earlier page: a link, not a second entry
                lines += [f"## `{name}`", "", f"[`{path}`][{path}]", ""]
                continue
            rendered.add(path)
            if _made_at_runtime(obj, name):  # griffe reads source: these are documented from the object
                manual.add(path)
                lines += _entry_from_object(obj, path)
                continue
            lines += [f"::: {path}", "    options:", "      heading_level: 2", f"      toc_label: {name}", ""]
        (REFERENCE / f"{page}.md").write_text("\n".join(lines))
    import funcnn

    top = ["# funcnn", "", "The names `import funcnn as fn` gives, each with the page that documents it.", "",
           "| name | documented at |", "|---|---|"]
    others = ["# Other top-level names", ""]
    for name in funcnn.__all__:
        obj = getattr(funcnn, name)
        if name == "__version__":
            continue
        if isinstance(obj, types.ModuleType):
            page = obj.__name__.removeprefix("funcnn.")
            top.append(f"| `fn.{name}` | [`{obj.__name__}`]({page}.md) |")
            continue
        path = _defined_in(obj, name, "funcnn")
        written[f"funcnn.{name}"] = path
        if path not in rendered:  # not on a subpackage's page: an entry on the page of the other top-level names
            rendered.add(path)
            others += [f"::: {path}", "    options:", "      heading_level: 2", ""]
        top.append(f"| `fn.{name}` | [`{path}`][{path}] |")
    (REFERENCE / "index.md").write_text("\n".join(top) + "\n")
    (REFERENCE / "toplevel.md").write_text("\n".join(others) + "\n")
    return written


def write_front_page() -> None:
    """docs/index.md: the README's front page (up to its Layout table), its links into docs/ made site-relative."""
    readme = (ROOT / "README.md").read_text()
    front = readme.split("\n## Layout", 1)[0]
    (DOCS / "index.md").write_text(front.replace("](docs/", "](") + "\n")


def copy_benchmark_plots() -> None:
    """The benchmarks' plots (committed with their results) into docs/figures/benchmarks/ for the performance page."""
    target = DOCS / "figures" / "benchmarks"
    target.mkdir(parents=True, exist_ok=True)
    for plot in (ROOT / "benchmarks" / "results").glob("*.png"):
        (target / plot.name).write_bytes(plot.read_bytes())


def on_pre_build(config, **kwargs):
    write_front_page()
    copy_benchmark_plots()
    for old in REFERENCE.glob("*.md"):
        old.unlink()
    _written.clear()
    _written.update(write_reference())
    make_figures()


def on_post_build(config, **kwargs):
    """Every public name's entry is in the site's inventory, or the build fails naming the missing ones."""
    raw = (pathlib.Path(config["site_dir"]) / "objects.inv").read_bytes()
    body = zlib.decompress(raw.split(b"\n", 4)[4]).decode()
    present = {line.split(" ", 1)[0] for line in body.splitlines()}
    missing = sorted(f"{name} ({path})" for name, path in _written.items() if path not in present | manual)
    if missing:
        raise RuntimeError(f"docs: {len(missing)} public names have no reference entry: {', '.join(missing)}")


# ---------------------------------------------------------------------------------------------------------------
# the experiments' figures

_COMMAND = re.compile(r"^python (experiments/(\w+)\.py --quick --out docs/figures/\2)$", re.M)
_unavailable: dict[str, str] = {}  # experiment -> why it could not run here (an optional tool)


def _run(command: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *command.split()], cwd=ROOT, capture_output=True, text=True,
                          timeout=1800)


def make_figures() -> None:
    page = (DOCS / "experiments.md").read_text()
    todo = {name: command for command, name in _COMMAND.findall(page)
            if not (DOCS / "figures" / name / "results.json").exists()}
    _unavailable.clear()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        for name, done in zip(todo, pool.map(_run, todo.values())):
            if done.returncode == 0:
                continue
            first = (done.stderr.strip().splitlines() or [""])[0]
            if first.startswith(f"{name}: kfac-jax does not"):  # the experiment's own word for its optional tool
                _unavailable[name] = first.removeprefix(f"{name}: ")
                continue
            raise RuntimeError(f"docs: python {todo[name]} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")


def on_page_markdown(markdown, page, **kwargs):
    """On the experiments page, a figure that is not there fails the build, unless its experiment's optional tool
    could not run here: then the page says so in its place."""
    if page.file.src_uri != "experiments.md":
        return markdown

    def figure(match):
        name, path = match.group(2), match.group(1)
        if name in _unavailable:
            return f'!!! note "No figure in this build"\n    `{name}` could not run here: {_unavailable[name]}'
        if not (DOCS / path).exists():
            raise RuntimeError(f"docs: experiments.md shows {path}, which its command did not write")
        return match.group(0)

    return re.sub(r"!\[[^\]]*\]\((figures/(\w+)/[\w.\-/]+\.png)\)", figure, markdown)
