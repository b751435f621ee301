//! Test helpers: FAT images built with the third-party `fatfs` writer, and raw BPB/FAT access
//! for corrupting them.
#![allow(dead_code)]
use std::io::{Cursor, Write};

pub use fatfs::FatType as WFatType;

/// Deterministic pseudo-random bytes (xorshift64*).
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

/// A freshly formatted volume of `size` bytes.
pub fn format(fat: WFatType, size: usize, cluster: Option<u32>) -> Vec<u8> {
    let mut img = vec![0u8; size];
    let mut opts = fatfs::FormatVolumeOptions::new()
        .fat_type(fat)
        .volume_label(*b"KEXBOOT    ");
    if let Some(c) = cluster {
        opts = opts.bytes_per_cluster(c);
    }
    fatfs::format_volume(Cursor::new(&mut img[..]), opts).expect("format");
    img
}

/// Files (path, contents) written into a volume.
pub type Files = Vec<(String, Vec<u8>)>;

pub const CONF: &[u8] = b"default linux\nlabel linux\n  kernel /Image\n  append console=ttyAMA0\n";
pub const BIG: &str = "/big-contiguous-kernel-Image.bin";
pub const BIG_LEN: usize = 300 * 1024 + 100;

/// Writes the standard tree: nested dirs, long and Unicode names, an empty file, a large
/// contiguous file, two interleaved (fragmented) files and a directory spanning several clusters.
pub fn populate(img: &mut [u8]) -> Files {
    let fs = fatfs::FileSystem::new(Cursor::new(img), fatfs::FsOptions::new()).expect("mount");
    let cluster = fs.cluster_size() as usize;
    let root = fs.root_dir();
    let mut files = Files::new();
    let mut put = |path: &str, data: Vec<u8>| {
        let mut f = root.create_file(path).expect("create");
        f.write_all(&data).expect("write");
        files.push((format!("/{path}"), data));
    };
    root.create_dir("boot").unwrap();
    root.create_dir("boot/extlinux").unwrap();
    put("boot/extlinux/extlinux.conf", CONF.to_vec());
    put("hello.txt", b"hello, world\n".to_vec());
    put("EMPTY", Vec::new());
    put("Ünïcødé file name — ok.txt", pattern(2, 777));
    put(&BIG[1..], pattern(1, BIG_LEN));
    root.create_dir("many").unwrap();
    for i in 0..70 {
        put(
            &format!("many/a rather long file name number {i:03}.txt"),
            pattern(100 + i, i as usize * 13),
        );
    }
    // Two files written chunk by chunk in turns, so their clusters interleave.
    let (a, b) = (pattern(3, cluster * 9 + 5), pattern(4, cluster * 7 + 300));
    {
        let mut fa = root.create_file("frag-a.bin").unwrap();
        let mut fb = root.create_file("frag-b.bin").unwrap();
        for i in 0..10 {
            let ca = a.chunks(cluster).nth(i).unwrap_or(&[]);
            let cb = b.chunks(cluster).nth(i).unwrap_or(&[]);
            fa.write_all(ca).unwrap();
            fb.write_all(cb).unwrap();
        }
    }
    files.push(("/frag-a.bin".into(), a));
    files.push(("/frag-b.bin".into(), b));
    drop(root);
    fs.unmount().expect("unmount");
    files
}

/// The BPB fields the corruption tests need.
pub struct Bpb {
    pub bps: usize,
    pub spc: usize,
    pub reserved: usize,
    pub nfats: usize,
    pub fatsz: usize,
    pub root_entries: usize,
}

impl Bpb {
    pub fn read(img: &[u8]) -> Bpb {
        let u16at = |o: usize| u16::from_le_bytes([img[o], img[o + 1]]) as usize;
        let fatsz = match u16at(22) {
            0 => u32::from_le_bytes(img[36..40].try_into().unwrap()) as usize,
            n => n,
        };
        Bpb {
            bps: u16at(11),
            spc: img[13] as usize,
            reserved: u16at(14),
            nfats: img[16] as usize,
            fatsz,
            root_entries: u16at(17),
        }
    }
    pub fn cluster_bytes(&self) -> usize {
        self.bps * self.spc
    }
    /// Byte offset of the FAT12/16 root directory.
    pub fn root_dir(&self) -> usize {
        (self.reserved + self.nfats * self.fatsz) * self.bps
    }
    /// Byte offset of cluster `c` (FAT12/16).
    pub fn cluster(&self, c: usize) -> usize {
        self.root_dir() + self.root_entries * 32 + (c - 2) * self.cluster_bytes()
    }
    /// Sets FAT16 entry `c` to `v` in every FAT copy.
    pub fn set_fat16(&self, img: &mut [u8], c: usize, v: u16) {
        for n in 0..self.nfats {
            let off = (self.reserved + n * self.fatsz) * self.bps + 2 * c;
            img[off..off + 2].copy_from_slice(&v.to_le_bytes());
        }
    }
    pub fn fat16(&self, img: &[u8], c: usize) -> u16 {
        let off = self.reserved * self.bps + 2 * c;
        u16::from_le_bytes([img[off], img[off + 1]])
    }
}

/// Byte offset of the 32-byte entry with 8.3 name `short` (11 bytes) in `dir`.
pub fn find_entry(img: &[u8], dir: usize, len: usize, short: &[u8; 11]) -> usize {
    (dir..dir + len)
        .step_by(32)
        .find(|&o| &img[o..o + 11] == short)
        .expect("entry")
}

pub fn entry_cluster(img: &[u8], entry: usize) -> usize {
    u16::from_le_bytes([img[entry + 26], img[entry + 27]]) as usize
}
