#!/usr/bin/env bash
# Deploy an overlay with migrations first:
#   k8s/deploy.sh dev|prod
# 1. apply everything except the gRPC server and worker Deployments (config, NATS, databases in
#    dev, Services, PDBs, autoscalers, migration Jobs), after deleting the previous migration Jobs
#    (a Job's pod template is immutable);
# 2. wait for the migration Jobs (Alembic upgrade head) to complete;
# 3. apply everything, which rolls the Deployments, and wait for their rollouts.
# Needs kubectl with a context on the target cluster; KUBECTL overrides the binary.
set -euo pipefail
overlay="${1:?usage: k8s/deploy.sh dev|prod}"
cd "$(dirname "$0")/.."
kubectl="${KUBECTL:-kubectl}"

manifests="$(mktemp)"
trap 'rm -f "$manifests"' EXIT
"$kubectl" kustomize "k8s/overlays/$overlay" >"$manifests"
ns="$(awk '/^kind: Namespace$/ {f=1} f && /^  name: / {print $2; exit}' "$manifests")"
[[ -n "$ns" ]] || { echo "deploy: no Namespace in k8s/overlays/$overlay" >&2; exit 1; }

if [[ "$overlay" != dev ]]; then
  for secret in raven-secrets raven-worker-token; do
    if ! "$kubectl" -n "$ns" get secret "$secret" >/dev/null 2>&1; then
      echo "deploy: Secret $ns/$secret is missing; create it first (k8s/base/$secret.example.yaml)" >&2
      exit 1
    fi
  done
fi

echo "deploy: $overlay into namespace $ns: infrastructure and migrations"
"$kubectl" -n "$ns" delete job -l app.kubernetes.io/component=migrate --ignore-not-found --wait=true 2>/dev/null || true
"$kubectl" apply -f "$manifests" --selector 'app.kubernetes.io/component notin (server,worker)'

echo "deploy: waiting for the migration Jobs"
if ! "$kubectl" -n "$ns" wait --for=condition=complete job -l app.kubernetes.io/component=migrate --timeout=15m; then
  "$kubectl" -n "$ns" logs -l app.kubernetes.io/component=migrate --tail=50 --prefix || true
  echo "deploy: migrations did not complete; the Deployments were not rolled" >&2
  exit 1
fi

echo "deploy: rolling the Deployments"
"$kubectl" apply -f "$manifests"
for d in training-run trained-model trainer-worker; do
  "$kubectl" -n "$ns" rollout status "deployment/$d" --timeout=15m
done
echo "deploy: done"
