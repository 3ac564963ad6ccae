//! docs/DEPLOY.md, run verbatim: every ```sh block of the guide in order (each with `bash -e`,
//! from one empty directory, `seh` on the PATH), each ```text block after one checked against
//! that block's output (`…` matches anything). Each party lives in its own directory with only
//! its own private key; the sites' nodes and the coordinator are separate processes started by
//! the guide's own commands. Then the studies of the guide's last step, with `--format json`,
//! must equal `seh fit` on the pooled rows: Cox pooled and stratified, KM, GLM and describe.
//! Finally no party's directory holds another party's private key.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::Value;

mod common;
use common::{workdir, SEH};

const GUIDE: &str = include_str!("../../../docs/DEPLOY.md");
const PARTIES: [&str; 5] = ["coordinator", "hospital-a", "hospital-b", "hospital-c", "alice"];

/// A code block of the guide: its language and text.
struct Block {
    lang: String,
    text: String,
}

fn blocks(md: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut current: Option<Block> = None;
    for line in md.lines() {
        match (&mut current, line.strip_prefix("```")) {
            (None, Some(lang)) => current = Some(Block { lang: lang.trim().to_owned(), text: String::new() }),
            (Some(_), Some("")) => out.extend(current.take()),
            (Some(b), _) => {
                b.text.push_str(line);
                b.text.push('\n');
            }
            (None, None) => {}
        }
    }
    out
}

/// One bash process that runs the guide's blocks in order, as a person would in one terminal:
/// the daemons a block starts with `&` are this shell's jobs, and are stopped with the shell's own
/// `kill` of its jobs (positive pids only) when the guide is done or the test fails.
struct Shell {
    child: Child,
    stdin: ChildStdin,
    out: BufReader<ChildStdout>,
    dir: PathBuf,
    n: usize,
}

const DONE: &str = "__seh_guide_block_done__";
const FAILED: &str = "__seh_guide_command_failed__";

impl Shell {
    fn start(dir: &Path) -> Shell {
        let mut child = Command::new("bash")
            .arg("--norc")
            .current_dir(dir)
            .env("PATH", path_with_seh())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        Shell { child, stdin, out, dir: dir.to_path_buf(), n: 0 }
    }

    /// Runs `text` in the shell itself (so its `&` jobs belong to the shell; stderr merged into
    /// stdout) and returns its output and whether every command succeeded: an `ERR` trap (with
    /// `set -E`) reports each failing command, where `set -e` would have stopped.
    fn run(&mut self, text: &str) -> (bool, String) {
        self.n += 1;
        let file = self.dir.join(format!(".guide-block-{}.sh", self.n));
        std::fs::write(&file, text).unwrap();
        if self.n == 1 {
            let setup = format!("set -E; trap 'echo \"{FAILED} $? in: $BASH_COMMAND\"' ERR\n");
            self.stdin.write_all(setup.as_bytes()).unwrap();
        }
        let cmd = format!("source {} 2>&1 < /dev/null; echo; echo {DONE}\n", file.display());
        self.stdin.write_all(cmd.as_bytes()).unwrap();
        self.stdin.flush().unwrap();
        let mut output = String::new();
        loop {
            let mut line = String::new();
            if self.out.read_line(&mut line).unwrap() == 0 {
                return (false, format!("{output}\n(the shell exited)"));
            }
            if line.trim_end() == DONE {
                return (!output.contains(FAILED), output);
            }
            output.push_str(&line);
        }
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        let _ = self.stdin.write_all(b"kill $(jobs -p) 2>/dev/null; wait; exit 0\n");
        let _ = self.stdin.flush();
        let _ = self.child.wait();
    }
}

fn path_with_seh() -> String {
    let bin = Path::new(SEH).parent().unwrap().display().to_string();
    format!("{bin}:{}", std::env::var("PATH").unwrap_or_default())
}

