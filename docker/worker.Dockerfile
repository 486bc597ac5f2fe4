# syntax=docker/dockerfile:1.7
# Raven trainer worker, CPU. The service image already holds everything the worker needs (the
# project's dependencies include torch CPU and mmcv with its compiled ops), so the CPU worker is the
# same layers with the worker command: one mmcv compile serves both images.
#
#   docker build -f docker/service.Dockerfile -t raven-service:0.1.0 .
#   docker build -f docker/worker.Dockerfile --build-arg SERVICE_IMAGE=raven-service:0.1.0 \
#     -t raven-worker:0.1.0 .
#
# For GPU nodes build docker/worker-gpu.Dockerfile instead (CUDA torch, mmcv CUDA ops).
ARG SERVICE_IMAGE=raven-service:0.1.0
FROM ${SERVICE_IMAGE}
# Scratch space (RAVEN_WORK_DIR); an emptyDir is mounted over it in Kubernetes.
USER 0:0
RUN mkdir -p /scratch && chown 10001:10001 /scratch
ENV RAVEN_WORK_DIR=/scratch \
    RAVEN_DEVICE=cpu
USER 10001:10001
CMD ["python", "-m", "services.trainer_worker"]
