#!/usr/bin/env bash
# Builds the Dockerfile, unchanged, with podman on a stand-in for its base image:
#   tests/image/build.sh [IMAGE]        (default localhost/t0admin:test)
# The stand-in is Debian bookworm (minbase) with Debian's python3 (3.11), made with
# mmdebstrap and tagged with the Dockerfile's own base name, so no registry is needed.
# It is kept and reused while its recipe is unchanged; a real python image of that name,
# when present, is used as it is. Everything comes from Debian's packages and PyPI.
set -euo pipefail
cd "$(dirname "$0")/../.."
image=${1:-localhost/t0admin:test}
podman=tests/image/podman.sh

base=$(awk '$1 == "FROM" { print $2; exit }' Dockerfile)
case $base in */*) ;; *) base=docker.io/library/$base ;; esac

packages=python3,python3-venv,python-is-python3,ca-certificates,netbase,tzdata
recipe="mmdebstrap --variant=minbase --include=$packages bookworm"
recipe_id=$(printf %s "$recipe" | sha256sum | cut -c1-16)

label=$($podman image inspect --format '{{index .Labels "t0admin.stand-in"}}' "$base" 2>/dev/null || echo absent)
if [ "$label" = "$recipe_id" ]; then
  echo "image: stand-in base $base is up to date (recipe $recipe_id)"
elif [ "$label" = absent ] || [ -n "$label" ]; then
  echo "image: making the stand-in base $base: $recipe"
  start=$(date +%s)
  mmdebstrap --quiet --variant=minbase --include="$packages" bookworm - |
    $podman import --quiet \
      --change "LABEL t0admin.stand-in=$recipe_id" \
      --change 'ENV LANG=C.UTF-8' \
      --change 'CMD ["python3"]' \
      - "$base" >/dev/null
  echo "image: stand-in base made in $(($(date +%s) - start)) s"
else
  echo "image: using the real $base found in podman's store"
fi

# pip in the build reaches the package index through this machine's CA bundle, mounted
# read-only for the build steps only: it never becomes part of a layer.
ca=/etc/ssl/certs/ca-certificates.crt
mounts=()
[ -f "$ca" ] && mounts=(--volume "$ca:$ca:ro")

start=$(date +%s)
# The docker format keeps the HEALTHCHECK, which the OCI format drops.
$podman build --pull=never --format docker "${mounts[@]}" --tag "$image" .
echo "image: $image built in $(($(date +%s) - start)) s"

size=$($podman image inspect --format '{{.Size}}' "$image")
base_size=$($podman image inspect --format '{{.Size}}' "$base")
echo "image: $((size / 1000000)) MB in all, $(((size - base_size) / 1000000)) MB on top of the base"
