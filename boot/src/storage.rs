//! The board's disks as U-Boot's commands name them: an interface and a device number per
//! interface (`virtio 0`, `mmc 0`), a partition after a colon (`virtio 0:2`, hex as U-Boot reads
//! it). One volume (FAT or ext4) is open at a time: opening another gives the first one's disk
//! back to its slot, so any number of partitions can be used in turn without holding a driver
//! twice. A device or partition that does not exist is an error, never another one's files.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use kexboot_fs::{self as fs, BlockDevice, Partition, PartitionDevice, Volume};

/// A volume on one of the board's disks.
pub type DiskVolume<D> = Volume<PartitionDevice<D>>;

/// Where a volume is: the disk's slot and the partition's number (as the table counts them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loc {
    pub slot: usize,
    pub part: u32,
}

/// Why a device, partition or volume could not be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// No disk of that interface at all.
    Interface(String),
    /// `dev[:part]` is not U-Boot's syntax.
    BadSpec(String),
    /// No such device number on that interface.
    NoDevice { iface: String, dev: u32 },
    /// The disk has no partition of that number.
    NoPartition { name: String, part: u32 },
    /// The partition table could not be read.
    Table { name: String, err: fs::Error },
    /// The partition holds no file system kexboot reads.
    Mount { name: String, err: fs::Error },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Interface(i) => write!(f, "no disk on interface '{i}'"),
            Error::BadSpec(s) => write!(f, "** Bad device specification {s} **"),
            Error::NoDevice { iface, dev } => write!(f, "** Bad device {iface} {dev} **"),
            Error::NoPartition { name, part } => {
                write!(f, "** Invalid partition {part} ** ({name} has none)")
            }
            Error::Table { name, err } => write!(f, "{name}: partition table: {err}"),
            Error::Mount { name, err } => write!(f, "{name}: {}", why_not_fs(err)),
        }
    }
}

struct Slot<D> {
    iface: &'static str,
    num: u32,
    /// None while the disk is inside the open volume.
    dev: Option<D>,
    /// The partition table, once read (kexboot never writes one).
    table: Option<Vec<Partition>>,
}

struct Open<D> {
    loc: Loc,
    vol: DiskVolume<D>,
}

/// The board's disks and the one volume open on them.
pub struct Storage<D: BlockDevice + 'static> {
    slots: Vec<Slot<D>>,
    open: Option<Open<D>>,
    /// The volume the environment and boot count live on (FAT), when one was found.
    home: Option<Loc>,
}

impl<D: BlockDevice + 'static> Default for Storage<D> {
    fn default() -> Self {
        Storage {
            slots: Vec::new(),
            open: None,
            home: None,
        }
    }
}

