"""Test-suite set-up: 8 virtual CPU devices for the sharding tests.

The flag must be set before JAX initialises its backends, hence at import.
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
