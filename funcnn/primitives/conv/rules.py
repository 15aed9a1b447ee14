"""The convolution: three bilinear ops, each the transpose of the others, carried as JAX primitives; their rules;
and which path computes each (one file to read, in the order of JAX's `lax/convolution.py`: the derivation, the ops,
the choice of path, the transpose rules, batching, the registration).

Layout: activations (N, *spatial, C), filters (*K, C_in/G, C_out). Correlation form, as in the lecture ("don't flip
the kernel"), i and u running over the spatial axes:

    conv            z[n, i, f]  = sum_{u, c} x_pad[n, S*i + D*u, c] * w[u, c, f]
    conv_transpose  dX[n, y, c] = sum_{f, i} g_up[n, i, f] * w[y - i, c, f]    upsample g by S, zero-pad by K_eff-1,
                                                                               convolve with the flipped,
                                                                               channel-swapped filter, crop the
                                                                               forward padding (`backward_steps.py`)
    conv_dw         dW[u, c, f] = sum_{n, i} g[n, i, f] * x_pad[n, S*i + D*u, c]  correlation of the padded input
                                                                               with the upsampled g

(lecture 004, "Computing the derivative for Y(l-1,m)", "Overall algorithm", "The derivatives for the weights"; the
bias's db[f] = sum_{n, i} g[n, i, f] is the transpose of its broadcast, in `api.py`.)

Each is linear in each of its two arguments, so its tangent is the product rule, op(dA, B) + op(A, dB), and its
transposes are the other two ops (the lecture's backward rules):

    conv(x, w)              x-bar = conv_transpose(g, w)     w-bar = conv_dw(x, g)
    conv_transpose(g, w)    g-bar = conv(y-bar, w)           w-bar = conv_dw(y-bar, g)     (the transposed conv's
                                                                                          dY and dW)
    conv_dw(x, g)           x-bar = conv_transpose(g, W-bar) g-bar = conv(x, W-bar)

so every derivative of every order is again one of the three. Each op is computed by one of a small, named set of
paths beneath this file (`paths/`: oneDNN, canonical, taps, banded, tap matmuls, batch chunks), the one the
algorithm table below names when the op is applied, recorded in the op's `algorithm` parameter:

    TABLE[rule] = ((condition, path), ...)     the first condition that holds picks the path

Every path passes the same gradient checks (the tests sweep all of them); the table only decides speed, and its
measurements are in docs/performance.md. The "CPU" paths are taken on the CPU alone: on other
backends the canonical form stays, the one XLA maps to vendor kernels (cuDNN), chosen at lowering time by
`lax.platform_dependent` (`paths.run`). What an enclosing block pins (`force_algorithm`, `loop_body`, `use_onednn`,
`for_platform`) is in `tracing.py`. The static parameters (window, stride, padding, dilation, groups, a pinned path)
are the `ConvSpec` spelled out, so that a jaxpr reads `funcnn.conv[window=(3, 3) ...]`; `funcnn summary --paths`
reads the chosen path from the same parameters.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax.numpy as jnp
from jax import lax

from .. import carrier
from ..geometry import Geometry
from . import paths, tracing
from .paths import onednn
from .paths.group_loop import merge_groups, split_groups
from .spec import ConvSpec, dx_zero_fraction


def spec_params(spec: ConvSpec) -> dict:
    """The op parameters of a spec (each a hashable static value, printed in jaxprs)."""
    geo = spec.geo
    return dict(window=geo.window, stride=geo.stride, padding=geo.padding, dilation=geo.dilation,
                groups=spec.groups, forced=spec.forced, looped=spec.looped)


def spec_of(params: dict) -> ConvSpec:
    geo = Geometry(params["window"], params["stride"], params["padding"], params["dilation"])
    return ConvSpec(geo, params["groups"], params["forced"], params["looped"])


def _w_shape(spec: ConvSpec, c_in: int, c_out: int):
    return (*spec.geo.window, c_in // spec.groups, c_out)


def _seen(rule: str, spec: ConvSpec, a_shape, b_shape, sizes=None):
    """What a rule's path depends on, from its two operand shapes (forward: x, w; dx: g, w and the input's spatial
    `sizes`; dw: x, g): (the filter's shape, the forward input's spatial sizes, the batch)."""
    if rule == "dw":
        return _w_shape(spec, a_shape[-1], b_shape[-1]), tuple(a_shape[1:-1]), a_shape[0]
    return tuple(b_shape), tuple(sizes) if rule == "dx" else tuple(a_shape[1:-1]), a_shape[0]


# ----------------------------------------------------------------------------------------------------------------
# the ops applied: the path is chosen here, from the spec and the shapes, and recorded in the equation


def conv(x, w, spec: ConvSpec):
    """z[n, i, f] = sum_{u, c} x_pad[n, S*i + D*u, c] * w[u, c, f] (no bias)."""
    path = choose("forward", spec, *_seen("forward", spec, x.shape, w.shape), x.dtype)
    return CONV(x, w, **spec_params(spec), algorithm=path)


def conv_dx(g, w, spec: ConvSpec, in_sizes):
    """dX[n, y, c] = sum_{f, i} g_up[n, i, f] * w[y - i, c, f]: the lecture's four dX steps (the transposed conv)."""
    in_sizes = tuple(int(s) for s in in_sizes)
    path = choose("dx", spec, *_seen("dx", spec, g.shape, w.shape, in_sizes), g.dtype)
    return CONV_TRANSPOSE(g, w, **spec_params(spec), sizes=in_sizes, algorithm=path)


