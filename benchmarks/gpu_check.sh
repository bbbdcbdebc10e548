#!/usr/bin/env bash
# GPU check (issue 20): the compiled-kernel tests and the GPU benchmark rows, in one run of
# under 8 minutes on an H200, written to ONE JSON.
#
# Usage (from anywhere; it works in the repository root):
#
#     bash benchmarks/gpu_check.sh [--quick]        # or: make gpu-check
#
# Steps, each bounded with `timeout` (seconds; the whole run is also held to
# GPU_CHECK_BUDGET_S, default 450, by shortening the later steps):
#
#   preflight  60  record nvidia-smi, jax / jaxlib, JAX's devices; exit 2 unless
#                  jax.default_backend() == "gpu"
#   tests     150  pytest tests/kernels -k Compiled (the TestXxxKernelCompiled classes), with
#                  --junitxml; pytest-xdist workers when installed
#   bench-iou  60  python -m benchmarks.run --device gpu --only iou  (box_iou vs the
#                  write-bandwidth floor, GIoU, torchvision CUDA)
#   bench-nms 150  ... --only nms  (greedy 5k / 20k / 100k vs torchvision CUDA, 16 x 20k batch)
#   bench-iic  60  ... --only iic  (iic_loss up to 4096 x 50 vs torch CUDA, the train step)
#   report         python -m benchmarks.gpu_report assemble  (stdlib only; a second or two)
#
# Each benchmark family is its own process, so one that runs out of time loses only its own
# rows. Output: ${OUT:-benchmarks/results}/gpu_check-<UTC date-time>.json (machine, per-file
# test counts, failures, benchmark rows, steps, wall time, gpu_validated_candidates) and a
# .log beside it. The script never edits kernels/__init__.py: it prints the GPU_VALIDATED
# line that the passing kernels give, to be copied by hand.
#
# Python: $PYTHON when set; else `python3` when it imports jax (the device machine's image
# has jax with CUDA, torch and torchvision there); else .venv/bin/python when it imports jax;
# else (only when nvidia-smi sees a GPU) it creates .venv and runs
# `pip install -e ".[dev]" "jax[cuda12]"`, which needs the network. jaxvision is not
# installed into that Python: when `import jaxvision.kernels` does not resolve to this
# checkout's kernels/, a sitecustomize.py in a temporary directory on PYTHONPATH maps it
# there (what the editable install does), so nothing is installed or downloaded.
#
# Environment: GPU_CHECK_MODE=full|quick (default full: the issue's rows need the full GPU
# sizes; quick = IoU 1k / 5k, NMS 5k and 16 x 20k, IIC 1000 x 10), GPU_CHECK_BUDGET_S (450),
# GPU_CHECK_PYTEST_K (-k expression, default "Compiled"; set it empty for every test),
# GPU_CHECK_TEST_WORKERS (pytest-xdist workers, default 4; 0 = none), OUT (output folder).
#
# Exit status: 0 all tests passed and every step finished with 0; 1 a test failed, a step
# failed or timed out (the JSON is still written); 2 no GPU; 3 no usable Python / setup.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

MODE="${GPU_CHECK_MODE:-full}"
for arg in "$@"; do
  case "$arg" in
    --quick) MODE=quick ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_check: unknown argument $arg (only --quick, --help)" >&2; exit 3 ;;
  esac
done
case "$MODE" in full|quick) ;; *) echo "gpu_check: GPU_CHECK_MODE must be full or quick" >&2; exit 3 ;; esac

BUDGET_S="${GPU_CHECK_BUDGET_S:-450}"  # the whole run; 8 minutes is 480
REPORT_RESERVE_S=15                    # kept back for the report
KILL_AFTER_S=5                         # `timeout -k`: SIGKILL this long after SIGTERM
PYTEST_K="${GPU_CHECK_PYTEST_K-Compiled}"
WORKERS="${GPU_CHECK_TEST_WORKERS:-4}"
STARTED_EPOCH="$(date +%s)"
STAMP="$(date -u +%Y-%m-%dT%H-%M-%SZ)"
OUT_DIR="${OUT:-benchmarks/results}"
REPORT="$OUT_DIR/gpu_check-$STAMP.json"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
LOG="$WORK/log"  # copied beside the report at the end (and on a setup failure)
STEPS="$WORK/steps.tsv"
: >"$STEPS"
: >"$LOG"

say() { echo "[gpu_check $(( $(date +%s) - STARTED_EPOCH ))s] $*" | tee -a "$LOG"; }
keep_log() { mkdir -p "$OUT_DIR" && cp "$LOG" "$OUT_DIR/gpu_check-$STAMP.log"; }
die() {  # die CODE MESSAGE: exit 2 (no GPU) leaves no file behind; 3 (setup) keeps the log
  local code=$1; shift
  say "ERROR: $*"
  (( code == 2 )) || keep_log || true
  exit "$code"
}

