#!/bin/sh
# Golden-file render tests: each tests/golden/NAME.json applied to a fresh
# store must give exactly tests/golden/NAME.cfg, and haproxy must accept it.
# UPDATE_GOLDEN=1 rewrites the .cfg files instead of comparing.
set -u
: "${LR_BIN:?}" "${LR_SOURCE_DIR:?}"
golden="$LR_SOURCE_DIR/tests/golden"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0

for json in "$golden"/*.json; do
	name=$(basename "$json" .json)
	out="$tmp/$name.cfg"
	if ! "$LR_BIN" generate --store "sqlite:$tmp/$name.db" "$json" >"$out"; then
		echo "FAIL: $name: generate failed"
		fail=$((fail + 1))
		continue
	fi
	if [ "${UPDATE_GOLDEN:-}" = 1 ]; then
		cp "$out" "$golden/$name.cfg"
	fi
	if cmp -s "$out" "$golden/$name.cfg"; then
		pass=$((pass + 1))
	else
		echo "FAIL: $name: output differs from $name.cfg:"
		diff -u "$golden/$name.cfg" "$out" | head -40
		fail=$((fail + 1))
	fi
	if haproxy -c -f "$out" >"$tmp/check.log" 2>&1; then
		pass=$((pass + 1))
	else
		echo "FAIL: $name: haproxy -c refused it:"
		cat "$tmp/check.log"
		fail=$((fail + 1))
	fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
