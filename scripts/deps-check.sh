#!/bin/sh
# scripts/deps.sh: each package listed once whatever the targets, curl with
# the build's packages, no Debian nodejs/npm when a node or npm is on PATH.
set -u
deps=${LR_SOURCE_DIR:-.}/scripts/deps.sh
fail=0
no() { echo "FAIL: $*"; fail=1; }

all=$("$deps" -n build test bench fuzz lambda test bench) || no "deps.sh -n failed"
dups=$(echo "$all" | sort | uniq -d)
[ -z "$dups" ] || no "listed more than once: $dups"
echo "$all" | grep -qx haproxy || no "haproxy missing"
"$deps" -n build | grep -qx curl || no "make run prints a curl line: curl belongs to build"
"$deps" -n build | grep -qx libcmocka-dev && no "cmocka is a test package, not a build one"

# A node/npm from elsewhere on PATH (nvm, nodesource): neither Debian package.
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
printf '#!/bin/sh\necho v20.0.0\n' >"$bin/node"
printf '#!/bin/sh\necho 10.0.0\n' >"$bin/npm"
chmod +x "$bin/node" "$bin/npm"
other=$(PATH="$bin:$PATH" "$deps" -n test bench)
echo "$other" | grep -qxE 'nodejs|npm' && no "Debian nodejs/npm wanted although node is on PATH"
rm "$bin/npm"
other=$(PATH="$bin:$PATH" "$deps" -n test bench)
echo "$other" | grep -qx npm && no "Debian npm wanted although a node is on PATH"

[ $fail = 0 ] && echo "deps.sh: $(echo "$all" | wc -l) packages, each once"
exit $fail
