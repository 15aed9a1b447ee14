"""The carrier: how a funcnn primitive becomes a JAX operation that every transform composes with.

Each family module writes an op's rules once and calls `define`; this module only registers them with JAX. An op is
one of two kinds:

    nonlinear   impl(*args, **params) -> out                      the forward (lax ops; may branch by platform)
                tangent(args, out, tangents, **params) -> dout    the tangent (JVP) rule, LINEAR in the tangents,
                                                                  written with linear funcnn ops or lax ops
    linear      impl(*args, **params) -> out                      linear in the arguments `linear`: jointly, or
                                                                  in each separately (`multilinear`: conv(x, w))
                transpose(cts, *args, **params) -> cotangents     the hand-written backward: a cotangent for each
                                                                  linear argument given as a ShapeDtypeStruct
                                                                  (the ones to transpose for), None elsewhere

Registered as a `jax.extend.core.Primitive` (the way `lax.conv_general_dilated` carries its transpose rules), the op
is one equation in a jaxpr, `funcnn.<name>[params]`; `jax.jvp` runs `tangent` (or, for a linear op, the op applied
to each tangent); reverse mode is JAX's JVP, partial evaluation and transposition, so `jax.grad` runs the linear
ops' `transpose` rules, the lecture's backward rules, and nothing of JAX's own autodiff of the forward. The
derivative of a linear op in its other (nonlinear) arguments, `constant` ones aside, is JAX's forward-mode
autodiff of `impl`: it is needed only for second derivatives.

Batching: `batch(op, args, dims, **params) -> (out, out_dim)`, or by default a loop over the mapped axis
(`lax.map`) that binds the op once per slice, so the rules still run under any order of vmap and differentiation.

The API used (`jax.extend.core.Primitive`, `jax.interpreters.ad.primitive_jvps` / `primitive_transposes` /
`Zero` / `UndefinedPrimal`, `jax.interpreters.batching.primitive_batchers`, `jax.interpreters.mlir`) is present
with the same signatures from jax 0.10.2 to 0.12.x (`TESTED_JAX`, the range pyproject.toml pins; CI runs both ends).
These are the names JAX's own extension libraries register primitives with; `REQUIRED_API` lists them and a test
names any that moves. Where one is missing (another JAX),
`define` builds each op as a `jax.custom_vjp` from the same rules instead (the backward: the transposes, or the
VJP of the linear tangent rule), reverse mode only, and warns once. `FUNCNN_CARRIER=custom_vjp` asks for that form.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import warnings
from typing import Callable

import jax
import jax.numpy as jnp
from jax import lax

NAMESPACE = "funcnn."
TESTED_JAX = ">=0.10.2,<0.13"  # pyproject.toml's pin on jax and jaxlib (a test keeps the two the same)


def _load_primitive_api():
    """The JAX names the carrier needs, or (None, the reason) when this JAX lacks one of them."""
    if os.environ.get("FUNCNN_CARRIER", "").strip().lower() == "custom_vjp":
        return None, "FUNCNN_CARRIER=custom_vjp"
    try:  # imported here: a JAX that lacks one of these names makes the carrier fall back to custom_vjp
        from jax.core import ShapedArray
        from jax.extend.core import Primitive
        from jax.interpreters import ad, batching, mlir

        for module, names in ((ad, ("primitive_jvps", "primitive_transposes", "Zero", "UndefinedPrimal",
                                    "is_undefined_primal", "instantiate_zeros")),
                              (batching, ("primitive_batchers",)), (mlir, ("register_lowering", "lower_fun"))):
            missing = [n for n in names if not hasattr(module, n)]
            if missing:
                return None, f"{module.__name__} has no {', '.join(missing)}"
        return dict(Primitive=Primitive, ShapedArray=ShapedArray, ad=ad, batching=batching, mlir=mlir), None
    except Exception as err:  # noqa: BLE001 - any import failure of JAX's extension API: fall back
        return None, f"{type(err).__name__}: {err}"


API, FALLBACK_REASON = _load_primitive_api()
MODE = "primitive" if API is not None else "custom_vjp"
REQUIRED_API = ("jax.extend.core.Primitive", "jax.core.ShapedArray", "jax.interpreters.ad.primitive_jvps",
                "jax.interpreters.ad.primitive_transposes", "jax.interpreters.ad.Zero",
                "jax.interpreters.ad.UndefinedPrimal", "jax.interpreters.batching.primitive_batchers",
                "jax.interpreters.mlir.register_lowering", "jax.interpreters.mlir.lower_fun")

if API is None:
    warnings.warn(f"funcnn: JAX {jax.__version__} lacks the primitive API funcnn's forward-mode rules use "
                  f"({FALLBACK_REASON}); the primitives run as jax.custom_vjp with the same backward rules, in reverse "
                  "mode only (jax.jvp, jax.hessian and jax.linearize will fail on them). funcnn is tested with jax "
                  f"{TESTED_JAX}.", RuntimeWarning, stacklevel=2)


@dataclasses.dataclass(eq=False)
class Op:
    """A funcnn primitive: its rules (see the module docstring) and the JAX object that carries them."""

    name: str
    impl: Callable
    tangent: Callable | None = None
    linear: tuple = ()
    multilinear: bool = False
    transpose: Callable | None = None
    constant: tuple = ()
    batch: Callable | None = None
    multiple_results: bool = False
    primitive: object = None

    @property
    def is_linear(self) -> bool:
        return self.tangent is None

    def __call__(self, *args, **params):
        """Apply the op: one equation in a jaxpr (or a custom_vjp call in the fallback form)."""
        if API is None:
            try:
                return _custom_vjp_form(self, _freeze(params))(*args)
            except TypeError as err:  # forward mode met the op, here or inside a backward rule (jax.hessian)
                if isinstance(err, ForwardModeError) or "forward-mode" not in str(err):
                    raise
                raise ForwardModeError(forward_mode_message(f"funcnn's op {self.name}")) from err
        out = self.primitive.bind(*args, **params)
        return tuple(out) if self.multiple_results else out

    def __repr__(self):
        return f"<funcnn op {self.name} ({'linear' if self.is_linear else 'nonlinear'}, carried as {MODE})>"


OPS: dict[str, Op] = {}


def define(name: str, impl: Callable, *, tangent: Callable | None = None, linear=(), multilinear: bool = False,
           transpose: Callable | None = None, constant=(), batch: Callable | None = None,
           multiple_results: bool = False) -> Op:
    """Register an op from its rules (module docstring); returns the `Op` to call."""
    if (tangent is None) == (transpose is None):
        raise ValueError(f"define({name!r}): give a tangent rule (a nonlinear op) or a transpose rule (a linear op)")
    if transpose is not None and not linear:
        raise ValueError(f"define({name!r}): a linear op names the arguments it is linear in")
    op = Op(name, impl, tangent, tuple(linear), multilinear, transpose, tuple(constant), batch, multiple_results)
    if API is not None:
        op.primitive = _register(op)
    OPS[NAMESPACE + name] = op
    return op


def op_of(primitive) -> Op | None:
    """The funcnn Op a JAX primitive carries (None for any other primitive)."""
    op = OPS.get(getattr(primitive, "name", None))
    return op if op is not None and op.primitive is primitive else None


# ----------------------------------------------------------------------------------------------------------------
# helpers shared by both forms


def _freeze(params: dict):
    return tuple(sorted(params.items()))


def _is_float(x) -> bool:
    return jnp.issubdtype(jnp.result_type(x), jnp.inexact)


def undefined(a) -> bool:
    """Whether a transpose rule's argument is one to transpose for (given as a ShapeDtypeStruct)."""
    return isinstance(a, jax.ShapeDtypeStruct)


