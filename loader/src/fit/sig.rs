//! FIT signatures as U-Boot's `mkimage -k`/`-K` write them, and the trusted keys.
//!
//! **Keys** come in U-Boot's own format: a device tree whose `/signature` node holds one node
//! per key (`key-<name>` from RSA, `<name>` from Debian 12's mkimage for ECDSA), with
//! `rsa,modulus`, `rsa,exponent`, `rsa,num-bits` (the Montgomery values `rsa,r-squared` and
//! `rsa,n0-inverse` are not needed here) or `ecdsa,curve`/`ecdsa,x-point`/`ecdsa,y-point`, and
//! `algo`, `required` (`conf` or `image`), `key-name-hint`; `/signature/required-mode` may say
//! `any` (one required key suffices) instead of `all`.
//!
//! **Configuration signatures** sign the tree, not the data: the bytes of the structure block
//! that belong to the root, the configuration and every image it names (each with its hash
//! nodes), minus the `data*` properties, plus the strings block up to `hashed-strings`. The node
//! list is computed here from the configuration (as U-Boot does since it stopped trusting the
//! signature's own `hashed-nodes`), and `hashed-nodes` must name exactly those nodes: a
//! signature that covered fewer images than the configuration uses is refused, not trusted for
//! the ones it missed. The regions follow libfdt's `fdt_find_regions` rules (a node listed is
//! included whole; its direct children contribute only their begin and end tokens), so a
//! signature mkimage made verifies byte for byte.
//!
//! **Image signatures** sign one image's data.
//!
//! Verification handles only public values, so it needs no constant-time arithmetic.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::ops::Range;

use rsa::traits::{PublicKeyParts, SignatureScheme};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};

use super::{Fit, FitError, Tree};

/// The properties a configuration signature leaves out (the data, and where it is: a FIT can be
/// re-packed between embedded and external data without re-signing).
const EXCLUDED: [&str; 4] = ["data", "data-size", "data-position", "data-offset"];
/// Most nodes one configuration signature may cover (U-Boot's `IMAGE_MAX_HASHED_NODES`).
const MAX_HASHED_NODES: usize = 100;

/// A digest algorithm of FIT hashes and signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    pub fn from_name(name: &str) -> Option<Hash> {
        Some(match name {
            "sha1" => Hash::Sha1,
            "sha256" => Hash::Sha256,
            "sha384" => Hash::Sha384,
            "sha512" => Hash::Sha512,
            _ => return None,
        })
    }

    /// The digest of `parts` concatenated.
    pub fn digest(self, parts: &[&[u8]]) -> Vec<u8> {
        fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut d = D::new();
            for p in parts {
                d.update(p);
            }
            d.finalize().to_vec()
        }
        match self {
            Hash::Sha1 => run::<Sha1>(parts),
            Hash::Sha256 => super::sha256::digest(parts).to_vec(),
            Hash::Sha384 => run::<Sha384>(parts),
            Hash::Sha512 => run::<Sha512>(parts),
        }
    }
}

/// What a key is required for (`required = "conf"` or `"image"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUse {
    Conf,
    Image,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Curve {
    P256,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Public {
    Rsa {
        modulus: Vec<u8>,
        exponent: u64,
    },
    Ec {
        curve: Curve,
        x: Vec<u8>,
        y: Vec<u8>,
    },
}

/// One trusted public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// The node's name under `/signature`.
    pub name: String,
    /// `algo` (`sha256,rsa2048`), when the key says.
    pub algo: Option<String>,
    pub required: Option<KeyUse>,
    public: Public,
}

impl Key {
    /// `rsa2048`, `ecdsa256`, ...: the crypto half of an `algo` this key can verify.
    fn crypto(&self) -> String {
        match &self.public {
            Public::Rsa { modulus, .. } => alloc::format!("rsa{}", modulus.len() * 8),
            Public::Ec {
                curve: Curve::P256, ..
            } => "ecdsa256".into(),
        }
    }
}

/// The trusted keys built into the firmware.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keys {
    pub keys: Vec<Key>,
    /// `required-mode = "any"`: one required key verifying is enough (else all must).
    pub any: bool,
    /// The key blob could not be read: everything is refused (fail closed).
    pub broken: bool,
}

