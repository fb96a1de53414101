#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Opt-in smoke test against REAL Amazon Connect (`make e2e-aws`); never part of `make test`
# or .ci/run. A throwaway local control plane (real etcd + kube-apiserver, as hack/demo.sh
# starts it; your own kubeconfig is never read or touched) and the real operator binary,
# without --aws-endpoint-url, against the AWS account of the credentials in the environment:
#
#   1. one ConnectInstance with a unique alias (co-e2e-<random>) -> Ready;
#   2. one attribute changed (contactflowLogs false -> true)     -> Ready for the new generation;
#   3. deleted                                                    -> gone (AWS answered NotFound).
#
# A clean-up trap always runs: it deletes the object (the operator deletes the instance);
# if the object could not be deleted and the instance id is known, it calls
# `aws connect delete-instance` when the aws CLI is installed, else prints that command.
#
#   CONNECT_OPERATOR_E2E_AWS=1 AWS_REGION=eu-west-2 AWS_PROFILE=sandbox hack/e2e-aws.sh [--yes]
#
# Environment:
#   CONNECT_OPERATOR_E2E_AWS=1          required: without it the script refuses to run
#   CONNECT_OPERATOR_E2E_AWS_YES=1      same as --yes: do not ask for confirmation
#   AWS_REGION (or AWS_DEFAULT_REGION)  the region to create the instance in
#   AWS credentials                     AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY[/AWS_SESSION_TOKEN],
#                                       AWS_PROFILE, or a web-identity / container provider
#   CONNECT_OPERATOR_E2E_AWS_TIMEOUT    seconds per wait (default 900: creation takes minutes)
#
# Costs: an Amazon Connect instance has no standing charge (you pay for usage: phone
# numbers, minutes, ...; this test uses none), but it counts against the account's instance
# quota while it exists, and the create and the delete are 2 of the account's ~100
# create/delete attempts per 30 days (AWS flags the account when they run out).
set -euo pipefail

usage() {
  sed -n '3,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}

assume_yes=${CONNECT_OPERATOR_E2E_AWS_YES:-0}
for arg in "$@"; do
  case $arg in
    --yes | -y) assume_yes=1 ;;
    --help | -h)
      usage
      exit 0
      ;;
    *)
      echo "e2e-aws: unknown argument '$arg' (try --help)" >&2
      exit 2
      ;;
  esac
done

refuse() {
  echo "e2e-aws: refusing to run: $*" >&2
  exit 2
}

if [[ ${CONNECT_OPERATOR_E2E_AWS:-} != 1 ]]; then
  refuse "this test creates and deletes a real Amazon Connect instance in your AWS account.
  Set CONNECT_OPERATOR_E2E_AWS=1 to run it (with real AWS credentials and AWS_REGION in the
  environment), e.g.  CONNECT_OPERATOR_E2E_AWS=1 AWS_REGION=eu-west-2 make e2e-aws"
fi

region=${AWS_REGION:-${AWS_DEFAULT_REGION:-}}
[[ -n $region ]] || refuse "set AWS_REGION (or AWS_DEFAULT_REGION) to the region to test in."
if [[ -z ${AWS_ACCESS_KEY_ID:-} && -z ${AWS_PROFILE:-} && -z ${AWS_WEB_IDENTITY_TOKEN_FILE:-} &&
  -z ${AWS_CONTAINER_CREDENTIALS_FULL_URI:-} && -z ${AWS_CONTAINER_CREDENTIALS_RELATIVE_URI:-} ]]; then
  refuse "no AWS credentials in the environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
  AWS_PROFILE, AWS_WEB_IDENTITY_TOKEN_FILE or a container credentials URI)."
fi
if [[ -n ${AWS_ACCESS_KEY_ID:-} && -z ${AWS_SECRET_ACCESS_KEY:-} ]]; then
  refuse "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not."
fi
# The operator reads AWS_ENDPOINT_URL as --aws-endpoint-url: this test is about real AWS.
for var in AWS_ENDPOINT_URL AWS_ENDPOINT_URL_CONNECT; do
  [[ -z ${!var:-} ]] || refuse "$var is set (${!var}); this test talks to real AWS: unset it."
