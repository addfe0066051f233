"""The linear recurrent unit (LRU; Orvieto et al., 2023), the seeds' *linear recurrent model*.

The seeds (recurrent chapter, "Linear recurrent models"): a linear state evolution
``z_{t+1} = A z_t + B x_t`` diagonalised, ``A = P Λ P^{-1}`` with
``Λ = diag(λ_1, ..., λ_m)``, ``λ_j ∈ C``; it is stable when ``max_j |λ_j| <= 1``;
the eigenvalues are parameterised as ``λ_j = exp(-exp(ν_j) + i θ_j)`` so that
``|λ_j| = exp(-exp(ν_j)) ∈ (0, 1)`` for *every* real ``ν_j``, and initialised with
``r_j ~ Uni[I]``, ``I ⊆ [0, 1]``, ``e^{ν_j} = -ln r_j`` and ``θ_j ~ Uni[0, 2π]``.
Its advantages: clear long/short range dependencies, no channel mixing in time,
and training parallel over time (a prefix scan, ``O(log T)`` depth).

This layer, on inputs ``x`` of shape ``(batch, time, features)``::

    λ   = exp(-exp(ν) + i exp(θ))                  (phase log-parameterised, as Orvieto et al.)
    h_t = λ ⊙ h_{t-1} + γ ⊙ (x_t B),   h_0 = 0     (B complex: B_re + i B_im)
    y_t = Re(h_t C) + x_t D                        (C complex, D real)

with ``γ = exp(γ_log)`` a trained per-state input normalisation initialised to
``sqrt(1 - |λ|²)``, so that a unit-variance white-noise input gives a state of
unit variance whatever ``|λ|`` (Orvieto et al.'s normalisation).

Initialisation (``radius_distribution``):

* ``"uniform"`` (default, the seeds): ``|λ| = r ~ Uni[r_min, r_max]``;
* ``"ring"`` (Orvieto et al.'s Lemma 3.2): ``λ`` uniform on the *area* of the ring
  ``r_min <= |λ| <= r_max``, i.e. ``r = sqrt(u (r_max² - r_min²) + r_min²)``,
  ``u ~ Uni[0, 1]``;

and the phase ``arg λ ~ Uni[0, max_phase]`` in both. ``B_re, B_im ~ N(0, 1/(2 d_in))``,
``C_re, C_im ~ N(0, 1/d_state)``, ``D ~ N(0, 1/d_in)``.

Two evaluation modes give the same numbers (to float rounding): ``"parallel"``
runs the recurrence as ``jax.lax.associative_scan`` over the pairs
``(λ, u_t)`` with ``(a, b) ∘ (a', b') = (a' a, a' b + b')`` (log-depth in ``T``);
``"sequential"`` runs it as ``jax.lax.scan`` (linear depth, constant memory per
step). :func:`lru_step` is the one-step recurrence for generation and
:func:`initial_state` its zero state. Written by hand because neither flax nor
optax ships an LRU.

Numerical guards (documented, both inactive for any value an initialisation or a
sane training run produces): ``ν`` is capped where ``exp(-exp(ν))`` underflows to
0 anyway (beyond, ``|λ| = 0`` exactly and its gradient is 0 instead of NaN), and
``θ`` at ``log(2π / ε)`` (``ε`` the dtype's machine epsilon), beyond which the
phase ``exp(θ)`` has an ulp larger than a full turn and carries no information
(and ``exp(θ)`` would overflow to ``inf``, making ``cos`` NaN). The sampled
radius is kept inside ``[tiny, 1 - ε/2]`` so that ``ν`` is finite.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from jaxdl.stax.layer import (
    LayerSpec,
    check_array,
    check_choice,
    check_key,
    check_positive_int,
    check_shape,
    make_layer,
)

MODES = ("parallel", "sequential")
RADIUS_DISTRIBUTIONS = ("uniform", "ring")
PARAM_NAMES = ("nu", "theta", "gamma_log", "B_re", "B_im", "C_re", "C_im", "D")


# --- the parameterisation ---------------------------------------------------------


def _real_dtype(params):
    return jnp.result_type(params["nu"])


def _guarded(params):
    """``(ν, θ)`` with the numerical caps of the module docstring."""
    dtype = _real_dtype(params)
    finfo = jnp.finfo(dtype)
    nu_max = math.log(-math.log(float(finfo.tiny)))  # exp(-exp(nu)) == 0 beyond
    theta_max = math.log(2 * math.pi / float(finfo.eps))  # ulp of exp(theta) > 2π beyond
    return jnp.minimum(params["nu"], nu_max), jnp.minimum(params["theta"], theta_max)


def modulus(params) -> jax.Array:
    """``|λ| = exp(-exp(ν))`` (real, ``(d_state,)``): in ``(0, 1)`` for every real ``ν``
    (in floating point ``[0, 1]``: exactly 1 only once ``exp(ν)`` is below the ulp of 1)."""
    return jnp.exp(-jnp.exp(_guarded(params)[0]))


def eigenvalues(params) -> jax.Array:
    """The diagonal ``λ = exp(-exp(ν) + i exp(θ)) = |λ| (cos φ + i sin φ)``, ``φ = exp(θ)``, of the
    recurrence (complex, ``(d_state,)``). Built in polar form from :func:`modulus`, so
    the complex ``abs`` exceeds ``|λ|`` by at most a rounding error."""
    phase = jnp.exp(_guarded(params)[1])
    return modulus(params) * jax.lax.complex(jnp.cos(phase), jnp.sin(phase))


def _complex(re, im):
    return jax.lax.complex(re, im)


def _check_params(where: str, params) -> None:
    if not isinstance(params, dict) or set(params) != set(PARAM_NAMES):
        got = sorted(params) if isinstance(params, dict) else type(params).__name__
        raise TypeError(f"{where}: expected LRU params with entries {list(PARAM_NAMES)}, got {got}")


def _input_projection(params, x):
    """``γ ⊙ (x B)`` (complex), for ``x`` of shape ``(..., d_in)``."""
    u = _complex(x @ params["B_re"], x @ params["B_im"])
    gamma = jnp.exp(params["gamma_log"]).reshape((1,) * (u.ndim - 1) + (-1,))
    return u * gamma.astype(u.dtype)


def _readout(params, h, x):
    """``Re(h C) + x D``."""
    return h.real @ params["C_re"] - h.imag @ params["C_im"] + x @ params["D"]


def _as_float(x, params):
    """``x`` cast to the computation dtype: the params' float dtype, or wider when ``x`` is."""
    dtype = _real_dtype(params)
    if jnp.issubdtype(x.dtype, jnp.floating):
        dtype = jnp.promote_types(x.dtype, dtype)
    return x.astype(dtype)


