//! The pure logic of kexboot's resident EL3 monitor (`boards/src/arch/aarch64/el3/`): the PSCI
//! state machine ([`psci`]) and the EL3 control-register values computed from a CPU's ID
//! registers ([`el3`]). Nothing here touches a register, so both are tested on the host; the
//! register reads and writes, the pens and the SMC entry stay in `boards/`.
#![cfg_attr(not(test), no_std)]

pub mod el3;
pub mod psci;
