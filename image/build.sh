#!/usr/bin/env bash
# Build the oci-normalize OCI image (`make image`), with no network inside the build:
#   1. mmdebstrap makes a Debian root filesystem (python3, CA certificates) from this machine's own
#      apt sources, for this machine's release (/etc/os-release VERSION_CODENAME);
#   2. pip builds wheels of the project and of every dependency on the host, for the rootfs's
#      Python minor version (pydantic-core is compiled: the ABI must match);
#   3. buildah adds the rootfs, installs the wheels inside with `pip install --no-index`, sets a
#      non-root user, the entrypoint and the org.opencontainers.image.* labels and annotations, and
#      commits with every timestamp set to SOURCE_DATE_EPOCH.
# The image lands in containers-storage as oci-normalize:VERSION and in an OCI layout
# ($OUT/oci, tag VERSION); the tool's own `check` must find nothing Docker-typed in it.
#
# Environment (all optional):
#   SOURCE_DATE_EPOCH  timestamps of the image and its files (default: the last commit's time)
#   REVISION           org.opencontainers.image.revision (default: git rev-parse HEAD)
#   SOURCE_URL         org.opencontainers.image.source (default: git remote origin, if any)
#   WHEEL_PYTHON       the interpreter that builds the wheels (default .venv/bin/python)
#   OUT                work and output directory (default build/image)
#   IMAGE              name to commit as (default oci-normalize:VERSION)
#   SUITE              Debian suite (default: this machine's VERSION_CODENAME)
#   APT_SOURCES        apt source files to build from (default: this machine's own)
#   REUSE_BASE=1       reuse $OUT/base-SUITE-EPOCH.tar from an earlier build instead of
#                      running mmdebstrap again (the mirror may have moved on in between)
#   STORAGE_DRIVER     containers-storage driver (default vfs); BUILDAH_ROOT: a private store
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

USER_ID=65532                    # "nonroot" by convention; numeric so runAsNonRoot can verify it
USER_NAME=oci-normalize
HOME_DIR=/home/$USER_NAME
WHEEL_PYTHON=${WHEEL_PYTHON:-.venv/bin/python}
OUT=${OUT:-build/image}
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n 1)
# license = "SPDX" (PEP 639) or the older license = { text = "SPDX" }
LICENSE=$(sed -n -e 's/^license = "\(.*\)"$/\1/p' -e 's/^license = { text = "\(.*\)" }$/\1/p' \
    pyproject.toml | head -n 1)
IMAGE=${IMAGE:-oci-normalize:$VERSION}
REVISION=${REVISION:-$(git rev-parse HEAD 2>/dev/null || true)}
SOURCE_URL=${SOURCE_URL:-$(git config --get remote.origin.url 2>/dev/null || true)}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || true)}
SUITE=${SUITE:-$(. /etc/os-release && echo "${VERSION_CODENAME:-}")}
ARCH=$(dpkg --print-architecture)
export STORAGE_DRIVER=${STORAGE_DRIVER:-vfs}
BUILDAH=(buildah --storage-driver "$STORAGE_DRIVER")
if [[ -n "${BUILDAH_ROOT:-}" ]]; then
    BUILDAH+=(--root "$BUILDAH_ROOT/root" --runroot "$BUILDAH_ROOT/run")
fi

step() { printf '==> %s\n' "$*" >&2; }
die() { printf 'image/build.sh: %s\n' "$*" >&2; exit 2; }

[[ -n "$VERSION" && -n "$LICENSE" ]] || die "no version or license in pyproject.toml"
[[ -n "$REVISION" && -n "$SOURCE_DATE_EPOCH" ]] ||
    die "not a git checkout: set REVISION (the commit) and SOURCE_DATE_EPOCH"