def conv_dw(x, g, spec: ConvSpec):
    """dW[u, c, f] = sum_{n, i} g[n, i, f] * x_pad[n, S*i + D*u, c]."""
    path = choose("dw", spec, *_seen("dw", spec, x.shape, g.shape), x.dtype)
    return CONV_DW(x, g, **spec_params(spec), algorithm=path)


# ----------------------------------------------------------------------------------------------------------------
# the choice of path: the algorithm table and its conditions (their docstrings are the table's text, printed by
# `funcnn summary`)


RULES = ("forward", "dx", "dw")
BANDED_MAX_CHANNEL_PRODUCT = 128
ZERO_FRACTION_FOR_TAPS = 0.5
LOOP_SMALL_BATCH = 8  # a looped dW of at most this many images takes the tap matmuls (per-example gradients)
GROUP_LOOP_MIN_GROUPS = 4  # a grouped dW of at least this many groups on a few images loops over its groups
UNROLL_MAX_SLICES = 16  # the CPU batch rule writes out at most this many slices of more than LOOP_SMALL_BATCH images


class Case(NamedTuple):
    """What a condition sees: the static configuration, the filter's shape, the forward input's spatial sizes, the
    batch and the operands' dtype."""

    spec: ConvSpec
    w_shape: tuple
    in_sizes: tuple | None
    batch: int | None = None
    dtype: object = None


def _few_images(case: Case) -> bool:
    return case.batch is not None and case.batch <= LOOP_SMALL_BATCH


def in_onednn(case: Case) -> bool:
    """the oneDNN engine is built and on (`use_onednn`), takes the dtype (float32; bfloat16 on CPUs with its
    kernels) and the sizes (no empty axis), the output has more than one position (a conv onto one position,
    MobileNet's last 1x1 maps, is one matmul, and XLA's ran 2-6x faster than oneDNN's call: docs/performance.md,
    "The oneDNN engine"), and it is not a loop body's rule on a few images (per-example gradients: one image per
    iteration, where a call's fixed cost is most of it; `few_images_in_a_loop`)"""
    one_position = case.in_sizes is not None and math.prod(case.spec.geo.out_sizes(case.in_sizes)) == 1
    return (not one_position and not few_images_in_a_loop(case) and tracing.onednn_enabled()
            and onednn.takes(case.w_shape, case.in_sizes, case.batch, case.dtype))


def strided_one_by_one_in_onednn(case: Case) -> bool:
    """the engine would take it, but groups == 1, a 1x1 window and a stride > 1: dX is one matmul onto the strided
    positions (the tap matmuls ran it in 0.36-0.39 ms against oneDNN's 0.57-1.43 on ResNet-20's 16 -> 32
    projection: docs/performance.md, "The oneDNN engine")"""
    return (case.spec.groups == 1 and math.prod(case.spec.geo.window) == 1 and max(case.spec.geo.stride) > 1
            and in_onednn(case))