done
timeout_s=${CONNECT_OPERATOR_E2E_AWS_TIMEOUT:-900}
[[ $timeout_s =~ ^[0-9]+$ && $timeout_s -gt 0 ]] ||
  refuse "CONNECT_OPERATOR_E2E_AWS_TIMEOUT must be a number of seconds."

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# step, note, free_port, find_kube_binaries, wait_for_readyz, install_crds,
# stop_processes, show_logs (shared with hack/demo.sh and hack/test-image.sh).
# shellcheck source=lib.sh
source "$root/hack/lib.sh"

have_aws_cli=false
command -v aws >/dev/null 2>&1 && have_aws_cli=true

suffix=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
alias_name=co-e2e-$suffix
namespace=e2e-aws
object=co-e2e-$suffix

step "Amazon Connect smoke test against REAL AWS"
account="(unknown: the aws CLI is not installed)"
if $have_aws_cli; then
  account=$(aws sts get-caller-identity --query Account --output text 2>/dev/null) ||
    refuse "the AWS credentials do not work: \`aws sts get-caller-identity\` failed."
fi
note "account:  $account"
note "region:   $region"
note "instance: alias $alias_name (ConnectInstance $namespace/$object), deletionPolicy Delete"
note ""
note "Cost: an Amazon Connect instance has no standing charge (this test uses no phone"
note "numbers or minutes), but while it exists it counts against the account's instance"
note "quota. The test spends 2 of the account's ~100 create/delete attempts per 30 days"
note "(one CreateInstance, one DeleteInstance); AWS flags the account when they run out."
note "It takes about 5-20 minutes."
if [[ $assume_yes != 1 ]]; then
  if [[ ! -t 0 ]]; then
    refuse "no terminal to confirm on; pass --yes (or CONNECT_OPERATOR_E2E_AWS_YES=1)."
  fi
  read -r -p "    Type 'yes' to create and delete a real instance: " answer
  [[ $answer == yes ]] || refuse "not confirmed."
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/connect-operator-e2e-aws.XXXXXX")
export KUBECONFIG=$work/kubeconfig
operator_pid=
instance_id=
applied=false
passed=false

object_exists() {
  local out
  out=$("$kubectl_bin" get connectinstance "$object" -n "$namespace" -o name 2>&1) && return 0
  [[ $out == *NotFound* || $out == *"not found"* ]] && return 1
  return 2 # the API server cannot say
}

# read_object: sets generation, observed, stalled, ready_status, ready_generation,
# ready_reason, ready_message and (once known) instance_id from the object. Fails if it
# cannot be read.
read_object() {
  local line id
  line=$("$kubectl_bin" get connectinstance "$object" -n "$namespace" -o jsonpath='{.metadata.generation}|{.status.observedGeneration}|{.status.instanceId}|{range .status.conditions[?(@.type=="Stalled")]}{.status}{end}|{range .status.conditions[?(@.type=="Ready")]}{.status}|{.observedGeneration}|{.reason}|{.message}{end}' 2>/dev/null) ||
    return 1
  IFS='|' read -r generation observed id stalled ready_status ready_generation ready_reason ready_message <<<"$line"
  if [[ -n $id && $id != "$instance_id" ]]; then
    instance_id=$id
    echo "$instance_id" >"$work/instance-id"
    note "instance id: $instance_id"
  fi
}

# pause SECONDS: a sleep that Ctrl-C interrupts at once (traps run between foreground
# commands only).
pause() {
  sleep "$1" &
  wait $! || true
}

# wait_ready GENERATION: until Ready=True for that generation (also status.observedGeneration).
wait_ready() {
  local want=$1 deadline=$((SECONDS + timeout_s)) last=
  while ((SECONDS < deadline)); do
    if read_object; then
      local now="Ready=${ready_status:-?} ${ready_reason:-} (generation ${generation:-?}, observed ${observed:-?}): ${ready_message:-}"
      [[ -n $ready_status && $now != "$last" ]] && note "$now"
      last=$now
      if [[ $generation == "$want" && $observed == "$want" && $ready_generation == "$want" && $ready_status == True ]]; then
        return 0
      fi
      # Stalled: a human has to act (creation failed, quota, alias taken, ...).
      if [[ $stalled == True && $observed == "$want" ]]; then
        echo "e2e-aws: Stalled ($ready_reason): $ready_message" >&2
        return 1
      fi
    fi
    kill -0 "$operator_pid" 2>/dev/null || {
      echo "e2e-aws: the operator exited" >&2
      return 1
    }
    pause 10
  done
  echo "e2e-aws: not Ready for generation $want within $timeout_s s" >&2
  return 1
}

