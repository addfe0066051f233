"""``jaxdl.theory``: the course's theorems as functions you can measure.

* :mod:`~jaxdl.theory.convergence`: L-smoothness (Hessian eigenvalues),
  Polyak-Łojasiewicz ratios, GD rates, sharpness, SGD gradient variance.
* :mod:`~jaxdl.theory.capacity`: Cover's function counting, linear
  separability, Novikoff's perceptron bound, Hopfield capacity.
* :mod:`~jaxdl.theory.regions`: linear regions of ReLU networks (Zaslavsky,
  Montúfar) and their count on a grid.
* :mod:`~jaxdl.theory.approximation`: universal approximation by one hidden layer.
"""

from jaxdl.classic.perceptron import geometric_margin
from jaxdl.theory.approximation import relu_interpolant, universal_approximation
from jaxdl.theory.capacity import (
    cover_count,
    cover_fraction,
    hopfield_bit_error_probability,
    hopfield_capacity,
    hopfield_patterns_for_error,
    is_linearly_separable,
    perceptron_mistake_bound,
)
from jaxdl.theory.convergence import (
    condition_number,
    gd_convergence_bound,
    hessian_eigenvalues,
    hessian_top_eigenvalue,
    pl_ratio,
    sgd_gradient_variance,
    sharpness_along_run,
    steps_to_eps_critical,
)
from jaxdl.theory.regions import (
    count_linear_regions,
    layerwise_region_bound,
    line_arrangement_regions,
    linear_region_labels,
    montufar_bound,
    montufar_network,
    zaslavsky_bound,
)

__all__ = [
    "condition_number", "count_linear_regions", "cover_count", "cover_fraction",
    "gd_convergence_bound", "geometric_margin", "hessian_eigenvalues", "hessian_top_eigenvalue",
    "hopfield_bit_error_probability", "hopfield_capacity", "hopfield_patterns_for_error",
    "is_linearly_separable", "layerwise_region_bound", "line_arrangement_regions",
    "linear_region_labels", "montufar_bound", "montufar_network", "perceptron_mistake_bound",
    "pl_ratio", "relu_interpolant", "sgd_gradient_variance", "sharpness_along_run",
    "steps_to_eps_critical", "universal_approximation", "zaslavsky_bound",
]  # fmt: skip
