#!/usr/bin/env bash
# The apt packages qr-checkin needs on this machine that are not installed yet, one a line.
#
#   scripts/system_packages.sh [--test] [--install]
#
# Always: python3-venv; gcc and the headers (evdev has no wheel on PyPI and compiles everywhere). On
# 32-bit Arm (Raspberry Pi OS armhf) PyPI has no wheels for numpy, PyNaCl, zxing-cpp, Pillow, cffi or
# evdev: numpy and PyNaCl come from apt (python3-numpy 1.24, python3-nacl 1.5 meet our floors; the venv
# sees them through --system-site-packages), the rest compile, so g++ and cmake (zxing-cpp), the image
# libraries Pillow is built with (JPEG, zlib, FreeType and WebP, which the tests use) and libffi (cffi).
#
#   --test     also what the test suite needs: systemd (systemd-analyze), python3-setuptools and
#              python3-wheel (the offline install test), e2fsprogs (the SD-card image), make (the
#              chaos harness builds libfaketime from the source its wheel ships where its library
#              is for another CPU)
#   --install  installs them with apt-get when root; otherwise prints the command that would
#
# DEB_ARCH stands in for dpkg's architecture (to ask what another machine gets).
set -euo pipefail

TEST=0
INSTALL=0
for arg in "$@"; do
    case "$arg" in
        --test) TEST=1 ;;
        --install) INSTALL=1 ;;
        *) echo "system_packages.sh: unknown option '$arg' (--test, --install)" >&2; exit 2 ;;
    esac
done

arch=${DEB_ARCH:-$(dpkg --print-architecture 2>/dev/null || true)}
wanted=(python3-venv python3-dev gcc libc6-dev)
case "$arch" in
    armhf | armel)
        wanted+=(python3-numpy python3-nacl g++ cmake pkg-config libffi-dev
            libjpeg-dev zlib1g-dev libfreetype-dev libwebp-dev)
        ;;
esac
if [[ $TEST == 1 ]]; then
    wanted+=(systemd python3-setuptools python3-wheel e2fsprogs make)
fi

if ! command -v dpkg-query >/dev/null; then
    echo "system_packages.sh: not a Debian system; install the equivalents of: ${wanted[*]}" >&2
    exit 0
fi
missing=()
for pkg in "${wanted[@]}"; do
    [[ $(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null) == ii* ]] || missing+=("$pkg")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
if [[ $INSTALL == 0 ]]; then
    printf '%s\n' "${missing[@]}"
    exit 0
fi

if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "installing ${missing[*]} with apt-get" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
    echo "missing system packages: sudo apt-get install ${missing[*]}" >&2
fi
