#!/usr/bin/env bash
# Smoke test for the binaries built by build.sh: start etcd and kube-apiserver
# on 127.0.0.1 (random free ports, everything in a temp dir), wait for
# /readyz, drive it with kubectl, then stop both processes and clean up.
#
# Environment:
#   K8S_BIN_DIR   directory with kube-apiserver and etcd (default: run build.sh)
#   KUBECTL       kubectl binary (default: kubectl on PATH, else /usr/bin/kubectl)
#   READY_TIMEOUT seconds to wait for etcd / apiserver readiness (default 120)
#   KEEP_TMP=1    keep the temp dir (certs, kubeconfig, logs) for inspection
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log() { printf '[k8s-smoke] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now_ms() { date +%s%3N; }

for tool in openssl curl; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done
KUBECTL="${KUBECTL:-$(command -v kubectl || echo /usr/bin/kubectl)}"
[[ -x "$KUBECTL" ]] || die "kubectl not found (set KUBECTL=...)"
READY_TIMEOUT="${READY_TIMEOUT:-120}"

if [[ -z "${K8S_BIN_DIR:-}" ]]; then
  K8S_BIN_DIR="$(bash "$HERE/build.sh" | tail -n 1)"
fi
APISERVER="$K8S_BIN_DIR/kube-apiserver"
ETCD="$K8S_BIN_DIR/etcd"
[[ -x "$APISERVER" && -x "$ETCD" ]] || die "missing binaries in $K8S_BIN_DIR"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/nanoproxy-k8s-smoke.XXXXXX")"
ETCD_PID=""
APISERVER_PID=""

stop_pid() { # <pid> <name>: SIGTERM, wait up to 15s, then SIGKILL
  local pid="$1" name="$2" i
  [[ -n "$pid" ]] || return 0
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name ($pid) did not stop on SIGTERM, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  log "stopped $name (pid $pid)"
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ $rc -ne 0 ]]; then
    for f in apiserver.log etcd.log; do
      [[ -f "$TMP/$f" ]] && { log "---- last lines of $f ----"; tail -n 30 "$TMP/$f" >&2; }
    done
  fi
  stop_pid "$APISERVER_PID" kube-apiserver
  stop_pid "$ETCD_PID" etcd
  if [[ "${KEEP_TMP:-0}" == 1 ]]; then
    log "kept $TMP"
  else
    rm -rf "$TMP"
  fi
  if [[ $rc -eq 0 ]]; then log "OK"; else log "FAILED (exit $rc)"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- free ports
USED_PORTS=" "
free_port() {
  local p
  while :; do
    if command -v python3 >/dev/null 2>&1; then
      p="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
    else
      p=$((20000 + RANDOM % 40000))
      # Something answers on it: taken.
      if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then continue; fi
    fi
    [[ "$USED_PORTS" == *" $p "* ]] && continue
    USED_PORTS+="$p "
    echo "$p"
    return 0
  done
}
ETCD_CLIENT_PORT="$(free_port)"
ETCD_PEER_PORT="$(free_port)"
API_PORT="$(free_port)"

# ---------------------------------------------------------------- certificates
log "generating certificates in $TMP/pki"
PKI="$TMP/pki"
mkdir -p "$PKI"
(
  cd "$PKI"
  exec 2>openssl.log
  # CA
  openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout ca.key -out ca.crt -days 2 -subj "/CN=nanoproxy-test-ca" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign"

  sign() { # <name> <subject> <extensions>
    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
      -keyout "$1.key" -out "$1.csr" -subj "$2"
    printf '%s\n' "$3" >"$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
      -days 2 -out "$1.crt" -extfile "$1.ext"
  }
  # apiserver serving cert. 10.0.0.1 is the "kubernetes" service IP of
  # --service-cluster-ip-range=10.0.0.0/24 (only in the cert, never dialled).
  sign apiserver "/CN=kube-apiserver" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
  # admin client cert: O=system:masters is bound to cluster-admin by RBAC.
  sign admin "/O=system:masters/CN=admin" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
  # service-account token signing keypair
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key
  openssl pkey -in sa.key -pubout -out sa.pub
) || { cat "$PKI/openssl.log" >&2; die "openssl failed"; }

# ---------------------------------------------------------------- etcd
ETCD_URL="http://127.0.0.1:$ETCD_CLIENT_PORT"
log "starting etcd ($("$ETCD" --version | head -n 1)) on $ETCD_URL (peer $ETCD_PEER_PORT)"
"$ETCD" \
  --name smoke \
  --data-dir "$TMP/etcd-data" \
  --listen-client-urls "$ETCD_URL" \
  --advertise-client-urls "$ETCD_URL" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "smoke=http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster-state new \
  --unsafe-no-fsync \
  --log-level warn \
  >"$TMP/etcd.log" 2>&1 &
ETCD_PID=$!

