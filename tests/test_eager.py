"""Calls outside ``jax.jit`` compile each configuration once.

A function holding lax control flow (a cond, a loop over tiles, ott-jax's solver loop) built
from new closures at each call is compiled again at each eager call: hundreds of milliseconds
for a result that takes one. Here a second call with the same shapes and options must compile
nothing. (Gradients of the Sinkhorn solves taken outside jit still compile at each call:
traced, they run without the module-level jit, whose differentiation would lose ott-jax's
precision scope; see jaxdiv/transport.py.) Compilations are counted through
``jax.monitoring``'s backend-compile event; each case first checks that its cold call (shapes
used nowhere else) is counted, so the test cannot pass by the event going unheard.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdiv
from jaxdiv import losses

COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


@pytest.fixture
def compiles():
    seen = []

    def listen(event, duration, **kwargs):
        if event == COMPILE_EVENT:
            seen.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listen)
    yield seen
    jax.monitoring.unregister_event_duration_listener(listen)


def _probs(seed, shape):
    return jax.nn.softmax(jnp.asarray(np.random.default_rng(seed).normal(size=shape) * 2), -1)


def _cloud(seed, n, d):
    return jnp.asarray(np.random.default_rng(seed).normal(size=(n, d)))


# Sizes used by no other test, so that the first call of each case compiles.
P, Q = _probs(0, (3, 13)), _probs(1, (3, 13))
X, Y = _cloud(2, 23, 3), _cloud(3, 19, 3) + 0.5
KEY = jax.random.key(5)
H, W = _cloud(4, 29, 6), _cloud(5, 6, 31)
T = _cloud(6, 29, 31)
SPD = [jnp.asarray(np.eye(3) + 0.3 * np.outer(v, v)) for v in np.random.default_rng(7).normal(
    size=(2, 3))]
MVN_P = jaxdiv.MultivariateNormal(jnp.zeros(3), SPD[0])
MVN_Q = jaxdiv.MultivariateNormal(jnp.ones(3), SPD[1])

CASES = {
    "alpha_divergence, general order": lambda: jaxdiv.alpha_divergence(P, Q, 0.3),
    "alpha_divergence, traced order": lambda: jaxdiv.alpha_divergence(P, Q, jnp.asarray(1.7)),
    "renyi_divergence_with_logits": lambda: jaxdiv.renyi_divergence_with_logits(
        jnp.log(P), jnp.log(Q), 0.4),
    "alpha_divergence gradient": lambda: jax.grad(
        lambda p: jnp.sum(jaxdiv.alpha_divergence(p, Q, 0.3)))(P),
    "mmd, median bandwidth": lambda: jaxdiv.mmd(X, Y),
    "mmd, tiles of 4 rows": lambda: jaxdiv.mmd(X, Y, bandwidth=1.0, batch_size=4),
    "energy_distance gradient, tiles": lambda: jax.grad(
        lambda x: jaxdiv.energy_distance(x, Y, batch_size=4))(X),
    "sliced_wasserstein": lambda: jaxdiv.sliced_wasserstein(KEY, X, Y, num_projections=7),
    "wasserstein_1d": lambda: jaxdiv.wasserstein_1d(X[:, 0], Y[:, 0], p=2),
    "sinkhorn": lambda: jaxdiv.sinkhorn(X, Y, epsilon=0.5).reg_cost,
    "sinkhorn, default epsilon and momentum": lambda: jaxdiv.sinkhorn(X, Y, momentum=1.3).reg_cost,
    "sinkhorn_divergence": lambda: jaxdiv.sinkhorn_divergence(X, Y, epsilon=0.5),
    "gaussian_kl, multivariate": lambda: jaxdiv.gaussian_kl(MVN_P, MVN_Q),
    "gaussian_w2, multivariate": lambda: jaxdiv.gaussian_w2(MVN_P, MVN_Q),
    "linear_distillation_loss": lambda: losses.linear_distillation_loss(
        H, W, teacher_logits=T, chunk_size=8),
    "linear_distillation_loss gradient": lambda: jax.grad(
        lambda h: losses.linear_distillation_loss(h, W, teacher_logits=T, chunk_size=8))(H),
}


@pytest.mark.parametrize("name", CASES)
def test_a_second_eager_call_compiles_nothing(name, compiles):
    jax.block_until_ready(CASES[name]())
    assert compiles, f"{name}: the cold call compiled nothing (is the event still {COMPILE_EVENT}?)"
    compiles.clear()
    jax.block_until_ready(CASES[name]())
    assert not compiles, f"{name}: compiled {len(compiles)} times again"
