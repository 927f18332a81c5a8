"""jaxdiv.fitting (fit, sweep): the scan loop against closed-form iterates, vmap, sharded sweeps."""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxdiv
from jaxdiv.fitting import fit, sweep


def _quadratic(c):
    return lambda params, key: 0.5 * jnp.sum((params["w"] - c) ** 2)


def test_fit_matches_closed_form_sgd_iterates(rng):
    # Gradient descent on 0.5 |w - c|^2: w_t = c + (1 - lr)^t (w_0 - c), loss_t = 0.5 |w_t - c|^2.
    c, w0, lr, steps = jnp.array([1.0, -2.0]), jnp.array([3.0, 0.5]), 0.1, 25
    params, losses = jax.jit(lambda p, k: fit(_quadratic(c), p, optax.sgd(lr), steps=steps,
                                              key=k))({"w": w0}, rng)
    decay = (1 - lr) ** np.arange(steps + 1)
    dist = np.asarray(w0 - c, np.float64)
    np.testing.assert_allclose(params["w"], np.asarray(c) + decay[-1] * dist, rtol=1e-12)
    np.testing.assert_allclose(losses, 0.5 * decay[:-1] ** 2 * (dist ** 2).sum(), rtol=1e-12)


def test_fit_uses_a_fresh_key_each_step(rng):
    # loss = w * u(key): with SGD(lr=1) the final w is w0 - sum of the per-step uniforms.
    loss = lambda w, key: w * jax.random.uniform(key)
    w, _ = fit(loss, jnp.float64(0.0), optax.sgd(1.0), steps=10, key=rng)
    u = jax.vmap(jax.random.uniform)(jax.random.split(rng, 10))
    np.testing.assert_allclose(w, -u.sum(), rtol=1e-12)
    assert len(np.unique(np.asarray(u))) == 10


def test_fit_vmaps_over_keys_params_and_hyperparameters(rng):
    cs = jnp.linspace(-1.0, 1.0, 4)
    w0s = jnp.linspace(2.0, 5.0, 4)
    lrs = jnp.array([0.05, 0.1, 0.2, 0.3])
    keys = jax.random.split(rng, 4)

    def one(c, w0, lr, key):
        return fit(lambda w, k: 0.5 * (w - c) ** 2, w0, optax.sgd(lr), steps=30, key=key)

    ws, losses = jax.jit(jax.vmap(one))(cs, w0s, lrs, keys)
    assert losses.shape == (4, 30)
    ref = np.asarray(cs) + (1 - np.asarray(lrs)) ** 30 * np.asarray(w0s - cs)
    np.testing.assert_allclose(ws, ref, rtol=1e-12)
    ws2, _ = sweep(one, cs, w0s, lrs, keys)
    np.testing.assert_allclose(ws2, ws, rtol=1e-12)


def test_bad_arguments():
    with pytest.raises(ValueError, match="fit: steps must be a static int >= 1"):
        fit(lambda w, k: w, 0.0, optax.sgd(0.1), steps=0, key=jax.random.key(0))
    # a loss that is not a real scalar: JAX's raw "Gradient only defined for scalar-output
    # functions" named neither fit nor loss_fn
    for loss, shown in ((lambda w, k: 2 * w, r"float32\[2\]"), (lambda w, k: (w.sum(), 1.0),
                                                                  "tuple|\\("),
                        (lambda w, k: jnp.int32(3), r"int32\[\]")):
        with pytest.raises(TypeError, match="fit: loss_fn\\(params, key\\) must return a real "
                                            f"scalar, got .*({shown})"):
            fit(loss, jnp.zeros(2, jnp.float32), optax.sgd(0.1), steps=2, key=jax.random.key(0))
    with pytest.raises(ValueError, match="sweep: every argument needs the same leading"):
        sweep(lambda a, b: a + b, jnp.ones(3), jnp.ones(4))
    with pytest.raises(ValueError, match="sweep: devices is empty"):
        sweep(jnp.sum, jnp.ones((3, 2)), devices=[])
    with pytest.raises(TypeError, match=r"sweep: devices must hold jax\.Device"):
        sweep(jnp.sum, jnp.ones((3, 2)), devices=["cpu:0"])
    with pytest.raises(ValueError, match=r"sweep: spec needs devices to be a jax\.sharding\.Mesh"):
        sweep(jnp.sum, jnp.ones((3, 2)), devices="all", spec=jax.sharding.PartitionSpec("x"))
    mesh = jax.make_mesh((1,), ("x",))
    with pytest.raises(ValueError, match="sweep: spec P\\('y',\\) names axis 'y'"):
        sweep(jnp.sum, jnp.ones((3, 2)), devices=mesh, spec=jax.sharding.PartitionSpec("y"))
    with pytest.raises(ValueError, match="sweep: spec must be a PartitionSpec with one entry"):
        sweep(jnp.sum, jnp.ones((3, 2)), devices=mesh, spec=jax.sharding.PartitionSpec("x", None))


