//! Block devices: the trait the firmware's disk drivers implement (reads, optional writes), an
//! in-memory test double that logs I/O and can simulate a power cut, and a partition-bounded view.
use alloc::vec::Vec;

use crate::{Error, Partition};

/// Size of one device sector in bytes.
pub const SECTOR_SIZE: usize = 512;
/// Largest single read the file system issues (bytes).
pub const MAX_READ_BYTES: usize = 1 << 20;

/// A disk made of 512-byte sectors.
pub trait BlockDevice {
    /// Number of 512-byte sectors on the device.
    fn num_sectors(&self) -> u64;
    /// Read `buf.len() / 512` whole sectors starting at `lba` (buf.len() is a non-zero multiple
    /// of 512).
    fn read_sectors(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), Error>;
    /// Write `buf.len() / 512` whole sectors starting at `lba` (buf.len() is a non-zero multiple
    /// of 512). Each sector is assumed to be written atomically; the request as a whole is not.
    /// The default refuses with [`Error::ReadOnly`].
    fn write_sectors(&mut self, lba: u64, buf: &[u8]) -> Result<(), Error> {
        let _ = (lba, buf);
        Err(Error::ReadOnly)
    }
}

impl<T: BlockDevice + ?Sized> BlockDevice for &mut T {
    fn num_sectors(&self) -> u64 {
        (**self).num_sectors()
    }
    fn read_sectors(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), Error> {
        (**self).read_sectors(lba, buf)
    }
    fn write_sectors(&mut self, lba: u64, buf: &[u8]) -> Result<(), Error> {
        (**self).write_sectors(lba, buf)
    }
}

/// Checks that a read or write of `buf_len` bytes at `lba` fits a device of `size` sectors;
/// returns the sector count.
pub(crate) fn check_read(lba: u64, buf_len: usize, size: u64) -> Result<u64, Error> {
    if buf_len == 0 || !buf_len.is_multiple_of(SECTOR_SIZE) {
        return Err(Error::BadBuffer { len: buf_len });
    }
    let count = (buf_len / SECTOR_SIZE) as u64;
    match lba.checked_add(count) {
        Some(end) if end <= size => Ok(count),
        _ => Err(Error::OutOfRange { lba, count, size }),
    }
}

/// Checks that `part` lies inside a device of `dev_sectors` sectors.
pub fn check_fits(part: &Partition, dev_sectors: u64) -> Result<(), Error> {
    match part.first_lba.checked_add(part.num_sectors) {
        Some(end) if end <= dev_sectors && part.num_sectors > 0 => Ok(()),
        _ => Err(Error::OutOfRange {
            lba: part.first_lba,
            count: part.num_sectors,
            size: dev_sectors,
        }),
    }
}

/// A disk held in a `Vec<u8>` that logs every read and write (a test double; a trailing partial
/// sector is not addressable).
#[derive(Debug, Clone, Default)]
pub struct MemDisk {
    data: Vec<u8>,
    log: Vec<(u64, u64)>,
    write_log: Vec<(u64, u64)>,
    fail_lba: Option<u64>,
    /// Sectors that may still be written before the simulated power cut.
    write_budget: Option<u64>,
    read_only: bool,
}

impl MemDisk {
    /// A disk over `data`.
    pub fn new(data: Vec<u8>) -> Self {
        MemDisk {
            data,
            ..MemDisk::default()
        }
    }
    /// Every write so far as `(lba, sector count)`, oldest first (a write cut short by
    /// [`MemDisk::fail_writes_after`] is logged with the sectors that reached the disk).
    pub fn write_log(&self) -> &[(u64, u64)] {
        &self.write_log
    }
    /// Simulates a power cut: after `sectors` more sectors have been written, the write in
    /// progress stops (its first sectors land, the rest do not) and it and every later write
    /// fail with [`Error::WriteIo`]. `None` lifts the limit.
    pub fn fail_writes_after(&mut self, sectors: Option<u64>) {
        self.write_budget = sectors;
    }
    /// Makes every write fail with [`Error::ReadOnly`] (a write-protected disk).
    pub fn set_read_only(&mut self, ro: bool) {
        self.read_only = ro;
    }
    /// Number of `read_sectors` calls so far.
    pub fn read_calls(&self) -> usize {
        self.log.len()
    }
    /// Every read so far as `(lba, sector count)`, oldest first.
    pub fn read_log(&self) -> &[(u64, u64)] {
        &self.log
    }
    /// Forgets the read log.
    pub fn clear_log(&mut self) {
        self.log.clear();
    }
    /// Makes every later read that covers `lba` fail with [`Error::Io`] (`None`: never).
    pub fn fail_reads_at(&mut self, lba: Option<u64>) {
        self.fail_lba = lba;
    }
    /// The disk's bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }
    /// The disk's bytes, to corrupt them.
    pub fn data_mut(&mut self) -> &mut Vec<u8> {
        &mut self.data
    }
    /// Gives the bytes back.
    pub fn into_inner(self) -> Vec<u8> {
        self.data
    }
}

