# shellcheck shell=bash
# Library (source it): starts a throwaway local control plane — a real etcd and
# kube-apiserver on free loopback ports — from the same flags as the Rust test kit
# (hack/control-plane.flags): TLS from a fresh CA, an admin token in system:masters, RBAC
# authorization, service-account token signing.
#
#   source hack/control-plane.sh
#   start_control_plane DIR ASSETS   # ASSETS holds etcd and kube-apiserver
#
# Sets ETCD_PID, APISERVER_PID (children of the calling shell: stop them yourself, e.g.
# in an EXIT trap) and SERVER, and writes DIR/kubeconfig. Logs go to DIR/*.log.

_cp_flags_file=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/control-plane.flags

# _cp_flags PROGRAM: that program's flags from control-plane.flags, placeholders filled in
# from the variables dir, etcd_port, peer_port and api_port of the caller.
_cp_flags() {
  local program=$1 line
  while IFS= read -r line; do
    case $line in "$program "*) ;; *) continue ;; esac
    line=${line#"$program "}
    line=${line//\{dir\}/$dir}
    line=${line//\{etcd_port\}/$etcd_port}
    line=${line//\{peer_port\}/$peer_port}
    line=${line//\{api_port\}/$api_port}
    printf '%s\n' "$line"
  done <"$_cp_flags_file"
}

_cp_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

start_control_plane() {
  local dir=$1 assets=$2
  mkdir -p "$dir"
  # First: _cp_flags fills every placeholder, also for the certificate's `san` line (under
  # `set -u` an unset port would leave the subjectAltName empty).
  local etcd_port peer_port api_port
  etcd_port=$(_cp_free_port)
  peer_port=$(_cp_free_port)
  api_port=$(_cp_free_port)
  (
    cd "$dir"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 7 \
      -subj /CN=connect-operator-demo-ca -addext basicConstraints=critical,CA:TRUE \
      -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
    printf '%s\n' 'basicConstraints=CA:FALSE' \
      'keyUsage=critical,digitalSignature,keyEncipherment' 'extendedKeyUsage=serverAuth' \
      "subjectAltName=$(_cp_flags san)" >apiserver.ext
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr \
      -subj /CN=kube-apiserver 2>/dev/null
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
      -out apiserver.crt -days 7 -extfile apiserver.ext 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  )
  local token
  token=admin-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
  echo "$token,admin,admin,\"system:masters\"" >"$dir/tokens.csv"

  local -a etcd_flags apiserver_flags
  mapfile -t etcd_flags < <(_cp_flags etcd)
  mapfile -t apiserver_flags < <(_cp_flags kube-apiserver)
  "$assets/etcd" "${etcd_flags[@]}" >"$dir/etcd.log" 2>&1 &
  ETCD_PID=$!
  "$assets/kube-apiserver" "${apiserver_flags[@]}" >"$dir/kube-apiserver.log" 2>&1 &
  APISERVER_PID=$!
  SERVER=https://127.0.0.1:$api_port

  cat >"$dir/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: $SERVER
    certificate-authority: $dir/ca.crt
users:
- name: admin
  user:
    token: $token
contexts:
- name: local
  context:
    cluster: local
    user: admin
    namespace: default
current-context: local
EOF

  local i
  for i in $(seq 600); do
    if curl -fsS --cacert "$dir/ca.crt" -H "Authorization: Bearer $token" "$SERVER/readyz" >/dev/null 2>&1; then
      return 0
    fi
    kill -0 "$APISERVER_PID" 2>/dev/null || { echo "kube-apiserver exited; see $dir/kube-apiserver.log" >&2; return 1; }
    sleep 0.2
  done
  echo "kube-apiserver not ready after 120 s; see $dir/kube-apiserver.log" >&2
  return 1
}
