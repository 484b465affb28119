#!/usr/bin/env bash
# System packages the test suite needs: PostgreSQL server binaries (with wal2json) for the
# throwaway servers the service tests start, a C compiler with the Python headers for
# target-postgres's COPY encoder (setup.py), and unixODBC with FreeTDS for the SQL Server
# connectors (pyodbc loads libodbc; Microsoft's driver comes from PyPI), and headless Chromium with a
# font for the test that renders `dpone report --html` and screenshots it. Idempotent; skips apt
# when all are present.
set -euo pipefail
PYTHON="${PYTHON:-python3.11}"
have_pg() {
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && command -v psql >/dev/null 2>&1 &&
        ls /usr/lib/postgresql/*/lib/wal2json.so >/dev/null 2>&1 # the LOG_BASED tests decode with it
}
have_cc() {
    command -v gcc >/dev/null 2>&1 &&
        [ -f "$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" ]
}
have_odbc() {
    ls /usr/lib/*/libodbc.so.2 >/dev/null 2>&1 && ls /usr/lib/*/odbc/libtdsodbc.so >/dev/null 2>&1 &&
        command -v freebcp >/dev/null 2>&1
}
have_chromium() {
    command -v chromium >/dev/null 2>&1 && ls /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf >/dev/null 2>&1
}
if have_pg && have_cc && have_odbc && have_chromium; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install the PostgreSQL server binaries (initdb, pg_ctl) and psql, then re-run" >&2
    exit 1
fi
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
echo "installing PostgreSQL server binaries with apt-get" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    postgresql postgresql-client postgresql-15-wal2json gcc libc6-dev unixodbc tdsodbc freetds-bin \
    chromium fonts-dejavu-core >/dev/null
# The headers of a Debian-packaged Python (a Python built from source, e.g. pyenv's, has its own).
have_cc || DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-dev >/dev/null
# Debian starts a cluster on install; tests run their own servers, so stop it.
if command -v pg_ctlcluster >/dev/null 2>&1; then
    $sudo pg_ctlcluster --force 15 main stop >/dev/null 2>&1 || true
fi
have_pg
have_odbc || { echo "unixODBC or FreeTDS did not install: the SQL Server connectors cannot load pyodbc" >&2; exit 1; }
have_chromium || { echo "chromium or its fonts did not install: the run history page cannot be screenshot" >&2; exit 1; }
have_cc || { echo "no C compiler or Python headers: target-postgres would load without its COPY encoder" >&2; exit 1; }
