#!/bin/bash
# make check: replay every fuzz target's seed corpus (tests/fuzz/corpus/
# TARGET, regression inputs included) through the target built with the
# build's own compiler and flags (tests/fuzz/replay_TARGET, see replay.c),
# one TAP line per target.  Runs in the plain and the sanitizer build.
set -u
src=${SBX_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${SBX_BUILDDIR:-$src}
targets=(frame dispatch policy duration journal slack ldap table text)
err=$(mktemp)
trap 'rm -f "$err"' EXIT

echo "1..${#targets[@]}"
for t in "${targets[@]}"; do
	bin=$build/tests/fuzz/replay_$t
	dir=$src/tests/fuzz/corpus/$t
	if [ ! -x "$bin" ]; then
		echo "not ok - $t: $bin was not built"
		continue
	fi
	if [ ! -d "$dir" ]; then
		echo "not ok - $t: no corpus at $dir"
		continue
	fi
	# The replay prints one TAP line for the directory; what a failing
	# input printed goes to the log as comments.
	out=$("$bin" "$dir" 2>"$err")
	rc=$?
	if [ $rc -eq 0 ] && [ -n "$out" ]; then
		echo "$out"
	else
		echo "${out:-not ok - $t: replay exited with $rc}"
		sed 's/^/# /' "$err" | tail -n 40
	fi
done
