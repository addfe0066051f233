#!/usr/bin/env bash
# Create benchmarks/.legacy-env: a pinned Python 3.11 environment in which
# neural-tangents 0.6.5 (NT) imports, used only as an oracle (fixtures in
# tests/fixtures/nt/) and as the peer in side-by-side benchmarks.
#
# Recipe (the lightest one that makes `import neural_tangents` work):
#   * NT 0.6.5 declares tensorflow and tf2jax as hard dependencies, but only
#     `neural_tangents.experimental.empirical_tf` imports tensorflow, and
#     `import neural_tangents` (stax, predict, empirical, monte_carlo,
#     batching) never imports it.  So NT is installed with --no-deps and its
#     real runtime dependencies are listed by hand:
#       jax==0.4.30, jaxlib==0.4.30 (pulls ml_dtypes, opt_einsum),
#       numpy<2 (jaxlib 0.4.30 is built against numpy 1.x),
#       scipy<1.14 (imported by NT's predict.py and stax/elementwise.py;
#                   1.13 is the last series built for numpy 1.x),
#       frozendict (imported by NT's stax combinators and requirements).
#   * Nothing else: no tensorflow, no tf2jax, no absl (about 2 GB saved).
#     The one place that needs them is `neural_tangents/experimental/
#     __init__.py`, which NT's top-level __init__ imports eagerly and which
#     re-exports `empirical_ntk_fn_tf` (a TF->JAX bridge via jax2tf/tf2jax,
#     needing tensorflow at import time).  jaxdl never uses that bridge, so
#     after installing, this script rewrites that one file so that its two
#     re-exports are skipped when tensorflow is absent.  NT's stax, predict,
#     empirical, monte_carlo and batching code is left untouched.
# Idempotent: an existing environment with the right versions is reused.
# Usage: bash benchmarks/legacy_env.sh  (prints the versions at the end)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
env_dir="$here/.legacy-env"
python_bin="${LEGACY_PYTHON:-python3.11}"

if [ ! -x "$env_dir/bin/python" ]; then
  "$python_bin" -m venv "$env_dir"
fi
py="$env_dir/bin/python"

if ! "$py" -c "import neural_tangents, jax; assert jax.__version__ == '0.4.30'" 2>/dev/null; then
  "$py" -m pip install --quiet --upgrade pip
  "$py" -m pip install --quiet \
    "jax==0.4.30" "jaxlib==0.4.30" "numpy<2" "scipy<1.14" "frozendict>=2.3.8"
  "$py" -m pip install --quiet --no-deps "neural-tangents==0.6.5"
fi

# Make NT's TF-only `experimental` subpackage optional (see the header).
"$py" - <<'PY'
import importlib.util, pathlib
spec = importlib.util.find_spec("neural_tangents")
init = pathlib.Path(spec.origin).parent / "experimental" / "__init__.py"
marker = "# jaxdl legacy env: TF bridge made optional"
text = init.read_text()
if marker not in text:
    original = "from .empirical_tf.empirical import empirical_ntk_fn_tf\n" \
               "from .empirical_tf.empirical import get_apply_fn_and_params\n"
    assert original in text, f"unexpected content in {init}"
    init.write_text(text.replace(original, marker + "\n"
        "try:\n"
        "  from .empirical_tf.empirical import empirical_ntk_fn_tf\n"
        "  from .empirical_tf.empirical import get_apply_fn_and_params\n"
        "except ImportError:  # tensorflow / tf2jax / absl not installed\n"
        "  pass\n"))
PY

"$py" - <<'PY'
import sys
import jax, jaxlib, numpy, scipy, frozendict
import neural_tangents as nt
print(f"python {sys.version.split()[0]} at {sys.executable}")
for name, mod in [("jax", jax), ("jaxlib", jaxlib), ("numpy", numpy), ("scipy", scipy),
                  ("frozendict", frozendict), ("neural_tangents", nt)]:
    print(f"{name}=={mod.__version__}")
PY
