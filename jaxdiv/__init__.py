"""jaxdiv: divergences and distances between probability distributions, as pure JAX functions.

Every function is pure and goes through ``jax.jit``, ``jax.vmap`` and ``jax.grad``. Units are
nats (``base=2`` for bits); ``(p, q)`` reads D(p || q) with ``p`` the reference distribution.
"""

from importlib.metadata import PackageNotFoundError, version

from jaxdiv._checks import checked
from jaxdiv.discrete import (
    binary_entropy,
    cross_entropy,
    cross_entropy_with_logits,
    entropy,
    entropy_with_logits,
    information,
    js_divergence,
    js_divergence_with_logits,
    kl_divergence,
    kl_divergence_with_logits,
)

try:
    __version__ = version("jaxdiv")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "__version__",
    "binary_entropy",
    "checked",
    "cross_entropy",
    "cross_entropy_with_logits",
    "entropy",
    "entropy_with_logits",
    "information",
    "js_divergence",
    "js_divergence_with_logits",
    "kl_divergence",
    "kl_divergence_with_logits",
]