# --- evaluation ---------------------------------------------------------------------


def initial_state(params, batch_size: int) -> jax.Array:
    """The zero state ``h_0`` (complex, ``(batch_size, d_state)``) for :func:`lru_step`."""
    _check_params("initial_state", params)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 0:
        raise ValueError(f"initial_state: expected batch_size to be an int >= 0, got {batch_size!r}")
    dtype = jnp.result_type(_real_dtype(params), jnp.complex64)
    return jnp.zeros((batch_size, params["nu"].shape[0]), dtype)


def lru_step(params, h, x_t):
    """One step of the recurrence: ``(h_{t-1}, x_t) -> (h_t, y_t)`` with
    ``h_t = λ ⊙ h_{t-1} + γ ⊙ (x_t B)`` and ``y_t = Re(h_t C) + x_t D``.

    ``h``: ``(batch, d_state)`` complex (start from :func:`initial_state`);
    ``x_t``: ``(batch, d_in)``. Used to generate a sequence one token at a time;
    a loop of steps equals :func:`lru_sequence`.
    """
    _check_params("lru_step", params)
    x_t = _as_float(check_array("lru_step", x_t, ndim=2), params)
    d_in, d_state = params["B_re"].shape
    if x_t.shape[-1] != d_in or tuple(getattr(h, "shape", ())) != (x_t.shape[0], d_state):
        raise ValueError(
            f"lru_step: expected h of shape (batch, {d_state}) and x_t of shape (batch, {d_in}), "
            f"got {getattr(h, 'shape', h)!r} and {tuple(x_t.shape)}"
        )
    return _step(params, h, x_t)


@jax.jit
def _step(params, h, x_t):
    u = _input_projection(params, x_t)
    lam = eigenvalues(params).astype(u.dtype)
    h = lam.reshape((1,) * (u.ndim - 1) + (-1,)) * h.astype(u.dtype) + u
    return h, _readout(params, h, x_t)


def _parallel_scan(lam, u):
    """All states ``h_t = λ h_{t-1} + u_t`` (``h_0`` folded into ``u_1``) by a prefix scan over
    time; ``u``: ``(time, batch, d_state)``."""

    def combine(earlier, later):
        a1, b1 = earlier
        a2, b2 = later
        return a2 * a1, a2 * b1 + b2

    a = jnp.broadcast_to(lam, (u.shape[0], 1, lam.shape[-1]))
    return jax.lax.associative_scan(combine, (a, u))[1]


