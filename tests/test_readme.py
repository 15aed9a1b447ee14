"""The README and the documentation pages: the README's commands are the ones CI runs, the README is a front page,
and every code block of the README and of `docs/` runs (python blocks in a fresh process, `funcnn` command lines
through the command's parser)."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
PAGES = {"README.md": README, **{f"docs/{p.name}": p.read_text() for p in sorted((ROOT / "docs").glob("*.md"))}}


def _blocks(text, language=None):
    """(language, body) of every fenced block of a page, in order (dedented: some sit inside list items)."""
    import textwrap

    return [(lang, textwrap.dedent(body)) for lang, body in re.findall(r"^ *```(\w*)\n(.*?)^ *```", text, re.S | re.M)
            if language is None or lang == language]


def _first_commands():
    block = re.search(r"```bash\n(.*?)```", README, re.S).group(1)
    return [line.split("#")[0].strip() for line in block.strip().splitlines()]


def test_ci_runs_the_readme_install_test_and_docs_commands():
    install_and_run, test = _first_commands()
    install = install_and_run.split("&&")[0].strip()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert install in ci, f"{install!r} is not a line of .ci/run"
    assert test in ci, f"{test!r} is not a line of .ci/run"
    docs = re.search(r"## The documentation site\n\n```bash\n(.*?)```", README, re.S).group(1).split("#")[0]
    for command in (part.strip() for part in docs.split("&&")):
        assert command in ci, f"the README's docs command {command!r} is not a line of .ci/run"


def test_the_readme_is_a_front_page_that_links_into_the_site():
    """At most 300 lines, and every page of the site is linked from it or from a page it links (and exists)."""
    assert README.count("\n") <= 300
    links = set(re.findall(r"\]\((docs/[\w\-/.]+\.md)(?:#[\w\-]+)?\)", README))
    generated = {"docs/reference/index.md"}  # the API reference, written by the build (docs/hooks.py)
    assert links and all((ROOT / link).exists() or link in generated for link in links), links
    pages = {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")} - {"docs/index.md"}
    assert pages <= links, pages - links
    nav = (ROOT / "mkdocs.yml").read_text()
    assert all(page.removeprefix("docs/") in nav for page in pages), "a page missing from mkdocs.yml's nav"


def test_readme_example_runs():
    code = re.search(r"```python\n(.*?)```", README, re.S).group(1)
    namespace = {}
    exec(compile(code, "README example", "exec"), namespace)
    assert namespace["grads"].shape == (5, 5, 1, 6)


def _check_examples():
    """(code, the table shown under it) for every python block of the checking page followed by a check_vjp table."""
    fenced = _blocks(PAGES["docs/checking.md"])
    return [(body, fenced[i + 1][1]) for i, (lang, body) in enumerate(fenced[:-1])
            if lang == "python" and "check_vjp" in body and fenced[i + 1][0] == "text"
            and fenced[i + 1][1].strip().splitlines()[-1].startswith("FAIL: ")]


def test_the_checker_examples_print_their_tables():
    """The checker's examples (a custom_vjp and a custom_jvp, each with a deliberate mistake) print the tables shown
    under them: the same rows, the same pass column and the same FAIL line (the error columns may move in the last
    digits)."""
    import subprocess
    import sys

    examples = _check_examples()
    assert len(examples) == 2
    for code, shown in examples:
        # a fresh process: a user's defaults (the suite's conftest turns on float64)
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        got, want = done.stdout.strip().splitlines(), shown.strip().splitlines()
        assert len(got) == len(want), done.stdout
        assert got[0] == want[0] and got[-1] == want[-1] and want[-1].startswith("FAIL: ")
        for line_got, line_want in zip(got[3:-1], want[3:-1]):
            check_got, *_, pass_got = line_got.split("  (")[0].split()
            check_want, *_, pass_want = line_want.split("  (")[0].split()
            assert (check_got, pass_got) == (check_want, pass_want), (line_got, line_want)


# what a block needs that a page shows elsewhere: the artifact `funcnn export` writes, and the images it takes
_PRELUDES = {
    "export.deserialize": (
        "import jax, numpy as np\nimport funcnn as fn\nfrom funcnn import models\n"
        "m = models.lenet5(10)\n_, p, s = m.init(jax.random.PRNGKey(0), (1, 32, 32, 1))\n"
        "fn.deploy.write(fn.export(m.apply, p, s, (32, 32, 1)), 'lenet5.jaxexport')\n"
        "images = np.zeros((3, 32, 32, 1), np.float32)\n"),
}
_SHORTER = {"epochs=10": "epochs=1"}  # the 10-epoch example, trained for one epoch in CI


def test_every_python_block_of_the_readme_and_the_docs_runs_in_a_fresh_process(tmp_path):
    """Each block in a namespace of its own, in one fresh interpreter (a user's defaults, not the suite's float64;
    one process so that JAX and the models' first compilations are paid once), in an empty directory."""
    import json
    import subprocess
    import sys

    checked = [code for code, _ in _check_examples()]
    programs = []
    for page, text in PAGES.items():
        for number, (_, code) in enumerate(_blocks(text, "python"), 1):
            if code in checked or (page == "README.md" and number == 1):  # run by the tests above
                continue
            prelude = "".join(text for marker, text in _PRELUDES.items() if marker in code)
            for long, short in _SHORTER.items():
                code = code.replace(long, short)
            programs.append((f"{page} python block {number}", prelude + code))
    total = sum(len(_blocks(text, "python")) for text in PAGES.values())
    assert len(checked) == 2 and len(programs) == total - 3 and len(programs) >= 8, (total, len(programs))
    driver = ("import json, sys, traceback\n"
              "for name, code in json.loads(sys.argv[1]):\n"
              "    try:\n"
              "        exec(compile(code, name, 'exec'), {'__name__': '__main__'})\n"
              "    except Exception:\n"
              "        sys.exit(f'{name}:\\n{code}\\n{traceback.format_exc()}')\n")
    done = subprocess.run([sys.executable, "-c", driver, json.dumps(programs)], capture_output=True, text=True,
                          timeout=1200, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]


def test_every_funcnn_command_of_the_readme_and_the_docs_parses():
    """Each `funcnn ...` line of the bash blocks is accepted by the command's parser (flags, choices and values),
    without running it."""
    import shlex

    from funcnn import cli

    parser = cli.build_parser()
    lines = [line.split("#")[0].strip() for text in PAGES.values() for _, body in _blocks(text, "bash")
             for line in body.splitlines()]
    commands = [line[line.index("funcnn "):].split("&&")[0] for line in lines if "funcnn " in line
                and not line.startswith(("python", "#"))]
    assert len(commands) >= 7, commands
    for command in commands:
        argv = shlex.split(command)[1:]
        if argv and argv[0] not in ("train", "gradcheck", "summary", "export", "-h", "--help", "--version"):
            argv = ["train", *argv]
        try:
            parser.parse_args(argv)
        except SystemExit as exit:
            raise AssertionError(f"`{command}` does not parse (exit {exit.code})") from None
