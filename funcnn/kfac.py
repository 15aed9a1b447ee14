"""funcnn's layers in kfac-jax: graph patterns so that K-FAC's automatic registration finds funcnn's convolutions and
dense layers as its Kronecker-factored `conv2d` and `dense` blocks, while funcnn's hand-written rules still compute
every gradient.

    import kfac_jax
    from funcnn import kfac

    optimizer = kfac_jax.Optimizer(value_and_grad_func=jax.value_and_grad(loss), l2_reg=0.0,
                                   auto_register_kwargs=kfac.auto_register_kwargs(), ...)

Why patterns and not the lax view: kfac-jax finds layers by matching small jaxprs (a `conv_general_dilated` and a
bias add, a `dot_general` and a bias add) against the loss's jaxpr. A funcnn layer is one `funcnn.conv` or
`funcnn.dense` equation and a bias add, so the same matching finds it once the patterns are written with funcnn's
ops; the layer tag then holds the convolution's parameters in lax's names (strides, padding pairs, dimension
numbers), which is all the conv2d block reads. Rewriting the loss with `funcnn.as_lax` would also be matched, but
its gradients would then be JAX's autodiff of the forwards, not funcnn's rules. Passed as `auto_register_kwargs`
(`graph_patterns=` and `graph_matcher_rules=`), not registered globally: kfac-jax's defaults stay as they are, and
its own patterns are included, so lax layers in the same model are found too.

What kfac-jax's blocks cover: the conv2d block is 2-D (a 1-D or 3-D funcnn conv, like a 1-D or 3-D lax conv, gets
a generic block) and reads neither dilation nor groups (a grouped or dilated funcnn conv, like a lax one, gets a
generic block); the dense block takes (batch, features) inputs.

kfac-jax is an optional dependency. Its newest release, 0.0.8, imports on jax 0.10.x only, and its optimiser runs on
no JAX funcnn supports (it unpacks `Primitive.get_bind_params` the way JAX did before 0.10); its main branch runs on
all of them: `pip install git+https://github.com/google-deepmind/kfac-jax`. CI's oldest leg (jax 0.10.2) installs
0.0.8 from PyPI and checks the registration; training was checked with the main branch (the note of issue 40).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

try:  # an optional dependency: the ImportError names what to install
    import kfac_jax
    from kfac_jax import tag_graph_matcher as matcher
except Exception as err:  # pragma: no cover - ImportError, or 0.0.8's AttributeError (jax.core.Effects) on jax >= 0.11
    raise ImportError(f"funcnn.kfac needs kfac-jax, which does not import here ({type(err).__name__}: {err}): pip "
                      "install git+https://github.com/google-deepmind/kfac-jax (its 0.0.8 release imports with jax "
                      "0.10.x only)") from err

from .primitives import conv2d, dense
from .primitives.carrier import NAMESPACE

CONV, DENSE = NAMESPACE + "conv", NAMESPACE + "dense"


def _supported_conv(eqn) -> bool:
    """A conv kfac-jax's conv2d block computes factors for: 2-D, no dilation, one group."""
    params = eqn.params
    return len(params["stride"]) == 2 and params["groups"] == 1 and all(d == 1 for d in params["dilation"])


def _conv_equivalent(pattern, found) -> bool:
    """funcnn.conv equations match whatever their strides and padding (as kfac-jax's rule for lax convs does), when
    kfac-jax's conv2d block can take both."""
    return _supported_conv(pattern) and _supported_conv(found)


def lax_conv_params(params) -> dict:
    """A funcnn.conv equation's parameters in `lax.conv_general_dilated`'s names and layout (NHWC, HWIO, NHWC): what
    kfac-jax's conv2d block reads from a layer tag."""
    n = len(params["stride"])
    channels_first = (0, n + 1, *range(1, n + 1))
    return dict(window_strides=tuple(params["stride"]), padding=tuple(tuple(p) for p in params["padding"]),
                lhs_dilation=(1,) * n, rhs_dilation=tuple(params["dilation"]),
                dimension_numbers=lax.ConvDimensionNumbers(lhs_spec=channels_first, rhs_spec=(n + 1, n, *range(n)),
                                                           out_spec=channels_first),
                feature_group_count=params["groups"], batch_group_count=1, precision=None,
                preferred_element_type=None)


