#!/usr/bin/env bash
# Builds the base image deploy/Dockerfile starts from, debian:bookworm-slim, from Debian's
# packages when the Docker engine does not have it (for machines that cannot pull from a
# registry): `debootstrap --variant=minbase bookworm` into a temporary folder, trimmed like
# the official slim image, imported with `docker import`. Does nothing when the image is
# already there (unless --force).
#   deploy/docker/build_base_image.sh [--force] [--tag NAME]
# Needs root (debootstrap), debootstrap and a running Docker engine.
# The Debian mirror is the one this machine's apt uses (the first bookworm source in
# /etc/apt/sources.list*), or DEBIAN_MIRROR=http://.../debian; the security updates come from
# DEBIAN_SECURITY_MIRROR (default: the mirror's .../debian-security). The image's apt uses
# the same mirrors, so `apt-get update && apt-get install` works in a Dockerfile built on it.
set -euo pipefail

tag=debian:bookworm-slim
force=0
while [ $# -gt 0 ]; do
  case "$1" in
    --force) force=1; shift ;;
    --tag) tag="${2:?--tag needs an image name}"; shift 2 ;;
    --tag=*) tag="${1#*=}"; shift ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build_base_image.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

die() { echo "build_base_image.sh: $*" >&2; exit 1; }

command -v docker >/dev/null || die "no docker command; install docker.io (deploy/install_deps.sh --docker)"
docker info >/dev/null 2>&1 || die "the Docker engine is not running (start dockerd, or use deploy/compose_demo.sh)"
if [ "$force" -eq 0 ] && docker image inspect "$tag" >/dev/null 2>&1; then
  echo "Base image $tag is already there."
  exit 0
fi
[ "$(id -u)" -eq 0 ] || die "debootstrap needs root; run this script as root"
command -v debootstrap >/dev/null || die "debootstrap is missing; install it (deploy/install_deps.sh --docker)"

# The mirror: DEBIAN_MIRROR, else the first non-security URI of a bookworm source of this
# machine's apt (deb822 .sources files or one-line sources.list entries).
find_mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    # deb822 stanzas are separated by blank lines; print "URI suites" per stanza.
    awk 'BEGIN { RS = ""; FS = "\n" }
         { uri = ""; suites = "";
           for (i = 1; i <= NF; i++) {
             if ($i ~ /^URIs:/) { sub(/^URIs:[ \t]*/, "", $i); split($i, u, /[ \t]+/); uri = u[1] }
             if ($i ~ /^Suites:/) { sub(/^Suites:[ \t]*/, "", $i); suites = $i }
           }
           if (uri != "" && suites ~ /(^|[ \t])bookworm([ \t]|$)/) print uri }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                       if ($(i + 1) == "bookworm") print $i }' "$f"
  done
}
mirror="${DEBIAN_MIRROR:-$(find_mirror | grep -v -- '-security' | head -n 1 || true)}"
[ -n "$mirror" ] || die "no Debian bookworm mirror found in /etc/apt/sources.list*; set DEBIAN_MIRROR=http://<mirror>/debian"
mirror="${mirror%/}"
security_mirror="${DEBIAN_SECURITY_MIRROR:-${mirror}-security}"

rootfs=$(mktemp -d "${TMPDIR:-/var/tmp}/bookworm-rootfs.XXXXXX")
cleanup() { rm -rf --one-file-system "$rootfs"; }
trap cleanup EXIT

echo "Building base image $tag: debootstrap --variant=minbase bookworm from $mirror ..."
start=$(date +%s)
log="$rootfs.log"
if ! debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$log" 2>&1; then
  tail -n 30 "$log" >&2
  rm -f "$log"
  die "debootstrap failed (above: the end of its log); is $mirror reachable?"
fi
rm -f "$log"

# apt sources as the official image has them (deb822), with this mirror.
rm -f "$rootfs/etc/apt/sources.list"
cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security_mirror
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
# Slim: no documentation or translations from later installs, no package cache kept.
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
echo 'Acquire::Languages "none";' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
find "$rootfs/usr/share/doc" -mindepth 2 ! -name copyright -delete 2>/dev/null || true
rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/* \
       "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
       "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/* \
       "$rootfs"/tmp/* "$rootfs"/root/.bash_history
# A container gets its own hostname, hosts and resolv.conf from the engine.
: >"$rootfs/etc/hostname"
: >"$rootfs/etc/resolv.conf"

tar --numeric-owner --xattrs -C "$rootfs" -c . |
  docker import --change 'CMD ["bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --message "debootstrap --variant=minbase bookworm ($mirror)" - "$tag" >/dev/null
size=$(docker image inspect -f '{{.Size}}' "$tag")
echo "Base image $tag built in $(( $(date +%s) - start )) s ($(( size / 1000000 )) MB)."