def _sequential_scan(lam, u):
    def step(h, u_t):
        h = lam * h + u_t
        return h, h

    return jax.lax.scan(step, jnp.zeros_like(u[0]), u)[1]


def lru_sequence(params, x, h0=None, mode: str = "parallel"):
    """The LRU over a whole sequence: ``x`` ``(batch, time, d_in)`` -> ``(y, h_T)`` with
    ``y`` ``(batch, time, d_out)`` and ``h_T`` the last state (complex ``(batch, d_state)``,
    to continue with :func:`lru_step`).

    ``h0``: the state before the first step (zeros when ``None``). ``mode``:
    ``"parallel"`` (``associative_scan``) or ``"sequential"`` (``lax.scan``).
    """
    name = "lru_sequence"
    _check_params(name, params)
    mode = check_choice(name, "mode", mode, MODES)
    x = _as_float(check_array(name, x, ndim=3), params)
    d_in, d_state = params["B_re"].shape
    if x.shape[-1] != d_in:
        raise ValueError(f"{name}: expected {d_in} features on the last axis, got input of shape {tuple(x.shape)}")
    batch = x.shape[0]
    if h0 is not None and tuple(getattr(h0, "shape", ())) != (batch, d_state):
        raise ValueError(f"{name}: expected h0 of shape ({batch}, {d_state}), got {getattr(h0, 'shape', h0)!r}")
    return _run(params, x, h0, mode=mode)


# Compiled once per mode and shape: an eager associative_scan would dispatch hundreds of
# small ops on every call; inside a user's jit it is inlined.
@functools.partial(jax.jit, static_argnames=("mode",))
def _run(params, x, h0, *, mode):
    batch, time = x.shape[:2]
    u = jnp.swapaxes(_input_projection(params, x), 0, 1)  # (time, batch, d_state)
    lam = eigenvalues(params).astype(u.dtype)[None, :]  # (1, d_state): broadcast over the batch
    h0 = jnp.zeros((batch, lam.shape[1]), u.dtype) if h0 is None else h0.astype(u.dtype)
    if time == 0:
        return _readout(params, jnp.swapaxes(u, 0, 1), x), h0
    u = u.at[0].add(lam * h0)
    h = (_parallel_scan if mode == "parallel" else _sequential_scan)(lam, u)
    h = jnp.swapaxes(h, 0, 1)  # (batch, time, d_state)
    return _readout(params, h, x), h[:, -1]


# --- the layer ------------------------------------------------------------------------


