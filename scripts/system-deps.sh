#!/usr/bin/env bash
# Install the Debian packages a target needs, only those that are missing.
#   demo: Python's venv module
#   test: also espeak-ng, sox, ffmpeg and Chromium (browser tests, generated media), and
#         PostgreSQL's server programs (scripts/with-postgres.sh makes a private cluster
#         when no server answers; the fault tests start one of their own)
#   postgres: PostgreSQL's server programs only
set -euo pipefail
want=()
has_postgres() { compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; }
case "${1:-demo}" in
  postgres)
    has_postgres || want+=(postgresql)
    ;;
  *)
    python3 -m venv --help >/dev/null 2>&1 || want+=(python3-venv)
    if [ "${1:-demo}" = "test" ]; then
      command -v espeak-ng >/dev/null || want+=(espeak-ng)
      command -v sox >/dev/null || want+=(sox)
      command -v ffmpeg >/dev/null || want+=(ffmpeg)
      command -v chromium >/dev/null || want+=(chromium)
      command -v chromedriver >/dev/null || want+=(chromium-driver)
      has_postgres || want+=(postgresql)
    fi
    ;;
esac
[ ${#want[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "installing Debian packages: ${want[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${want[@]}" >/dev/null
