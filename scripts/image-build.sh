#!/usr/bin/env bash
# `npm run image:build`: builds the repository's Dockerfile with podman into its local storage
# as localhost/mailfleet:dev (IMAGE), so `podman run --rm localhost/mailfleet:dev --version`
# works afterwards. The Dockerfile is the one users build; only its NODE_IMAGE build argument
# changes where no registry can be reached:
#   - NODE_IMAGE given (e.g. docker.io/library/node:24-bookworm-slim): used as it is.
#   - otherwise a Node 24 base is assembled here without any registry (scripts/image-base.sh):
#     Debian bookworm from the mirror this machine's apt already uses, plus the Node binary of
#     the npm `node` package in node_modules and the npm release that Node bundles.
# Everything is cached: a warm run re-uses the base image and podman's layer cache.
#
# Env: IMAGE (default localhost/mailfleet:dev), NODE_IMAGE, MAILFLEET_CACHE,
#      CONTAINERS_CONF (yours is respected; otherwise see scripts/image-env.sh).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=image-env.sh
source "$repo/scripts/image-env.sh"

IMAGE=${IMAGE:-localhost/mailfleet:dev}
log() { printf '[image:build] %s\n' "$*" >&2; }
command -v podman >/dev/null || { log "podman is needed (Debian: apt-get install podman runc; or build with docker, see docs/install.md)"; exit 1; }

# One build at a time (test files running in parallel each ask for the image).
mkdir -p "$mailfleet_cache"
exec 9>"$mailfleet_cache/image-build.lock"
flock 9

SECONDS=0
if [[ -z ${NODE_IMAGE:-} ]]; then
  NODE_IMAGE=$(bash "$repo/scripts/image-base.sh")
fi

# Package downloads inside the build (npm ci) must trust what this machine trusts: where npm
# has a CA file of its own (a corporate proxy, an egress gateway), it goes into the build as
# an npmrc under /usr/local/etc (npm's global config for a Node in /usr/local). Mounting the
# whole directory over the base's existing /usr/local/etc leaves nothing behind in the image.
build_args=()
cafile=$(npm config get cafile 2>/dev/null || true)
[[ $cafile == null || $cafile == undefined ]] && cafile=
cafile=${cafile:-${NODE_EXTRA_CA_CERTS:-}}
etc=
if [[ -n $cafile && -r $cafile ]]; then
  etc=$(mktemp -d "${TMPDIR:-/tmp}/mailfleet-image-etc.XXXXXX")
  trap 'rm -rf "$etc"' EXIT
  cp "$cafile" "$etc/ca.pem"
  printf 'cafile=/usr/local/etc/ca.pem\n' >"$etc/npmrc"
  chmod -R a+rX "$etc"
  build_args+=(-v "$etc:/usr/local/etc:ro")
  log "npm inside the build trusts $cafile (mounted read-only, not kept in the image)"
fi

log "podman build $IMAGE (NODE_IMAGE=$NODE_IMAGE)"
# --network=host: the build's npm ci needs the registry, and podman's default bridge network
# would add iptables rules and may turn on ip_forward on the host.
podman build --network=host --layers \
  --build-arg "NODE_IMAGE=$NODE_IMAGE" "${build_args[@]}" \
  -t "$IMAGE" -f "$repo/Dockerfile" "$repo" >&2
log "built $IMAGE in ${SECONDS}s ($(podman image inspect --format '{{.Size}}' "$IMAGE") bytes)"
