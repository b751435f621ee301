//! FIT images (U-Boot's Flattened Image Tree, `.itb`, as `mkimage -f` writes them): a device
//! tree whose `/images` hold the kernel, device trees, ramdisk and scripts (embedded `data`, or
//! external data after the tree: `data-offset`/`data-position` + `data-size`), with hashes, and
//! whose `/configurations` say which images boot together. [`open`] picks a configuration,
//! checks its signatures against the trusted keys ([`sig`]), checks every image it uses (bounds,
//! hashes, image signatures) and only then hands out where each image's bytes are.
//!
//! The tree is walked once by [`crate::dt::walk`] (bounded, depth at most 32) into a flat node
//! list. Lookups are by exact name: a unit address never aliases a node (`kernel@1` is not
//! `kernel`, CVE-2021-27138), two siblings of one name are refused, and with signatures
//! required a unit address in an image or configuration name is refused outright, as U-Boot
//! does.

mod sha256;
pub mod sig;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

use crate::dt::{self, Token};

pub use sig::{KeyUse, Keys};

/// Most nodes a FIT may have (mkimage writes a few dozen).
const MAX_NODES: usize = 1024;
/// Most properties a FIT may have.
const MAX_PROPS: usize = 8192;
/// Longest node path (U-Boot's `fdt_find_regions` path buffer is 200 bytes).
const MAX_PATH: usize = 256;
/// Most structure tokens kept (nodes twice, properties, NOPs).
const MAX_TOKENS: usize = 2 * MAX_NODES + MAX_PROPS + 1024;
/// Most strings in one string-list property (`hashed-nodes` holds at most 100 paths).
const MAX_LIST: usize = 128;

/// No trusted keys: nothing is required (FIT hashes are still checked).
pub static NO_KEYS: Keys = Keys {
    keys: Vec::new(),
    any: false,
    broken: false,
};

/// Whether `bytes` start like a FIT (or any device tree): the FDT magic. A kernel Image, gzip,
/// lz4 or zstd stream never does.
pub fn is_fit(bytes: &[u8]) -> bool {
    bytes.get(..4) == Some(&[0xd0, 0x0d, 0xfe, 0xed][..])
}

/// Why a FIT was refused. Each names the node and what failed.
#[derive(Debug, PartialEq, Eq)]
pub enum FitError {
    /// The tree itself is malformed (the device-tree checker's words).
    Tree(crate::Error),
    /// The FIT's shape is wrong: `what`.
    Layout(String),
    /// No configuration of that name (or no `default`, or none at all).
    NoConfig(String),
    /// Image `image` is unusable: `what`.
    Image { image: String, what: String },
    /// Hash node `hash` of image `image` does not match the data (`algo`).
    HashMismatch {
        image: String,
        hash: String,
        algo: String,
    },
    /// The configuration's signatures do not satisfy the required keys: `what`.
    ConfigSignature { conf: String, what: String },
    /// Image `image` has no signature a required image key verifies: `what`.
    ImageSignature { image: String, what: String },
    /// The trusted-keys blob is unusable: `what`.
    Keys(String),
}

impl fmt::Display for FitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FitError::Tree(e) => write!(f, "FIT: {e}"),
            FitError::Layout(w) => write!(f, "FIT: {w}"),
            FitError::NoConfig(w) => write!(f, "FIT: {w}"),
            FitError::Image { image, what } => write!(f, "FIT image '{image}': {what}"),
            FitError::HashMismatch { image, hash, algo } => write!(
                f,
                "FIT image '{image}': {algo} hash mismatch ({hash}): the data is not what was \
                 hashed"
            ),
            FitError::ConfigSignature { conf, what } => {
                write!(
                    f,
                    "FIT configuration '{conf}': signature check failed: {what}"
                )
            }
            FitError::ImageSignature { image, what } => {
                write!(f, "FIT image '{image}': signature check failed: {what}")
            }
            FitError::Keys(w) => write!(f, "verified-boot keys: {w}"),
        }
    }
}

fn layout(what: impl Into<String>) -> FitError {
    FitError::Layout(what.into())
}

/// One node of the tree.
#[derive(Debug)]
pub struct Node<'a> {
    pub name: &'a str,
    pub path: String,
    pub parent: Option<usize>,
    /// Properties: name and where the value is in the blob.
    pub props: Vec<(&'a str, Range<usize>)>,
    pub children: Vec<usize>,
    /// Where its `FDT_BEGIN_NODE` token is, and the offset just past its `FDT_END_NODE`.
    pub begin: usize,
    pub end: usize,
}

