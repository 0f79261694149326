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
# Settings goldens: tests/golden/settings-NAME.yaml stored as the fleet's
# settings, then mixed.json applied, must give settings-NAME.cfg. Their
# files live under /lr-golden/ (paths are checked by form only); haproxy -c
# runs on a copy pointed at a test certificate made here, and must not warn.
certs="$tmp/certs"
mkdir -p "$certs"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=golden.test \
	-keyout "$certs/key.pem" -out "$certs/crt.pem" 2>/dev/null
cat "$certs/crt.pem" "$certs/key.pem" >"$certs/site.pem"
printf '%s\n' "$certs/site.pem golden.test" >"$certs/crt-list.txt"
for yaml in "$golden"/settings-*.yaml; do
	[ -e "$yaml" ] || continue
	name=$(basename "$yaml" .yaml)
	out="$tmp/$name.cfg"
	store="sqlite:$tmp/$name.db"
	if ! "$LR_BIN" settings put --store "$store" "$yaml" ||
		! "$LR_BIN" generate --store "$store" "$golden/mixed.json" >"$out"; then
		echo "FAIL: $name: settings put or generate failed"
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
	# The map files of the JSON answer, for the settings-maps* goldens:
	# NAME.hosts.map and NAME.paths.map next to NAME.cfg.
	mkdir -p "$tmp/maps"
	: >"$tmp/files.txt"
	case $name in
	settings-maps*)
		if ! "$LR_BIN" generate --store "$store" --json \
			"$golden/mixed.json" >"$tmp/answer.json" ||
			! python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
for k, v in d["files"].items():
    open(sys.argv[2] + "/" + k, "w").write(v)
print(" ".join(sorted(d["files"])))' "$tmp/answer.json" "$tmp/maps" \
				>"$tmp/files.txt"; then
			echo "FAIL: $name: generate --json failed"
			fail=$((fail + 1))
		fi
		;;
	esac
	for f in $(cat "$tmp/files.txt"); do
		if [ "${UPDATE_GOLDEN:-}" = 1 ]; then
			cp "$tmp/maps/$f" "$golden/$name.$f"
		fi
		if cmp -s "$tmp/maps/$f" "$golden/$name.$f"; then
			pass=$((pass + 1))
		else
			echo "FAIL: $name: $f differs from $name.$f:"
			diff -u "$golden/$name.$f" "$tmp/maps/$f" | head -40
			fail=$((fail + 1))
		fi
	done
	sed -e "s#/lr-golden/site.pem#$certs/site.pem#g" \
		-e "s#/lr-golden/crt-list.txt#$certs/crt-list.txt#g" \
		-e "s#/lr-golden/maps/#$tmp/maps/#g" \
		"$out" >"$tmp/check.cfg"
	if haproxy -c -f "$tmp/check.cfg" >"$tmp/check.log" 2>&1 &&
		! grep -q WARNING "$tmp/check.log"; then
		pass=$((pass + 1))
	else
		echo "FAIL: $name: haproxy -c refused it or warned:"
		cat "$tmp/check.log"
		fail=$((fail + 1))
	fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