/// Whether `line` matches `pattern`, in which `…` stands for any text.
fn glob(line: &str, pattern: &str) -> bool {
    let (line, pattern) = (line.trim_end(), pattern.trim_end());
    let parts: Vec<&str> = pattern.split('…').collect();
    let [first, middle @ .., last] = parts.as_slice() else { return line == pattern };
    if !line.starts_with(first) || line.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &line[first.len()..];
    for p in middle {
        match rest.find(p) {
            Some(k) => rest = &rest[k + p.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// Every non-empty line of `expected` matches a line of `got`, in order.
fn matches_expected(got: &str, expected: &str) -> Result<(), String> {
    let mut lines = got.lines();
    for want in expected.lines().filter(|l| !l.trim().is_empty()) {
        if !lines.by_ref().any(|l| glob(l, want)) {
            return Err(format!("expected a line like `{want}`"));
        }
    }
    Ok(())
}

fn seh(dir: &Path, args: &[&str]) -> Value {
    let out = Command::new(SEH).args(args).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "seh {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("seh {args:?}: {e}"))
}

fn close(got: &Value, want: &Value, what: &str) {
    let (g, w) = (got.as_f64().unwrap_or(f64::NAN), want.as_f64().unwrap_or(f64::NAN));
    let rel = (g - w).abs() / w.abs().max(1e-300);
    assert!(rel < 1e-6 || (g - w).abs() < 1e-9, "{what}: federated {g} vs pooled {w} (relative {rel:.2e})");
}

fn same_terms(fed: &Value, pooled: &Value, fields: &[&str], what: &str) {
    let terms = pooled["terms"].as_array().unwrap();
    assert!(!terms.is_empty());
    for t in terms {
        let t = t.as_str().unwrap();
        for f in fields {
            close(&fed[*f][t], &pooled[*f][t], &format!("{what} {f}[{t}]"));
        }
    }
}

/// The pooled table: every site's rows, with a `site` column (1, 2, 3).
fn pooled_csv(base: &Path) -> PathBuf {
    let mut out = String::new();
    for (k, s) in ["hospital-a", "hospital-b", "hospital-c"].iter().enumerate() {
        let text = std::fs::read_to_string(base.join(s).join("rossi.csv")).unwrap();
        let mut lines = text.lines();
        let header = lines.next().unwrap();
        if out.is_empty() {
            out = format!("{header},site\n");
        }
        for l in lines {
            out.push_str(&format!("{l},{}\n", k + 1));
        }
    }
    let p = base.join("pooled.csv");
    std::fs::write(&p, out).unwrap();
    p
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn the_deployment_guide_runs_verbatim_and_equals_the_pooled_fit() {
    let base = workdir("deploy-guide");
    let mut shell = Shell::start(&base);
    let all = blocks(GUIDE);
    let mut last: Option<(String, String)> = None;
    let mut ran = 0;
    for b in &all {
        match b.lang.as_str() {
            "sh" => {
                let (ok, out) = shell.run(&b.text);
                assert!(ok, "a command of this guide block failed:\n{}\noutput:\n{out}", b.text);
                ran += 1;
                last = Some((b.text.clone(), out));
            }
            "text" => {
                let (cmd, got) = last.as_ref().expect("a text block follows a sh block");
                if let Err(e) = matches_expected(got, &b.text) {
                    panic!("guide output differs: {e}\ncommand:\n{cmd}\noutput:\n{got}");
                }
            }
            _ => {}
        }
    }
    assert!(ran >= 10, "the guide has {ran} sh blocks");

    // The guide's studies, as JSON, against `seh fit` on the pooled rows.
    let pooled = pooled_csv(&base);
    let data = pooled.display().to_string();
    let config = base.join("alice/researcher.toml").display().to_string();
    let run = |args: &[&str]| {
        let mut all = vec!["study", "run", "--config", &config, "--format", "json"];
        all.extend_from_slice(args);
        seh(&base, &all)
    };
    let formula = "Surv(week, arrest) ~ fin + age + prio";
    let fed = run(&["cox", "--formula", formula]);
    let want = seh(&base, &["fit", "cox", "--data", &data, "--formula", formula, "--format", "json"]);
    same_terms(&fed, &want, &["coef", "se"], "pooled cox");
    close(&fed["loglik"], &want["loglik"], "pooled cox loglik");
    assert_eq!(fed["federation"]["signature_verified"], true);

    let fed = run(&["cox", "--formula", formula, "--mode", "stratified"]);
    let strat = format!("{formula} + strata(site)");
    let want = seh(&base, &["fit", "cox", "--data", &data, "--formula", &strat, "--format", "json"]);
    same_terms(&fed, &want, &["coef", "se"], "stratified cox");
    close(&fed["loglik"], &want["loglik"], "stratified cox loglik");

    let km = "Surv(week, arrest) ~ fin";
    let fed = run(&["km", "--formula", km]);
    let want = seh(&base, &["fit", "km", "--data", &data, "--formula", km, "--format", "json"]);
    let (fs, ws) = (fed["strata"].as_array().unwrap(), want["strata"].as_array().unwrap());
    assert_eq!(fs.len(), ws.len());
    for (f, w) in fs.iter().zip(ws) {
        assert_eq!((&f["n"], &f["events"]), (&w["n"], &w["events"]), "km stratum {}", w["stratum"]);
        // R's median is NA where the curve never reaches 0.5 (both strata of Rossi): compare
        // the survival at the last time instead.
        assert_eq!(f["median"].is_null(), w["median"].is_null(), "km median defined");
        if !w["median"].is_null() {
            close(&f["median"], &w["median"], "km median");
        }
        close(
            f["surv"].as_array().unwrap().last().unwrap(),
            w["surv"].as_array().unwrap().last().unwrap(),
            "km final survival",
        );
    }
    close(&fed["logrank"]["chisq"], &want["logrank"]["chisq"], "log-rank chisq");

    let glm = "arrest ~ fin + age + prio";
    let fed = run(&["glm", "--formula", glm, "--family", "binomial"]);
    let want =
        seh(&base, &["fit", "glm", "--data", &data, "--formula", glm, "--family", "binomial", "--format", "json"]);
    same_terms(&fed, &want, &["coef", "se"], "glm");
    close(&fed["deviance"], &want["deviance"], "glm deviance");

    let fed = run(&["describe", "--columns", "age,prio"]);
    assert_eq!(fed["signature_verified"], true);
    let cols = fed["result"]["columns"].as_array().unwrap();
    assert_eq!(cols.len(), 2);
    assert_eq!(cols[0]["column"], "age");

    // Each party holds only its own private key, owner-only.
    let keys: Vec<(String, String)> = PARTIES
        .iter()
        .map(|p| {
            let path = base.join(p).join("identity/identity.key");
            let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
            assert_eq!(mode & 0o077, 0, "{} is readable by others", path.display());
            (p.to_string(), std::fs::read_to_string(&path).unwrap().trim().to_owned())
        })
        .collect();
    for party in PARTIES {
        for f in files(&base.join(party)) {
            let bytes = std::fs::read(&f).unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            for (owner, key) in &keys {
                if owner != party {
                    assert!(!text.contains(key.as_str()), "{} holds {owner}'s private key", f.display());
                }
            }
        }
    }
    drop(shell);
    let _ = std::fs::remove_dir_all(&base);
}