/// What a structure token was, for the signature's region walk.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Tok<'a> {
    Begin(usize),
    End,
    Prop(&'a str),
    Nop,
    Finish,
}

/// A device tree read into nodes, with its tokens in order (the FIT itself, or the keys blob).
pub(crate) struct Tree<'a> {
    pub blob: &'a [u8],
    pub total: usize,
    pub strings: Range<usize>,
    pub nodes: Vec<Node<'a>>,
    /// (offset, next offset, token), offsets in the blob.
    pub toks: Vec<(usize, usize, Tok<'a>)>,
}

impl<'a> Tree<'a> {
    /// Reads the tree at the start of `blob` (which may run on past `totalsize`: a FIT's
    /// external data).
    pub fn parse(blob: &'a [u8]) -> Result<Tree<'a>, FitError> {
        let (header, st, strings) = dt::blocks(blob).map_err(FitError::Tree)?;
        let mut nodes: Vec<Node<'a>> = Vec::new();
        let mut toks = Vec::new();
        let mut stack: Vec<usize> = Vec::new();
        let mut nprops = 0usize;
        let end = dt::walk(blob, st.clone(), strings.clone(), &mut |pos, next, t| {
            let tok = match t {
                Token::Begin(name) => {
                    if nodes.len() >= MAX_NODES {
                        return Err(crate::Error::BadDtb {
                            offset: pos,
                            what: "too many nodes for a FIT",
                        });
                    }
                    let parent = stack.last().copied();
                    // A name that is empty (but the root's) or has a '/' would make a path
                    // that names another node.
                    if parent.is_some() && (name.is_empty() || name.contains('/')) {
                        return Err(crate::Error::BadDtb {
                            offset: pos,
                            what: "node name empty or with a '/'",
                        });
                    }
                    let path = match parent {
                        None => String::from("/"),
                        Some(p) if nodes[p].parent.is_none() => alloc::format!("/{name}"),
                        Some(p) => alloc::format!("{}/{name}", nodes[p].path),
                    };
                    if path.len() > MAX_PATH {
                        return Err(crate::Error::BadDtb {
                            offset: pos,
                            what: "node path too long",
                        });
                    }
                    let idx = nodes.len();
                    if let Some(p) = parent {
                        if nodes[p].children.iter().any(|&c| nodes[c].name == name) {
                            return Err(crate::Error::BadDtb {
                                offset: pos,
                                what: "two sibling nodes of the same name",
                            });
                        }
                        nodes[p].children.push(idx);
                    }
                    nodes.push(Node {
                        name,
                        path,
                        parent,
                        props: Vec::new(),
                        children: Vec::new(),
                        begin: pos,
                        end: pos,
                    });
                    stack.push(idx);
                    Tok::Begin(idx)
                }
                Token::End => {
                    if let Some(n) = stack.pop() {
                        nodes[n].end = next;
                    }
                    Tok::End
                }
                Token::Prop(name, value) => {
                    nprops += 1;
                    if nprops > MAX_PROPS {
                        return Err(crate::Error::BadDtb {
                            offset: pos,
                            what: "too many properties for a FIT",
                        });
                    }
                    let node = *stack.last().ok_or(crate::Error::BadDtb {
                        offset: pos,
                        what: "property outside a node",
                    })?;
                    if nodes[node].props.iter().any(|(n, _)| *n == name) {
                        return Err(crate::Error::BadDtb {
                            offset: pos,
                            what: "a property twice in one node",
                        });
                    }
                    nodes[node].props.push((name, value));
                    Tok::Prop(name)
                }
                Token::Nop => Tok::Nop,
                Token::Finish => Tok::Finish,
            };
            if toks.len() >= MAX_TOKENS {
                return Err(crate::Error::BadDtb {
                    offset: pos,
                    what: "too many tokens for a FIT",
                });
            }
            toks.push((pos, next, tok));
            Ok(())
        })
        .map_err(FitError::Tree)?;
        // libfdt's region finder wants FDT_END to close the structure block exactly.
        if end != st.end {
            return Err(layout("structure block does not end at FDT_END"));
        }
        Ok(Tree {
            blob,
            total: header.total_size(),
            strings,
            nodes,
            toks,
        })
    }

    pub fn child(&self, node: usize, name: &str) -> Option<usize> {
        self.nodes[node]
            .children
            .iter()
            .copied()
            .find(|&c| self.nodes[c].name == name)
    }

    pub fn prop(&self, node: usize, name: &str) -> Option<&'a [u8]> {
        let blob = self.blob;
        self.nodes[node]
            .props
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, r)| blob.get(r.clone()))
    }

    /// The first string of a string (list) property.
    pub fn str_prop(&self, node: usize, name: &str) -> Option<&'a str> {
        let v = self.prop(node, name)?;
        let s = v.split(|&b| b == 0).next()?;
        core::str::from_utf8(s).ok()
    }

    /// Every string of a string-list property; `None` when it is not one, or holds more than
    /// [`MAX_LIST`] strings (a megabyte of NULs must not become millions of slices).
    pub fn str_list(&self, node: usize, name: &str) -> Option<Vec<&'a str>> {
        let v = self.prop(node, name)?;
        let v = v.strip_suffix(&[0])?;
        if v.iter().filter(|&&b| b == 0).count() >= MAX_LIST {
            return None;
        }
        v.split(|&b| b == 0)
            .map(|s| core::str::from_utf8(s).ok())
            .collect()
    }

    pub fn u32_prop(&self, node: usize, name: &str) -> Option<u32> {
        let v = self.prop(node, name)?;
        Some(u32::from_be_bytes(v.try_into().ok()?))
    }

    /// A 1- or 2-cell number (FIT `load`/`entry` addresses).
    pub fn addr_prop(&self, node: usize, name: &str) -> Option<u64> {
        let v = self.prop(node, name)?;
        match v.len() {
            4 => Some(u64::from(u32::from_be_bytes(v.try_into().ok()?))),
            8 => Some(u64::from_be_bytes(v.try_into().ok()?)),
            _ => None,
        }
    }
}

