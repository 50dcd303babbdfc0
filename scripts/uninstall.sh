#!/usr/bin/env bash
# Removes qr-checkin: `sudo make uninstall` (or `sudo make uninstall PURGE=1`).
#
#   scripts/uninstall.sh [--root DIR] [--purge]
#
# Stops and disables the service and removes the program (/opt/qr-checkin), the unit and the udev
# rules. The configuration (/etc/qr-checkin: device id, keys, certificates), the state
# (/var/lib/qr-checkin: undelivered check-ins, audit log) and the user stay, so a reinstall picks up
# where it left off; --purge removes them too. The groups gpio, input, video and dialout are shared
# with the rest of the system and always stay. --root DIR works as in install.sh.
set -euo pipefail

SERVICE=qr-checkin
ROOT=""
PURGE=0

while [[ $# -gt 0 ]]; do
    case "$1" in
        --root) ROOT=${2:?--root needs a directory}; shift 2 ;;
        --purge) PURGE=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "uninstall.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done

if [[ -n "$ROOT" ]]; then
    ROOT=$(cd "$ROOT" && pwd)
elif [[ $EUID -ne 0 ]]; then
    echo "uninstall.sh: run as root (sudo make uninstall), or with --root DIR" >&2
    exit 1
fi

ETC=$ROOT/etc/$SERVICE
STATE=$ROOT/var/lib/$SERVICE
UNIT=$ROOT/etc/systemd/system/$SERVICE.service
RULES=$ROOT/etc/udev/rules.d/99-$SERVICE.rules

if [[ -z "$ROOT" ]] && [[ -f "$UNIT" ]]; then
    echo "==> stopping and disabling $SERVICE"
    systemctl disable --now "$SERVICE.service" || true
fi

echo "==> removing the program, the unit and the udev rules"
rm -rf "$ROOT/opt/$SERVICE"
rm -f "$UNIT" "$RULES"

if [[ -z "$ROOT" ]]; then
    systemctl daemon-reload
    udevadm control --reload-rules
fi

if [[ $PURGE -eq 1 ]]; then
    echo "==> purging configuration and state"
    rm -rf "$ETC" "$STATE"
    if [[ -z "$ROOT" ]] && getent passwd "$SERVICE" >/dev/null; then
        userdel "$SERVICE"
    fi
else
    echo "kept: $ETC (configuration, keys) and $STATE (undelivered check-ins, audit log);"
    echo "      remove them with: sudo make uninstall PURGE=1"
fi
