//! The boundary to the network hardware: a polled Ethernet [`Nic`] and the [`Platform`] (clock,
//! Ctrl-C) the stack needs while it waits. The firmware implements both; tests use doubles.

/// Largest Ethernet frame handled (no FCS): 1514.
pub const MAX_FRAME: usize = 1514;

/// Why a NIC could not send a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NicError {
    /// device did not take/complete a frame in time
    Stalled,
    /// device was shut down or failed
    Gone,
    /// frame longer than MAX_FRAME
    TooLong,
}

impl core::fmt::Display for NicError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            NicError::Stalled => "network device stopped taking frames",
            NicError::Gone => "network device was shut down or failed",
            NicError::TooLong => "frame longer than 1514 bytes",
        })
    }
}

/// One polled Ethernet interface.
pub trait Nic {
    /// The station address.
    fn mac(&self) -> [u8; 6];
    /// Sends one frame (no FCS). Bounded: gives up with Err instead of waiting forever.
    fn transmit(&mut self, frame: &[u8]) -> Result<(), NicError>;
    /// Copies the next received frame into `buf` (MAX_FRAME bytes) and returns its length; None when none waits.
    fn receive(&mut self, buf: &mut [u8]) -> Option<usize>;
    /// Takes the next received frame and lends it to `f` where it lies (a device with DMA
    /// buffers passes its own buffer, then reuses it once `f` returns): the stack's fast path
    /// reads TFTP data from there without an intermediate copy. False when no frame waited;
    /// true when one was taken, in which case `f` saw it, unless the device reported it broken
    /// (then it is dropped). The default copies through [`Nic::receive`].
    fn receive_with(&mut self, f: &mut dyn FnMut(&[u8])) -> bool {
        let mut buf = [0u8; MAX_FRAME];
        let Some(n) = self.receive(&mut buf) else {
            return false;
        };
        // A length the buffer cannot hold is a broken frame: dropped.
        if let Some(frame) = buf.get(..n) {
            f(frame);
        }
        true
    }
}

/// What the stack needs from its surroundings while it waits.
pub trait Platform {
    /// Monotonic microseconds.
    fn now_us(&mut self) -> u64;
    /// True when the person asked to stop (Ctrl-C). Default false.
    fn interrupted(&mut self) -> bool {
        false
    }
    /// Hint: nothing is due before `until_us` unless a frame arrives. An implementation may
    /// wait (e.g. for an interrupt or a short delay) but must return by `until_us`; the
    /// default returns at once.
    fn idle(&mut self, until_us: u64) {
        let _ = until_us;
    }
}