def _spec(x) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(tuple(x.shape), x.dtype)


def _add(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return jax.tree_util.tree_map(jnp.add, a, b)


def _impl_of(op, args, which, params):
    """op's forward as a function of the arguments `which` alone (the others held at `args`): where JAX's own
    autodiff of the forward is wanted (a linear op's nonlinear arguments, needed for second derivatives only)."""
    def through(*values):
        full = list(args)
        for i, v in zip(which, values):
            full[i] = v
        return op.impl(*full, **params)

    return through


def _linear_tangent(op: Op, args, tangents, params):
    """The tangent of a linear op: the op applied to the linear arguments' tangents (jointly; a multilinear op to
    each one's tangent with the others at their primal values, the product rule), plus the derivative through its
    other arguments (JAX's forward mode of `impl`; zero for `constant` ones). None when every tangent is zero."""
    total = None
    if op.multilinear:
        for i in op.linear:
            if tangents[i] is not None:
                swapped = list(args)
                swapped[i] = tangents[i]
                total = _add(total, op(*swapped, **params))
    elif any(tangents[i] is not None for i in op.linear):
        swapped = list(args)
        for i in op.linear:
            swapped[i] = jnp.zeros_like(args[i]) if tangents[i] is None else tangents[i]
        total = op(*swapped, **params)
    others = [i for i, t in enumerate(tangents) if t is not None and i not in op.linear and i not in op.constant]
    if others:
        through = _impl_of(op, args, others, params)
        _, d = jax.jvp(through, tuple(args[i] for i in others), tuple(tangents[i] for i in others))
        total = _add(total, d)
    return total


# ----------------------------------------------------------------------------------------------------------------
# the primitive form


def _register(op: Op):
    """A JAX primitive for `op`: evaluation, the tangent rule, the transpose (linear ops) and the batching rule."""
    prim = API["Primitive"](NAMESPACE + op.name)
    prim.multiple_results = op.multiple_results
    _define_evaluation(prim, op)
    _define_jvp(prim, op)
    if op.is_linear:
        _define_transpose(prim, op)
    _define_batching(prim, op)
    return prim


def _define_evaluation(prim, op: Op) -> None:
    """Eager evaluation (the impl, compiled once per parameter set), shapes, and lowering (the impl inlined)."""
    mlir = API["mlir"]

    @functools.lru_cache(maxsize=None)
    def compiled(frozen):
        return jax.jit(functools.partial(op.impl, **dict(frozen)))

    def impl(*args, **params):
        out = compiled(_freeze(params))(*args)
        return list(out) if op.multiple_results else out

    @functools.lru_cache(maxsize=4096)
    def shape_of(specs, frozen):
        out = jax.eval_shape(functools.partial(op.impl, **dict(frozen)), *[jax.ShapeDtypeStruct(*s) for s in specs])
        to_aval = lambda o: API["ShapedArray"](o.shape, o.dtype)  # noqa: E731
        return [to_aval(o) for o in out] if op.multiple_results else to_aval(out)

    def abstract_eval(*avals, **params):
        return shape_of(tuple((tuple(a.shape), a.dtype) for a in avals), _freeze(params))

    def lowering(*args, **params):
        out = op.impl(*args, **params)
        return list(out) if op.multiple_results else out

    prim.def_impl(impl)
    prim.def_abstract_eval(abstract_eval)
    mlir.register_lowering(prim, mlir.lower_fun(lowering, multiple_results=op.multiple_results))


def _define_jvp(prim, op: Op) -> None:
    """The tangent: for a linear op the op applied to the tangents, else op.tangent; symbolic zeros stay zeros."""
    ad = API["ad"]

    def zero_like(out):
        return ad.Zero(API["ShapedArray"](out.shape, out.dtype))

    def as_result(out, dout):
        if op.multiple_results:
            dout = [None] * len(out) if dout is None else list(dout)
            return list(out), [zero_like(o) if d is None else d for o, d in zip(out, dout)]
        return out, zero_like(out) if dout is None else dout

    def jvp(primals, tangents, **params):
        ts = [None if type(t) is ad.Zero or not _is_float(p) else t for p, t in zip(primals, tangents)]
        if op.is_linear:
            out = prim.bind(*primals, **params)
            return as_result(out, _linear_tangent(op, primals, ts, params) if any(t is not None for t in ts)
                             else None)
        out = prim.bind(*primals, **params)
        out_t = tuple(out) if op.multiple_results else out
        if all(t is None for t in ts):
            return as_result(out, None)
        return as_result(out, op.tangent(tuple(primals), out_t, tuple(ts), **params))

    ad.primitive_jvps[prim] = jvp


def _define_transpose(prim, op: Op) -> None:
    """Reverse mode of a linear op: op.transpose for the arguments being transposed (the undefined primals)."""
    ad = API["ad"]

    def transpose(cts, *args, **params):
        undefined = [ad.is_undefined_primal(a) for a in args]
        cts = list(cts) if op.multiple_results else [cts]
        cts = [None if type(c) is ad.Zero else c for c in cts]
        if all(c is None for c in cts):
            return [None] * len(args)
        given = [jax.ShapeDtypeStruct(a.aval.shape, a.aval.dtype) if u else a for a, u in zip(args, undefined)]
        bad = [i for i, u in enumerate(undefined) if u and i not in op.linear]
        if bad:
            raise ValueError(f"funcnn.{op.name} is not linear in argument {bad[0]}")
        out = op.transpose(cts if op.multiple_results else cts[0], *given, **params)
        return [o if u else None for o, u in zip(out, undefined)]

    ad.primitive_transposes[prim] = transpose


def _define_batching(prim, op: Op) -> None:
    """vmap: op.batch (or a loop over the mapped axis); an unmapped call binds the op unchanged."""
    batching = API["batching"]
    rule = functools.partial(_batch_or_empty, op)
    if hasattr(batching, "fancy_primitive_batchers"):  # the registry itself (primitive_batchers is a shim over it)
        def fancy(axis_data, args, dims, **params):
            if all(d is None for d in dims):
                out = prim.bind(*args, **params)
                return (out, [None] * len(out)) if op.multiple_results else (out, None)
            return rule(args, dims, **params)

        batching.fancy_primitive_batchers[prim] = fancy
    else:
        batching.primitive_batchers[prim] = rule


def _batch_or_empty(op: Op, args, dims, **params):
    """op.batch (or the loop), except over an empty mapped axis (vmap over size 0, jax.hessian at N = 0), where
    every output is empty along it: its shapes come from one slice (the batch rules fold the mapped axis into
    another and would divide by its size)."""
    size = next(a.shape[d] for a, d in zip(args, dims) if d is not None)
    return (map_batch if size == 0 or op.batch is None else op.batch)(op, args, dims, **params)


def map_batch(op: Op, args, dims, **params):
    """The default batching rule: the op bound once per slice of the mapped axis, in a loop (`lax.map`)."""
    size = next(a.shape[d] for a, d in zip(args, dims) if d is not None)
    mapped = [i for i, d in enumerate(dims) if d is not None]

    def one(slices):
        full = list(args)
        for i, s in zip(mapped, slices):
            full[i] = s
        return op(*full, **params)

    out = lax.map(one, tuple(jnp.moveaxis(args[i], dims[i], 0) for i in mapped)) if size else None
    if out is None:  # an empty mapped axis: shapes from one slice
        sliced = [jax.ShapeDtypeStruct(a.shape[:d] + a.shape[d + 1:], a.dtype) if d is not None else a
                  for a, d in zip(args, dims)]
        shapes = jax.eval_shape(lambda *a: op(*a, **params), *sliced)
        out = jax.tree_util.tree_map(lambda s: jnp.zeros((0, *s.shape), s.dtype), shapes)
    return (list(out), [0] * len(out)) if op.multiple_results else (out, 0)


def moved_to_front(args, dims, size=None):
    """Every argument with the mapped axis first (broadcast where it is not mapped) and the axis size."""
    size = size or next(a.shape[d] for a, d in zip(args, dims) if d is not None)
    return [jnp.broadcast_to(a, (size, *a.shape)) if d is None else jnp.moveaxis(a, d, 0)
            for a, d in zip(args, dims)], size


def fold_into_batch(op: Op, args, dims, **params):
    """A batching rule for ops whose every argument and output has the batch axis N first and treats examples
    independently (the pools): the mapped axis B is folded into N, one op on B*N examples."""
    moved, size = moved_to_front(args, dims)
    flat = [a.reshape(size * a.shape[1], *a.shape[2:]) for a in moved]
    out = op(*flat, **params)
    unfold = lambda o: o.reshape(size, o.shape[0] // size, *o.shape[1:])  # noqa: E731
    if isinstance(out, tuple):
        return [unfold(o) for o in out], [0] * len(out)
    return unfold(out), 0


def define_adjoint_pair(name: str, impl: Callable, adjoint_name: str, adjoint_impl: Callable, *, fixed: int,
                        n_linear: int = 1, adjoint_params: Callable = lambda params, specs: {},
                        constant: bool = False, batch: Callable | None = None) -> tuple[Op, Op]:
    """Two linear ops, each the other's transpose: `name` maps (*fixed, *t) to its output(s), `adjoint_name` maps
    (*fixed, *g) back to t's shape(s); the first `fixed` arguments are parameters (residuals such as x), the next
    `n_linear` the linear ones (jointly), and each op has `n_linear` outputs. `adjoint_params(params, specs of t)`
    gives the adjoint's extra parameters (the sizes it maps back to). `constant`: the ops do not depend smoothly on
    the fixed arguments (a max pool's first-maximum mask), so their derivative there is zero.

    A pair is how a nonlinear op's tangent rule and its hand-written backward stand together: `name` is the tangent
    (linear in the input's tangent), `adjoint_name` the backward (linear in g), and transposing either gives the
    other, so reverse mode of the tangent runs the backward, to every order."""
    pair: dict = {}
    linear = tuple(range(fixed, fixed + n_linear))
    many = n_linear > 1

    def swap(source, target, cts, args, source_params, target_params):
        """target(*fixed, *cts): the transpose of `source` at cotangents `cts` (zeros of `source`'s output shape
        where a cotangent is a symbolic zero)."""
        cts = list(cts) if many else [cts]
        if all(c is None for c in cts):
            return [None] * len(args)
        if any(c is None for c in cts):
            specs = jax.eval_shape(lambda *a: source(*a, **source_params), *[_spec(a) for a in args])
            cts = _instantiated(cts, list(specs) if many else [specs])
        out = target(*args[:fixed], *cts, **target_params)
        return [None] * fixed + (list(out) if many else [out])

    def transpose_forward(cts, *args, **params):
        extra = adjoint_params(params, [_spec(a) for a in args[fixed:]])
        return swap(pair["forward"], pair["adjoint"], cts, args, params, {**params, **extra})

    def transpose_adjoint(cts, *args, **params):
        extra = adjoint_params(params, [_spec(a) for a in args[fixed:]])
        base = {k: v for k, v in params.items() if k not in extra}
        return swap(pair["adjoint"], pair["forward"], cts, args, params, base)

    const = tuple(range(fixed)) if constant else ()
    pair["forward"] = define(name, impl, linear=linear, transpose=transpose_forward, constant=const, batch=batch,
                             multiple_results=many)
    pair["adjoint"] = define(adjoint_name, adjoint_impl, linear=linear, transpose=transpose_adjoint,
                             constant=const, batch=batch, multiple_results=many)
    return pair["forward"], pair["adjoint"]


def _instantiated(cts, specs):
    """Cotangents with None (a symbolic zero) replaced by zeros of the matching shape."""
    return [jnp.zeros(s.shape, s.dtype) if c is None else c for c, s in zip(cts, specs)]


# ----------------------------------------------------------------------------------------------------------------
# the fallback form: jax.custom_vjp built from the same rules


class ForwardModeError(TypeError):
    """Forward mode (jax.jvp, jax.hessian, ...) met an op carried as a jax.custom_vjp (the fallback form): JAX's own
    error, re-raised by the op with `forward_mode_message`."""


def forward_mode_message(what: str) -> str:
    """Why forward mode fails on `what` in the fallback form, and what to do."""
    return (f"{what} runs as a jax.custom_vjp on this JAX ({jax.__version__}: {FALLBACK_REASON}), which has no "
            "forward mode (jax.jvp, jax.jacfwd, jax.hessian, jax.linearize, funcnn.curvature). Use jax.grad, jax.vjp "
            "or jax.jacrev, or a JAX in the range funcnn is tested with (pyproject.toml).")


@functools.lru_cache(maxsize=None)
def _custom_vjp_form(op: Op, frozen):
    params = dict(frozen)

    @jax.custom_vjp
    def f(*args):
        return op.impl(*args, **params)

    def fwd(*args):
        out = op.impl(*args, **params)
        return out, (args, out)

    def bwd(res, g):
        args, out = res
        floats = [i for i, a in enumerate(args) if _is_float(a)]
        grads = [None] * len(args)
        if op.is_linear:
            for group in ([[i] for i in op.linear] if op.multilinear else [list(op.linear)]):
                given = [_spec(a) if j in group else a for j, a in enumerate(args)]
                out = op.transpose(g, *given, **params)
                for i in group:
                    grads[i] = out[i]
            others = [i for i in floats if i not in op.linear and i not in op.constant]
            if others:
                through = _impl_of(op, args, others, params)
                for i, d in zip(others, jax.vjp(through, *[args[i] for i in others])[1](g)):
                    grads[i] = d
            for i in op.constant:
                grads[i] = jnp.zeros_like(args[i])
        else:
            def tangent(*ts):
                full = [None] * len(args)
                for i, t in zip(floats, ts):
                    full[i] = t
                return op.tangent(tuple(args), out, tuple(full), **params)

            zeros = [jnp.zeros_like(args[i]) for i in floats]
            for i, d in zip(floats, jax.vjp(tangent, *zeros)[1](g)):
                grads[i] = d
        return tuple(grads)

    f.defvjp(fwd, bwd)
    return f


__all__ = ["Op", "OPS", "define", "undefined", "define_adjoint_pair", "op_of", "map_batch", "moved_to_front",
           "fold_into_batch", "MODE", "FALLBACK_REASON", "ForwardModeError", "forward_mode_message", "REQUIRED_API",
           "NAMESPACE", "TESTED_JAX"]
