"""Test-suite set-up.

* 8 virtual CPU devices for the sharding tests (the flag must be set before JAX
  initialises its backends, hence at import).
* Strict rank promotion: ``pytest --rank-promotion=raise`` (or the environment
  variable ``JAXDL_RANK_PROMOTION=raise``) runs the whole suite under
  ``jax.config.update('jax_numpy_rank_promotion', 'raise')``, as neural-tangents'
  own tests and careful users do; ``'warn'`` and ``'allow'`` (the default) are
  accepted too.
* XLA's optimisation passes off (``JAX_DISABLE_MOST_OPTIMIZATIONS=1``, inherited
  by the subprocesses that tests start): the suite is dominated by compiling
  thousands of small programs, which this makes about 2x faster, while the
  numbers agree with the optimised build within every test's tolerance. Set
  ``JAX_DISABLE_MOST_OPTIMIZATIONS=0`` to test the optimised build.
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")

RANK_PROMOTION_MODES = ("allow", "warn", "raise")


def pytest_addoption(parser):
    parser.addoption(
        "--rank-promotion",
        choices=RANK_PROMOTION_MODES,
        default=None,
        help="set jax_numpy_rank_promotion for the whole run (default: $JAXDL_RANK_PROMOTION or 'allow')",
    )


def pytest_configure(config):
    mode = config.getoption("--rank-promotion") or os.environ.get("JAXDL_RANK_PROMOTION")
    if mode is None:
        return
    if mode not in RANK_PROMOTION_MODES:
        raise ValueError(f"conftest: expected JAXDL_RANK_PROMOTION in {RANK_PROMOTION_MODES}, got {mode!r}")
    import jax

    jax.config.update("jax_numpy_rank_promotion", mode)