fn keys_err(what: impl Into<String>) -> FitError {
    FitError::Keys(what.into())
}

/// Bytes of a big-endian number property, leading zero bytes dropped.
fn trim(v: &[u8]) -> &[u8] {
    let z = v.iter().take_while(|&&b| b == 0).count();
    &v[z..]
}

impl Keys {
    /// No keys: nothing is required, FIT hashes are still checked.
    pub fn none() -> Keys {
        Keys::default()
    }

    /// Keys that require a signature nothing can give: a firmware whose key blob is unusable
    /// boots nothing rather than everything.
    pub fn broken() -> Keys {
        Keys {
            broken: true,
            ..Keys::default()
        }
    }

    /// The keys in `dtb` (U-Boot's format, as `mkimage -K` writes it); an empty slice is no
    /// keys. Every key must be usable: a key blob kexboot cannot read is an error, never a
    /// silently weaker policy.
    pub fn parse(dtb: &[u8]) -> Result<Keys, FitError> {
        if dtb.is_empty() {
            return Ok(Keys::none());
        }
        let t = Tree::parse(dtb).map_err(|e| keys_err(e.to_string()))?;
        let Some(sig) = t.child(0, "signature") else {
            return Err(keys_err("no /signature node"));
        };
        let any = match t.str_prop(sig, "required-mode") {
            None | Some("all") => false,
            Some("any") => true,
            Some(m) => return Err(keys_err(alloc::format!("required-mode '{m}'"))),
        };
        let mut keys = Vec::new();
        for &k in &t.nodes[sig].children {
            let name = String::from(t.nodes[k].name);
            let err = |what: &str| keys_err(alloc::format!("key '{name}': {what}"));
            let required = match t.str_prop(k, "required") {
                None => None,
                Some("conf") => Some(KeyUse::Conf),
                Some("image") => Some(KeyUse::Image),
                Some(_) => return Err(err("'required' is neither 'conf' nor 'image'")),
            };
            let public = if let Some(m) = t.prop(k, "rsa,modulus") {
                let modulus = trim(m).to_vec();
                let bits = t
                    .u32_prop(k, "rsa,num-bits")
                    .ok_or_else(|| err("no rsa,num-bits"))?;
                if !matches!(bits, 2048 | 3072 | 4096) || modulus.len() * 8 != bits as usize {
                    return Err(err(
                        "rsa,modulus is not rsa,num-bits long (2048, 3072, 4096)",
                    ));
                }
                let exponent = match t.prop(k, "rsa,exponent") {
                    // U-Boot's default when the property is missing.
                    None => 65537,
                    Some(e) => u64::from_be_bytes(e.try_into().map_err(|_| err("rsa,exponent"))?),
                };
                Public::Rsa { modulus, exponent }
            } else if let Some(c) = t.str_prop(k, "ecdsa,curve") {
                // P-256 only: the one curve Debian 12's mkimage signs with (its ecdsa384
                // is refused), and each curve costs ~40 KiB of firmware.
                let (curve, len) = match c {
                    "prime256v1" => (Curve::P256, 32),
                    _ => return Err(err("ecdsa,curve is not prime256v1 (P-256)")),
                };
                let point = |p| {
                    t.prop(k, p)
                        .filter(|v| v.len() == len)
                        .map(<[u8]>::to_vec)
                        .ok_or_else(|| err("ecdsa point missing or not the curve's size"))
                };
                Public::Ec {
                    curve,
                    x: point("ecdsa,x-point")?,
                    y: point("ecdsa,y-point")?,
                }
            } else {
                return Err(err("neither an RSA nor an ECDSA key"));
            };
            let key = Key {
                name: name.clone(),
                algo: t.str_prop(k, "algo").map(String::from),
                required,
                public,
            };
            // A key that cannot be loaded is found now, not at the first boot.
            check_public(&key).map_err(|e| err(&e))?;
            keys.push(key);
        }
        Ok(Keys {
            keys,
            any,
            broken: false,
        })
    }

    /// Whether any key is required: then only verified FITs boot.
    pub fn required(&self) -> bool {
        self.broken || self.keys.iter().any(|k| k.required.is_some())
    }

    pub fn requires(&self, what: KeyUse) -> bool {
        (self.broken && what == KeyUse::Conf) || self.keys.iter().any(|k| k.required == Some(what))
    }

