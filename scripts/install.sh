#!/usr/bin/env bash
# Installs qr-checkin as a systemd service on Raspberry Pi OS: `sudo make install`.
#
#   scripts/install.sh [--root DIR] [--extras LIST] [--python PYTHON]
#
# Safe to run again (upgrades the program, keeps configuration and state). Steps: the system user
# qr-checkin in the groups gpio, input, video and dialout; the apt packages pip's builds need (and on
# 32-bit Arm apt's numpy and PyNaCl: scripts/system_packages.sh); a venv in /opt/qr-checkin/venv that
# sees apt's python3-picamera2 (--system-site-packages); the project installed into it (with the `pi`
# extra on a Raspberry Pi); /etc/qr-checkin (root:qr-checkin 0750, files 0640) and /var/lib/qr-checkin
# (qr-checkin 0750); the unit and the udev rules; daemon-reload, enable, and a (re)start once
# /etc/qr-checkin/device.toml exists.
#
# --root DIR installs into DIR as if it were / (tests, image builds): no user, no apt, no chown, no
# systemctl, no udevadm. pip honours PIP_* variables (PIP_NO_INDEX, PIP_NO_DEPS, ...) for offline installs.
set -euo pipefail

SERVICE=qr-checkin
GROUPS_NEEDED=(gpio input video dialout)
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROOT=""
EXTRAS=auto
PYTHON=python3

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        --root) ROOT=${2:?--root needs a directory}; shift 2 ;;
        --extras) EXTRAS=${2?--extras needs a list such as pi,webcam (or "")}; shift 2 ;;
        --python) PYTHON=${2:?--python needs an interpreter}; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done

if [[ -n "$ROOT" ]]; then
    mkdir -p "$ROOT"
    ROOT=$(cd "$ROOT" && pwd)
    echo "installing into $ROOT: skipping the user, apt, ownership, systemctl and udevadm"
elif [[ $EUID -ne 0 ]]; then
    echo "install.sh: run as root (sudo make install), or with --root DIR" >&2
    exit 1
fi

PREFIX=$ROOT/opt/$SERVICE
VENV=$PREFIX/venv
ETC=$ROOT/etc/$SERVICE
STATE=$ROOT/var/lib/$SERVICE
UNIT=$ROOT/etc/systemd/system/$SERVICE.service
RULES=$ROOT/etc/udev/rules.d/99-$SERVICE.rules

step() { echo "==> $*"; }

if [[ -z "$ROOT" ]]; then
    step "system user $SERVICE in groups ${GROUPS_NEEDED[*]}"
    for group in "${GROUPS_NEEDED[@]}"; do
        getent group "$group" >/dev/null || groupadd --system "$group"
    done
    if ! getent passwd "$SERVICE" >/dev/null; then
        useradd --system --user-group --home-dir "/var/lib/$SERVICE" --no-create-home \
            --shell /usr/sbin/nologin --comment "QR check-in reader" "$SERVICE"
    fi
    # Exactly these supplementary groups, whatever was added by hand before.
    usermod --groups "$(IFS=,; echo "${GROUPS_NEEDED[*]}")" "$SERVICE"
fi

step "directories $ETC and $STATE"
install -d -m 0755 "$PREFIX"
install -d -m 0750 "$ETC" "$STATE"
install -m 0640 "$SRC/config/device.example.toml" "$ETC/device.toml.example"
# Provisioning may have written keys as root 0600: the service must read them, nobody else may.
find "$ETC" -type f -exec chmod 0640 {} +
find "$ETC" -mindepth 1 -type d -exec chmod 0750 {} +
if [[ -z "$ROOT" ]]; then
    chown -R root:"$SERVICE" "$ETC"
    chown "$SERVICE:$SERVICE" "$STATE"
fi

if [[ -z "$ROOT" ]]; then
    # Build tools for what pip compiles (evdev everywhere); on 32-bit Arm also apt's numpy and PyNaCl,
    # which the venv below sees: PyPI has no wheels for them there and numpy compiles for an hour.
    step "system packages (apt)"
    bash "$SRC/scripts/system_packages.sh" --install
fi

step "virtual environment $VENV (with system site packages, for apt's python3-picamera2)"
if ! grep -qs '^include-system-site-packages = true' "$VENV/pyvenv.cfg"; then
    "$PYTHON" -m venv --clear --system-site-packages "$VENV"
fi

if [[ "$EXTRAS" == auto ]]; then
    # gpiozero's pin factory on Raspberry Pi OS Bookworm and later is lgpio.
    if grep -qas 'Raspberry Pi' /proc/device-tree/model; then EXTRAS=pi; else EXTRAS=""; fi
fi
step "installing qr-checkin${EXTRAS:+ [$EXTRAS]}"
# Built from a copy: an in-tree build would leave root-owned build/ and *.egg-info in the checkout.
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
cp -r "$SRC/pyproject.toml" "$SRC/README.md" "$SRC/device" "$SRC/provisioning" "$STAGE/"
find "$STAGE" -name __pycache__ -prune -exec rm -rf {} +
"$VENV/bin/python" -m pip install --disable-pip-version-check --no-input --quiet \
    "$STAGE${EXTRAS:+[$EXTRAS]}"

step "unit $UNIT and udev rules $RULES"
install -D -m 0644 "$SRC/systemd/$SERVICE.service" "$UNIT"
install -D -m 0644 "$SRC/systemd/99-$SERVICE.rules" "$RULES"

if [[ -n "$ROOT" ]]; then
    echo "installed into $ROOT"
    exit 0
fi

step "udev reload, systemd reload and enable"
udevadm control --reload-rules
udevadm trigger --action=change --subsystem-match=input --subsystem-match=tty \
    --subsystem-match=gpio --subsystem-match=media --subsystem-match=dma_heap
systemctl daemon-reload
systemctl enable "$SERVICE.service"
if [[ -f "$ETC/device.toml" ]]; then
    systemctl restart "$SERVICE.service"
    echo "started: journalctl -u $SERVICE -f"
else
    echo "not started yet: provision $ETC/device.toml (qr-provision, or from $ETC/device.toml.example),"
    echo "then: sudo systemctl start $SERVICE && journalctl -u $SERVICE -f"
fi
