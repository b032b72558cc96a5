#!/usr/bin/env bash
# Type-check the tests. Test helper modules (tests/helpers.py, tests/<area>/*_support.py) are imported as top-level
# modules, as pytest imports them, and several folders have a conftest.py; so each folder is checked on its own, with
# tests/ and that folder on the module path.
set -euo pipefail
mypy="${1:-.venv/bin/mypy}"
status=0
for dir in tests $(find tests -mindepth 1 -type d -not -name __pycache__ -not -name '.*' | sort); do
  files=$(find "$dir" -maxdepth 1 -name '*.py' | sort)
  [ -n "$files" ] || continue
  extra=""
  [ "$dir" = tests/e2e_teep ] && extra=":tests/tam"  # its conftest puts tests/tam on the path to reuse tam_support
  MYPYPATH="src:tests:$dir$extra" "$mypy" --explicit-package-bases --no-error-summary $files || status=1
done
exit $status
