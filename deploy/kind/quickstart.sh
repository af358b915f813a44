#!/usr/bin/env bash
# Quickstart on a local kind cluster: create the cluster, build and load the image, apply the
# DaemonSet, run a demo pod, and stream its anomalies with `sensor watch` through kubectl exec.
#
# Needs: docker (or another engine kind supports), kind, kubectl, and this repo's toolchain
# (`cargo xtask image` builds the image without Docker). The host must run cgroup v2 and
# Linux >= 5.12 with BTF. NOT RUN on the project's build machines (no Docker engine there):
# checked with `bash -n` and shellcheck only (tests/tests/deploy_manifest.rs).
#
# Environment: CLUSTER (default node-sensor), IMAGE (default node-sensor:dev),
# LEARNING_PERIOD (default 2m; the manifest's 24h is for real nodes).
set -euo pipefail

CLUSTER="${CLUSTER:-node-sensor}"
IMAGE="${IMAGE:-node-sensor:dev}"
LEARNING_PERIOD="${LEARNING_PERIOD:-2m}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
ARCHIVE="${ROOT}/target/node-sensor-image.tar"
CONTEXT="kind-${CLUSTER}"
NS=node-sensor

say() { printf '\n==> %s\n' "$*"; }
fail() {
  printf 'quickstart: %s\n' "$*" >&2
  exit 2
}
need() { command -v "$1" >/dev/null 2>&1 || fail "$1 is required: $2"; }

need docker "install a container engine that kind supports"
need kind "https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
need kubectl "https://kubernetes.io/docs/tasks/tools/"
need cargo "https://rustup.rs (the repo's xtask builds the image)"

# kind nodes use the host's cgroup version; the sensor attaches to the cgroup2 root.
if [[ "$(stat -fc %T /sys/fs/cgroup)" != "cgroup2fs" ]]; then
  fail "the host is not on cgroup v2 (/sys/fs/cgroup is $(stat -fc %T /sys/fs/cgroup))"
fi
[[ -r /sys/kernel/btf/vmlinux ]] || fail "the host kernel has no BTF (/sys/kernel/btf/vmlinux)"

say "kind cluster ${CLUSTER}"
if ! kind get clusters | grep -qx "${CLUSTER}"; then
  kind create cluster --name "${CLUSTER}" --config "${ROOT}/deploy/kind/cluster.yaml" --wait 180s
fi

say "image ${IMAGE} (cargo xtask image, no Docker build)"
(cd "${ROOT}" && cargo xtask image --tag "${IMAGE}" --output "${ARCHIVE}")
kind load image-archive "${ARCHIVE}" --name "${CLUSTER}"

say "DaemonSet (learning period ${LEARNING_PERIOD} for the demo)"
sed -e "s|image: node-sensor:dev|image: ${IMAGE}|" \
  -e "s|learningPeriod: 24h|learningPeriod: ${LEARNING_PERIOD}|" \
  "${ROOT}/deploy/daemonset.yaml" | kubectl --context "${CONTEXT}" apply -f -
kubectl --context "${CONTEXT}" -n "${NS}" rollout status daemonset/node-sensor --timeout=300s

say "demo pod: fetches from the API server every 5 s"
kubectl --context "${CONTEXT}" delete pod demo --ignore-not-found --wait=true
kubectl --context "${CONTEXT}" run demo --image=busybox:1.36 --restart=Never -- \
  sh -c 'while true; do wget -q -T 2 -O /dev/null https://kubernetes.default.svc 2>/dev/null; sleep 5; done'
kubectl --context "${CONTEXT}" wait --for=condition=Ready pod/demo --timeout=180s
NODE="$(kubectl --context "${CONTEXT}" get pod demo -o jsonpath='{.spec.nodeName}')"
AGENT="$(kubectl --context "${CONTEXT}" -n "${NS}" get pods -l app.kubernetes.io/name=node-sensor \
  --field-selector "spec.nodeName=${NODE}" -o jsonpath='{.items[0].metadata.name}')"
[[ -n "${AGENT}" ]] || fail "no sensor pod on node ${NODE}"
sensor() { kubectl --context "${CONTEXT}" -n "${NS}" exec "${AGENT}" -- sensor "$@"; }

say "profiles on ${NODE} (agent ${AGENT})"
sensor profiles list

say "waiting ${LEARNING_PERIOD} for the demo profile to be ready"
until sensor profiles list --json | grep -q '"status": *"ready"'; do sleep 10; done
sensor profiles list

say "the demo pod reads its service-account token and runs a new program"
kubectl --context "${CONTEXT}" exec demo -- cat /var/run/secrets/kubernetes.io/serviceaccount/token >/dev/null
kubectl --context "${CONTEXT}" exec demo -- uname -a >/dev/null

say "anomalies (sensor watch; Ctrl-C to stop). Metrics: kubectl -n ${NS} port-forward ${AGENT} 9090"
sensor watch --since 0
