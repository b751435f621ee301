//! A small QEMU harness: spawn with the serial console on a pipe, collect its output as lines
//! stamped with the time since spawn, match on them (also on an unfinished line, for prompts),
//! type into the console, and kill on timeout. Every line also goes to a log file.

use crate::util::{Context, Result};
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

/// The QEMU binary for aarch64 guests.
pub const QEMU: &str = "qemu-system-aarch64";

/// The CPU model of every run that does not ask for another.
pub const DEFAULT_CPU: &str = "cortex-a72";
/// Guest RAM of every run.
const MEMORY: &str = "1G";

/// One QEMU command line (the arguments after [`QEMU`]): the one place that spells machine, CPU,
/// SMP, memory, firmware, kernel and disk arguments for the cases, the bench arms and `run`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Args(Vec<String>);

impl Args {
    /// `-M <machine> -cpu <cpu> [-smp <n>] -m 1G`.
    pub fn new(machine: &str, cpu: &str, smp: Option<u32>) -> Args {
        let mut a = Args(Vec::new()).args(["-M", machine, "-cpu", cpu]);
        if let Some(n) = smp {
            a = a.args(["-smp".to_string(), n.to_string()]);
        }
        a.args(["-m", MEMORY])
    }

    /// `-M <machine> -m 1G`: a machine whose CPU and core count are fixed (QEMU's `raspi3b`:
    /// four Cortex-A53).
    pub fn bare(machine: &str) -> Args {
        Args(Vec::new()).args(["-M", machine, "-m", MEMORY])
    }

    /// [`Args::new`] on [`DEFAULT_CPU`] with `smp` cores.
    pub fn machine(machine: &str, smp: u32) -> Args {
        Args::new(machine, DEFAULT_CPU, Some(smp))
    }

    /// QEMU writes the device tree of `machine` with `smp` cores to `out` and exits.
    pub fn dump_dtb(machine: &str, smp: u32, out: &Path) -> Args {
        Args::machine(&format!("{machine},dumpdtb={}", out.display()), smp)
            .args(["-display", "none"])
    }

    /// `-dtb <file>`: the device tree QEMU hands over instead of its own.
    pub fn dtb(self, file: &Path) -> Args {
        self.path("-dtb", file)
    }

    /// `-kernel <image>`: QEMU's direct loader (kexboot.bin or a Linux Image).
    pub fn kernel(self, image: &Path) -> Args {
        self.path("-kernel", image)
    }

    /// `-bios <image>`: run the image at EL3 from the flash (kexboot's monitor, U-Boot).
    pub fn bios(self, image: &Path) -> Args {
        self.path("-bios", image)
    }

    /// `-initrd <file>` (with `-kernel` of a Linux Image).
    pub fn initrd(self, file: &Path) -> Args {
        self.path("-initrd", file)
    }

    /// `-append <cmdline>` (with `-kernel` of a Linux Image).
    pub fn append(self, cmdline: &str) -> Args {
        self.args(["-append", cmdline])
    }

    /// The disk as a virtio-blk (virtio-mmio) device; writes (saveenv, bootcount) go to a
    /// temporary overlay that lives as long as QEMU (guest resets included), so test images
    /// never change.
    pub fn disk(self, disk: &Path) -> Args {
        self.disk_opts(disk, ",snapshot=on")
    }

    /// The same, writing through to the image (for `cargo xtask run`).
    pub fn disk_persistent(self, disk: &Path) -> Args {
        self.disk_opts(disk, "")
    }

    fn disk_opts(self, disk: &Path, opts: &str) -> Args {
        self.args([
            "-drive".to_string(),
            format!("if=none,format=raw,file={},id=hd0{opts}", disk.display()),
            "-device".to_string(),
            "virtio-blk-device,drive=hd0".to_string(),
        ])
    }

    /// The SD card (a Raspberry Pi's slot); writes go to a temporary overlay, as for
    /// [`Args::disk`].
    pub fn sd(self, image: &Path) -> Args {
        self.args([
            "-drive".to_string(),
            format!("if=sd,format=raw,file={},snapshot=on", image.display()),
        ])
    }

    /// A virtio-net (virtio-mmio) NIC on user networking with `-netdev user` options `opts`.
    pub fn user_net(self, opts: &str) -> Args {
        self.args(user_net(opts))
    }

    fn path(self, flag: &str, p: &Path) -> Args {
        self.args([flag.to_string(), p.display().to_string()])
    }

    /// Any further arguments, in order.
    pub fn args<S: Into<String>>(mut self, more: impl IntoIterator<Item = S>) -> Args {
        self.0.extend(more.into_iter().map(Into::into));
        self
    }

