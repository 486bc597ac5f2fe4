# syntax=docker/dockerfile:1.7
# Raven trainer worker for NVIDIA GPUs: CUDA torch and mmcv 2.1.0 compiled with its CUDA ops.
#
#   docker build -f docker/worker-gpu.Dockerfile -t raven-worker-gpu:0.1.0 .
#
# Versions (build args), and why:
# - CUDA 12.8 (CUDA_VERSION=12.8.1, TORCH_CUDA_TAG=cu128): a CUDA variant PyTorch publishes wheels
#   for, covering Turing to Blackwell. nvcc's major.minor must equal torch.version.cuda (checked
#   below), or the compiled mmcv ops and torch disagree. If download.pytorch.org has no
#   torch==2.13.0 for cu128, pick a published tag (e.g. cu126/cu130) AND the matching CUDA_VERSION.
# - Node driver: CUDA 12.8 needs an R570+ NVIDIA driver (525+ works through CUDA minor-version
#   compatibility, without PTX JIT). See k8s/README.md, "GPU nodes".
# - TORCH_CUDA_ARCH_LIST=7.5;8.0;8.6;8.9;9.0+PTX: T4, A100/A30, A10/A40/RTX30, L4/L40/RTX40, H100/H200,
#   plus PTX for newer GPUs to JIT. Each architecture adds compile time (the build is long:
#   mmcv's CUDA ops take ~1 h on 8 cores for this list); trim it to your fleet.
# - Python 3.11 (the project's requirement) from python-build-standalone via uv: Ubuntu 24.04, the
#   CUDA images' base, ships 3.12. The interpreter and the venv are copied to the runtime stage.
# - Runtime base is the small CUDA `base` image: torch's wheels bring their own CUDA libraries
#   (nvidia-* packages); the driver is injected by the NVIDIA container toolkit / device plugin.
# mmcv is compiled with FORCE_CUDA=1 (no GPU is needed at build time) into the BuildKit cache mount
# shared with docker/service.Dockerfile, under a key that includes CUDA tag and architectures.
#
# Pin bases by digest for reproducible builds: --build-arg CUDA_DEVEL_IMAGE=...@sha256:<digest>
ARG CUDA_VERSION=12.8.1
ARG CUDA_DEVEL_IMAGE=nvidia/cuda:${CUDA_VERSION}-devel-ubuntu24.04
ARG CUDA_RUNTIME_IMAGE=nvidia/cuda:${CUDA_VERSION}-base-ubuntu24.04
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.9.5

FROM ${UV_IMAGE} AS uv

# ------------------------------------------------------------------------------------------ build
FROM ${CUDA_DEVEL_IMAGE} AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG PYTHON_VERSION=3.11.14
ARG TORCH_VERSION=2.13.0
ARG TORCH_CUDA_TAG=cu128
ARG MMCV_VERSION=2.1.0
ARG SETUPTOOLS_VERSION=80.9.0
ARG NUMPY_VERSION=1.26.4
ARG PIP_VERSION=26.3
ARG WHEEL_VERSION=0.48.0
ARG NINJA_VERSION=1.13.2
ARG TORCH_CUDA_ARCH_LIST="7.5;8.0;8.6;8.9;9.0+PTX"
ARG MAX_JOBS=4
ARG PROJECT_EXTRAS=s3
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_PYTHON_PREFERENCE=only-managed \
    CUDA_HOME=/usr/local/cuda \
    PATH=/opt/venv/bin:/usr/local/cuda/bin:$PATH

RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=uv /uv /usr/local/bin/uv
RUN uv python install "${PYTHON_VERSION}" \
 && uv venv --seed --python "${PYTHON_VERSION}" /opt/venv

RUN --mount=type=cache,id=raven-pip,target=/root/.cache/pip \
    pip install "pip==${PIP_VERSION}" "setuptools==${SETUPTOOLS_VERSION}" "wheel==${WHEEL_VERSION}" "ninja==${NINJA_VERSION}" "numpy==${NUMPY_VERSION}" \
 && pip install --index-url "https://download.pytorch.org/whl/${TORCH_CUDA_TAG}" "torch==${TORCH_VERSION}" \
 && python -c "import subprocess, torch; \
nvcc = subprocess.run(['nvcc', '--version'], capture_output=True, text=True, check=True).stdout; \
assert torch.__version__.startswith('${TORCH_VERSION}'), torch.__version__; \
assert torch.version.cuda and f'release {torch.version.cuda}' in nvcc, (torch.version.cuda, nvcc)"

RUN --mount=type=cache,id=raven-mmcv-wheels,target=/wheel-cache \
    set -eu; \
    arch_key="$(printf '%s' "${TORCH_CUDA_ARCH_LIST}" | sha256sum | cut -c1-12)"; \
    key="mmcv-${MMCV_VERSION}_torch-${TORCH_VERSION}-${TORCH_CUDA_TAG}-${arch_key}_cp311"; \
    if ! ls "/wheel-cache/$key"/mmcv-*.whl >/dev/null 2>&1; then \
      rm -rf "/wheel-cache/$key.tmp"; \
      MMCV_WITH_OPS=1 FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST}" MAX_JOBS="${MAX_JOBS}" \
        pip wheel --no-build-isolation --no-deps --no-binary mmcv -w "/wheel-cache/$key.tmp" "mmcv==${MMCV_VERSION}"; \
      rm -rf "/wheel-cache/$key" && mv "/wheel-cache/$key.tmp" "/wheel-cache/$key"; \
    fi; \
    mkdir -p /wheels && cp "/wheel-cache/$key"/mmcv-*.whl /wheels/

COPY . /src
RUN --mount=type=cache,id=raven-pip,target=/root/.cache/pip \
    pip install --find-links /wheels --no-index --no-deps "mmcv==${MMCV_VERSION}" \
 && pip install --find-links /wheels "/src${PROJECT_EXTRAS:+[${PROJECT_EXTRAS}]}" \
 && pip check \
 && python -c "import mmcv.ops, mmdet, common.settings, services.trainer_worker" \
 && case ",${PROJECT_EXTRAS}," in *,s3,*) python -c "import s3fs";; esac

# ---------------------------------------------------------------------------------------- runtime
FROM ${CUDA_RUNTIME_IMAGE} AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgl1 libglib2.0-0t64 libgomp1 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 raven \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin raven \
 && mkdir -p /scratch && chown 10001:10001 /scratch

COPY --from=build /opt/python /opt/python
COPY --from=build /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib \
    XDG_CACHE_HOME=/tmp/.cache \
    TORCH_HOME=/tmp/torch \
    RAVEN_DATA_DIR=/tmp/raven \
    RAVEN_WORK_DIR=/scratch \
    RAVEN_DEVICE=cuda \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
WORKDIR /tmp
USER 10001:10001
EXPOSE 9090
CMD ["python", "-m", "services.trainer_worker"]
