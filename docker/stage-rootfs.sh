#!/usr/bin/env bash
# Runs in the Dockerfile's builder stage. Stages what the images copy:
#
#   OUT/rootfs/                  the distroless root: exactly
#     app/hale                     the binary,
#     app/config/                  the repo's config/ directory,
#     app/data/                    the SQLite directory (65532:65532, 0750),
#     lib/..., usr/lib/...         every shared object the loader maps for the
#     lib64/ld-linux-x86-64.so.2   binary (ldd: the transitive closure) and the
#                                  loader, each at the path its Debian package
#                                  ships it (the dpkg database's path, so the
#                                  SBOM can name the package), symlinks
#                                  resolved to the file under the name the
#                                  loader asks for. Debian paths match the
#                                  distroless images, which are unpacked
#                                  .debs with real /lib and /lib64
#                                  directories. On a merged-/usr base, the
#                                  COPY would turn its /lib and /lib64
#                                  symlinks into directories (measured).
#   OUT/app/                     /app alone (binary, config, data) for the
#                                Debian-slim runtime image.
#   OUT/runtime-packages.txt     the Debian packages that ship the libraries
#                                hale names in DT_NEEDED, for the runtime
#                                image's apt-get install.
#   OUT/staged-files.tsv         path, package, version, sha256 of every staged
#                                binary or library (docker/sbom.py checks an
#                                image against it).
#
# Usage: docker/stage-rootfs.sh BINARY CONFIG_DIR OUT
set -euo pipefail
bin=$1 config=$2 out=$3
root=$out/rootfs

die() { printf 'stage-rootfs: ERROR: %s\n' "$*" >&2; exit 1; }

# The path under which dpkg knows FILE: itself, or its merged-/usr twin
# (bookworm's packages still ship /lib/x86_64-linux-gnu/libc.so.6 while ldd
# may print /usr/lib/..., and the other way round). Prints "PATH<TAB>PKG".
dpkg_path() {
  local p=$1 alt
  case $p in
    /usr/lib/* | /usr/lib64/* | /usr/bin/* | /usr/sbin/*) alt=${p#/usr} ;;
    /lib/* | /lib64/* | /bin/* | /sbin/*) alt=/usr$p ;;
    *) alt=$p ;;
  esac
  local cand line
  for cand in "$p" "$alt"; do
    # dpkg-query -S prints "pkg:arch: /path"; exact path, not a pattern match
    line=$(dpkg-query -S "$cand" 2>/dev/null | awk -v f="$cand" -F': ' '$2 == f {print $1; exit}')
    if [[ -n $line ]]; then
      printf '%s\t%s\n' "$cand" "${line%%:*}"
      return 0
    fi
  done
  return 1
}

install -d -m 0755 "$root/app" "$root/app/config"
install -d -m 0750 -o 65532 -g 65532 "$root/app/data"
install -m 0755 -o 0 -g 0 "$bin" "$root/app/hale"
if [[ -d $config ]]; then
  cp -R "$config/." "$root/app/config/"
  chown -R 0:0 "$root/app/config"
  chmod -R u=rwX,go=rX "$root/app/config"
fi

: >"$out/staged-files.tsv"
sha() { sha256sum "$1" | cut -d' ' -f1; }
printf '%s\t%s\t%s\t%s\n' /app/hale hale - "$(sha "$root/app/hale")" >>"$out/staged-files.tsv"

mapfile -t libs < <(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}')
((${#libs[@]})) || die "ldd found no libraries in $bin (static binary?)"
for lib in "${libs[@]}"; do
  owned=$(dpkg_path "$lib") || die "no Debian package ships $lib"
  path=${owned%%$'\t'*} pkg=${owned#*$'\t'}
  install -d -m 0755 "$root$(dirname "$path")"
  cp -L "$lib" "$root$path"
  chmod 0755 "$root$path"
  chown 0:0 "$root$path"
  printf '%s\t%s\t%s\t%s\n' "$path" "$pkg" "$(dpkg-query -W -f='${Version}' "$pkg")" \
    "$(sha "$root$path")" >>"$out/staged-files.tsv"
done

# The packages of the libraries hale itself names (apt brings their
# dependencies); the loader's own package (libc6) is in every base image.
needed=$(objdump -p "$bin" | awk '$1 == "NEEDED" {print $2}')
: >"$out/runtime-packages.txt"
for soname in $needed; do
  lib=$(ldd "$bin" | awk -v s="$soname" '$1 == s && $3 ~ /^\// {print $3; exit}')
  [[ -n $lib ]] || die "ldd does not resolve $soname"
  owned=$(dpkg_path "$lib") || die "no Debian package ships $lib"
  echo "${owned#*$'\t'}" >>"$out/runtime-packages.txt"
done
sort -u -o "$out/runtime-packages.txt" "$out/runtime-packages.txt"

cp -a "$root/app" "$out/app"
echo "stage-rootfs: $(wc -l <"$out/staged-files.tsv") files, $(du -sk "$root" | cut -f1) KiB;" \
  "runtime packages: $(tr '\n' ' ' <"$out/runtime-packages.txt")"
