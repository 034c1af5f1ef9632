#!/usr/bin/env bash
# Makes the local stand-in for debian:bookworm-slim on a machine whose Docker
# engine cannot pull: `debootstrap --variant=minbase bookworm` from the
# machine's own Debian mirror, then `docker import`.
#
# The rootfs is made the way the official image is:
#  - apt sources in deb822 form with bookworm, bookworm-updates AND
#    bookworm-security (debootstrap alone only writes `bookworm main`), and
#    `apt-get upgrade` from them, so the base already holds every security
#    update published when it was made;
#  - trimmed like the -slim variant (dpkg path-excludes for docs, man pages
#    and translations; copyright files stay), apt lists and caches emptied.
# A label records the mirror and the date, so `docker inspect` tells how old
# a cached base is (scripts/image.sh --rebuild-base makes a new one).
#
# Usage: docker/mkbase.sh TAG        (as root; installs debootstrap if missing)
# Env:   MIRROR, SECURITY_MIRROR    default: the machine's apt sources
set -euo pipefail
tag=${1:?usage: docker/mkbase.sh TAG}
suite=bookworm

log() { printf 'mkbase: %s\n' "$*"; }
die() { printf 'mkbase: ERROR: %s\n' "$*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || die "debootstrap needs root"

# The mirrors this machine's apt uses: deb822 stanzas first (the URIs of the
# stanza whose Suites holds -security is the security mirror), then one-line
# sources. Comments are ignored (they may name other archives).
sources=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
lists=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | grep -v '^[[:space:]]*#' || true)
if [[ -z ${MIRROR:-} ]]; then
  MIRROR=$(awk -v RS= '/(^|\n)Suites:[^\n]*bookworm([ \n]|$)/ && match($0, /(^|\n)URIs: *[^ \n]+/) {
             s = substr($0, RSTART, RLENGTH); sub(/.*URIs: */, "", s); print s; exit }' <<<"$sources")
  [[ -n $MIRROR ]] || MIRROR=$(awk '$1=="deb" && $3 !~ /security/ {print $2; exit}' <<<"$lists")
fi
if [[ -z ${SECURITY_MIRROR:-} ]]; then
  SECURITY_MIRROR=$(awk -v RS= '/(^|\n)Suites:[^\n]*-security/ && match($0, /(^|\n)URIs: *[^ \n]+/) {
             s = substr($0, RSTART, RLENGTH); sub(/.*URIs: */, "", s); print s; exit }' <<<"$sources")
  [[ -n $SECURITY_MIRROR ]] || SECURITY_MIRROR=$(awk '$1=="deb" && $3 ~ /-security/ {print $2; exit}' <<<"$lists")
fi
: "${MIRROR:=http://deb.debian.org/debian}"
: "${SECURITY_MIRROR:=http://deb.debian.org/debian-security}"

if ! command -v debootstrap >/dev/null; then
  log "apt-get install debootstrap"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "apt-get update failed"
  apt-get install -y -qq --no-install-recommends debootstrap >/dev/null ||
    die "cannot install debootstrap"
fi

root=$(mktemp -d /var/tmp/hale-rootfs.XXXXXX)
cleanup() {
  mountpoint -q "$root/proc" && umount "$root/proc"
  rm -rf --one-file-system "$root"
}
trap cleanup EXIT

log "debootstrap --variant=minbase $suite from $MIRROR (about a minute)"
t0=$SECONDS
debootstrap --variant=minbase "$suite" "$root" "$MIRROR" >"$root.log" 2>&1 ||
  { tail -20 "$root.log" >&2; die "debootstrap failed (log: $root.log)"; }
rm -f "$root.log"

rm -f "$root/etc/apt/sources.list"
cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF

# What debian:bookworm-slim sets: no translations, no docs/man pages.
printf 'Acquire::Languages "none";\n' >"$root/etc/apt/apt.conf.d/docker-no-languages"
printf '%s\n' 'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };' \
  'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };' \
  'Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";' >"$root/etc/apt/apt.conf.d/docker-clean"
cat >"$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/info/*
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF

log "apt-get update && upgrade from $suite, $suite-updates, $suite-security"
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount -t proc proc "$root/proc"
chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
  sh -ec 'apt-get update -qq --error-on=any; apt-get -y -qq upgrade >/dev/null; apt-get clean' ||
  die "apt-get upgrade in the rootfs failed"
umount "$root/proc"

# The slim trim for what debootstrap installed before the excludes existed.
find "$root/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$root"/usr/share/{info,man,groff,linda,lintian}/* 2>/dev/null || true
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
# (lists/partial and archives/partial stay: apt's _apt sandbox user owns them)
find "$root/var/lib/apt/lists" "$root/var/cache/apt" -mindepth 1 -maxdepth 1 \
  ! -name partial ! -name archives -exec rm -rf {} +
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/debconf/*-old \
  "$root"/var/log/*.log "$root"/var/log/apt/* "$root"/tmp/* "$root"/var/tmp/*
: >"$root/etc/resolv.conf"
: >"$root/etc/machine-id"

log "docker import $tag"
created=$(date -u +%Y-%m-%dT%H:%M:%SZ)
tar --numeric-owner -C "$root" -c . |
  docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' \
    --change "LABEL org.opencontainers.image.description=\"debootstrap --variant=minbase $suite, slim trim, upgraded from $suite-security\" hale.base.mirror=\"$MIRROR\" hale.base.security-mirror=\"$SECURITY_MIRROR\" org.opencontainers.image.created=\"$created\"" \
    - "$tag" >/dev/null || die "docker import failed"
log "$tag made in $((SECONDS - t0)) s: $(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.1f MiB", $1/1048576}')"
