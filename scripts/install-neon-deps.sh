#!/usr/bin/env bash
# Installs what the aarch64 cross build and qemu-user test run need (../shared/NEON.md).
set -euo pipefail
if command -v qemu-aarch64 >/dev/null && command -v aarch64-linux-gnu-gcc >/dev/null \
   && [ -x /usr/bin/rustc ] && /usr/bin/rustc --print target-libdir --target aarch64-unknown-linux-gnu >/dev/null 2>&1 \
   && ls "$(/usr/bin/rustc --print target-libdir --target aarch64-unknown-linux-gnu)"/libstd-* >/dev/null 2>&1; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
dpkg --add-architecture arm64
apt-get update -qq
apt-get install -y -qq rustc-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu qemu-user >/dev/null
