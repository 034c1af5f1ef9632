#!/usr/bin/env bash
# Static checks run by `make lint` and `make test`:
#  - cppcheck (warning,performance,portability; the C11 code base only);
#    nullPointerRedundantCheck is off: it does not see that hale_panic()
#    (a macro over a _Noreturn function) ends the path after `if (!p)`
#  - clang-tidy with a short list of checks, each chosen because it finds
#    real bugs in C and has no noise here:
#      bugprone-*           (minus the two that only complain about style:
#                            easily-swappable-parameters, narrowing on
#                            size_t<->int conversions the compiler already
#                            warns about with -Wall)
#      cert-err34-c         atoi/strtol without error checking
#      clang-analyzer-*     the path-sensitive analyzer (leaks, NULL deref),
#                           minus valist.Uninitialized: clang 14 reports every
#                           va_start/vsnprintf pair in a format-attributed
#                           function (a known false positive)
#  - shellcheck on every shell script
#  - hadolint on the Dockerfile, when installed (scripts/install-lint-tools.sh)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
rc=0
srcs=(src/runtime/*/*.c src/app/*.c src/app/*/*.c)
incs=()
for d in src/runtime/*/ src/app/ src/app/*/; do incs+=(-I "$d"); done

echo "lint: cppcheck"
cppcheck --quiet --error-exitcode=1 --std=c11 --enable=warning,performance,portability \
  --inline-suppr --suppress=missingIncludeSystem \
  --suppress=nullPointerRedundantCheck "${incs[@]}" "${srcs[@]}" || rc=1

echo "lint: clang-tidy"
if [[ ! -f build/debug/compile_commands.json ]]; then
  scripts/build.sh --configure-only debug
fi
checks='-*,bugprone-*,-bugprone-easily-swappable-parameters,-bugprone-narrowing-conversions,-bugprone-assignment-in-if-condition,cert-err34-c,clang-analyzer-*,-clang-analyzer-security.insecureAPI.DeprecatedOrUnsafeBufferHandling,-clang-analyzer-valist.Uninitialized'
# a file of this run's own: two checkouts linting at once must not mix
tidy_out=$(mktemp /tmp/hale-clang-tidy.XXXXXX)
if ! clang-tidy --quiet -p build/debug --checks="$checks" --warnings-as-errors='*' "${srcs[@]}" \
     > "$tidy_out" 2>&1; then
  grep -E "error:|warning:" "$tidy_out" | head -50
  rc=1
fi
rm -f "$tidy_out"

echo "lint: shellcheck"
mapfile -t scripts < <(git ls-files '*.sh' .ci/run 2>/dev/null; ls scripts/*.sh deploy/*.sh bench/*.sh 2>/dev/null)
if ((${#scripts[@]})); then
  mapfile -t uniq < <(printf '%s\n' "${scripts[@]}" | sort -u)
  shellcheck -x "${uniq[@]}" || rc=1
fi

mapfile -t dockerfiles < <(ls Dockerfile docker/*/Dockerfile 2>/dev/null)
if ((${#dockerfiles[@]})); then
  hadolint_bin=$(command -v hadolint || echo /opt/hale-tools/bin/hadolint)
  if [[ -x $hadolint_bin ]]; then
    echo "lint: hadolint"
    "$hadolint_bin" "${dockerfiles[@]}" || rc=1
  else
    echo "lint: hadolint missing (scripts/install-lint-tools.sh installs it)"; rc=1
  fi
fi
exit $rc
