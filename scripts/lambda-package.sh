#!/bin/sh
# Build the AWS Lambda (provided.al2023) zip from the lambda binary: bootstrap
# plus lib/ with every shared library it needs except glibc's own, which the
# runtime has. Reproducible: same binary and libraries -> same zip bytes.
# Usage: scripts/lambda-package.sh BINARY OUT.zip
set -eu

bin=${1:?usage: lambda-package.sh BINARY OUT.zip}
out=${2:?usage: lambda-package.sh BINARY OUT.zip}
# AL2023's glibc: nothing in the zip may need a newer symbol version.
max_glibc=2.34

# Fixed times: SOURCE_DATE_EPOCH, else 1980-01-01 (the earliest a zip holds),
# so that unchanged sources give an unchanged zip, whatever the commit.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-315532800}
export SOURCE_DATE_EPOCH TZ=UTC LC_ALL=C

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir "$stage/lib"

# glibc's libraries (provided by the runtime) and the kernel's vDSO.
is_glibc() {
	case "$1" in
	libc.so.* | libm.so.* | libpthread.so.* | libdl.so.* | librt.so.* | \
		libresolv.so.* | libutil.so.* | libanl.so.* | libBrokenLocale.so.* | \
		ld-linux*.so.* | linux-vdso.so.* | linux-gate.so.*) return 0 ;;
	esac
	return 1
}

# ldd resolves the whole closure the way the loader does on this machine.
ldd "$bin" | while read -r name arrow path _; do
	[ "$arrow" = "=>" ] || continue
	is_glibc "$name" && continue
	if [ ! -f "$path" ]; then
		echo "lambda-package: '$name' not found" >&2
		exit 1
	fi
	cp "$path" "$stage/lib/$name"
done

cp "$bin" "$stage/bootstrap"
strip --strip-all "$stage/bootstrap"
chmod 0755 "$stage/bootstrap"
find "$stage/lib" -type f -exec chmod 0644 {} +
chmod 0755 "$stage/lib"

# The glibc check: report every symbol with a version newer than max_glibc.
bad=0
for f in "$stage/bootstrap" $(find "$stage/lib" -type f | sort); do
	newer=$(objdump -T "$f" | awk -v max="$max_glibc" '
		/\*UND\*/ && match($0, /GLIBC_[0-9]+\.[0-9]+(\.[0-9]+)?/) {
			v = substr($0, RSTART + 6, RLENGTH - 6)
			split(v, a, "."); split(max, m, ".")
			if (a[1] > m[1] || (a[1] == m[1] && a[2] + 0 > m[2] + 0))
				print "GLIBC_" v " " $NF
		}')
	if [ -n "$newer" ]; then
		echo "lambda-package: ${f#"$stage"/} needs glibc newer than $max_glibc:" >&2
		echo "$newer" | sed 's/^/  /' >&2
		bad=1
	fi
done
[ "$bad" -eq 0 ] || exit 1

find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
mkdir -p "$(dirname "$out")"
out="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"
tmp="$out.tmp.$$"
rm -f "$tmp"
# Sorted names, no directory entries, no extra attributes (uid, times).
(cd "$stage" && find . -type f | sed 's|^\./||' | sort | zip -X -D -q -9 "$tmp" -@)
mv "$tmp" "$out"
echo "lambda-package: $out ($(wc -c <"$out") bytes, $(ls "$stage/lib" | wc -l) libraries)"
