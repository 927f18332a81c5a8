"""Shared fixtures. float64 is enabled so references can be computed at full precision;
tests of float32 behaviour cast their inputs to float32 explicitly."""

import inspect
import os

import jax
import pytest
from hypothesis import HealthCheck, settings

jax.config.update("jax_enable_x64", True)
# Compiling is most of the suite's time. XLA's CPU backend at optimisation level 0 (LLVM leaves
# the emitted loops unoptimised) compiles faster: the suite 1147 -> 881-930 s on two workers.
# The HLO programs, their fusions and the library kernels they call are those users run (the
# YNNPACK defect pinned by test_logit_twins_in_fused_reductions_match_float64 reproduces at
# this level), but the loops may round differently in the last bits (fused multiply-adds, the
# order of vectorised sums): tests/test_dtypes.py, whose bounds are a few eps, compiles its
# programs at the default level, and benchmarks/ run at the default level.
# JAX_DISABLE_MOST_OPTIMIZATIONS=0 runs the suite at the default level; the subprocesses that
# some tests start inherit the setting.
if "JAX_DISABLE_MOST_OPTIMIZATIONS" not in os.environ:  # else jax has read the caller's choice
    os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "1"
    jax.config.update("jax_disable_most_optimizations", True)


# XLA's default CPU level for one program: jax.jit(f, compiler_options=DEFAULT_LEVEL). Used by
# test_dtypes (its bounds are measured on the machine code users get) and for programs that
# spend their time running long loops (Sinkhorn's solver on many small problems): at level 0
# those loops run several times slower (a vmapped Sinkhorn divergence of 17 points: 58 ms
# against 9.7). Measured in CPU seconds (two workers keep both cores busy), alternating runs:
# test_properties' four Sinkhorn properties 147-164 -> 116 s. Whole modules did not gain:
# test_transport at the default level 105-124 s against 91-96; experiments, estimators,
# distillation, fitting, policy, mode seeking and mesh transport all cost more CPU there.
DEFAULT_LEVEL = {"xla_backend_optimization_level": 3, "xla_llvm_disable_expensive_passes": False}


def JIT(f):
    """`jax.jit` with the static keyword arguments (``axis``, ``base``) that ``f`` takes."""
    names = [n for n in ("axis", "base") if n in inspect.signature(f).parameters]
    return jax.jit(f, static_argnames=names)


@pytest.fixture
def rng():
    return jax.random.key(0)

# Property tests: at least 200 examples each, derandomised so that failures reproduce.
settings.register_profile("ci", max_examples=200, derandomize=True, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=50, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
