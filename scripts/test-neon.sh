#!/usr/bin/env bash
# Builds octet-kernels for aarch64 and runs its tests under qemu-user, once per forced NEON
# level (neon, dotprod, i8mm), so every NEON path is tested, not only the best one.
# Recipe: ../shared/NEON.md. Needs the packages that scripts/install-neon-deps.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTC=/usr/bin/rustc
export RUSTDOC=/usr/bin/rustdoc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=qemu-aarch64
export CARGO_TARGET_DIR=target/aarch64
for level in neon dotprod i8mm; do
  echo "== octet-kernels tests on aarch64 under qemu, OCTET_KERNEL=$level"
  OCTET_KERNEL=$level cargo test --target aarch64-unknown-linux-gnu -p octet-kernels --lib --tests "$@"
done
