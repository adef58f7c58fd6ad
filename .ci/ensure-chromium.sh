#!/bin/sh
# `make test` calls this before pytest. The dashboard's browser tests drive Debian's Chromium
# through Playwright (Playwright's own browser download cannot work offline), so:
#   - Chromium present: prints "present".
#   - missing, and apt-get can run (root, or sudo without a password): installs it once.
#   - otherwise: prints "skip", and ONE line on stderr saying what is missing and how to get it;
#     tests/browser/conftest.py then skips the browser tests instead of erroring.
# AGENTSTREAM_CHROMIUM names another binary; AGENTSTREAM_INSTALL_CHROMIUM=no never installs.
CHROMIUM="${AGENTSTREAM_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
  echo present
  exit 0
fi
if [ "${AGENTSTREAM_INSTALL_CHROMIUM:-auto}" != no ] && command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    SUDO=""
  elif command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
    SUDO="sudo -n"
  else
    SUDO=none
  fi
  if [ "$SUDO" != none ]; then
    echo "make test: installing Debian's chromium for the browser tests (once) ..." >&2
    if $SUDO apt-get update -qq >/dev/null 2>&1 \
      && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 \
      && [ -x "$CHROMIUM" ]; then
      echo present
      exit 0
    fi
  fi
fi
echo "make test: Chromium not found at $CHROMIUM and it could not be installed here, so the browser tests are skipped; get it with 'sudo apt-get install chromium' (or set AGENTSTREAM_CHROMIUM to a Chromium binary)" >&2
echo skip