t0="$(now_ms)"
until curl -fsS --max-time 2 "$ETCD_URL/health" 2>/dev/null | grep -q '"health":"true"'; do
  kill -0 "$ETCD_PID" 2>/dev/null || die "etcd exited early"
  (( $(now_ms) - t0 < READY_TIMEOUT * 1000 )) || die "etcd not healthy after ${READY_TIMEOUT}s"
  sleep 0.1
done
log "etcd healthy after $(( $(now_ms) - t0 )) ms (pid $ETCD_PID)"

# ---------------------------------------------------------------- kube-apiserver
API_URL="https://127.0.0.1:$API_PORT"
log "starting kube-apiserver ($("$APISERVER" --version)) on $API_URL"
t0="$(now_ms)"
"$APISERVER" \
  --bind-address=127.0.0.1 \
  --advertise-address=127.0.0.1 \
  --secure-port="$API_PORT" \
  --etcd-servers="$ETCD_URL" \
  --cert-dir="$TMP/apiserver-certs" \
  --tls-cert-file="$PKI/apiserver.crt" \
  --tls-private-key-file="$PKI/apiserver.key" \
  --client-ca-file="$PKI/ca.crt" \
  --authorization-mode=RBAC \
  --service-account-issuer="$API_URL" \
  --service-account-key-file="$PKI/sa.pub" \
  --service-account-signing-key-file="$PKI/sa.key" \
  --service-cluster-ip-range=10.0.0.0/24 \
  --endpoint-reconciler-type=none \
  --disable-admission-plugins=ServiceAccount \
  --profiling=false \
  >"$TMP/apiserver.log" 2>&1 &
APISERVER_PID=$!

CURL=(curl -fsS --max-time 2 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key")
until [[ "$("${CURL[@]}" "$API_URL/readyz" 2>/dev/null)" == ok ]]; do
  kill -0 "$APISERVER_PID" 2>/dev/null || die "kube-apiserver exited early"
  (( $(now_ms) - t0 < READY_TIMEOUT * 1000 )) || {
    "${CURL[@]}" "$API_URL/readyz?verbose" >&2 || true
    die "kube-apiserver not ready after ${READY_TIMEOUT}s"
  }
  sleep 0.1
done
READY_MS=$(( $(now_ms) - t0 ))
log "kube-apiserver ready after $READY_MS ms (pid $APISERVER_PID)"

# ---------------------------------------------------------------- kubeconfig
export KUBECONFIG="$TMP/kubeconfig"
"$KUBECTL" config set-cluster smoke --server="$API_URL" \
  --certificate-authority="$PKI/ca.crt" --embed-certs=true >/dev/null
"$KUBECTL" config set-credentials admin \
  --client-certificate="$PKI/admin.crt" --client-key="$PKI/admin.key" --embed-certs=true >/dev/null
"$KUBECTL" config set-context smoke --cluster=smoke --user=admin >/dev/null
"$KUBECTL" config use-context smoke >/dev/null

# ---------------------------------------------------------------- kubectl
set -x
"$KUBECTL" version
"$KUBECTL" get --raw /version; echo
"$KUBECTL" auth whoami 2>/dev/null || true
"$KUBECTL" get namespaces
"$KUBECTL" apply -f - <<'EOF'
apiVersion: v1
kind: Namespace
metadata:
  name: nanoproxy-smoke
---
apiVersion: v1
kind: Service
metadata:
  name: echo
  namespace: nanoproxy-smoke
spec:
  selector:
    app: echo
  ports:
    - name: http
      port: 80
      targetPort: 8080
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: nanoproxy
spec:
  controller: nanoproxy.io/ingress-controller
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: echo
  namespace: nanoproxy-smoke
spec:
  ingressClassName: nanoproxy
  rules:
    - host: echo.example.test
      http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service:
                name: echo
                port:
                  number: 80
EOF
"$KUBECTL" get service -n nanoproxy-smoke echo -o wide
"$KUBECTL" get ingressclass
"$KUBECTL" get ingress -A
set +x

# The Service got a ClusterIP from the apiserver's own allocator.
CLUSTER_IP="$("$KUBECTL" get service -n nanoproxy-smoke echo -o jsonpath='{.spec.clusterIP}')"
[[ "$CLUSTER_IP" == 10.0.0.* ]] || die "unexpected ClusterIP '$CLUSTER_IP'"
[[ "$("$KUBECTL" get ingress -n nanoproxy-smoke echo -o jsonpath='{.spec.ingressClassName}')" == nanoproxy ]] \
  || die "ingress not stored"

# No kube-controller-manager runs: a deleted namespace keeps its "kubernetes"
# finalizer and stays Terminating (nothing empties and finalizes it).
"$KUBECTL" delete namespace nanoproxy-smoke --wait=false >&2
PHASE="$("$KUBECTL" get namespace nanoproxy-smoke -o jsonpath='{.status.phase}')"
log "namespace nanoproxy-smoke after delete: phase=$PHASE (expected Terminating: no namespace controller)"
[[ "$PHASE" == Terminating ]] || die "unexpected namespace phase '$PHASE'"

log "kube-apiserver time-to-ready: $READY_MS ms"
echo "apiserver_ready_ms=$READY_MS"
