#!/usr/bin/env bash
# `make test-arm [ARCH=arm64|armhf]`: the test suite on Arm, in a Debian bookworm root under qemu.
#
#   [ARCH=arm64|armhf] scripts/test_arm.sh [pytest arguments...]
#
# What a new user of a Raspberry Pi does, on this machine: a Debian bookworm root for the Pi's CPU
# (debootstrap from Debian's archive) with what Raspberry Pi OS has (systemd, apt's python3-setuptools
# and python3-wheel, make, git, e2fsprogs, its /etc/hosts and host name), run through user-mode
# emulation (qemu-user-static registered with binfmt_misc). A clone of this repository's HEAD (commit
# first: uncommitted changes are not in it) is copied in, then `make setup` (which installs with apt
# what the tests need, as on a Pi) and the suite run there. Prints the pytest summary, exits with
# pytest's status (2 when it cannot set up: not root, no binfmt, no root filesystem).
#
# The root is built once and cached in $ARM_CACHE (/var/cache/qr-checkin-arm); every run starts from
# it unchanged (an overlay, dropped afterwards), so `make setup`'s apt step runs each time; apt's
# downloads (through an overlay per run: apt locks them) and pip's cache (wheels compiled on armhf too)
# are kept beside it. Needs root: debootstrap, chroot and mounts do. Slow: minutes to build the root, ~15 min (arm64) to an hour (armhf, which
# compiles) per run. Not part of `make test` or CI.
#
# Environment: ARM_CACHE, DEBIAN_MIRROR (http://deb.debian.org/debian), KEEP_RUN=1 keeps the run's
# overlay (the clone, its .venv) for a look afterwards, ARM_RUN another command than pytest.
set -euo pipefail

ARCH=${ARCH:-arm64}
PYTEST_ARGS=("$@")
# What runs in the clone after `make setup` (bench/arm.py runs its own); "$@" are the arguments.
ARM_RUN=${ARM_RUN:-'.venv/bin/python -m pytest -q "$@"'}
SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${ARM_CACHE:-/var/cache/qr-checkin-arm}
# What Raspberry Pi OS Lite brings that the project relies on; `make setup` adds the rest with apt.
BASE_PACKAGES=systemd,python3,python3-setuptools,python3-wheel,ca-certificates,make,git,e2fsprogs,procps

die() {
    echo "test-arm: $*" >&2
    exit 2
}

case "$ARCH" in
    arm64) QEMU=aarch64 ;;
    armhf) QEMU=arm ;;
    *) die "ARCH must be arm64 (64-bit Raspberry Pi OS) or armhf (32-bit), not '$ARCH'" ;;
esac
[[ $EUID -eq 0 ]] || die "run as root (sudo make test-arm): debootstrap, chroot and the mounts need it"

