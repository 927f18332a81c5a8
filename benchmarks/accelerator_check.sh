#!/usr/bin/env bash
# The accelerator check: the whole test suite, then the GPU benchmark rows, on a machine with an
# accelerator and no network, in about 10 minutes on one H200 (the suite alone needs more than
# 4 minutes there: run a selection after `--` when device time is short), ending with a summary.
#
#   bash benchmarks/accelerator_check.sh [--wheels DIR] [--out DIR] [--workers N]
#        [--tests-timeout S] [--bench-timeout S] [--skip-tests] [--skip-bench] [--quick]
#        [-- PYTEST_ARGS...]    (a test selection instead of the whole suite)
#
# Prerequisites: jax with the accelerator's plugin (e.g. jax[cuda13]) already installed in the
# active Python. Everything else jaxdiv and its tests need (ott-jax, jaxopt, lineax, optax, chex,
# POT, scipy, pytest, pytest-xdist, hypothesis, ...) must be importable, or come as wheels in
# --wheels DIR: every wheel there is installed with `pip install --no-index --find-links DIR`
# (so put only what is missing there; a CPU-only jax wheel would replace the CUDA one).
# jaxdiv itself is used from this checkout (PYTHONPATH), not installed.
#
# Stages, each under its own `timeout`, each writing its log into --out as it runs:
#   tests      python -m pytest -n WORKERS -p no:benchmark -v -rfE (every result printed as it
#              completes, so a time-out still shows what failed; SIGINT at the limit, so pytest
#              still prints its failure summary), XLA_PYTHON_CLIENT_PREALLOCATE=false
#   discrete   python -m benchmarks.discrete --rows 65536 --cols 4096 --no-scipy
#   transport  python -m benchmarks.transport --sizes 16384 --epsilon 0.01 --threshold 1e-3
#              --skip-pot --online-size 65536
#   sweep      python -m benchmarks.sweep --fits 4096 --steps 2000 --samples 256
#   distillation  python -m benchmarks.distillation --gpu --rounds 2 (8192 x 4096 x 128,256 bf16)
#   hlo        the compiled HLO of kl_divergence_with_logits and its gradient at (65536, 4096),
#              into hlo_kl_logits.txt (its fusions on the accelerator: RESULTS.md, H200)
# --quick runs a handful of tests and tiny benchmark sizes (also on a CPU: a check of the
# script itself). The summary (summary.md in --out, and on stdout) gives per stage the status,
# passed/failed/error counts for the tests, and the wall time. Exit status: 0 when every stage
# that ran passed, 1 otherwise.
set -uo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
out="results/accelerator"
wheels=""
workers=15
tests_timeout=330
bench_timeout=""
quick=0
run_tests=1
run_bench=1
user_tests=()

usage() { sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --wheels) wheels="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --workers) workers="$2"; shift 2 ;;
    --tests-timeout) tests_timeout="$2"; shift 2 ;;
    --bench-timeout) bench_timeout="$2"; shift 2 ;;
    --skip-tests) run_tests=0; shift ;;
    --skip-bench) run_bench=0; shift ;;
    --quick) quick=1; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; user_tests=("$@"); break ;;
    *) echo "accelerator_check: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

cd "$repo" || exit 2
mkdir -p "$out" || exit 2
out="$(cd "$out" && pwd)"
summary="$out/summary.md"
python="${PYTHON:-python}"

export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1                 # benchmark rows appear as they complete
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # many pytest workers share one device
export HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-ci}"

stages=()
declare -A status seconds counts

say() { echo "[$(date +%H:%M:%S)] $*"; }

# run_stage NAME TIMEOUT_S SIGNAL CMD...: runs CMD under timeout, output to the screen and to
# $out/NAME.log as it comes, and records status and wall time.
run_stage() {
  local name="$1" limit="$2" signal="$3"
  shift 3
  stages+=("$name")
  say "stage $name (limit ${limit} s): $*"
  local start=$SECONDS rc
  timeout --signal="$signal" --kill-after=20 "$limit" "$@" 2>&1 | tee "$out/$name.log"
  rc=${PIPESTATUS[0]}
  seconds[$name]=$((SECONDS - start))
  case "$rc" in
    0) status[$name]="pass" ;;
    124|137) status[$name]="TIMED OUT after ${limit} s" ;;
    130) status[$name]="TIMED OUT after ${limit} s (interrupted)" ;;
    *) status[$name]="FAIL (exit $rc)" ;;
  esac
  say "stage $name: ${status[$name]}, ${seconds[$name]} s"
  write_summary
}

write_summary() {
  {
    echo "# accelerator check, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo
    echo "device: ${device:-?}; $versions"
    echo
    echo "| stage | status | passed | failed | errors | seconds | log |"
    echo "|---|---|---|---|---|---|---|"
    local s
    for s in "${stages[@]}"; do
      echo "| $s | ${status[$s]} | ${counts[$s]:-- | - | -} | ${seconds[$s]} | $s.log |"
    done
  } >"$summary"
}

