#!/bin/sh
# Run a command next to a private, in-memory dynalite (a local DynamoDB):
# install the npm packages of this folder once (gitignored node_modules),
# start dynalite on 127.0.0.1 with an ephemeral port, export the AWS_*
# settings that point at it, run "$@", stop dynalite.
# Usage: tests/dynamodb/with-dynalite.sh COMMAND [ARGS...]
set -eu
here=$(cd "$(dirname "$0")" && pwd)

# Tests run in parallel: one installs, the others wait for it.
(
	flock 9
	if [ ! -f "$here/node_modules/dynalite/package.json" ] ||
		[ ! -f "$here/node_modules/@aws-sdk/client-dynamodb/package.json" ]; then
		echo "with-dynalite: installing npm packages into $here/node_modules" >&2
		npm ci --prefix "$here" --no-audit --no-fund --loglevel=error >&2
	fi
) 9>"$here/.install.lock"

portfile=$(mktemp)
node "$here/dynalite.js" >"$portfile" &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -f "$portfile"' EXIT INT TERM
i=0
while [ ! -s "$portfile" ]; do
	i=$((i + 1))
	if [ "$i" -gt 200 ] || ! kill -0 "$pid" 2>/dev/null; then
		echo "with-dynalite: dynalite did not start" >&2
		exit 1
	fi
	sleep 0.05
done
port=$(head -n 1 "$portfile")

export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$port"
export AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=lrtest
export AWS_SECRET_ACCESS_KEY=lrtest
unset AWS_SESSION_TOKEN AWS_PROFILE || true
export DYNALITE_PID="$pid"
"$@"