def depthwise(case: Case) -> bool:
    """depth-wise: groups == C_in > 1"""
    return case.spec.is_depthwise(case.w_shape)


def grouped(case: Case) -> bool:
    """grouped, not depth-wise: 1 < groups < C_in"""
    return case.spec.groups > 1


def many_groups_on_few_images(case: Case) -> bool:
    """at least GROUP_LOOP_MIN_GROUPS groups, not depth-wise, on at most LOOP_SMALL_BATCH images (per-example slices
    that vmap folded into the groups, where the oneDNN engine does not run them: an exported program): one canonical
    dW per group in a loop, not XLA's grouped dW (docs/performance.md, "Why each conv path is where it is")"""
    return case.spec.groups >= GROUP_LOOP_MIN_GROUPS and _few_images(case)


def few_channels(case: Case) -> bool:
    """groups == 1 and C_in x C_out <= 128 (LeNet's layers, a 3-channel stem)"""
    return case.w_shape[-2] * case.w_shape[-1] <= BANDED_MAX_CHANNEL_PRODUCT


def mostly_zeros(case: Case) -> bool:
    """at least half of the canonical dX's multiplies would hit inserted (stride) or padded (K-1 border) zeros"""
    return dx_zero_fraction(case.spec, case.in_sizes) >= ZERO_FRACTION_FOR_TAPS


def few_channels_1d(case: Case) -> bool:
    """groups == 1, C_in x C_out <= 128 and one spatial axis (in 2-D the batch chunks' dW beat the band on
    ResNet-20's stem and LeNet's conv1, with and without YNNPACK: docs/performance.md, "Why each conv path is where
    it is")"""
    return len(case.spec.geo.window) == 1 and few_channels(case)


def few_channels_in_a_loop(case: Case) -> bool:
    """groups == 1, C_in x C_out <= 128, traced as a loop's body (replicas under lax.map): the band, one matmul,
    not the batch chunks, which a loop runs one after another"""
    return case.spec.looped and few_channels(case)


def few_images_in_a_loop(case: Case) -> bool:
    """traced as a loop's body, on at most LOOP_SMALL_BATCH images (per-example gradients under vmap: one image per
    iteration): a matmul per tap, not a convolution with almost no batch to spread over (docs/performance.md)"""
    return case.spec.looped and _few_images(case) and case.spec.groups == 1


def in_a_loop(case: Case) -> bool:
    """traced as a loop's body (`loop_body`): XLA's CPU runtime runs the work of a loop body one operation at a
    time, so the batch chunks' eight convolutions would run one after another; one canonical convolution instead"""
    return case.spec.looped


def one_by_one(case: Case) -> bool:
    """a 1x1 window (dW is one matmul)"""
    return math.prod(case.spec.geo.window) == 1


def volumetric(case: Case) -> bool:
    """three spatial axes (batch chunks were measured on 2-D layers; in 3-D the chunked dW made a 3x3x3 layer's
    forward+backward slower than the canonical one: docs/performance.md, "Why each conv path is where it is")"""
    return len(case.spec.geo.window) == 3


def always(case: Case) -> bool:
    """otherwise"""
    return True


TABLE: dict[str, tuple[tuple[Callable, str], ...]] = {
    "forward": ((in_onednn, "onednn"), (depthwise, "taps"), (grouped, "canonical"), (few_channels, "banded"),
                (always, "canonical")),
    "dx": ((strided_one_by_one_in_onednn, "tap_matmuls"), (in_onednn, "onednn"), (depthwise, "taps"),
           (grouped, "canonical"), (few_channels, "banded"), (mostly_zeros, "tap_matmuls"), (always, "canonical")),
    "dw": ((in_onednn, "onednn"), (depthwise, "taps"), (many_groups_on_few_images, "group_loop"),
           (grouped, "canonical"), (few_channels_1d, "banded"),
           (few_channels_in_a_loop, "banded"), (one_by_one, "tap_matmuls"), (volumetric, "canonical"),
           (few_images_in_a_loop, "tap_matmuls"), (in_a_loop, "canonical"), (always, "batch_chunks")),
}


