#!/bin/bash
# make check (plain build only): every fuzz target for a few seconds
# (tests/fuzz/run 5), built with clang in this build tree's
# tests/fuzz/build, one TAP line per target.  Skipped, with the reason,
# when clang or libFuzzer is missing.  A crash fails the target and its
# input is kept in tests/fuzz/crashes/TARGET/ of the build tree.
set -u
src=${SBX_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${SBX_BUILDDIR:-$src}
secs=${SBX_FUZZ_BRIEF_SECS:-5}

out=$(bash "$src/tests/fuzz/run" --tap --build "$build/tests/fuzz/build" \
	--crashes "$build/tests/fuzz/crashes" "$secs" 2>&1)
rc=$?
if [ $rc -eq 77 ]; then
	echo "1..0 # SKIP ${out#*SKIP: }"
	exit 0
fi
if ! grep -q '^1\.\.' <<<"$out"; then
	# The build failed before any target ran.
	echo "1..1"
	echo "not ok - tests/fuzz/run did not get to run the targets (exit $rc)"
	sed 's/^/# /' <<<"$out" | tail -n 40
	exit 0
fi
printf '%s\n' "$out"
