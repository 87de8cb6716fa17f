#!/usr/bin/env bash
# Peak stack use of the firmware, by reading the "paint" QEMU leaves: RAM
# starts zeroed and cortex-m-rt writes only .bss/.data, so the lowest
# non-zero byte between the end of .bss and the top of RAM, read when the
# firmware reaches its exit, marks the deepest stack use (a lower bound,
# exact unless the deepest words written were zeros).
# Needs qemu-system-arm, gdb-multiarch and arm-none-eabi-nm (Debian:
# qemu-system-arm gdb-multiarch binutils-arm-none-eabi).
# Usage: measure-stack.sh [ELF]
set -euo pipefail
cd "$(dirname "$0")"
elf=${1:-${CARGO_TARGET_DIR:-target}/thumbv7m-none-eabi/release/txtd-qemu-lm3s6965}
sym() { arm-none-eabi-nm "$elf" | awk -v s="$1" '$3 == s { print "0x" $1 }'; }
bottom=$(sym _stack_end)
top=$(sym _stack_start)
ram=$(mktemp)
trap 'rm -f "$ram"' EXIT
timeout 60 qemu-system-arm -machine lm3s6965evb -nographic \
    -semihosting-config enable=on,target=native -kernel "$elf" \
    -S -gdb tcp::3333 >/dev/null 2>&1 &
sleep 1
timeout 60 gdb-multiarch -q -batch -ex 'target remote :3333' \
    -ex 'break txtd_qemu_lm3s6965::exit' -ex continue \
    -ex "dump binary memory $ram $bottom $top" -ex kill "$elf" >/dev/null 2>&1
wait || true
python3 - "$ram" "$bottom" "$top" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
bottom, top = int(sys.argv[2], 16), int(sys.argv[3], 16)
low = next((i for i, b in enumerate(data) if b), len(data))
print(f"stack: {top - bottom} bytes between .bss and the top of RAM; peak use {top - (bottom + low)} bytes")
PY
