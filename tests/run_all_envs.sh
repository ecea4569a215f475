#!/usr/bin/env bash
# Create both test environments from nothing, install nncbridge into each, run the suite in both.
#   modern: python3 (>= 3.11) with the newest numpy / protobuf / onnx / onnxruntime
#   nnabla: python3.10 with nnabla 1.39.0 (numpy ~=1.26, protobuf ~=3.20): the numerical oracle
# Extra arguments go to pytest. Environments live in .venvs/ (recreated on every run).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
venvs="$root/.venvs"
mkdir -p "$venvs"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

find_python310() {  # the first python3.10 that really runs (pyenv shims may exist but refuse)
  local candidate
  for candidate in "$(command -v python3.10 || true)" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.10*/bin/python3.10 \
                   /usr/local/bin/python3.10 /usr/bin/python3.10; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] && "$candidate" -c "import sys, venv; assert sys.version_info[:2] == (3, 10)" >/dev/null 2>&1; then
      echo "$candidate"; return
    fi
  done
}

make_env() {  # name python extras
  local name=$1 python=$2 extras=$3
  echo "=== [$name] creating $venvs/$name with $("$python" --version 2>&1)"
  rm -rf "${venvs:?}/$name"
  "$python" -m venv "$venvs/$name"
  "$venvs/$name/bin/python" -m pip install -q --upgrade pip
  "$venvs/$name/bin/python" -m pip install -q ".[$extras]"
  "$venvs/$name/bin/python" -c "import numpy, google.protobuf, onnx, onnxruntime; print('[$name] numpy', numpy.__version__, '| protobuf', google.protobuf.__version__, '| onnx', onnx.__version__, '| onnxruntime', onnxruntime.__version__)"
}

run_suite() {  # name [pytest args]
  # pytest's stderr goes to a file and is shown after the run; when pytest fails, the run's last line
  # repeats the end of it (a crash after the last test is otherwise easy to miss in a long log).
  local name=$1 code=0 errors="$venvs/$1-pytest.stderr"
  echo "=== [$name] pytest"
  (cd "$root" && "$venvs/$name/bin/python" -m pytest -q -p no:cacheprovider "${@:2}") 2>"$errors" || code=$?
  cat "$errors" >&2
  if [ $code -ne 0 ]; then
    failures+=("[$name] pytest exited with $code; the last lines it wrote to stderr:")
    while IFS= read -r line; do failures+=("    $line"); done < <(grep -v '^\s*$' "$errors" | tail -n 8)
  fi
  return $code
}
failures=()

# The handwriting page's browser test drives Debian's Chromium through Playwright (Playwright's own
# browser download is not reachable everywhere): install it when missing, without ever prompting.
if ! command -v chromium >/dev/null 2>&1; then
  as_root=""; [ "$(id -u)" -eq 0 ] || as_root="sudo -n"
  { $as_root apt-get update -q && $as_root apt-get install -y -q chromium; } ||
    echo "!!! chromium is missing and could not be installed: the handwriting page's browser test will be SKIPPED" >&2
fi

status=0
make_env modern python3 test
run_suite modern "$@" || status=1

py310=$(find_python310 || true)
if [ -z "$py310" ]; then
  echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
  echo "!!! python3.10 NOT FOUND: the nnabla environment (numerical oracle) was NOT run !!!" >&2
  echo "!!! Only the modern environment was tested.                                    !!!" >&2
  echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
else
  make_env nnabla "$py310" test,nnabla
  "$venvs/nnabla/bin/python" -c "import nnabla; print('[nnabla] nnabla', nnabla.__version__)" 2>&1 | grep -v INFO
  run_suite nnabla "$@" || status=1
fi

if [ $status -eq 0 ]; then
  echo "=== all environments passed"
else
  for line in "${failures[@]}"; do echo "=== $line"; done
  echo "=== FAILED in at least one environment"
fi
exit $status
