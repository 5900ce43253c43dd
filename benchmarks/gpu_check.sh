#!/usr/bin/env bash
# One-shot GPU check of skphotoz (issue #16), for a fresh machine with one CUDA GPU.
#
#   bash benchmarks/gpu_check.sh                # on the GPU machine, from anywhere
#   bash benchmarks/gpu_check.sh --cpu-dry-run  # the same steps on the CPU at tiny sizes
#
# Run from the repository (it cd's to the repo root). Steps, each under `timeout`, the whole
# script within about 9 minutes (BUDGET_S, default 520 s); a failed step is recorded and the
# script goes on:
#   1. .venv: `python3 -m venv .venv && .venv/bin/pip install -e .` as asked; if that fails
#      (no package index), a venv that sees the image's own packages (torch, ...) through a
#      .pth file and an editable install without dependencies; if that fails too, the source
#      tree on the venv's path and a `skphotoz` script. An existing .venv that imports
#      skphotoz and torch is kept.
#   2. benchmarks/throughput.py on CUDA (bf16, channels-last: the engine's defaults) for the
#      CPU defaults and MOCO_PRESETS["published"]: images/s, peak GPU memory, the data
#      pipeline's share and whole epochs from an archive against numpy (with their ratio),
#      MoCo/bare ratio, stage profile, reference loop.
#   3. a 6-epoch pretraining of the published preset from an 8,192-galaxy 107-px archive
#      (GPU utilisation within it, in the summary); with 2 GPUs, the same under a 2-process
#      NCCL torchrun.
#   4. `skphotoz simulate` a 4,096-galaxy archive, then a 1-GPU NCCL torchrun of
#      `skphotoz pretrain ... --device cuda --epochs 1`.
#   5. the full backbone x stem x view grid, in the time left.
#   6. the preset with the bf16 autocast off (fp32), in the time left.
#   nvidia-smi samples utilization.gpu and memory.used every second throughout.
#
# Writes at most 8 files to $OUT if set, else benchmarks/results/gpu_check/ (dry run: a
# temporary folder unless OUT is set): gpu_check.log (everything printed), summary.txt,
# phases.csv, env.txt, gpu_util.csv, throughput_cuda.csv, throughput_cuda_grid.csv,
# throughput_cuda_fp32.csv (throughput_cpu*.csv in a dry run).
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1

MODE=gpu
if [[ "${1:-}" == "--cpu-dry-run" ]]; then
    MODE=cpu
elif [[ -n "${1:-}" ]]; then
    echo "usage: bash benchmarks/gpu_check.sh [--cpu-dry-run]" >&2
    exit 2
fi
BUDGET_S=${BUDGET_S:-520}
WORK=$(mktemp -d /tmp/skphotoz-gpu-check.XXXXXX)
if [[ -n "${OUT:-}" ]]; then
    RESULTS=$OUT
elif [[ $MODE == gpu ]]; then
    RESULTS=benchmarks/results/gpu_check
else
    RESULTS=$WORK/results
fi
mkdir -p "$RESULTS"
LOG=$RESULTS/gpu_check.log
PHASES=$RESULTS/phases.csv
echo "phase,start_s,end_s,rc" >"$PHASES"
exec > >(tee -a "$LOG") 2>&1
export PYTHONUNBUFFERED=1

SMI_PID=
cleanup() {
    if [[ -n $SMI_PID ]]; then kill "$SMI_PID" 2>/dev/null; fi
    rm -rf "$WORK/archive.h5" "$WORK/embedder.skops" "$WORK/preset.h5" "$WORK/preset.skops" \
        "$WORK/preset2.skops"
}
trap cleanup EXIT

# Seconds left of the budget, less a reserve for what follows.
left() { echo $((BUDGET_S - SECONDS - ${1:-0})); }

# step NAME SECONDS COMMAND...: run COMMAND under timeout, record it in phases.csv.
step() {
    local name=$1 limit=$2
    shift 2
    if ((limit < 15)); then
        echo "=== $name: skipped, $limit s left of the budget"
        echo "\"$name\",,,skipped" >>"$PHASES"
        return 0
    fi
    echo
    echo "=== $name (timeout ${limit} s, at ${SECONDS} s of ${BUDGET_S} s) ==="
    local start rc
    start=$(date +%s.%N)
    timeout --kill-after=10 "$limit" "$@"
    rc=$?
    echo "\"$name\",$start,$(date +%s.%N),$rc" >>"$PHASES"
    if ((rc == 124 || rc == 137)); then
        echo "=== $name: TIMED OUT after $limit s (rc $rc)"
    elif ((rc != 0)); then
        echo "=== $name: FAILED (rc $rc)"
    else
        echo "=== $name: ok"
    fi
    return 0
}

echo "skphotoz GPU check, mode $MODE, $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(nproc) CPUs"
echo "results in $RESULTS, scratch in $WORK"

