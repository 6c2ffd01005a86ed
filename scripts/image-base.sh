#!/usr/bin/env bash
# Assembles localhost/node:24-bookworm-slim without a registry and prints its name: Debian
# bookworm (debootstrap, minbase) from the Debian mirror this machine's apt already uses, the
# Node binary of the npm `node` package in node_modules, and the npm release that this Node
# bundles (from the npm registry). The result stands in for the official node image as the
# Dockerfile's NODE_IMAGE; it is rebuilt only when its inputs change (a label records them).
# Needs root (debootstrap), podman, and node_modules (npm ci).
# Env: BASE_IMAGE (default localhost/node:24-bookworm-slim), MAILFLEET_CACHE,
#      DEBIAN_MIRROR (default: taken from `apt-cache policy`), MAILFLEET_NPM_VERSION.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=image-env.sh
source "$repo/scripts/image-env.sh"
BASE_IMAGE=${BASE_IMAGE:-localhost/node:24-bookworm-slim}
SUITE=bookworm
cache=$mailfleet_cache/image
log() { printf '[image:base] %s\n' "$*" >&2; }

node_bin=$repo/node_modules/node/bin/node
[[ -x $node_bin ]] || { log "no $node_bin: run npm ci first"; exit 1; }
node_version=$("$node_bin" --version)
node_version=${node_version#v}
# Node's changelog (shipped in the node-linux-* package) names the npm it bundles: the newest
# "upgrade npm to X" line is the npm of this release.
npm_version=${MAILFLEET_NPM_VERSION:-}
if [[ -z $npm_version ]]; then
  changelog=$(ls "$repo"/node_modules/node/node_modules/node-linux-*/CHANGELOG.md 2>/dev/null | head -n1 || true)
  [[ -n $changelog ]] && npm_version=$(grep -o -m1 'upgrade npm to [0-9][0-9.]*' "$changelog" | awk '{print $4}' || true)
  npm_version=${npm_version%.}
fi
[[ -n $npm_version ]] || { log "cannot tell which npm Node $node_version bundles: set MAILFLEET_NPM_VERSION"; exit 1; }

# The recipe's inputs: a change to any of them rebuilds the base. Bump RECIPE when a change
# to this script changes what goes into the image.
RECIPE=1
key=$(echo "$SUITE node=$node_version npm=$npm_version recipe=$RECIPE" | sha256sum | cut -c1-16)
have=$(podman image inspect --format '{{index .Labels "org.mailfleet.base-key"}}' "$BASE_IMAGE" 2>/dev/null || true)
if [[ $have == "$key" ]]; then
  log "$BASE_IMAGE is current (node $node_version, npm $npm_version)"
  echo "$BASE_IMAGE"
  exit 0
fi

mirror=${DEBIAN_MIRROR:-}
if [[ -z $mirror ]]; then
  # " 500 <uri> bookworm/main amd64 Packages": the first Debian main archive apt knows.
  mirror=$(apt-cache policy 2>/dev/null | awk -v s="$SUITE/main" '$3 == s && $2 ~ /^(https?|file):/ {print $2; exit}')
fi
if [[ -z $mirror ]]; then
  # no package lists yet: read the sources themselves (one-line and deb822 formats)
  mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
    awk -v s="$SUITE" '$1 == "deb" && $3 == s && $2 ~ /^(https?|file):/ {print $2; exit}')
fi
if [[ -z $mirror ]]; then
  mirror=$(awk -v s="$SUITE" '
    /^URIs:/ {u = $2} /^Suites:/ {for (i = 2; i <= NF; i++) if ($i == s) ok = 1}
    /^$/ {if (ok && u ~ /^(https?|file):/) {print u; exit} u = ""; ok = 0}
    END {if (ok && u ~ /^(https?|file):/) print u}' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)
fi
[[ -n $mirror ]] || { log "no Debian $SUITE mirror in this machine's apt sources: set DEBIAN_MIRROR"; exit 1; }
command -v debootstrap >/dev/null || [[ -x /usr/sbin/debootstrap ]] || { log "debootstrap is needed (apt-get install debootstrap)"; exit 1; }
export PATH=$PATH:/usr/sbin:/sbin

SECONDS=0
mkdir -p "$cache/debs"
work=$(mktemp -d "$cache/rootfs.XXXXXX")
rootfs=$work/rootfs
cleanup() {
  # debootstrap mounts /proc and /sys in the target while it runs; never leave them behind.
  local m
  for m in $(awk -v r="$rootfs" 'index($2, r) == 1 {print $2}' /proc/mounts | sort -r); do umount -l "$m" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

log "debootstrap --variant=minbase $SUITE from $mirror"
# --cache-dir keeps the downloaded .debs, so a rebuild (e.g. a new Node) downloads nothing.
debootstrap --variant=minbase --cache-dir="$cache/debs" "$SUITE" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2; log "debootstrap failed"; exit 1; }

log "node $node_version + npm $npm_version"
install -m 0755 "$node_bin" "$rootfs/usr/local/bin/node"
npm_tgz=$cache/npm-$npm_version.tgz
if [[ ! -s $npm_tgz ]]; then
  (cd "$work" && npm pack --silent "npm@$npm_version" >/dev/null)
  mv "$work/npm-$npm_version.tgz" "$npm_tgz"
fi
mkdir -p "$rootfs/usr/local/lib/node_modules/npm"
tar -xzf "$npm_tgz" --strip-components=1 --no-same-owner -C "$rootfs/usr/local/lib/node_modules/npm"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"

# Slim: no docs, man pages, translations or package lists; nothing of the build host.
rm -rf "$rootfs"/usr/share/{doc,man,info,locale}/* "$rootfs"/var/lib/apt/lists/* \
  "$rootfs"/var/cache/apt/* "$rootfs"/var/cache/debconf/*-old "$rootfs"/var/log/* "$rootfs"/tmp/*
: >"$rootfs/etc/resolv.conf"
: >"$rootfs/etc/hostname"

log "podman import $BASE_IMAGE"
tar --numeric-owner -C "$rootfs" -c . | podman import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change "ENV NODE_VERSION=$node_version" \
  --change "LABEL org.mailfleet.base-key=$key" \
  --change 'CMD ["node"]' \
  - "$BASE_IMAGE" >/dev/null
log "built $BASE_IMAGE in ${SECONDS}s"
echo "$BASE_IMAGE"
