#!/bin/bash
# Build sbx and run every test, twice: once as CI builds it (-Werror), once
# under AddressSanitizer + UndefinedBehaviorSanitizer.  Also checks that
# `make distcheck` (dist tarball, VPATH build, install, uninstall) works.
# Installs the Debian packages it needs (as root).  The last line printed is
# the total: "N passed, N failed" (the skipped are counted on the line
# before it).
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
jobs=$(nproc 2>/dev/null || echo 2)
status=0

step() { printf '\n=== %s ===\n' "$*"; }

step "Debian packages"
bash scripts/deps.sh test || exit 1

step "autoreconf"
autoreconf -fi >/dev/null 2>&1 || { autoreconf -fi; exit 1; }

# build DIR CONFIGURE-ARGS...: configure, build and `make check` in DIR.
build_and_check() {
  local dir=$1; shift
  rm -rf "$dir" && mkdir -p "$dir" && cd "$dir" || return 1
  step "configure $* ($dir)"
  "$top/configure" -q "$@" || return 1
  step "make ($dir)"
  make -j"$jobs" >make.out 2>&1 || { cat make.out; return 1; }
  step "make check ($dir)"
  make -j"$jobs" check
  local rc=$?
  cd "$top"
  return $rc
}

build_and_check "$top/build" --enable-werror || status=1
build_and_check "$top/build-san" --enable-werror --enable-sanitizers || status=1

step "make distcheck"
if (cd "$top/build" && make -j"$jobs" distcheck \
      DISTCHECK_CONFIGURE_FLAGS=--enable-werror TESTS="tests/unit/test_duration" >distcheck.out 2>&1); then
  echo "distcheck: ok"
  distcheck=ok
else
  tail -40 "$top/build/distcheck.out"
  distcheck=fail
  status=1
fi

# Count every test case of both runs from automake's .trs files.
trs=$(find "$top/build/tests" "$top/build-san/tests" -name '*.trs' 2>/dev/null)
passed=0; failed=0; skipped=0
if [ -n "$trs" ]; then
  passed=$(cat $trs | grep -cE '^:test-result: (PASS|XFAIL)' || true)
  failed=$(cat $trs | grep -cE '^:test-result: (FAIL|XPASS|ERROR)' || true)
  skipped=$(cat $trs | grep -cE '^:test-result: SKIP' || true)
fi
# Criterion does not fail a test when a sanitizer reports from inside it,
# and a daemon's report lands in its log: every report counts as a failure,
# except a leak whose whole allocation stack lies in criterion's own runner
# (criterion 2.4.1 now and then leaks 48 bytes in criterion_run_all_tests,
# in the parent process, outside every test): no frame of sbx's code, so
# nothing of ours to fix.  A leak with any other frame still counts.
ours() {
  awk '
    /ERROR: AddressSanitizer|runtime error:/ { real = 1 }
    /^(Direct|Indirect) leak of/ { inleak = 1; mine = 0; next }
    inleak && /^ +#[0-9]+ / {
      if ($0 !~ /libcriterion\.so|libsanitizer|asan_malloc|__libc_start|libc\.so|in _start /) mine = 1
      next
    }
    inleak { if (mine) real = 1; inleak = 0 }
    END { if (inleak && mine) real = 1; exit real ? 0 : 1 }' "$1"
}
san_reports=
for f in $(grep -rlE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' \
             --include='*.log' "$top/build-san/tests" 2>/dev/null | grep -v test-suite.log); do
  if ours "$f"; then
    san_reports="$san_reports $f"
  else
    echo "ignored (a leak inside criterion's runner, no sbx frame): $f"
  fi
done
if [ -n "$san_reports" ]; then
  step "sanitizer reports"
  for f in $san_reports; do
    echo "$f:"; grep -m3 -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$f"
    failed=$((failed + 1))
  done
fi
[ "$distcheck" = ok ] && passed=$((passed + 1)) || failed=$((failed + 1))
if [ "$failed" -gt 0 ]; then
  status=1
  step "failures"
  for f in $trs; do
    grep -qE '^:test-result: (FAIL|XPASS|ERROR)' "$f" && \
      grep -E '^:test-result: (FAIL|XPASS|ERROR)' "$f" | sed "s|^|${f%.trs}: |"
  done
fi
[ "$status" -ne 0 ] && [ "$failed" -eq 0 ] && failed=1   # a build that broke before any test ran
printf '\n%d skipped\n%d passed, %d failed\n' "$skipped" "$passed" "$failed"
exit $status
