#!/usr/bin/env bash
# Runs the kernel and loader unit tests under AddressSanitizer and a subset under Miri (both
# need rustup's nightly toolchain with rust-src and miri). Not part of CI: the ASan build
# rebuilds std, and Miri is thousands of times slower than native code.
#
# Usage: scripts/sanitizers.sh [asan|miri]...      (default: both)
#
# ASan runs natively, so it checks the SIMD kernels this CPU has (AVX2, AVX-512) as well as
# the scalar ones. Miri reports no SIMD features at run time, so only the scalar kernels and
# the packing, dispatch and validation code run under it; it uses tree borrows because rayon's
# crossbeam-epoch fails the stricter stacked-borrows model in its own code. The Miri subset
# leaves out tests whose shapes take Miri more than ~10 minutes each.
set -euo pipefail
cd "$(dirname "$0")/.."
modes=("$@")
[ ${#modes[@]} -eq 0 ] && modes=(asan miri)

for mode in "${modes[@]}"; do
  case "$mode" in
    asan)
      echo "== AddressSanitizer: octet-kernels and octet unit tests"
      CARGO_TARGET_DIR=target/asan RUSTFLAGS="-Zsanitizer=address" RUSTDOCFLAGS="-Zsanitizer=address" \
        cargo +nightly test -Zbuild-std --target x86_64-unknown-linux-gnu -p octet-kernels -p octet --lib
      ;;
    miri)
      echo "== Miri (tree borrows): kernel packing, dispatch, gather, u6 and error paths"
      CARGO_TARGET_DIR=target/miri MIRIFLAGS="-Zmiri-tree-borrows" \
        cargo +nightly miri test -p octet-kernels --lib -- \
        pack:: dispatch:: epilogue:: f32::reference gather::tests::bad_arguments gather::tests::empty_ids \
        gather::tests::output_past gather::tests::u6_ gather::u6:: int8::tests::bad_arguments \
        int8::tests::layout_offsets int8::tests::pack_round_trips vector::tests::bad_lengths
      echo "== Miri: the loader rejecting a file with bytes appended"
      CARGO_TARGET_DIR=target/miri MIRIFLAGS="-Zmiri-tree-borrows" \
        cargo +nightly miri test -p octet --lib -- format::tests::corrupt::appended_bytes_are_reported
      ;;
    *) echo "unknown mode '$mode': use asan or miri" >&2; exit 2 ;;
  esac
done
