"""Infinite-width NNGP and NTK of the Elman RNN ``SimpleRNN`` (the recurrent NTK).

The layer (seeds' "Recurrent neural networks", Elman RNN) maps inputs
``x: f[n, T, d]`` to hidden states ``h_t = phi(z_t)`` with ``h_0 = 0`` and::

    z_t = W_std/sqrt(H) W h_{t-1} + U_std/sqrt(d) U x_t + b_std b     ('ntk', W, U, b ~ N(0, 1))

(``'standard'``: the same function with the weights drawn at those scales).
Because ``W``, ``U`` and ``b`` are *shared across time*, the pre-activations
``z_t`` of all steps of both inputs are jointly Gaussian in the infinite-width
limit, and their covariances obey a recursion over *pairs* of time steps
``(t, t')`` (Alemohammad, Wang, Balestriero & Baraniuk 2021, "The Recurrent
Neural Tangent Kernel"; it is the seeds' layer recursions
``K^{l+1} = W_std^2 E[phi(u) phi(v)] + b_std^2`` and
``Theta^{l+1} = K^{l+1} + W_std^2 E[phi'(u) phi'(v)] Theta^l`` with "layer"
replaced by "time step", the input entering every step)::

    K_z(t, t')   = W_std^2 K_h(t-1, t'-1) + U_std^2 K_x(t, t') + b_std^2
    K_h(t, t')   = E[phi(u) phi(v)],      (u, v) ~ N(0, [[q(t), K_z(t, t')], [K_z(t, t'), q'(t')]])
    Theta_z(t, t') = K_z(t, t') + U_std^2 Theta_x(t, t') + W_std^2 Theta_h(t-1, t'-1)
    Theta_h(t, t') = E[phi'(u) phi'(v)] Theta_z(t, t')

with ``K_h(0, .) = K_h(., 0) = Theta_h(0, .) = 0`` (the zero initial state) and
``q(t) = K_z(t, t)`` of each input with itself. The weight sharing is what makes
``Theta_z`` a sum over all earlier step pairs ``(t-s, t'-s)``: the gradient with
respect to the shared ``W`` collects one term per step, and the term
``W_std^2 Theta_h(t-1, t'-1)`` carries all of them forward (cross terms between
different steps' direct ``W`` contributions vanish at infinite width). Under the
'standard' parameterisation the direct parameter terms are ``H K_h + d K_x + 1``
instead of ``W_std^2 K_h + U_std^2 K_x + b_std^2``, exactly as for ``Dense``.

Each entry depends only on its predecessor along the diagonal ``t' - t =
const``, so the covariances are computed by one ``lax.scan`` over the position
along all ``2T - 1`` diagonals at once (``O(T^2)`` work per pair of inputs).
The Gaussian expectations are the elementwise rules of
:mod:`jaxdl.kernels.elementwise_rules`, so every activation with a kernel rule
works. The layer's output kernel is that of ``h_T`` (``return_sequences=False``)
or of the whole sequence ``h_1..h_T`` (``f[n1, n2, T, T']``). Written by hand:
no library computes recurrent kernels.
"""

from __future__ import annotations

import numpy as np
import jax
import jax.numpy as jnp

from jaxdl.kernels import elementwise_rules, masking_rules
from jaxdl.kernels.kernel import Kernel
from jaxdl.kernels.layout import variances

_NAME = "SimpleRNN"