def applies(path: str, rule: str, case: Case) -> bool:
    """Whether a forced path can compute this rule: oneDNN needs the engine built and a configuration it takes (it
    need not be on), taps need a depth-wise filter, the band and the tap matmuls no groups, the group loop groups,
    and batch chunks are a dW path only."""
    if path == "onednn":
        return onednn.takes(case.w_shape, case.in_sizes, case.batch, case.dtype)
    if path == "taps":
        return depthwise(case)
    if path in ("banded", "tap_matmuls"):
        return case.spec.groups == 1
    if path == "group_loop":
        return case.spec.groups > 1
    if path == "batch_chunks":
        return rule == "dw"
    return True


def choose(rule: str, spec: ConvSpec, w_shape, in_sizes=None, batch: int | None = None, dtype=None) -> str:
    """The path for one rule ("forward", "dx" or "dw"): the one `spec.forced` pins where it applies, else the
    table's. `in_sizes` (the forward input's spatial sizes) is needed for rule "dx", `batch` for a looped dW, and
    `dtype` for the oneDNN engine (without it, XLA's paths)."""
    case = Case(spec, tuple(w_shape), None if in_sizes is None else tuple(in_sizes), batch, dtype)
    pinned = spec.forced
    if pinned is not None:
        return pinned if applies(pinned, rule, case) else "canonical"
    return next(path for condition, path in TABLE[rule] if condition(case))


# ----------------------------------------------------------------------------------------------------------------
# computing an op: the path named by `algorithm`


def run(path: str, rule: str, spec: ConvSpec, w_shape, in_sizes, a, b):
    """Compute `rule` with `path` (the one `choose` named when the op was applied): forward conv(x, w), dx(g, w)
    for an input of `in_sizes`, or dw(x, g) for a filter of `w_shape`. The oneDNN engine's call carries the path the
    table gives without it, which an exported program computes instead; a program for a tool (`for_platform`,
    `funcnn.as_lax`, the checker's primal) or one traced with the engine off takes that path itself."""
    fallback, platform = None, tracing.target_platform()
    if path == "onednn":
        with tracing.use_onednn(False):
            fallback = choose(rule, spec._replace(forced=None), w_shape, in_sizes, a.shape[0], a.dtype)
        if platform is not None or not tracing.onednn_enabled():
            path, fallback = fallback, None
    return paths.run(path, rule, spec, w_shape, in_sizes, a, b, fallback=fallback, platform=platform)


def _impl(rule):
    def impl(a, b, *, algorithm, sizes=None, **params):
        spec = spec_of(params)
        w_shape, in_sizes, _ = _seen(rule, spec, a.shape, b.shape, sizes)
        return run(algorithm, rule, spec, w_shape, in_sizes, a, b)

    return impl


# ----------------------------------------------------------------------------------------------------------------
# transposes (the backward rules) and batching


def _conv_transpose_rule(ct, x, w, *, algorithm, **params):
    spec = spec_of(params)
    return (conv_dx(ct, w, spec, x.shape[1:-1]) if carrier.undefined(x) else None,
            conv_dw(x, ct, spec) if carrier.undefined(w) else None)


def _conv_transpose_transpose_rule(ct, g, w, *, algorithm, sizes, **params):
    spec = spec_of(params)
    return (conv(ct, w, spec) if carrier.undefined(g) else None,
            conv_dw(ct, g, spec) if carrier.undefined(w) else None)


def _conv_dw_transpose_rule(ct, x, g, *, algorithm, **params):
    spec = spec_of(params)
    return (conv_dx(g, ct, spec, x.shape[1:-1]) if carrier.undefined(x) else None,
            conv(x, ct, spec) if carrier.undefined(g) else None)


