#!/usr/bin/env bash
# Stand-in base images for docker-compose.yaml where the official ones cannot be pulled (no image
# registry reachable): built here from Debian's packages and the Python package index.
#
#   bash scripts/build-standin-images.sh [airflow] [postgres] [redis]     (default: all three; root)
#
# Prints one line per image, NAME=IMAGE (AIRFLOW_IMAGE=..., POSTGRES_IMAGE=..., REDIS_IMAGE=...),
# the variables docker-compose.yaml reads; `make compose-up` calls it when a pull fails.
#
# * base: a Debian bookworm rootfs (debootstrap --variant=minbase), kept as a tarball in the cache.
# * airflow (airflow-order-standin/airflow:$AIRFLOW_VERSION): made the way the official
#   apache/airflow image is: the same Airflow version with the providers this project runs
#   (celery, postgres, standard) in a virtualenv on PATH, user `airflow` uid 50000 in group 0,
#   AIRFLOW_HOME=/opt/airflow, dumb-init and /entrypoint (docker/standin/airflow-entrypoint.sh)
#   running `airflow` with the command's arguments, curl for the healthchecks. Versions: pinned to
#   what this project's venv resolved (uv pip freeze of .venv), so the image runs what the tests run.
# * postgres (airflow-order-standin/postgres:15): Debian's PostgreSQL 15, initialised from
#   POSTGRES_USER/POSTGRES_PASSWORD/POSTGRES_DB as the official image is
#   (docker/standin/postgres-entrypoint.sh); pg_isready for the healthcheck.
# * redis (airflow-order-standin/redis:7): Debian's redis-server 7.0, listening on the container's
#   network without protected mode (as the official image), redis-cli for the healthcheck.
#
# Each image is installed into a copy of the rootfs with chroot (the host's network and CA
# certificates, so it works wherever the host reaches the package mirrors), then `docker import`ed
# with the official image's settings (user, environment, entrypoint). Each carries the hash of
# what it was made from (this script, docker/standin/, the pins) in the label
# org.airflow-order-provider.standin-hash; an image with the same hash is kept, so a rerun takes
# seconds. Downloads are cached in $ORDER_STANDIN_CACHE (default /var/cache/airflow-order-standin).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${ORDER_STANDIN_CACHE:-/var/cache/airflow-order-standin}"
SUITE=bookworm
MIRROR="${ORDER_STANDIN_MIRROR:-http://deb.debian.org/debian}"
AIRFLOW_VERSION="${AIRFLOW_VERSION:-3.3.2}"
PREFIX=airflow-order-standin
LABEL=org.airflow-order-provider.standin-hash
VENV_PY="$ROOT/.venv/bin/python"
UV="$ROOT/.venv/bin/uv"
export DEBIAN_FRONTEND=noninteractive

