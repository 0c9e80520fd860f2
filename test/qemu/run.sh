#!/bin/bash
# Run Go test binaries (and other commands) as root inside a throwaway VM
# whose cgroups are pure v2: qemu boots the host's Debian kernel with a busybox
# initramfs holding the binaries, an init mounts cgroup2 at /sys/fs/cgroup
# with every controller enabled, runs them, prints one result line and powers
# off. The script exits with the tests' status and fails, instead of hanging,
# when the VM has not reported within the bound it prints.
#
# Usage: test/qemu/run.sh [options] [TEST_BINARY...]
#   -p PKG        build PKG's tests (CGO_ENABLED=0 go test -c) and run them in
#                 a copy of the package directory's testdata; repeatable
#   -r REGEX      -test.run REGEX for every test binary
#   -a ARGS       more arguments for every test binary (default: -test.v)
#   -f SRC[:DST]  copy a file or directory into the VM (DST defaults to SRC
#                 made absolute); repeatable
#   -m MODULE     load kernel MODULE (and what it depends on) first, e.g. loop
#                 for block devices; repeatable
#   -e VAR=VALUE  environment for the tests and commands; repeatable
#   -c COMMAND    run COMMAND with sh in the VM after the test binaries;
#                 repeatable
#   -t SECONDS    give up after SECONDS (default 170)
#   -k KERNEL     kernel image (default: the newest /boot/vmlinuz-*)
#   -M MIB        VM memory (default 1024)
# TEST_BINARY is a static test binary; it runs in /work/<name>.
#
# Example: test/qemu/run.sh -m loop -p ./internal/cgroups
set -euo pipefail

die() { echo "qemu-run: $*" >&2; exit 2; }

bound=170 kernel="" mem=1024 run_re="" test_args="-test.v"
pkgs=() files=() modules=() envs=() commands=()
while getopts "p:r:a:f:m:e:c:t:k:M:h" opt; do
	case $opt in
	p) pkgs+=("$OPTARG") ;;
	r) run_re=$OPTARG ;;
	a) test_args=$OPTARG ;;
	f) files+=("$OPTARG") ;;
	m) modules+=("$OPTARG") ;;
	e) envs+=("$OPTARG") ;;
	c) commands+=("$OPTARG") ;;
	t) bound=$OPTARG ;;
	k) kernel=$OPTARG ;;
	M) mem=$OPTARG ;;
	h) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) exit 2 ;;
	esac
done
shift $((OPTIND - 1))
binaries=("$@")

