//! `seh demo`: until the federation runtime exists, a local Cox fit on the
//! bundled Stanford heart transplant data (counting-process form), printed
//! like R's `summary(coxph)`.

use anyhow::anyhow;
use clap::Args;
use seh_stats::formula::Formula;
use seh_stats::model::{ModelFrame, ModelKind};
use seh_stats::DataFrame;

use crate::fit::{fit_frame, FitConfig, Format, ModelConfig};

/// The Stanford heart transplant data (testdata/ref/data/heart.csv), built into the binary.
const HEART: &[u8] = include_bytes!("../../../testdata/ref/data/heart.csv");

/// The demonstration model: time-dependent transplant status, Efron ties.
pub const DEMO_FORMULA: &str = "Surv(start, stop, event) ~ age + year + surgery + transplant";

/// `seh demo` (no options yet).
#[derive(Debug, Args)]
pub struct DemoArgs {}

/// Runs the demo: fits the heart model and prints the summary.
pub fn run(_args: DemoArgs) -> anyhow::Result<()> {
    let data = DataFrame::from_csv_bytes(HEART, "heart.csv").map_err(|e| anyhow!("{e}"))?;
    let formula = Formula::parse(DEMO_FORMULA).map_err(|e| anyhow!("{e}"))?;
    // Validate the frame first so a broken bundle fails with a clear message.
    ModelFrame::build(&data, &formula, ModelKind::Cox).map_err(|e| anyhow!("heart.csv: {e}"))?;
    let config = FitConfig {
        data: "heart.csv".into(),
        formula,
        format: Format::Text,
        model: ModelConfig::Cox { ties: seh_stats::cox::Ties::Efron, tt: None },
    };
    let mut text = String::from(
        "Secur-e-Health demo: Stanford heart transplant study (103 patients, 172 counting-process rows),\n\
         Cox model with time-dependent transplant status, fitted locally.\n\n",
    );
    text.push_str(&fit_frame(&config, &data, "heart.csv")?);
    text.push_str(
        "\nThe federated demo (a coordinator and three sites with mTLS and secure aggregation)\n\
         arrives with the federation runtime.\n",
    );
    crate::output::emit(&text)?;
    Ok(())
}
