#!/usr/bin/env bash
# Build the CPU grading image (grading_images/cpu/Dockerfile) where no registry is reachable,
# the build itself offline (--network none):
#   1. base image: Debian bookworm (minbase and the libraries CPython links to), made with
#      debootstrap from Debian's mirror, with this machine's Python 3.11 (PYTHON) in /usr/local,
#      `docker import`-ed as autograder-base:bookworm;
#   2. wheelhouse: the locked set (constraints.txt), torch's CPU wheel first, collected on this
#      machine from its usual package indexes (`pip wheel`), put on top of the base as the image
#      the Dockerfile's build stage starts from (BUILD_IMAGE), so the final stage never holds it;
#   3. the grading image: pip in the build stage sees the wheelhouse and no index at all.
# The rootfs tarball and the wheelhouse are cached in $AUTOGRADER_IMAGE_CACHE (default
# ~/.cache/autograder/image-build): a second run redoes only what changed, and Docker's layer
# cache the rest.
#
# Usage: grading_images/build_cpu_image.sh [TAG]        TAG defaults to autograder-grader:cpu
# Run as root the first time (debootstrap; installed with apt-get when missing).
# Environment: DOCKER_HOST (the engine), AUTOGRADER_IMAGE_CACHE, DEBIAN_MIRROR (default
# http://deb.debian.org/debian), PYTHON (Python 3.11 with pip, for the wheelhouse; default the
# repository's .venv, else python3.11).
# The last line printed is the image's size: "image TAG: N MB (N bytes)".
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
tag=${1:-autograder-grader:cpu}
cache=${AUTOGRADER_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/autograder/image-build}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
# What CPython's standard library links to (the interpreter itself comes from this machine, below).
base_packages=ca-certificates,libssl3,libffi8,libsqlite3-0,libbz2-1.0,liblzma5,zlib1g,libreadline8,libncursesw6,libexpat1,libuuid1,libnsl2,libtirpc3,libcrypt1
base_image=autograder-base:$suite
wheels_image=autograder-base:$suite-wheels
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$repo/.venv/bin/python" ]; then PYTHON=$repo/.venv/bin/python; else PYTHON=python3.11; fi
fi

step() { printf '\n==> [%4d s] %s\n' "$SECONDS" "$*" >&2; }
die() { printf 'build_cpu_image.sh: error: %s\n' "$*" >&2; exit 1; }
key_of() { sha256sum | cut -c1-16; }  # a short content hash of stdin: names what each cached piece was made from
label_of() { docker image inspect -f '{{ index .Config.Labels "autograder.inputs" }}' "$1" 2>/dev/null || true; }

command -v docker >/dev/null || die "the docker CLI is missing (Debian: apt-get install docker.io)"
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 ||
  die "no Docker engine answers at ${DOCKER_HOST:-the default socket}: start dockerd, or set DOCKER_HOST to one"
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11)' 2>/dev/null ||
  die "PYTHON=$PYTHON is not Python 3.11: the wheelhouse must match the image's python3.11 (set PYTHON=...)"
mkdir -p "$cache"

# Removes a scratch folder even where a failed debootstrap left /proc, /sys or a /dev bind mount in it:
# unmount first (deepest first), then never cross into another filesystem.
scratch=""
cleanup() {
  [ -n "$scratch" ] && [ -d "$scratch" ] || return 0
  { findmnt -rn -o TARGET | grep -F "$scratch/" || true; } | sort -r | while read -r m; do umount -l "$m" || true; done
  rm -rf --one-file-system "$scratch"
}
trap cleanup EXIT

# ---------------------------------------------------------------- 1. base image from a local rootfs
# Debian's own python3.11 is 3.11.2, older than the lock allows (soupsieve needs >= 3.11.5), so the
# interpreter is this machine's $PYTHON (the one the lock is installed and tested with), copied into
# /usr/local as the python:3.11-slim images have it; debootstrap brings the libraries it links to.
python_prefix=$("$PYTHON" -c 'import sys; print(sys.base_prefix)')
python_version=$("$PYTHON" -c 'import platform; print(platform.python_version())')
rootfs_key=$(printf '%s\n' "$suite" "$base_packages" "$mirror" "$python_prefix" "$python_version" | key_of)
rootfs_tar=$cache/rootfs-$suite-$rootfs_key.tar
if [ -s "$rootfs_tar" ]; then
  step "base: cached rootfs $rootfs_tar"
