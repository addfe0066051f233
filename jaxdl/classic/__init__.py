"""Classic models: threshold units, the perceptron, Hopfield networks and linear models.

The seeds' first chapters as pure JAX functions: McCulloch-Pitts units,
Rosenblatt's perceptron with margins and version spaces, Hopfield associative
memories, least squares (pseudo-inverse, ridge, SGD), canonical-link GLMs and
logistic/softmax regression.
"""

from jaxdl.classic._newton import ConvexFit
from jaxdl.classic.glm import BERNOULLI, GAUSSIAN, POISSON, GLMFamily, glm_fit, glm_gradient, glm_mean
from jaxdl.classic.hopfield import hopfield_crosstalk, hopfield_energy, hopfield_recall, hopfield_store
from jaxdl.classic.linear import (
    least_squares_gradient,
    least_squares_loss,
    least_squares_sgd,
    linear_regression,
    logistic_regression,
    ridge_regression,
    softmax_regression,
    softmax_regression_loss,
)
from jaxdl.classic.perceptron import (
    geometric_margin,
    in_version_space,
    mcculloch_pitts,
    perceptron_fit,
    perceptron_predict,
)

__all__ = [
    "ConvexFit",
    "GLMFamily",
    "GAUSSIAN",
    "BERNOULLI",
    "POISSON",
    "glm_fit",
    "glm_gradient",
    "glm_mean",
    "hopfield_store",
    "hopfield_energy",
    "hopfield_recall",
    "hopfield_crosstalk",
    "linear_regression",
    "ridge_regression",
    "least_squares_loss",
    "least_squares_gradient",
    "least_squares_sgd",
    "logistic_regression",
    "softmax_regression",
    "softmax_regression_loss",
    "mcculloch_pitts",
    "perceptron_predict",
    "perceptron_fit",
    "geometric_margin",
    "in_version_space",
]
