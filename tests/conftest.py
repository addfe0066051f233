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
* Heavy cases: besides the tests decorated ``@pytest.mark.slow``, the cases listed
  in ``tests/heavy_cases.txt`` (one ``seconds node-id`` per line, the seconds as
  measured in a full run on 2 cores) are marked ``slow`` at collection, so that the
  default run stays under 15 minutes; ``pytest -m slow`` runs them.
"""

import os
from pathlib import Path

import pytest

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")

RANK_PROMOTION_MODES = ("allow", "warn", "raise")
HEAVY_CASES_FILE = Path(__file__).with_name("heavy_cases.txt")


def _heavy_case_ids() -> set[str]:
    if not HEAVY_CASES_FILE.exists():
        return set()
    ids = set()
    for line in HEAVY_CASES_FILE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            ids.add(line.split(maxsplit=1)[1])
    return ids


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


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    heavy = _heavy_case_ids()
    for item in items:
        if item.nodeid in heavy:
            item.add_marker(pytest.mark.slow)