# --- environment ---------------------------------------------------------------------------
if [[ -n "$wheels" ]]; then
  shopt -s nullglob
  whls=("$wheels"/*.whl)
  shopt -u nullglob
  if [[ ${#whls[@]} -eq 0 ]]; then
    echo "accelerator_check: no .whl files in $wheels" >&2; exit 2
  fi
  say "installing ${#whls[@]} wheels from $wheels (no index)"
  "$python" -m pip install --no-index --find-links "$wheels" "${whls[@]}" >"$out/install.log" 2>&1
  rc=$?
  tail -3 "$out/install.log"
  if [[ $rc -ne 0 ]]; then
    echo "accelerator_check: pip install from $wheels failed (see $out/install.log)" >&2; exit 2
  fi
fi

"$python" - >"$out/environment.txt" 2>&1 <<'EOF'
import platform
from importlib.metadata import PackageNotFoundError, version

import jax

print("device:", jax.devices()[0].device_kind, "x", jax.device_count(),
      f"({jax.default_backend()})")
found = []
for name in ["jax", "jaxlib", "optax", "ott-jax", "jaxopt", "lineax", "chex", "POT", "scipy",
             "numpy", "pytest", "pytest-xdist", "hypothesis"]:
    try:
        found.append(f"{name} {version(name)}")
    except PackageNotFoundError:
        found.append(f"{name} MISSING")
print("versions:", ", ".join(found), "| python", platform.python_version())
EOF
device="$(sed -n 's/^device: //p' "$out/environment.txt")"
versions="$(sed -n 's/^versions: //p' "$out/environment.txt")"
cat "$out/environment.txt"
command -v nvidia-smi >/dev/null && nvidia-smi >"$out/nvidia-smi.txt" 2>&1
if [[ -z "$device" ]]; then
  echo "accelerator_check: jax does not start (see $out/environment.txt)" >&2; exit 2
fi
if [[ "$versions" == *MISSING* ]]; then
  say "WARNING: missing packages (pass their wheels with --wheels): $(grep -oE '[A-Za-z-]+ MISSING' \
    <<<"$versions" | tr '\n' ' ')"
fi
if [[ "$device" == *"(cpu)"* && $quick -eq 0 ]]; then
  say "WARNING: jax's default backend is the CPU: this is not an accelerator run"
fi

if [[ $quick -eq 1 ]]; then
  test_args=(tests/test_io.py tests/test_readme.py::test_pages_have_python_blocks
             jaxdiv/closed_forms.py)
  discrete_args=(--rows 256 --cols 64 --no-scipy)
  transport_args=(--sizes 64 --epsilon 0.1 --threshold 1e-3 --skip-pot --online-size 128
                  --batch-size 32 --w1-size 1000 --repeats 1 --large-size 0)
  sweep_args=(--fits 8 --steps 20 --samples 16 --loop-fits 2 --repeats 1)
  distillation_args=(--tokens 64 --hidden 16 --vocab 256 --rounds 1)
  bench_timeout="${bench_timeout:-120}"
else
  test_args=()
  discrete_args=(--rows 65536 --cols 4096 --no-scipy)
  # --large-size 0: the 65,536-point mmd/energy runs would not fit the stage's time limit
  transport_args=(--sizes 16384 --epsilon 0.01 --threshold 1e-3 --skip-pot --online-size 65536
                  --large-size 0)
  sweep_args=(--fits 4096 --steps 2000 --samples 256 --loop-fits 64 --repeats 3)
  distillation_args=(--gpu --rounds 2)
fi

[[ ${#user_tests[@]} -gt 0 ]] && test_args=("${user_tests[@]}")

# --- the test suite ------------------------------------------------------------------------
if [[ $run_tests -eq 1 ]]; then
  run_stage tests "$tests_timeout" INT \
    "$python" -m pytest -n "$workers" -p no:benchmark -p no:cacheprovider -v -rfE \
    --color=no --tb=short "${test_args[@]}"
  log="$out/tests.log"
  # Live result lines under xdist: "[gw3] [ 12%] PASSED tests/test_x.py::test_y".
  counts[tests]="$(grep -cE '\] (PASSED|XPASS) ' "$log") | $(grep -cE '\] FAILED ' "$log") \
| $(grep -cE '\] ERROR ' "$log")"
  write_summary
  grep -E '^(FAILED|ERROR) ' "$log" >"$out/tests_failed.txt"
fi

# --- the benchmark rows --------------------------------------------------------------------
if [[ $run_bench -eq 1 ]]; then
  run_stage discrete "${bench_timeout:-45}" TERM \
    "$python" -m benchmarks.discrete "${discrete_args[@]}"
  run_stage transport "${bench_timeout:-75}" TERM \
    "$python" -m benchmarks.transport "${transport_args[@]}"
  run_stage sweep "${bench_timeout:-45}" TERM \
    "$python" -m benchmarks.sweep "${sweep_args[@]}"
  run_stage distillation "${bench_timeout:-90}" TERM \
    "$python" -m benchmarks.distillation "${distillation_args[@]}"
  run_stage hlo 60 TERM "$python" -c "import sys, jax, jax.numpy as jnp, jaxdiv
x = jnp.zeros(tuple(map(int, sys.argv[2:4])))
kl = jaxdiv.kl_divergence_with_logits
grad = jax.grad(lambda a, b: kl(a, b).sum(), (0, 1))
with open(sys.argv[1], 'w') as f:
    for fn in (kl, grad):
        f.write(jax.jit(fn).lower(x, x).compile().as_text() + '\\n')" \
    "$out/hlo_kl_logits.txt" "${discrete_args[1]}" "${discrete_args[3]}"
fi

write_summary
echo
cat "$summary"
if [[ -s "$out/tests_failed.txt" ]]; then
  echo
  echo "failed tests:"
  cat "$out/tests_failed.txt"
fi
for s in "${stages[@]}"; do
  [[ "${status[$s]}" == pass ]] || exit 1
done
exit 0
