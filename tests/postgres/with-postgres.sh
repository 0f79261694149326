#!/bin/sh
# Run a command next to a private PostgreSQL cluster: initdb into a temporary
# folder, a server listening only on a Unix socket in that folder, the
# connection string exported as LR_TEST_PG, run "$@", stop the server and
# remove the folder. As root the cluster belongs to `nobody` (initdb refuses
# root); as anyone else, to the caller. No system service is used.
# Exports: LR_TEST_PG (conninfo), LR_TEST_PG_DIR (socket folder),
# LR_TEST_PG_CTL (a script: "start" or "stop" the cluster, for fault tests).
# Usage: tests/postgres/with-postgres.sh COMMAND [ARGS...]
set -eu
here=$(cd "$(dirname "$0")" && pwd)

pg_bindir() {
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
		[ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
	done
	return 1
}

bindir=$(pg_bindir || true)
if [ -z "$bindir" ] && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
	# Tests run in parallel: one installs, the others wait for it.
	(
		flock 9
		if ! pg_bindir >/dev/null; then
			echo "with-postgres: installing Debian's postgresql" >&2
			"$here/../../scripts/deps.sh" test >/dev/null 2>&1 ||
				DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
					--no-install-recommends postgresql >&2 || true
		fi
	) 9>/tmp/lr-with-postgres.install.lock
	bindir=$(pg_bindir || true)
fi
if [ -z "$bindir" ]; then
	echo "with-postgres: skipped: PostgreSQL (initdb, pg_ctl) is not installed and cannot be installed here" >&2
	exit 77
fi

dir=$(mktemp -d /tmp/lr-pg-XXXXXX)
as=""
if [ "$(id -u)" -eq 0 ]; then
	chown nobody "$dir"
	as="runuser -u nobody --"
fi
cleanup() {
	$as "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The server: only the socket in $dir, no TCP, fast (no fsync: a test
# cluster is thrown away). LR_TEST_PG_SERVER_OPTIONS replaces the speed
# settings (the benchmark asks for durable commits).
opts=${LR_TEST_PG_SERVER_OPTIONS:-"-c fsync=off -c synchronous_commit=off -c full_page_writes=off"}
$as "$bindir/initdb" -D "$dir/data" -U lrtest --auth=trust -E UTF8 \
	--locale=C >"$dir/initdb.log" 2>&1 || {
	cat "$dir/initdb.log" >&2
	exit 1
}
cat >"$dir/pgctl" <<CTL
#!/bin/sh
# start | stop the private cluster of with-postgres.sh
case "\$1" in
start) exec $as "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
	-o "-k $dir -c listen_addresses= -c max_connections=200 $opts" start >/dev/null ;;
stop) exec $as "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null ;;
*) echo "usage: \$0 start|stop" >&2; exit 2 ;;
esac
CTL
chmod 755 "$dir/pgctl"
"$dir/pgctl" start || {
	cat "$dir/server.log" >&2
	exit 1
}

export LR_TEST_PG="host=$dir user=lrtest dbname=postgres"
export LR_TEST_PG_DIR="$dir"
export LR_TEST_PG_CTL="$dir/pgctl"
export LR_TEST_PG_BIN="$bindir"
unset PGHOST PGPORT PGUSER PGDATABASE PGPASSWORD PGSERVICE PGOPTIONS || true
"$@"
