"""`python -m funcnn.verify`: the registered cases of every primitive, the bounded default set, the exit status."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from funcnn.primitives import cases as registry
from funcnn.verify import sweep
from funcnn.verify.registry import CaseMaker, cases, primitive_names, register_cases

PRIMITIVES = {"conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d", "max_pool1d", "max_pool2d", "avg_pool1d",
              "avg_pool2d", "lp_pool1d", "lp_pool2d", "global_avg_pool1d", "global_avg_pool2d", "dense", "relu",
              "sigmoid", "tanh", "softmax", "log_softmax", "softmax_cross_entropy"}


def test_every_public_primitive_registered_its_cases():
    import funcnn.primitives as P

    assert set(primitive_names()) >= PRIMITIVES
    assert set(P.__all__) <= set(primitive_names())
    bounded, everything = cases(), cases(full=True)
    assert {c.primitive for c in bounded} == set(primitive_names())  # every primitive is in the default set
    assert len(everything) > len(bounded) >= len(PRIMITIVES)


def test_the_table_of_generators_is_written_out_and_complete():
    """Registries are filled explicitly: importing funcnn registers nothing (in a fresh interpreter, after importing
    every primitive module and the checker, no extension exists), and every generator a family names with
    `cases_for` is in funcnn.primitives.CASE_GENERATORS, once."""
    import importlib
    import inspect
    import pkgutil

    import funcnn.primitives as P

    probe = ("import funcnn.primitives, funcnn.verify.registry as r, funcnn.primitives.cases as c; "
             "print(len(c.extensions()), len(r.generators()))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["0", str(len(P.CASE_GENERATORS))]
    named = set()
    for info in pkgutil.walk_packages(P.__path__, "funcnn.primitives."):
        module = importlib.import_module(info.name)
        named |= {f for _, f in inspect.getmembers(module, inspect.isfunction)
                  if hasattr(f, "primitives") and f.__module__ == info.name}
    assert named == set(P.CASE_GENERATORS) and len(P.CASE_GENERATORS) == len(named)


def test_the_bounded_sweep_passes_on_every_primitive(capsys):
    """The default `python -m funcnn.verify` (what `funcnn gradcheck` runs): every primitive, every check."""
    assert sweep.main(["--no-progress"]) == 0
    out = capsys.readouterr().out
    for name in PRIMITIVES:
        assert f"\n{name} " in out
    assert " NO" not in out and "all passed" in out


@pytest.fixture
def broken_registry(monkeypatch):
    @jax.custom_vjp
    def double(x):
        return 2 * x

    double.defvjp(lambda x: (2 * x, None), lambda _, g: (3 * g,))
    monkeypatch.setattr(registry, "_EXTENSIONS", [])

    @register_cases("double")
    def _cases(make, ref):
        yield make.case("double", "broken on purpose", double, lambda x: 2 * x, make.normal(3))


def test_a_wrong_rule_fails_the_sweep_with_exit_status_1(broken_registry, capsys):
    assert sweep.main(["--primitive", "double", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "FAILED double broken on purpose" in out and "FAIL: forward, vjp" not in out and "FAIL: vjp" in out


def test_unknown_primitive_lists_the_valid_names(capsys):
    assert sweep.main(["--primitive", "conv4d", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "unknown primitive 'conv4d'" in err and "conv2d" in err and "max_pool2d" in err


def test_list_and_registration_errors(capsys):
    assert sweep.main(["--list"]) == 0
    assert "lp_pool1d" in capsys.readouterr().out.split()
    with pytest.raises(ValueError, match="name the primitives"):
        register_cases()
    assert CaseMaker(3).normal(2, 2).shape == (2, 2)


def test_module_entry_points_run():
    for module in ("funcnn.verify", "funcnn.gradcheck"):
        result = subprocess.run([sys.executable, "-m", module, "--primitive", "relu", "--no-progress"],
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "relu" in result.stdout and "all passed" in result.stdout
        # the earlier name runs for one release and says what replaces it
        assert ("funcnn.gradcheck is deprecated" in result.stderr) == (module == "funcnn.gradcheck"), result.stderr


def test_the_earlier_names_warn_once_naming_the_new_ones():
    """`funcnn.reference` and `funcnn.gradcheck` (README: kept for 0.1) warn on their first import, not again, with a
    FutureWarning (shown to a script by default) attributed to the line that imported them."""
    code = ("import warnings, funcnn as fn\n"
            "with warnings.catch_warnings(record=True) as seen:\n"
            "    warnings.simplefilter('always')\n"
            "    import funcnn.reference, funcnn.gradcheck\n"
            "    import funcnn.reference, funcnn.gradcheck\n"
            "    fn.gradcheck.check_vjp, funcnn.reference.conv_nd\n"
            "for w in seen:\n"
            "    print(w.category.__name__, w.filename, w.lineno, w.message)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("FutureWarning <string> 4 funcnn.reference is deprecated") and \
        "import funcnn.verify.reference" in lines[0]
    assert lines[1].startswith("FutureWarning <string> 4 funcnn.gradcheck is deprecated") and \
        "funcnn.verify.check_vjp" in lines[1]


@pytest.mark.slow
def test_full_sweep_passes():
    assert sweep.main(["--full", "--no-progress"]) == 0
