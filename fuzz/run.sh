#!/bin/sh
# Run every libFuzzer harness for SECONDS each, starting from the checked-in
# seeds plus what earlier runs kept; fail on any crash, leak or sanitizer report.
# Usage: fuzz/run.sh BUILD_DIR SECONDS [HARNESS...]
set -eu

build=$1
seconds=$2
shift 2
src=$(cd "$(dirname "$0")" && pwd)
harnesses=${*:-"fuzz_payload fuzz_call fuzz_lambda_event fuzz_settings"}
mkdir -p "$build/artifacts"
status=0
for h in $harnesses; do
	seeds="$src/corpus/${h#fuzz_}"
	work="$build/corpus/$h"
	mkdir -p "$work"
	log="$build/$h.log"
	echo "fuzz: $h for ${seconds}s (log: $log)"
	if ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		"$build/$h" -dict="$src/lr.dict" -max_total_time="$seconds" \
		-timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
		-artifact_prefix="$build/artifacts/$h-" "$work" "$seeds" >"$log" 2>&1; then
		grep -E '^stat::number_of_executed_units|^stat::average_exec_per_sec' "$log" |
			sed "s/^/fuzz: $h /"
	else
		echo "fuzz: $h FAILED; the end of its log:" >&2
		tail -n 60 "$log" >&2
		status=1
	fi
done
exit $status