# --- Python ---------------------------------------------------------------------------------
imports_jax() { "$1" -c 'import jax' >/dev/null 2>&1; }
gpu_visible() { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; }

if [[ -n "${PYTHON:-}" ]]; then
  PY="$PYTHON"
  imports_jax "$PY" || die 3 "\$PYTHON=$PY cannot import jax"
elif command -v python3 >/dev/null 2>&1 && imports_jax python3; then
  PY="$(command -v python3)"
elif [[ -x .venv/bin/python ]] && imports_jax .venv/bin/python; then
  PY=".venv/bin/python"
else
  gpu_visible || die 2 "no GPU here: no Python imports jax, and nvidia-smi sees no GPU, so there is nothing to check (the compiled-kernel tests and GPU benchmarks need an NVIDIA GPU)"
  say "no Python imports jax: creating .venv and installing .[dev] and jax[cuda12] (needs the network)"
  { [[ -x .venv/bin/python ]] || python3 -m venv .venv; } 2>&1 | tee -a "$LOG"
  if ! timeout -k "$KILL_AFTER_S" 240 .venv/bin/python -m pip install --quiet -e ".[dev]" "jax[cuda12]" 2>&1 | tee -a "$LOG"; then
    die 3 "pip install -e '.[dev]' 'jax[cuda12]' into .venv failed (no network, or no matching wheel?); install jax with CUDA yourself and rerun with PYTHON=/path/to/python"
  fi
  PY=".venv/bin/python"
fi
say "python: $PY ($("$PY" -c 'import sys; print(sys.version.split()[0])'))"

# jaxvision from this checkout: kernels/ installs as jaxvision.kernels (pyproject package-dir),
# so a plain checkout on sys.path is not enough: when `import jaxvision.kernels` does not give
# this checkout's kernels/, a meta-path finder maps it there. And when `grain` is missing (the
# device machine's image has no grain), a placeholder module stands in for it: the benchmark
# runner imports jaxvision.train (through jaxvision.experiment), whose checkpoint module
# imports grain at the top but calls it only when saving a data iterator, which no benchmark
# or kernel test does; any use of the placeholder raises ImportError. Both go in a
# sitecustomize.py on PYTHONPATH (it then runs the sitecustomize it shadows, if any); what was
# done is recorded in the JSON (machine.env.GPU_CHECK_SHIMS).
kernels_here() {
  "$PY" -c 'import os, sys, jaxvision.kernels as k; sys.exit(os.path.realpath(os.path.dirname(k.__file__)) != os.path.realpath(sys.argv[1]))' "$REPO/kernels" >/dev/null 2>&1
}
map_kernels=False; stub_grain=False; shims=()
"$PY" -c 'import grain' >/dev/null 2>&1 || { stub_grain=True; shims+=("grain placeholder"); }
kernels_here || { map_kernels=True; shims+=("jaxvision.kernels -> $REPO/kernels"); }
if [[ $map_kernels == True || $stub_grain == True ]]; then
  mkdir -p "$WORK/pyshim"
  cat >"$WORK/pyshim/sitecustomize.py" <<EOF
# Written by benchmarks/gpu_check.sh for one run (see the comment there).
import importlib.machinery, importlib.util, os, sys, types
_KERNELS = $("$PY" -c 'import sys; print(repr(sys.argv[1]))' "$REPO/kernels")
if $map_kernels:
  class _JaxvisionKernels:
    @classmethod
    def find_spec(cls, name, path=None, target=None):
      if name != "jaxvision.kernels":
        return None
      return importlib.util.spec_from_file_location(
          name, os.path.join(_KERNELS, "__init__.py"), submodule_search_locations=[_KERNELS])
  sys.meta_path.insert(0, _JaxvisionKernels)
if $stub_grain and "grain" not in sys.modules:
  class _Placeholder(types.ModuleType):
    def __getattr__(self, name):
      if name.startswith("__"):
        raise AttributeError(name)
      raise ImportError(f"grain.{name}: grain is not installed here; benchmarks/gpu_check.sh "
                        "put a placeholder in its place so that jaxvision.train imports")
  sys.modules["grain"] = _Placeholder("grain")
# Then the sitecustomize this one shadows, if any.
_here = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.machinery.PathFinder.find_spec(
    "sitecustomize", [p for p in sys.path if os.path.abspath(p or ".") != _here])
if _spec is not None and _spec.loader is not None:
  _spec.loader.exec_module(importlib.util.module_from_spec(_spec))
