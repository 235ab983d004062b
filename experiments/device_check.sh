#!/usr/bin/env bash
# The prepared accelerator check: run it first whenever a GPU (or TPU) is
# at hand, and commit what it measures.
#
#   experiments/device_check.sh            # on the accelerator, < 8 minutes
#   experiments/device_check.sh --smoke    # the same steps, shrunk, any CPU
#
# 1. Installs the accelerator build of JAX unless JAX already sees one
#    (wheels in .whl/ are installed first, for machines without a network).
# 2. Runs the tests that matter on an accelerator: the grouped population
#    against each architecture trained alone, and a diverging candidate's
#    isolation, in 'vmap' mode, with the sparse and the dense propagation.
# 3. Runs `experiments.benchmark_population` in 'vmap' mode: ML-100K at
#    P = 1, 16, 64, 256 and Gowalla (LightGCN's split) at P = 8, 32.
#
# Everything it measures goes to $OUT (default /tmp/gnas_device_check):
# environment.json, tests.log, throughput/<platform>_<dataset>_small.json.
# Then, on any machine:
#
#   python -m experiments.merge_device_check --device_out=$OUT
#
# puts those records beside the committed CPU ones (results/throughput/)
# and rewrites results/throughput.md and its figure.
#
# Datasets: $GNAS_DATA_DIR must hold ml-100k/ and gowalla/ (a machine with
# no network cannot download them); the smoke run uses the synthetic data.
set -euo pipefail

smoke=0
case "${1:-}" in
  --smoke) smoke=1 ;;
  '') ;;
  *) echo "Error: unknown option '$1' (the only option is --smoke)." >&2
     exit 2 ;;
esac

cd "$(dirname "$0")/.."
out="${OUT:-/tmp/gnas_device_check}"
mkdir -p "$out/throughput"
python="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1
# Float32 products in full precision, so results compare with the CPU's.
export JAX_DEFAULT_MATMUL_PRECISION=highest

if [[ -d .whl ]] && compgen -G '.whl/*.whl' > /dev/null; then
  "$python" -m pip install -q --no-index --no-deps --no-compile \
    --no-cache-dir --upgrade --target /tmp/gnas_site .whl/*.whl
  export PYTHONPATH="/tmp/gnas_site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"

if [[ $smoke == 0 ]] && ! "$python" -c \
    "import jax, sys; sys.exit(jax.default_backend() == 'cpu')" 2>/dev/null
then
  echo "JAX sees no accelerator: installing jax[cuda12]." >&2
  "$python" -m pip install -q --upgrade "jax[cuda12]" || {
    echo "Error: could not install jax[cuda12] (no network?); put its" \
      "wheels in .whl/ or install it first." >&2
    exit 1
  }
fi

"$python" - "$out/environment.json" <<'PY'
import json, sys
import jax
devices = jax.devices()
json.dump({'jax': jax.__version__, 'platform': jax.default_backend(),
           'devices': [d.device_kind for d in devices]},
          open(sys.argv[1], 'w'), indent=2)
print('JAX', jax.__version__, 'on', jax.default_backend(),
      [d.device_kind for d in devices])
PY

echo '--- tests (vmap mode, both backends)'
tests='equals_each_architecture and vmap or diverging and vmap'
if [[ $smoke == 1 ]]; then
  tests='diverging and vmap'
fi
for backend in sparse dense; do
  GNAS_TEST_BACKEND=$backend "$python" -m pytest -q -p no:cacheprovider \
    tests/test_population.py -k "$tests" 2>&1 | tee -a "$out/tests.log"
done

echo '--- benchmark_population (vmap mode)'
platform=$("$python" -c "import jax; print(jax.default_backend())")
if [[ $smoke == 1 ]]; then
  # dataset, sizes, whether the superset program is measured too.
  runs=('synthetic 1,2 false')
  common=(--steps=2 --specialised=1 --fidelity_epochs=1)
else
  runs=('ml-100k 1,16,64,256 true' 'gowalla 8,32 false')
  common=(--steps=10 --specialised=4)
fi
for run in "${runs[@]}"; do
  read -r dataset sizes superset <<< "$run"
  "$python" -m experiments.benchmark_population --mode=vmap \
    --dataset="$dataset" --population_sizes="$sizes" "${common[@]}" \
    --superset="$superset" \
    --out="$out/throughput/${platform}_${dataset}_small.json"
done
echo "device check done: $out"