    /// `2 keys, required: conf` (the line kexboot prints at start).
    pub fn summary(&self) -> String {
        let mut req: Vec<&str> = Vec::new();
        if self.requires(KeyUse::Conf) {
            req.push("conf");
        }
        if self.requires(KeyUse::Image) {
            req.push("image");
        }
        let n = self.keys.len();
        alloc::format!(
            "{n} key{}, required: {}{}",
            if n == 1 { "" } else { "s" },
            if req.is_empty() {
                "none".into()
            } else {
                req.join("+")
            },
            if self.any && self.required() {
                " (any one key)"
            } else {
                ""
            }
        )
    }
}

fn check_public(key: &Key) -> Result<(), String> {
    match &key.public {
        Public::Rsa { modulus, exponent } => rsa_key(modulus, *exponent).map(|_| ()),
        Public::Ec {
            curve: Curve::P256,
            x,
            y,
        } => p256_key(x, y).map(|_| ()),
    }
}

fn rsa_key(modulus: &[u8], exponent: u64) -> Result<rsa::RsaPublicKey, String> {
    let n = rsa::BigUint::from_bytes_be(modulus);
    let e = rsa::BigUint::from(exponent);
    rsa::RsaPublicKey::new_with_max_size(n, e, 4096).map_err(|e| alloc::format!("RSA key: {e}"))
}

fn p256_key(x: &[u8], y: &[u8]) -> Result<p256::ecdsa::VerifyingKey, String> {
    let (Ok(x), Ok(y)) = (<[u8; 32]>::try_from(x), <[u8; 32]>::try_from(y)) else {
        return Err("P-256 point of the wrong size".into());
    };
    let pt = p256::EncodedPoint::from_affine_coordinates(&x.into(), &y.into(), false);
    p256::ecdsa::VerifyingKey::from_encoded_point(&pt)
        .map_err(|_| "P-256 point not on the curve".into())
}

/// Checks signature node `node` of `t` over `parts` with `key`. `Err` says why it does not
/// verify.
fn check_sig(
    t: &Tree,
    node: usize,
    key: &Key,
    digest_of: &mut dyn FnMut(Hash) -> Vec<u8>,
) -> Result<String, String> {
    let algo = t.str_prop(node, "algo").ok_or("no 'algo'")?;
    let (hash_name, crypto) = algo
        .split_once(',')
        .ok_or("'algo' is not '<hash>,<crypto>'")?;
    let hash =
        Hash::from_name(hash_name).ok_or_else(|| alloc::format!("unknown hash '{hash_name}'"))?;
    if let Some(k) = &key.algo {
        if k != algo {
            return Err(alloc::format!(
                "signed as {algo}, but key '{}' is {k}",
                key.name
            ));
        }
    }
    if crypto != key.crypto() {
        return Err(alloc::format!(
            "signed as {algo}, but key '{}' is {}",
            key.name,
            key.crypto()
        ));
    }
    let value = t
        .prop(node, "value")
        .filter(|v| !v.is_empty())
        .ok_or("no signature value")?;
    let padding = t.str_prop(node, "padding").unwrap_or("pkcs-1.5");
    // Every cheap refusal comes before the digest, which the caller computes once per hash
    // algorithm however many signature nodes ask for it.
    let want_len = match &key.public {
        Public::Rsa { modulus, .. } => modulus.len(),
        Public::Ec { .. } => 64,
    };
    if value.len() != want_len {
        return Err(alloc::format!(
            "signature is {} bytes, key '{}' needs {want_len}",
            value.len(),
            key.name
        ));
    }
    if !matches!(padding, "pkcs-1.5" | "pss") {
        return Err(alloc::format!("padding '{padding}' is not pkcs-1.5 or pss"));
    }
    let digest = digest_of(hash);
    match &key.public {
        Public::Rsa { modulus, exponent } => {
            let pk = rsa_key(modulus, *exponent)?;
            let pss = padding == "pss";
            let ok = match hash {
                Hash::Sha1 => rsa_verify::<Sha1>(&pk, pss, &digest, value),
                Hash::Sha256 => rsa_verify::<Sha256>(&pk, pss, &digest, value),
                Hash::Sha384 => rsa_verify::<Sha384>(&pk, pss, &digest, value),
                Hash::Sha512 => rsa_verify::<Sha512>(&pk, pss, &digest, value),
            };
            ok.map_err(|_| String::from("RSA verification failed"))?;
        }
        Public::Ec {
            curve: Curve::P256,
            x,
            y,
        } => {
            use p256::ecdsa::signature::hazmat::PrehashVerifier;
            if padding != "pkcs-1.5" {
                return Err(alloc::format!("padding '{padding}' with ECDSA"));
            }
            let sig = p256::ecdsa::Signature::from_slice(value)
                .map_err(|_| "malformed ECDSA signature")?;
            let ok = p256_key(x, y)?.verify_prehash(&digest, &sig).is_ok();
            if !ok {
                return Err("ECDSA verification failed".into());
            }
        }
    }
    Ok(alloc::format!(
        "{} {algo} key '{}'",
        t.nodes[node].name,
        key.name
    ))
}

