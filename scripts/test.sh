#!/usr/bin/env bash
# The second README command (and all that .ci/run does): every test.
#  1. dependencies (Debian packages), 2. build with -Werror, 3. unit and
#  integration tests (CTest, real daemon, real kernel features), 4. critest
#  v1.32 on the default and vm handlers, 5. the same on pure cgroup v2 with
#  systemd in a QEMU guest, 6. unit tests again under ASan+UBSan, 7. unit
#  tests under valgrind, 8. short fuzz runs.
# Tests that cannot run on this host exit 77 and are listed as skipped.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
[ "$(id -u)" = 0 ] || { echo "test: run as root (sudo $0): the tests use namespaces, mounts and cgroups"; exit 1; }
"$here/install-deps.sh" || exit 1
jobs=$(nproc)
fail=0
step() { echo; echo "=== $*"; }

step "build (RelWithDebInfo, -Werror)"
b="$src/build/test"
cmake -S "$src" -B "$b" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCORRAL_WERROR=ON >/dev/null || exit 1
cmake --build "$b" -j"$jobs" 2>&1 | grep -E "error:|warning:|Error [0-9]"; [ "${PIPESTATUS[0]}" = 0 ] || exit 1

step "unit and integration tests"
ctest --test-dir "$b" --output-on-failure -j"$jobs" -L unit || fail=1
ctest --test-dir "$b" --output-on-failure -L integration || fail=1

step "critest v1.32 (Kubernetes' CRI conformance): default handler, vm, then the OCI handlers crun and runc"
# A private corrald with registry mirrors to a local docker-registry holding
# critest's fixture images (../shared/tools/critest-images.sh). Exit 77: the
# cri-tools are not on this machine, said by name.
"$src/tests/critest/run.sh" "$b"
case $? in
  0) ;;
  77) echo "critest: SKIPPED (see the reason above)" ;;
  *) fail=1 ;;
esac

step "pure cgroup v2 with systemd as PID 1: unit, integration and critest in a QEMU guest (tests/guest)"
# Both cgroup drivers; the guest image is built once and cached in /var/cache/corral-guest.
ctest --test-dir "$b" --output-on-failure -L guest || fail=1

step "unit tests under ASan + UBSan"
a="$src/build/asan"
cmake -S "$src" -B "$a" -DCMAKE_BUILD_TYPE=Debug -DCORRAL_SANITIZE=ON -DCORRAL_WERROR=ON >/dev/null || exit 1
cmake --build "$a" -j"$jobs" 2>&1 | grep -E "error:|Error [0-9]"; [ "${PIPESTATUS[0]}" = 0 ] || exit 1
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir "$a" --output-on-failure -j"$jobs" -L unit || fail=1

step "unit tests under valgrind (tests/valgrind-tests.txt)"
vg_fail=0
while read -r t; do
  case "$t" in ''|'#'*) continue ;; esac
  [ -x "$b/bin/$t" ] || { echo "valgrind: $t not built"; vg_fail=1; continue; }
  if (cd "$b" && valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
        --suppressions="$src/tests/valgrind.supp" "bin/$t" >"$b/valgrind-$t.log" 2>&1); then
    echo "valgrind $t: clean"
  else
    rc=$?
    if [ $rc = 77 ]; then echo "valgrind $t: skipped"; continue; fi
    echo "valgrind $t: FAILED (exit $rc)"; grep -E "^==[0-9]+==" "$b/valgrind-$t.log" | head -30; vg_fail=1
  fi
done <"$src/tests/valgrind-tests.txt"
[ $vg_fail = 0 ] || fail=1

step "fuzzing (libFuzzer, ${FUZZ_SECONDS:=20} s per target)"
f="$src/build/fuzz"
CC=clang cmake -S "$src" -B "$f" -DCMAKE_BUILD_TYPE=Debug -DCORRAL_FUZZ=ON -DCORRAL_WERROR=ON >/dev/null || exit 1
cmake --build "$f" -j"$jobs" 2>&1 | grep -E "error:|Error [0-9]"; [ "${PIPESTATUS[0]}" = 0 ] || exit 1
# Seed corpora that a tool of ours writes (hostile tar shapes for the unpacker).
[ -x "$f/bin/unpack_seeds" ] && mkdir -p "$f/corpus/fuzz_unpack" && "$f/bin/unpack_seeds" "$f/corpus/fuzz_unpack" >/dev/null
for t in "$f"/bin/fuzz_*; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  corpus="$f/corpus/$name"; mkdir -p "$corpus"
  dirs=("$corpus"); [ -d "$src/tests/fuzz/seeds/$name" ] && dirs+=("$src/tests/fuzz/seeds/$name")
  if "$t" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "${dirs[@]}" \
       >"$f/$name.log" 2>&1; then
    echo "fuzz $name: $(grep -Eo 'number_of_executed_units: [0-9]+' "$f/$name.log" | awk '{print $2}') runs, no crash"
  else
    echo "fuzz $name: FAILED"; tail -40 "$f/$name.log"; fail=1
  fi
done

echo
if [ $fail = 0 ]; then echo "test: all passed"; else echo "test: FAILURES (see above)"; fi
exit $fail
