#!/bin/sh
# Makes the FIT test images in this directory with Debian's mkimage (u-boot-tools 2023.01),
# dtc, fdtput and openssl; the tests read them (loader/tests/fit.rs). Re-run after changing it:
#   sh loader/tests/data/fit/mkfit.sh
# Payloads: kernel = 70000 bytes of pattern i % 251 under an arm64 Image header, fdt = a small device tree, ramdisk = 5000
# bytes of pattern (i * 7) % 253. Keys are made fresh each run (the FITs and key blobs change
# together).
#   rsa.itb        conf-1 (kernel, fdt, ramdisk) signed sha256,rsa2048 (key dev); conf-2 unsigned
#   pss.itb        the same, padding pss
#   rsa4096.itb    sha512,rsa4096 (key big)
#   ec.itb         sha256,ecdsa256 (key ec)
#   ext.itb        rsa.itb with external data (mkimage -E)
#   evil.itb       rsa.itb's layout signed by another key (evil)
#   partial.itb    sign-images = "kernel" only: the signature leaves fdt and ramdisk out
#   nosig.itb      conf-1's signature node as written, never signed (no value)
#   img.itb        image signatures (each image signed sha256,rsa2048 by dev), no conf signature
#   unit.itb       image and configuration names with unit addresses, signed
#   gz.itb         gzip'd kernel, signed
#   script.itb     a boot script image (script-1) whose configuration is signed
#   keys-rsa.dtb   dev required=conf; keys-big.dtb, keys-ec.dtb (ec made required=conf with
#   fdtput: Debian's mkimage writes none for ECDSA); keys-img.dtb dev required=image;
#   keys-two.dtb   dev and big, both required=conf; keys-any.dtb the same with required-mode any
set -eu
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
python3 - <<'PY'
import struct
k = bytearray(i % 251 for i in range(70000))
# An arm64 Image header (text_offset 0, image_size 0x12000, 4 KiB pages, base anywhere), so
# the boot-flow tests can boot it.
k[0:64] = bytes(64)
k[16:24] = struct.pack("<Q", 0x12000)
k[24:32] = struct.pack("<Q", 0xA)
k[0x38:0x3C] = b"ARM\x64"
open("kernel", "wb").write(bytes(k))
open("ramdisk", "wb").write(bytes((i * 7) % 253 for i in range(5000)))
PY
printf '/dts-v1/;\n/ { compatible = "test"; #address-cells = <2>; #size-cells = <2>; chosen { }; };\n' | dtc -O dtb -o fdt.dtb
gzip -9 -n -c kernel > kernel.gz
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out dev.key 2>/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out evil.key 2>/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:4096 -out big.key 2>/dev/null
# mkimage 2023.01 reads the public key of an RSA key from <name>.crt.
for k in dev evil big; do
  openssl req -batch -new -x509 -key $k.key -out $k.crt -subj "/CN=$k" 2>/dev/null
done
openssl ecparam -name prime256v1 -genkey -noout -out ec.pem
cp ec.pem ec.key
empty() { printf '/dts-v1/;\n/ { signature { }; };\n' | dtc -O dtb -o "$1"; }

