# shellcheck shell=bash
# Shared by deploy/blue-green.sh and deploy/canary.sh: edit the overlay files
# that say what runs (K12), so that git and the cluster agree. Sourced, not
# run; needs lib.sh (say, die, DRY_RUN).

# set_image KUSTOMIZATION REF: rewrite the file's `images:` entry for hale to
# REF (name@sha256:digest, or name:tag to restore an older entry), the edit
# `kustomize edit set image` would make.
set_image() {
  local file=$1 ref=$2 tmp name pin
  if [[ $ref == *@sha256:* ]]; then
    name=${ref%@*} pin="digest: ${ref#*@}"
  elif [[ ${ref##*/} == *:* ]]; then
    name=${ref%:*} pin="newTag: ${ref##*:}"
  else
    die "set_image: $ref has neither a digest nor a tag"
  fi
  if ((DRY_RUN)); then say "dry run: would set hale's image in ${file#"$ROOT"/} to $ref"; return 0; fi
  tmp=$(mktemp)
  awk -v name="$name" -v pin="$pin" '
    /^images:/ { print; print "  - name: hale"; print "    newName: " name; print "    " pin; skip = 1; next }
    skip && /^[^ -]/ { skip = 0 }
    !skip { print }' "$file" >"$tmp" && cat "$tmp" >"$file"
  rm -f "$tmp"
  grep -qF "$pin" "$file" || die "could not set the image in $file"
}

# set_value FILE KEY VALUE: replace the value of the one line `KEY: ...`.
set_value() {
  local file=$1 key=$2 value=$3 n
  n=$(grep -c "^[[:space:]]*$key:" "$file" || true)
  ((n == 1)) || die "expected one '$key:' line in $file, found $n"
  if ((DRY_RUN)); then say "dry run: would set $key: $value in ${file#"$ROOT"/}"; return 0; fi
  sed -i "s|^\([[:space:]]*$key:\).*|\1 $value|" "$file"
}

# file_image KUSTOMIZATION: the image reference the file's images: entry sets.
file_image() {
  awk '/^images:/ { on = 1; next } on && /^[^ -]/ { on = 0 }
       on && $1 == "newName:" { n = $2 } on && $1 == "digest:" { d = "@" $2 }
       on && $1 == "newTag:" { d = ":" $2 }
       END { if (n != "") print n d }' "$1"
}

# show_changes DIR...: what to commit.
show_changes() {
  if ((DRY_RUN)); then return 0; fi
  if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1 &&
     ! git -C "$ROOT" diff --quiet -- "$@"; then
    say "commit this change, so that git and the cluster agree (a re-apply or GitOps sync keeps it):"
    git -C "$ROOT" --no-pager diff -- "$@"
  else
    say "edited: ${*#"$ROOT"/}: commit them, so that git and the cluster agree"
  fi
}

# apply_overlay DIR: server-side apply, the same field manager as deploy.sh.
apply_overlay() {
  kubectl_ apply --server-side --field-manager=hale-deploy --force-conflicts -k "$1"
}
