# Sourced by the fetch scripts: the one check that a cached folder is complete and unaltered.
#
# verify_folder DIR REQUIRED DIGESTS
#   REQUIRED: space-separated paths (relative to DIR) that must exist.
#   DIGESTS:  lines of "path sha256"; each file must exist and have that digest. A file that a
#             script builds differently on different CPUs lists each known build's digest,
#             separated by "|" ("path sha_a|sha_b"), and may have any of them.
# Returns 0 when all hold; otherwise names the first missing file or mismatch on stderr and
# returns 1. Needs only coreutils' sha256sum.
verify_folder() {
  local dir="$1" required="$2" digests="$3" file name want got
  for file in $required; do
    [ -f "$dir/$file" ] || { echo "missing in $dir: $file" >&2; return 1; }
  done
  while read -r name want; do
    [ -n "$name" ] || continue
    [ -f "$dir/$name" ] || { echo "missing in $dir: $name" >&2; return 1; }
    got="$(sha256sum "$dir/$name" | cut -d' ' -f1)"
    case "|$want|" in
      *"|$got|"*) ;;
      *) echo "sha256 mismatch for $name: got $got, want $want" >&2; return 1 ;;
    esac
  done <<< "$digests"
}
