"""Bridges between jaxdl models and other JAX libraries (``jaxdl.interop.flax``)."""
