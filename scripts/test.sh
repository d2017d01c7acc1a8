#!/usr/bin/env bash
# Install what the test suite needs and run it (the README's test command).
#   Debian packages: Dovecot (IMAP tests), Postfix (smtp-sink for benchmarks), PostgreSQL
#   (a throwaway cluster per run), Chromium (the HTML report test) and NSD (a DNS server for
#   `nurture doctor`). The suite starts every server itself, on 127.0.0.1, with its own
#   configuration in a temp dir.
# Extra arguments go to pytest, e.g. scripts/test.sh -k worker
set -euo pipefail
cd "$(dirname "$0")/.."

packages="dovecot-imapd postfix postgresql chromium nsd"
missing=""
for pkg in $packages; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing Debian packages:$missing"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
fi

python3 -m pip install -q --disable-pip-version-check -e '.[test]'
exec python3 -m pytest "$@"