/// How an image's data is compressed (`compression`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Lz4,
    Zstd,
}

/// One image of the configuration being booted, checked: its bytes are `fit[data]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The node's name under `/images`.
    pub name: String,
    /// `type` (kernel, flat_dt, ramdisk, script).
    pub kind: String,
    pub compression: Compression,
    /// Where the image's bytes are, in the FIT buffer.
    pub data: Range<usize>,
    /// `load` and `entry`: hints only; an arm64 Image goes where its header allows.
    pub load: Option<u64>,
    pub entry: Option<u64>,
    /// The hash nodes that matched (`hash-1 sha256`).
    pub hashes: Vec<String>,
}

/// What [`open`] found good: the configuration and its images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub conf: String,
    pub kernel: Option<Part>,
    pub fdt: Option<Part>,
    pub ramdisk: Option<Part>,
    pub script: Option<Part>,
    /// How the configuration was verified (`signature-1 sha256,rsa2048 key 'dev'`), or `None`
    /// when no key required it.
    pub verified: Option<String>,
    /// What each check took, in order: the configuration signature, then each image's
    /// hashes (and signatures), by the clock [`open_timed`] was given.
    pub times: Vec<Timing>,
}

/// One check of [`open_timed`]: what (`signature` or an image's name), over how many bytes,
/// in how many microseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    pub what: String,
    pub bytes: usize,
    pub us: u64,
}

/// Every node of the device tree in `buf` (a FIT or a keys blob), in tree order, read as the
/// FIT reader reads it: for listings and tests.
pub fn nodes(buf: &[u8]) -> Result<Vec<Node<'_>>, FitError> {
    Tree::parse(buf).map(|t| t.nodes)
}

/// A parsed FIT over its buffer (the file as read: the tree, then any external data).
pub struct Fit<'a> {
    pub(crate) tree: Tree<'a>,
    images: usize,
    confs: Option<usize>,
}

impl<'a> Fit<'a> {
    pub fn parse(buf: &'a [u8]) -> Result<Fit<'a>, FitError> {
        if !is_fit(buf) {
            return Err(layout("not a FIT image (no device-tree magic)"));
        }
        let tree = Tree::parse(buf)?;
        let images = tree
            .child(0, "images")
            .ok_or_else(|| layout("no /images node"))?;
        let confs = tree.child(0, "configurations");
        Ok(Fit {
            tree,
            images,
            confs,
        })
    }

    /// Every node, in tree order (the root first): for listings and tests.
    pub fn nodes(&self) -> &[Node<'a>] {
        &self.tree.nodes
    }

    /// The FIT's `description`.
    pub fn description(&self) -> Option<&'a str> {
        self.tree.str_prop(0, "description")
    }