def _check_fraction(name: str, what: str, value, upper: float = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= upper:
        raise ValueError(f"{name}: expected {what} in [0, {upper:g}], got {value!r}")
    return float(value)


def _sample_radius(key, shape, r_min, r_max, distribution, dtype):
    u = jax.random.uniform(key, shape, dtype)
    if distribution == "uniform":
        r = r_min + u * (r_max - r_min)
    else:
        r = jnp.sqrt(u * (r_max**2 - r_min**2) + r_min**2)
    finfo = jnp.finfo(dtype)
    return jnp.clip(r, finfo.tiny, 1.0 - finfo.eps / 2)


# Compiled once per configuration: drawn eagerly, the dozen small ops would each be
# dispatched (and compiled on first use) separately.
@functools.partial(
    jax.jit, static_argnames=("d_in", "d_state", "d_out", "r_min", "r_max", "max_phase", "distribution", "dtype")
)
def _draw_params(key, *, d_in, d_state, d_out, r_min, r_max, max_phase, distribution, dtype):
    """The initial params of the module docstring."""
    keys = jax.random.split(key, 7)
    r = _sample_radius(keys[0], (d_state,), r_min, r_max, distribution, dtype)
    tiny = jnp.finfo(dtype).tiny
    phase = max_phase * jax.random.uniform(keys[1], (d_state,), dtype, minval=tiny, maxval=1.0)
    nu = jnp.log(-jnp.log(r))
    normal = lambda k, shape, std: std * jax.random.normal(k, shape, dtype)
    return {
        "nu": nu,
        "theta": jnp.log(phase),
        # log sqrt(1 - |λ|²) = ½ log(1 - exp(-2 exp ν)), via expm1 for |λ| near 1
        "gamma_log": 0.5 * jnp.log(-jnp.expm1(-2.0 * jnp.exp(nu))),
        "B_re": normal(keys[2], (d_in, d_state), 1 / math.sqrt(2 * d_in)),
        "B_im": normal(keys[3], (d_in, d_state), 1 / math.sqrt(2 * d_in)),
        "C_re": normal(keys[4], (d_state, d_out), 1 / math.sqrt(d_state)),
        "C_im": normal(keys[5], (d_state, d_out), 1 / math.sqrt(d_state)),
        "D": normal(keys[6], (d_in, d_out), 1 / math.sqrt(d_in)),
    }


def LRU(
    d_state: int,
    d_out: int | None = None,
    r_min: float = 0.0,
    r_max: float = 1.0,
    max_phase: float = 2 * math.pi,
    *,
    mode: str = "parallel",
    radius_distribution: str = "uniform",
):
    """Linear recurrent unit on ``(batch, time, features)`` (see the module docstring).

    Args:
      d_state: number of complex state dimensions ``m`` (eigenvalues ``λ_1..λ_m``).
      d_out: output features (``None``: as many as the input has).
      r_min, r_max: the ring ``r_min <= |λ| <= r_max`` of the initial eigenvalues,
        ``0 <= r_min <= r_max <= 1``.
      max_phase: initial phases ``arg λ ~ Uni[0, max_phase]``, ``max_phase > 0``.
      mode: ``"parallel"`` (``associative_scan`` over time) or ``"sequential"`` (``lax.scan``).
      radius_distribution: ``"uniform"`` (``|λ| ~ Uni[r_min, r_max]``, the seeds) or
        ``"ring"`` (``λ`` uniform on the ring's area, Orvieto et al.).

    Params (all real): ``nu``, ``theta``, ``gamma_log`` ``(d_state,)``;
    ``B_re``, ``B_im`` ``(d_in, d_state)``; ``C_re``, ``C_im`` ``(d_state, d_out)``;
    ``D`` ``(d_in, d_out)``. Causal: ``y_t`` depends on ``x_1..x_t`` only.
    No infinite-width kernel (``kernel_fn`` raises ``NotImplementedError``).
    """
    name = "LRU"
    d_state = check_positive_int(name, "d_state", d_state)
    if d_out is not None:
        d_out = check_positive_int(name, "d_out", d_out)
    r_min = _check_fraction(name, "r_min", r_min)
    r_max = _check_fraction(name, "r_max", r_max)
    if r_min > r_max:
        raise ValueError(f"{name}: expected r_min <= r_max, got r_min={r_min} and r_max={r_max}")
    if isinstance(max_phase, bool) or not isinstance(max_phase, (int, float)) or not 0 < max_phase < math.inf:
        raise ValueError(f"{name}: expected max_phase to be a finite float > 0, got {max_phase!r}")
    max_phase = float(max_phase)
    mode = check_choice(name, "mode", mode, MODES)
    radius_distribution = check_choice(name, "radius_distribution", radius_distribution, RADIUS_DISTRIBUTIONS)

    def check_rank(shape):
        if len(shape) != 3:
            raise ValueError(f"{name}: expected input of shape (batch, time, features), got {tuple(shape)}")

    def init_fn(key, input_shape):
        key = check_key(name, key)
        input_shape = check_shape(name, input_shape)
        check_rank(input_shape)
        d_in = input_shape[-1]
        if d_in == -1:
            raise ValueError(f"{name}: the feature axis of input_shape must be known, got -1")
        out = d_in if d_out is None else d_out
        dtype = jnp.zeros(()).dtype  # float32, or float64 under jax_enable_x64
        params = _draw_params(
            key, d_in=d_in, d_state=d_state, d_out=out, r_min=r_min, r_max=r_max,
            max_phase=max_phase, distribution=radius_distribution, dtype=dtype,
        )  # fmt: skip
        return input_shape[:-1] + (out,), params

    def apply_fn(params, x, **kwargs):
        x = check_array(name, x)
        check_rank(x.shape)
        if x.shape[-1] != params["B_re"].shape[0]:
            raise ValueError(
                f"{name}: expected {params['B_re'].shape[0]} features on the last axis, "
                f"got input of shape {tuple(x.shape)}"
            )
        return lru_sequence(params, x, mode=mode)[0]

    spec = LayerSpec(
        name,
        dict(
            d_state=d_state,
            d_out=d_out,
            r_min=r_min,
            r_max=r_max,
            max_phase=max_phase,
            mode=mode,
            radius_distribution=radius_distribution,
        ),
    )
    return make_layer(name, init_fn, apply_fn, spec)
