#!/bin/bash
# Follow the README on a pristine Debian 12: a fresh bookworm root filesystem
# (mmdebstrap, else debootstrap; only git, ca-certificates and sudo added),
# the committed HEAD of this checkout cloned into it by an unprivileged user
# with sudo, then the README's commands in a chroot: the line that installs
# make, `make run` in the background, the README's curl line against it,
# `make test`. Prints what failed; exits 1 if anything did.
#
# Usage (as root, or through sudo): scripts/fresh-machine-check.sh
#   LR_FRESH_DIR=/var/tmp/lr-fresh-machine   where the root and the cache go
#   LR_FRESH_REFRESH=1   bootstrap again instead of using the cached tarball
#   LR_FRESH_KEEP=1      keep the root filesystem afterwards (for a look inside)
#   LR_FRESH_SKIP_TEST=1 stop after make run and curl
#   LR_FRESH_USER=root   run the README as root instead of a user with sudo
# Needs Debian's apt repositories and the npm registry. Not part of make test.
# The chroot shares the host's network: make run listens on 127.0.0.1:8080,
# or on a free port (said so) when 8080 is taken.
set -euo pipefail
# One compound command, read whole before it runs: editing the checkout while
# a run is under way does not change what the run executes.
{
if [ "$(id -u)" -ne 0 ]; then
	exec sudo env "LR_FRESH_DIR=${LR_FRESH_DIR:-}" "LR_FRESH_REFRESH=${LR_FRESH_REFRESH:-}" \
		"LR_FRESH_KEEP=${LR_FRESH_KEEP:-}" "LR_FRESH_SKIP_TEST=${LR_FRESH_SKIP_TEST:-}" \
		"LR_FRESH_USER=${LR_FRESH_USER:-}" "$0" "$@"
fi

src=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
# shellcheck source=scripts/debian-root.sh
. "$src/scripts/debian-root.sh"
head=$(git -C "$src" rev-parse HEAD)
work=${LR_FRESH_DIR:-/var/tmp/lr-fresh-machine}
cache=$work/bookworm.tar
root=$work/root.$$
user=${LR_FRESH_USER:-newcomer}
t_start=$(date +%s)
results=()
failed=0
run_pid=""

say() { printf '%s fresh-machine: %s\n' "$(date -u +%H:%M:%S)" "$*"; }
result() { # status step seconds
	results+=("$(printf '%-4s %-34s %5ss' "$1" "$2" "$3")")
	[ "$1" = ok ] || failed=1
}
in_root() { # as the user, in a login shell, in the clone: in_root COMMAND
	chroot "$root" runuser -l "$user" -c "cd ~/lambda-registry && $1"
}

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	set +e
	if [ -n "$run_pid" ] && kill -0 "$run_pid" 2>/dev/null; then
		kill -TERM -- "-$run_pid" 2>/dev/null
		wait "$run_pid" 2>/dev/null
	fi
	# Whatever still runs inside the root was started by this script.
	if [ -d "$root" ]; then
		if ! debian_root_leave "$root"; then
			say "still mounted under $root: not removing it"
		elif [ "${LR_FRESH_KEEP:-}" = 1 ]; then
			say "kept $root"
		else
			rm -rf "$root"
		fi
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$work"

# 1. A pristine root filesystem, bootstrapped once and cached as a tarball.
t0=$(date +%s)
debian_root_cache "$cache" "${LR_FRESH_REFRESH:-}" || exit 2
debian_root_enter "$cache" "$root"
result ok "root filesystem (bookworm)" $(($(date +%s) - t0))

# 2. A user with sudo clones the repository (the committed HEAD only).
git -C "$src" bundle create "$root/tmp/lambda-registry.bundle" HEAD 2>/dev/null
if [ "$user" != root ]; then
	chroot "$root" useradd -m -s /bin/bash "$user"
	echo "$user ALL=(ALL) NOPASSWD: ALL" >"$root/etc/sudoers.d/$user"
	chmod 0440 "$root/etc/sudoers.d/$user"
fi
chroot "$root" runuser -l "$user" -c \
	"git -c advice.detachedHead=false clone -q /tmp/lambda-registry.bundle lambda-registry"
say "cloned $(git -C "$src" log -1 --format='%h %s' "$head") as $user"

# 3. The README, in its order. Its first sh block holds the set-up line(s)
# before make run; its curl line is the one make run prints.
home=/home/$user
[ "$user" = root ] && home=/root
readme=$root$home/lambda-registry/README.md
setup=$(awk '/^```sh/ { inblock = 1; next } /^```/ { if (inblock) exit } inblock' "$readme" |
	sed 's/[[:space:]]*#.*//' | grep -v '^make ' | grep . || true)
curl_line=$(grep -m1 -E '^curl .*http://127\.0\.0\.1:8080/' "$readme" || true)
log=$work/fresh-machine.$$.log
say "logs: $log.*"

t0=$(date +%s)
if [ -z "$setup" ]; then
	say "README: no set-up line before make run"
	result FAIL "README set-up line" 0
elif in_root "$setup" >"$log.setup" 2>&1; then
	result ok "$setup" $(($(date +%s) - t0))
else
	say "set-up failed:"; tail -n 20 "$log.setup"
	result FAIL "$setup" $(($(date +%s) - t0))
fi

listen=127.0.0.1:8080
if python3 -c 'import socket,sys; s=socket.socket(); s.bind(("127.0.0.1", 8080))' 2>/dev/null; then
	:
else
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	listen=127.0.0.1:$port
	say "127.0.0.1:8080 is taken on this machine (shared network): make run LISTEN=$listen"
fi
t0=$(date +%s)
setsid chroot "$root" runuser -l "$user" -c \
	"cd ~/lambda-registry && exec make run LISTEN=$listen" >"$log.run" 2>&1 &
run_pid=$!
up=0
for _ in $(seq 1800); do # the first make run installs packages and builds
	if ! kill -0 "$run_pid" 2>/dev/null; then break; fi
	if grep -q 'lambda-registry on http' "$log.run" &&
		python3 -c "import socket; socket.create_connection(('127.0.0.1', ${listen##*:}), 1).close()" 2>/dev/null; then
		up=1
		break
	fi
	sleep 1
done
if [ $up = 1 ]; then
	result ok "make run (serving)" $(($(date +%s) - t0))
else
	say "make run did not serve:"; tail -n 30 "$log.run"
	result FAIL "make run (serving)" $(($(date +%s) - t0))
fi

t0=$(date +%s)
if [ -z "$curl_line" ]; then
	say "README: no curl line for 127.0.0.1:8080"
	result FAIL "README curl line" 0
elif [ $up = 1 ] && in_root "${curl_line//127.0.0.1:8080/$listen}" >"$log.curl" 2>&1 &&
	grep -q '^frontend http' "$log.curl"; then
	result ok "curl (README line)" $(($(date +%s) - t0))
else
	say "the README's curl line failed:"; tail -n 20 "$log.curl" 2>/dev/null || true
	result FAIL "curl (README line)" $(($(date +%s) - t0))
fi
# Stop it as Ctrl-C would: SIGTERM to the server, then make run ends.
t0=$(date +%s)
for p in /proc/[0-9]*; do
	if [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] &&
		[ "$(readlink "$p/exe" 2>/dev/null)" = "$root$home/lambda-registry/build/lambda-registry" ]; then
		kill -TERM "${p#/proc/}" 2>/dev/null || true
	fi
done
for _ in $(seq 20); do kill -0 "$run_pid" 2>/dev/null || break; sleep 0.5; done
if kill -0 "$run_pid" 2>/dev/null; then
	kill -TERM -- "-$run_pid" 2>/dev/null || true
	wait "$run_pid" 2>/dev/null || true
	[ $up = 1 ] && result FAIL "make run stops on SIGTERM" $(($(date +%s) - t0))
else
	rc=0
	wait "$run_pid" 2>/dev/null || rc=$?
	if [ $up = 1 ]; then
		if [ $rc = 0 ]; then result ok "make run stops on SIGTERM" $(($(date +%s) - t0)); else
			result FAIL "make run stops on SIGTERM (exit $rc)" $(($(date +%s) - t0)); fi
	fi
fi
run_pid=""

if [ "${LR_FRESH_SKIP_TEST:-}" != 1 ]; then
	t0=$(date +%s)
	say "make test (output in $log.test)"
	if in_root "make test" >"$log.test" 2>&1; then
		result ok "make test" $(($(date +%s) - t0))
	else
		say "make test failed; its failed tests:"
		grep -E '\*\*\*(Failed|Timeout|Exception)|^[[:space:]]+[0-9]+ - .*\((Failed|Timeout|Not Run|SEGFAULT|Subprocess aborted)\)|^make(\[[0-9]+\])?: \*\*\*' "$log.test" || tail -n 40 "$log.test"
		result FAIL "make test" $(($(date +%s) - t0))
	fi
	# Every ctest run's list of tests that did not run, with their reasons.
	awk '/^[0-9]+ tests? did not run/ { p = 1; print; next }
		p && /^(---|    )/ { print; next } { p = 0 }' "$log.test" | sed 's/^/  /'
fi

echo
say "commit $(git -C "$src" rev-parse --short "$head"), user $user, $(($(date +%s) - t_start)) s in all:"
printf '  %s\n' "${results[@]}"
exit $failed
}
