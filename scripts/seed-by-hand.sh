#!/usr/bin/env bash
# The seed's procedure (SPEC §1) done by hand with kubectl, curl and jq: what an operator
# without Baton would script. `baton-bench --real` runs it beside the engine on the same
# seeded cluster and compares wall time and API requests (BENCHMARKS.md, issue 13).
#
#   KUBECONFIG=... scripts/seed-by-hand.sh --namespace NS --name sample \
#       --arbiter http://127.0.0.1:8080 --image main=alpine:3.18.0 [--max-per-wave N] \
#       [--role-label working] [--timeout 600s]   (the timeout in seconds, per wait)
#
# It keeps the engine's safety rules: the partition is raised to the replica count before
# the template changes, only idle pods the arbiter names are ever selected (ranked first by
# a `baton.dev/selected` weight term), every write is an absolute value, the working count
# never drops (handover promotes as many pods as it demotes), and after each wave the
# working pods are checked unchanged (uid, revision, restarts); if one changed, the
# partition goes back to the replica count and the script exits 1.
# Exit codes: 0 done, 1 safety stop, 2 any other failure (nothing more is written).
set -euo pipefail
# A failed kubectl or curl exits 1 by itself, which would read as a safety stop.
trap 'echo "seed-by-hand: error: a command failed at line $LINENO" >&2; exit 2' ERR

ns="" name="" arbiter="" image_arg="" max_per_wave=0 role_label=working timeout=600s
while [ $# -gt 0 ]; do
  case "$1" in
    --namespace) ns="$2"; shift 2 ;;
    --name) name="$2"; shift 2 ;;
    --arbiter) arbiter="${2%/}"; shift 2 ;;
    --image) image_arg="$2"; shift 2 ;;
    --max-per-wave) max_per_wave="$2"; shift 2 ;;
    --role-label) role_label="$2"; shift 2 ;;
    --timeout) timeout="$2"; shift 2 ;;
    *) echo "seed-by-hand: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
container="${image_arg%%=*}"
image="${image_arg#*=}"
if [ -z "$ns" ] || [ -z "$name" ] || [ -z "$arbiter" ] || [ -z "$container" ] || [ "$container" = "$image_arg" ]; then
  echo "seed-by-hand: --namespace, --name, --arbiter and --image CONTAINER=IMAGE are required" >&2
  exit 2
fi
case "$max_per_wave" in '' | *[!0-9]*) echo "seed-by-hand: --max-per-wave must be a number" >&2; exit 2 ;; esac

readonly SELECTED=baton.dev/selected
readonly REVISION=controller-revision-hash
readonly ASTS=statefulsets.v1beta1.apps.kruise.io

log() { printf '%s seed-by-hand: %s\n' "$(date -u +%H:%M:%S.%3N)" "$*" >&2; }
die() { log "error: $*"; exit 2; }
k() { kubectl --namespace "$ns" "$@"; }
members() { curl -fsS --max-time 5 --retry 3 --retry-all-errors "$arbiter/v1/members"; }

# The set, once its controller has seen the latest spec (updateRevision is trusted only then).
current_set() {
  local sts gen
  sts=$(k get "$ASTS" "$name" -o json)
  gen=$(jq '.metadata.generation' <<<"$sts")
  if [ "$(jq '.status.observedGeneration // 0' <<<"$sts")" != "$gen" ]; then
    k wait "$ASTS/$name" --for=jsonpath='{.status.observedGeneration}'="$gen" --timeout="$timeout" >/dev/null
    sts=$(k get "$ASTS" "$name" -o json)
  fi
  printf '%s' "$sts"
}

