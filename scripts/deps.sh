#!/bin/bash
# Install the Debian 12 packages sbx needs.  Usage: deps.sh build|deb|test
#   build: what building and running sbx needs (and dpkg-architecture)
#   deb:   that, plus what `make deb` needs (debhelper, dh-nss, lintian)
#   test:  both, plus what the test suite starts (wrappers, slapd, sshd, ...)
# Installs only what is missing, so a second run costs a second.
set -eu
want=(autoconf automake libtool pkg-config make gcc libc6-dev
      libjansson-dev libyaml-dev libcurl4-openssl-dev libssl-dev
      libldap-dev libpam0g-dev libmicrohttpd-dev libcriterion-dev)
# fleet: the shared log's client library (fleet/pgstore.c)
want+=(libpq-dev)
# dpkg-architecture: the --libdir of a `make install` (docs/install.md)
want+=(dpkg-dev)
# the alert rules' working hours in named time zones (docs/policy.md, "alerts")
want+=(tzdata)
case "${1:-build}" in
deb | test)
	# make deb: dpkg-buildpackage with debhelper 13 and dh-nss; lintian
	want+=(build-essential debhelper dh-nss fakeroot lintian)
	;;
esac
if [ "${1:-build}" = test ]; then
  want+=(libpam-wrapper libnss-wrapper pamtester libpamtest0-dev
         slapd ldap-utils openssh-server openssh-client jq curl valgrind
         util-linux procps iproute2 python3
         python3-jsonschema python3-yaml openssl  # api.sh: responses against docs/openapi.yaml, a TLS certificate
         sudo   # sudo: sudo_plugin.h for sbx_sudo.so; the end-to-end tests (sudo -l, sudo -n)
         clang libclang-rt-14-dev)  # libFuzzer: tests/fuzz/run, tests/fuzz/brief.sh
  # fleet: throwaway PostgreSQL 15 servers (tests/integration/pg_lib.sh)
  want+=(postgresql)
  # audit_checkpoint.sh: a throwaway certificate for the test collector
  want+=(openssl)
  # packaging.sh, unit_file.sh, manpages.sh: systemd-analyze (systemd is
  # not started), strace, man with groff
  want+=(systemd strace man-db groff-base)
  # review_report.sh: the HTML report in a real headless browser
  want+=(chromium chromium-driver python3-selenium)
  # audit_prune.sh: a broker whose clock is days ahead (retention)
  want+=(faketime)
fi
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "deps.sh: missing Debian packages: ${missing[*]}" >&2
  echo "deps.sh: run as root, or: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
