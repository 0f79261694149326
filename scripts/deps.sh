#!/bin/sh
# Install the Debian packages a target needs, only those that are missing.
# Usage: scripts/deps.sh build|test|bench|fuzz|lambda
set -eu

pkgs="cmake make gcc pkg-config libjansson-dev libmicrohttpd-dev libsqlite3-dev libcurl4-openssl-dev libpq-dev"
# SHA-256 of token secrets and the TLS listener (src/auth.c, src/http.c).
pkgs="$pkgs libgnutls28-dev"
for want in "$@"; do
	case "$want" in
	build) ;;
	test) pkgs="$pkgs libcmocka-dev haproxy python3 curl sqlite3 nodejs npm clang libclang-rt-14-dev valgrind zip unzip binutils"
		# The agent's Docker-source test runs a real engine: podman.
		pkgs="$pkgs podman runc busybox-static"
		# The PostgreSQL store's tests run a private cluster.
		pkgs="$pkgs postgresql" ;;
	bench) pkgs="$pkgs wrk haproxy python3 curl nodejs npm" ;;
	fuzz) pkgs="$pkgs clang libclang-rt-14-dev" ;;
	lambda) pkgs="$pkgs zip unzip binutils" ;;
	*) echo "deps.sh: unknown target '$want'" >&2; exit 2 ;;
	esac
done
# t60_auth makes its test CA with openssl; bench/auth.py runs wrk.
case " $* " in *" test "*) pkgs="$pkgs openssl" ;; esac

missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
# A node from elsewhere (nvm, nodesource) is as good as Debian's.
case " $missing " in *" nodejs "*) command -v node >/dev/null && missing=$(echo "$missing" | sed 's/ nodejs//') ;; esac
case " $missing " in *" npm "*) command -v npm >/dev/null && missing=$(echo "$missing" | sed 's/ npm//') ;; esac
[ -z "$missing" ] && exit 0

echo "deps.sh: installing$missing" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing >&2
