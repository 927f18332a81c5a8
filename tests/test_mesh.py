"""Batch-sharded inputs on 8 forced host devices give the values and gradients of unsharded ones.

One subprocess (``XLA_FLAGS=--xla_force_host_platform_device_count=8 JAX_PLATFORMS=cpu``) runs
every case on a mesh with Explicit axes (JAX's default) and on one with Auto axes: the
discrete divergences and their ``_with_logits`` twins, the f-divergences, the closed forms,
the distributions' ``log_prob``, the model-facing losses, and ``fit``/``sweep``. The batch
axis (16 rows) is split over the 8 devices; the event axis stays whole. The reference is the
same function on unsharded inputs (the functions' values are tested against independent
references in their own test files); what may differ is only the reduction order on a shard,
hence float32 ``rtol=1e-6``. The sample distances and Sinkhorn, which gather their samples,
are tested the same way in ``tests/test_mesh_transport.py``.
"""

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np, optax
    from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
    import jaxdiv as D
    from jaxdiv import losses as L
    assert jax.device_count() == 8, jax.devices()

    B = 16
    rng = np.random.default_rng(0)  # inputs from numpy: no compilation before the test proper
    f32 = lambda *shape: jnp.asarray(rng.standard_normal(shape), jnp.float32)
    p = jnp.asarray(rng.dirichlet(np.ones(8), B), jnp.float32)
    q = jnp.asarray(rng.dirichlet(np.ones(8), B), jnp.float32)
    lp, lq, u, v, x3, a = f32(B, 8), f32(B, 8), f32(B), f32(B), f32(B, 3), f32(B, 3, 3)
    tril = jnp.asarray(np.tril(np.asarray(a), -1) + np.eye(3) * (1 + np.abs(np.asarray(a))),
                       jnp.float32)
    tril2 = jnp.asarray(np.tril(np.roll(np.asarray(a), 1, 0), -1) + 1.5 * np.eye(3), jnp.float32)
    s1, s2 = jnp.asarray(np.exp(0.3 * np.asarray(u))), jnp.asarray(np.exp(0.3 * np.asarray(v)))
    mvn = D.MultivariateNormal(x3, tril)
    mvn2 = D.MultivariateNormal(jnp.roll(x3, 1, 0), tril2)
    one_mvn = D.MultivariateNormal(jnp.zeros(3, jnp.float32),
                                   jnp.asarray(np.eye(3) + 0.2 * np.tri(3, k=-1), jnp.float32))
    mix = D.Mixture(jnp.log(jnp.array([0.3, 0.7])), D.Normal(jnp.array([-1.0, 2.0]),
                                                            jnp.array([0.5, 1.5])))
    key = jax.random.key(1)

    CASES = [  # (name, function of the arguments, arguments whose leaves lead with B)
        ("information", D.information, (p,)),
        ("binary_entropy", D.binary_entropy, (p[:, 0],)),
        ("entropy", D.entropy, (p,)),
        ("entropy_with_logits", D.entropy_with_logits, (lp,)),
        ("cross_entropy", D.cross_entropy, (p, q)),
        ("cross_entropy_with_logits", D.cross_entropy_with_logits, (lp, lq)),
        ("kl_divergence", D.kl_divergence, (p, q)),
        ("kl_divergence_with_logits", D.kl_divergence_with_logits, (lp, lq)),
        ("js_divergence", D.js_divergence, (p, q)),
        ("js_divergence_with_logits", D.js_divergence_with_logits, (lp, lq)),
        ("alpha_divergence", lambda p, q: D.alpha_divergence(p, q, 0.5), (p, q)),
        ("alpha_divergence_with_logits",
         lambda p, q: D.alpha_divergence_with_logits(p, q, 0.5), (lp, lq)),
        ("renyi_divergence", lambda p, q: D.renyi_divergence(p, q, 2.0), (p, q)),
        ("renyi_divergence_with_logits",
         lambda p, q: D.renyi_divergence_with_logits(p, q, 2.0), (lp, lq)),
        ("f_divergence", lambda p, q: D.f_divergence(p, q, lambda t: (t - 1) ** 2), (p, q)),
        ("total_variation", D.total_variation, (p, q)),
        ("hellinger_distance", D.hellinger_distance, (p, q)),
        ("chi_square_divergence", D.chi_square_divergence, (p, q)),
        ("jeffreys_divergence", D.jeffreys_divergence, (p, q)),
        ("gaussian_kl Normal", D.gaussian_kl, (D.Normal(u, s1), D.Normal(v, s2))),
        ("gaussian_w2 Normal", D.gaussian_w2, (D.Normal(u, s1), D.Normal(v, s2))),
        ("gaussian_kl MVN", D.gaussian_kl, (mvn, mvn2)),
        ("gaussian_w2 MVN", D.gaussian_w2, (mvn, mvn2)),
        ("Normal.log_prob", lambda x: D.Normal(0.5, 2.0).log_prob(x), (u,)),
        ("MultivariateNormal.log_prob", one_mvn.log_prob, (x3,)),
        ("MultivariateNormal.log_prob batched", lambda m, x: m.log_prob(x), (mvn, x3)),
        ("Mixture.log_prob", mix.log_prob, (u,)),
        ("distillation_loss",
         lambda s, t: L.distillation_loss(s, t, temperature=2.0), (lp, lq)),
        ("policy_kl", L.policy_kl, (lp, lq)),
        ("approx_kl k1", lambda r: L.approx_kl(r, estimator="k1"), (u,)),
        ("approx_kl k3", L.approx_kl, (u,)),
        ("vae_kl", L.vae_kl, (lp, lq)),
        ("gan_discriminator_loss", L.gan_discriminator_loss, (u, v)),
        ("gan_generator_loss", L.gan_generator_loss, (u,)),
        ("wasserstein_critic_loss", L.wasserstein_critic_loss, (u, v)),
        ("gradient_penalty",
         lambda r, f: L.gradient_penalty(lambda z: jnp.sum(jnp.sin(z) ** 2, -1), r, f, key),
         (x3, jnp.roll(x3, 3, 0))),
    ]

    def value_and_grads(f):
        def both(*a):
            grads = jax.grad(lambda *b: jnp.sum(f(*b)), argnums=tuple(range(len(a))))(*a)
            return f(*a), grads
        return both

    # Every case in one jitted program per mesh (one compilation, not forty). Cases that fail
    # to trace are found first, case by case, with jax.eval_shape (no compilation).
    def everything(cases):
        return jax.jit(lambda all_args: [value_and_grads(f)(*args) for (_, f, _), args
                                         in zip(cases, all_args, strict=True)])

    def close(got, ref):
        for g, r in zip(jax.tree.leaves(got), jax.tree.leaves(ref), strict=True):
            np.testing.assert_allclose(np.asarray(g), np.asarray(r), rtol=1e-6, atol=1e-7)

    refs = dict(zip([c[0] for c in CASES],
                    everything(CASES)([args for _, _, args in CASES]), strict=True))

    def one_fit(k, w0):  # Monte Carlo fit of a Gaussian's mean and log-scale
        target = D.Normal(1.0, 2.0)
        def loss(prm, kk):
            return D.estimators.reverse_kl(kk, target, D.Normal(prm[0], jnp.exp(prm[1])), 32)
        return D.fit(loss, w0, optax.adam(0.05), steps=20, key=k)

    fit_keys = jax.random.split(jax.random.key(2), B)
    w0 = jnp.stack([u, 0.1 * v], -1)
    fit_ref = D.sweep(one_fit, fit_keys, w0)

    def data_fit(x, w):  # fit with a batch-sharded data set closed over by the loss
        loss = lambda w, k: jnp.mean(D.Normal(w[0], jnp.exp(w[1])).log_prob(x) * -1.0)
        return D.fit(loss, w, optax.sgd(0.1), steps=20, key=key)[0]
    data_ref = jax.jit(data_fit)(u, jnp.zeros(2))

    failures = []
    for types in [(AxisType.Explicit,), (AxisType.Auto,)]:
        mesh = jax.make_mesh((8,), ("b",), axis_types=types)
        sharding = NamedSharding(mesh, P("b"))
        put = lambda t: jax.tree.map(lambda x: jax.device_put(x, sharding), t)
        try:
            traced = CASES
            got = everything(traced)([put(args) for _, _, args in traced])
        except Exception:  # name the cases that fail, then run the others
            traced = []
            for case in CASES:
                try:
                    jax.eval_shape(value_and_grads(case[1]), *put(case[2]))
                    traced.append(case)
                except Exception as e:
                    failures.append(f"{types[0]}: {case[0]}: {type(e).__name__}: "
                                    f"{str(e).strip().splitlines()[0][:300]}")
            got = everything(traced)([put(args) for _, _, args in traced])
        if types == (AxisType.Explicit,):  # the result keeps the batch sharding
            assert got[0][0].sharding.spec[0] == "b", got[0][0].sharding
        for (name, _, _), values in zip(traced, got, strict=True):
            try:
                close(values, refs[name])
            except AssertionError as e:
                failures.append(f"{types[0]}: {name}: {str(e).strip().splitlines()[0]}")
        for name, thunk, ref in [
                ("sweep", lambda: D.sweep(one_fit, fit_keys, w0, devices=mesh), fit_ref),
                ("fit", lambda: jax.jit(data_fit)(put(u), jnp.zeros(2)), data_ref)]:
            try:
                close(thunk(), ref)
            except Exception as e:
                failures.append(f"{types[0]}: {name}: {type(e).__name__}: "
                                f"{str(e).strip().splitlines()[0][:300]}")
        try:  # bad input: a PartitionSpec naming an axis the mesh does not have
            D.sweep(one_fit, fit_keys, w0, devices=mesh, spec=P("batch"))
            failures.append(f"{types[0]}: sweep accepted spec P('batch')")
        except ValueError as e:
            assert "sweep" in str(e) and "spec" in str(e) and "'batch'" in str(e), e
    print("\\n".join(failures))
    print("MESH-OK" if not failures else f"MESH-FAILED {len(failures)}")
""")


def test_batch_sharded_inputs_on_explicit_and_auto_meshes():
    # optimisation level 0: a third of the compile time, and sharded and unsharded programs
    # alike are compiled with it
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count"
               "=8 --xla_backend_optimization_level=0")
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "MESH-OK" in out.stdout, out.stdout[-6000:]