    /// The configuration `name`, or the `default` one: its node.
    fn config(&self, name: Option<&str>) -> Result<(usize, String), FitError> {
        let confs = self
            .confs
            .ok_or_else(|| FitError::NoConfig("no /configurations node".into()))?;
        let name = match name {
            Some(n) => n,
            None => self.tree.str_prop(confs, "default").ok_or_else(|| {
                FitError::NoConfig("no configuration named and no default".into())
            })?,
        };
        let node = self
            .tree
            .child(confs, name)
            .ok_or_else(|| FitError::NoConfig(alloc::format!("no configuration '{name}'")))?;
        Ok((node, name.into()))
    }

    /// The image node the configuration's property `prop` names (its first string).
    fn conf_image(&self, conf: usize, prop: &str) -> Result<Option<usize>, FitError> {
        let Some(list) = self.tree.str_list(conf, prop) else {
            if self.tree.prop(conf, prop).is_some() {
                return Err(layout(alloc::format!(
                    "configuration property '{prop}' is not a string list"
                )));
            }
            return Ok(None);
        };
        let Some(first) = list.first() else {
            return Ok(None);
        };
        if list.len() > 1 && prop != "loadables" {
            return Err(FitError::Image {
                image: (*first).into(),
                what: alloc::format!(
                    "'{prop}' names {} images; kexboot boots one (device-tree overlays from a \
                     FIT are not supported)",
                    list.len()
                ),
            });
        }
        self.tree
            .child(self.images, first)
            .map(Some)
            .ok_or_else(|| FitError::Image {
                image: (*first).into(),
                what: alloc::format!("named by '{prop}' but there is no /images/{first}"),
            })
    }

    /// Where image `node`'s data is: embedded `data`, or `data-size` bytes at `data-position`
    /// (from the FIT's start) or `data-offset` (from the end of the tree, 4-byte aligned).
    /// External data must lie in the buffer and outside the tree.
    fn data(&self, node: usize) -> Result<Range<usize>, FitError> {
        let t = &self.tree;
        let name = t.nodes[node].name;
        let err = |what: String| FitError::Image {
            image: name.into(),
            what,
        };
        let off = t.u32_prop(node, "data-offset");
        let pos = t.u32_prop(node, "data-position");
        let size = t.u32_prop(node, "data-size");
        let embedded = t.nodes[node].props.iter().find(|(n, _)| *n == "data");
        match (embedded, off, pos, size) {
            (Some((_, r)), None, None, _) => Ok(r.clone()),
            (Some(_), _, _, _) => Err(err("both embedded 'data' and external data".into())),
            (None, Some(_), Some(_), _) => Err(err("both data-offset and data-position".into())),
            (None, None, None, _) => Err(err("no data".into())),
            (None, o, p, size) => {
                let size = size.ok_or_else(|| err("external data without data-size".into()))?;
                let start = match (o, p) {
                    (Some(o), None) => (t.total as u64).div_ceil(4) * 4 + u64::from(o),
                    (None, Some(p)) => u64::from(p),
                    _ => {
                        return Err(err(
                            "external data without data-offset or data-position".into()
                        ))
                    }
                };
                let end = start + u64::from(size);
                if end > t.blob.len() as u64 {
                    return Err(err(alloc::format!(
                        "external data {start:#x}+{size:#x} runs past the end of the FIT ({} bytes)",
                        t.blob.len()
                    )));
                }
                if start < t.total as u64 {
                    return Err(err(alloc::format!(
                        "external data at {start:#x} overlaps the FIT's own tree (0-{:#x})",
                        t.total
                    )));
                }
                Ok(start as usize..end as usize)
            }
        }
    }

