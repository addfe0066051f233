"""``jaxdl.kernels``: infinite-width kernels, a drop-in for ``import neural_tangents as nt``.

``Kernel`` is neural-tangents' kernel container; every ``jaxdl.stax`` layer's
``kernel_fn`` computes the analytic NNGP/NTK (see :mod:`jaxdl.kernels.analytic`)::

    import jaxdl.kernels as nt
    _, _, kernel_fn = nt.stax.serial(nt.stax.Dense(512), nt.stax.Relu(), nt.stax.Dense(1))
    ntk = kernel_fn(x1, x2, "ntk")
"""

from jaxdl.kernels.kernel import Kernel
from jaxdl.kernels.monte_carlo import monte_carlo_kernel_fn

__all__ = ["Kernel", "monte_carlo_kernel_fn", "stax"]

from jaxdl import stax  # noqa: E402  (jaxdl.stax's kernel_fns import this package lazily)