impl<D: BlockDevice + 'static> Storage<D> {
    /// The disks, each with its interface name; devices are numbered per interface in order.
    pub fn new(disks: Vec<(&'static str, D)>) -> Self {
        let mut slots: Vec<Slot<D>> = Vec::new();
        for (iface, dev) in disks {
            let num = slots.iter().filter(|s| s.iface == iface).count() as u32;
            slots.push(Slot {
                iface,
                num,
                dev: Some(dev),
                table: None,
            });
        }
        Storage {
            slots,
            ..Default::default()
        }
    }

    /// How many disks there are.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// `(interface, device number)` of the disk in `slot`.
    pub fn id(&self, slot: usize) -> Option<(&'static str, u32)> {
        self.slots.get(slot).map(|s| (s.iface, s.num))
    }

    /// `virtio 0:1`, as U-Boot names it.
    pub fn name(&self, loc: Loc) -> String {
        match self.id(loc.slot) {
            Some((i, n)) => format!("{i} {n}:{:x}", loc.part),
            None => format!("disk {}:{:x}", loc.slot, loc.part),
        }
    }

    fn disk_name(&self, slot: usize) -> String {
        match self.id(slot) {
            Some((i, n)) => format!("{i} {n}"),
            None => format!("disk {slot}"),
        }
    }

    /// The slot of `iface dev`.
    pub fn slot(&self, iface: &str, dev: u32) -> Result<usize, Error> {
        if !self.slots.iter().any(|s| s.iface == iface) {
            return Err(Error::Interface(iface.into()));
        }
        self.slots
            .iter()
            .position(|s| s.iface == iface && s.num == dev)
            .ok_or_else(|| Error::NoDevice {
                iface: iface.into(),
                dev,
            })
    }

    /// Parses U-Boot's `dev[:part]` (both hex) for `iface`; without a partition, the first
    /// partition that holds a file system kexboot reads (U-Boot's "auto").
    pub fn locate(&mut self, iface: &str, spec: &str) -> Result<Loc, Error> {
        let bad = || Error::BadSpec(format!("{iface} {spec}"));
        let (dev, part) = match spec.split_once(':') {
            Some((d, p)) => (d, Some(p)),
            None => (spec, None),
        };
        let dev = u32::from_str_radix(dev.trim_start_matches("0x"), 16).map_err(|_| bad())?;
        let slot = self.slot(iface, dev)?;
        match part {
            Some(p) if !p.is_empty() && p != "auto" => {
                let part =
                    u32::from_str_radix(p.trim_start_matches("0x"), 16).map_err(|_| bad())?;
                let loc = Loc { slot, part };
                // The partition must exist in the table.
                self.partition(loc)?;
                Ok(loc)
            }
            _ => self.first_volume(slot),
        }
    }

    /// The first partition of `slot` whose file system mounts.
    fn first_volume(&mut self, slot: usize) -> Result<Loc, Error> {
        let parts = self.partitions(slot)?;
        let mut last = None;
        for p in &parts {
            let loc = Loc {
                slot,
                part: p.number,
            };
            match self.open(loc) {
                Ok(_) => return Ok(loc),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(Error::NoPartition {
            name: self.disk_name(slot),
            part: 1,
        }))
    }

    /// The partition table of the disk in `slot` (a whole-disk volume is partition 1), read
    /// wherever the disk is now (in its slot or inside the open volume).
    pub fn partitions(&mut self, slot: usize) -> Result<Vec<Partition>, Error> {
        if let Some(t) = self.slots.get(slot).and_then(|s| s.table.as_ref()) {
            return Ok(t.clone());
        }
        let name = self.disk_name(slot);
        let read = |dev: &mut D| fs::partitions(dev).map_err(|err| Error::Table { name, err });
        let table = if let Some(o) = self.open.as_mut().filter(|o| o.loc.slot == slot) {
            let mut dev = o.vol.device_mut();
            read(dev.inner_mut())?
        } else {
            match self.slots.get_mut(slot).and_then(|s| s.dev.as_mut()) {
                Some(dev) => read(dev)?,
                None => {
                    return Err(Error::NoDevice {
                        iface: String::from("disk"),
                        dev: slot as u32,
                    })
                }
            }
        };
        if let Some(s) = self.slots.get_mut(slot) {
            s.table = Some(table.clone());
        }
        Ok(table)
    }

    /// The table's entry for `loc`.
    pub fn partition(&mut self, loc: Loc) -> Result<Partition, Error> {
        let parts = self.partitions(loc.slot)?;
        parts
            .into_iter()
            .find(|p| p.number == loc.part)
            .ok_or_else(|| Error::NoPartition {
                name: self.disk_name(loc.slot),
                part: loc.part,
            })
    }

    /// Gives the open volume's disk back to its slot.
    fn close(&mut self) {
        if let Some(o) = self.open.take() {
            let dev = o.vol.into_inner().into_inner();
            if let Some(s) = self.slots.get_mut(o.loc.slot) {
                s.dev = Some(dev);
            }
        }
    }

    /// The volume at `loc`, mounted (or the open one, when it is that).
    pub fn open(&mut self, loc: Loc) -> Result<&mut DiskVolume<D>, Error> {
        if self.open.as_ref().map(|o| o.loc) != Some(loc) {
            self.mount(loc)?;
        }
        let name = self.name(loc);
        match self.open.as_mut() {
            Some(o) => Ok(&mut o.vol),
            None => Err(Error::NoDevice {
                iface: name,
                dev: 0,
            }),
        }
    }

    /// Closes the open volume and mounts the one at `loc` in its place.
    fn mount(&mut self, loc: Loc) -> Result<(), Error> {
        let part = self.partition(loc)?;
        self.close();
        let name = self.name(loc);
        let no_disk = || Error::NoDevice {
            iface: name.clone(),
            dev: 0,
        };
        let slot = self.slots.get_mut(loc.slot).ok_or_else(no_disk)?;
        let dev = slot.dev.take().ok_or_else(no_disk)?;
        let pdev = match PartitionDevice::try_new(dev, &part) {
            Ok(p) => p,
            Err((dev, err)) => {
                slot.dev = Some(dev);
                return Err(Error::Mount { name, err });
            }
        };
        match Volume::mount(pdev) {
            Ok(vol) => {
                self.open = Some(Open { loc, vol });
                Ok(())
            }
            Err((pdev, err)) => {
                slot.dev = Some(pdev.into_inner());
                Err(Error::Mount { name, err })
            }
        }
    }

    /// Where the open volume is.
    pub fn open_loc(&self) -> Option<Loc> {
        self.open.as_ref().map(|o| o.loc)
    }

    /// The volume the environment and boot count live on.
    pub fn home_loc(&self) -> Option<Loc> {
        self.home
    }

    /// The home volume, opened.
    pub fn home(&mut self) -> Option<&mut DiskVolume<D>> {
        let loc = self.home?;
        self.open(loc).ok()
    }

    /// Finds the home volume: the first FAT volume on any disk (the one that can take the
    /// saved environment), else the first volume of any kind. Says on the console what each
    /// partition passed over holds.
    pub fn find_home(&mut self) -> Option<Loc> {
        let mut first_any = None;
        for slot in 0..self.slots.len() {
            let parts = match self.partitions(slot) {
                Ok(p) => p,
                Err(e) => {
                    log::warn!("{}: no boot file system: {e}", self.disk_name(slot));
                    continue;
                }
            };
            let mut mounted = false;
            for p in parts {
                let loc = Loc {
                    slot,
                    part: p.number,
                };
                let name = self.name(loc);
                match self.open(loc) {
                    Ok(vol) => {
                        let kind = vol.kind_name();
                        let fat = vol.fat_mut().is_some();
                        log::info!("{name}: {kind} ({} MiB)", p.num_sectors >> 11);
                        mounted = true;
                        if fat {
                            self.home = Some(loc);
                            return Some(loc);
                        }
                        first_any.get_or_insert(loc);
                    }
                    Err(e) => log::info!("{name}: {}", why_not(&e)),
                }
            }
            if !mounted {
                log::warn!(
                    "{}: no boot file system on any partition",
                    self.disk_name(slot)
                );
            }
        }
        self.home = first_any;
        first_any
    }

    /// Every volume in distro-boot order: disk by disk, a disk's bootable partitions first,
    /// then the others in table order. Partitions whose table cannot be read are said why.
    pub fn boot_order(&mut self) -> Vec<Loc> {
        let mut out = Vec::new();
        for slot in 0..self.slots.len() {
            match self.partitions(slot) {
                Ok(mut parts) => {
                    parts.sort_by_key(|p| !bootable(p));
                    out.extend(parts.iter().map(|p| Loc {
                        slot,
                        part: p.number,
                    }));
                }
                Err(e) => log::info!("{e}"),
            }
        }
        out
    }
}

/// Why a partition holds nothing kexboot reads, in a few words (`unknown file system`).
pub fn why_not(e: &Error) -> String {
    match e {
        Error::Mount { err, .. } => why_not_fs(err),
        e => e.to_string(),
    }
}

fn why_not_fs(err: &fs::Error) -> String {
    match err {
        fs::Error::NotFat(_) => "unknown file system".into(),
        err => err.to_string(),
    }
}

/// The partition table marks it bootable (MBR's active flag, GPT's legacy-BIOS-bootable bit).
pub fn bootable(p: &Partition) -> bool {
    p.bootable
}

/// The partition's UUID as U-Boot's `part uuid` prints it.
pub fn part_uuid(p: &Partition) -> Option<String> {
    p.uuid.clone()
}
