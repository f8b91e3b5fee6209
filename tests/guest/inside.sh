#!/usr/bin/env bash
# Runs in the test guest (guest-init.sh starts it through run.sh's job):
# the entries of tests.txt. CORRAL_SRC, CORRAL_BUILD: the shared source and
# build trees (at their host paths); CORRAL_GUEST_WHAT: which kinds to run.
# Exit 0 when every selected test passed (or skipped by name), 1 otherwise.
set -uo pipefail
src=$CORRAL_SRC build=$CORRAL_BUILD what=${CORRAL_GUEST_WHAT:-unit integration critest}
fail=0
echo "guest: kernel $(uname -r), $(stat -fc %T /sys/fs/cgroup) at /sys/fs/cgroup, controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
echo "guest: systemd $(systemctl --version | head -1 | cut -d' ' -f2), $(systemctl is-system-running 2>/dev/null), mount: $(grep ' /sys/fs/cgroup ' /proc/mounts | cut -d' ' -f4)"
[ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ] || { echo "guest: /sys/fs/cgroup is not cgroup2"; exit 1; }
# corrald runs from the unit a real host would give it (not from our job's
# scope); CTest and critest then talk to it or start their own.
want() { case " $what " in *" $1 "*) return 0 ;; esac; return 1; }
entries() {
  if [ -n "${CORRAL_GUEST_FILTER:-}" ]; then echo "$CORRAL_GUEST_FILTER"; return; fi
  grep -E "^$1 " "$src/tests/guest/tests.txt" | cut -d' ' -f2-
}
join_re() { paste -sd'|' -; }

if want unit; then
  re=$(entries unit | join_re)
  echo; echo "=== guest unit: $re"
  ctest --test-dir "$build" -R "$re" -LE guest --output-on-failure --timeout 300 || fail=1
fi
drivers=${CORRAL_GUEST_DRIVERS:-systemd cgroupfs}
if want integration; then
  re=$(entries integration | join_re)
  for drv in $drivers; do
    echo; echo "=== guest integration, cgroup driver $drv: $re"
    CORRAL_TEST_CGROUP_DRIVER=$drv ctest --test-dir "$build" -R "$re" -LE guest --output-on-failure --timeout 600 || fail=1
  done
fi
if want critest; then
  if [ ! -x /opt/cri/critest ]; then
    echo "guest critest: SKIPPED: /opt/cri/critest not shared into the guest"
  elif ! curl -sf http://10.0.2.2:5000/v2/ >/dev/null 2>&1 && ! python3 -c 'import urllib.request as u; u.urlopen("http://10.0.2.2:5000/v2/", timeout=5)' 2>/dev/null; then
    echo "guest critest: SKIPPED: no registry with critest's images at the host's 127.0.0.1:5000 (10.0.2.2:5000 here)"
  else
    focus=$(entries critest | join_re)
    for drv in $drivers; do
      echo; echo "=== guest critest, cgroup driver $drv"
      CRITEST_DRIVER=$drv CRITEST_FOCUS="$focus" bash "$src/tests/guest/critest.sh" "$build" || fail=1
    done
  fi
fi
exit $fail
