#!/usr/bin/env bash
# Builds the binaries of the cluster test tier from Go modules, into a cache outside the repo:
#   ${MAILFLEET_CACHE:-$HOME/.cache/mailfleet}/k8s/<K8S_VERSION>/bin
# Only what is missing (or stamped with another version) is built, so a warm run is a no-op.
# A binary that the person already has (per-binary env var such as MAILFLEET_KUBE_APISERVER,
# or KUBEBUILDER_ASSETS in setup-envtest layout) is not built: the harness uses it.
# Needs Go (>= the go line of the pinned modules, 1.26) and the Go module proxy.
# Env: MAILFLEET_CACHE, MAILFLEET_BUILD_JOBS (go build -p, default 2), MAILFLEET_FORCE_BUILD=1.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

CACHE=${MAILFLEET_CACHE:-$HOME/.cache/mailfleet}
BIN=$CACHE/k8s/$K8S_VERSION/bin
JOBS=${MAILFLEET_BUILD_JOBS:-2}
mkdir -p "$BIN"

log() { printf '[cluster:build] %s\n' "$*" >&2; }

# --- what is wanted, and what is already there ------------------------------------------------
# name  version  per-binary env var
wanted=(
  "kube-apiserver $K8S_VERSION MAILFLEET_KUBE_APISERVER"
  "kube-controller-manager $K8S_VERSION MAILFLEET_KUBE_CONTROLLER_MANAGER"
  "kube-scheduler $K8S_VERSION MAILFLEET_KUBE_SCHEDULER"
  "kubectl $K8S_VERSION MAILFLEET_KUBECTL"
  "kubelet $K8S_VERSION MAILFLEET_KUBELET"
  "kube-proxy $K8S_VERSION MAILFLEET_KUBE_PROXY"
  "etcd $ETCD_VERSION MAILFLEET_ETCD"
  "kwok $KWOK_VERSION MAILFLEET_KWOK"
  "helm $HELM_VERSION MAILFLEET_HELM"
)

# Is binary $1 (version $2, env var $3) already available? Same order as harness.ts.
available() {
  local name=$1 version=$2 var=$3
  if [[ ${MAILFLEET_FORCE_BUILD:-} != 1 ]]; then
    local given=${!var:-}
    if [[ -n $given ]]; then
      [[ -x $given ]] || { log "$var=$given is not an executable file"; exit 1; }
      return 0
    fi
    if [[ -n ${KUBEBUILDER_ASSETS:-} && -x $KUBEBUILDER_ASSETS/$name ]]; then return 0; fi
  fi
  [[ -x $BIN/$name && "$(cat "$BIN/.$name.version" 2>/dev/null)" == "$version" ]] && [[ ${MAILFLEET_FORCE_BUILD:-} != 1 ]]
}

missing=()
for w in "${wanted[@]}"; do
  read -r name version var <<<"$w"
  available "$name" "$version" "$var" || missing+=("$name")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  log "all binaries present ($BIN); nothing to build"
  exit 0
fi
log "to build: ${missing[*]} -> $BIN"

is_missing() { local m; for m in "${missing[@]}"; do [[ $m == "$1" ]] && return 0; done; return 1; }

# --- Go ------------------------------------------------------------------------------------------
if ! command -v go >/dev/null 2>&1; then
  if [[ -x /usr/local/go/bin/go ]]; then export PATH=/usr/local/go/bin:$PATH
  else
    log "Go is needed to build ${missing[*]} (or provide binaries: see docs/cluster-tests.md)"; exit 1
  fi
fi
export CGO_ENABLED=0            # as upstream releases are built; also no C toolchain needed
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}
log "$(go version); GOMODCACHE=$(go env GOMODCACHE) GOCACHE=$(go env GOCACHE) -p $JOBS"

