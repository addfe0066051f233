"""Infinite-width kernel rules of the geometric layers that reduce to ``Aggregate`` + ``Dense``.

* ``GCNConv``: ``out = A_bar^T (x W) + b`` with the fixed normalised adjacency
  ``A_bar = D^-1/2 (A + I) D^-1/2`` (seeds' GCN layer), i.e. a bias-free
  ``Dense`` followed by ``Aggregate`` with the dense graph ``A_bar``, then the
  bias. Hence ``nngp' = A_bar1^T (W_std^2 nngp) A_bar2 + b_std^2`` and
  ``ntk' = A_bar1^T (W_std^2 (nngp + ntk)) A_bar2 + b_std^2``: the rule chains
  ``Dense``'s rule (without bias), :func:`jaxdl.kernels.attention_rules.aggregate`
  on ``A_bar`` (built from either implementation's pattern) and adds the bias.
* ``SetPool('sum' | 'mean')``: exactly ``GlobalSumPool``/``GlobalAvgPool`` over
  the set axis, whose rules it reuses (the Deep Sets sum ``sum_m phi(x_m)``).
  ``'max'`` pooling has no closed form: ``NotImplementedError``.

``GATConv``, ``ChebConv``, ``MessagePassing`` and ``PermEquivariant`` have no
rule here (``kernel_fn`` raises ``NotImplementedError`` naming them). Padding
masks (``mask=``) are not part of the kernel: pass only real nodes/elements.
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxdl.kernels import attention_rules
from jaxdl.kernels.kernel import Kernel
from jaxdl.stax.gnn import Topology, gcn_propagate, topology
from jaxdl.stax.layer import LayerSpec


def _normalized_adjacency(pattern, implementation: str, batch: int, nodes: int, dtype):
    """``A_bar[b, v, w]`` such that the layer's propagation is ``out_w = sum_v A_bar[v, w] h_v``:
    propagate the identity (one-hot node signals) through the layer's own code."""
    eye = jnp.broadcast_to(jnp.eye(nodes, dtype=dtype), (batch, nodes, nodes))  # x[b, v, f=v]
    top: Topology = topology("GCNConv", implementation, eye, pattern, None)
    out = gcn_propagate(top, eye)  # out[b, w, v] = A_bar[b, v, w]
    return jnp.swapaxes(out, 1, 2)


def gcn_conv(h, k: Kernel, ctx) -> Kernel:
    from jaxdl.kernels.analytic import apply_rule

    if len(k.shape1) != 3 or k.batch_axis != 0 or k.channel_axis != 2:
        raise ValueError(f"GCNConv: expected inputs (batch, nodes, features), got shape {k.shape1}")
    dense = LayerSpec("Dense", dict(out_dim=h["out_dim"], W_std=h["W_std"], b_std=None, channel_axis=-1))
    k = apply_rule(dense, k, ctx)
    pattern1, pattern2 = ctx.get("pattern", (None, None))
    nodes, dtype = k.shape1[1], k.nngp.dtype
    graphs = (
        _normalized_adjacency(pattern1, h["implementation"], k.shape1[0], nodes, dtype),
        _normalized_adjacency(pattern2, h["implementation"], k.shape2[0], nodes, dtype),
    )
    aggregate = dict(aggregate_axis=1, batch_axis=0, channel_axis=-1, to_dense=lambda p: p, implementation="DENSE")
    k = attention_rules.aggregate(aggregate, k, dict(ctx, pattern=graphs))
    b_std = h["b_std"]
    if b_std is None:
        return k
    add = lambda mat: None if mat is None else mat + b_std**2  # noqa: E731
    return k.replace(nngp=add(k.nngp), ntk=add(k.ntk), cov1=add(k.cov1), cov2=add(k.cov2))


def set_pool(h, k: Kernel, ctx) -> Kernel:
    from jaxdl.kernels.analytic import apply_rule

    if h["pooling"] == "max":
        raise NotImplementedError("SetPool: no closed-form infinite-width kernel for max pooling; use 'sum' or 'mean'")
    if len(k.shape1) != 3:
        raise ValueError(f"SetPool: expected inputs (batch, set size, features), got shape {k.shape1}")
    kind = "GlobalSumPool" if h["pooling"] == "sum" else "GlobalAvgPool"
    return apply_rule(LayerSpec(kind, dict(batch_axis=0, channel_axis=-1)), k, ctx)


RULES = {
    "GCNConv": gcn_conv,
    "SetPool": set_pool,
}