    /// The arguments, for [`Session::spawn`] or a [`Command`].
    pub fn into_vec(self) -> Vec<String> {
        self.0
    }
}

/// The arguments of [`Args::user_net`], for command lines built elsewhere.
pub fn user_net(opts: &str) -> Vec<String> {
    vec![
        "-netdev".into(),
        format!("user,id=n0,{opts}"),
        "-device".into(),
        "virtio-net-device,netdev=n0".into(),
    ]
}

/// One line of console output.
#[derive(Clone, Debug)]
pub struct Line {
    /// Host time since QEMU was spawned, when the line's last byte arrived.
    pub at: Duration,
    /// The text, without the line ending.
    pub text: String,
}

/// What a wait ended with.
#[derive(Debug)]
pub enum Wait {
    /// A line (or the unfinished last line) matched.
    Found(Line),
    /// QEMU exited first.
    Exited,
    /// The deadline passed first.
    Timeout,
}

enum Event {
    Out(Instant, Vec<u8>),
    Err(Vec<u8>),
    OutClosed,
    ErrClosed,
}

/// A running QEMU.
pub struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    rx: Receiver<Event>,
    start: Instant,
    lines: Vec<Line>,
    partial: Vec<u8>,
    stderr: Vec<u8>,
    /// Index of the next line a wait may match.
    cursor: usize,
    out_closed: bool,
    err_closed: bool,
    status: Option<ExitStatus>,
    log: Option<BufWriter<File>>,
}

fn pump<R: Read + Send + 'static>(mut r: R, tx: Sender<Event>, is_out: bool) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let ev = if is_out {
                        Event::Out(Instant::now(), buf[..n].to_vec())
                    } else {
                        Event::Err(buf[..n].to_vec())
                    };
                    if tx.send(ev).is_err() {
                        return;
                    }
                }
            }
        }
        let _ = tx.send(if is_out {
            Event::OutClosed
        } else {
            Event::ErrClosed
        });
    });
}

impl Session {
    /// Spawns `qemu-system-aarch64 <args> -display none -serial stdio -monitor none`, logging the
    /// console to `log` (when given).
    pub fn spawn(args: &[String], log: Option<&Path>) -> Result<Session> {
        let mut all = args.to_vec();
        all.extend(["-display", "none", "-serial", "stdio", "-monitor", "none"].map(String::from));
        Self::spawn_program(QEMU, &all, log)
    }

    /// Spawns any program with its stdin/stdout/stderr on pipes (QEMU, or a stand-in in tests).
    pub fn spawn_program(program: &str, args: &[String], log: Option<&Path>) -> Result<Session> {
        let log = match log {
            Some(p) => {
                if let Some(d) = p.parent() {
                    std::fs::create_dir_all(d).ctx(d.display())?;
                }
                let mut w = BufWriter::new(File::create(p).ctx(p.display())?);
                writeln!(w, "# {program} {}", args.join(" "))?;
                Some(w)
            }
            None => None,
        };
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .ctx(format!(
                "cannot start {program} (`cargo xtask assets` installs QEMU)"
            ))?;
        let start = Instant::now();
        let (tx, rx) = channel();
        pump(child.stdout.take().expect("piped stdout"), tx.clone(), true);
        pump(child.stderr.take().expect("piped stderr"), tx, false);
        Ok(Session {
            stdin: child.stdin.take(),
            child,
            rx,
            start,
            lines: Vec::new(),
            partial: Vec::new(),
            stderr: Vec::new(),
            cursor: 0,
            out_closed: false,
            err_closed: false,
            status: None,
            log,
        })
    }

    /// All complete lines so far.
    pub fn lines(&self) -> &[Line] {
        &self.lines
    }