def _extractor(primitive: str, variant: str, reversed_eqns):
    """The layer tag's parameters for a matched pattern: its metadata and, for a conv, lax's conv parameters."""
    count = matcher.num_unique_inputs(reversed_eqns[::-1])
    meta = kfac_jax.LayerMetaData(variant=variant, outputs_index=(0,), inputs_index=(1,),
                                  params_index=tuple(i + 2 for i in range(count - 1)))
    for eqn in reversed_eqns:
        if eqn.primitive.name == primitive:
            return dict(meta=meta, **(lax_conv_params(eqn.params) if primitive == CONV else {}))
    raise ValueError(f"funcnn.kfac: a matched {variant} pattern without its {primitive} equation")


def _conv_layer(x, params):
    y = conv2d(x, params[0], stride=2, padding="SAME")
    return y + params[1] if len(params) == 2 else y


def _dense_layer(x, params):
    y = dense(x, params[0])
    return y + params[1] if len(params) == 2 else y


def _patterns() -> tuple:
    """funcnn's conv2d and dense layers, with and without a bias, written as funcnn's layers compute them."""
    conv = [np.zeros((2, 8, 8, 5)), [np.zeros((3, 3, 5, 4)), np.zeros((4,))]]
    full = [np.zeros((2, 7)), [np.zeros((7, 3)), np.zeros((3,))]]
    made = []
    for name, compute, primitive, variant, (x, params) in (
            ("conv2d", _conv_layer, CONV, "conv2d", conv), ("dense", _dense_layer, DENSE, "dense", full)):
        for bias in (True, False):
            made.append(matcher.GraphPattern(
                name=f"funcnn_{name}_{'with' if bias else 'no'}_bias", tag_primitive=kfac_jax.layers_and_loss_tags
                .layer_tag, compute_func=compute,
                parameters_extractor_func=functools.partial(_extractor, primitive, variant),
                example_args=[jnp.asarray(x), [jnp.asarray(p) for p in (params if bias else params[:1])]]))
    return tuple(made)


@functools.lru_cache(maxsize=1)
def graph_patterns() -> tuple:
    """funcnn's patterns, then kfac-jax's defaults (lax layers in the same model are found too)."""
    return (*_patterns(), *matcher.DEFAULT_GRAPH_PATTERNS)


def graph_matcher_rules():
    """kfac-jax's comparator with funcnn.conv's equivalence rule (funcnn.dense has no parameters to compare)."""
    return matcher.GraphMatcherComparator(special_eqn_equivalence_rules={
        **matcher.DEFAULT_SPECIAL_EQUIVALENCE_RULES, CONV: _conv_equivalent})


def auto_register_kwargs() -> dict:
    """`kfac_jax.Optimizer(auto_register_kwargs=...)` (or `kfac_jax.auto_register_tags(**...)`): funcnn's patterns
    and equivalence rule."""
    return dict(graph_patterns=graph_patterns(), graph_matcher_rules=graph_matcher_rules())


def registered_blocks(loss, params, batch, *, funcnn_patterns: bool = True) -> dict:
    """{block variant: count} of the layer tags kfac-jax's automatic registration gives `loss(params, batch)`, with
    funcnn's patterns (default) or kfac-jax's defaults alone: what K-FAC will treat as conv2d, dense, generic or
    scale_and_shift blocks."""
    kwargs = auto_register_kwargs() if funcnn_patterns else {}
    tagged = kfac_jax.tag_graph_matcher.auto_register_tags(loss, (params, batch), **kwargs)
    counts: dict = {}
    for eqn in jax.make_jaxpr(tagged)(params, batch).jaxpr.eqns:
        meta = eqn.params.get("meta")
        if isinstance(meta, kfac_jax.LayerMetaData):
            counts[meta.variant] = counts.get(meta.variant, 0) + 1
    return counts


__all__ = ["auto_register_kwargs", "graph_patterns", "graph_matcher_rules", "lax_conv_params", "registered_blocks"]