# its <algo> <hint> <padding> <sign-images> <kernel file> <compression> <image-sig?> <unit?>
its() {
  algo=$1 hint=$2 pad=$3 images=$4 kfile=$5 comp=$6 imgsig=$7 unit=$8
  k=kernel-1 f=fdt-1 r=ramdisk-1 c=conf-1
  if [ "$unit" = yes ]; then k=kernel@1 f=fdt@1 r=ramdisk@1 c=conf@1; fi
  padline=""
  [ "$pad" = pss ] && padline='padding = "pss";'
  isig=""
  [ "$imgsig" = yes ] && isig="signature-1 { algo = \"$algo\"; key-name-hint = \"$hint\"; };"
  csig="signature-1 { algo = \"$algo\"; key-name-hint = \"$hint\"; sign-images = $images; $padline };"
  [ "$imgsig" = yes ] && csig=""
  cat <<ITS
/dts-v1/;
/ {
  description = "kexboot test FIT";
  #address-cells = <1>;
  images {
    $k { description = "kernel"; data = /incbin/("$kfile"); type = "kernel"; arch = "arm64";
      os = "linux"; compression = "$comp"; load = <0x40480000>; entry = <0x40480000>;
      hash-1 { algo = "sha256"; }; hash-2 { algo = "crc32"; }; $isig };
    $f { description = "fdt"; data = /incbin/("fdt.dtb"); type = "flat_dt"; arch = "arm64";
      compression = "none"; hash-1 { algo = "sha1"; }; $isig };
    $r { description = "ramdisk"; data = /incbin/("ramdisk"); type = "ramdisk"; arch = "arm64";
      os = "linux"; compression = "none"; hash-1 { algo = "sha512"; }; $isig };
  };
  configurations {
    default = "$c";
    $c { description = "signed"; kernel = "$k"; fdt = "$f"; ramdisk = "$r"; $csig };
    conf-2 { description = "unsigned"; kernel = "$k"; };
  };
};
ITS
}
all='"kernel", "fdt", "ramdisk"'
sign() { # out its keys.dtb [extra mkimage flags]
  out=$1 src=$2 keys=$3; shift 3
  mkimage -q "$@" -f "$src" -k . -K "$keys" -r "$out" >/dev/null
}
its sha256,rsa2048 dev pkcs "$all" kernel none no no > rsa.its
empty keys-rsa.dtb; sign rsa.itb rsa.its keys-rsa.dtb
its sha256,rsa2048 dev pss "$all" kernel none no no > pss.its
empty k.dtb; sign pss.itb pss.its k.dtb
empty k.dtb; sign ext.itb rsa.its k.dtb -E
its sha512,rsa4096 big pkcs "$all" kernel none no no > big.its
empty keys-big.dtb; sign rsa4096.itb big.its keys-big.dtb
its sha256,ecdsa256 ec pkcs "$all" kernel none no no > ec.its
empty keys-ec.dtb; sign ec.itb ec.its keys-ec.dtb
fdtput -t s keys-ec.dtb /signature/ec required conf
its sha256,rsa2048 evil pkcs "$all" kernel none no no > evil.its
empty k.dtb; sign evil.itb evil.its k.dtb
its sha256,rsa2048 dev pkcs '"kernel"' kernel none no no > partial.its
empty k.dtb; sign partial.itb partial.its k.dtb
mkimage -q -f rsa.its nosig.itb >/dev/null
its sha256,rsa2048 dev pkcs "$all" kernel none yes no > img.its
empty keys-img.dtb; sign img.itb img.its keys-img.dtb
fdtput -t s keys-img.dtb /signature/key-dev required image
its sha256,rsa2048 dev pkcs "$all" kernel none no yes > unit.its
empty k.dtb; sign unit.itb unit.its k.dtb
its sha256,rsa2048 dev pkcs "$all" kernel.gz gzip no no > gz.its
empty k.dtb; sign gz.itb gz.its k.dtb
# A boot script inside a FIT, its configuration signed.
printf 'setenv fitscript ran\necho script from a signed FIT\n' > script.txt
cat > script.its <<ITS
/dts-v1/;
/ {
  description = "kexboot test script FIT";
  #address-cells = <1>;
  images {
    script-1 { description = "boot script"; data = /incbin/("script.txt"); type = "script";
      compression = "none"; hash-1 { algo = "sha256"; }; };
  };
  configurations {
    default = "conf-1";
    conf-1 { description = "script"; script = "script-1";
      signature-1 { algo = "sha256,rsa2048"; key-name-hint = "dev"; sign-images = "script"; }; };
  };
};
ITS
empty k.dtb; sign script.itb script.its k.dtb
# Two required keys: dev and big (rsa.itb carries only dev's signature).
cp keys-rsa.dtb keys-two.dtb
sign big2.itb big.its keys-two.dtb
cp keys-two.dtb keys-any.dtb
fdtput -t s keys-any.dtb /signature required-mode any
cp kernel ramdisk fdt.dtb kernel.gz script.txt "$here"/
cp ./*.itb keys-*.dtb "$here"/
rm -f "$here"/big2.itb
echo "made $(ls "$here" | wc -l) files in $here"
