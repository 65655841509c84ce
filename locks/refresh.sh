#!/usr/bin/env bash
# Regenerates the locks in this folder from the ranged requirements files, with hashes:
#   cuda.txt      the bot, Linux x86_64, PyPI's torch (a CUDA build; the host needs only the driver)
#   cpu.txt       the bot, Linux x86_64, torch's CPU-only build from PyTorch's own index
#   dev-cpu.txt   cpu.txt plus the test and lint tools (what CI and developers install)
# Run it from anywhere: bash locks/refresh.sh   (needs uv: pip install uv)
# An upgrade is a decision: raise a range in requirements*.txt, run this, run the suite, commit
# the ranges and the locks together.
#
# TORCH_CPU_LINKS: where torch's CPU wheels are listed (a find-links page or a folder of wheels).
set -euo pipefail
cd "$(dirname "$0")/.."

torch_cpu_links=${TORCH_CPU_LINKS:-https://download.pytorch.org/whl/cpu/torch/}
# The version every lock pins: the newest release the range in requirements.txt admits that
# has been run on a GPU and a CPU (bench/README.md).
torch_version=2.13.0
python_floor=3.11

compile() {
  # $1: output file; the rest: extra arguments for uv
  local out=$1; shift
  uv pip compile --quiet --generate-hashes --python-version "$python_floor" \
    --no-emit-index-url --custom-compile-command "bash locks/refresh.sh" \
    --output-file "$out" "$@"
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "torch==$torch_version" > "$tmp/torch-cuda.txt"
compile locks/cuda.txt requirements.txt --constraint "$tmp/torch-cuda.txt" \
  --python-platform x86_64-manylinux_2_28

# The CPU build is torch==X+cpu, found only on PyTorch's index. pip is given its torch page as
# find-links, read once, rather than the whole index, which it would ask about every package.
echo "torch==$torch_version+cpu" > "$tmp/torch-cpu.txt"
for pair in "requirements.txt locks/cpu.txt" "requirements-dev.txt locks/dev-cpu.txt"; do
  set -- $pair
  compile "$2" "$1" --constraint "$tmp/torch-cpu.txt" --find-links "$torch_cpu_links" \
    --python-platform x86_64-manylinux_2_28
  { echo "--find-links https://download.pytorch.org/whl/cpu/torch/"; cat "$2"; } > "$tmp/with-index"
  mv "$tmp/with-index" "$2"
done
echo "locks written: locks/cuda.txt locks/cpu.txt locks/dev-cpu.txt"
