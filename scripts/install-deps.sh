#!/usr/bin/env bash
# Installs the Debian packages a group of make targets needs, only those
# missing. Usage: scripts/install-deps.sh build|test|all
#   build: what compiling hale needs (make run)
#   test:  build + what `make test` runs (unit/e2e tests, linters, fuzzers,
#          PostgreSQL, Redis, HAProxy, Prometheus, the toml-test corpus and
#          python3-tomli for the TOML suites)
# As root it runs apt-get; otherwise it prints the exact apt-get line and
# exits 1, so nothing is half-installed silently. apt-get waits up to
# 10 min for the dpkg lock (a new cloud VM runs its own apt in its first
# minutes) instead of failing at once.
set -euo pipefail

build=(build-essential cmake ninja-build pkg-config libsqlite3-dev
       libpq-dev libhiredis-dev nettle-dev curl)
# faster rebuilds and links, used when present (CMakeLists.txt): installed
# as root, never required
optional=(ccache mold)
test=(libcmocka-dev python3 python3-pytest python3-requests python3-yaml clang
      libclang-rt-14-dev clang-tidy clang-format cppcheck shellcheck prometheus haproxy
      postgresql redis-server sqlite3 valgrind strace docker-registry docker-compose gcovr
      golang-github-burntsushi-toml-dev python3-tomli python3-pytest-xdist
      python3-matplotlib  # bench/report.py's chart, run by tests/build on a fixture
      dpkg-dev debhelper lintian abigail-tools doxygen fakeroot
      systemd)  # systemd: systemd-socket-activate and systemd-analyze for tests/systemd

case "${1:-build}" in
  build) want=("${build[@]}" "${optional[@]}") ;;
  test|all) want=("${build[@]}" "${optional[@]}" "${test[@]}") ;;
  *) echo "usage: $0 build|test" >&2; exit 2 ;;
esac

lock=(-o DPkg::Lock::Timeout=600)
missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  required=()
  for p in "${missing[@]}"; do
    [[ " ${optional[*]} " == *" $p "* ]] || required+=("$p")
  done
  if ((${#required[@]} == 0)); then
    echo "hale: optional packages not installed (builds work without them, slower): ${missing[*]}" >&2
    exit 0
  fi
  echo "hale: missing Debian packages: ${missing[*]}" >&2
  echo "run as root:" >&2
  echo "  apt-get ${lock[*]} update && apt-get ${lock[*]} install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
echo "hale: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# HALE_POLICY_RC_D only moves it for the tests
policy=${HALE_POLICY_RC_D:-/usr/sbin/policy-rc.d}
# policy-rc.d keeps package scripts from starting services (postgresql,
# redis, haproxy, nginx): the tests start their own instances.
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod +x "$policy"
  trap 'rm -f "$policy"' EXIT
fi
echo "hale: apt-get waits up to 600 s for the dpkg lock if another apt or dpkg is running"
apt-get "${lock[@]}" update -qq
apt-get "${lock[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
