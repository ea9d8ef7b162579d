#!/usr/bin/env bash
# Installs the system packages the project needs, only when they are missing (idempotent):
#   pkg-config, libturbojpeg0-dev, libopencv-dev  - FFCV compiles and links against them
#   dataset-fashion-mnist                          - real labelled images for the demo and tests
set -euo pipefail

missing=()
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
pkg-config --exists opencv4 2>/dev/null || missing+=(libopencv-dev)
[ -e /usr/include/turbojpeg.h ] || missing+=(libturbojpeg0-dev)
ls /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz >/dev/null 2>&1 \
    || missing+=(dataset-fashion-mnist)

if [ ${#missing[@]} -eq 0 ]; then
    echo "setup_system: system packages present"
    exit 0
fi

echo "setup_system: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "setup_system: need root (or sudo) to install: ${missing[*]}" >&2
        echo "  on Debian/Ubuntu: apt-get install -y ${missing[*]}" >&2
        echo "  with conda: use environment.yml instead of make setup" >&2
        exit 1
    fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup_system: no apt-get; install ${missing[*]} with your package manager" >&2
    echo "  (or use the conda environment: conda env create -f environment.yml)" >&2
    exit 1
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
echo "setup_system: done"
