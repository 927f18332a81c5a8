"""Shared fixtures. float64 is enabled so references can be computed at full precision;
tests of float32 behaviour cast their inputs to float32 explicitly."""

import jax
import pytest

jax.config.update("jax_enable_x64", True)


def JIT(f):
    """`jax.jit` with the usual static keyword arguments of jaxdiv functions."""
    return jax.jit(f, static_argnames=("axis", "base"))


@pytest.fixture
def rng():
    return jax.random.key(0)
