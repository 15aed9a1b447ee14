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