SHARDED = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np, optax, pytest
    from jax.sharding import AxisType, PartitionSpec as P
    from jaxdiv.fitting import fit, sweep
    assert jax.device_count() == 8, jax.devices()
    def one(key, w0):
        loss = lambda w, k: jnp.mean((w - jax.random.normal(k, (64,))) ** 2)
        return fit(loss, w0, optax.adam(0.05), steps=50, key=key)
    n = 16
    keys = jax.random.split(jax.random.key(1), n)
    w0 = jnp.linspace(-3.0, 3.0, n)
    w1, l1 = sweep(one, keys, w0)
    def shards(x):
        return sorted(s.data.shape[0] for s in x.addressable_shards)
    for m, shards_of in [(16, [2] * 8), (12, [2] * 6), (13, [13])]:
        # 12 and 13 are padded to 16; the results are sharded over the largest divisor of m
        # (JAX arrays cannot be split unevenly), never replicated on all 8 devices
        w8, l8 = sweep(one, keys[:m], w0[:m], devices="all")
        assert w8.shape == (m,) and l8.shape == (m, 50)
        assert shards(w8) == shards_of and shards(l8) == shards_of, (m, w8.sharding)
        np.testing.assert_allclose(w8, w1[:m], rtol=1e-6)
        np.testing.assert_allclose(l8, l1[:m], rtol=1e-6)
    for types in [(AxisType.Explicit,) * 2, (AxisType.Auto,) * 2]:
        mesh = jax.make_mesh((4, 2), ("data", "model"), axis_types=types)
        w8, l8 = sweep(one, keys, w0, devices=mesh, spec=P("data"))
        assert w8.sharding.spec == P("data") and shards(w8) == [4] * 8  # 2 replicas each
        np.testing.assert_allclose(l8, l1, rtol=1e-6)
        w8, _ = sweep(one, keys, w0, devices=mesh)  # default: every mesh axis
        assert shards(w8) == [2] * 8
        np.testing.assert_allclose(w8, w1, rtol=1e-6)
        with pytest.raises(ValueError, match="sweep: spec .* names axis 'batch'"):
            sweep(one, keys, w0, devices=mesh, spec=P("batch"))
    print("SHARDED-OK")
""")


def test_sharded_sweep_equals_single_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
               JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", SHARDED], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "SHARDED-OK" in out.stdout


def test_sweep_reuses_its_compiled_program():
    calls = []

    def one(x):
        calls.append(1)  # runs once per trace, not per call
        return 2 * x

    for chunk in (jnp.arange(4.0), jnp.arange(4.0, 8.0), jnp.arange(8.0, 12.0)):
        np.testing.assert_array_equal(sweep(one, chunk), 2 * np.asarray(chunk))
    assert len(calls) == 1


def test_public_namespace():
    # dir(jaxdiv) is __all__: the functions and classes, __version__, and the two public
    # subpackages; nothing imported for the package's own use leaks in.
    assert dir(jaxdiv) == sorted(jaxdiv.__all__)
    assert {"__version__", "estimators", "losses", "fit", "sweep"} <= set(jaxdiv.__all__)
    for name in jaxdiv.__all__:
        assert hasattr(jaxdiv, name), name
    for leaked in ("version", "PackageNotFoundError", "_metadata"):
        assert not hasattr(jaxdiv, leaked), leaked
    assert isinstance(jaxdiv.__version__, str)
    assert jaxdiv.fit is fit and callable(jaxdiv.fit)  # the function, not a module
    assert jaxdiv.fitting.sweep is sweep  # the module is reachable under its own name
    assert dir(jaxdiv.losses) == sorted(jaxdiv.losses.__all__)
    assert all(callable(getattr(jaxdiv.losses, n)) for n in jaxdiv.losses.__all__)
