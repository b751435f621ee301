#!/bin/sh
# Makes the compressed-kernel fixtures for loader/tests/compress_fixtures.rs with the real
# lz4 (1.9.4) and zstd (1.5.4) command-line tools, as Linux's build and distributions do.
# The pseudo-kernels are deterministic: rerunning this gives the same inputs (the tools' output
# may differ between tool versions; the tests only decompress and compare).
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# kernel: 1 MiB with an arm64 Image header (image_size 2 MiB); big: 9 MiB, mostly zeros, so
# the legacy format needs two 8 MiB blocks.
python3 - "$tmp" <<'PY'
import struct, sys, random
def image(size, image_size, body):
    hdr = bytearray(64)
    hdr[0:4] = b"MZ\x00\x91"                        # code0 (as Linux's EFI stub)
    struct.pack_into("<QQQ", hdr, 8, 0, image_size, 0xa)   # text_offset, image_size, flags
    hdr[0x38:0x3c] = b"ARM\x64"
    return bytes(hdr) + body(size - 64)
rng = random.Random(13)
# Phrases of 16..64 random bytes, drawn from a small set: compresses well (fixtures stay small)
# but still takes real matches and literals to decode.
phrases = [bytes(rng.randrange(256) for _ in range(rng.randrange(16, 64))) for _ in range(48)]
def text(n):
    out = bytearray()
    while len(out) < n:
        out += rng.choice(phrases)
        out += bytes([rng.randrange(256)])
    return bytes(out[:n])
def mostly_zero(n):
    out = bytearray(n)
    for off in range(0, n, 1 << 20):
        out[off:off + 4096] = text(4096)
    return bytes(out)
open(sys.argv[1] + "/kernel", "wb").write(image(1 << 20, 2 << 20, text))
open(sys.argv[1] + "/big", "wb").write(image(9 << 20, 10 << 20, mostly_zero))
PY

size_append() { python3 -c "import os,struct,sys; sys.stdout.buffer.write(struct.pack('<I', os.path.getsize('$1')))"; }

# The tests compare every fixture's output with this length and CRC32.
for f in kernel big; do
    python3 -c "import zlib; d=open('$tmp/'+'$f','rb').read(); print(len(d), '%08x' % zlib.crc32(d))" > $f.crc32
done
# Linux's Image.lz4: legacy format from a pipe, then kbuild's 4-byte size trailer.
{ lz4 -l -9 < "$tmp/kernel"; size_append "$tmp/kernel"; } > kernel.lz4l-sized
# `lz4 -l` as a person runs it: no trailer.
lz4 -q -l -9 -f "$tmp/kernel" kernel.lz4l
lz4 -q -l -f "$tmp/big" big.lz4l
# lz4 frame format: the CLI's default (independent 4 MiB blocks, content checksum) ...
lz4 -q -f "$tmp/kernel" kernel.lz4
# ... and linked 64 KiB blocks with block checksums and the content size.
lz4 -q -B4 -BD -BX --content-size -f "$tmp/kernel" kernel.lz4-linked
# zstd from a file: content size and checksum in the frame header.
zstd -q -19 -f "$tmp/kernel" -o kernel.zst
# Linux's Image.zst: from a pipe, so no content size.
zstd -q -19 < "$tmp/kernel" > kernel.zst-stdin
# Two frames back to back, a skippable frame between them (zstd decodes the concatenation).
head -c 300000 "$tmp/kernel" | zstd -q -3 --no-check > "$tmp/a.zst"
tail -c +300001 "$tmp/kernel" | zstd -q -3 > "$tmp/b.zst"
printf '\120\052\115\030\003\000\000\000abc' > "$tmp/skip"
cat "$tmp/a.zst" "$tmp/skip" "$tmp/b.zst" > kernel.zst-2frames
ls -l