    /// Checks every `hash*` subnode of image `node` over `data`; at least one is required
    /// when `need_one`. Returns the checked ones (`hash-1 sha256`).
    fn check_hashes(
        &self,
        node: usize,
        data: &[u8],
        need_one: bool,
    ) -> Result<Vec<String>, FitError> {
        let t = &self.tree;
        let image = t.nodes[node].name;
        let mut done = Vec::new();
        for &h in &t.nodes[node].children {
            let hname = t.nodes[h].name;
            if !hname.starts_with("hash") {
                continue;
            }
            let err = |what: String| FitError::Image {
                image: image.into(),
                what: alloc::format!("{hname}: {what}"),
            };
            let algo = t
                .str_prop(h, "algo")
                .ok_or_else(|| err("no 'algo'".into()))?;
            let value = t.prop(h, "value").ok_or_else(|| err("no 'value'".into()))?;
            let got = sig::Hash::from_name(algo)
                .map(|a| a.digest(&[data]))
                .or_else(|| (algo == "crc32").then(|| crc32fast::hash(data).to_be_bytes().to_vec()))
                .ok_or_else(|| err(alloc::format!("unknown hash algorithm '{algo}'")))?;
            if got.as_slice() != value {
                return Err(FitError::HashMismatch {
                    image: image.into(),
                    hash: hname.into(),
                    algo: algo.into(),
                });
            }
            done.push(alloc::format!("{hname} {algo}"));
        }
        if done.is_empty() && need_one {
            return Err(FitError::Image {
                image: image.into(),
                what: "no hash node: its data is covered by no signature".into(),
            });
        }
        Ok(done)
    }

    /// Image `node` checked as a `kind` image: bounds, compression, hashes.
    fn part(&self, node: usize, want: &[&str], need_hash: bool) -> Result<Part, FitError> {
        let t = &self.tree;
        let name = t.nodes[node].name;
        let err = |what: String| FitError::Image {
            image: name.into(),
            what,
        };
        let kind = t.str_prop(node, "type").unwrap_or("");
        if !want.contains(&kind) {
            return Err(err(alloc::format!(
                "type '{kind}', expected {}",
                want.join(" or ")
            )));
        }
        if let Some(arch) = t.str_prop(node, "arch") {
            if kind.starts_with("kernel") && arch != "arm64" {
                return Err(err(alloc::format!("arch '{arch}', kexboot boots arm64")));
            }
        }
        let compression = match t.str_prop(node, "compression").unwrap_or("none") {
            "none" => Compression::None,
            "gzip" => Compression::Gzip,
            "lz4" => Compression::Lz4,
            "zstd" => Compression::Zstd,
            other => {
                return Err(err(alloc::format!(
                    "compression '{other}' is not supported"
                )))
            }
        };
        let data = self.data(node)?;
        let hashes = self.check_hashes(node, &t.blob[data.clone()], need_hash)?;
        Ok(Part {
            name: name.into(),
            kind: kind.into(),
            compression,
            data,
            load: t.addr_prop(node, "load"),
            entry: t.addr_prop(node, "entry"),
            hashes,
        })
    }
}

/// A unit address in a name that signatures cover: refused, as U-Boot does (libfdt's lookups
/// let `kernel` find `kernel@1`, and the signed regions name exact paths: CVE-2021-27138).
fn no_unit_address(name: &str, what: &str) -> Result<(), FitError> {
    if name.contains('@') {
        return Err(layout(alloc::format!(
            "{what} '{name}' has a unit address ('@'): refused when signatures are required"
        )));
    }
    Ok(())
}

/// Opens the FIT in `buf` for booting configuration `conf` (its `default` when `None`):
/// checks the configuration's signatures when `keys` require them, then every image the
/// configuration uses (kernel, fdt, ramdisk) and, when `want_script`, the script named by
/// `script` (or, for `source <addr>:name`, the image `name` itself when the FIT has no
/// configuration). Nothing of an image is handed out before all of this passed.
pub fn open(buf: &[u8], conf: Option<&str>, keys: &Keys) -> Result<Opened, FitError> {
    open_timed(buf, conf, keys, &|| 0)
}

