#!/usr/bin/env bash
# podman as the image tests run it, with a containers.conf of their own (the system's is
# left alone): runc, because crun refuses the hybrid cgroup setup of some hosts (this one),
# and default ulimits within this machine's hard limits, which podman's defaults exceed.
set -euo pipefail
state=${T0ADMIN_IMAGE_STATE:-$(cd "$(dirname "$0")/../.." && pwd)/.data/image}
mkdir -p "$state"

nofile=$(ulimit -Hn)
nproc=$(ulimit -Hu)
pid_max=$(cat /proc/sys/kernel/pid_max)
[ "$nofile" = unlimited ] && nofile=1048576
# runc could not set more processes than kernel.pid_max here, whatever the hard limit said.
if [ "$nproc" = unlimited ] || [ "$nproc" -gt "$pid_max" ]; then nproc=$pid_max; fi

conf="$state/containers.conf"
cat >"$conf.$$" <<CONF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]

[engine]
runtime = "runc"
CONF
mv "$conf.$$" "$conf"
export CONTAINERS_CONF=$conf
exec podman "$@"
