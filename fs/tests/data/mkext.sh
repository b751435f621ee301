#!/bin/sh
# Makes the ext2/3/4 test images in this directory (checked in gzip'd; the tests read them).
# Needs mke2fs and e2fsck (e2fsprogs) and python3. Re-run after changing it:
#   sh fs/tests/data/mkext.sh
# The tree, the same in every image:
#   /boot/vmlinuz-6.1.0-test   pattern(i) = i % 251, 300000 bytes (contiguous)
#   /boot/vmlinuz              -> vmlinuz-6.1.0-test          (relative symlink)
#   /vmlinuz                   -> /boot/vmlinuz-6.1.0-test    (absolute symlink)
#   /boot/initrd.img           -> ../boot/./initrd.img-6.1.0-test
#   /boot/initrd.img-6.1.0-test 70000 bytes of pattern
#   /loop_a -> loop_b, /loop_b -> loop_a                     (a symlink loop)
#   /dangling -> /nowhere
#   /sparse                    10 chunks of 4096 pattern bytes, each followed by a 60 KiB hole
#                              (10 extents: an extent tree of depth 1 on ext4)
#   /extlinux/extlinux.conf    a short text
#   /big/fileNNN-...           300 files (the directory is htree-indexed by e2fsck -D)
#   /empty                     an empty file
set -eu
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export E2FSPROGS_FAKE_TIME=1700000000
tree="$tmp/tree"
mkdir -p "$tree/boot" "$tree/extlinux" "$tree/big"
python3 - "$tree" <<'PY'
import os, sys
t = sys.argv[1]
def pat(n, start=0):
    return bytes((i % 251) for i in range(start, start + n))
open(f"{t}/boot/vmlinuz-6.1.0-test", "wb").write(pat(300000))
open(f"{t}/boot/initrd.img-6.1.0-test", "wb").write(pat(70000))
with open(f"{t}/sparse", "wb") as f:
    for k in range(10):
        f.seek(k * 65536)
        f.write(pat(4096, k * 65536))
open(f"{t}/extlinux/extlinux.conf", "w").write("default linux\nlabel linux\n  kernel /boot/vmlinuz\n")
for i in range(300):
    open(f"{t}/big/file{i:03}-with-a-long-name-to-fill-blocks", "w").write(f"{i}\n")
open(f"{t}/empty", "wb").close()
PY
ln -s vmlinuz-6.1.0-test "$tree/boot/vmlinuz"
ln -s /boot/vmlinuz-6.1.0-test "$tree/vmlinuz"
ln -s ../boot/./initrd.img-6.1.0-test "$tree/boot/initrd.img"
ln -s loop_b "$tree/loop_a"
ln -s loop_a "$tree/loop_b"
ln -s /nowhere "$tree/dangling"

mk() { # name size mke2fs-args...
    name=$1 size=$2
    shift 2
    img="$tmp/$name.img"
    rm -f "$img"
    mke2fs -q -F -U 6b657862-6f6f-7465-7874-340000000001 -E hash_seed=6b657862-6f6f-7465-7874-340000000002 \
        -L kexboot -d "$tree" "$@" "$img" "$size" >/dev/null
    e2fsck -fyD "$img" >/dev/null 2>&1 || [ $? -le 1 ]
    e2fsck -fn "$img" >/dev/null
    gzip -9n < "$img" > "$here/$name.img.gz"
}
mk ext4 4M -t ext4                                   # metadata_csum, 64bit, extents, flex_bg
mk ext4-nocsum 4M -t ext4 -O ^metadata_csum,^64bit   # extents, no checksums, 32-bit
mk ext3 4M -t ext3 -b 1024                           # journal, block maps
mk ext2 4M -t ext2 -b 1024                           # block maps with double indirection
