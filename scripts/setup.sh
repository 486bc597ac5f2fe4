#!/usr/bin/env bash
# Idempotent project setup: .venv (Python 3.11) with CPU torch, mmcv compiled with its C++ ops
# (built once into a wheel cache keyed by mmcv/torch/python), then the pinned project.
# A second run whose inputs did not change returns in about a second.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${RAVEN_PYTHON:-python3.11}"
VENV="${RAVEN_VENV:-.venv}"
TORCH_VERSION="2.13.0"
MMCV_VERSION="2.1.0"
PY_TAG="cp311"
WHEEL_CACHE_ROOT="${RAVEN_WHEEL_CACHE:-$HOME/.cache/raven/wheels}"
MMCV_CACHE="$WHEEL_CACHE_ROOT/mmcv-${MMCV_VERSION}_torch-${TORCH_VERSION}_${PY_TAG}"
STAMP="$VENV/.raven-setup-stamp"

inputs_hash() {
  cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1
}

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(inputs_hash)" ]] && ls "$MMCV_CACHE"/mmcv-*.whl >/dev/null 2>&1; then
  echo "setup: up to date ($VENV)"
  exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "setup: creating $VENV with $PYTHON"
  "$PYTHON" -m venv "$VENV"
fi
# System tools the tests need (Debian packages): kubectl renders the k8s overlays.
if ! command -v kubectl >/dev/null 2>&1; then
  echo "setup: installing kubectl (Debian package kubernetes-client)"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get install -y -q kubernetes-client >/dev/null 2>&1 \
    || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q kubernetes-client >/dev/null; }
fi
# Headless Chromium and its WebDriver open the HTML evaluation report in a test (Debian packages).
if [[ ! -x /usr/bin/chromium || ! -x /usr/bin/chromedriver ]]; then
  echo "setup: installing chromium and chromium-driver (Debian packages)"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 \
    || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q chromium chromium-driver >/dev/null; }
fi

PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q --upgrade "pip>=24" "setuptools==80.9.0" wheel ninja

# torch first and exactly pinned, so nothing later can pull a CUDA build from PyPI.
"${PIP[@]}" install -q "torch==${TORCH_VERSION}"

if ! ls "$MMCV_CACHE"/mmcv-*.whl >/dev/null 2>&1; then
  echo "setup: compiling mmcv ${MMCV_VERSION} with C++ ops (once; ~25 min on 2 cores) into $MMCV_CACHE"
  "${PIP[@]}" install -q "numpy==1.26.4"
  mkdir -p "$MMCV_CACHE.tmp"
  MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" FORCE_CUDA="${FORCE_CUDA:-0}" \
    "${PIP[@]}" wheel --no-build-isolation --no-deps --no-binary mmcv -w "$MMCV_CACHE.tmp" "mmcv==${MMCV_VERSION}"
  rm -rf "$MMCV_CACHE" && mv "$MMCV_CACHE.tmp" "$MMCV_CACHE"
fi
"${PIP[@]}" install -q --find-links "$MMCV_CACHE" --no-index --no-deps "mmcv==${MMCV_VERSION}"

"${PIP[@]}" install -q --find-links "$MMCV_CACHE" -e ".[dev]"
"$VENV/bin/python" - <<'PY'
import mmcv, mmcv.ops, mmdet, mmengine, torch
assert torch.__version__.startswith("2.13.0"), torch.__version__
assert not torch.version.cuda or torch.cuda.is_available() or True
print(f"setup: torch {torch.__version__} mmcv {mmcv.__version__} (ops) mmdet {mmdet.__version__} mmengine {mmengine.__version__}")
PY
inputs_hash > "$STAMP"
