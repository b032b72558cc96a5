#!/usr/bin/env bash
# Install Keylime 7.14.3 into its own venv (.bench-venv/keylime) as the benchmark peer.
#
# Idempotent and stamped: when the stamp matches this script and the venv still imports keylime, it does nothing.
# Keylime's wheel declares no dependencies, so its requirements are installed explicitly. Debian packages:
# tpm2-tools (Keylime runs tpm2_checkquote and tpm2_eventlog), libefivar1 (device paths in event logs) and
# python3-gpg (imported by keylime.signing; a binding for Debian's /usr/bin/python3, linked into the venv).
# Writes nothing under /etc: the peer script gives Keylime a temporary config dir of its own.
#
# Environment: BENCH_KEYLIME_VENV (default <repo>/.bench-venv/keylime), BENCH_SYSTEM_PYTHON (default /usr/bin/python3).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${BENCH_KEYLIME_VENV:-$ROOT/.bench-venv/keylime}"
SYSTEM_PYTHON="${BENCH_SYSTEM_PYTHON:-/usr/bin/python3}"
KEYLIME_VERSION="7.14.3"
APT_PACKAGES=(tpm2-tools libefivar1 python3-gpg python3-venv)
# Keylime 7.14.3's runtime requirements, pinned to the versions this peer was measured with.
PIP_PACKAGES=(
  "keylime==$KEYLIME_VERSION"
  "cryptography==50.0.2"
  "SQLAlchemy==2.1.9"
  "alembic==1.20.1"
  "tornado==6.6.1"
  "pyzmq==27.3.0"
  "jsonschema==4.26.0"
  "lark==1.3.1"
  "psutil==7.2.2"
  "pyasn1==0.6.5"
  "pyasn1_modules==0.4.2"
  "PyYAML==6.0.3"
  "requests==2.34.2"
  "Jinja2==3.1.6"
  "packaging==26.3"
  "typing_extensions==4.16.0"
)

say() { echo "setup_keylime: $*"; }
die() {
  echo "setup_keylime: ERROR: $*" >&2
  exit 1
}

STAMP="$VENV/.veritee-bench-stamp"
WANT_STAMP="$(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)"

missing_apt() {
  local p missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  echo "${missing[@]:-}"
}

# What the peer needs at run time; prints the first problem and fails when something is missing.
check_peer() {
  command -v tpm2_eventlog >/dev/null || { echo "tpm2_eventlog not on PATH"; return 1; }
  command -v tpm2_checkquote >/dev/null || { echo "tpm2_checkquote not on PATH"; return 1; }
  [ -x "$VENV/bin/python" ] || { echo "no venv python at $VENV/bin/python"; return 1; }
  local conf
  conf="$(mktemp -d)"
  # Keylime reads config at import: point it at an empty dir of our own, never /etc/keylime.
  KEYLIME_DIR="$conf" KEYLIME_VERIFIER_CONFIG="$conf/verifier.conf" KEYLIME_LOGGING_CONFIG="$conf/logging.conf" \
    "$VENV/bin/python" - "$KEYLIME_VERSION" <<'EOF' 2>&1 | tail -n 3
import ctypes, importlib.metadata, sys
import gpg  # noqa: F401  (python3-gpg, linked from Debian)
import keylime.cloud_verifier_common  # noqa: F401
import keylime.mba.mba  # noqa: F401
ctypes.CDLL("libefivar.so.1")
got = importlib.metadata.version("keylime")
if got != sys.argv[1]:
    raise SystemExit(f"keylime {got} installed, {sys.argv[1]} wanted")
EOF
  local rc=${PIPESTATUS[0]}
  rm -rf "$conf"
  return "$rc"
}

# The fast path: no Python start-up, only what a later change could have broken.
stamped() {
  [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT_STAMP" ] && [ -z "$(missing_apt)" ] || return 1
  [ -x "$VENV/bin/python" ] && command -v tpm2_eventlog >/dev/null && command -v tpm2_checkquote >/dev/null || return 1
  compgen -G "$VENV/lib/python3*/site-packages/keylime-$KEYLIME_VERSION.dist-info" >/dev/null || return 1
  compgen -G "$VENV/lib/python3*/site-packages/gpg/__init__.py" >/dev/null
}

if stamped; then
  say "up to date ($VENV, keylime $KEYLIME_VERSION)"
  exit 0
fi

# --- Debian packages ----------------------------------------------------------------------------------------------
missing="$(missing_apt)"
if [ -n "$missing" ]; then
  [ "$(id -u)" = 0 ] || die "missing Debian packages: $missing (run as root, or install them)"
  say "installing Debian packages: $missing"
  apt-get update -qq || die "apt-get update failed"
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null || die "apt-get install $missing failed"
else
  say "Debian packages present: ${APT_PACKAGES[*]}"
fi

# --- the venv -----------------------------------------------------------------------------------------------------
[ -x "$SYSTEM_PYTHON" ] || die "$SYSTEM_PYTHON not found (python3-gpg is built for Debian's python3)"
if [ ! -x "$VENV/bin/python" ]; then
  say "creating venv $VENV from $SYSTEM_PYTHON"
  mkdir -p "$(dirname "$VENV")"
  "$SYSTEM_PYTHON" -m venv "$VENV" || die "cannot create the venv $VENV"
fi
# Keep the peer venv out of git whatever the repository's .gitignore says.
[ -f "$(dirname "$VENV")/.gitignore" ] || echo '*' >"$(dirname "$VENV")/.gitignore"

say "installing keylime $KEYLIME_VERSION and its requirements"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "${PIP_PACKAGES[@]}" ||
  die "pip install into $VENV failed"

# python3-gpg is a Debian package for the system python: link its module into the venv.
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
GPG_DIR="$("$SYSTEM_PYTHON" -c 'import gpg, os; print(os.path.dirname(gpg.__file__))' 2>/dev/null)" ||
  die "python3-gpg is installed but $SYSTEM_PYTHON cannot import gpg"
if [ "$(readlink -f "$SITE/gpg" 2>/dev/null)" != "$(readlink -f "$GPG_DIR")" ]; then
  say "linking $GPG_DIR into $SITE"
  rm -rf "$SITE/gpg"
  ln -s "$GPG_DIR" "$SITE/gpg"
fi

problem="$(check_peer)" || die "the peer venv does not work: $problem"
echo "$WANT_STAMP" >"$STAMP"
say "ready: $VENV/bin/python (keylime $KEYLIME_VERSION)"
