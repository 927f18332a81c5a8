"""Transport and sample distances on a device mesh: samples sharded along their axis on 8 forced
host devices, with Explicit and with Auto mesh axes, give the values and gradients of the
unsharded inputs. One subprocess (the device count is fixed when JAX starts)."""

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import jax, numpy as np
    jax.config.update("jax_enable_x64", True)
    from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
    import jaxdiv as J

    assert jax.device_count() == 8, jax.devices()
    r = np.random.default_rng(0)
    x, y = r.normal(size=(16, 2)), 0.8 * r.normal(size=(8, 2)) + 0.5
    a = r.uniform(0.2, 1.0, 16)
    a /= a.sum()
    key = jax.random.key(1)
    sink = dict(epsilon=0.5, threshold=1e-9, max_iterations=5000)
    cases = {  # name -> (function of (x, y, a), differentiated in x and y)
        "wasserstein_1d": lambda x, y, a: J.wasserstein_1d(x[:, 0], y[:, 0], x_weights=a),
        "sliced_wasserstein": lambda x, y, a: J.sliced_wasserstein(key, x, y, a=a,
                                                                   num_projections=8),
        "mmd": lambda x, y, a: J.mmd(x, y, batch_size=4),
        "energy_distance": lambda x, y, a: J.energy_distance(x, y, batch_size=4),
        "sinkhorn": lambda x, y, a: J.sinkhorn(x, y, a=a, **sink).transport_cost,
        "sinkhorn_divergence": lambda x, y, a: J.sinkhorn_divergence(x, y, a=a, **sink),
    }
    # the references: each function's value and gradients on the unsharded inputs, off any mesh
    refs = {name: jax.jit(jax.value_and_grad(f, (0, 1)))(x, y, a) for name, f in cases.items()}
    for kind in (AxisType.Explicit, AxisType.Auto):
        mesh = jax.make_mesh((8,), ("s",), axis_types=(kind,))
        put = lambda v: jax.device_put(v, NamedSharding(mesh, P("s", *[None] * (v.ndim - 1))))
        xs, ys, as_ = put(x), put(y), put(a)
        assert xs.sharding.spec[0] == "s" and len(xs.sharding.device_set) == 8
        with jax.set_mesh(mesh):
            for name, f in cases.items():
                v0, (gx0, gy0) = refs[name]
                v1, (gx1, gy1) = jax.jit(jax.value_and_grad(f, (0, 1)))(xs, ys, as_)
                rtol = 1e-8 if name.startswith("sinkhorn") else 1e-10
                for got, ref in ((v1, v0), (gx1, gx0), (gy1, gy0)):
                    np.testing.assert_allclose(np.asarray(got), np.asarray(ref), rtol=rtol,
                                               atol=1e-12, err_msg=f"{name} {kind}")
                assert np.isfinite(np.asarray(gx0)).all() and np.abs(np.asarray(gx0)).sum() > 0
                print("ok", kind, name, flush=True)
""")


def test_sharded_samples_give_unsharded_values_and_gradients():
    # optimisation level 0 (as tests/test_mesh.py): a fraction of the compile time, and the
    # sharded and unsharded programs compared are compiled alike
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count"
               "=8 --xla_backend_optimization_level=0")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr[-4000:]
    assert out.stdout.count("ok") == 12, out.stdout