impl BlockDevice for MemDisk {
    fn num_sectors(&self) -> u64 {
        (self.data.len() / SECTOR_SIZE) as u64
    }

    fn read_sectors(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), Error> {
        let count = check_read(lba, buf.len(), self.num_sectors())?;
        self.log.push((lba, count));
        if let Some(bad) = self.fail_lba {
            if (lba..lba + count).contains(&bad) {
                return Err(Error::Io { lba });
            }
        }
        let start = usize::try_from(lba)
            .ok()
            .and_then(|l| l.checked_mul(SECTOR_SIZE))
            .ok_or(Error::OutOfRange {
                lba,
                count,
                size: self.num_sectors(),
            })?;
        let src = self
            .data
            .get(start..start + buf.len())
            .ok_or(Error::OutOfRange {
                lba,
                count,
                size: self.num_sectors(),
            })?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn write_sectors(&mut self, lba: u64, buf: &[u8]) -> Result<(), Error> {
        let count = check_read(lba, buf.len(), self.num_sectors())?;
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        let allowed = self.write_budget.map_or(count, |b| b.min(count));
        if let Some(b) = self.write_budget.as_mut() {
            *b -= allowed;
        }
        let oob = Error::OutOfRange {
            lba,
            count,
            size: self.num_sectors(),
        };
        let start = usize::try_from(lba)
            .ok()
            .and_then(|l| l.checked_mul(SECTOR_SIZE))
            .ok_or(oob.clone())?;
        let n = allowed as usize * SECTOR_SIZE;
        self.data
            .get_mut(start..start + n)
            .ok_or(oob)?
            .copy_from_slice(&buf[..n]);
        if allowed > 0 {
            self.write_log.push((lba, allowed));
        }
        if allowed < count {
            return Err(Error::WriteIo { lba: lba + allowed });
        }
        Ok(())
    }
}

/// A view of one partition of a device: LBAs are partition-relative and reads or writes outside
/// the partition are refused with [`Error::OutOfRange`].
#[derive(Debug)]
pub struct PartitionDevice<D> {
    pub(crate) dev: D,
    pub(crate) first_lba: u64,
    pub(crate) num_sectors: u64,
}

impl<D: BlockDevice> PartitionDevice<D> {
    /// A view of `part` on `dev`; fails if the partition does not lie inside the device.
    pub fn new(dev: D, part: &Partition) -> Result<Self, Error> {
        check_fits(part, dev.num_sectors())?;
        Ok(PartitionDevice {
            dev,
            first_lba: part.first_lba,
            num_sectors: part.num_sectors,
        })
    }
    /// Like [`PartitionDevice::new`], but gives the device back on failure.
    pub fn try_new(dev: D, part: &Partition) -> Result<Self, (D, Error)> {
        if let Err(e) = check_fits(part, dev.num_sectors()) {
            return Err((dev, e));
        }
        Ok(PartitionDevice {
            dev,
            first_lba: part.first_lba,
            num_sectors: part.num_sectors,
        })
    }

    /// First sector of the partition on the underlying device.
    pub fn first_lba(&self) -> u64 {
        self.first_lba
    }
    /// The underlying device.
    pub fn inner_mut(&mut self) -> &mut D {
        &mut self.dev
    }
    /// Gives the underlying device back.
    pub fn into_inner(self) -> D {
        self.dev
    }
}

impl<D: BlockDevice> BlockDevice for PartitionDevice<D> {
    fn num_sectors(&self) -> u64 {
        self.num_sectors
    }
    fn read_sectors(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), Error> {
        check_read(lba, buf.len(), self.num_sectors)?;
        self.dev.read_sectors(self.first_lba + lba, buf)
    }
    fn write_sectors(&mut self, lba: u64, buf: &[u8]) -> Result<(), Error> {
        check_read(lba, buf.len(), self.num_sectors)?;
        self.dev.write_sectors(self.first_lba + lba, buf)
    }
}