EOF
  export PYTHONPATH="$WORK/pyshim${PYTHONPATH:+:$PYTHONPATH}"
  kernels_here || die 3 "cannot import jaxvision (with jaxvision.kernels from $REPO/kernels) with $PY: $("$PY" -c 'import jaxvision.kernels' 2>&1 | tail -1)"
  say "shims (sitecustomize on PYTHONPATH): ${shims[*]}"
fi
export GPU_CHECK_SHIMS="${shims[*]:-}"

# --- Steps ----------------------------------------------------------------------------------
# budget CAP: CAP, shortened so that the whole run ends within BUDGET_S.
budget() {
  local cap=$1 left=$(( BUDGET_S - REPORT_RESERVE_S - KILL_AFTER_S - ($(date +%s) - STARTED_EPOCH) ))
  (( left < cap )) && cap=$left
  echo "$cap"
}

# step NAME CAP CMD...: runs CMD under `timeout`, logs it, records name, rc, wall, budget.
step() {
  local name=$1 cap=$2 b t0 rc
  shift 2
  b=$(budget "$cap")
  if (( b < 10 )); then
    say "step $name: skipped, the run's $BUDGET_S s are spent"
    printf '%s\tskipped\t0\t%s\n' "$name" "$b" >>"$STEPS"
    return 0
  fi
  say "step $name (at most $b s): $*"
  t0=$(date +%s)
  set +e
  timeout -k "$KILL_AFTER_S" "$b" "$@" 2>&1 | tee -a "$LOG"
  rc=${PIPESTATUS[0]}
  set -e
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$(( $(date +%s) - t0 ))" "$b" >>"$STEPS"
  if (( rc == 124 || rc == 137 )); then say "step $name: TIMED OUT after $b s"
  else say "step $name: exit $rc"; fi
  return 0
}

export PYTHONUNBUFFERED=1

# 1. The backend: exit 2 unless JAX runs on a GPU.
step preflight 60 "$PY" -m benchmarks.gpu_report preflight --out "$WORK/preflight.json"
pre_rc=$(tail -n 1 "$STEPS" | cut -f 2)
if [[ "$pre_rc" == 2 ]]; then
  echo "gpu_check: no GPU: jax.default_backend() is not 'gpu' for $PY (see the line above)." \
       "The compiled-kernel tests and GPU benchmarks need an NVIDIA GPU with jax[cuda]; nothing was run." >&2
  exit 2
elif [[ "$pre_rc" != 0 ]]; then
  die 3 "the preflight step failed (exit $pre_rc): JAX could not start; see ${REPORT%.json}.log"
fi

# 2. The compiled-kernel tests. Several processes share the GPU: no preallocation.
pytest_args=(-q -rs tests/kernels -o junit_family=xunit1 --junitxml "$WORK/tests.xml"
             -p no:cacheprovider)
[[ -n "$PYTEST_K" ]] && pytest_args+=(-k "$PYTEST_K")
if (( WORKERS > 0 )) && "$PY" -c 'import xdist' >/dev/null 2>&1; then
  pytest_args+=(-n "$WORKERS")
fi
step tests 150 env XLA_PYTHON_CLIENT_PREALLOCATE=false "$PY" -m pytest "${pytest_args[@]}"

# 3. The GPU benchmark rows, one family per process. JAX takes at most 60% of the GPU's
# memory, leaving room for torch's CUDA comparators in the same process.
bench_args=(--device gpu --no-plots)
[[ "$MODE" == quick ]] && bench_args+=(--quick)
export XLA_PYTHON_CLIENT_MEM_FRACTION="${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.6}"
report_benches=()
for spec in iou:60 nms:150 iic:60; do
  family=${spec%%:*}
  mkdir -p "$WORK/bench-$family"
  step "bench-$family" "${spec##*:}" "$PY" -m benchmarks.run --only "$family" \
       --out "$WORK/bench-$family" "${bench_args[@]}"
  report_benches+=(--bench "$family=$WORK/bench-$family")
done

# 4. The one JSON.
mkdir -p "$OUT_DIR"
set +e
"$PY" -m benchmarks.gpu_report assemble --out "$REPORT" --preflight "$WORK/preflight.json" \
  --junit "$WORK/tests.xml" --steps "$STEPS" "${report_benches[@]}" --mode "$MODE" \
  --started "$STARTED_EPOCH" --command "benchmarks/gpu_check.sh $*" 2>&1 | tee -a "$LOG"
rc=${PIPESTATUS[0]}
set -e
say "done in $(( $(date +%s) - STARTED_EPOCH )) s; report $REPORT, log ${REPORT%.json}.log"
keep_log || true
exit "$rc"
