#!/bin/sh
# Install the Debian packages the given targets need, only those that are
# missing, through sudo when not root.
# Usage: scripts/deps.sh [-n] build|test|bench|fuzz|lambda|deb...
#   -n: print the packages the targets want (one a line) and install nothing.
set -eu

dry_run=0
if [ "${1:-}" = -n ]; then
	dry_run=1
	shift
fi

# build (and run: make run prints a curl line to try the server with).
pkgs="cmake make gcc pkg-config libjansson-dev libmicrohttpd-dev libsqlite3-dev libcurl4-openssl-dev libpq-dev libyaml-dev curl"
# SHA-256 of token secrets and the TLS listener (src/auth.c, src/http.c).
pkgs="$pkgs libgnutls28-dev"
for want in "$@"; do
	case "$want" in
	build) ;;
	test) pkgs="$pkgs libcmocka-dev haproxy python3 sqlite3 nodejs npm clang libclang-rt-14-dev valgrind zip unzip binutils groff-base"
		# The agent's Docker-source test runs a real engine: podman.
		pkgs="$pkgs podman runc busybox-static"
		# The PostgreSQL store's tests run a private cluster.
		pkgs="$pkgs postgresql"
		# The status page is checked in a real browser (t94_status_page).
		pkgs="$pkgs chromium chromium-driver" ;;
	# nginx: the CPU per request of a server doing nothing, next to ours.
	bench) pkgs="$pkgs wrk haproxy python3 nodejs npm nginx" ;;
	fuzz) pkgs="$pkgs clang libclang-rt-14-dev" ;;
	lambda) pkgs="$pkgs zip unzip binutils" ;;
	# make deb: dpkg-buildpackage with debhelper, then lintian;
	# make deb-check also bootstraps a Debian 12 root (mmdebstrap).
	deb) pkgs="$pkgs dpkg-dev debhelper fakeroot lintian mmdebstrap systemd" ;;
	*) echo "deps.sh: unknown target '$want'" >&2; exit 2 ;;
	esac
done
# t60_auth makes its test CA with openssl; bench/auth.py runs wrk.
case " $* " in *" test "*) pkgs="$pkgs openssl" ;; esac

# A Node.js from elsewhere (nvm, nodesource) is as good as Debian's, and
# Debian's npm would drag Debian's nodejs in beside it (or conflict with it).
have_node=0
if command -v node >/dev/null 2>&1 || command -v npm >/dev/null 2>&1; then
	have_node=1
fi

missing=""
# shellcheck disable=SC2086 # one package a word
for p in $(printf '%s\n' $pkgs | awk '!seen[$0]++'); do
	case "$p" in
	nodejs | npm) [ "$have_node" = 1 ] && continue ;;
	esac
	if [ "$dry_run" = 1 ]; then
		echo "$p"
		continue
	fi
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
[ "$dry_run" = 1 ] && exit 0
if [ "$have_node" = 1 ] && ! command -v npm >/dev/null 2>&1; then
	echo "deps.sh: node is on PATH ($(command -v node)) but npm is not; install the npm of that Node.js" >&2
fi
[ -z "$missing" ] && exit 0

echo "deps.sh: installing$missing" >&2
if [ "$(id -u)" -eq 0 ]; then
	sudo=""
elif command -v sudo >/dev/null 2>&1; then
	# sudo resets the environment: pass DEBIAN_FRONTEND through env.
	sudo="sudo"
else
	echo "deps.sh: not root and no sudo: as root, run apt-get install$missing" >&2
	exit 1
fi
$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
# shellcheck disable=SC2086
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >&2
