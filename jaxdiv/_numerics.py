"""Shared stable primitives: compute dtypes, NaN-free masked terms, units."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


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


def uniform_weights(w: jax.Array | None, n: int, dtype: Any) -> jax.Array:
    """``w``, or uniform weights 1/n of length ``n`` when it is None."""
    return jnp.full((n,), 1.0 / n, dtype) if w is None else w


# 1/k! for k = 10, 9, ..., 2: the Taylor series of e^x - 1 - x, for Horner's rule.
_TAYLOR = tuple(1.0 / float(np.prod(np.arange(1, k + 1))) for k in range(10, 1, -1))


def expm1_minus_x(x: jax.Array) -> jax.Array:
    r""":math:`e^x - 1 - x \ge 0` without overflow for large negative x nor cancellation near 0.

    ``expm1(x) - x`` for :math:`|x| \ge 0.1`, and the Taylor series to :math:`x^{10}` below
    (truncation error :math:`< 10^{-16}` relative there), where ``expm1(x) - x`` would lose
    :math:`\sim\epsilon/|x|` relative accuracy to cancellation.
    """
    small = jnp.abs(x) < 0.1
    xs = jnp.where(small, x, 0.0)
    poly = jnp.zeros_like(xs)
    for c in _TAYLOR:
        poly = poly * xs + c
    return jnp.where(small, poly * xs * xs, jnp.expm1(x) - x)