# ---------------------------------------------------------------- 1. environment
setup_venv() {
    if [[ -x .venv/bin/python ]] && .venv/bin/python -c "import skphotoz, torch" 2>/dev/null; then
        echo "setup: .venv exists and imports skphotoz and torch; kept"
        return 0
    fi
    echo "setup: attempt 1: python3 -m venv .venv && .venv/bin/pip install -e ."
    if python3 -m venv .venv &&
        PIP_DEFAULT_TIMEOUT=15 PIP_RETRIES=0 PIP_DISABLE_PIP_VERSION_CHECK=1 \
            timeout 90 .venv/bin/pip install -e . &&
        .venv/bin/python -c "import skphotoz, torch"; then
        echo "setup: attempt 1 worked"
        return 0
    fi
    echo "setup: attempt 1 FAILED (above); attempt 2: the image's packages through a .pth file"
    [[ -x .venv/bin/python ]] || python3 -m venv --without-pip .venv || return 1
    local site
    site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    # Where python3 finds its packages (torch's folder first), for the venv to find them too.
    python3 - >"$site/_image_packages.pth" <<'EOF'
import os, site, sysconfig
paths = []
try:
    import torch
    paths.append(os.path.dirname(os.path.dirname(torch.__file__)))
except ImportError:
    pass
paths += [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
paths += site.getsitepackages()
print("\n".join(dict.fromkeys(p for p in paths if os.path.isdir(p))))
EOF
    echo "setup: $site/_image_packages.pth ->"
    sed 's/^/    /' "$site/_image_packages.pth"
    # The venv's own setuptools (Python < 3.12) would shadow the image's newer one.
    [[ -x .venv/bin/pip ]] && .venv/bin/pip uninstall -q -y setuptools 2>/dev/null
    if [[ -x .venv/bin/pip ]] &&
        PIP_DISABLE_PIP_VERSION_CHECK=1 timeout 60 .venv/bin/pip install --no-index --no-deps \
            --no-build-isolation -e . &&
        .venv/bin/python -c "import skphotoz, torch"; then
        echo "setup: attempt 2 worked"
        return 0
    fi
    echo "setup: attempt 2 FAILED; attempt 3: the source tree on the venv's path"
    pwd >"$site/_skphotoz_source.pth"
    cat >.venv/bin/skphotoz <<EOF
#!$PWD/.venv/bin/python
import sys
from skphotoz.cli import main
sys.exit(main())
EOF
    chmod +x .venv/bin/skphotoz
    .venv/bin/python -c "import skphotoz, torch" && echo "setup: attempt 3 worked"
}
# A machine that cannot reach a package index but whose python3 already holds the
# dependencies (a GPU image with torch): use it as it is, with the source tree on its path.
# A scikit-learn older than 1.6, or a missing skops (pure Python), is installed from wheels
# carried in .whl/, if any (pip download skops scikit-learn --no-deps -d .whl).
SKLEARN_OK='import sys, sklearn; sys.exit(tuple(map(int, sklearn.__version__.split(".")[:2])) < (1, 6))'
USE_IMAGE=0
if [[ $MODE == gpu && ! -x .venv/bin/python ]] && python3 -c "import torch" 2>/dev/null; then
    if { ! python3 -c "$SKLEARN_OK" || ! python3 -c "import skops"; } 2>/dev/null &&
        ls .whl/*.whl >/dev/null 2>&1; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
    fi
    if python3 -c "import h5py, joblib, skops, tqdm, scipy, torchvision" 2>/dev/null &&
        python3 -c "$SKLEARN_OK" 2>/dev/null; then
        USE_IMAGE=1
        echo "setup: python3 holds torch and every dependency; no virtual environment"
    fi
fi
if ((USE_IMAGE == 0)); then
    step "setup .venv" 170 bash -c "$(declare -f setup_venv); setup_venv"
fi
PY=$PWD/.venv/bin/python
if ! "$PY" -c "import skphotoz, torch" 2>/dev/null; then
    echo "setup: .venv does not import skphotoz and torch; falling back to python3 + PYTHONPATH"
    PY=$(command -v python3)
    export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
    printf '#!%s\nimport sys\nfrom skphotoz.cli import main\nsys.exit(main())\n' "$PY" \
        >"$WORK/skphotoz"
    chmod +x "$WORK/skphotoz"
    SKPHOTOZ=$WORK/skphotoz
else
    SKPHOTOZ=$PWD/.venv/bin/skphotoz
fi

{
    echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "python: $PY"
    timeout 60 "$PY" - <<'EOF'
import platform, sys
print("python", sys.version.split()[0], platform.machine())
for name in ("torch", "torchvision", "numpy", "h5py", "sklearn", "skphotoz"):
    try:
        module = __import__(name)
        print(name, getattr(module, "__version__", "?"), getattr(module, "__file__", ""))
    except Exception as error:  # noqa: BLE001
        print(name, "NOT IMPORTABLE:", error)
try:
    import torch
    print("cuda available:", torch.cuda.is_available(), "cuda", torch.version.cuda,
          "nccl", torch.cuda.nccl.version() if torch.cuda.is_available() else "-")
    if torch.cuda.is_available():
        print("gpu:", torch.cuda.get_device_name(0))
except Exception as error:  # noqa: BLE001
    print("torch check failed:", error)
EOF
    command -v nvidia-smi >/dev/null && timeout 20 nvidia-smi
    nproc
    free -g 2>/dev/null
} >"$RESULTS/env.txt" 2>&1
cat "$RESULTS/env.txt"

if [[ $MODE == gpu ]]; then
    DEVICE=cuda
    SIZE=()
    N_ARCHIVE=4096
    WORKERS=0,4,8
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 1 \
            >"$RESULTS/gpu_util.csv" 2>&1 &
        SMI_PID=$!
    else
        echo "nvidia-smi not found: no utilisation samples"
    fi
else
    DEVICE=cpu
    SIZE=(--quick --threads 1)  # the CPU may be shared: 2 threads could oversubscribe it
    N_ARCHIVE=256
    WORKERS=0,1
fi
THROUGHPUT=(benchmarks/throughput.py --device "$DEVICE" "${SIZE[@]}")

# ------------------------------------------------------- 2. the two setups, bf16
step "throughput: defaults + published preset" "$(left 270)" \
    "$PY" "${THROUGHPUT[@]}" --setups defaults,preset --grid main \
    --sections pipeline,grid,ratio,reference,profile --workers "$WORKERS" --loader-workers 4 \
    --torch-profile --out "$RESULTS/throughput_$DEVICE.csv"

if [[ -x .venv/bin/torchrun ]]; then
    TORCHRUN=(.venv/bin/torchrun)
else
    TORCHRUN=("$PY" -m torch.distributed.run)
fi

# --------- 3. the published preset pretraining from an archive: GPU utilisation
# (the summary gives nvidia-smi's mean utilisation within this step), images/s from
# the epoch table; then, on a machine with 2 GPUs, the same with 2 NCCL processes.
if [[ $MODE == gpu ]]; then
    PRESET_N=8192
    PRESET_SIZE=107
    PRESET=(--preset published)
else
    PRESET_N=64
    PRESET_SIZE=64
    PRESET=(--batch-size 16 --crop-size 32)
fi
step "simulate preset archive" "$(left 210)" \
    "$SKPHOTOZ" simulate "$WORK/preset.h5" --n "$PRESET_N" --stamp-size "$PRESET_SIZE"
CROP=()
[[ $MODE == gpu ]] && CROP=(--crop 64)
step "pretrain preset from the archive (1 process)" "$(left 130)" \
    "$SKPHOTOZ" pretrain "$WORK/preset.h5" "${CROP[@]}" "${PRESET[@]}" --epochs 6 \
    --device "$DEVICE" --output "$WORK/preset.skops"
GPUS=0
command -v nvidia-smi >/dev/null && GPUS=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
if ((GPUS >= 2)); then
    step "torchrun 2 GPUs NCCL: pretrain preset from the archive" "$(left 70)" \
        "${TORCHRUN[@]}" --standalone --nproc_per_node=2 "$SKPHOTOZ" pretrain "$WORK/preset.h5" \
        "${CROP[@]}" "${PRESET[@]}" --epochs 6 --device "$DEVICE" --output "$WORK/preset2.skops"
else
    echo "=== torchrun 2 GPUs: skipped, $GPUS GPU(s) here"
fi
rm -f "$WORK/preset.h5"

# ------------------------------------- 4. torchrun of the CLI defaults, 1 GPU
step "simulate archive" "$(left 55)" \
    "$SKPHOTOZ" simulate "$WORK/archive.h5" --n "$N_ARCHIVE"
step "torchrun 1 GPU: skphotoz pretrain" "$(left 30)" \
    "${TORCHRUN[@]}" --standalone --nproc_per_node=1 "$SKPHOTOZ" pretrain "$WORK/archive.h5" \
    --output "$WORK/embedder.skops" --device "$DEVICE" --epochs 1
if [[ -f $WORK/embedder.skops ]]; then
    echo "torchrun: wrote $(du -h "$WORK/embedder.skops" | cut -f1) embedder"
fi

# ------------------------------------------------- 5-6. grid and fp32, time permitting
step "throughput grid" "$(left 15)" \
    "$PY" "${THROUGHPUT[@]}" --setups defaults --grid full --sections grid \
    --out "$RESULTS/throughput_${DEVICE}_grid.csv"
FP32=(--fp32)
[[ $MODE == cpu ]] && FP32=()
step "throughput preset fp32" "$(left 0)" \
    "$PY" "${THROUGHPUT[@]}" --setups preset --grid main --sections grid "${FP32[@]}" \
    --out "$RESULTS/throughput_${DEVICE}_fp32.csv"

if [[ -n $SMI_PID ]]; then
    kill "$SMI_PID" 2>/dev/null
    SMI_PID=
fi

# ----------------------------------------------------------------- summary
echo
"$PY" benchmarks/_gpu_summary.py "$RESULTS" | tee "$RESULTS/summary.txt"
echo "total ${SECONDS} s; files in $RESULTS:"
ls -l "$RESULTS"
