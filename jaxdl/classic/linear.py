"""Linear models: least squares, ridge, SGD, logistic and softmax regression.

Seed formulas implemented here:

* least squares ``h[w] = 1/(2s) ||X w - y||^2`` with gradient
  ``nabla h = 1/s X^T (X w - y)`` (one seed drops the ``1/s`` and doubles the
  terms; the minimiser is the same), minimised by the Moore-Penrose solution
  ``w* = X^+ y``;
* ridge regression ``w* = (X^T X + lam I)^{-1} X^T y``, the minimiser of
  ``1/2 ||X w - y||^2 + lam/2 ||w||^2``;
* SGD for least squares ``w_{t+1} = w_t + eta (y_i - w_t^T x_i) x_i`` with
  ``i ~ Uniform{1..s}`` i.i.d. (``optax.sgd`` on the one-example loss);
* logistic regression: the Bernoulli GLM of :mod:`jaxdl.classic.glm`;
* multinomial (softmax) regression ``p(y | x) = softmax(W^T x)_y`` with loss
  ``-z_y + log sum_i exp z_i``, gradient ``p - e_y`` per example and the
  softmax Jacobian ``diag(p) - p p^T`` in the Hessian.

The convex fits run damped Newton steps (:mod:`jaxdl.classic._newton`).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import optax

from jaxdl.classic._checks import as_float_array, check_finite, check_nonnegative, check_positive_int, check_rows
from jaxdl.classic._newton import ConvexFit, default_tolerance, newton_minimize
from jaxdl.classic.glm import BERNOULLI, glm_fit

__all__ = [
    "linear_regression",
    "ridge_regression",
    "least_squares_loss",
    "least_squares_gradient",
    "least_squares_sgd",
    "logistic_regression",
    "softmax_regression",
    "softmax_regression_loss",
]


def _check_regression(fn: str, X, y):
    X = as_float_array(fn, "X", X, 2)
    y = as_float_array(fn, "y", y, (1, 2)).astype(X.dtype)
    check_rows(fn, X, y)
    check_finite(fn, "X", X)
    check_finite(fn, "y", y)
    return X, y


def linear_regression(X, y):
    """Least squares by the pseudo-inverse: ``w* = X^+ y`` (minimum-norm if not unique).

    Args:
      X: f32[s, n]; y: f32[s] or f32[s, k].

    Returns:
      f32[n] or f32[n, k].
    """
    X, y = _check_regression("linear_regression", X, y)
    return jnp.linalg.pinv(X) @ y


def ridge_regression(X, y, lam: float):
    """``w* = (X^T X + lam I)^{-1} X^T y`` for ``lam > 0``.

    Solved in the dual form ``X^T (X X^T + lam I)^{-1} y`` when ``n > s``
    (the same vector, a smaller system).

    Args:
      X: f32[s, n]; y: f32[s] or f32[s, k]; lam: penalty ``> 0`` (use
        :func:`linear_regression` for ``lam = 0``).

    Returns:
      f32[n] or f32[n, k].
    """
    fn = "ridge_regression"
    X, y = _check_regression(fn, X, y)
    lam = check_nonnegative(fn, "lam", lam, strict=True)
    s, n = X.shape
    if n <= s:
        return jax.scipy.linalg.solve(X.T @ X + lam * jnp.eye(n, dtype=X.dtype), X.T @ y, assume_a="pos")
    return X.T @ jax.scipy.linalg.solve(X @ X.T + lam * jnp.eye(s, dtype=X.dtype), y, assume_a="pos")


def least_squares_loss(w, X, y):
    """``h[w] = 1/(2s) ||X w - y||^2``."""
    return 0.5 * jnp.sum((X @ w - y) ** 2) / X.shape[0]


def least_squares_gradient(w, X, y):
    """``nabla h[w] = 1/s X^T (X w - y)``."""
    return X.T @ (X @ w - y) / X.shape[0]


def least_squares_sgd(X, y, *, key, learning_rate: float, num_steps: int, w0=None):
    """SGD on least squares: ``w <- w + eta (y_i - w^T x_i) x_i``, ``i`` uniform i.i.d.

    Args:
      X: f32[s, n]; y: f32[s].
      key: PRNG key (``jax.random.key`` or legacy ``PRNGKey``) drawing the indices.
      learning_rate: ``eta > 0``; the iteration is stable for
        ``eta < 2 / max_i ||x_i||^2``.
      num_steps: number of single-example updates.
      w0: optional f32[n] start (default zero).

    Returns:
      f32[n] the last iterate.
    """
    fn = "least_squares_sgd"
    X = as_float_array(fn, "X", X, 2)
    y = as_float_array(fn, "y", y, 1).astype(X.dtype)
    check_rows(fn, X, y)
    learning_rate = check_nonnegative(fn, "learning_rate", learning_rate, strict=True)
    num_steps = check_positive_int(fn, "num_steps", num_steps)
    w = jnp.zeros(X.shape[1], X.dtype) if w0 is None else as_float_array(fn, "w0", w0, 1).astype(X.dtype)
    if w.shape != (X.shape[1],):
        raise ValueError(f"{fn}: expected w0 of shape ({X.shape[1]},), got {w.shape}")
    indices = jax.random.randint(key, (num_steps,), 0, X.shape[0])
    optimizer = optax.sgd(learning_rate)

    def step(state, i):
        w, opt_state = state
        residual = y[i] - w @ X[i]
        updates, opt_state = optimizer.update(-residual * X[i], opt_state)
        return (optax.apply_updates(w, updates), opt_state), None

    (w, _), _ = jax.lax.scan(step, (w, optimizer.init(w)), indices)
    return w


def logistic_regression(X, y, lam: float, *, max_steps: int = 100, tol: float | None = None) -> ConvexFit:
    """Logistic regression: minimise the mean cross-entropy plus ``lam/2 ||w||^2``.

    The Bernoulli GLM with logit link (:func:`jaxdl.classic.glm.glm_fit`):
    gradient ``1/s sum_i [sigma(w^T x_i) - y_i] x_i + lam w``.

    Args:
      X: f32[s, n] (append ones for an intercept); y: f32[s] labels in {0, 1}.
      lam: L2 penalty ``>= 0`` (separable data needs ``lam > 0`` for a finite fit).

    Returns:
      :class:`ConvexFit` with ``params = w``: f32[n].
    """
    return glm_fit(X, y, BERNOULLI, lam, max_steps=max_steps, tol=tol)


def _check_labels(fn: str, y, num_classes: int):
    y = jnp.asarray(y)
    if y.ndim != 1 or not jnp.issubdtype(y.dtype, jnp.integer):
        raise TypeError(f"{fn}: expected y to be integer class labels of shape [s], got {y.dtype}{list(y.shape)}")
    try:
        bad = bool(jnp.any((y < 0) | (y >= num_classes)))
    except jax.errors.ConcretizationTypeError:
        bad = False
    if bad:
        raise ValueError(f"{fn}: expected labels in [0, {num_classes}), got values outside")
    return y


def softmax_regression_loss(W, X, y, lam: float = 0.0):
    """Mean of ``-z_y + log sum_i exp z_i`` with ``z = W^T x``, plus ``lam/2 ||W||^2``.

    Args:
      W: f32[n, k]; X: f32[s, n]; y: i32[s]; lam: L2 penalty.
    """
    logits = X @ W
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y)) + 0.5 * lam * jnp.sum(W**2)


def softmax_regression(X, y, num_classes: int, lam: float, *, max_steps: int = 100, tol: float | None = None):
    """Multinomial logistic regression by Newton's method.

    Minimises :func:`softmax_regression_loss`. ``lam > 0`` is required: the
    softmax model is over-parameterised (adding one vector to every column of
    ``W`` changes nothing), so without the penalty there is no unique minimiser.

    Args:
      X: f32[s, n] (append ones for intercepts); y: i32[s] labels in
        ``[0, num_classes)``; num_classes: ``k >= 2``; lam: penalty ``> 0``.

    Returns:
      :class:`ConvexFit` with ``params = W``: f32[n, k].
    """
    fn = "softmax_regression"
    X = as_float_array(fn, "X", X, 2)
    check_finite(fn, "X", X)
    num_classes = check_positive_int(fn, "num_classes", num_classes)
    if num_classes < 2:
        raise ValueError(f"{fn}: expected num_classes >= 2, got {num_classes}")
    y = _check_labels(fn, y, num_classes)
    check_rows(fn, X, y)
    lam = check_nonnegative(fn, "lam", lam, strict=True)
    max_steps = check_positive_int(fn, "max_steps", max_steps)
    tol = default_tolerance(X.dtype) if tol is None else check_nonnegative(fn, "tol", tol, strict=True)
    return _softmax_regression(X, y, num_classes, lam, max_steps, tol)


@partial(jax.jit, static_argnums=(2, 4))
def _softmax_regression(X, y, k: int, lam, max_steps: int, tol) -> ConvexFit:
    s, n = X.shape
    onehot = jax.nn.one_hot(y, k, dtype=X.dtype)

    def objective(flat):
        return softmax_regression_loss(flat.reshape(n, k), X, y, lam)

    def gradient(flat):
        W = flat.reshape(n, k)
        probs = jax.nn.softmax(X @ W, axis=-1)
        return (X.T @ (probs - onehot) / s + lam * W).ravel()

    def hessian(flat):
        probs = jax.nn.softmax(X @ flat.reshape(n, k), axis=-1)
        jacobians = jax.vmap(jnp.diag)(probs) - probs[:, :, None] * probs[:, None, :]  # diag(p) - p p^T
        blocks = jnp.einsum("ia,ib,icd->acbd", X, X, jacobians) / s
        return blocks.reshape(n * k, n * k) + lam * jnp.eye(n * k, dtype=X.dtype)

    fit = newton_minimize(objective, gradient, hessian, jnp.zeros(n * k, X.dtype), max_steps=max_steps, tol=tol)
    return fit._replace(params=fit.params.reshape(n, k))
