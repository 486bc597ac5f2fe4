# syntax=docker/dockerfile:1.7
# Raven gRPC services: training_run and trained_model (one image, the command picks the process).
#
#   docker build -f docker/service.Dockerfile -t raven-service:0.1.0 .
#   docker run --rm raven-service:0.1.0 python -m services.training_run migrate
#
# The project's dependencies include torch and mmcv (pyproject.toml), so this image carries the CPU
# torch wheel and mmcv compiled with its C++ ops, exactly like scripts/setup.sh: torch first, from
# the CPU index, then mmcv 2.1.0 built once into a wheel cache. Here the cache is a BuildKit cache
# mount (id raven-mmcv-wheels, shared with docker/worker-gpu.Dockerfile under another key), so a
# rebuild whose mmcv/torch/python did not change skips the ~25 min compile.
# The CPU trainer worker image is this image with another command (docker/worker.Dockerfile).
#
# Pin the base by digest for reproducible builds (no registry access where this was written):
#   --build-arg PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:<digest>
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# ------------------------------------------------------------------------------------------ build
FROM ${PYTHON_IMAGE} AS build
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG MMCV_VERSION=2.1.0
ARG SETUPTOOLS_VERSION=80.9.0
ARG NUMPY_VERSION=1.26.4
ARG PIP_VERSION=26.3
ARG WHEEL_VERSION=0.48.0
ARG NINJA_VERSION=1.13.2
ARG MAX_JOBS=4
# Extras of the project to install. `s3` must provide s3fs (RAVEN_ARTIFACT_ROOT=s3://... in k8s).
ARG PROJECT_EXTRAS=s3
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH

RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
# setuptools 80.9.0 still ships pkg_resources, which mmcv's setup.py imports; ninja speeds the build.
RUN --mount=type=cache,id=raven-pip,target=/root/.cache/pip \
    pip install "pip==${PIP_VERSION}" "setuptools==${SETUPTOOLS_VERSION}" "wheel==${WHEEL_VERSION}" "ninja==${NINJA_VERSION}" "numpy==${NUMPY_VERSION}" \
 && pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}" \
 && python -c "import torch; assert torch.__version__.startswith('${TORCH_VERSION}') and not torch.version.cuda, torch.__version__"

# mmcv with C++ ops, compiled against the torch above (--no-build-isolation), cached by
# (mmcv, torch, variant, python) like scripts/setup.sh's $HOME/.cache/raven/wheels.
RUN --mount=type=cache,id=raven-mmcv-wheels,target=/wheel-cache \
    set -eu; \
    key="mmcv-${MMCV_VERSION}_torch-${TORCH_VERSION}-cpu_cp311"; \
    if ! ls "/wheel-cache/$key"/mmcv-*.whl >/dev/null 2>&1; then \
      rm -rf "/wheel-cache/$key.tmp"; \
      MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="${MAX_JOBS}" \
        pip wheel --no-build-isolation --no-deps --no-binary mmcv -w "/wheel-cache/$key.tmp" "mmcv==${MMCV_VERSION}"; \
      rm -rf "/wheel-cache/$key" && mv "/wheel-cache/$key.tmp" "/wheel-cache/$key"; \
    fi; \
    mkdir -p /wheels && cp "/wheel-cache/$key"/mmcv-*.whl /wheels/

# The project, non-editable; pinned dependencies from pyproject.toml (torch is already satisfied).
COPY . /src
RUN --mount=type=cache,id=raven-pip,target=/root/.cache/pip \
    pip install --find-links /wheels --no-index --no-deps "mmcv==${MMCV_VERSION}" \
 && pip install --find-links /wheels "/src${PROJECT_EXTRAS:+[${PROJECT_EXTRAS}]}" \
 && pip check \
 && python -c "import mmcv.ops, mmdet, common.settings, services.training_run, services.trained_model" \
 && case ",${PROJECT_EXTRAS}," in *,s3,*) python -c "import s3fs";; esac

# ---------------------------------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime
# opencv-python (an mmcv/mmdet dependency) needs libGL and glib at import time.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 raven \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin raven

COPY --from=build /opt/venv /opt/venv

# The root filesystem is read-only in Kubernetes: everything that writes goes under /tmp (an
# emptyDir there). Numeric USER so that runAsNonRoot can be verified.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib \
    XDG_CACHE_HOME=/tmp/.cache \
    TORCH_HOME=/tmp/torch \
    RAVEN_DATA_DIR=/tmp/raven
WORKDIR /tmp
USER 10001:10001
EXPOSE 50051 50052 9090
CMD ["python", "-m", "services.training_run"]
