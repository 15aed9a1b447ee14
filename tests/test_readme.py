"""The README's commands are the ones CI runs, and its example code runs."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _first_commands():
    block = re.search(r"```bash\n(.*?)```", README, re.S).group(1)
    return [line.split("#")[0].strip() for line in block.strip().splitlines()]


def test_ci_runs_the_readme_install_and_test_commands():
    install_and_run, test = _first_commands()
    install = install_and_run.split("&&")[0].strip()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert install in ci, f"{install!r} is not a line of .ci/run"
    assert test in ci, f"{test!r} is not a line of .ci/run"


def test_readme_example_runs():
    code = re.search(r"```python\n(.*?)```", README, re.S).group(1)
    namespace = {}
    exec(compile(code, "README example", "exec"), namespace)
    assert namespace["grads"].shape == (5, 5, 1, 6)


def _check_examples():
    """(code, the table shown under it) for every python block of the README followed by a check_vjp table."""
    fenced = re.findall(r"```(\w*)\n(.*?)```", README, re.S)  # (language, body), in order
    return [(body, fenced[i + 1][1]) for i, (lang, body) in enumerate(fenced[:-1])
            if lang == "python" and "check_vjp" in body and fenced[i + 1][0] == "text"]


def test_readme_verify_examples_print_their_tables():
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


def _python_blocks():
    """Every python block of the README, in order (dedented: some sit inside list items)."""
    import textwrap

    return [textwrap.dedent(body) for lang, body in re.findall(r"```(\w*)\n(.*?)```", README, re.S)
            if lang == "python"]


# what a block needs that the README shows elsewhere: the artifact `funcnn export` writes, and the images it takes
_PRELUDES = {
    "export.deserialize": (
        "import jax, numpy as np\nimport funcnn as fn\nfrom funcnn import models\n"
        "m = models.lenet5(10)\n_, p, s = m.init(jax.random.PRNGKey(0), (1, 32, 32, 1))\n"
        "fn.deploy.write(fn.export(m.apply, p, s, (32, 32, 1)), 'lenet5.jaxexport')\n"
        "images = np.zeros((3, 32, 32, 1), np.float32)\n"),
}
_SHORTER = {"epochs=10": "epochs=1"}  # the README's 10-epoch example, trained for one epoch in CI


def test_every_python_block_of_the_readme_runs_in_a_fresh_process(tmp_path):
    """Each block in a namespace of its own, in one fresh interpreter (a user's defaults, not the suite's float64;
    one process so that JAX and the models' first compilations are paid once), in an empty directory."""
    import json
    import subprocess
    import sys

    blocks = _python_blocks()
    assert len(blocks) >= 7
    # the first block runs in test_readme_example_runs, the checker's two in test_readme_verify_examples_*
    covered = {0} | {i for i, code in enumerate(blocks) if any(code == example for example, _ in _check_examples())}
    assert covered == {0, 1, 2}, covered
    programs = []
    for i, code in enumerate(blocks):
        if i in covered:
            continue
        prelude = "".join(text for marker, text in _PRELUDES.items() if marker in code)
        for long, short in _SHORTER.items():
            code = code.replace(long, short)
        programs.append((i + 1, prelude + code))
    driver = ("import json, sys, traceback\n"
              "for number, code in json.loads(sys.argv[1]):\n"
              "    try:\n"
              "        exec(compile(code, f'README python block {number}', 'exec'), {'__name__': '__main__'})\n"
              "    except Exception:\n"
              "        sys.exit(f'README python block {number}:\\n{code}\\n{traceback.format_exc()}')\n")
    done = subprocess.run([sys.executable, "-c", driver, json.dumps(programs)], capture_output=True, text=True,
                          timeout=900, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    assert len(programs) == len(blocks) - 3


def test_every_funcnn_command_of_the_readme_parses():
    """Each `funcnn ...` line of the README's bash blocks is accepted by the command's parser (flags, choices and
    values), without running it."""
    import shlex

    from funcnn import cli

    parser = cli.build_parser()
    lines = [line.split("#")[0].strip() for lang, body in re.findall(r"```(\w*)\n(.*?)```", README, re.S)
             if lang == "bash" for line in body.splitlines()]
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
            raise AssertionError(f"the README's `{command}` does not parse (exit {exit.code})") from None
