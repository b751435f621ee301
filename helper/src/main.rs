//! `kexboot-reboot`: loads kexboot with `kexec_load` and reboots into it.
//!
//! Reads the image (default `/boot/kexboot.bin`), `/sys/firmware/fdt` and `/proc/iomem`, lets
//! [`kexboot_reboot::build_plan`] validate everything and choose the destinations, then makes the
//! only two system calls that change anything: `kexec_load` and (unless `--load-only`)
//! `reboot(LINUX_REBOOT_CMD_KEXEC)` after `sync()`. See `--help`.

use std::path::Path;
use std::process::ExitCode;

use kexboot_reboot::{
    build_plan, parse_args, Command, Error, Inputs, KexbootImage, Options, Plan, EXIT_USAGE,
    PROC_IOMEM, SYS_FDT,
};

/// `KEXEC_ARCH_DEFAULT` (uapi `linux/kexec.h`): the running kernel's architecture.
const KEXEC_ARCH_DEFAULT: libc::c_ulong = 0;

/// `struct kexec_segment` of uapi `linux/kexec.h`.
#[repr(C)]
struct KexecSegment {
    buf: *const libc::c_void,
    bufsz: libc::size_t,
    mem: libc::size_t,
    memsz: libc::size_t,
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|err| Error::Read {
        path: path.to_path_buf(),
        err,
    })
}

fn page_size() -> Result<u64, Error> {
    // SAFETY: sysconf only reads a configuration value.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(page).map_err(|_| Error::PageSize)
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Hands the plan's segments to the kernel.
fn kexec_load(plan: &Plan<'_>) -> Result<(), Error> {
    let segments = plan.segments().map(|s| KexecSegment {
        buf: s.buf.as_ptr().cast(),
        bufsz: s.buf.len(),
        mem: s.dest.start() as libc::size_t,
        memsz: s.dest.len() as libc::size_t,
    });
    // SAFETY: `segments` and every buffer it points to (the image, DTB and purgatory bytes owned
    // by `plan`) stay alive and unchanged for the whole call; the kernel only reads them.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_kexec_load,
            plan.entry() as libc::c_ulong,
            segments.len() as libc::c_ulong,
            segments.as_ptr(),
            KEXEC_ARCH_DEFAULT,
        )
    };
    if rc != 0 {
        return Err(Error::Kexec {
            errno: last_errno(),
        });
    }
    Ok(())
}

fn run(o: &Options) -> Result<(), Error> {
    // Refuse bad --entry/--append before reading anything.
    kexboot_reboot::bootargs(o.entry.as_deref(), o.append.as_deref()).map_err(Error::Args)?;
    let image = read(&o.image)?;
    // Refuse a file that is not kexboot before looking at the system.
    KexbootImage::validate(&image).map_err(|why| Error::NotKexboot {
        path: o.image.clone(),
        why,
    })?;
    let fdt = read(Path::new(SYS_FDT))?;
    let iomem = read(Path::new(PROC_IOMEM))?;
    let iomem = String::from_utf8_lossy(&iomem);
    let plan = build_plan(&Inputs {
        image_path: &o.image,
        image: &image,
        fdt: &fdt,
        iomem: &iomem,
        entry: o.entry.as_deref(),
        append: o.append.as_deref(),
        page: page_size()?,
    })?;
    if o.dry_run {
        println!("kexboot-reboot: dry run, nothing loaded\n{plan}");
        return Ok(());
    }
    kexec_load(&plan)?;
    println!(
        "kexboot-reboot: loaded {} at {:#x}, bootargs {:?}",
        o.image.display(),
        plan.layout.kexboot_entry(),
        plan.bootargs
    );
    if o.load_only {
        println!("kexboot-reboot: --load-only: reboot with `systemctl kexec` or `kexec -e`");
        return Ok(());
    }
    println!("kexboot-reboot: rebooting into kexboot");
    // SAFETY: sync has no preconditions.
    unsafe { libc::sync() };
    // SAFETY: reboot with LINUX_REBOOT_CMD_KEXEC either does not return or returns an error.
    unsafe { libc::reboot(libc::LINUX_REBOOT_CMD_KEXEC) };
    // Only reached if the reboot failed.
    Err(Error::Reboot {
        errno: last_errno(),
    })
}

fn main() -> ExitCode {
    let cmd = match parse_args(std::env::args_os().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kexboot-reboot: {e}");
            return ExitCode::from(EXIT_USAGE as u8);
        }
    };
    let o = match cmd {
        Command::Help => {
            print!("{}", kexboot_reboot::args::USAGE);
            return ExitCode::SUCCESS;
        }
        Command::Run(o) => o,
    };
    match run(&o) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kexboot-reboot: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
