#!/bin/sh
# Write the manual pages of BINARY into DIR: lambda-registry.1 and one
# lambda-registry-COMMAND.1 per command that `BINARY --help` lists. The pages
# come from the same option tables as --help (`BINARY --man [COMMAND]`).
# Usage: scripts/man-pages.sh BINARY DIR
set -eu
bin=$1
dir=$2
mkdir -p "$dir"
rm -f "$dir"/*.1
"$bin" --man >"$dir/lambda-registry.1"
"$bin" --help | sed -n '/^commands:/,/^$/s/^  \([a-z][a-z-]*\) .*/\1/p' |
	while read -r cmd; do
		"$bin" --man "$cmd" >"$dir/lambda-registry-$cmd.1"
	done
