#!/usr/bin/env bash
# Installs what building, testing and running visopt needs on Debian 12, from Debian's packages only.
# Idempotent: apt-get skips what is already there. Run as root (or with sudo).
set -euo pipefail
packages=(
  g++ cmake make                       # toolchain
  libeigen3-dev nlohmann-json3-dev     # core headers: Eigen (reference backend), JSON (safetensors, reports)
  libdnnl-dev                          # oneDNN CPU backend (optional: the build skips it when absent)
  ocl-icd-opencl-dev                   # Debian's oneDNN CMake config requires OpenCL (only a Recommends of libdnnl-dev)
  libjpeg-dev libpng-dev libstb-dev    # image loading: JPEG (libjpeg-turbo), PNG (libpng), BMP and GIF (stb_image)
  libcli11-dev                         # examples: command lines
  python3-matplotlib                   # examples/levels' chart (tools/plot_levels.py)
  catch2                               # tests
  python3-torch python3-torchvision    # the oracle: fixtures and expected logits
  libopenblas0-pthread                 # a fast BLAS for that torch (Debian's default reference BLAS is ~10x slower)
  clang-14 libfuzzer-14-dev            # tools/fuzz.sh: the libFuzzer targets for the safetensors reader and image loading
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo_cmd=""
  [[ $(id -u) -ne 0 ]] && sudo_cmd="sudo"
  echo "visopt: installing ${missing[*]}"
  if ! { $sudo_cmd apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"; }; then
    # A machine without Debian's archive (no network, another distribution, no root): go on with what is
    # here. CMake then builds what it finds and says what is missing (oneDNN, examples, the oracle).
    echo "visopt: warning: could not install ${missing[*]}; continuing with what this machine has" >&2
  fi
fi