fn rsa_verify<D>(pk: &rsa::RsaPublicKey, pss: bool, digest: &[u8], sig: &[u8]) -> rsa::Result<()>
where
    D: Digest
        + rsa::pkcs8::AssociatedOid
        + sha2::digest::FixedOutputReset
        + sha2::digest::DynDigest
        + Clone
        + Send
        + Sync
        + 'static,
{
    if pss {
        // U-Boot's verifier reads the salt length from the encoding. mkimage sets it to the
        // digest's length today; Debian 12's (2023.01) leaves OpenSSL's default, the longest
        // that fits. Both are tried; `rsa` checks one length at a time.
        let h = <D as Digest>::output_size();
        let em_len = (pk.size() * 8 - 1).div_ceil(8);
        let longest = em_len.saturating_sub(h + 2);
        rsa::Pss::new_with_salt::<D>(h)
            .verify(pk, digest, sig)
            .or_else(|_| rsa::Pss::new_with_salt::<D>(longest).verify(pk, digest, sig))
    } else {
        rsa::Pkcs1v15Sign::new::<D>().verify(pk, digest, sig)
    }
}

/// At most this many `signature*` nodes are tried per configuration or image (mkimage writes
/// one per key): each may cost a digest of the whole image.
const MAX_SIG_NODES: usize = 8;

/// The `signature*` children of `node`, at most [`MAX_SIG_NODES`].
fn sig_nodes(t: &Tree, node: usize) -> Result<Vec<usize>, String> {
    let sigs: Vec<usize> = t.nodes[node]
        .children
        .iter()
        .copied()
        .filter(|&c| t.nodes[c].name.starts_with("signature"))
        .collect();
    match sigs.len() {
        0 => Err("no signature node".into()),
        n if n > MAX_SIG_NODES => Err(alloc::format!(
            "{n} signature nodes, more than the {MAX_SIG_NODES} kexboot tries"
        )),
        _ => Ok(sigs),
    }
}

/// Digests of `parts` by algorithm, each computed once.
struct Digests<'p> {
    parts: &'p [&'p [u8]],
    done: Vec<(Hash, Vec<u8>)>,
}

impl<'p> Digests<'p> {
    fn new(parts: &'p [&'p [u8]]) -> Self {
        Digests {
            parts,
            done: Vec::new(),
        }
    }

    fn get(&mut self, h: Hash) -> Vec<u8> {
        if let Some((_, d)) = self.done.iter().find(|(x, _)| *x == h) {
            return d.clone();
        }
        let d = h.digest(self.parts);
        self.done.push((h, d.clone()));
        d
    }
}