log() { echo "[standin] $(date +%H:%M:%S) $*" >&2; }
die() { echo "error: $*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || die "building the stand-in images needs root (debootstrap, chroot)"
docker info >/dev/null 2>&1 || die "no Docker daemon answers (bash scripts/start-docker.sh starts one)"
wanted=("$@")
(( ${#wanted[@]} )) || wanted=(airflow postgres redis)
for name in "${wanted[@]}"; do
    [[ $name =~ ^(airflow|postgres|redis)$ ]] || die "unknown image '$name' (choose from airflow, postgres, redis)"
done
mkdir -p "$CACHE/uv"
for name in base "${wanted[@]}"; do mkdir -p "$CACHE/apt-archives/$name/partial"; done

# -- what each image is made from ------------------------------------------------------------------
pins_file() {  # the project venv's resolution, minus the project's own editable packages
    [[ -x $VENV_PY && -x $UV ]] || die "no project venv at $ROOT/.venv (run make venv first)"
    "$UV" pip freeze --python "$VENV_PY" --exclude-editable 2>/dev/null | grep -vE '^(-e |airflow-order)' \
        >"$CACHE/pins.txt"
    grep -q "^apache-airflow==$AIRFLOW_VERSION$" "$CACHE/pins.txt" ||
        die "the project venv has no apache-airflow==$AIRFLOW_VERSION (it has: $(grep '^apache-airflow==' "$CACHE/pins.txt"))"
    echo "$CACHE/pins.txt"
}

content_hash() {  # content_hash NAME [FILES...]: hash of this script, the image's entrypoint and the files
    local name=$1; shift
    local own=("$ROOT"/docker/standin/"$name"-*)
    [[ -e ${own[0]} ]] || own=()
    cat "${BASH_SOURCE[0]}" "${own[@]}" "$@" | { cat; echo "$name $SUITE $AIRFLOW_VERSION"; } | sha256sum | cut -c1-16
}

image_hash() { docker image inspect --format "{{ index .Config.Labels \"$LABEL\" }}" "$1" 2>/dev/null || true; }

# -- the chroot ---------------------------------------------------------------------------------------
MOUNTED=()
cleanup() {
    local m
    for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do
        m=${MOUNTED[$i]}
        umount -l "$m" 2>/dev/null || true
    done
    [[ -n ${WORK:-} ]] && rm -rf "$WORK"
}
trap cleanup EXIT
WORK="$(mktemp -d "${TMPDIR:-/tmp}/standin.XXXXXX")"

bind() {  # bind SOURCE TARGET
    mkdir -p "$2"
    mount --bind "$1" "$2"
    MOUNTED+=("$2")
}

unmount_all() {
    local i
    for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do umount "${MOUNTED[$i]}"; done
    MOUNTED=()
}

base_rootfs() {  # the minbase tarball, made once
    local tarball="$CACHE/rootfs-$SUITE-minbase.tar"
    if [[ ! -s $tarball ]]; then
        command -v debootstrap >/dev/null 2>&1 || {
            log "apt-get install debootstrap"
            apt-get update -qq && apt-get install -y -qq --no-install-recommends debootstrap </dev/null >/dev/null
        }
        local dir="$WORK/base"
        log "debootstrap --variant=minbase $SUITE ($MIRROR)"
        debootstrap --variant=minbase --cache-dir="$CACHE/apt-archives/base" "$SUITE" "$dir" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
            { tail -20 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
        printf 'deb %s %s main\ndeb %s %s-updates main\n' "$MIRROR" "$SUITE" "$MIRROR" "$SUITE" >"$dir/etc/apt/sources.list"
        # No services start inside a chroot or an image build; no docs or man pages in images.
        printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
        chmod +x "$dir/usr/sbin/policy-rc.d"
        printf 'path-exclude /usr/share/doc/*\npath-exclude /usr/share/man/*\npath-exclude /usr/share/locale/*\n' \
            >"$dir/etc/dpkg/dpkg.cfg.d/01-nodoc"
        rm -rf "$dir/var/cache/apt/archives"/*.deb
        tar -C "$dir" --numeric-owner -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
        rm -rf "$dir"
    fi
    echo "$tarball"
}

new_root() {  # new_root NAME: ROOTFS= a fresh copy of the base rootfs with proc, dev and the caches mounted
    local dir="$WORK/$1" tarball
    tarball="$(base_rootfs)"
    mkdir -p "$dir"
    tar -C "$dir" -xf "$tarball"
    cp /etc/resolv.conf "$dir/etc/resolv.conf"
    bind /proc "$dir/proc"
    bind /dev "$dir/dev"
    bind "$CACHE/apt-archives/$1" "$dir/var/cache/apt/archives"
    ROOTFS="$dir"
}

apt_in() {  # apt_in ROOT PACKAGES...
    local dir=$1; shift
    chroot "$dir" apt-get update -qq >&2
    chroot "$dir" apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-confold "$@" \
        </dev/null >/dev/null
}

trust_host_cas() {  # the host's CA bundle: whatever the host trusts to reach the package index
    cp /etc/ssl/certs/ca-certificates.crt "$1/etc/ssl/certs/ca-certificates.crt"
}

finish_root() {  # finish_root ROOT: unmount, drop caches and lists
    local dir=$1
    unmount_all
    rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/tmp/* "$dir"/root/.cache
    : >"$dir/etc/resolv.conf"
}

import_root() {  # import_root ROOT IMAGE HASH [--change ...]
    local dir=$1 image=$2 hash=$3; shift 3
    log "docker import $image"
    tar -C "$dir" --numeric-owner -c . |
        docker import --change "LABEL $LABEL=$hash" "$@" - "$image" >/dev/null
    rm -rf "$dir"
    # The image this one replaced, if any, is left untagged: remove it.
    docker image prune --force --filter "label=$LABEL" >/dev/null
}

# -- the images ---------------------------------------------------------------------------------------
build_airflow() {
    local pins image hash dir
    pins="$(pins_file)"
    image="$PREFIX/airflow:$AIRFLOW_VERSION"
    hash="$(content_hash airflow "$pins")"
    if [[ $(image_hash "$image") == "$hash" ]]; then
        log "$image is up to date ($hash)"
        echo "AIRFLOW_IMAGE=$image"
        return
    fi
    log "building $image ($hash)"
    new_root airflow
    dir="$ROOTFS"
    apt_in "$dir" python3 python3-venv ca-certificates curl dumb-init procps libpq5 passwd
    trust_host_cas "$dir"
    chroot "$dir" useradd --uid 50000 --gid 0 --home-dir /home/airflow --create-home --shell /bin/bash airflow
    mkdir -p "$dir/opt/airflow"/{dags,logs,config,plugins}
    cp "$ROOT/docker/standin/airflow-entrypoint.sh" "$dir/entrypoint"
    chmod 755 "$dir/entrypoint"
    # uv, as in the official image; the host's copy (the project venv's) installs here.
    install -m 755 "$UV" "$dir/usr/local/bin/uv"
    cp "$pins" "$dir/tmp/pins.txt"
    bind "$CACHE/uv" "$dir/root/.cache/uv"
    log "installing apache-airflow==$AIRFLOW_VERSION and its providers (pins of the project venv)"
    chroot "$dir" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root \
        SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt UV_LINK_MODE=copy UV_CACHE_DIR=/root/.cache/uv \
        /bin/bash -euc "
            python3 -m venv /home/airflow/.venv
            uv pip install --quiet --python /home/airflow/.venv/bin/python --compile-bytecode \
                --constraint /tmp/pins.txt \
                'apache-airflow[celery,postgres]==$AIRFLOW_VERSION' apache-airflow-providers-standard \
                redis psycopg2-binary
            /home/airflow/.venv/bin/python -m pip --version >/dev/null
        "
    # pip in the image (docker/Dockerfile installs the provider with it) trusts what the host trusts.
    printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$dir/etc/pip.conf"
    chown -R 50000:0 "$dir/home/airflow" "$dir/opt/airflow"
    chmod -R g+rwX "$dir/opt/airflow"
    finish_root "$dir"
    import_root "$dir" "$image" "$hash" \
        --change "ENV AIRFLOW_VERSION=$AIRFLOW_VERSION" \
        --change "ENV AIRFLOW_HOME=/opt/airflow" \
        --change "ENV AIRFLOW_UID=50000" \
        --change "ENV AIRFLOW_USER_HOME_DIR=/home/airflow" \
        --change "ENV PATH=/home/airflow/.venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        --change "ENV PYTHONUNBUFFERED=1" \
        --change "ENV LANG=C.UTF-8" \
        --change "USER 50000" \
        --change "WORKDIR /opt/airflow" \
        --change "EXPOSE 8080" \
        --change 'ENTRYPOINT ["/usr/bin/dumb-init", "--", "/entrypoint"]' \
        --change 'CMD []'
    echo "AIRFLOW_IMAGE=$image"
}

build_postgres() {
    local image="$PREFIX/postgres:15" hash dir
    hash="$(content_hash postgres)"
    if [[ $(image_hash "$image") == "$hash" ]]; then
        log "$image is up to date ($hash)"
        echo "POSTGRES_IMAGE=$image"
        return
    fi
    log "building $image ($hash)"
    new_root postgres
    dir="$ROOTFS"
    # No cluster of Debian's own: the entrypoint initialises PGDATA from the environment.
    mkdir -p "$dir/etc/postgresql-common"
    echo "create_main_cluster = false" >"$dir/etc/postgresql-common/createcluster.conf"
    apt_in "$dir" postgresql-15
    install -m 755 "$ROOT/docker/standin/postgres-entrypoint.sh" "$dir/usr/local/bin/docker-entrypoint.sh"
    mkdir -p "$dir/var/lib/postgresql/data" "$dir/var/run/postgresql"
    chroot "$dir" chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql
    finish_root "$dir"
    import_root "$dir" "$image" "$hash" \
        --change "ENV PGDATA=/var/lib/postgresql/data" \
        --change "ENV LANG=C.UTF-8" \
        --change "VOLUME /var/lib/postgresql/data" \
        --change "EXPOSE 5432" \
        --change 'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]' \
        --change 'CMD []'
    echo "POSTGRES_IMAGE=$image"
}

build_redis() {
    local image="$PREFIX/redis:7" hash dir
    hash="$(content_hash redis)"
    if [[ $(image_hash "$image") == "$hash" ]]; then
        log "$image is up to date ($hash)"
        echo "REDIS_IMAGE=$image"
        return
    fi
    log "building $image ($hash)"
    new_root redis
    dir="$ROOTFS"
    apt_in "$dir" redis-server
    mkdir -p "$dir/data"
    chroot "$dir" chown redis:redis /data
    finish_root "$dir"
    import_root "$dir" "$image" "$hash" \
        --change "USER redis" \
        --change "WORKDIR /data" \
        --change "VOLUME /data" \
        --change "EXPOSE 6379" \
        --change 'ENTRYPOINT []' \
        --change 'CMD ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--dir", "/data"]'
    echo "REDIS_IMAGE=$image"
}

# The three images are built side by side (mostly downloads and disk), each in a subshell with its
# own mounts and apt cache, after the shared base rootfs exists; their NAME=IMAGE lines in order.
base_rootfs >/dev/null
pids=()
for name in "${wanted[@]}"; do
    (
        MOUNTED=()
        trap 'for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do umount -l "${MOUNTED[$i]}" 2>/dev/null || true; done' EXIT
        "build_$name" >"$WORK/$name.out"
    ) &
    pids+=($!)
done
failed=()
for i in "${!wanted[@]}"; do
    wait "${pids[$i]}" || failed+=("${wanted[$i]}")
done
(( ${#failed[@]} == 0 )) || die "building the stand-in image(s) ${failed[*]} failed (messages above)"
for name in "${wanted[@]}"; do cat "$WORK/$name.out"; done
