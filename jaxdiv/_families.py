"""Reads distribution objects of jaxdiv, distrax, numpyro and TFP-JAX into canonical parameters.

Duck typing, no import of those libraries: the family comes from the class name (the first
name in the class's MRO that is known here), the parameters from the attributes each library
uses (``loc``/``scale``, ``probs``/``logits``, ``concentration``/``rate``,
``concentration1``/``concentration0`` or distrax's ``alpha``/``beta``, ``low``/``high``), read
first from TFP's ``parameters`` dict, then from the object. ``Independent`` wrappers
(distrax/TFP ``distribution``, numpyro ``base_dist``, with ``reinterpreted_batch_ndims``) become
the base family with extra event axes; a Normal with one reinterpreted axis is a diagonal
MultivariateNormal.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiv import _checks as C

# class name -> canonical family
_CLASSES = {
    "Normal": "Normal",
    "MultivariateNormal": "MultivariateNormal",  # jaxdiv, numpyro
    "MultivariateNormalTri": "MultivariateNormal",  # distrax
    "MultivariateNormalTriL": "MultivariateNormal",  # TFP
    "MultivariateNormalFullCovariance": "MultivariateNormal",  # distrax, TFP
    "MultivariateNormalDiag": "MultivariateNormal",  # distrax, TFP
    "Categorical": "Categorical",
    "CategoricalProbs": "Categorical",  # numpyro
    "CategoricalLogits": "Categorical",
    "Bernoulli": "Bernoulli",
    "BernoulliProbs": "Bernoulli",
    "BernoulliLogits": "Bernoulli",
    "Beta": "Beta",
    "Dirichlet": "Dirichlet",
    "Gamma": "Gamma",
    "Exponential": "Exponential",
    "Laplace": "Laplace",
    "Poisson": "Poisson",
    "Uniform": "Uniform",
    "Independent": "Independent",
    "Mixture": "Mixture",  # known, without closed forms
    "MixtureSameFamily": "Mixture",
    "MixtureGeneral": "Mixture",
}

KNOWN = sorted({f for f in _CLASSES.values() if f != "Independent"})


@dataclasses.dataclass(frozen=True)
class Family:
    """A distribution read into canonical parameters.

    ``params``: Normal (loc, scale); MultivariateNormal (loc [..., d] and tril [..., d, d] or
    diag [..., d]); Categorical and Bernoulli (probs or logits, [..., K] for Categorical);
    Beta (c1, c0); Dirichlet (concentration [..., K]); Gamma (concentration, rate);
    Exponential (rate); Laplace (loc, scale); Poisson (rate); Uniform (low, high).
    ``batch`` excludes ``inner``, the axes an ``Independent`` reinterprets as event axes;
    ``size`` is d or K for vector families.
    """

    name: str
    cls: str
    params: dict[str, jax.Array]
    batch: tuple[int, ...] = ()
    inner: tuple[int, ...] = ()
    size: int | None = None
    foreign: bool = True


def _get(obj: Any, *names: str) -> tuple[str | None, Any]:
    """The first parameter among ``names`` that is set: TFP's ``parameters``, then attributes."""
    params = getattr(obj, "parameters", None)
    for n in names:
        v = params.get(n) if isinstance(params, dict) else None
        if v is None:
            try:
                v = getattr(obj, n, None)
            except Exception:  # a lazy property that cannot be computed
                v = None
        if v is not None and not inspect.isroutine(v):  # not a method (numpyro's shape())
            return n, v
    return None, None


def _need(fn: str, arg: str, obj: Any, *names: str) -> tuple[str, Any]:
    n, v = _get(obj, *names)
    if n is None:
        raise TypeError(f"{fn}: argument {arg} ({type(obj).__name__}) has none of the "
                        f"parameters {', '.join(names)}")
    return n, v


def _source(obj: Any) -> str:
    """Whether a Categorical/Bernoulli was built from ``probs`` or ``logits``."""
    params = getattr(obj, "parameters", None)
    if isinstance(params, dict):  # TFP: the unset one is None
        if params.get("logits") is not None:
            return "logits"
        if params.get("probs") is not None:
            return "probs"
    name = type(obj).__name__
    if name.endswith("Logits"):  # numpyro
        return "logits"
    if name.endswith("Probs"):
        return "probs"
    for private, src in (("_logits", "logits"), ("_probs", "probs")):  # distrax
        if getattr(obj, private, None) is not None:
            return src
    return "logits" if _get(obj, "logits")[0] else "probs"


def family_name(obj: Any) -> str | None:
    for klass in type(obj).__mro__:
        if klass.__name__ in _CLASSES:
            return _CLASSES[klass.__name__]
    return None


