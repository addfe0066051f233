"""``jaxdl.robust``: adversarial robustness for any ``logits_fn(params, x)``.

The seeds' robustness chapter as code: attacks (:mod:`~jaxdl.robust.attacks`: FGSM,
PGD, DeepFool, also against the closed-form infinite-width predictors), robust
training through ``train.fit`` (:mod:`~jaxdl.robust.training`: PGD adversarial
training, TRADES, IBP certified training) and certification
(:mod:`~jaxdl.robust.ibp`: interval bound propagation through stax models;
:mod:`~jaxdl.robust.smoothing`: randomized smoothing)::

    from jaxdl import robust
    x_adv = robust.pgd(model.apply, params, x, y, key, eps=0.1, norm="linf", domain=(0.0, 1.0))
    lower, upper = robust.ibp_bounds(model, params, x, 0.01)
"""

from jaxdl.robust.attacks import (
    accuracy,
    cross_entropy,
    deepfool,
    fgsm,
    margin_loss,
    pgd,
    predict,
    predictor_logits,
    project,
    random_in_ball,
)
from jaxdl.robust.ibp import (
    ibp_bounds,
    ibp_certified,
    ibp_certified_accuracy,
    ibp_loss,
    interval_bounds,
    worst_case_logits,
)
from jaxdl.robust.smoothing import (
    ABSTAIN,
    binomial_two_sided_p_value,
    certified_accuracy,
    certify,
    clopper_pearson_lower,
    sample_counts,
    smooth_predict,
)
from jaxdl.robust.training import adversarial_objective, ibp_objective, trades_objective

__all__ = [
    "ABSTAIN", "accuracy", "adversarial_objective", "binomial_two_sided_p_value", "certified_accuracy", "certify",
    "clopper_pearson_lower", "cross_entropy", "deepfool", "fgsm", "ibp_bounds", "ibp_certified",
    "ibp_certified_accuracy", "ibp_loss", "ibp_objective", "interval_bounds", "margin_loss", "pgd", "predict",
    "predictor_logits", "project", "random_in_ball", "sample_counts", "smooth_predict", "trades_objective",
    "worst_case_logits",
]  # fmt: skip