need_tools() {
    local missing=()
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    [[ -x /usr/libexec/qemu-binfmt/$QEMU-binfmt-P || -x /usr/bin/qemu-$QEMU-static ]] ||
        missing+=(qemu-user-static)
    [[ ${#missing[@]} -eq 0 ]] && return
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
    echo "test-arm: installing ${missing[*]} with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Registers qemu for the Pi's ELF binaries with the kernel (F: the interpreter is opened now, so it runs
# inside the chroot too). The kernel's table is shared by the whole machine, so this is done only when
# absent and never undone.
register_binfmt() {
    local dir=/proc/sys/fs/binfmt_misc conf=/usr/lib/binfmt.d/qemu-$QEMU.conf
    if [[ ! -e $dir/register ]]; then
        mount -t binfmt_misc binfmt_misc "$dir" 2>/dev/null ||
            die "binfmt_misc cannot be mounted at $dir (a container without it?): no way to run $ARCH binaries"
    fi
    if [[ ! -e $dir/qemu-$QEMU ]]; then
        [[ -f $conf ]] || die "no $conf (qemu-user-static too old?)"
        if ! grep -v '^#' "$conf" >"$dir/register" 2>/dev/null; then
            die "binfmt cannot be registered here (writing $dir/register failed): no way to run $ARCH binaries"
        fi
    fi
    grep -qx enabled "$dir/qemu-$QEMU" ||
        die "binfmt for qemu-$QEMU is registered but disabled ($dir/qemu-$QEMU): echo 1 > $dir/qemu-$QEMU"
}

# The base root, built once: the stamp names the package list, so changing it rebuilds.
build_root() {
    local root=$1 stamp="$SUITE $ARCH $BASE_PACKAGES"
    if [[ -f $root/.qr-checkin-root && $(cat "$root/.qr-checkin-root") == "$stamp" ]]; then
        echo "test-arm: reusing the $ARCH root $root"
        return
    fi
    echo "test-arm: building a Debian $SUITE $ARCH root in $root (debootstrap, emulated: minutes)"
    rm -rf "$root.new"
    if ! debootstrap --arch="$ARCH" --variant=minbase --include="$BASE_PACKAGES" \
        "$SUITE" "$root.new" "$MIRROR" >"$CACHE/debootstrap-$ARCH.log" 2>&1; then
        tail -20 "$CACHE/debootstrap-$ARCH.log" >&2
        die "debootstrap failed (log: $CACHE/debootstrap-$ARCH.log)"
    fi
    cat >"$root.new/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
EOF
    # Raspberry Pi OS's /etc/hosts and host name (debootstrap writes neither).
    printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\nff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n\n127.0.1.1\traspberrypi\n' \
        >"$root.new/etc/hosts"
    echo raspberrypi >"$root.new/etc/hostname"
    chroot "$root.new" apt-get clean
    echo "$stamp" >"$root.new/.qr-checkin-root"
    rm -rf "$root"
    mv "$root.new" "$root"
}

# The CPU seconds a small CPU-bound Python loop takes (best of five), run by the interpreter "$@". CPU
# time, not wall time: on a machine shared with other work, the wall time says more about the load.
loop_seconds() {
    "$@" -I -S -B -c '
import time
def once():
    t = time.process_time()
    s = 0
    for i in range(500_000):
        s += i * i % 7
    return time.process_time() - t
print(min(once() for _ in range(5)))'
}

# How much slower the emulated CPU runs Python than this one, measured now (under the same load and
# priority as the run): tests/support/slowdown.py's factor, which the tests' waits and timeouts and the
# chaos latency bound multiply by. QR_CHECKIN_SLOWDOWN set beforehand is taken as it is.
measure_slowdown() {
    local root=$1 native emulated
    if [[ -n ${QR_CHECKIN_SLOWDOWN:-} ]]; then
        SLOWDOWN=$QR_CHECKIN_SLOWDOWN
        return
    fi
    native=$(loop_seconds python3) || die "python3 is needed here to measure the CPU factor"
    emulated=$(loop_seconds chroot "$root" /usr/bin/python3) || die "python3 does not run in the $ARCH root"
    SLOWDOWN=$(python3 -c "print(f'{max(1.0, $emulated / $native):.1f}')")
    echo "test-arm: CPU factor $SLOWDOWN (a Python loop: ${native:0:6} s here, ${emulated:0:6} s in the $ARCH root)"
}

# All of the run is in a function, read whole before it starts: an edit to this file during an hour's
# run must not change what the rest of it does.
main() {
    need_tools
    register_binfmt
    mkdir -p "$CACHE"
    ROOT=$CACHE/$SUITE-$ARCH
    build_root "$ROOT"
    measure_slowdown "$ROOT"
    # pytest-timeout's per-test limit too (its environment variable overrides the ini's, not a marker).
    local ini_timeout
    ini_timeout=$(sed -n 's/^timeout *= *\([0-9.]*\).*/\1/p' "$SRC/pyproject.toml" | head -1)
    PYTEST_TIMEOUT=$(python3 -c "print(round(${ini_timeout:-120} * $SLOWDOWN))")

    RUN=$CACHE/runs/$ARCH-$(date -u +%Y%m%dT%H%M%SZ)-$$
    LOG=$CACHE/test-$ARCH-$(date -u +%Y%m%dT%H%M%SZ).log
    mkdir -p "$RUN"/{upper,work,merged,apt-upper,apt-work} "$CACHE/keep-$ARCH"/{pip,apt}
    cleanup() {
        if [[ ${KEEP_RUN:-} == 1 ]]; then echo "test-arm: the run is kept in $RUN/upper"; else rm -rf "$RUN"; fi
    }
    trap cleanup EXIT

    if [[ -n $(git -C "$SRC" status --porcelain --untracked-files=no) ]]; then
        echo "test-arm: note: uncommitted changes in $SRC are not tested (the clone is of HEAD)"
    fi
    echo "test-arm: $ARCH, $(git -C "$SRC" log -1 --format='%h %s' | cut -c1-80)"

    # Everything below runs in a mount namespace of its own: the overlay and the bind mounts vanish with it,
    # whatever way the run ends. The host's CA bundle stands in for the root's, so pip and apt in the root
    # trust what they trust here (a proxy with its own CA included).
    START=$SECONDS
    set +e
    unshare --mount --uts --propagation private bash -euo pipefail -c '
        root=$1 run=$2 keep=$3 src=$4 arm_run=$5 slowdown=$6 pytest_timeout=$7; shift 7
        m=$run/merged
        mount -t overlay overlay -o "lowerdir=$root,upperdir=$run/upper,workdir=$run/work" "$m"
        mount -t proc proc "$m/proc"
        mount --rbind /sys "$m/sys"
        mount --rbind /dev "$m/dev"
        mount -t tmpfs tmpfs "$m/run"
        mkdir -p "$m/root/.cache/pip"
        mount --bind "$keep/pip" "$m/root/.cache/pip"
        # apt'"'"'s downloads through an overlay of their own: apt locks the directory it downloads into, and
        # two runs of one architecture at once (the suite and bench.arm) must not wait on each other. What
        # this run downloaded is added to the kept ones afterwards.
        mount -t overlay overlay \
            -o "lowerdir=$keep/apt,upperdir=$run/apt-upper,workdir=$run/apt-work" "$m/var/cache/apt/archives"
        cp -L /etc/resolv.conf "$m/etc/resolv.conf"
        [[ -f /etc/ssl/certs/ca-certificates.crt ]] &&
            mount --bind /etc/ssl/certs/ca-certificates.crt "$m/etc/ssl/certs/ca-certificates.crt"
        hostname raspberrypi
        git clone --quiet --no-hardlinks "$src" "$m/root/qr-checkin"
        status=0
        chroot "$m" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            HOME=/root LANG=C.UTF-8 TERM=dumb PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
            PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180 PIP_RETRIES=10 \
            QR_CHECKIN_SLOWDOWN="$slowdown" PYTEST_TIMEOUT="$pytest_timeout" \
            ${http_proxy:+http_proxy=$http_proxy} ${https_proxy:+https_proxy=$https_proxy} \
            ${no_proxy:+no_proxy=$no_proxy} ARM_RUN="$arm_run" \
            bash -c "cd /root/qr-checkin && uname -m && make setup && eval \"\$ARM_RUN\"" pytest "$@" ||
            status=$?
        for deb in "$run"/apt-upper/*.deb; do
            name=${deb##*/}
            [[ -f $deb && ! -e $keep/apt/$name ]] || continue
            cp "$deb" "$keep/apt/.$name.$$" && mv -f "$keep/apt/.$name.$$" "$keep/apt/$name"
        done
        exit "$status"
    ' test-arm "$ROOT" "$RUN" "$CACHE/keep-$ARCH" "$SRC" "$ARM_RUN" "$SLOWDOWN" "$PYTEST_TIMEOUT" "${PYTEST_ARGS[@]}" 2>&1 | tee "$LOG"
    STATUS=${PIPESTATUS[0]}
    set -e
    ELAPSED=$((SECONDS - START))

    SUMMARY=$(grep -E '(passed|failed|errors?|skipped|no tests ran).* in [0-9.]+s( \([0-9:]+\))?( =+)?$' "$LOG" |
        tail -1 || true)
    echo
    echo "test-arm $ARCH: ${SUMMARY:-no pytest summary (setup failed?)}"
    echo "test-arm $ARCH: CPU factor $SLOWDOWN (waits and timeouts scaled by it)"
    echo "test-arm $ARCH: exit $STATUS after $((ELAPSED / 60)) min $((ELAPSED % 60)) s; log $LOG"
    exit "$STATUS"
}

main
