# Podman settings that work on hosts where podman's defaults do not. Sourced by the image
# scripts; run as `bash scripts/image-env.sh` it prints them (KEY=value) for the tests.
#   - runtime runc where it is installed: crun refuses hosts whose cgroups are in hybrid mode.
#   - default ulimits no higher than this shell's hard limits: podman otherwise asks for
#     nofile=1048576, which a root without CAP_SYS_RESOURCE cannot set ("setrlimit ...
#     operation not permitted").
# Image storage stays podman's own (so plain `podman run localhost/mailfleet:dev` finds the
# image); only CONTAINERS_CONF is set, and only when the caller has not set it.
mailfleet_cache=${MAILFLEET_CACHE:-$HOME/.cache/mailfleet}
if [[ -z ${CONTAINERS_CONF:-} ]]; then
  conf_dir=$mailfleet_cache/containers
  mkdir -p "$conf_dir"
  nofile=$(ulimit -Hn); nproc=$(ulimit -Hu)
  [[ $nofile == unlimited ]] && nofile=1048576
  # nproc at this host's hard limit still failed where tried; 32768 is plenty for one program.
  if [[ $nproc == unlimited ]] || ((nproc > 32768)); then nproc=32768; fi
  {
    echo '# written by scripts/image-env.sh'
    echo '[containers]'
    echo "default_ulimits = [\"nofile=$nofile:$nofile\", \"nproc=$nproc:$nproc\"]"
    echo '[engine]'
    if command -v runc >/dev/null 2>&1; then echo 'runtime = "runc"'; fi
  } >"$conf_dir/containers.conf.new"
  mv -f "$conf_dir/containers.conf.new" "$conf_dir/containers.conf"
  export CONTAINERS_CONF=$conf_dir/containers.conf
  unset conf_dir nofile nproc
fi
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then printf 'CONTAINERS_CONF=%s\n' "$CONTAINERS_CONF"; fi