else
  step "base: debootstrap $suite ($base_packages) from $mirror, with Python $python_version from $python_prefix"
  [ "$(id -u)" = 0 ] || die "debootstrap needs root: run this once as root (later runs reuse $rootfs_tar)"
  if ! command -v debootstrap >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  fi
  scratch=$(mktemp -d "$cache/rootfs.XXXXXX")
  root=$scratch/root
  debootstrap --variant=minbase --include="$base_packages" "$suite" "$root" "$mirror" >"$scratch/debootstrap.log" 2>&1 ||
    die "debootstrap failed (is $mirror reachable? set DEBIAN_MIRROR): $(tail -5 "$scratch/debootstrap.log")"
  # The interpreter and its standard library only: not its site-packages (the image has its own venv),
  # tests, IDLE, tkinter (no Tk here), headers, static library or scripts bound to the old prefix.
  tar -C "$python_prefix" -c \
    --exclude='./lib/python3.11/site-packages/*' --exclude='./lib/python3.11/test' \
    --exclude='./lib/python3.11/idlelib' --exclude='./lib/python3.11/tkinter' \
    --exclude='./lib/python3.11/lib-dynload/_tkinter*' --exclude='./lib/python3.11/config-3.11-*' \
    --exclude='./lib/pkgconfig' --exclude='./include' --exclude='./share' --exclude='./bin' \
    . | tar -C "$root/usr/local" -x
  cp -a "$python_prefix/bin/python3.11" "$root/usr/local/bin/"
  ln -sf python3.11 "$root/usr/local/bin/python3"
  ln -sf python3.11 "$root/usr/local/bin/python"
  chroot "$root" ldconfig  # libpython3.11.so from /usr/local/lib (the old prefix's rpath is gone)
  missing=$(chroot "$root" sh -c 'ldd /usr/local/bin/python3.11 /usr/local/lib/python3.11/lib-dynload/*.so' |
    grep 'not found' | sort -u || true)
  [ -z "$missing" ] || die "the base lacks libraries Python $python_version links to; add their packages to base_packages: $missing"
  chroot "$root" /usr/local/bin/python3.11 -c 'import ssl, sqlite3, ctypes, lzma, bz2, zlib, readline, venv, ensurepip' ||
    die "Python $python_version copied from $python_prefix does not run in the $suite base"
  # What a slim image leaves out: apt's lists and caches, documentation, translations.
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/log/*.log \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/*
  tar --numeric-owner -C "$root" --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
    -cf "$rootfs_tar.part" .
  mv "$rootfs_tar.part" "$rootfs_tar"
  find "$cache" -maxdepth 1 -name "rootfs-$suite-*.tar" ! -path "$rootfs_tar" -delete  # older bases
  cleanup
  scratch=""
fi
if [ "$(label_of "$base_image")" != "$rootfs_key" ]; then
  step "base: docker import -> $base_image"
  docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
    --change "LABEL autograder.inputs=$rootfs_key" \
    --change 'CMD ["python3.11"]' \
    "$rootfs_tar" "$base_image" >/dev/null
fi

# ---------------------------------------------------------------- 2. wheelhouse of the locked set
# What the image installs: the package's dependencies and its build backend, within the lock. The package
# itself is built in the image from the build context, so it is not in the wheelhouse (and is never stale there).
requirements=$("$PYTHON" - "$repo/pyproject.toml" <<'EOF'
import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))
print("\n".join(project["build-system"]["requires"] + project["project"]["dependencies"]))
EOF
)
wheels_key=$(cat "$repo/constraints.txt" - <<<"$requirements" | key_of)
wheels=$cache/wheels-$wheels_key
if [ -f "$wheels.complete" ]; then
  step "wheelhouse: cached $wheels"
else
  step "wheelhouse: pip wheel the locked set into $wheels"
  rm -rf "$wheels"
  mkdir -p "$wheels"
  printf '%s\n' "$requirements" >"$cache/requirements.txt"
  # Wheels of an earlier wheelhouse (an older lock) are reused rather than fetched again.
  reuse=()
  for old in "$cache"/wheels-*; do
    [ -f "$old.complete" ] && reuse+=(--find-links "$old")
  done
  # torch first and from the lock: pip keeps its CPU wheel (torch==2.13.0+cpu matches the lock's 2.13.0)
  # for the rest, instead of resolving the CUDA build and its nvidia-* wheels.
  nice -n 10 "$PYTHON" -m pip wheel --quiet --wheel-dir "$wheels" "${reuse[@]}" -c "$repo/constraints.txt" torch
  nice -n 10 "$PYTHON" -m pip wheel --quiet --wheel-dir "$wheels" --find-links "$wheels" "${reuse[@]}" \
    -c "$repo/constraints.txt" -r "$cache/requirements.txt"
  cuda=$(find "$wheels" -name 'nvidia_*' -o -name 'triton-*' | head -3)
  [ -z "$cuda" ] || die "the wheelhouse pulled CUDA wheels ($cuda): give pip a CPU build of torch 2.13.0 (e.g. --find-links a folder with torch-2.13.0+cpu, or PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu)"
  ls "$wheels"/torch-*+cpu-*.whl >/dev/null 2>&1 || die "no torch CPU wheel (torch-*+cpu-*.whl) in $wheels"
  touch "$wheels.complete"
  for old in "$cache"/wheels-*; do
    [ "$old" = "$wheels" ] || [ "$old" = "$wheels.complete" ] || rm -rf "$old"
  done
fi
wheels_image_key=$rootfs_key-$wheels_key
if [ "$(label_of "$wheels_image")" != "$wheels_image_key" ]; then
  step "wheelhouse: $base_image + /wheels -> $wheels_image"
  printf 'FROM %s\nCOPY . /wheels\nLABEL autograder.inputs=%s\n' "$base_image" "$wheels_image_key" |
    docker build --quiet --network none -t "$wheels_image" -f - "$wheels" >/dev/null
fi

# ---------------------------------------------------------------- 3. the grading image, offline
step "image: docker build --network none -> $tag"
build=(docker build --force-rm --network none -f "$repo/grading_images/cpu/Dockerfile"
  --build-arg "BASE_IMAGE=$base_image" --build-arg "BUILD_IMAGE=$wheels_image"
  --build-arg PIP_FIND_LINKS=/wheels --build-arg PIP_NO_INDEX=1)
# The build stage is tagged too, so that pruning old images never drops its cache.
nice -n 10 "${build[@]}" --target build -t "$tag-build" "$repo"
nice -n 10 "${build[@]}" -t "$tag" "$repo"
docker image prune -f >/dev/null  # earlier builds' untagged images: gigabytes each on the vfs driver

bytes=$(docker image inspect -f '{{.Size}}' "$tag")
step "done"
echo "image $tag: $((bytes / 1000000)) MB ($bytes bytes)"