/// The nodes a signature of configuration `conf` must cover, as U-Boot computes them: the
/// root, the configuration, and every image its properties name (all but `description`,
/// `compatible`, `default`) with the image's hash nodes and its cipher and dm-verity nodes.
fn signed_nodes(fit: &Fit, conf: usize) -> Result<Vec<String>, String> {
    let t = &fit.tree;
    let mut out = alloc::vec![String::from("/"), t.nodes[conf].path.clone()];
    let mut images = 0;
    for (prop, _) in &t.nodes[conf].props {
        if matches!(*prop, "description" | "compatible" | "default") {
            continue;
        }
        for name in t.str_list(conf, prop).unwrap_or_default() {
            let Some(img) = t.child(fit.images, name) else {
                continue;
            };
            images += 1;
            let node = &t.nodes[img];
            out.push(node.path.clone());
            let mut hashes = 0;
            for &c in &node.children {
                let cn = t.nodes[c].name;
                if cn.starts_with("hash") {
                    hashes += 1;
                    out.push(t.nodes[c].path.clone());
                }
            }
            if hashes == 0 {
                return Err(alloc::format!("image '{}' has no hash node", node.name));
            }
            for sub in ["cipher", "dm-verity"] {
                if let Some(c) = t.child(img, sub) {
                    out.push(t.nodes[c].path.clone());
                }
            }
            if out.len() > MAX_HASHED_NODES {
                return Err("too many nodes to hash".into());
            }
        }
    }
    if images == 0 {
        return Err("names no image".into());
    }
    Ok(out)
}

/// The regions of `t` a configuration signature over the nodes `inc` hashes (offsets in the
/// blob), the structure block's part: libfdt's `fdt_find_regions` rules. A node in `inc` is
/// included with its properties (but not [`EXCLUDED`] ones) and its subtree's tokens down one
/// level: a direct child of an included node contributes its begin and end tokens only; deeper
/// nodes nothing. Adjacent pieces merge; the final `FDT_END` is always included.
pub(crate) fn regions(t: &Tree, inc: &[String]) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    let mut want = 0u8;
    let mut stack: Vec<u8> = Vec::new();
    let mut start: Option<usize> = None;
    for &(pos, next, tok) in &t.toks {
        let mut stop_at = next;
        let include = match tok {
            super::Tok::Prop(name) => {
                stop_at = pos;
                want >= 2 && !EXCLUDED.contains(&name)
            }
            super::Tok::Nop => {
                stop_at = pos;
                want >= 2
            }
            super::Tok::Begin(n) => {
                stack.push(want);
                if inc.iter().any(|p| *p == t.nodes[n].path) {
                    want = 2;
                } else {
                    want = want.saturating_sub(1);
                }
                if want == 0 {
                    stop_at = pos;
                }
                want > 0
            }
            super::Tok::End => {
                let inc = want > 0;
                want = stack.pop().unwrap_or(0);
                inc
            }
            super::Tok::Finish => true,
        };
        if include && start.is_none() {
            start = match out.last() {
                Some(last) if last.end == pos => out.pop().map(|r| r.start),
                _ => Some(pos),
            };
        }
        if !include {
            if let Some(s) = start.take() {
                out.push(s..stop_at);
            }
        }
        if matches!(tok, super::Tok::Finish) {
            if let Some(s) = start.take() {
                out.push(s..next);
            }
        }
    }
    out
}

/// Checks that `hashed-nodes` of signature node `sig`, when present, names exactly `nodes`.
fn check_hashed_nodes(t: &Tree, sig: usize, nodes: &[String]) -> Result<(), String> {
    let Some(list) = t.str_list(sig, "hashed-nodes") else {
        if t.prop(sig, "hashed-nodes").is_some() {
            return Err("hashed-nodes is not a string list".into());
        }
        return Ok(());
    };
    for (i, p) in list.iter().enumerate() {
        if list[..i].contains(p) {
            return Err(alloc::format!("hashed-nodes names '{p}' twice"));
        }
        if !nodes.iter().any(|n| n == p) {
            return Err(alloc::format!(
                "hashed-nodes names '{p}', which this configuration does not use (or which does not exist)"
            ));
        }
    }
    if let Some(missing) = nodes.iter().find(|n| !list.contains(&n.as_str())) {
        return Err(alloc::format!(
            "the signature does not cover '{missing}' (hashed-nodes; sign-images must name every image the configuration uses)"
        ));
    }
    Ok(())
}

