//! The Raspberry Pi firmware's property interface (the VideoCore mailbox, channel 8): building a
//! request message and reading the answer the firmware wrote over it. Pure and host-tested; the
//! register handshake, the buffer's bus address and the cache maintenance around it are the
//! board's (`boards/src/bcm2835_mbox.rs`).
//!
//! A message (Raspberry Pi firmware wiki "Mailbox property interface"; Linux
//! `drivers/firmware/raspberrypi.c`, U-Boot `arch/arm/mach-bcm283x/mbox.c`) is 32-bit
//! little-endian words, in a 16-byte aligned buffer:
//!
//! | word | request | answer |
//! |---|---|---|
//! | 0 | total size in bytes | unchanged |
//! | 1 | 0 (request) | 0x80000000 success, 0x80000001 parse error |
//! | 2.. | tags: id, value buffer size in bytes, 0, value buffer | id, size, 0x80000000 \| answer length, answer |
//! | last | 0 (end tag) | |
//!
//! kexboot sends one tag per message.

use alloc::vec;
use alloc::vec::Vec;

use crate::mem::Range;
use crate::Error;

/// The property channel (ARM to VideoCore).
pub const CHANNEL_PROPERTY: u32 = 8;
/// Tag: base and size of the ARM's share of the RAM (the rest is the VideoCore's).
pub const TAG_GET_ARM_MEMORY: u32 = 0x0001_0005;
/// Tag: the rate of a clock, in Hz (0 when the clock does not exist).
pub const TAG_GET_CLOCK_RATE: u32 = 0x0003_0002;
/// Clock id of the EMMC (Arasan SDHCI) base clock.
pub const CLOCK_EMMC: u32 = 1;
/// The message buffer's alignment: the low 4 bits of the address carry the channel.
pub const BUFFER_ALIGN: usize = 16;

/// Word 1 of a request.
const CODE_REQUEST: u32 = 0;
/// Word 1 of an answer the firmware processed.
const CODE_SUCCESS: u32 = 0x8000_0000;
/// Set in a tag's answer-length word when the firmware answered that tag.
const TAG_ANSWERED: u32 = 1 << 31;
/// The tag that ends the list.
const TAG_END: u32 = 0;
/// Words before a tag's value buffer: size, code, tag id, value size, value code.
const HEADER_WORDS: usize = 5;

/// A one-tag request: `args` first in the value buffer, room for `answer_words` words of answer.
pub fn request(tag: u32, args: &[u32], answer_words: usize) -> Vec<u32> {
    let value_words = args.len().max(answer_words);
    let mut words = vec![0u32; HEADER_WORDS + value_words + 1];
    words[1] = CODE_REQUEST;
    words[2] = tag;
    words[3] = (value_words * 4) as u32;
    words[4] = 0; // request code of the tag
    words[HEADER_WORDS..HEADER_WORDS + args.len()].copy_from_slice(args);
    words[HEADER_WORDS + value_words] = TAG_END;
    words[0] = (words.len() * 4) as u32;
    words
}

/// The answer to the one tag `tag` of a message the firmware wrote back (`words`, as read from
/// the buffer): its value words, as many as the firmware says it wrote.
pub fn answer(words: &[u32], tag: u32) -> Result<&[u32], Error> {
    let bad = |what| Error::MailboxMessage { what };
    if words.len() < HEADER_WORDS + 1 {
        return Err(bad("shorter than one tag"));
    }
    match words[1] {
        CODE_SUCCESS => {}
        code => return Err(Error::MailboxCode { code }),
    }
    if words[2] != tag {
        return Err(bad("the tag id changed"));
    }
    let status = words[4];
    if status & TAG_ANSWERED == 0 {
        return Err(Error::MailboxUnanswered { tag });
    }
    let len = (status & !TAG_ANSWERED) as usize;
    let room = words[3] as usize;
    if len > room || HEADER_WORDS + room.div_ceil(4) > words.len() {
        return Err(bad("the answer is longer than its buffer"));
    }
    Ok(&words[HEADER_WORDS..HEADER_WORDS + len.div_ceil(4)])
}

/// `len` words of `tag`'s answer, or an error naming what was short.
fn answer_words(words: &[u32], tag: u32, len: usize) -> Result<&[u32], Error> {
    let a = answer(words, tag)?;
    match a.get(..len) {
        Some(v) => Ok(v),
        None => Err(Error::MailboxShort {
            tag,
            len: a.len() * 4,
            expected: len * 4,
        }),
    }
}

/// GET_CLOCK_RATE of clock `clock`.
pub fn clock_rate_request(clock: u32) -> Vec<u32> {
    request(TAG_GET_CLOCK_RATE, &[clock], 2)
}

/// The rate in Hz from the answer to [`clock_rate_request`]`(clock)`; a clock the firmware
/// does not know (rate 0) is an error.
pub fn clock_rate(words: &[u32], clock: u32) -> Result<u32, Error> {
    match *answer_words(words, TAG_GET_CLOCK_RATE, 2)? {
        [id, _] if id != clock => Err(Error::MailboxMessage {
            what: "answer for another clock",
        }),
        [_, 0] => Err(Error::MailboxNoClock { clock }),
        [_, rate] => Ok(rate),
        _ => unreachable!("answer_words returns 2 words"),
    }
}

