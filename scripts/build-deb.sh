#!/bin/sh
# Build the Debian package from the files git tracks in this checkout (as
# they are now, committed or not) into OUTDIR:
# OUTDIR/lambda-registry_<version>_<arch>.deb, then run lintian on it.
# Usage: scripts/build-deb.sh OUTDIR
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "$1" && cd "$1" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/lambda-registry"
(cd "$top" && git ls-files -z --cached --others --exclude-standard |
	xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
	tar --null -T - -cf -) | tar -xf - -C "$work/lambda-registry"
(cd "$work/lambda-registry" && dpkg-buildpackage -b -us -uc) >"$out/deb-build.log" 2>&1 || {
	tail -n 40 "$out/deb-build.log" >&2
	echo "build-deb.sh: dpkg-buildpackage failed; the log is $out/deb-build.log" >&2
	exit 1
}
for f in "$work"/*.deb "$work"/*.buildinfo "$work"/*.changes; do
	[ -e "$f" ] && cp "$f" "$out/"
done
deb=$(ls "$work"/lambda-registry_*.deb | grep -v dbgsym | head -n 1)
echo "build-deb.sh: $out/$(basename "$deb")"
if command -v lintian >/dev/null; then
	# (As root, lintian says it should not run as root; the checks are the same.)
	lintian --fail-on error,warning \
		"$out/$(basename "$deb")"
fi
