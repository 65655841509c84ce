#!/usr/bin/env bash
# Regenerates the locks in this folder from the ranged requirements files, with hashes:
#   cuda.txt      the bot with PyPI's torch: on Linux a CUDA build (the host needs only the driver)
#   cpu.txt       the bot with torch's CPU-only build, from PyTorch's own index
#   dev-cpu.txt   cpu.txt plus the test and lint tools (what CI and developers install)
#   dev-cuda.txt  cuda.txt plus the same tools (the GPU benchmark, a developer with a GPU)
# Run it from anywhere: bash locks/refresh.sh   (needs uv: pip install uv)
# An upgrade is a decision: raise a range in requirements*.txt, run this, run the suite, commit
# the ranges and the locks together.
#
# TORCH_CPU_LINKS: where torch's CPU wheels are listed (a find-links page or a folder of wheels).
set -euo pipefail
cd "$(dirname "$0")/.."

torch_cpu_links=${TORCH_CPU_LINKS:-https://download.pytorch.org/whl/cpu/torch/}
# The torch release every lock pins is in locks/torch-cuda.in and locks/torch-cpu.in: the
# newest one the range in requirements.txt admits that has been run on a GPU and a CPU.
# Universal: one lock for every Python from this one up, markers decide the rest.
python_floor=3.11

compile() {
  # $1: output file; the rest: extra arguments for uv
  local out=$1; shift
  uv pip compile --quiet --generate-hashes --universal --python-version "$python_floor" \
    --no-emit-index-url --custom-compile-command "bash locks/refresh.sh" \
    --output-file "$out" "$@"
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for pair in "requirements.txt locks/cuda.txt" "requirements-dev.txt locks/dev-cuda.txt"; do
  set -- $pair
  compile "$2" "$1" --constraint locks/torch-cuda.in
done

# The CPU build is torch==X+cpu, found only on PyTorch's index. pip is given its torch page as
# find-links, read once, rather than the whole index, which it would ask about every package.
for pair in "requirements.txt locks/cpu.txt" "requirements-dev.txt locks/dev-cpu.txt"; do
  set -- $pair
  compile "$2" "$1" --constraint locks/torch-cpu.in --find-links "$torch_cpu_links"
  { echo "--find-links https://download.pytorch.org/whl/cpu/torch/"; cat "$2"; } > "$tmp/with-index"
  mv "$tmp/with-index" "$2"
done
echo "locks written: locks/cuda.txt locks/dev-cuda.txt locks/cpu.txt locks/dev-cpu.txt"
