//! Helpers shared by the CLI integration tests (each test binary uses a subset).
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Child;

/// The `seh` binary under test.
pub const SEH: &str = env!("CARGO_BIN_EXE_seh");

/// Kills and reaps a child process when dropped, so a failing test leaves no process behind.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A fresh, empty directory `seh-test-<name>-<pid>` under the system temporary directory.
pub fn workdir(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("seh-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}