# wait_gone SECONDS: until the object no longer exists (the finalizer goes only after AWS
# reports the instance gone).
wait_gone() {
  local deadline=$((SECONDS + $1)) rc last=
  while ((SECONDS < deadline)); do
    rc=0
    object_exists || rc=$?
    [[ $rc == 1 ]] && return 0
    if read_object; then
      local now="deleting: Ready=${ready_status:-?} ${ready_reason:-}: ${ready_message:-}"
      [[ $now != "$last" ]] && note "$now"
      last=$now
    fi
    if [[ -n $operator_pid ]] && ! kill -0 "$operator_pid" 2>/dev/null; then
      echo "e2e-aws: the operator exited" >&2
      return 1
    fi
    pause 10
  done
  return 1
}

cleanup() {
  local status=$?
  trap - EXIT
  # Clean-up must run to the end whatever fails in it, also through another Ctrl-C: it is
  # what deletes the instance (SIGKILL this script to abandon it).
  trap '' INT TERM
  set +e
  local object_gone=true
  if $applied; then
    local rc=0
    object_exists || rc=$?
    if [[ $rc != 1 ]]; then
      object_gone=false
      if [[ $rc == 0 && -n $operator_pid ]] && kill -0 "$operator_pid" 2>/dev/null; then
        step "clean-up: deleting ConnectInstance $namespace/$object (the operator deletes the instance)"
        # deletionPolicy is Delete (set in the manifest below): the operator deletes it in AWS.
        "$kubectl_bin" delete connectinstance "$object" -n "$namespace" --wait=false >/dev/null 2>&1
        wait_gone "$timeout_s" && object_gone=true
      fi
    fi
  fi
  local stop=() pid
  for pid in "${operator_pid:-}" "${APISERVER_PID:-}" "${ETCD_PID:-}"; do
    [[ -n $pid ]] && stop+=("$pid")
  done
  if [[ ${#stop[@]} -gt 0 ]]; then
    step "stopping the operator, kube-apiserver and etcd"
    disown -a 2>/dev/null || true
    stop_processes "${stop[@]}"
    wait 2>/dev/null || true
  fi
  if ! $object_gone; then
    if [[ -n $instance_id ]]; then
      local command=(aws connect delete-instance --region "$region" --instance-id "$instance_id")
      if $have_aws_cli; then
        step "clean-up: the object could not be deleted; deleting instance $instance_id with the aws CLI"
        local out
        if out=$(aws connect describe-instance --region "$region" --instance-id "$instance_id" 2>&1); then
          if "${command[@]}"; then
            note "DeleteInstance accepted; it finishes within minutes. Check with:"
            note "  aws connect describe-instance --region $region --instance-id $instance_id"
          else
            echo "e2e-aws: DELETE IT YOURSELF: ${command[*]}" >&2
            status=1
          fi
        elif [[ $out == *ResourceNotFoundException* ]]; then
          note "instance $instance_id no longer exists: nothing left behind"
        else
          echo "e2e-aws: cannot tell whether instance $instance_id still exists ($out)." >&2
          echo "e2e-aws: if it does, delete it: ${command[*]}" >&2
          status=1
        fi
      else
        echo "e2e-aws: the object could not be deleted and the aws CLI is not installed." >&2
        echo "e2e-aws: DELETE THE INSTANCE YOURSELF: ${command[*]}" >&2
        status=1
      fi
    else
      echo "e2e-aws: the object could not be deleted and no instance id was recorded. If" >&2
      echo "e2e-aws: CreateInstance went through, an instance with alias $alias_name exists:" >&2
      echo "e2e-aws:   aws connect list-instances --region $region --query \"InstanceSummaryList[?InstanceAlias=='$alias_name']\"" >&2
      echo "e2e-aws:   aws connect delete-instance --region $region --instance-id <its Id>" >&2
      status=1
    fi
  fi
  if $passed && [[ $status == 0 ]]; then
    rm -rf "$work"
    step "passed: created, updated and deleted $alias_name in $region"
  else
    [[ $status == 0 ]] && status=1
    echo "e2e-aws: failed (exit $status); logs in $work:" >&2
    show_logs "$work"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "building what is missing"
find_kube_binaries
kubectl_bin=$KUBECTL_BIN
cargo build --quiet --package connect-operator --bins
operator_bin=$(cargo_target_dir)/debug/connect-operator

step "starting etcd and kube-apiserver (local, throwaway; your kubeconfig is not used)"
# shellcheck source=control-plane.sh
source "$root/hack/control-plane.sh"
# Job control (set -m) puts each background process in a process group of its own, so a
# Ctrl-C in the terminal (or a signal to this script's group) reaches only this script:
# its clean-up still needs the API server and the operator to delete the instance.
set -m
start_control_plane "$work" "$KUBEBUILDER_ASSETS"
set +m
note "API server $SERVER; KUBECONFIG=$KUBECONFIG"
kubectl() { "$kubectl_bin" "$@"; }
install_crds
install_default_account
kubectl create namespace "$namespace" >/dev/null

step "starting the operator against real AWS ($region, no endpoint override)"
metrics_port=$(free_port)
set -m # see above
NO_COLOR=1 "$operator_bin" run --namespace "$namespace" --region "$region" \
  --metrics-addr "127.0.0.1:$metrics_port" --creation-poll-interval 15s \
  >"$work/operator.log" 2>&1 &
operator_pid=$!
set +m
wait_for_readyz "$metrics_port" 60 "$operator_pid" || {
  echo "e2e-aws: the operator is not ready" >&2
  exit 1
}
note "operator ready (log: $work/operator.log)"

step "1/3 creating ConnectInstance $object (alias $alias_name) and waiting for Ready"
applied=true
kubectl apply -n "$namespace" -f - <<EOF
apiVersion: connect.operators.dev/v1alpha1
kind: ConnectInstance
metadata:
  name: $object
spec:
  identityManagementType: CONNECT_MANAGED
  instanceAlias: $alias_name
  inboundCallsEnabled: true
  outboundCallsEnabled: false
  attributes:
    contactflowLogs: false
  tags:
    purpose: connect-operator-e2e
  deletionPolicy: Delete
EOF
wait_ready 1
kubectl get connectinstance "$object" -n "$namespace" -o wide

step "2/3 changing one attribute (contactflowLogs: true) and waiting for Ready again"
kubectl patch connectinstance "$object" -n "$namespace" --type merge \
  -p '{"spec":{"attributes":{"contactflowLogs":true}}}'
wait_ready 2
if $have_aws_cli; then
  value=$(aws connect describe-instance-attribute --region "$region" --instance-id "$instance_id" \
    --attribute-type CONTACTFLOW_LOGS --query Attribute.Value --output text)
  note "AWS says CONTACTFLOW_LOGS=$value"
  [[ $value == true ]] || {
    echo "e2e-aws: CONTACTFLOW_LOGS is $value in AWS, want true" >&2
    exit 1
  }
fi

step "3/3 deleting the ConnectInstance and waiting until it is gone"
kubectl delete connectinstance "$object" -n "$namespace" --wait=false
wait_gone "$timeout_s" || {
  echo "e2e-aws: the object was not gone within $timeout_s s" >&2
  exit 1
}
note "the finalizer was released: AWS reported the instance gone"
if $have_aws_cli && [[ -n $instance_id ]]; then
  if out=$(aws connect describe-instance --region "$region" --instance-id "$instance_id" 2>&1); then
    echo "e2e-aws: AWS still describes instance $instance_id after the object was released" >&2
    exit 1
  elif [[ $out != *ResourceNotFoundException* ]]; then
    note "could not confirm with the aws CLI: $out"
  else
    note "aws connect describe-instance: ResourceNotFoundException"
  fi
fi
passed=true
