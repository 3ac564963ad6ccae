//! `seh data sample`: one site's share of a public reference data set, for trying a federation
//! (docs/DEPLOY.md) without real patient data. The data sets are the ones the statistics are
//! checked against (`testdata/ref`, R `survival`), embedded in the binary; the split is the
//! reference split (`testdata/ref/sites`, column `site3`: three sites).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

const ROSSI: &str = include_str!("../../../testdata/ref/data/rossi.csv");
const ROSSI_SITES: &str = include_str!("../../../testdata/ref/sites/rossi.csv");

/// Flags of `seh data sample`.
#[derive(Debug, Args)]
pub struct SampleArgs {
    /// The data set (`rossi`: 432 released prisoners, time to re-arrest in weeks).
    #[arg(long, value_parser = ["rossi"])]
    pub dataset: String,
    /// Which of the three reference sites (1, 2 or 3); without it, every row (the pooled table).
    #[arg(long)]
    pub site: Option<u32>,
    /// The CSV file to write (must not exist).
    #[arg(long)]
    pub out: PathBuf,
}

/// The rows of site `site` (1-based, reference split `site3`), or all rows; with the header.
pub fn sample(site: Option<u32>) -> Result<String> {
    if site.is_some_and(|s| !(1..=3).contains(&s)) {
        bail!("--site must be 1, 2 or 3");
    }
    let mut lines = ROSSI.lines();
    let mut out = format!("{}\n", lines.next().context("empty data set")?);
    let split: Vec<u32> = ROSSI_SITES
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).and_then(|v| v.trim().parse().ok()).context("bad site split"))
        .collect::<Result<_>>()?;
    for (i, line) in lines.filter(|l| !l.trim().is_empty()).enumerate() {
        let at = *split.get(i).context("site split shorter than the data")?;
        if site.is_none_or(|s| s == at) {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

/// Runs `seh data sample`.
pub fn run(a: &SampleArgs) -> Result<()> {
    if a.out.exists() {
        bail!("{} exists; remove it or choose another --out", a.out.display());
    }
    let text = sample(a.site)?;
    if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
    }
    std::fs::write(&a.out, &text).with_context(|| format!("{}", a.out.display()))?;
    let rows = text.lines().count() - 1;
    match a.site {
        Some(s) => println!("{rows} rows of {} (reference site {s} of 3) written to {}", a.dataset, a.out.display()),
        None => println!("{rows} rows of {} (all sites) written to {}", a.dataset, a.out.display()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_three_sites_partition_the_rows() {
        let all = super::sample(None).unwrap().lines().count() - 1;
        let parts: usize = (1..=3).map(|s| super::sample(Some(s)).unwrap().lines().count() - 1).sum();
        assert_eq!((all, parts), (432, 432));
        assert!(super::sample(Some(4)).is_err());
    }
}
