#!/usr/bin/env bash
# Install every Debian package corral needs to build, run and test
# (scripts/debian-packages.txt). Packages already present are not touched.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mapfile -t pkgs < <(grep -v -e '^#' -e '^$' "$here/debian-packages.txt")
missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#pkgs[@]} Debian packages present"
  exit 0
fi
echo "deps: installing ${#missing[@]} packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/corral-apt.log 2>&1 || {
  tail -30 /tmp/corral-apt.log
  exit 1
}
echo "deps: done"