def _shape(fn: str, arg: str, cls: str, shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
    try:
        return tuple(jnp.broadcast_shapes(*shapes))
    except ValueError as err:
        raise ValueError(f"{fn}: the parameters of {arg} ({cls}) have shapes {shapes}, which do "
                         f"not broadcast") from err


def read(fn: str, arg: str, obj: Any) -> Family:
    """Reads ``obj`` into a :class:`Family`; TypeError for an unknown family."""
    from jaxdiv import distributions as jd  # no cycle at import time

    fam = family_name(obj)
    cls = type(obj).__name__
    if fam is None or isinstance(obj, (jax.Array, np.ndarray)):
        raise TypeError(f"{fn}: argument {arg} must be a distribution of a known family "
                        f"({', '.join(KNOWN)}; from jaxdiv, distrax, numpyro or TFP), got "
                        f"{cls}")
    flt = lambda name, v: C.as_float(fn, f"{arg}.{name}", v)
    if fam == "Independent":
        _, base = _need(fn, arg, obj, "distribution", "base_dist")
        _, n = _need(fn, arg, obj, "reinterpreted_batch_ndims")
        n = int(np.asarray(n))
        inner = read(fn, arg, base)
        full = inner.batch
        if n > len(full):
            raise ValueError(f"{fn}: argument {arg} ({cls}) reinterprets {n} batch axes of a "
                             f"batch shape {full}")
        if n == 0:
            return inner
        if inner.name == "Normal" and not inner.inner and n == 1:  # a diagonal MVN
            loc, scale = (jnp.broadcast_to(v, full) for v in (inner.params["loc"],
                                                             inner.params["scale"]))
            return Family("MultivariateNormal", cls, {"loc": loc, "diag": scale}, full[:-1],
                          size=full[-1], foreign=inner.foreign)
        return dataclasses.replace(inner, cls=cls, batch=full[:-n],
                                   inner=full[-n:] + inner.inner)
    if fam == "Mixture":
        return Family(fam, cls, {})
    if fam in ("Normal", "Laplace"):
        params = {k: flt(k, _need(fn, arg, obj, k)[1]) for k in ("loc", "scale")}
        batch = _shape(fn, arg, cls, [v.shape for v in params.values()])
        return Family(fam, cls, params, batch, foreign=not isinstance(obj, jd.Normal))
    if fam == "MultivariateNormal":
        return _read_mvn(fn, arg, obj, cls, flt, isinstance(obj, jd.MultivariateNormal))
    if fam in ("Categorical", "Bernoulli"):
        src = _source(obj)
        v = flt(src, _need(fn, arg, obj, src)[1])
        if fam == "Categorical":
            if v.ndim < 1 or v.shape[-1] == 0:
                raise ValueError(f"{fn}: argument {arg} ({cls}) has {src} of shape {v.shape}; "
                                 f"expected [..., K] with K >= 1")
            return Family(fam, cls, {src: v}, v.shape[:-1], size=v.shape[-1])
        return Family(fam, cls, {src: v}, v.shape)
    if fam == "Dirichlet":
        v = flt("concentration", _need(fn, arg, obj, "concentration")[1])
        if v.ndim < 1 or v.shape[-1] == 0:
            raise ValueError(f"{fn}: argument {arg} ({cls}) has concentration of shape "
                             f"{v.shape}; expected [..., K] with K >= 1")
        return Family(fam, cls, {"concentration": v}, v.shape[:-1], size=v.shape[-1])
    names = {"Beta": (("c1", ("concentration1", "alpha")), ("c0", ("concentration0", "beta"))),
             "Gamma": (("concentration", ("concentration",)), ("rate", ("rate", "log_rate"))),
             "Exponential": (("rate", ("rate", "log_rate")),),
             "Poisson": (("rate", ("rate", "log_rate")),),
             "Uniform": (("low", ("low",)), ("high", ("high",)))}[fam]
    params = {}
    for key, candidates in names:
        found, v = _need(fn, arg, obj, *candidates)
        v = flt(found, v)
        params[key] = jnp.exp(v) if found.startswith("log_") else v
    batch = _shape(fn, arg, cls, [v.shape for v in params.values()])
    return Family(fam, cls, params, batch)


def _read_mvn(fn, arg, obj, cls, flt, own):
    _, loc = _get(obj, "loc")
    n, scale = _get(obj, "scale_diag", "scale_tril", "scale_tri")
    params = getattr(obj, "parameters", None)
    if n is None and loc is not None and isinstance(params, dict) and (
            "scale_diag" in params or "scale_tril" in params):
        # TFP's MultivariateNormalDiag(loc) / TriL(loc): no scale given is the identity
        n, scale = "scale_diag", jnp.ones_like(flt("loc", loc))
    if n is None:
        n, cov = _get(obj, "covariance_matrix")
        if n is None:
            raise TypeError(f"{fn}: argument {arg} ({cls}) has none of scale_diag, scale_tril, "
                            f"scale_tri or covariance_matrix")
        cov = flt("covariance_matrix", cov)
        scale, n = jnp.linalg.cholesky(cov), "scale_tril"
    else:
        scale = flt(n, scale)
        if n == "scale_tri" and not bool(getattr(obj, "is_lower", True)):  # distrax, upper
            scale = jnp.linalg.cholesky(jnp.matmul(scale, jnp.swapaxes(scale, -1, -2),
                                                   precision=jax.lax.Precision.HIGHEST))
    diag = n == "scale_diag"
    if (diag and scale.ndim < 1) or (not diag and (scale.ndim < 2
                                                   or scale.shape[-1] != scale.shape[-2])):
        raise ValueError(f"{fn}: argument {arg} ({cls}) has {n} of shape {scale.shape}")
    d = scale.shape[-1]
    loc = jnp.zeros((d,), scale.dtype) if loc is None else flt("loc", loc)
    if loc.ndim < 1 or loc.shape[-1] != d:
        raise ValueError(f"{fn}: argument {arg} ({cls}) has loc of shape {loc.shape} and {n} "
                         f"of shape {scale.shape}: different event sizes")
    if d == 0:
        raise ValueError(f"{fn}: argument {arg} ({cls}) has event size d = 0")
    batch = _shape(fn, arg, cls, [loc.shape[:-1], scale.shape[:-1 if diag else -2]])
    key = "diag" if diag else "tril"
    return Family("MultivariateNormal", cls, {"loc": loc, key: scale}, batch, size=d,
                  foreign=not own)