def simple_rnn(hyper: dict, k: Kernel, ctx) -> Kernel:
    """Propagate the input kernel ``k`` of ``x: f[n, T, d]`` through ``SimpleRNN``.

    ``ctx["children"]`` holds the activation's spec (the layer spec's only child).
    """
    rule = _activation_rule(ctx)
    _check_input(k)
    W_std, U_std = float(hyper["W_std"]), float(hyper["U_std"])
    b_std = hyper.get("b_std")
    b_var = 0.0 if b_std is None else float(b_std) ** 2
    hidden, d = int(hyper["hidden"]), k.shape1[2]
    parameterization = str(hyper.get("parameterization", "ntk")).lower()
    if parameterization == "ntk":
        direct = (W_std**2, U_std**2, b_var)
    elif parameterization == "standard":
        direct = (float(hidden), float(d), 0.0 if b_std is None else 1.0)
    else:
        raise ValueError(f"{_NAME}: expected parameterization 'ntk' or 'standard', got {parameterization!r}")
    recursion = _Recursion(rule, W_std, U_std, b_var, direct)

    q1 = recursion.variances(variances(k.cov1, k.diagonal_batch, False))
    q2 = q1 if k.cov2 is None else recursion.variances(variances(k.cov2, k.diagonal_batch, False))
    ntk_in = None if k.ntk is None else jnp.broadcast_to(k.ntk, k.nngp.shape)
    nngp, ntk = recursion.covariance(k.nngp, ntk_in, q1[:, None], q2[None, :])
    if k.cov2 is None:  # x2 is x1: cov1 is part of nngp (and stays exactly consistent with it)
        cov1 = jnp.moveaxis(jnp.diagonal(nngp, axis1=0, axis2=1), -1, 0) if k.diagonal_batch else nngp
        cov2 = None
    else:
        cov1, cov2 = (recursion.self_covariance(cov, q, k.diagonal_batch) for cov, q in ((k.cov1, q1), (k.cov2, q2)))

    n1, T = k.shape1[0], k.shape1[1]
    n2 = k.shape2[0]
    if hyper.get("return_sequences", False):
        shape1, shape2, channel_axis = (n1, T, hidden), (n2, T, hidden), 2
    else:
        last = lambda mat: None if mat is None else mat[..., -1, -1]
        nngp, ntk, cov1, cov2 = last(nngp), last(ntk), last(cov1), last(cov2)
        shape1, shape2, channel_axis = (n1, hidden), (n2, hidden), 1
    return k.replace(
        nngp=nngp,
        ntk=ntk,
        cov1=cov1,
        cov2=cov2,
        is_gaussian=False,
        is_input=False,
        diagonal_spatial=False,
        shape1=shape1,
        shape2=shape2,
        batch_axis=0,
        channel_axis=channel_axis,
    )


def _activation_rule(ctx) -> elementwise_rules.ElementwiseRule:
    children = (ctx or {}).get("children") or ()
    if len(children) != 1 or children[0] is None:
        raise ValueError(f"{_NAME}: expected the activation's spec as the layer spec's only child, got {children!r}")
    act = children[0]
    if act.kind not in elementwise_rules.ELEMENTWISE_KINDS:
        raise NotImplementedError(
            f"{_NAME}: no infinite-width kernel for the activation {act.kind!r}; use an elementwise "
            f"stax layer with a kernel rule (Erf, Relu, Tanh, ...)"
        )
    return elementwise_rules.rule_from_spec(act.kind, act.hyper)


def _check_input(k: Kernel) -> None:
    if len(k.shape1) != 3 or k.batch_axis != 0 or k.channel_axis != 2:
        raise ValueError(
            f"{_NAME}: expected inputs of shape (batch, time, features) with batch_axis=0 and "
            f"channel_axis=-1, got shape {k.shape1}, batch_axis={k.batch_axis}, channel_axis={k.channel_axis}"
        )
    if k.shape1[1] < 1:
        raise ValueError(f"{_NAME}: expected at least one time step, got input shape {k.shape1}")
    if k.diagonal_spatial:
        raise ValueError(
            f"{_NAME}: the recurrence needs the full (time, time') covariances of its input, "
            f"got diagonal_spatial=True"
        )
    if masking_rules.has_masks(k):
        raise NotImplementedError(f"{_NAME}: no infinite-width kernel for masked inputs (mask_constant)")