/// [`open`], timing each check by `now_us` (microseconds).
pub fn open_timed(
    buf: &[u8],
    conf: Option<&str>,
    keys: &Keys,
    now_us: &dyn Fn() -> u64,
) -> Result<Opened, FitError> {
    let fit = Fit::parse(buf)?;
    let required = keys.required();
    let (cnode, cname) = fit.config(conf)?;
    if required {
        no_unit_address(&cname, "configuration")?;
    }
    let mut times = Vec::new();
    let verified = if keys.requires(KeyUse::Conf) {
        let t0 = now_us();
        let how = sig::verify_config(&fit, cnode, &cname, keys)?;
        times.push(Timing {
            what: "signature".into(),
            bytes: 0,
            us: now_us().saturating_sub(t0),
        });
        Some(how)
    } else {
        None
    };
    let mut used: Vec<(String, Range<usize>)> = Vec::new();
    let mut signed_by: Vec<String> = Vec::new();
    let mut take = |prop: &str, kinds: &[&str]| -> Result<Option<Part>, FitError> {
        let Some(node) = fit.conf_image(cnode, prop)? else {
            return Ok(None);
        };
        let name = fit.tree.nodes[node].name;
        if required {
            no_unit_address(name, "image")?;
        }
        // Two images whose bytes overlap: refused (CVE-2021-27097 played on overlapping
        // external data); the same image named twice is fine.
        let data = fit.data(node)?;
        for (other, r) in &used {
            if other != name && r.start < data.end && data.start < r.end {
                return Err(FitError::Image {
                    image: name.into(),
                    what: alloc::format!("its data overlaps image '{other}'"),
                });
            }
        }
        used.push((name.into(), data));
        let t0 = now_us();
        // A configuration signature covers an image's data only through its hash nodes; an
        // image signature covers the data itself.
        let part = fit.part(node, kinds, keys.requires(KeyUse::Conf))?;
        if keys.requires(KeyUse::Image) {
            let by = sig::verify_image(&fit, node, &buf[part.data.clone()], keys)?;
            signed_by = by;
        }
        times.push(Timing {
            what: part.name.clone(),
            bytes: part.data.len(),
            us: now_us().saturating_sub(t0),
        });
        Ok(Some(part))
    };
    let kernel = take("kernel", &["kernel", "kernel_noload"])?;
    let fdt = take("fdt", &["flat_dt"])?;
    let ramdisk = take("ramdisk", &["ramdisk"])?;
    let script = take("script", &["script"])?;
    let verified = match verified {
        // Image keys only: every image this boot uses carried a signature each required image
        // key verified (the choice of configuration itself is not signed, as in U-Boot).
        None if keys.requires(KeyUse::Image) => Some(alloc::format!(
            "every image signed, key{} {}",
            if signed_by.len() == 1 { "" } else { "s" },
            signed_by.join(", ")
        )),
        v => v,
    };
    Ok(Opened {
        conf: cname,
        kernel,
        fdt,
        ramdisk,
        script,
        verified,
        times,
    })
}

/// The script image `name` of the FIT in `buf` (`source <addr>:<name>`), checked: when keys
/// require signatures, a configuration that names it (`script = "<name>"`) must verify, or a
/// required image key must sign the image itself.
pub fn open_script(buf: &[u8], name: Option<&str>, keys: &Keys) -> Result<Part, FitError> {
    let fit = Fit::parse(buf)?;
    let required = keys.required();
    let name = match name {
        Some(n) => String::from(n),
        None => {
            // U-Boot: the default configuration's script, else the first script image.
            let from_conf = fit
                .config(None)
                .ok()
                .and_then(|(c, _)| fit.tree.str_prop(c, "script").map(String::from));
            let first = || {
                fit.tree.nodes[fit.images]
                    .children
                    .iter()
                    .find(|&&c| fit.tree.str_prop(c, "type") == Some("script"))
                    .map(|&c| String::from(fit.tree.nodes[c].name))
            };
            from_conf
                .or_else(first)
                .ok_or_else(|| layout("no script image"))?
        }
    };
    let node = fit
        .tree
        .child(fit.images, &name)
        .ok_or_else(|| FitError::Image {
            image: name.clone(),
            what: "no such image under /images".into(),
        })?;
    if required {
        no_unit_address(&name, "image")?;
    }
    if keys.requires(KeyUse::Conf) {
        // A configuration whose `script` is this image, verified.
        let confs = fit.confs.ok_or_else(|| FitError::ConfigSignature {
            conf: String::new(),
            what: alloc::format!("no configuration names script '{name}'"),
        })?;
        let conf = fit.tree.nodes[confs]
            .children
            .iter()
            .copied()
            .find(|&c| fit.tree.str_prop(c, "script") == Some(name.as_str()))
            .ok_or_else(|| FitError::ConfigSignature {
                conf: String::new(),
                what: alloc::format!("no configuration names script '{name}'"),
            })?;
        let cname = String::from(fit.tree.nodes[conf].name);
        no_unit_address(&cname, "configuration")?;
        sig::verify_config(&fit, conf, &cname, keys)?;
    }
    let part = fit.part(node, &["script"], keys.requires(KeyUse::Conf))?;
    if keys.requires(KeyUse::Image) {
        sig::verify_image(&fit, node, &buf[part.data.clone()], keys)?;
    }
    Ok(part)
}
