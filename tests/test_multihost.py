"""The README's multi-host path, on this machine: two processes joined by
``jax.distributed.initialize`` over loopback (coordinator 127.0.0.1, gloo CPU collectives),
4 forced host devices each, so that one 8-device mesh spans both processes.

Each process computes the same things twice, on the global mesh and alone on its own devices
(the one-process result), and checks that they agree: ``jaxdiv.sweep`` over every device,
``jaxdiv.kl_divergence`` on a batch split over both processes (Explicit axes), and
``jaxdiv.sliced_wasserstein`` and ``jaxdiv.mmd`` on point clouds split over both processes
(Auto axes). Every wait has a timeout, so a lost peer fails the test instead of hanging CI.
"""

import os
import socket
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import jax
    process_id, port = int(sys.argv[1]), int(sys.argv[2])
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=2,
                               process_id=process_id, initialization_timeout=60)
    import jax.numpy as jnp, optax
    from jax.experimental import multihost_utils
    from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
    import jaxdiv as D
    assert jax.process_count() == 2 and jax.device_count() == 8, jax.devices()
    assert jax.local_device_count() == 4

    def one(key, w0):
        loss = lambda w, k: jnp.mean((w - jax.random.normal(k, (64,))) ** 2)
        return D.fit(loss, w0, optax.adam(0.05), steps=30, key=key)

    keys = jax.random.split(jax.random.key(1), 16)
    w0 = jnp.linspace(-3.0, 3.0, 16)
    alone = D.sweep(one, keys, w0)  # this process's default device
    spread = D.sweep(one, keys, w0, devices="all")  # 8 devices, 2 processes
    assert len(spread[0].sharding.device_set) == 8 and not spread[0].is_fully_addressable
    gathered = multihost_utils.process_allgather(spread, tiled=True)
    for g, r in zip(gathered, alone, strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-6)

    def global_array(x, mesh):  # every process holds the whole x; each puts its share
        x = np.asarray(x)
        sharding = NamedSharding(mesh, P("b"))
        return jax.make_array_from_callback(x.shape, sharding, lambda i: x[i])

    def local(v):  # a replicated result: this process's copy
        return np.asarray(v.addressable_data(0))

    explicit = jax.make_mesh((8,), ("b",), axis_types=(AxisType.Explicit,))
    p = jax.random.dirichlet(jax.random.key(2), jnp.ones(5), (16,))
    q = jax.random.dirichlet(jax.random.key(3), jnp.ones(5), (16,))
    kl = jax.jit(D.kl_divergence)(global_array(p, explicit), global_array(q, explicit))
    np.testing.assert_allclose(multihost_utils.process_allgather(kl, tiled=True),
                               D.kl_divergence(p, q), rtol=1e-6)

    auto = jax.make_mesh((8,), ("b",), axis_types=(AxisType.Auto,))
    x = jax.random.normal(jax.random.key(4), (64, 2))
    y = jax.random.normal(jax.random.key(5), (64, 2)) + 0.5
    sw = lambda x, y: D.sliced_wasserstein(jax.random.key(6), x, y, num_projections=16)
    for name, f in [("sliced_wasserstein", sw), ("mmd", D.mmd)]:
        value = jax.jit(f)(global_array(x, auto), global_array(y, auto))
        # the sums run in another order over 8 shards; mmd is a difference of O(1) terms,
        # so the agreement is float32 rounding of the terms: atol 1e-6
        np.testing.assert_allclose(local(value), f(x, y), rtol=1e-5, atol=1e-6, err_msg=name)
    print(f"MULTIHOST-OK {process_id}")
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_over_loopback_match_one_process():
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count"
               "=4 --xla_backend_optimization_level=0")  # a third of the compile time
    port = str(_free_port())
    procs = [subprocess.Popen([sys.executable, "-c", SCRIPT, str(i), port], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=180))
    finally:
        for proc in procs:  # never leave a process waiting for its peer
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    for i, (proc, (out, err)) in enumerate(zip(procs, outputs, strict=True)):
        assert proc.returncode == 0, f"process {i}:\n{err[-3000:]}"
        assert f"MULTIHOST-OK {i}" in out
