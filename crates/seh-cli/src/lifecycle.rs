//! The processes and temporary directories of local runs (`seh federate`, `seh demo`,
//! `seh bench`), and what happens to them when the launcher ends.
//!
//! - Every child runs in its own process group (a Ctrl-C at the terminal reaches only the
//!   launcher, which then stops the children in order) and is killed and reaped when its
//!   [`ChildGuard`] is dropped: on a normal return, an error or a panic.
//! - SIGINT, SIGTERM and SIGHUP of the launcher are handled ([`install_signal_handler`]): every
//!   registered child is killed and reaped, every registered temporary directory removed, and the
//!   process exits with 128 + the signal number.
//! - SIGKILL cannot be handled. Each child is started with `--exit-with-parent` and its standard
//!   input a pipe whose only writer is the launcher: when the launcher dies, for whatever reason,
//!   the kernel closes the pipe and the child reads end-of-file and exits
//!   ([`exit_when_stdin_closes`]). A temporary directory a SIGKILLed launcher leaves behind is
//!   created 0700 and removed by the next run ([`crate::workdir`]).

use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, Once};

use anyhow::{Context, Result};

/// The hidden global flag a launcher passes to its children.
pub const EXIT_WITH_PARENT: &str = "--exit-with-parent";

/// Exit code of a child whose launcher went away.
const EXIT_PARENT_GONE: i32 = 4;

#[derive(Default)]
struct Registry {
    next: u64,
    children: Vec<(u64, Arc<Mutex<Child>>)>,
    dirs: Vec<PathBuf>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry { next: 0, children: Vec::new(), dirs: Vec::new() });

fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

fn lock(c: &Mutex<Child>) -> MutexGuard<'_, Child> {
    c.lock().unwrap_or_else(|p| p.into_inner())
}

/// A child process: killed and reaped when dropped, and by the signal handler.
#[derive(Debug)]
pub struct ChildGuard {
    child: Arc<Mutex<Child>>,
    id: u64,
    /// The write end of the child's stdin: dropped (closed) only with the guard or the process.
    _stdin: Option<ChildStdin>,
}

impl ChildGuard {
    /// Spawns `cmd` (a `seh` subcommand) in its own process group with `--exit-with-parent` and
    /// a stdin pipe held by this process, and registers it for the signal handler.
    pub fn spawn(mut cmd: Command) -> Result<ChildGuard> {
        install_signal_handler();
        cmd.arg(EXIT_WITH_PARENT).stdin(Stdio::piped());
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn().with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
        let stdin = child.stdin.take();
        let child = Arc::new(Mutex::new(child));
        let mut r = registry();
        r.next += 1;
        let id = r.next;
        r.children.push((id, child.clone()));
        Ok(ChildGuard { child, id, _stdin: stdin })
    }

    /// The child's exit status if it has exited (reaping it), else `None`.
    pub fn try_wait(&self) -> std::io::Result<Option<ExitStatus>> {
        lock(&self.child).try_wait()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        registry().children.retain(|(id, _)| *id != self.id);
        let mut c = lock(&self.child);
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// Registers a temporary directory the signal handler removes.
pub fn register_dir(path: PathBuf) {
    install_signal_handler();
    registry().dirs.push(path);
}

/// Forgets a temporary directory (its owner removes it).
pub fn unregister_dir(path: &std::path::Path) {
    registry().dirs.retain(|d| d != path);
}

/// Kills and reaps every registered child, then removes every registered directory.
fn stop_everything() {
    let mut r = registry();
    for (_, c) in r.children.drain(..) {
        let mut c = lock(&c);
        let _ = c.kill();
        let _ = c.wait();
    }
    for d in r.dirs.drain(..) {
        let _ = std::fs::remove_dir_all(&d);
    }
}

/// Installs (once) a thread that turns SIGINT, SIGTERM and SIGHUP into: stop every child,
/// remove every temporary directory, exit with 128 + the signal number.
pub fn install_signal_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("seh: cannot watch for signals ({e}); children may outlive an interrupt");
                    return;
                }
            };
            // Register in this thread, so a signal right after `spawn` is already caught.
            let signals = rt.block_on(async {
                let mut out = Vec::new();
                for (kind, num) in
                    [(SignalKind::interrupt(), 2), (SignalKind::terminate(), 15), (SignalKind::hangup(), 1)]
                {
                    out.push((signal(kind)?, num));
                }
                Ok::<_, std::io::Error>(out)
            });
            let signals = match signals {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("seh: cannot watch for signals ({e}); children may outlive an interrupt");
                    return;
                }
            };
            std::thread::spawn(move || {
                let num = rt.block_on(async move {
                    let mut signals = signals;
                    let waits = signals.iter_mut().map(|(s, num)| {
                        let num = *num;
                        Box::pin(async move {
                            s.recv().await;
                            num
                        })
                    });
                    futures_select_all(waits.collect()).await
                });
                eprintln!("seh: interrupted (signal {num}); stopping the processes it started");
                stop_everything();
                std::process::exit(128 + num);
            });
        }
    });
}

/// The first of `futs` to finish.
async fn futures_select_all<F: std::future::Future<Output = i32> + Unpin>(mut futs: Vec<F>) -> i32 {
    std::future::poll_fn(move |cx| {
        for f in futs.iter_mut() {
            if let std::task::Poll::Ready(v) = std::pin::Pin::new(f).poll(cx) {
                return std::task::Poll::Ready(v);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// With `--exit-with-parent`: a thread that reads standard input (the launcher's pipe) and exits
/// the process when it reaches end-of-file, that is when the launcher died.
pub fn exit_when_stdin_closes() {
    std::thread::spawn(|| {
        use std::io::Read;
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 64];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) => break,
                Err(e) if e.kind() != std::io::ErrorKind::Interrupted => break,
                _ => {}
            }
        }
        eprintln!("seh: the process that started this one has ended; exiting");
        std::process::exit(EXIT_PARENT_GONE);
    });
}