class _Recursion:
    """The recursion of the module docstring for one layer's hyperparameters.

    ``direct = (cW, cU, cb)``: the NTK's direct parameter terms
    ``cW K_h(t-1, t'-1) + cU K_x(t, t') + cb`` (``'ntk'``: the NNGP's own factors).
    """

    def __init__(self, rule, W_std, U_std, b_var, direct):
        self.rule, self.W_var, self.U_var, self.b_var = rule, W_std**2, U_std**2, b_var
        self.direct = direct

    def moments(self, c, q1, q2, need_dot):
        """``(E[phi(u) phi(v)], E[phi'(u) phi'(v)] or None)`` for ``(u, v) ~ N(0, [[q1, c], [c, q2]])``."""
        from jaxdl.kernels.analytic import _snap_correlation  # analytic imports this module

        value, dot = self.rule.cross(_snap_correlation(c, q1, q2), q1, q2, need_dot)
        value = self.rule.scale * value + self.rule.shift
        return value, None if dot is None else self.rule.scale * dot

    def variances(self, var_x):
        """Pre-activation variances ``q(t) = K_z(t, t)``: f[n, T] from the input's f[n, T]."""

        def step(h_var, x_var):  # h_var = E[phi(z_{t-1})^2] (0 for h_0)
            q = self.W_var * h_var + self.U_var * x_var + self.b_var
            return self.moments(q, q, q, False)[0], q

        _, q = jax.lax.scan(step, jnp.zeros_like(var_x[:, 0]), jnp.moveaxis(var_x, 1, 0))
        return jnp.moveaxis(q, 0, 1)

    def self_covariance(self, cov, q, diagonal_batch: bool):
        """Post-activation covariance of one batch with itself (``cov1``/``cov2``)."""
        if diagonal_batch:
            return self.covariance(cov, None, q, q)[0]
        return self.covariance(cov, None, q[:, None], q[None, :])[0]

    def covariance(self, k_x, theta_x, q_row, q_col):
        """Post-activation ``(K_h, Theta_h)`` over all step pairs, f[B..., T, T'].

        k_x, theta_x: the input's NNGP and NTK f[B..., T, T'] (``theta_x`` None: no NTK);
        q_row, q_col: pre-activation variances f[B'..., T] of the row / column inputs,
        broadcasting against the batch axes ``B...``.
        """
        T = k_x.shape[-1]
        rows, cols, valid = _chain_indices(T)
        skew = lambda mat: jnp.moveaxis(mat[..., rows, cols], -2, 0)  # f[T (position), B..., 2T-1 (diagonal)]
        xs = {
            "k_x": skew(k_x),
            "q_row": jnp.moveaxis(q_row[..., rows], -2, 0),
            "q_col": jnp.moveaxis(q_col[..., cols], -2, 0),
            "valid": jnp.asarray(valid),
        }
        need_ntk = theta_x is not None
        if need_ntk:
            xs["theta_x"] = skew(theta_x)
        cW, cU, cb = self.direct

        def step(carry, x):
            # at the previous position of each diagonal, i.e. (t-1, t'-1); zeros at the
            # first position (the initial state h_0 = 0) and outside the grid
            k_h, theta_h = carry
            k_z = self.W_var * k_h + self.U_var * x["k_x"] + self.b_var
            k_out, dot = self.moments(k_z, x["q_row"], x["q_col"], need_ntk)
            k_out = jnp.where(x["valid"], k_out, 0.0)
            theta_out = theta_h
            if need_ntk:
                theta_z = cW * k_h + cU * x["k_x"] + cb + self.W_var * theta_h + self.U_var * x["theta_x"]
                theta_out = jnp.where(x["valid"], dot * theta_z, 0.0)
            return (k_out, theta_out), (k_out, theta_out if need_ntk else None)

        batch_shape = jnp.broadcast_shapes(k_x.shape[:-2], q_row.shape[:-1], q_col.shape[:-1])
        zeros = jnp.zeros(batch_shape + (2 * T - 1,), k_x.dtype)
        _, (k_h, theta_h) = jax.lax.scan(step, (zeros, zeros), xs)
        s, diag = _unskew_indices(T)
        unskew = lambda chains: None if chains is None else jnp.moveaxis(chains, 0, -2)[..., s, diag]
        return unskew(k_h), unskew(theta_h)


def _chain_indices(T: int):
    """For position ``s`` along diagonal ``o = t' - t`` (index ``o + T - 1``): the step pair
    ``(t, t') = (s + max(0, -o), s + max(0, o))`` (clipped), and whether it lies inside
    the ``T x T`` grid. Arrays of shape ``[T, 2T - 1]``."""
    s = np.arange(T)[:, None]
    o = np.arange(-(T - 1), T)[None, :]
    rows, cols = s + np.maximum(0, -o), s + np.maximum(0, o)
    valid = (rows < T) & (cols < T)
    return np.minimum(rows, T - 1), np.minimum(cols, T - 1), valid


def _unskew_indices(T: int):
    """``(position, diagonal)`` of every step pair ``(t, t')``: arrays of shape ``[T, T]``."""
    t, t_prime = np.arange(T)[:, None], np.arange(T)[None, :]
    return np.minimum(t, t_prime), t_prime - t + T - 1


RULES = {"SimpleRNN": simple_rnn}
