"""jaxdl: a functional JAX toolkit for deep-learning research.

Models are stax triples ``(init_fn, apply_fn, kernel_fn)`` (see ``jaxdl.stax``);
everything else in the package consumes an ``apply_fn(params, x)``.
"""

__version__ = "0.1.0"