def _batch_rule(rule_name):
    """vmap of a conv-family op. An activation mapped alone folds into the batch axis N (per-example work: one op on
    B*N examples). Where both operands carry the mapped axis (replicas, ensembles, per-example dW), the B
    independent convolutions are, on accelerators, one grouped convolution with B times the groups (what cuDNN and
    TPUs run well), and on the CPU B single convolutions: XLA's CPU backend runs a grouped convolution an order of
    magnitude slower than the same work as separate convolutions (docs/performance.md). Few slices of real batches
    (replicas, ensemble members: at most UNROLL_MAX_SLICES, each of more than LOOP_SMALL_BATCH images) are written
    out one after another, so that each is the single model's convolution, with its paths, and XLA may overlap
    them; many slices, or slices of a few images (per-example gradients), run in a loop (`lax.map`, each traced as
    a loop body so that it takes no batch chunks), where one compiled body serves them all. The forms are picked at
    lowering time by `lax.platform_dependent`. Slices of a few images that the oneDNN engine takes as one grouped
    op are that op on every platform: one engine call instead of a loop of one-image calls (per-example gradients;
    an exported program computes it with the group loop, `paths/group_loop.py`). Either way the result is again
    funcnn ops, their paths chosen for their shapes, so the rules run under any mix of vmap and differentiation."""

    def single(a, b, spec, sizes):
        if rule_name == "forward":
            return conv(a, b, spec)
        if rule_name == "dx":
            return conv_dx(a, b, spec, sizes)
        return conv_dw(a, b, spec)

    def rule(op, args, dims, *, algorithm, **params):
        spec = spec_of(params)
        sizes = params.pop("sizes", None)
        (a, b), (da, db) = args, dims
        if rule_name != "dw" and db is None:  # only the activation is mapped: fold into N
            a = jnp.moveaxis(a, da, 0)
            flat = a.reshape(a.shape[0] * a.shape[1], *a.shape[2:])
            out = single(flat, b, spec, sizes)
            return out.reshape(a.shape[0], a.shape[1], *out.shape[1:]), 0
        (a, b), size = carrier.moved_to_front([a, b], [da, db])
        folded = spec._replace(groups=spec.groups * size)

        def grouped(a, b):  # the mapped axis folded into both operands' channels: one op with size x the groups
            return split_groups(single(merge_groups(a), merge_groups(b), folded, sizes), size)

        def separate(a, b):  # one convolution per slice: written out, or in a loop
            if size <= UNROLL_MAX_SLICES and a.shape[1] > LOOP_SMALL_BATCH:
                return jnp.stack([single(a[i], b[i], spec, sizes) for i in range(size)])
            return lax.map(lambda ab: single(*ab, spec._replace(looped=True), sizes), (a, b))

        merged = [(*x.shape[1:-1], size * x.shape[-1]) for x in (a, b)]  # merge_groups's shapes
        if (a.shape[1] <= LOOP_SMALL_BATCH
                and choose(rule_name, folded, *_seen(rule_name, folded, *merged, sizes), a.dtype) == "onednn"):
            return grouped(a, b), 0
        return lax.platform_dependent(a, b, cpu=separate, default=grouped), 0

    return rule


# ----------------------------------------------------------------------------------------------------------------
# registration


CONV = carrier.define("conv", _impl("forward"), linear=(0, 1), multilinear=True, transpose=_conv_transpose_rule,
                      batch=_batch_rule("forward"))
CONV_TRANSPOSE = carrier.define("conv_transpose", _impl("dx"), linear=(0, 1), multilinear=True,
                                transpose=_conv_transpose_transpose_rule, batch=_batch_rule("dx"))
CONV_DW = carrier.define("conv_dw", _impl("dw"), linear=(0, 1), multilinear=True, transpose=_conv_dw_transpose_rule,
                         batch=_batch_rule("dw"))

ROLES = {CONV.name: "forward", CONV_TRANSPOSE.name: "dx", CONV_DW.name: "dw"}


def rule_case(name: str, params: dict, shapes):
    """What the path of one conv-family equation sees, from its primitive's name, its parameters and its two operand
    shapes: (rule, spec, filter shape, the forward input's spatial sizes, batch)."""
    rule = ROLES[name]
    spec = spec_of({k: v for k, v in params.items() if k not in ("algorithm", "sizes")})
    return rule, spec, *_seen(rule, spec, *shapes, params.get("sizes"))

__all__ = ["conv", "conv_dx", "conv_dw", "spec_params", "spec_of", "CONV", "CONV_TRANSPOSE", "CONV_DW", "ROLES",
           "rule_case", "RULES", "TABLE", "Case", "applies", "choose", "run"]