work=$(mktemp -d "${TMPDIR:-/tmp}/mailfleet-build.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT

SECONDS=0
step_start=0
step() { step_start=$SECONDS; log "$*"; }
step_done() { log "  done in $((SECONDS - step_start))s"; }

# install NAME VERSION FROM_DIR: move a freshly built binary into the cache and stamp it.
install_bin() {
  local name=$1 version=$2 dir=$3
  mv -f "$dir/$name" "$BIN/.$name.tmp"
  mv -f "$BIN/.$name.tmp" "$BIN/$name"
  printf '%s\n' "$version" >"$BIN/.$name.version"
  log "  installed $BIN/$name ($version)"
}

# new_wrapper DIR MODPATH: a throwaway main module that will require the real one.
new_wrapper() {
  mkdir -p "$1"
  (cd "$1" && go mod init "$2" >/dev/null 2>&1)
}

# write_tools DIR PKG...: a file that imports the commands, so `go mod tidy` keeps their deps.
write_tools() {
  local dir=$1; shift
  {
    echo '//go:build tools'
    echo
    echo 'package tools'
    echo
    echo 'import ('
    local p; for p in "$@"; do echo "	_ \"$p\""; done
    echo ')'
  } >"$dir/tools.go"
}

# --- Kubernetes: kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, and the ------
# kubelet and kube-proxy of the node tier's real node (test/node)
k8s_cmds=()
for c in kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy; do
  is_missing "$c" && k8s_cmds+=("$c")
done
if [[ ${#k8s_cmds[@]} -gt 0 ]]; then
  step "k8s.io/kubernetes@$K8S_VERSION: wrapper module for ${k8s_cmds[*]}"
  w=$work/k8s
  new_wrapper "$w" mailfleet.invalid/k8s-build
  cd "$w"
  dl=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION")
  gomod=$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p' <<<"$dl" | head -n1)
  commit=$(sed -n 's/^[[:space:]]*"Hash": "\([0-9a-f]\{40\}\)".*/\1/p' <<<"$dl" | head -n1)
  [[ -f $gomod ]] || { log "could not download k8s.io/kubernetes@$K8S_VERSION: $dl"; exit 1; }
  # staging modules are published as k8s.io/<name> v0.<minor>.<patch> for kubernetes v1.<minor>.<patch>
  staging_version=v0.${K8S_VERSION#v1.}
  mapfile -t staging < <(go mod edit -json "$gomod" |
    tr -d ' \t\n' | grep -o '"Old":{"Path":"[^"]*"},"New":{"Path":"./staging/[^"]*"' |
    sed 's/^"Old":{"Path":"\([^"]*\)".*/\1/' || true)
  if [[ ${#staging[@]} -eq 0 ]]; then
    # fall back to reading the replace lines of go.mod directly
    mapfile -t staging < <(sed -n 's#^[[:space:]]*\(replace[[:space:]]\{1,\}\)\{0,1\}\(k8s\.io/[^[:space:]]*\)[[:space:]]*=>[[:space:]]*\./staging/.*#\2#p' "$gomod")
  fi
  [[ ${#staging[@]} -gt 0 ]] || { log "found no staging replaces in $gomod"; exit 1; }
  log "  pinning ${#staging[@]} staging modules to $staging_version (from the release's go.mod replace block)"
  edits=(-require="k8s.io/kubernetes@$K8S_VERSION")
  for m in "${staging[@]}"; do edits+=(-replace="$m=$m@$staging_version"); done
  # keep the release's go and godebug lines: they change runtime defaults of the binaries
  gov=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$gomod")
  [[ -n $gov ]] && edits+=(-go="$gov")
  go mod edit "${edits[@]}"
  grep '^godebug' "$gomod" >>go.mod || true
  pkgs=(); for c in "${k8s_cmds[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  write_tools "$w" "${pkgs[@]}"
  go mod tidy
  step_done

  minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ld+=" -X $p.gitCommit=${commit:-unknown} -X $p.gitTreeState=clean -X $p.buildDate=$build_date"
  done
  step "go build ${k8s_cmds[*]}"
  go build -trimpath -p "$JOBS" -ldflags "$ld" -o "$work/out-k8s/" "${pkgs[@]}"
  for c in "${k8s_cmds[@]}"; do install_bin "$c" "$K8S_VERSION" "$work/out-k8s"; done
  step_done
fi

# --- etcd (its go.mod has replace directives, so `go install mod@v` refuses it: wrapper too) -----
if is_missing etcd; then
  step "go.etcd.io/etcd/server/v3@$ETCD_VERSION: wrapper module"
  w=$work/etcd
  new_wrapper "$w" mailfleet.invalid/etcd-build
  cd "$w"
  go mod edit -require="go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  write_tools "$w" go.etcd.io/etcd/server/v3
  go mod tidy
  go build -trimpath -p "$JOBS" -ldflags "-s -w" -o "$work/out-etcd/etcd" go.etcd.io/etcd/server/v3
  install_bin etcd "$ETCD_VERSION" "$work/out-etcd"
  step_done
fi

# --- kwok and helm: their go.mod has no replace, so plain `go install mod@version` works ---------
if is_missing kwok; then
  step "go install sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  cd "$work"
  GOBIN=$work/out-kwok go install -trimpath -p "$JOBS" \
    -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" \
    "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  install_bin kwok "$KWOK_VERSION" "$work/out-kwok"
  step_done
fi

if is_missing helm; then
  step "go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  cd "$work"
  GOBIN=$work/out-helm go install -trimpath -p "$JOBS" \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  install_bin helm "$HELM_VERSION" "$work/out-helm"
  step_done
fi

log "built ${missing[*]} in ${SECONDS}s into $BIN"
