#!/bin/bash
# Install build/lambda-registry_*.deb into a pristine Debian 12 root
# filesystem (the fresh-machine script's cached bookworm tarball,
# scripts/debian-root.sh, bootstrapped when missing) and check it the way an
# operator meets it:
# the files and the system user, --version, a generate and a short serve as
# that user with the shipped env file, the manual pages, and
# `systemd-analyze verify` of the units. Purge removes the user and its data.
# Usage (as root, or through sudo): scripts/deb-check.sh BUILD_DIR
#   LR_FRESH_DIR=/var/tmp/lr-fresh-machine   where the cached root tarball is
set -euo pipefail
{
if [ "$(id -u)" -ne 0 ]; then
	exec sudo env "LR_FRESH_DIR=${LR_FRESH_DIR:-}" "$0" "$@"
fi
build=$(cd "${1:?usage: deb-check.sh BUILD_DIR}" && pwd)
src=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/debian-root.sh
. "$src/scripts/debian-root.sh"
deb=$(ls "$build"/lambda-registry_*.deb 2>/dev/null | grep -v dbgsym | head -n 1)
[ -n "$deb" ] || { echo "deb-check.sh: no package in $build (make deb)" >&2; exit 2; }
work=${LR_FRESH_DIR:-/var/tmp/lr-fresh-machine}
cache=$work/bookworm.tar
root=$work/deb-root.$$
failed=0

say() { printf '%s deb-check: %s\n' "$(date -u +%H:%M:%S)" "$*"; }
check() { # description command...
	local what=$1
	shift
	if "$@" >"$root.out" 2>&1; then
		say "ok   $what"
	else
		say "FAIL $what"
		sed 's/^/    /' "$root.out" | tail -n 20
		failed=1
	fi
}
in_root() { chroot "$root" /bin/sh -c "$1"; }

# shellcheck disable=SC2317 # the EXIT trap
cleanup() {
	set +e
	debian_root_leave "$root" && rm -rf "$root"
	rm -f "$root.out"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$work"
debian_root_cache "$cache" || exit 2
debian_root_enter "$cache" "$root"
cp "$deb" "$root/tmp/"
cp "$src/sample-data/data.json" "$root/tmp/data.json"
say "installing $(basename "$deb") and what it depends on"
check "apt-get install ./$(basename "$deb")" in_root \
	"apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	 /tmp/$(basename "$deb") haproxy systemd curl man-db"

check "the files are installed" in_root '
	set -e
	test -x /usr/bin/lambda-registry
	for p in lambda-registry lambda-registry-serve lambda-registry-agent lambda-registry-generate \
		lambda-registry-settings lambda-registry-token lambda-registry-lambda lambda-registry-dump \
		lambda-registry-import; do
		test -f /usr/share/man/man1/$p.1.gz
	done
	test -f /etc/lambda-registry/serve.env
	test -f /etc/lambda-registry/agent.env.example
	test -f /etc/lambda-registry/settings-example.yaml
	test -f /lib/systemd/system/lambda-registry.service
	test -f /lib/systemd/system/lambda-registry-agent@.service'
check "the lambda-registry system user owns /var/lib/lambda-registry" in_root '
	set -e
	getent passwd lambda-registry | grep -q ":/var/lib/lambda-registry:"
	test "$(stat -c %U:%a /var/lib/lambda-registry)" = lambda-registry:750'
check "nothing is enabled or started on install" in_root '
	! test -e /etc/systemd/system/multi-user.target.wants/lambda-registry.service'
check "lambda-registry --version" in_root \
	'lambda-registry --version | grep -q "^lambda-registry [0-9]"'
check "generate as the lambda-registry user, through haproxy -c" in_root '
	set -e
	cd /var/lib/lambda-registry
	runuser -u lambda-registry -- lambda-registry generate \
		--store sqlite:/var/lib/lambda-registry/registry.db /tmp/data.json >/tmp/haproxy.cfg
	grep -q "^backend app1" /tmp/haproxy.cfg
	haproxy -c -f /tmp/haproxy.cfg'
check "serve as the user with the shipped env file answers /healthz" in_root '
	set -e
	cd /var/lib/lambda-registry
	set -a; . /etc/lambda-registry/serve.env; set +a
	LAMBDA_REGISTRY_LISTEN=127.0.0.1:0
	port=$(python3 -c "import socket; s=socket.socket(); s.bind((\"127.0.0.1\", 0)); print(s.getsockname()[1])" 2>/dev/null || echo 18089)
	LAMBDA_REGISTRY_LISTEN=127.0.0.1:$port
	runuser -u lambda-registry -- env LAMBDA_REGISTRY_LISTEN=$LAMBDA_REGISTRY_LISTEN \
		LAMBDA_REGISTRY_STORE=$LAMBDA_REGISTRY_STORE lambda-registry serve &
	pid=$!
	ok=1
	for i in $(seq 100); do
		if curl -fsS http://127.0.0.1:$port/healthz | grep -q "\"status\":\"ok\""; then ok=0; break; fi
		sleep 0.1
	done
	kill -TERM $pid
	wait $pid || true
	exit $ok'
check "the manual pages render" in_root '
	set -e
	for f in /usr/share/man/man1/lambda-registry*.1.gz; do
		zcat "$f" | groff -man -ww -z -Tutf8 2>&1 | (! grep .)
	done'
check "systemd-analyze verify the units" in_root '
	set -e
	cp /etc/lambda-registry/agent.env.example /etc/lambda-registry/agent-web.env
	systemd-analyze verify /lib/systemd/system/lambda-registry.service \
		/lib/systemd/system/lambda-registry-agent@web.service 2>&1 | (! grep -v "^$")
	rm /etc/lambda-registry/agent-web.env'
check "purge removes the package, its user and its data" in_root '
	set -e
	DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq lambda-registry >/dev/null
	! test -e /usr/bin/lambda-registry
	! getent passwd lambda-registry
	! test -e /var/lib/lambda-registry'
[ "$failed" = 0 ] && say "all checks passed" || say "some checks FAILED"
exit "$failed"
}
