#!/usr/bin/env bash
# `npm run bench:image`: the image's size and the relay's idle memory from it, beside the same
# relay run on the host from the compiled build and from the TypeScript sources (type
# stripping). Each relay is `relay --dev` (TLS and DKIM-less dev config, fixed loopback ports)
# in a network namespace of its own, idle for IDLE seconds after "relay ready"; RSS is read
# from /proc/<pid>/status (VmRSS now, VmHWM peak). Needs root, podman, unshare.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
# shellcheck source=../scripts/image-env.sh
source scripts/image-env.sh
IMAGE=${IMAGE:-localhost/mailfleet:dev}
IDLE=${IDLE:-10}
export PATH=$repo/node_modules/.bin:$PATH

start=$(date +%s.%N)
bash scripts/image-build.sh 2>/dev/null
printf 'image build (this run): %.1f s\n' "$(echo "$(date +%s.%N) - $start" | bc)"
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
base=$(podman image inspect --format '{{.Size}}' localhost/node:24-bookworm-slim 2>/dev/null || echo 0)
gz=$(podman save --format docker-archive "$IMAGE" 2>/dev/null | gzip -1 | wc -c)
printf 'image %s: %d MB (base %d MB), %d MB as a gzip-compressed archive\n' "$IMAGE" $((size / 1000000)) $((base / 1000000)) $((gz / 1000000))

status() { awk '/^(VmRSS|VmHWM)/ {printf "%s %d MiB  ", $1, $2 / 1024}' "$1"; echo; }

# --- in the image, hardened as in a pod ---
name=mailfleet-bench-$$
podman run -d --name "$name" --network=none --read-only --read-only-tmpfs=false --user 65532:65532 \
  --cap-drop=ALL --security-opt=no-new-privileges --tmpfs /work:rw,mode=1777 -w /work \
  "$IMAGE" relay --dev >/dev/null
trap 'podman rm -f -t 0 "$name" >/dev/null 2>&1 || true' EXIT
for _ in $(seq 1 300); do podman logs "$name" 2>&1 | grep -q '"relay ready"' && break; sleep 0.2; done
sleep "$IDLE"
pid=$(podman inspect --format '{{.State.Pid}}' "$name")
printf '%-34s ' 'image (dist/, production deps):'; status "/proc/$pid/status"
podman rm -f -t 0 "$name" >/dev/null

# --- on the host, same Node: compiled vs type stripping ---
npm run build --silent >/dev/null
for variant in "dist/bin/mailfleet.js" "bin/mailfleet.ts"; do
  work=$(mktemp -d)
  unshare --net bash -c "ip link set lo up; cd $work; exec node $repo/$variant relay --dev" >"$work/log" 2>&1 &
  pid=$!
  for _ in $(seq 1 300); do grep -q '"relay ready"' "$work/log" && break; sleep 0.2; done
  sleep "$IDLE"
  # the node process is the exec'd bash
  printf '%-34s ' "host node $variant:"; status "/proc/$pid/status"
  kill -TERM "$pid"; wait "$pid" || true
  rm -rf "$work"
done
