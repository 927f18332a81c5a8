"""linear_distillation_loss against the materialised loss (jaxdiv's logit kernels, scipy's
rel_entr and optax on ``h @ W`` in float64): values and gradients, the generalised JSD across
beta, masks, bf16, memory, sharding; and the token_distillation experiment at tiny size."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.scipy.special import rel_entr

import jaxdiv
from jaxdiv.losses import linear_distillation_loss

N, H, V, CHUNK = 37, 8, 50, 8  # N not a multiple of the chunk
F32, F64 = jnp.float32, jnp.float64


def _inputs(seed=0, dtype=F32):
    k = jax.random.split(jax.random.key(seed), 6)
    h = jax.random.normal(k[0], (N, H))
    w = jax.random.normal(k[1], (H, V)) / 2
    b = jax.random.normal(k[2], (V,)).at[3].set(-jnp.inf)  # entry 3: out of the student...
    zt = 2 * jax.random.normal(k[3], (N, V))
    zt = zt.at[:, 3].set(-jnp.inf)  # ...and of the teacher
    mask = jax.random.bernoulli(k[4], 0.7, (N,))
    vmask = jnp.ones(V, bool).at[jnp.array([7, 49])].set(False)
    return [x.astype(dtype) for x in (h, w, b, zt)] + [mask, vmask]


def _divergence(div, zt, zs, beta):
    """Per-token D(p || q) in float64 from the probabilities (rel_entr: 0 log 0 = 0)."""
    p, q = jax.nn.softmax(zt), jax.nn.softmax(zs)
    if div == "tvd":
        return jaxdiv.total_variation(p, q)
    if div == "forward_kl" or (div == "jsd" and beta == 0):
        return jnp.sum(rel_entr(p, q), -1)
    if div == "reverse_kl" or (div == "jsd" and beta == 1):
        return jnp.sum(rel_entr(q, p), -1)
    m = beta * p + (1 - beta) * q  # the GKD form, divided by beta (1 - beta)
    js = beta * jnp.sum(rel_entr(p, m), -1) + (1 - beta) * jnp.sum(rel_entr(q, m), -1)
    return js / (beta * (1 - beta))


def _reference(div, h, w, b, zt, *, beta=0.5, t=1.0, mask=None, vmask=None, labels=None,
               lw=0.0, reduction="mean"):
    """The materialised loss in float64."""
    zs = jnp.dot(h.astype(F64), w.astype(F64)) + (0 if b is None else b.astype(F64))
    zt = jax.lax.stop_gradient(zt.astype(F64))
    if vmask is not None:
        zs, zt = jnp.where(vmask, zs, -jnp.inf), jnp.where(vmask, zt, -jnp.inf)
    loss = t * t * _divergence(div, zt / t, zs / t, beta)
    if labels is not None:
        loss = loss + lw * optax.softmax_cross_entropy_with_integer_labels(zs, labels)
    mask = jnp.ones(h.shape[0], bool) if mask is None else mask
    loss = jnp.where(mask, loss, 0)
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.sum() / max(int(mask.sum()), 1)


def _close(actual, desired, rtol=1e-5):
    """float32 rounding: rtol on each entry, atol at rtol x the largest entry (entries near 0
    are sums of cancelling terms)."""
    actual, desired = np.asarray(actual, np.float64), np.asarray(desired, np.float64)
    np.testing.assert_allclose(actual, desired, rtol=rtol,
                               atol=rtol * np.max(np.abs(desired)))


@pytest.mark.parametrize("div", ["forward_kl", "reverse_kl", "jsd", "tvd"])
def test_matches_materialised_with_masks_temperature_and_inf_bias(div):
    h, w, b, zt, mask, vmask = _inputs()
    kw = dict(beta=0.3, mask=mask, vmask=vmask, t=2.0)

    def mine(h, w, b):
        return linear_distillation_loss(
            h, w, student_bias=b, teacher_logits=zt, divergence=div, beta=0.3, temperature=2.0,
            token_mask=mask, vocab_mask=vmask, chunk_size=CHUNK)

    value, grads = jax.jit(jax.value_and_grad(mine, (0, 1, 2)))(h, w, b)
    ref, ref_grads = jax.value_and_grad(
        lambda *a: _reference(div, *a, zt, **kw), (0, 1, 2))(h, w, b.astype(F64))
    assert value.dtype == F32 and all(g.dtype == F32 for g in grads)
    _close(value, ref)
    for g, r in zip(grads, ref_grads, strict=True):
        _close(g, r)
    np.testing.assert_array_equal(grads[0][~mask], 0)  # masked tokens: no gradient
    np.testing.assert_array_equal(grads[2][np.array([3, 7, 49])], 0)  # out of both softmaxes


def test_jsd_ends_stay_finite_and_exact_where_a_probability_underflows():
    # A log-ratio below about -103 (float32) underflowed e^a: the JSD at beta = 0 / 1 was inf
    # where the KL it tends to is finite; near the ends 1 + gamma (e^a - 1) cancelled (1e-2 off
    # at beta = 1e-7). Reference: the direct float64 formula with p, q from the logits.
    h = jnp.ones((1, 1), jnp.float32)
    zs, zt = jnp.array([[0.0, 0.0, -200.0]]), jnp.array([[0.0, 1.0, 2.0]])

    def ref(beta, zt, zs):
        lp, lq = (np.asarray(jax.nn.log_softmax(z.astype(F64), -1)) for z in (zt, zs))
        p, q = np.exp(lp), np.exp(lq)
        if beta == 0.0:
            return float(np.sum(p * (lp - lq)))
        lm = np.log(beta * p + (1 - beta) * q)
        return float((beta * np.sum(p * (lp - lm)) + (1 - beta) * np.sum(q * (lq - lm)))
                     / (beta * (1 - beta)))

    def loss(beta, zt, zs):
        return float(linear_distillation_loss(h, zs, teacher_logits=zt, divergence="jsd",
                                              beta=beta))

    np.testing.assert_allclose(loss(0.0, zt, zs), ref(0.0, zt, zs), rtol=1e-6)
    np.testing.assert_allclose(loss(1.0, zs, zt), ref(0.0, zt, zs), rtol=1e-6)  # = KL(zt || zs)
    zs = jnp.array([[0.0, 0.0, -20.0]])
    for beta in (1e-7, 1e-5):
        np.testing.assert_allclose(loss(beta, zt, zs), ref(float(np.float32(beta)), zt, zs),
                                   rtol=1e-5)


def test_jsd_is_continuous_in_beta_with_the_two_kls_at_the_ends():
    h, w, _, zt, _, _ = _inputs(1)
    zt = jnp.where(jnp.isinf(zt), 0.0, zt)  # all entries in both supports: every KL finite

    @jax.jit
    def mine(beta, h, w):
        return jax.value_and_grad(lambda h, w: linear_distillation_loss(
            h, w, teacher_logits=zt, divergence="jsd", beta=beta, chunk_size=CHUNK), (0, 1))(h, w)

    results = {}
    for beta in (0.0, 1e-6, 0.5, 1 - 1e-6, 1.0):
        value, grads = mine(jnp.float32(beta), h, w)
        beta64 = float(np.float32(beta))  # the float32 beta the loss saw
        ref, ref_grads = jax.value_and_grad(
            lambda h, w, b=beta64: _reference("jsd", h, w, None, zt, beta=b), (0, 1))(h, w)
        _close(value, ref)
        for g, r in zip(grads, ref_grads, strict=True):
            _close(g, r)
        results[beta] = float(value)
    fwd = _reference("forward_kl", h, w, None, zt)
    rev = _reference("reverse_kl", h, w, None, zt)
    js = jnp.mean(jaxdiv.js_divergence_with_logits(zt.astype(F64), (h @ w).astype(F64)))
    _close(results[0.0], fwd)
    _close(results[1.0], rev)
    _close(results[0.5], 4 * js)
    # Continuity: a step of 1e-6 in beta moves the loss by 1e-6 times its slope there
    # (KL - chi^2 / 2, here about -36), where the unnormalised JSD_beta drops to ~1e-6 KL.
    assert abs(results[1e-6] - results[0.0]) < 1e-4 * results[0.0]
    assert abs(results[1 - 1e-6] - results[1.0]) < 1e-4 * results[1.0]


def test_reduction_none_and_sum_labels_teacher_head_and_vmap():
    h, w, b, _, mask, _ = _inputs(2)
    k = jax.random.split(jax.random.key(3), 4)
    ht, wt = jax.random.normal(k[0], (N, 5), F32), jax.random.normal(k[1], (5, V), F32)
    bt = jax.random.normal(k[2], (V,), F32)
    labels = jax.random.randint(k[3], (N,), 0, V)
    b = jnp.where(jnp.isinf(b), 0.0, b)
    zt = (ht.astype(F64) @ wt.astype(F64) + bt.astype(F64))
    cot = jax.random.normal(jax.random.key(4), (N,), F32)

    def mine(h, w, b, reduction="none"):
        return linear_distillation_loss(
            h, w, student_bias=b, teacher_hidden=ht, teacher_head=wt, teacher_bias=bt,
            divergence="reverse_kl", temperature=1.5, token_mask=mask, labels=labels,
            label_weight=0.5, reduction=reduction, chunk_size=CHUNK)

    def ref(h, w, b, reduction="none"):
        return _reference("reverse_kl", h, w, b, zt, t=1.5, mask=mask, labels=labels, lw=0.5,
                          reduction=reduction)

    value, vjp = jax.vjp(jax.jit(mine), h, w, b)
    ref_value, ref_vjp = jax.vjp(ref, h, w, b)
    _close(value, ref_value)
    np.testing.assert_array_equal(value[~mask], 0)
    for g, r in zip(vjp(cot), ref_vjp(cot.astype(F64)), strict=True):  # per-token cotangents
        _close(g, r)
    # vmap over a batch of two students, reduction "sum": each as alone. The teacher is a
    # constant: no gradient flows into it.
    hs = jnp.stack([h, 2 * h])
    batched, gt = jax.jit(jax.vmap(jax.value_and_grad(
        lambda h, ht: linear_distillation_loss(
            h, w, student_bias=b, teacher_hidden=ht, teacher_head=wt, teacher_bias=bt,
            divergence="reverse_kl", temperature=1.5, token_mask=mask, labels=labels,
            label_weight=0.5, reduction="sum", chunk_size=CHUNK), 1), (0, None)))(hs, ht)
    _close(batched, jnp.stack([ref(h, w, b, "sum"), ref(2 * h, w, b, "sum")]))
    np.testing.assert_array_equal(gt, 0)


def test_bfloat16_inputs_accumulate_in_float32():
    h, w, b, zt, mask, vmask = _inputs(5, jnp.bfloat16)

    def mine(h, w, b):
        return linear_distillation_loss(h, w, student_bias=b, teacher_logits=zt,
                                        token_mask=mask, vocab_mask=vmask, chunk_size=CHUNK)

    value, grads = jax.value_and_grad(mine, (0, 1, 2))(h, w, b)
    ref, ref_grads = jax.value_and_grad(
        lambda *a: _reference("forward_kl", *a, zt, mask=mask, vmask=vmask), (0, 1, 2))(
        h.astype(F64), w.astype(F64), b.astype(F64))
    assert value.dtype == jnp.bfloat16 and all(g.dtype == jnp.bfloat16 for g in grads)
    eps = 2.0 ** -8  # one bf16 rounding of the result: the float32 work adds nothing visible
    _close(value, ref, rtol=eps)
    for g, r in zip(grads, ref_grads, strict=True):
        _close(g, r, rtol=eps)


def test_no_unmasked_token_gives_zero_not_nan():
    h, w, b, zt, _, _ = _inputs(6)
    none = jnp.zeros(N, bool)

    def f(h, w, b):
        kw = dict(student_bias=b, teacher_logits=zt, divergence="jsd", token_mask=none,
                  chunk_size=CHUNK)
        mean = linear_distillation_loss(h, w, **kw)
        per_token = linear_distillation_loss(h, w, reduction="none", **kw)
        return mean + jnp.sum(per_token), (mean, per_token)

    (_, (mean, per_token)), grads = jax.jit(jax.value_and_grad(f, (0, 1, 2), has_aux=True))(
        h, w, b)
    assert float(mean) == 0.0  # the mean over no token: 0, not 0 / 0
    np.testing.assert_array_equal(per_token, 0)
    for g in grads:
        np.testing.assert_array_equal(g, 0)


def test_no_n_by_v_array_is_alive():
    """Peak temporary memory of value_and_grad: the chunked loss stays far below one [N, V]
    float32 array; the materialised loss needs several."""
    n, hd, v = 2048, 16, 4096
    args = (jax.ShapeDtypeStruct((n, hd), F32), jax.ShapeDtypeStruct((hd, v), F32),
            jax.ShapeDtypeStruct((n, v), F32))

    def chunked(h, w, zt):
        return linear_distillation_loss(h, w, teacher_logits=zt, chunk_size=32)

    def materialised(h, w, zt):
        zs = jnp.dot(h, w, precision=jax.lax.Precision.HIGHEST)
        return jnp.mean(jaxdiv.kl_divergence_with_logits(zt, zs))

    def temp(f):
        grad = jax.jit(jax.value_and_grad(f, (0, 1)))
        return grad.lower(*args).compile().memory_analysis().temp_size_in_bytes

    logits_bytes = n * v * 4
    assert temp(materialised) > logits_bytes
    assert temp(chunked) < logits_bytes / 4


_SHARDED = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import AxisType, PartitionSpec as P
    from jaxdiv.losses import linear_distillation_loss

    n, h, v = 60, 8, 48  # 60 tokens: not a multiple of the chunk of 16
    k = jax.random.split(jax.random.key(0), 6)
    args = (jax.random.normal(k[0], (n, h)), jax.random.normal(k[1], (h, v)),
            jax.random.normal(k[2], (v,)), jax.random.normal(k[3], (n, h)),
            jax.random.normal(k[4], (h, v)), jnp.arange(n) % 5 != 0,
            jax.random.randint(k[5], (n,), 0, v))

    def loss(hs, ws, bs, ht, wt, mask, labels, reduction, chunk):
        return linear_distillation_loss(
            hs, ws, student_bias=bs, teacher_hidden=ht, teacher_head=wt, divergence="jsd",
            beta=0.3, temperature=2.0, token_mask=mask, labels=labels, label_weight=0.5,
            reduction=reduction, chunk_size=chunk)

    # chunks of 16; of 6 and 7 tokens, not multiples of the data axis (4): rounded up to 8,
    # they crashed in dynamic_slice ("out dim (6) is not divisible by mesh axes")
    for chunk in (16, 6, 7):
        run = jax.jit(lambda *a: jax.value_and_grad(loss, (0, 1, 2))(*a, "mean", chunk))
        one = run(*args)
        mesh = jax.make_mesh((4, 2), ("data", "model"), axis_types=(AxisType.Explicit,) * 2)
        specs = [P("data", None), P(None, "model"), P("model"), P("data", None),
                 P(None, "model"), P("data"), P("data")]
        with jax.set_mesh(mesh):
            sharded = [jax.device_put(x, s) for x, s in zip(args, specs)]
            many = run(*sharded)
            assert jax.typeof(many[1][1]).sharding.spec == P(None, "model")
        for x, y in zip(jax.tree.leaves(one), jax.tree.leaves(many)):
            np.testing.assert_allclose(np.asarray(y), np.asarray(x), rtol=1e-5,
                                       atol=1e-6 * float(np.max(np.abs(np.asarray(x)))))
    # a head from outside the mesh (not device_put): the gradient in the tokens raised
    # "Contracting dimensions are sharded ... specify the output sharding"
    h, w, zt = args[0], args[1], jax.random.normal(k[2], (n, v))
    grad_h = jax.jit(jax.grad(lambda h, zt: linear_distillation_loss(
        h, w, teacher_logits=zt, chunk_size=6)))
    one = grad_h(h, zt)
    with jax.set_mesh(mesh):
        many = grad_h(*(jax.device_put(x, P("data", None)) for x in (h, zt)))
    np.testing.assert_allclose(np.asarray(many), np.asarray(one), rtol=1e-5, atol=1e-7)
    print("OK", len(jax.tree.leaves(run(*args))))
""")


