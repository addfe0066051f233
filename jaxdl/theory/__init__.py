"""``jaxdl.theory``: the course's theorems as functions you can measure.

* :mod:`~jaxdl.theory.convergence`: L-smoothness (Hessian eigenvalues),
  Polyak-Łojasiewicz ratios, GD rates, sharpness, SGD gradient variance.
* :mod:`~jaxdl.theory.capacity`: Cover's function counting, linear
  separability, Novikoff's perceptron bound, Hopfield capacity.
* :mod:`~jaxdl.theory.bounds`: shattering and brute-force VC dimensions, the VC
  inequality, Rademacher complexity, PAC-Bayes bounds (seeds', McAllester, Catoni,
  kl-inverted) and the PAC-Bayes objective for Gaussian posteriors over stax params.
* :mod:`~jaxdl.theory.regions`: linear regions of ReLU networks (Zaslavsky,
  Montúfar) and their count on a grid.
* :mod:`~jaxdl.theory.approximation`: universal approximation by one hidden layer.
* :mod:`~jaxdl.theory.convolution`: convolution as a (doubly-block) Toeplitz
  matrix and as a Fourier product, receptive fields of stax models, parameter
  counts of conv vs locally- vs fully-connected layers.
* :mod:`~jaxdl.theory.regularization`: weight decay's shrinkage
  ``lambda_i / (lambda_i + mu)`` along the Hessian's eigendirections.
* :mod:`~jaxdl.theory.generalization`: random features, NTK features, min-norm least
  squares (double descent), the bias-variance decomposition.
* :mod:`~jaxdl.theory.landscape`: paths between minima (line, trained Bézier curve), loss
  barriers, sharpness, magnitude pruning and lottery tickets.
"""

from jaxdl.classic.perceptron import geometric_margin
from jaxdl.theory.approximation import relu_interpolant, universal_approximation
from jaxdl.theory.bounds import (
    catoni_bound,
    kl_inverse,
    mcallester_bound,
    pac_bayes_seed_bound,
    seeger_bound,
    shatters,
    vc_dimension,
    vc_generalization_bound,
)
from jaxdl.theory.capacity import (
    cover_count,
    cover_fraction,
    hopfield_bit_error_probability,
    hopfield_capacity,
    hopfield_patterns_for_error,
    is_linearly_separable,
    perceptron_mistake_bound,
)
from jaxdl.theory.convolution import (
    ReceptiveField,
    conv1d_matrix,
    conv2d_matrix,
    conv_matrix,
    count_params,
    fft_conv,
    param_counts,
    receptive_field,
    toeplitz_matrix,
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
from jaxdl.theory.generalization import (
    bias_variance_decomposition,
    min_norm_regression,
    ntk_features,
    random_features,
)
from jaxdl.theory.landscape import (
    bezier_curve,
    fit_bezier,
    iterative_magnitude_pruning,
    loss_along_path,
    loss_barrier,
    magnitude_prune,
)
from jaxdl.theory.regularization import weight_decay_minimizer, weight_decay_shrinkage
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
    "ReceptiveField", "conv1d_matrix", "conv2d_matrix", "conv_matrix", "count_params", "fft_conv",
    "param_counts", "receptive_field", "toeplitz_matrix",
    "weight_decay_minimizer", "weight_decay_shrinkage",
    "bias_variance_decomposition", "min_norm_regression", "ntk_features", "random_features",
    "bezier_curve", "fit_bezier", "iterative_magnitude_pruning", "loss_along_path", "loss_barrier",
    "magnitude_prune",
]  # fmt: skip
__all__ += ["catoni_bound", "kl_inverse", "mcallester_bound", "pac_bayes_seed_bound", "seeger_bound",
            "shatters", "vc_dimension", "vc_generalization_bound"]  # fmt: skip
