"""Shared stable primitives: compute dtypes, NaN-free masked terms, units."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp


def compute_dtype(dtype: Any) -> Any:
    """The dtype arithmetic runs in: float32 for 16-bit floats, the input dtype otherwise."""
    return jnp.float32 if jnp.finfo(dtype).bits < 32 else dtype


def upcast(*xs: jax.Array) -> tuple[Any, tuple[jax.Array, ...]]:
    """Casts 16-bit inputs to float32; returns (the input dtype, the cast arrays)."""
    dtype = xs[0].dtype
    cdt = compute_dtype(dtype)
    return dtype, tuple(x.astype(cdt) for x in xs)


def mask_of(positive: jax.Array, where: jax.Array | None) -> jax.Array:
    """The entries that contribute: ``positive`` and, if given, ``where``."""
    return positive if where is None else positive & where


def safe(mask: jax.Array, x: jax.Array, fill: float = 1.0) -> jax.Array:
    """First half of the double-``where``: ``x`` where ``mask``, a harmless ``fill`` elsewhere.

    Used so that the branch ``jnp.where`` discards never sees 0 in a log or a division, and so
    never produces NaN derivatives (as in ``jax.scipy.special.rel_entr``).
    """
    return jnp.where(mask, x, fill)


def masked_sum(mask: jax.Array, terms: jax.Array, axis: int) -> jax.Array:
    """Second half of the double-``where``: sums ``terms`` over ``axis`` where ``mask``."""
    return jnp.sum(jnp.where(mask, terms, 0), axis=axis)


def in_base(value: jax.Array, base: float | None) -> jax.Array:
    """Converts nats to the logarithm ``base`` (``None``: nats, 2: bits)."""
    if base is None:
        return value
    return value / jnp.log(jnp.asarray(base, value.dtype))


def finish(value: jax.Array, dtype: Any, base: float | None = None) -> jax.Array:
    """Applies the unit and casts back to the input dtype."""
    return in_base(value, base).astype(dtype)


@jax.custom_jvp
def logaddexp_finite(x: jax.Array, y: jax.Array) -> jax.Array:
    r""":math:`\log(e^x + e^y)` for finite ``x, y``, with no compare-and-select.

    ``jnp.logaddexp`` handles infinities with selects, which on XLA CPU split the fused loop
    around it into several passes (5x slower); callers here clamp :math:`-\infty` to the lowest
    finite float first. The JVP is :math:`\dot x e^{x - r} + \dot y e^{y - r}` (softmax
    weights, no selects either), itself differentiable.
    """
    return jnp.maximum(x, y) + jnp.log1p(jnp.exp(-jnp.abs(x - y)))


@logaddexp_finite.defjvp
def _logaddexp_finite_jvp(primals, tangents):
    (x, y), (dx, dy) = primals, tangents
    r = logaddexp_finite(x, y)
    return r, dx * jnp.exp(x - r) + dy * jnp.exp(y - r)


LOG2 = math.log(2.0)
