#!/usr/bin/env bash
# Installs the Debian packages the end-to-end tests drive (real XMPP clients), when missing.
# Idempotent and quiet when everything is present; needs root (or sudo) only when installing.
set -euo pipefail
need=()
command -v openssl >/dev/null 2>&1 || need+=(openssl)
/usr/bin/python3 -c 'import slixmpp' >/dev/null 2>&1 || need+=(python3-slixmpp)
# slixmpp's XEP-0363 plugin uploads with aiohttp (test/e2e/upload_slixmpp.py).
/usr/bin/python3 -c 'import aiohttp' >/dev/null 2>&1 || need+=(python3-aiohttp)
command -v go-sendxmpp >/dev/null 2>&1 || need+=(go-sendxmpp)
command -v profanity >/dev/null 2>&1 || need+=(profanity)
command -v tmux >/dev/null 2>&1 || need+=(tmux)
# A peer server: the load-generator e2e tests drive Prosody as well as Hermod.
command -v prosody >/dev/null 2>&1 || need+=(prosody)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "${HERMOD_SKIP_APT:-}" = 1 ]; then
  echo "setup-system: missing ${need[*]} (HERMOD_SKIP_APT=1, not installing)" >&2
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "setup-system: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# The tests start their own private server instances; keep the packages' system services
# (Prosody's would take port 5222) from starting, via the standard policy-rc.d hook.
policy=/usr/sbin/policy-rc.d
added_policy=""
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null && $sudo chmod +x "$policy" && added_policy=1
fi
trap '[ -n "$added_policy" ] && $sudo rm -f "$policy"' EXIT
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