# The wave's decisions from the set, its pods and the arbiter as last read into $work (pure:
# jq over the three reads; files, as a pod list outgrows an argument). Pods are the set's own
# (controller owner = its uid), in ordinal order.
plan_wave() { # MIN_WORKING
  jq -n --slurpfile s "$work/sts.json" --slurpfile p "$work/pods.json" --slurpfile a "$work/arb.json" \
    --arg rl "$role_label" --arg sel "$SELECTED" --arg revl "$REVISION" \
    --argjson max "$max_per_wave" --argjson min "$1" '
    $s[0] as $sts | $p[0] as $pods | $a[0] as $arb
    | def ordinal: .metadata.name | capture("-(?<n>[0-9]+)$").n | tonumber;
    def ready: any(.status.conditions[]?; .type == "Ready" and .status == "True");
    ($arb.members | map({key: .name, value: .role}) | from_entries) as $role
    | $sts.status.updateRevision as $rev
    | [$pods.items[] | select(any(.metadata.ownerReferences[]?; .uid == $sts.metadata.uid and .controller == true))]
    | sort_by(ordinal) as $P
    | [$P[] | select(.metadata.labels[$revl] != $rev)] as $O
    | [$P[] | select($role[.metadata.name] == "working")] as $W
    | [$O[] | select($role[.metadata.name] == "idle") | .metadata.name] as $IO
    | (if $max > 0 then $IO[:$max] else $IO end) as $S
    | [$O[] | select($role[.metadata.name] == "working") | .metadata.name] as $WO
    | [$P[] | select($role[.metadata.name] == "idle" and .metadata.labels[$revl] == $rev and ready) | .metadata.name] as $ready_IU
    | ([$ready_IU | length, ($WO | length)] + (if $max > 0 then [$max] else [] end) | min) as $m
    | {
        revision: $rev,
        replicas: $sts.spec.replicas,
        epoch: $arb.epoch,
        working: ($W | length),
        too_few: (($W | length) < $min),
        foreign: [$arb.members[].name | select(. as $n | $P | all(.metadata.name != $n))],
        protected: [$P[].metadata.name | select($role[.] == null)],
        old: [$O[].metadata.name],
        selected: $S,
        partition: ($sts.spec.replicas - ($P | length) + ($O | length) - ($S | length)),
        set_true: [$P[] | select($role[.metadata.name] == "working" and .metadata.labels[$rl] != "true") | .metadata.name],
        set_false: [$P[] | select($role[.metadata.name] == "idle" and .metadata.labels[$rl] != "false") | .metadata.name],
        select_add: [$P[] | .metadata.name as $n | select(($S | index($n)) != null and .metadata.labels[$sel] != "true") | $n],
        select_drop: [$P[] | .metadata.name as $n | select(($S | index($n)) == null and .metadata.labels[$sel] != null) | $n],
        promote: $ready_IU[:$m],
        demote: $WO[:$m],
        baseline: [$W[] | {name: .metadata.name, uid: .metadata.uid, revision: .metadata.labels[$revl],
                           restarts: ([.status.containerStatuses[]?.restartCount] | add // 0)}]
      }'
}

# Names of the wave's pods (of $work/pods.json) not yet updated and Ready (revision, every
# readiness gate, not terminating, lifecycle Normal or none, the container running the
# template's image).
not_done() { # SELECTED REVISION
  jq -r --argjson s "$1" --arg rev "$2" --arg revl "$REVISION" --arg c "$container" '
    .items[] | select(.metadata.name as $n | $s | index($n) != null)
    | select(
        (.metadata.labels[$revl] == $rev)
        and any(.status.conditions[]?; .type == "Ready" and .status == "True")
        and all(.spec.readinessGates[]?.conditionType as $g | any(.status.conditions[]?; .type == $g and .status == "True"); .)
        and (.metadata.deletionTimestamp == null)
        and ((.metadata.labels["lifecycle.apps.kruise.io/state"] // "Normal") == "Normal")
        and (([.spec.containers[] | select(.name == $c) | .image][0]) as $want
             | any(.status.containerStatuses[]?; .name == $c and .image == $want))
        | not)
    | .metadata.name' "$work/pods.json"
}

# Working pods of the wave's start ($work/plan.json) that were updated, restarted or
# recreated since (in $work/pods.json).
changed_working() {
  jq -r --slurpfile plan "$work/plan.json" --arg revl "$REVISION" '
    $plan[0].baseline as $base | (.items | map({key: .metadata.name, value: .}) | from_entries) as $now
    | $base[] | . as $b | $now[$b.name] as $p
    | select($p == null or $p.metadata.uid != $b.uid or $p.metadata.labels[$revl] != $b.revision
             or ([$p.status.containerStatuses[]?.restartCount] | add // 0) != $b.restarts)
    | $b.name' "$work/pods.json"
}

relabel() { # PLAN
  local t f a d
  t=$(jq -r '.set_true | join(" ")' <<<"$1")
  f=$(jq -r '.set_false | join(" ")' <<<"$1")
  a=$(jq -r '.select_add | join(" ")' <<<"$1")
  d=$(jq -r '.select_drop | join(" ")' <<<"$1")
  # shellcheck disable=SC2086 # word splitting of pod names is the point
  {
    [ -z "$t" ] || k label pod $t "$role_label=true" --overwrite >/dev/null
    [ -z "$f" ] || k label pod $f "$role_label=false" --overwrite >/dev/null
    [ -z "$d" ] || k label pod $d "$SELECTED-" >/dev/null
    [ -z "$a" ] || k label pod $a "$SELECTED=true" --overwrite >/dev/null
  }
}

set_partition() { k patch "$ASTS" "$name" --type merge -p "{\"spec\":{\"updateStrategy\":{\"rollingUpdate\":{\"partition\":$1}}}}" >/dev/null; }

# Preconditions (SPEC §1), then protect and rank the wave's pods first, then the template.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
read_all() { # the set, its pods and the arbiter, into $work
  current_set >"$work/sts.json"
  k get pods -l "$selector" -o json >"$work/pods.json"
  members >"$work/arb.json"
}

sts=$(k get "$ASTS" "$name" -o json) || die "no Advanced StatefulSet $ns/$name"
jq -e '.spec.podManagementPolicy == "Parallel"' <<<"$sts" >/dev/null || die "podManagementPolicy is not Parallel"
jq -e '(.spec.updateStrategy.type // "RollingUpdate") == "RollingUpdate"' <<<"$sts" >/dev/null || die "update type is not RollingUpdate"
jq -e '(.spec.updateStrategy.rollingUpdate.paused // false) | not' <<<"$sts" >/dev/null || die "the set is paused"
jq -e '.spec.updateStrategy.rollingUpdate.unorderedUpdate.priorityStrategy.orderPriority == null' <<<"$sts" >/dev/null ||
  die "the set ranks pods with orderPriority, which Kruise forbids beside the weight term"
jq -e '.spec.selector.matchExpressions == null' <<<"$sts" >/dev/null || die "selectors with matchExpressions are not handled here"
replicas=$(jq '.spec.replicas' <<<"$sts")
selector=$(jq -r '.spec.selector.matchLabels | to_entries | map("\(.key)=\(.value)") | join(",")' <<<"$sts")
index=$(jq --arg c "$container" '.spec.template.spec.containers | map(.name) | index($c)' <<<"$sts")
[ "$index" != null ] || die "the template has no container $container"
gated=$(jq 'any(.spec.template.spec.readinessGates[]?; .conditionType == "InPlaceUpdateReady")' <<<"$sts")
arb=$(members) || die "cannot read the arbiter at $arbiter"
min_working=$(jq '[.members[] | select(.role == "working")] | length' <<<"$arb")

terms=$(jq -c --arg sel "$SELECTED" '
  [{weight: 100, matchSelector: {matchLabels: {($sel): "true"}}}]
  + [(.spec.updateStrategy.rollingUpdate.unorderedUpdate.priorityStrategy.weightPriority // [])[]
     | select(.matchSelector.matchLabels[$sel] == null)]' <<<"$sts")
log "protect: partition $replicas, pods labelled $SELECTED=true ranked first"
k patch "$ASTS" "$name" --type merge -p "{\"spec\":{\"updateStrategy\":{\"rollingUpdate\":{\"partition\":$replicas,\"unorderedUpdate\":{\"priorityStrategy\":{\"weightPriority\":$terms}}}}}}" >/dev/null
if [ "$(jq -r ".spec.template.spec.containers[$index].image" <<<"$sts")" != "$image" ]; then
  log "apply-update: $container=$image"
  k patch "$ASTS" "$name" --type json -p "[{\"op\":\"test\",\"path\":\"/spec/template/spec/containers/$index/name\",\"value\":\"$container\"},{\"op\":\"replace\",\"path\":\"/spec/template/spec/containers/$index/image\",\"value\":\"$image\"}]" >/dev/null
fi

wave=0
while :; do
  wave=$((wave + 1))
  read_all
  plan=$(plan_wave "$min_working")
  printf '%s' "$plan" >"$work/plan.json"
  [ "$(jq '.foreign | length' <<<"$plan")" = 0 ] || die "the arbiter names pods outside the set: $(jq -c .foreign <<<"$plan")"
  [ "$(jq .too_few <<<"$plan")" = false ] || die "wave $wave: $(jq .working <<<"$plan") working pods, fewer than $min_working"
  [ "$(jq '.protected | length' <<<"$plan")" = 0 ] || log "warning: not in the arbiter, never selected: $(jq -c .protected <<<"$plan")"
  if [ "$(jq '.old | length' <<<"$plan")" = 0 ]; then break; fi
  rev=$(jq -r .revision <<<"$plan")
  selected=$(jq -c .selected <<<"$plan")
  relabel "$plan"
  if [ "$selected" != "[]" ]; then
    partition=$(jq .partition <<<"$plan")
    log "wave $wave: $(jq length <<<"$selected") idle pod(s), partition $partition"
    set_partition "$partition"
    names=$(jq -r 'map("pod/" + .) | join(" ")' <<<"$selected")
    # shellcheck disable=SC2086
    {
      k wait $names --for=jsonpath="{.metadata.labels.$REVISION}=$rev" --timeout="$timeout" >/dev/null
      [ "$gated" = false ] || k wait $names --for=condition=InPlaceUpdateReady --timeout="$timeout" >/dev/null
      k wait $names --for=condition=Ready --timeout="$timeout" >/dev/null
    }
    # Judge the pods themselves (a Ready seen by kubectl wait may predate the update).
    deadline=$((SECONDS + ${timeout%s}))
    while :; do
      k get pods -l "$selector" -o json >"$work/pods.json"
      stuck=$(not_done "$selected" "$rev")
      [ -n "$stuck" ] || break
      [ "$SECONDS" -lt "$deadline" ] || die "wave $wave: not updated and Ready: $(echo $stuck)"
      sleep 1
    done
    changed=$(changed_working)
    if [ -n "$changed" ]; then
      set_partition "$replicas"
      log "SAFETY STOP: working pod(s) changed during wave $wave: $(echo $changed); partition back to $replicas"
      exit 1
    fi
    # The handover judges who is ready now.
    members >"$work/arb.json"
    plan=$(plan_wave "$min_working")
  fi
  if [ "$(jq '.demote | length' <<<"$plan")" != 0 ]; then
    body=$(jq -c --arg id "seed-by-hand/$ns/$name/$wave" '{epoch, promote, demote, requestId: $id}' <<<"$plan")
    log "handover: $body"
    out=$(mktemp)
    code=$(curl -sS --max-time 5 --retry 3 -o "$out" -w '%{http_code}' \
      -H 'Content-Type: application/json' -d "$body" "$arbiter/v1/handover")
    answer=$(cat "$out"); rm -f "$out"
    case "$code" in
      200) ;;
      202)
        until members | jq -e --argjson b "$body" '
            (.members | map({key: .name, value: .role}) | from_entries) as $r
            | all($b.promote[]; $r[.] == "working") and all($b.demote[]; $r[.] == "idle")' >/dev/null; do
          sleep 0.2
        done ;;
      409) log "handover: stale epoch, planning again: $answer" ;;
      *) die "handover refused ($code): $answer" ;;
    esac
  elif [ "$selected" = "[]" ]; then
    die "wave $wave: old pods $(jq -c .old <<<"$plan") are neither idle nor handed over"
  fi
done

# finalize: partition 0, no selected labels, role labels as the arbiter says.
log "finalize"
set_partition 0
read_all
plan=$(plan_wave 0)
relabel "$(jq '.selected = [] | .select_add = []' <<<"$plan")"
log "done: $(jq -r .replicas <<<"$plan") pods at $(jq -r .revision <<<"$plan") after $((wave - 1)) wave(s)"
