#!/bin/sh
# The server under valgrind memcheck through a short mixed load (valid and
# invalid calls, errors of every kind, concurrent writers, a store fault),
# then SIGTERM: zero errors and "definitely lost: 0 bytes".
# Skipped under the ASan build (LR_SANITIZED=1): the two do not mix. A skip
# prints its reason and exits 77, which ctest reports as skipped.
set -u

if [ "${LR_SANITIZED:-0}" = 1 ]; then
	echo "SKIP: valgrind does not run ASan binaries"
	exit 77
fi
if ! command -v valgrind >/dev/null; then
	echo "SKIP: valgrind is not installed (scripts/deps.sh test installs it)"
	exit 77
fi
BIN=${LR_BIN:-build/lambda-registry}
SRC=${LR_SOURCE_DIR:-.}
dir=$(mktemp -d /tmp/lr-vg-XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url=http://127.0.0.1:$port
fail=0
trap 'rm -rf "$dir"' EXIT

valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite \
	--errors-for-leak-kinds=definite --error-exitcode=99 --track-fds=no \
	--log-file="$dir/valgrind.log" \
	"$BIN" serve --listen "127.0.0.1:$port" --store "sqlite:$dir/vg.db" \
	--max-body 64K --max-header 4K --read-timeout 5 --threads 2 \
	>"$dir/server.log" 2>&1 &
pid=$!

i=0
until curl -sf -o /dev/null "$url/healthz"; do
	i=$((i + 1))
	if [ $i -gt 300 ] || ! kill -0 $pid 2>/dev/null; then
		echo "FAIL: the server did not start under valgrind"
		cat "$dir/server.log" "$dir/valgrind.log"
		exit 1
	fi
	sleep 0.1
done

post() { # body-file [extra curl args] -> prints the status
	f=$1
	shift
	curl -s -o /dev/null -w '%{http_code}' --data-binary @"$f" "$url/generate" "$@"
}
expect() { # want got what
	if [ "$1" != "$2" ]; then
		echo "FAIL: $3: want $1, got $2"
		fail=1
	fi
}

printf '%s' '{"table":"astro","running":[{"serviceName":"app1","id":"x","ip":"300.1.1.1"}]}' >"$dir/bad.json"
printf '%s' '{"table":"astro","running":[{"serviceName":"app1","id":"a","ip":"10.0.0.1"}],"candidates":[{"serviceName":"app1","port":80,"predicate":"a.example\n    bind :81"}]}' >"$dir/inject.json"
python3 -c 'import sys; sys.stdout.write("[" * 5000 + "]" * 5000)' >"$dir/deep.json"
printf '{"table":"astro","running":[{"serviceName":"a\377","id":"i","ip":"10.0.0.1"}]}' >"$dir/utf8.json"
python3 -c 'import sys; sys.stdout.write("{" + " " * 70000 + "}")' >"$dir/big.json"
printf '%s' '{"table":"astro","running":[]}' >"$dir/stop.json"

expect 200 "$(post "$SRC/sample-data/data.json")" "sample payload"
expect 200 "$(post "$SRC/sample-data/data.json" -H 'Accept: application/json')" "JSON answer"
expect 200 "$(post "$SRC/sample-data/single-candidate.json")" "second payload"
expect 400 "$(post "$dir/bad.json")" "bad ip"
expect 400 "$(post "$dir/inject.json")" "newline in a predicate"
expect 400 "$(post "$dir/deep.json")" "deep nesting"
expect 400 "$(post "$dir/utf8.json")" "invalid UTF-8"
expect 413 "$(post "$dir/big.json")" "body over --max-body"
expect 413 "$(post "$dir/big.json" -H 'Transfer-Encoding: chunked')" "chunked body over --max-body"
expect 431 "$(curl -s -o /dev/null -w '%{http_code}' -H "X-Pad: $(head -c 6000 /dev/zero | tr '\0' a)" "$url/healthz")" "headers over --max-header"
expect 404 "$(curl -s -o /dev/null -w '%{http_code}' "$url/nope")" "unknown path"
expect 405 "$(curl -s -o /dev/null -w '%{http_code}' "$url/generate")" "GET /generate"

# Concurrent writers on two tables, and a client that goes away mid-body.
writers=""
for w in 1 2 3 4; do
	(
		for n in 1 2 3 4 5; do
			sed "s/\"astro\"/\"table$((w % 2))\"/; s/192.168.1.2\"/192.168.$w.$n\"/" \
				"$SRC/sample-data/data.json" >"$dir/w$w.json"
			[ "$(post "$dir/w$w.json")" = 200 ] || echo "writer $w call $n failed" >>"$dir/writers.err"
		done
	) &
	writers="$writers $!"
done
printf 'POST /generate HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{"tab' |
	timeout 2 python3 -c 'import socket,sys; s=socket.create_connection(("127.0.0.1",'"$port"')); s.sendall(sys.stdin.buffer.read()); s.close()'
for w in $writers; do
	wait "$w"
done
if [ -s "$dir/writers.err" ]; then
	echo "FAIL: concurrent writers:"
	cat "$dir/writers.err"
	fail=1
fi

# A store fault on the way: a locked database makes a call fail and reopen.
python3 - "$dir/vg.db" "$url" <<'EOF'
import sqlite3, sys, urllib.request
db = sqlite3.connect(sys.argv[1], timeout=1, isolation_level=None)
db.execute("BEGIN IMMEDIATE")
req = urllib.request.Request(sys.argv[2] + "/healthz")
urllib.request.urlopen(req, timeout=60).read()
db.execute("ROLLBACK")
EOF
expect 200 "$(post "$dir/stop.json")" "a call that forgets everything"
expect 200 "$(curl -s -o /dev/null -w '%{http_code}' "$url/healthz")" "healthz"

kill -TERM $pid
wait $pid
rc=$?
if [ $rc -ne 0 ]; then
	echo "FAIL: server under valgrind exited $rc"
	fail=1
fi
grep -E 'ERROR SUMMARY|definitely lost|indirectly lost|in use at exit' "$dir/valgrind.log"
if ! grep -q 'ERROR SUMMARY: 0 errors' "$dir/valgrind.log"; then
	echo "FAIL: valgrind reported errors:"
	cat "$dir/valgrind.log"
	fail=1
fi
if grep -q 'definitely lost: [1-9]' "$dir/valgrind.log"; then
	echo "FAIL: memory definitely lost"
	fail=1
fi
[ $fail -eq 0 ] && echo "valgrind: clean"
exit $fail
