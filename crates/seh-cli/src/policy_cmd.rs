//! `seh policy template`: a site administrator's starting policy — the commented example policy
//! (`examples/policy/site-policy.toml`, embedded) with the researchers this site serves taken from
//! their public `member.json` files, and the two choices every deployment makes stated as flags.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use crate::keys_gen::{read_member, RoleArg};

/// The example policy, with every key explained.
const EXAMPLE: &str = include_str!("../../../examples/policy/site-policy.toml");

/// `seh policy …`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Write a site policy: the example policy serving the given researchers.
    Template(TemplateArgs),
}

/// Consent regime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RegimeArg {
    /// Patients without a research consent record are excluded.
    OptIn,
    /// Patients are included unless they opted out or a consent record denies it.
    OptOut,
}

/// Flags of `seh policy template`.
#[derive(Debug, Args)]
pub struct TemplateArgs {
    /// A researcher's public `member.json` (repeatable): the only researchers this site serves.
    #[arg(long = "researcher", required = true)]
    pub researchers: Vec<PathBuf>,
    /// Consent regime (the example's is opt-in, which needs a consent source at the node).
    #[arg(long, value_enum, default_value_t = RegimeArg::OptIn)]
    pub consent_regime: RegimeArg,
    /// Allow exact event-time grids (pooled Cox and Kaplan–Meier equal to the pooled fit; the
    /// union of event times is then revealed to the study's parties). Off in the example.
    #[arg(long)]
    pub allow_event_times: bool,
    /// The policy file to write (must not exist).
    #[arg(long)]
    pub out: PathBuf,
}

/// The example policy text with `researchers` (name, hex key) and the two choices applied.
pub fn template(researchers: &[(String, String)], regime: RegimeArg, allow_event_times: bool) -> Result<String> {
    let mut out = String::new();
    let mut skipping = false;
    let mut inserted = false;
    for line in EXAMPLE.lines() {
        if line.starts_with("[[researchers]]") {
            skipping = true;
            if !inserted {
                inserted = true;
                for (name, key) in researchers {
                    out.push_str(&format!("[[researchers]]\nname = {name:?}\nkey = {key:?}\n\n"));
                }
            }
            continue;
        }
        if skipping && line.starts_with("# ---") {
            skipping = false;
        }
        if skipping {
            continue;
        }
        if line.starts_with("regime = ") {
            let r = match regime {
                RegimeArg::OptIn => "opt-in",
                RegimeArg::OptOut => "opt-out",
            };
            out.push_str(&format!("regime = \"{r}\"\n"));
        } else if line.starts_with("allow_event_times = ") {
            out.push_str(&format!("allow_event_times = {allow_event_times}\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !inserted {
        bail!("the embedded example policy has no [[researchers]] section");
    }
    seh_policy::SitePolicy::from_toml_str(&out, "the generated policy")
        .map_err(|e| anyhow::anyhow!("the generated policy does not parse: {e}"))?;
    Ok(out)
}

/// Runs `seh policy …`.
pub fn run(cmd: PolicyCommand) -> Result<()> {
    match cmd {
        PolicyCommand::Template(a) => {
            if a.out.exists() {
                bail!("{} exists; remove it or choose another --out", a.out.display());
            }
            let mut researchers = Vec::new();
            for p in &a.researchers {
                let m = read_member(p, RoleArg::Researcher)?;
                researchers.push((m.name, m.key));
            }
            let text = template(&researchers, a.consent_regime, a.allow_event_times)?;
            std::fs::write(&a.out, text).with_context(|| format!("{}", a.out.display()))?;
            let names: Vec<&str> = researchers.iter().map(|(n, _)| n.as_str()).collect();
            println!("site policy written to {} (serves {})", a.out.display(), names.join(", "));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_serves_exactly_the_given_researchers_and_keeps_the_example_floors() {
        let key = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
        let text = template(&[("alice".into(), key.into())], RegimeArg::OptOut, true).unwrap();
        assert_eq!(text.lines().filter(|l| l.starts_with("[[researchers]]")).count(), 1, "{text}");
        assert!(text.contains("name = \"alice\"") && !text.contains("Dr. A. Example"));
        assert!(text.contains("regime = \"opt-out\"") && text.contains("allow_event_times = true"));
        let example = seh_policy::SitePolicy::from_toml_str(EXAMPLE, "example").unwrap();
        let ours = seh_policy::SitePolicy::from_toml_str(&text, "ours").unwrap();
        assert_eq!(format!("{:?}", example.disclosure()), format!("{:?}", ours.disclosure()));
        let default = template(&[("alice".into(), key.into())], RegimeArg::OptIn, false).unwrap();
        assert!(default.contains("regime = \"opt-in\"") && default.contains("allow_event_times = false"));
    }
}