/// GET_ARM_MEMORY.
pub fn arm_memory_request() -> Vec<u32> {
    request(TAG_GET_ARM_MEMORY, &[], 2)
}

/// The ARM's RAM from the answer to [`arm_memory_request`]; an empty range is an error.
pub fn arm_memory(words: &[u32]) -> Result<Range, Error> {
    let v = answer_words(words, TAG_GET_ARM_MEMORY, 2)?;
    let (base, size) = (u64::from(v[0]), u64::from(v[1]));
    if size == 0 {
        return Err(Error::MailboxMessage {
            what: "ARM memory of size 0",
        });
    }
    Range::from_len(base, size).map_err(Error::Range)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the firmware does to a request: answers the one tag with `value` (its length in
    /// bytes as the firmware reports it: `len`), and marks the message processed.
    fn firmware(mut words: Vec<u32>, value: &[u32], len: u32) -> Vec<u32> {
        words[1] = CODE_SUCCESS;
        words[4] = TAG_ANSWERED | len;
        words[HEADER_WORDS..HEADER_WORDS + value.len()].copy_from_slice(value);
        words
    }

    #[test]
    fn clock_request_layout() {
        // Size, request, tag, 8-byte value buffer, tag request code, clock id, room, end tag.
        assert_eq!(
            clock_rate_request(CLOCK_EMMC),
            [32, 0, TAG_GET_CLOCK_RATE, 8, 0, 1, 0, 0]
        );
        assert_eq!(
            arm_memory_request(),
            [32, 0, TAG_GET_ARM_MEMORY, 8, 0, 0, 0, 0]
        );
    }

    #[test]
    fn clock_answer() {
        let a = firmware(clock_rate_request(CLOCK_EMMC), &[1, 250_000_000], 8);
        assert_eq!(clock_rate(&a, CLOCK_EMMC), Ok(250_000_000));
        // QEMU 7.2's raspi3b answers the EMMC clock with 50 MHz.
        let a = firmware(clock_rate_request(CLOCK_EMMC), &[1, 50_000_000], 8);
        assert_eq!(clock_rate(&a, CLOCK_EMMC), Ok(50_000_000));
    }

    #[test]
    fn memory_answer() {
        let a = firmware(arm_memory_request(), &[0, 0x3b40_0000], 8);
        assert_eq!(arm_memory(&a), Ok(Range::from_len(0, 0x3b40_0000).unwrap()));
        let a = firmware(arm_memory_request(), &[0, 0], 8);
        assert!(matches!(arm_memory(&a), Err(Error::MailboxMessage { .. })));
    }

    #[test]
    fn unprocessed_and_error_codes() {
        // The firmware never touched it: word 1 still 0.
        let req = clock_rate_request(CLOCK_EMMC);
        assert_eq!(
            clock_rate(&req, CLOCK_EMMC),
            Err(Error::MailboxCode { code: 0 })
        );
        let mut a = firmware(clock_rate_request(CLOCK_EMMC), &[1, 1], 8);
        a[1] = 0x8000_0001;
        assert_eq!(
            clock_rate(&a, CLOCK_EMMC),
            Err(Error::MailboxCode { code: 0x8000_0001 })
        );
    }

    #[test]
    fn unanswered_short_and_wrong_answers() {
        let mut a = firmware(clock_rate_request(CLOCK_EMMC), &[1, 1], 8);
        a[4] = 8; // processed, but the tag not answered
        assert_eq!(
            clock_rate(&a, CLOCK_EMMC),
            Err(Error::MailboxUnanswered {
                tag: TAG_GET_CLOCK_RATE
            })
        );
        let a = firmware(clock_rate_request(CLOCK_EMMC), &[1], 4);
        assert_eq!(
            clock_rate(&a, CLOCK_EMMC),
            Err(Error::MailboxShort {
                tag: TAG_GET_CLOCK_RATE,
                len: 4,
                expected: 8
            })
        );
        let a = firmware(clock_rate_request(CLOCK_EMMC), &[2, 3_000_000], 8);
        assert!(matches!(
            clock_rate(&a, CLOCK_EMMC),
            Err(Error::MailboxMessage { .. })
        ));
        let a = firmware(clock_rate_request(CLOCK_EMMC), &[1, 0], 8);
        assert_eq!(
            clock_rate(&a, CLOCK_EMMC),
            Err(Error::MailboxNoClock { clock: 1 })
        );
        // An answer length beyond the value buffer the request gave.
        let a = firmware(clock_rate_request(CLOCK_EMMC), &[1, 1], 64);
        assert!(matches!(
            clock_rate(&a, CLOCK_EMMC),
            Err(Error::MailboxMessage { .. })
        ));
        let mut a = firmware(clock_rate_request(CLOCK_EMMC), &[1, 1], 8);
        a[2] = TAG_GET_ARM_MEMORY;
        assert!(matches!(
            clock_rate(&a, CLOCK_EMMC),
            Err(Error::MailboxMessage { .. })
        ));
    }

    #[test]
    fn never_panics_on_garbage() {
        for len in 0..12 {
            for fill in [0, 1, 0x8000_0000, u32::MAX] {
                let mut w = vec![fill; len];
                if len > 4 {
                    w[1] = CODE_SUCCESS;
                    w[2] = TAG_GET_CLOCK_RATE;
                }
                let _ = clock_rate(&w, CLOCK_EMMC);
                let _ = arm_memory(&w);
            }
        }
    }
}