/// Verifies configuration `conf` (named `cname`) of `fit` against the required `conf` keys:
/// each (or, with `required-mode = "any"`, one) must verify one of its `signature*` nodes.
/// Returns how it verified.
pub(crate) fn verify_config(
    fit: &Fit,
    conf: usize,
    cname: &str,
    keys: &Keys,
) -> Result<String, FitError> {
    let t = &fit.tree;
    let fail = |what: String| FitError::ConfigSignature {
        conf: cname.into(),
        what,
    };
    let nodes = signed_nodes(fit, conf).map_err(fail)?;
    let sigs = sig_nodes(t, conf).map_err(fail)?;
    let struct_regions = regions(t, &nodes);
    // Digests by (hashed-strings length, algorithm): each computed once.
    let mut cache: Vec<(usize, Hash, Vec<u8>)> = Vec::new();
    let mut good: Option<String> = None;
    let mut why: Vec<String> = Vec::new();
    for key in keys
        .keys
        .iter()
        .filter(|k| k.required == Some(super::KeyUse::Conf))
    {
        let mut ok = None;
        for &s in &sigs {
            let r = check_hashed_nodes(t, s, &nodes).and_then(|()| {
                let strings = hashed_strings(t, s)?;
                let n = strings.len();
                check_sig(t, s, key, &mut |h| {
                    if let Some((_, _, d)) = cache.iter().find(|(m, x, _)| *m == n && *x == h) {
                        return d.clone();
                    }
                    let mut parts: Vec<&[u8]> =
                        struct_regions.iter().map(|r| &t.blob[r.clone()]).collect();
                    parts.push(strings);
                    let d = h.digest(&parts);
                    cache.push((n, h, d.clone()));
                    d
                })
            });
            match r {
                Ok(how) => {
                    ok = Some(how);
                    break;
                }
                Err(e) => why.push(alloc::format!("{}: {e}", t.nodes[s].name)),
            }
        }
        match ok {
            Some(how) => {
                good.get_or_insert(how);
                if keys.any {
                    break;
                }
            }
            None if !keys.any => {
                return Err(fail(alloc::format!(
                    "required key '{}' verifies no signature ({})",
                    key.name,
                    why.join("; ")
                )))
            }
            None => {}
        }
    }
    good.ok_or_else(|| {
        fail(alloc::format!(
            "no required key verifies a signature ({})",
            why.join("; ")
        ))
    })
}

/// The strings block prefix `hashed-strings` of signature node `sig` says was signed: it must
/// start at the block's start (mkimage writes `<0 size>`) and lie inside it. Without it the
/// property names would be unsigned, so it is required.
fn hashed_strings<'a>(t: &Tree<'a>, sig: usize) -> Result<&'a [u8], String> {
    let v = t.prop(sig, "hashed-strings").ok_or("no hashed-strings")?;
    if v.len() != 8 {
        return Err("hashed-strings is not <offset size>".into());
    }
    let off = u32::from_be_bytes([v[0], v[1], v[2], v[3]]);
    let size = u32::from_be_bytes([v[4], v[5], v[6], v[7]]) as usize;
    if off != 0 || size > t.strings.len() {
        return Err("hashed-strings lies outside the strings block".into());
    }
    Ok(&t.blob[t.strings.start..t.strings.start + size])
}

/// Verifies image `node`'s `data` against the required `image` keys: every one must verify
/// one of its `signature*` nodes (U-Boot's rule; `required-mode = "any"` is about
/// configuration keys). Returns the keys that did.
pub(crate) fn verify_image(
    fit: &Fit,
    node: usize,
    data: &[u8],
    keys: &Keys,
) -> Result<Vec<String>, FitError> {
    let t = &fit.tree;
    let image = t.nodes[node].name;
    let fail = |what: String| FitError::ImageSignature {
        image: image.into(),
        what,
    };
    let sigs = sig_nodes(t, node).map_err(fail)?;
    let parts = [data];
    let mut digests = Digests::new(&parts);
    let mut by = Vec::new();
    for key in keys
        .keys
        .iter()
        .filter(|k| k.required == Some(super::KeyUse::Image))
    {
        let mut why = Vec::new();
        let ok = sigs
            .iter()
            .any(|&s| match check_sig(t, s, key, &mut |h| digests.get(h)) {
                Ok(_) => true,
                Err(e) => {
                    why.push(alloc::format!("{}: {e}", t.nodes[s].name));
                    false
                }
            });
        if !ok {
            return Err(fail(alloc::format!(
                "required key '{}' verifies no signature ({})",
                key.name,
                why.join("; ")
            )));
        }
        by.push(key.name.clone());
    }
    if by.is_empty() {
        return Err(fail("no required image key".into()));
    }
    Ok(by)
}