[[ -n $kernel ]] || kernel=$(ls -1v /boot/vmlinuz-* 2>/dev/null | tail -n1)
[[ -r $kernel ]] || die "no readable kernel image (${kernel:-none in /boot}); install linux-image-amd64 or pass -k"
kver=${kernel##*/vmlinuz-}
busybox=$(command -v busybox || true)
[[ -n $busybox ]] || die "no busybox; apt-get install busybox-static"
file -L "$busybox" | grep -q 'statically linked' || die "$busybox is not static; apt-get install busybox-static"
command -v cpio >/dev/null || die "no cpio; apt-get install cpio"
command -v qemu-system-x86_64 >/dev/null || die "no qemu-system-x86_64; apt-get install qemu-system-x86"
[[ ${#pkgs[@]} -gt 0 || ${#binaries[@]} -gt 0 || ${#commands[@]} -gt 0 ]] || die "nothing to run (see -h)"

work=$(mktemp -d "${TMPDIR:-/tmp}/berth-qemu.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,work,root,lib/modules,etc}
cp "$busybox" "$root/bin/busybox"

# Test binaries: /work/<name>/<name>, plus the package's testdata for -p.
names=()
add_binary() { # add_binary BINARY [TESTDATA_DIR]
	local name
	name=$(basename "$1")
	mkdir -p "$root/work/$name"
	cp "$1" "$root/work/$name/$name"
	[[ -z ${2:-} || ! -d $2 ]] || cp -a "$2" "$root/work/$name/testdata"
	names+=("$name")
}
for p in "${pkgs[@]}"; do
	name=$(basename "$p").test
	echo "qemu-run: building $p" >&2
	CGO_ENABLED=0 go test -c -o "$work/$name" "$p"
	add_binary "$work/$name" "$p/testdata"
done
for b in "${binaries[@]}"; do
	[[ -x $b ]] || die "$b is not an executable"
	file -L "$b" | grep -q 'statically linked' || die "$b is not static (build with CGO_ENABLED=0)"
	add_binary "$b"
done
for f in "${files[@]}"; do
	src=${f%%:*} dst=${f#*:}
	[[ $f == *:* ]] || dst=$(realpath "$src")
	[[ -e $src ]] || die "-f $src: no such file"
	mkdir -p "$root/$(dirname "$dst")"
	cp -a "$src" "$root/$dst"
done

# Modules, dependencies first, from modules.dep.
loads=()
add_module() {
	local line mod deps d
	line=$(grep -E "(^|/)$1\.ko(\.xz|\.zst|\.gz)?:" "/lib/modules/$kver/modules.dep" | head -n1) ||
		die "module $1 not in /lib/modules/$kver/modules.dep"
	mod=${line%%:*} deps=${line#*:}
	for d in $deps; do add_module "$(basename "${d%%.ko*}")"; done
	[[ " ${loads[*]} " == *" $(basename "$mod") "* ]] && return
	case $mod in
	*.xz) xz -dc "/lib/modules/$kver/$mod" >"$root/lib/modules/$(basename "${mod%.xz}")" ;;
	*.zst) zstd -dqc "/lib/modules/$kver/$mod" >"$root/lib/modules/$(basename "${mod%.zst}")" ;;
	*.gz) gzip -dc "/lib/modules/$kver/$mod" >"$root/lib/modules/$(basename "${mod%.gz}")" ;;
	*) cp "/lib/modules/$kver/$mod" "$root/lib/modules/" ;;
	esac
	loads+=("$(basename "${mod%.ko*}").ko")
}
for m in "${modules[@]}"; do add_module "$m"; done

# The VM's init: everything it runs is written out here, quoted.
{
	echo '#!/bin/busybox sh'
	# First move onto a tmpfs: pivot_root (which a container runtime needs)
	# refuses to leave the initramfs, whose mount has no parent.
	echo 'if [ ! -e /.tmpfs-root ]; then'
	echo '	/bin/busybox mkdir -p /newroot && /bin/busybox mount -t tmpfs -o mode=755 tmpfs /newroot'
	echo '	for d in /*; do [ "$d" = /newroot ] || /bin/busybox cp -a "$d" /newroot/; done'
	echo '	/bin/busybox touch /newroot/.tmpfs-root'
	echo '	exec /bin/busybox switch_root /newroot /init'
	echo 'fi'
	echo '/bin/busybox --install -s'
	echo 'export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root TMPDIR=/tmp'
	echo 'mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev'
	echo 'mount -t tmpfs tmpfs /tmp; mount -t tmpfs tmpfs /run'
	echo 'mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup || echo "qemu-run: cannot mount cgroup2"'
	echo 'for c in $(cat /sys/fs/cgroup/cgroup.controllers); do echo +$c >/sys/fs/cgroup/cgroup.subtree_control; done'
	echo 'echo "qemu-run: kernel $(uname -r), cgroup2 controllers: $(cat /sys/fs/cgroup/cgroup.subtree_control)"'
	for m in "${loads[@]}"; do printf 'insmod /lib/modules/%q || echo "qemu-run: insmod %q failed"\n' "$m" "$m"; done
	for e in "${envs[@]}"; do printf 'export %q\n' "$e"; done
	echo 'ip link set lo up 2>/dev/null'
	echo 'status=0'
	for n in "${names[@]}"; do
		args=$test_args
		[[ -z $run_re ]] || args="$args -test.run $(printf %q "$run_re")"
		printf 'echo "qemu-run: === %s"\n' "$n"
		printf 'cd /work/%q && ./%q %s || status=1\n' "$n" "$n" "$args"
	done
	for c in "${commands[@]}"; do
		printf 'echo "qemu-run: === sh -c %q"\n' "$c"
		printf 'cd /work && sh -c %q || status=1\n' "$c"
	done
	echo 'if [ $status = 0 ]; then echo "BERTH-QEMU-RESULT: PASS"; else echo "BERTH-QEMU-RESULT: FAIL"; fi'
	echo 'sync; poweroff -f'
} >"$root/init"
chmod +x "$root/init"

(cd "$root" && find . | cpio -o -H newc --quiet) >"$work/initrd.cpio"

log=$work/console.log
echo "qemu-run: booting $kernel under TCG ($(du -sh "$work/initrd.cpio" | cut -f1) initramfs); giving up after ${bound}s" >&2
set +e
timeout --kill-after=5 "$bound" qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m "$mem" \
	-nographic -nic none -no-reboot -kernel "$kernel" -initrd "$work/initrd.cpio" \
	-append "console=ttyS0 quiet panic=-1 rdinit=/init" </dev/null 2>&1 | tee "$log"
qemu_status=${PIPESTATUS[0]}
set -e
if grep -q '^BERTH-QEMU-RESULT: PASS' "$log"; then
	echo "qemu-run: PASS" >&2
	exit 0
fi
if grep -q '^BERTH-QEMU-RESULT: FAIL' "$log"; then
	echo "qemu-run: FAIL (see the output above)" >&2
	exit 1
fi
if [[ $qemu_status == 124 || $qemu_status == 137 ]]; then
	echo "qemu-run: FAIL: the VM did not report within ${bound}s" >&2
else
	echo "qemu-run: FAIL: the VM stopped (qemu status $qemu_status) without reporting a result" >&2
fi
exit 1
