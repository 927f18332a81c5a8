"""jaxdiv: divergences and distances between probability distributions, as pure JAX functions.

Every function is pure and goes through ``jax.jit``, ``jax.vmap`` and ``jax.grad``. Units are
nats (``base=2`` for bits); ``(p, q)`` reads D(p || q) with ``p`` the reference distribution.
Monte Carlo and quadrature estimators between densities live in ``jaxdiv.estimators``;
model-facing loss blocks in ``jaxdiv.losses``.

The namespace is ``__all__``: the functions and classes below, ``__version__``, and the two
public subpackages ``jaxdiv.estimators`` and ``jaxdiv.losses`` (``dir(jaxdiv)`` lists exactly
these). The modules that define them (``jaxdiv.discrete``, ``jaxdiv.fitting``, ...) stay
importable under their own names, for documentation links, but are not part of the interface:
import from ``jaxdiv``. ``jaxdiv.fit`` is the fitting function; its module is ``jaxdiv.fitting``.
"""

from importlib import metadata as _metadata

from jaxdiv import estimators, losses
from jaxdiv._checks import checked, value_checks
from jaxdiv.closed_forms import closed_form_kl, gaussian_kl, gaussian_w2
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
from jaxdiv.distributions import Mixture, MultivariateNormal, Normal
from jaxdiv.fdiv import (
    alpha_divergence,
    alpha_divergence_with_logits,
    chi_square_divergence,
    f_divergence,
    hellinger_distance,
    jeffreys_divergence,
    renyi_divergence,
    renyi_divergence_with_logits,
    total_variation,
)
from jaxdiv.fitting import fit, sweep
from jaxdiv.sample_distances import energy_distance, mmd, sliced_wasserstein, wasserstein_1d
from jaxdiv.transport import SinkhornResult, sinkhorn, sinkhorn_divergence

try:
    __version__ = _metadata.version("jaxdiv")
except _metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
del _metadata

__all__ = [
    "Mixture",
    "MultivariateNormal",
    "Normal",
    "SinkhornResult",
    "__version__",
    "alpha_divergence",
    "alpha_divergence_with_logits",
    "binary_entropy",
    "checked",
    "chi_square_divergence",
    "closed_form_kl",
    "cross_entropy",
    "cross_entropy_with_logits",
    "energy_distance",
    "entropy",
    "entropy_with_logits",
    "estimators",
    "f_divergence",
    "fit",
    "gaussian_kl",
    "gaussian_w2",
    "hellinger_distance",
    "information",
    "jeffreys_divergence",
    "js_divergence",
    "js_divergence_with_logits",
    "kl_divergence",
    "kl_divergence_with_logits",
    "losses",
    "mmd",
    "renyi_divergence",
    "renyi_divergence_with_logits",
    "sinkhorn",
    "sinkhorn_divergence",
    "sliced_wasserstein",
    "sweep",
    "total_variation",
    "value_checks",
    "wasserstein_1d",
]


def __dir__() -> list[str]:
    return sorted(__all__)
