//! The lifecycle of `seh federate`'s processes and temporary directory (issue 18, item 7) and a
//! site that cannot load its data (item 8):
//! - SIGKILL of `seh federate`: its coordinator and nodes notice the lost parent and exit; the
//!   temporary directory left behind is 0700 and removed by the next run;
//! - SIGTERM: the children are stopped and the temporary directory (keys, configs, logs) removed;
//! - a malformed site CSV: the node's error, naming the file and line, reaches `seh federate`'s
//!   stderr and the run stops (instead of a long wait and "sites not connected").

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{workdir, Guard, SEH};

fn write_site(dir: &Path, name: &str, rows: usize) -> PathBuf {
    let mut text = String::from("x,y\n");
    for i in 0..rows {
        text.push_str(&format!("{},{}\n", (i * 7 % 23) as f64 / 2.0, i % 3));
    }
    let p = dir.join(format!("{name}.csv"));
    std::fs::write(&p, text).unwrap();
    p
}

/// Parent pid and state of process `pid` (from /proc), `None` if it does not exist.
fn stat(pid: u32) -> Option<(u32, char)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
    let rest = &text[text.rfind(')')? + 2..];
    let mut f = rest.split_whitespace();
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    Some((ppid, state))
}

fn alive(pid: u32) -> bool {
    stat(pid).is_some_and(|(_, state)| state != 'Z' && state != 'X')
}

fn children_of(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        if stat(pid).is_some_and(|(ppid, state)| ppid == parent && state != 'Z') {
            out.push(pid);
        }
    }
    out
}

fn temp_dirs(tmp: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("seh-federate-"))
        .map(|e| e.path())
        .collect()
}

/// Starts `seh federate describe` over two sites with its temporary directory under `tmp`, and
/// waits until it runs a ceremony coordinator and both nodes; returns it and their pids.
fn start_federate(tmp: &Path) -> (Guard, Vec<u32>) {
    let (a, b) = (write_site(tmp, "a", 40), write_site(tmp, "b", 40));
    let child = Command::new(SEH)
        .args(["federate", "describe", "--columns", "x,y", "--format", "json"])
        .arg(format!("--site=a={}", a.display()))
        .arg(format!("--site=b={}", b.display()))
        .env("TMPDIR", tmp)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let guard = Guard(child);
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let kids = children_of(pid);
        if kids.len() >= 3 {
            return (guard, kids);
        }
        assert!(Instant::now() < until, "seh federate did not start its processes within 60 s");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn wait_all_gone(pids: &[u32], limit: Duration) -> Vec<u32> {
    let until = Instant::now() + limit;
    loop {
        let left: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
        if left.is_empty() || Instant::now() > until {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigkill_of_federate_ends_its_children_and_the_next_run_removes_its_temp_dir() {
    let tmp = workdir("lifecycle-kill");
    let (mut fed, kids) = start_federate(&tmp);
    fed.0.kill().unwrap();
    fed.0.wait().unwrap();
    let left = wait_all_gone(&kids, Duration::from_secs(15));
    for p in &left {
        // Do not leave them running on failure.
        let _ = Command::new("kill").args(["-KILL", &p.to_string()]).status();
    }
    assert!(left.is_empty(), "children {left:?} of a SIGKILLed seh federate are still running");
    // The temporary directory (keys, site configs) survives SIGKILL, but owner-only …
    let dirs = temp_dirs(&tmp);
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dirs[0]).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", dirs[0].display());
    }
    // … and the next run removes it (here a run that fails at once on a missing file).
    std::thread::sleep(Duration::from_millis(1100));
    let out = Command::new(SEH)
        .args(["federate", "describe", "--columns", "x", "--site", "a=/nonexistent/a.csv"])
        .env("TMPDIR", &tmp)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("left behind by a run that was killed"), "{stderr}");
    assert!(temp_dirs(&tmp).is_empty(), "{:?}", temp_dirs(&tmp));
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn sigterm_of_federate_stops_its_children_and_removes_its_temp_dir() {
    let tmp = workdir("lifecycle-term");
    let (mut fed, kids) = start_federate(&tmp);
    let pid = fed.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = fed.0.wait().unwrap();
    // The handler exits with 128 + SIGTERM after stopping its children (not killed by the signal).
    assert_eq!(status.code(), Some(143), "{status}");
    // Stopped and reaped before the launcher exited.
    let left = wait_all_gone(&kids, Duration::from_millis(200));
    for p in &left {
        let _ = Command::new("kill").args(["-KILL", &p.to_string()]).status();
    }
    assert!(left.is_empty(), "children {left:?} of a SIGTERMed seh federate are still running");
    assert!(temp_dirs(&tmp).is_empty(), "temporary directory left: {:?}", temp_dirs(&tmp));
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn a_site_that_cannot_load_its_csv_is_reported_by_federate_naming_file_and_line() {
    let tmp = workdir("lifecycle-badcsv");
    let good = write_site(&tmp, "good", 40);
    let bad = tmp.join("bad.csv");
    std::fs::write(&bad, "x,y\n1,2\n3,4,5\n6,7\n").unwrap();
    let out = Command::new(SEH)
        .args(["federate", "describe", "--columns", "x", "--format", "json"])
        .arg(format!("--site=good={}", good.display()))
        .arg(format!("--site=bad={}", bad.display()))
        .env("TMPDIR", &tmp)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The site's own message, naming the researcher's file and the line, not a timeout.
    assert!(stderr.contains("site `bad` stopped"), "{stderr}");
    assert!(stderr.contains(&format!("{}: line 3: expected 2 fields", bad.display())), "{stderr}");
    assert!(!stderr.contains("not connected"), "{stderr}");
    assert!(temp_dirs(&tmp).is_empty(), "{:?}", temp_dirs(&tmp));
    std::fs::remove_dir_all(&tmp).unwrap();
}
