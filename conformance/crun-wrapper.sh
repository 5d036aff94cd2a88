#!/bin/sh
# Test tooling only: score Debian's crun 1.8.1 on a v1/v2 hybrid host.
# crun 1.8.1 refuses the hybrid layout ("cgroups in hybrid mode not supported")
# and ociVersion >= 1.2 ("unknown version specified"). This wrapper runs crun
# in a private mount namespace where /sys/fs/cgroup/unified is unmounted, and
# on create/run rewrites a well-formed ociVersion >= 1.2.0 in the bundle's
# config.json to 1.1.0 (malformed versions are left alone, so crun still
# rejects them).
CRUN=${CRUN:-crun}
bundle=.
verb=
prev=
for a in "$@"; do
  case "$prev" in --bundle|-b) bundle=$a ;; esac
  case "$a" in
    --bundle=*) bundle=${a#--bundle=} ;;
    create|run) [ -z "$verb" ] && verb=$a ;;
  esac
  prev=$a
done
if [ -n "$verb" ] && [ -f "$bundle/config.json" ]; then
  sed -i -E 's/"ociVersion"[[:space:]]*:[[:space:]]*"1\.([2-9]|[1-9][0-9])\.[0-9]+([-+][^"]*)?"/"ociVersion": "1.1.0"/' "$bundle/config.json"
fi
if [ -d /sys/fs/cgroup/unified ] && grep -q ' /sys/fs/cgroup/unified ' /proc/self/mountinfo; then
  exec unshare --mount --propagation private sh -c 'umount /sys/fs/cgroup/unified && exec "$@"' crun-wrapper "$CRUN" "$@"
fi
exec "$CRUN" "$@"