def test_sharded_tokens_and_vocabulary_match_one_device():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
           "JAX_PLATFORMS": "cpu"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.getcwd(), env.get("PYTHONPATH")]))
    out = subprocess.run([sys.executable, "-c", _SHARDED], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "OK 4"  # the value and 3 gradients


def test_token_distillation_experiment_tiny(tmp_path, capsys):
    from experiments import token_distillation

    with pytest.raises(SystemExit) as info:  # bad input: one line, exit 2, nothing written
        token_distillation.main(["--betas", "1.5", "--out", str(tmp_path)])
    assert info.value.code == 2 and "--betas" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
    result = token_distillation.main(
        ["--vocab", "64", "--teacher-steps", "30", "--student-steps", "20", "--batch", "32",
         "--eval-contexts", "64", "--objectives", "jsd", "--betas", "0", "1",
         "--top-k", "4", "--no-figure", "--out", str(tmp_path)])
    on_disk = json.loads((tmp_path / "token_distillation.json").read_text())
    assert set(on_disk) == {"teacher", "students", "example_context", "meta"}
    assert set(on_disk["students"]) == {"jsd(beta=0)", "jsd(beta=1)"}  # forward, reverse KL
    for row in on_disk["students"].values():
        assert set(row) == {"student_entropy", "teacher_entropy", "top_k_coverage",
                            "forward_kl", "reverse_kl", "final_loss"}
        assert all(np.isfinite(v) for v in row.values())
        assert 0 <= row["top_k_coverage"] <= 1 and row["forward_kl"] >= 0
    assert on_disk["students"] == result["students"]
    # Reverse KL concentrates the student more than forward KL does.
    rows = on_disk["students"]
    assert rows["jsd(beta=1)"]["student_entropy"] < rows["jsd(beta=0)"]["student_entropy"]


def test_hard_label_off_the_student_support_is_infinite():
    # -log q = +inf where the label's student probability is 0 (masked, or a -inf logit), as
    # optax's softmax_cross_entropy_with_integer_labels; the log-softmax's finite stand-in gave
    # 1.15e18. label_weight 0 adds nothing (not 0 * inf).
    h, w, zt = jnp.ones((2, 1)), jnp.array([[0.0, 1.0, 2.0]]), jnp.zeros((2, 3))
    vm, labels = jnp.array([False, True, True]), jnp.array([0, 1])
    ref = optax.softmax_cross_entropy_with_integer_labels(
        jnp.where(vm, h @ w, -jnp.inf), labels)
    assert np.isinf(ref[0]) and np.isfinite(ref[1])
    out = linear_distillation_loss(h, w, teacher_logits=zt, vocab_mask=vm, labels=labels,
                                   label_weight=1.0, reduction="none")
    kl = linear_distillation_loss(h, w, teacher_logits=zt, vocab_mask=vm, reduction="none")
    np.testing.assert_allclose(out, kl + ref, rtol=1e-6)
    np.testing.assert_array_equal(
        linear_distillation_loss(h, w, teacher_logits=zt, vocab_mask=vm, labels=labels,
                                 label_weight=0.0, reduction="none"), kl)
    bias = jnp.array([0.0, -jnp.inf, 0.0])  # the student's own -inf logit at label 1
    zt_off = jnp.array([[0.0, -jnp.inf, 0.0]] * 2)  # the teacher agrees: KL finite
    out = linear_distillation_loss(h, w, student_bias=bias, teacher_logits=zt_off,
                                   labels=labels, label_weight=0.5, reduction="none")
    assert np.isfinite(out[0]) and out[1] == np.inf
    g = jax.grad(lambda w: linear_distillation_loss(
        h, w, teacher_logits=zt, vocab_mask=vm, labels=labels, label_weight=1.0))(w)
    assert np.all(np.isfinite(g))