CREATED=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
[[ -n "$SUITE" ]] || die "no VERSION_CODENAME in /etc/os-release: set SUITE"
[[ -x "$WHEEL_PYTHON" ]] || die "$WHEEL_PYTHON missing: run 'make venv' or set WHEEL_PYTHON"
for tool in mmdebstrap mmtarfilter buildah jq; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install buildah mmdebstrap)"
done
if [[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
    step "warning: uncommitted changes are built, but the revision label says $REVISION"
fi

if [[ -n "${APT_SOURCES:-}" ]]; then
    read -r -a sources <<<"$APT_SOURCES"
else
    sources=()
    if grep -qs '^[[:space:]]*deb' /etc/apt/sources.list; then sources+=(/etc/apt/sources.list); fi
    for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        if [[ -f "$f" ]]; then sources+=("$f"); fi
    done
fi
((${#sources[@]})) || die "no apt sources found in /etc/apt: set APT_SOURCES"

# The user, written directly (useradd is not in the essential set; this is deterministic too).
user_hook() {
    cat <<EOF
echo '$USER_NAME:x:$USER_ID:$USER_ID::$HOME_DIR:/usr/sbin/nologin' >>"\$1/etc/passwd"
echo '$USER_NAME:x:$USER_ID:' >>"\$1/etc/group"
echo '$USER_NAME:!*:::::::' >>"\$1/etc/shadow"
echo '$USER_NAME:!::' >>"\$1/etc/gshadow"
install -d -m 0755 -o $USER_ID -g $USER_ID "\$1$HOME_DIR"
EOF
}

mkdir -p "$OUT"
base="$OUT/base-$SUITE-$SOURCE_DATE_EPOCH.tar"
if [[ "${REUSE_BASE:-0}" == 1 && -s "$base" ]]; then
    step "reusing $base (REUSE_BASE=1)"
else
    step "mmdebstrap $SUITE (${sources[*]})"
    # essential + python3 + CA certificates; the merged-usr hook installs usr-is-merged so
    # that usrmerge (and with it all of perl) stays out. No docs, man pages, locales, apt
    # caches or logs; resolv.conf and hostname are the host's and would break reproducibility.
    mmdebstrap --quiet --mode=auto --variant=essential \
        --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
        --include=python3,ca-certificates \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/info/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-exclude=/usr/share/lintian/*' \
        --customize-hook='rm -f "$1/etc/resolv.conf" "$1/etc/hostname"' \
        --customize-hook='rm -rf "$1"/var/log/* "$1"/var/cache/debconf/*-old "$1"/var/lib/dpkg/*-old' \
        --customize-hook="$(user_hook)" \
        "$SUITE" - "${sources[@]}" |
        mmtarfilter --path-exclude='/dev/*' --path-exclude='/var/lib/apt/*' --path-exclude='/var/cache/apt/*' \
            --path-exclude='/etc/apt/sources.list.d/*' --path-exclude=/etc/apt/sources.list >"$base.part"
    mv "$base.part" "$base"
fi

# The rootfs's Python decides the wheels' ABI (cp311, …): read it from the tarball.
rootfs_py=$(tar -tf "$base" | sed -n 's|^\./usr/bin/python\(3\.[0-9]*\)$|\1|p' | head -n 1)
[[ -n "$rootfs_py" ]] || die "$base has no usr/bin/python3.X"
host_py=$("$WHEEL_PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
wheels="$OUT/wheels"
rm -rf "$wheels"
mkdir -p "$wheels"
step "wheels for Python $rootfs_py (host $WHEEL_PYTHON is $host_py)"
pip=("$WHEEL_PYTHON" -m pip --disable-pip-version-check --no-cache-dir)
# setuptools builds in build/lib and never prunes it: a module deleted from the tree would
# still ship. Start from an empty build directory.
rm -rf build/lib build/bdist.*
if [[ "$host_py" == "$rootfs_py" ]]; then
    "${pip[@]}" wheel --quiet --wheel-dir "$wheels" . pip
else
    # Another minor version on the host: build our own (pure) wheel, then fetch binary wheels
    # made for the rootfs's interpreter and glibc.
    "${pip[@]}" wheel --quiet --no-deps --wheel-dir "$wheels" .
    abi="cp${rootfs_py/./}"
    "${pip[@]}" download --quiet --dest "$wheels" --only-binary=:all: \
        --python-version "$rootfs_py" --implementation cp --abi "$abi" \
        --platform "manylinux_2_28_$(uname -m)" --platform "manylinux_2_17_$(uname -m)" \
        --platform "manylinux2014_$(uname -m)" "$wheels"/oci_normalize-*.whl pip
fi
pip_wheel=$(cd "$wheels" && ls pip-*.whl)

step "buildah: assemble $IMAGE"
ctr=$("${BUILDAH[@]}" from --quiet scratch)
trap '"${BUILDAH[@]}" rm "$ctr" >/dev/null 2>&1 || true' EXIT
"${BUILDAH[@]}" add --quiet "$ctr" "$base" /
"${BUILDAH[@]}" copy --quiet "$ctr" "$wheels" /tmp/wheels
# chroot isolation: no runtime, no namespaces needed (and none available in some sandboxes).
# pip runs from its own wheel, so pip itself is not left in the image; --no-compile: no
# __pycache__ (its .pyc files would embed install-time mtimes).
"${BUILDAH[@]}" run --isolation chroot "$ctr" -- \
    python3 "/tmp/wheels/$pip_wheel/pip" install --quiet --no-index --find-links /tmp/wheels \
    --no-compile --no-cache-dir --disable-pip-version-check --root-user-action=ignore \
    --break-system-packages "oci-normalize==$VERSION"
"${BUILDAH[@]}" run --isolation chroot "$ctr" -- rm -rf /tmp/wheels /root/.cache

labels=(
    "org.opencontainers.image.title=oci-normalize"
    "org.opencontainers.image.description=Rewrite Docker media types in registry images to their OCI equivalents"
    "org.opencontainers.image.version=$VERSION"
    "org.opencontainers.image.revision=$REVISION"
    "org.opencontainers.image.licenses=$LICENSE"
    "org.opencontainers.image.created=$CREATED"
)
if [[ -n "$SOURCE_URL" ]]; then labels+=("org.opencontainers.image.source=$SOURCE_URL"); fi
config=(
    --os linux --arch "$ARCH"
    --user "$USER_ID:$USER_ID" --workingdir "$HOME_DIR"
    --entrypoint '["oci-normalize"]' --cmd '["--help"]'
    --env PYTHONDONTWRITEBYTECODE=1 --env LANG=C.UTF-8
    --env REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
    --created-by "image/build.sh (mmdebstrap $SUITE, python$rootfs_py, oci-normalize $VERSION)"
)
for label in "${labels[@]}"; do config+=(--label "$label" --annotation "$label"); done
"${BUILDAH[@]}" config "${config[@]}" "$ctr"

step "buildah commit (timestamps = $CREATED)"
"${BUILDAH[@]}" commit --quiet --format oci --timestamp "$SOURCE_DATE_EPOCH" --rm "$ctr" "$IMAGE" >/dev/null
trap - EXIT

rm -rf "$OUT/oci"
"${BUILDAH[@]}" push --quiet --format oci "$IMAGE" "oci:$OUT/oci:$VERSION"
manifest=$(jq -r '.manifests[0].digest' "$OUT/oci/index.json")
manifest_path="$OUT/oci/blobs/${manifest/://}"
config_digest=$(jq -r '.config.digest' "$manifest_path")
echo "$config_digest" >"$OUT/config-digest"
compressed=$(jq '[.layers[].size, .config.size] | add' "$manifest_path")
uncompressed=$("${BUILDAH[@]}" images --format '{{.Size}}' "$IMAGE" | head -n 1)

step "oci-normalize check oci:$OUT/oci:$VERSION"
"$WHEEL_PYTHON" -m oci_normalize check "oci:$OUT/oci:$VERSION" >&2

printf '%s\n' \
    "image:         $IMAGE (containers-storage) and oci:$OUT/oci:$VERSION" \
    "config digest: $config_digest" \
    "manifest:      $manifest" \
    "size:          $uncompressed unpacked, $((compressed / 1024 / 1024)) MiB compressed ($compressed bytes)"
