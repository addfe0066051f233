"""``jaxdl.kernels``: infinite-width and empirical kernels, a drop-in for
``import neural_tangents as nt``.

``Kernel`` is neural-tangents' kernel container; every ``jaxdl.stax`` layer's
``kernel_fn`` computes the analytic NNGP/NTK (see :mod:`jaxdl.kernels.analytic`);
``empirical_*_fn`` compute the kernels of finite networks, ``batch`` computes
big kernels block by block over devices, ``predict`` the training dynamics::

    import jaxdl.kernels as nt
    _, _, kernel_fn = nt.stax.serial(nt.stax.Dense(512), nt.stax.Relu(), nt.stax.Dense(1))
    ntk = kernel_fn(x1, x2, "ntk")
"""

from jaxdl import predict
from jaxdl.kernels.batching import batch
from jaxdl.kernels.empirical import (
    NtkImplementation,
    empirical_kernel_fn,
    empirical_nngp_fn,
    empirical_ntk_fn,
    empirical_ntk_vp_fn,
    linearize,
    taylor_expand,
)
from jaxdl.kernels.kernel import Kernel
from jaxdl.kernels.monte_carlo import monte_carlo_kernel_fn

__all__ = [
    "Kernel", "NtkImplementation", "batch", "empirical_kernel_fn", "empirical_nngp_fn",
    "empirical_ntk_fn", "empirical_ntk_vp_fn", "linearize", "monte_carlo_kernel_fn", "predict",
    "stax", "taylor_expand",
]  # fmt: skip

from jaxdl import stax  # noqa: E402  (jaxdl.stax's kernel_fns import this package lazily)