    /// What QEMU wrote to stderr (trimmed), for failure reasons.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr).trim().to_string()
    }

    /// Exit status, once QEMU has exited.
    pub fn status(&self) -> Option<ExitStatus> {
        self.status
    }

    /// Time since spawn.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Types `bytes` on the serial console.
    pub fn send(&mut self, bytes: &[u8]) {
        if let Some(s) = self.stdin.as_mut() {
            let _ = s.write_all(bytes).and_then(|_| s.flush());
        }
    }

    fn push_line(&mut self, at: Duration) {
        let raw = std::mem::take(&mut self.partial);
        let text = String::from_utf8_lossy(&raw)
            .trim_end_matches('\r')
            .to_string();
        if let Some(w) = self.log.as_mut() {
            let _ = writeln!(w, "[{:8.3}] {text}", at.as_secs_f64());
        }
        self.lines.push(Line { at, text });
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::Out(t, bytes) => {
                let at = t.duration_since(self.start);
                for b in bytes {
                    if b == b'\n' {
                        self.push_line(at);
                    } else {
                        self.partial.push(b);
                    }
                }
            }
            Event::Err(bytes) => {
                if let Some(w) = self.log.as_mut() {
                    let _ = writeln!(
                        w,
                        "[qemu stderr] {}",
                        String::from_utf8_lossy(&bytes).trim_end()
                    );
                }
                self.stderr.extend_from_slice(&bytes);
            }
            Event::OutClosed => self.out_closed = true,
            Event::ErrClosed => self.err_closed = true,
        }
    }

    /// Handles the events that arrive until `until` (at least those already queued).
    fn recv_until(&mut self, until: Instant) {
        let wait = until.saturating_duration_since(Instant::now());
        match self.rx.recv_timeout(wait) {
            Ok(ev) => {
                self.handle(ev);
                while let Ok(ev) = self.rx.try_recv() {
                    self.handle(ev);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                self.out_closed = true;
                self.err_closed = true;
                std::thread::sleep(wait.min(Duration::from_millis(20)));
            }
        }
    }

    /// Records the exit: takes in all the output up to the end of both pipes and ends the
    /// unfinished line. The pipes reach their end as soon as the program is gone (no reader
    /// races the exit); the bound only matters if a grandchild still holds them.
    fn finish(&mut self, st: ExitStatus) {
        let until = Instant::now() + Duration::from_secs(10);
        while !(self.out_closed && self.err_closed) && Instant::now() < until {
            self.recv_until(until);
        }
        while let Ok(ev) = self.rx.try_recv() {
            self.handle(ev);
        }
        if !self.partial.is_empty() {
            let at = self.elapsed();
            self.push_line(at);
        }
        self.set_status(st);
    }

    /// Takes in whatever output arrives until `until`; returns false once the program has exited.
    fn poll(&mut self, until: Instant) -> bool {
        if self.status.is_some() {
            return false;
        }
        self.recv_until(until);
        if self.out_closed {
            // stdout closed: the program is gone or going; reap it (without blocking).
            if let Ok(Some(st)) = self.child.try_wait() {
                self.finish(st);
                return false;
            }
        }
        true
    }

    fn set_status(&mut self, st: ExitStatus) {
        self.status = Some(st);
        if let Some(w) = self.log.as_mut() {
            let _ = writeln!(
                w,
                "[{:8.3}] # qemu exited: {st}",
                self.start.elapsed().as_secs_f64()
            );
            let _ = w.flush();
        }
    }

    /// Waits until a complete line not matched before satisfies `pred`, QEMU exits, or `deadline`.
    pub fn wait_for(&mut self, deadline: Instant, pred: impl FnMut(&str) -> bool) -> Wait {
        self.wait_inner(deadline, pred, false)
    }

    /// Like [`Session::wait_for`], but also tries the unfinished last line (a prompt has no
    /// newline); a match there consumes that line.
    pub fn wait_for_prompt(&mut self, deadline: Instant, pred: impl FnMut(&str) -> bool) -> Wait {
        self.wait_inner(deadline, pred, true)
    }

    fn wait_inner(
        &mut self,
        deadline: Instant,
        mut pred: impl FnMut(&str) -> bool,
        partial: bool,
    ) -> Wait {
        loop {
            while self.cursor < self.lines.len() {
                let i = self.cursor;
                self.cursor += 1;
                if pred(&self.lines[i].text) {
                    return Wait::Found(self.lines[i].clone());
                }
            }
            if partial && self.cursor == self.lines.len() && !self.partial.is_empty() {
                let text = String::from_utf8_lossy(&self.partial).to_string();
                if pred(&text) {
                    self.cursor += 1;
                    return Wait::Found(Line {
                        at: self.elapsed(),
                        text,
                    });
                }
            }
            if self.status.is_some() {
                return Wait::Exited;
            }
            if Instant::now() >= deadline {
                return Wait::Timeout;
            }
            // Poll in short slices so a partial line is re-examined as it grows.
            let slice = (Instant::now() + Duration::from_millis(200)).min(deadline);
            self.poll(slice);
        }
    }

    /// Waits for QEMU to exit by itself until `deadline`.
    pub fn wait_exit(&mut self, deadline: Instant) -> Option<ExitStatus> {
        while self.status.is_none() && Instant::now() < deadline {
            self.poll(deadline);
        }
        self.status
    }

    /// Kills the program (if still running) and collects the rest of its output.
    pub fn kill(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            if let Ok(st) = self.child.wait() {
                self.finish(st);
            }
        }
        if let Some(w) = self.log.as_mut() {
            let _ = w.flush();
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(a: Args) -> String {
        a.into_vec().join(" ")
    }

    /// The command lines the cases, the bench arms and `run` had before they shared a builder.
    #[test]
    fn args_spell_what_qemu_takes() {
        let (bin, disk) = (Path::new("/k.bin"), Path::new("/d.img"));
        assert_eq!(
            line(
                Args::machine("virt,virtualization=on", 2)
                    .kernel(bin)
                    .disk(disk)
            ),
            "-M virt,virtualization=on -cpu cortex-a72 -smp 2 -m 1G -kernel /k.bin \
             -drive if=none,format=raw,file=/d.img,id=hd0,snapshot=on \
             -device virtio-blk-device,drive=hd0"
        );
        assert_eq!(
            line(Args::new("virt", DEFAULT_CPU, None)),
            "-M virt -cpu cortex-a72 -m 1G"
        );
        assert_eq!(
            line(
                Args::new("virt,secure=on", "max", Some(4))
                    .bios(bin)
                    .disk_persistent(disk)
            ),
            "-M virt,secure=on -cpu max -smp 4 -m 1G -bios /k.bin \
             -drive if=none,format=raw,file=/d.img,id=hd0 -device virtio-blk-device,drive=hd0"
        );
        assert_eq!(
            line(
                Args::machine("virt", 1)
                    .kernel(Path::new("/Image"))
                    .initrd(Path::new("/i"))
                    .append("console=ttyAMA0 x")
            ),
            "-M virt -cpu cortex-a72 -smp 1 -m 1G -kernel /Image -initrd /i -append console=ttyAMA0 x"
        );
        assert_eq!(
            line(Args::dump_dtb("virt", 4, Path::new("/t.dtb"))),
            "-M virt,dumpdtb=/t.dtb -cpu cortex-a72 -smp 4 -m 1G -display none"
        );
        assert_eq!(
            line(
                Args::new("virt", "max", None)
                    .user_net("tftp=/r")
                    .dtb(Path::new("/u.dtb"))
            ),
            "-M virt -cpu max -m 1G -netdev user,id=n0,tftp=/r \
             -device virtio-net-device,netdev=n0 -dtb /u.dtb"
        );
    }

    fn sh(script: &str) -> Session {
        Session::spawn_program("sh", &["-c".to_string(), script.to_string()], None).unwrap()
    }

    fn soon(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    #[test]
    fn prompt_without_newline_is_seen_and_kill_is_prompt() {
        let mut s = sh("echo first; printf 'kexboot> '; exec sleep 30");
        match s.wait_for_prompt(soon(10_000), |l| l.starts_with("kexboot>")) {
            Wait::Found(l) => assert_eq!(l.text, "kexboot> "),
            w => panic!("{w:?}"),
        }
        // A complete-line wait does not see the unfinished line.
        assert!(matches!(
            s.wait_for(soon(300), |l| l.contains("kexboot")),
            Wait::Timeout
        ));
        let t0 = Instant::now();
        s.kill();
        assert!(t0.elapsed() < Duration::from_secs(5));
        assert!(s.status().is_some());
        assert_eq!(s.lines()[0].text, "first");
    }

    #[test]
    fn exit_and_lines_and_order() {
        let mut s = sh("printf 'a\\r\\nb\\n'; echo oops >&2; printf tail; exit 3");
        assert!(matches!(s.wait_for(soon(10_000), |_| false), Wait::Exited));
        let texts: Vec<_> = s.lines().iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["a", "b", "tail"]);
        assert!(s.lines().windows(2).all(|w| w[0].at <= w[1].at));
        assert_eq!(s.status().and_then(|st| st.code()), Some(3));
        assert!(s.stderr().contains("oops"));
    }

    #[test]
    fn timeout_and_typing() {
        let mut s = sh("read x; echo got:$x; exec sleep 30");
        assert!(matches!(
            s.wait_for(soon(200), |l| l.contains("got")),
            Wait::Timeout
        ));
        s.send(b"hi\n");
        match s.wait_for(soon(10_000), |l| l.starts_with("got:")) {
            Wait::Found(l) => assert_eq!(l.text, "got:hi"),
            w => panic!("{w:?}"),
        }
        assert!(s.wait_exit(soon(200)).is_none());
    }
}
