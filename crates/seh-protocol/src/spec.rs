//! The researcher's study specification and its signature.

use seh_crypto::wire::{SigningKey, StudyId, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ProtocolError;
use crate::hex;

/// Most columns one descriptive study may ask for.
pub const MAX_COLUMNS: usize = 64;
/// Most histogram bins per histogram.
pub const MAX_BINS: u32 = 10_000;
/// Most sites of a study under `aggregation = "he"` (the key set-up relays every site's public-key
/// share and key-share deal, about 0.2 MB each, in one transport frame of at most 8 MiB).
pub const MAX_HE_SITES: usize = 20;
/// Domain-separation prefix of the bytes a researcher signs.
pub const SPEC_SIGNING_CONTEXT: &[u8] = b"secur-e-health study spec v1\0";

/// A histogram on a public grid: `bins` equal bins over `[lo, hi]` (the last bin includes `hi`),
/// plus one bin below `lo` and one above `hi`.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistogramSpec {
    /// Column name.
    pub column: String,
    /// Lower edge.
    pub lo: f64,
    /// Upper edge.
    pub hi: f64,
    /// Number of bins in `[lo, hi]`.
    pub bins: u32,
}

/// Secure descriptive statistics: per column the count of non-missing values, mean, variance and
/// SD (from securely summed count, sum and sum of squares), and histograms.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DescribeSpec {
    /// Numeric columns.
    pub columns: Vec<String>,
    /// Histograms.
    #[serde(default)]
    pub histograms: Vec<HistogramSpec>,
}

/// What to compute.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Analysis {
    /// Secure descriptive statistics.
    Describe(DescribeSpec),
    /// Cox proportional-hazards regression (pooled-exact or site-stratified).
    Cox(crate::fed::CoxSpec),
    /// Kaplan–Meier curves and the log-rank test.
    Km(crate::fed::KmSpec),
    /// Generalised linear model by IRLS.
    Glm(crate::fed::GlmSpec),
}

impl Analysis {
    /// The analysis kind name used in site policies (`describe`).
    pub fn kind(&self) -> &'static str {
        match self {
            Analysis::Describe(_) => "describe",
            Analysis::Cox(_) => "cox",
            Analysis::Km(_) => "km",
            Analysis::Glm(_) => "glm",
        }
    }
}

/// The secure-sum back-end of a study (DESIGN §3): the same type site policies name.
pub use seh_policy::policy::Aggregation;

/// A study as the researcher submits it.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudySpec {
    /// 32 lower-case hex characters (a random 128-bit id).
    pub study_id: String,
    /// The researcher's name on the federation file.
    pub researcher: String,
    /// The analysis.
    pub analysis: Analysis,
    /// Participating site names.
    pub sites: Vec<String>,
    /// Secure-aggregation threshold `t`: the result needs `t` surviving sites, and up to `t − 1`
    /// colluding sites plus the coordinator learn nothing about another site's input.
    pub threshold: u32,
    /// Secure-sum back-end (`secagg` when absent).
    #[serde(default)]
    pub aggregation: Aggregation,
    /// Purpose of use (an HL7 v3-ActReason code; [`DEFAULT_PURPOSE`] when absent): each site
    /// serves it only if its policy lists it, and uses only rows whose patients consented to it.
    #[serde(default = "default_purpose")]
    pub purpose: String,
    /// Differential privacy: the ε each site spends from the researcher's budget; `None`: no DP
    /// noise. Describe studies only (see [`crate::policy`]).
    #[serde(default)]
    pub dp_epsilon: Option<f64>,
    /// The δ of the Gaussian noise (`None` with DP: [`crate::policy::DEFAULT_DP_DELTA`]).
    #[serde(default)]
    pub dp_delta: Option<f64>,
}

/// The purpose of use of a study that names none: v3-ActReason `HRESCH` (healthcare research).
pub const DEFAULT_PURPOSE: &str = "HRESCH";

fn default_purpose() -> String {
    DEFAULT_PURPOSE.to_owned()
}

fn bad(field: impl Into<String>, reason: impl Into<String>) -> ProtocolError {
    ProtocolError::invalid("study spec", field, reason)
}

fn check_name(field: String, name: &str) -> Result<(), ProtocolError> {
    if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
        return Err(bad(field, "must be 1..=128 characters without control characters"));
    }
    Ok(())
}

impl StudySpec {
    /// The binary study id. Errors: [`ProtocolError::Invalid`] unless 32 hex characters.
    pub fn id(&self) -> Result<StudyId, ProtocolError> {
        if self.study_id.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(bad("study_id", "must be lower-case hex"));
        }
        hex::decode_array::<16>(&self.study_id).map(StudyId).ok_or_else(|| bad("study_id", "must be 32 hex characters"))
    }

    /// Checks every field: id format, 1..=64 distinct columns, histogram grids (`lo < hi`, finite,
    /// 1..=10000 bins, at most one per column), at least two distinct sites, `threshold` a strict majority of the sites
    /// (SecAgg+ with the complete graph needs `2t > n`) and at least 2.
    pub fn validate(&self) -> Result<(), ProtocolError> {
        self.id()?;
        check_name("researcher".into(), &self.researcher)?;
        let d = match &self.analysis {
            Analysis::Describe(d) => d,
            other => return self.validate_model(other),
        };
        if d.columns.is_empty() || d.columns.len() > MAX_COLUMNS {
            return Err(bad("analysis.columns", format!("need 1..={MAX_COLUMNS} columns")));
        }
        for (i, c) in d.columns.iter().enumerate() {
            check_name(format!("analysis.columns[{i}]"), c)?;
            if d.columns[..i].contains(c) {
                return Err(bad(format!("analysis.columns[{i}]"), "duplicate column"));
            }
        }
        if d.histograms.len() > MAX_COLUMNS {
            return Err(bad("analysis.histograms", format!("at most {MAX_COLUMNS} histograms")));
        }
        for (i, h) in d.histograms.iter().enumerate() {
            check_name(format!("analysis.histograms[{i}].column"), &h.column)?;
            if !(h.lo.is_finite() && h.hi.is_finite() && h.lo < h.hi) {
                return Err(bad(format!("analysis.histograms[{i}]"), "need finite lo < hi"));
            }
            if h.bins == 0 || h.bins > MAX_BINS {
                return Err(bad(format!("analysis.histograms[{i}].bins"), format!("need 1..={MAX_BINS}")));
            }
            // Two histograms of one column with different lattices would difference each other.
            if d.histograms[..i].iter().any(|g| g.column == h.column) {
                return Err(bad(format!("analysis.histograms[{i}].column"), "at most one histogram per column"));
            }
        }
        self.validate_sites()
    }

    fn validate_model(&self, analysis: &Analysis) -> Result<(), ProtocolError> {
        let formula = match analysis {
            Analysis::Cox(c) => {
                if c.ties == seh_stats::cox::Ties::Exact {
                    return Err(bad("analysis.ties", "ties = \"exact\" is not available in a federation"));
                }
                if c.min_risk_set == 0 {
                    return Err(bad("analysis.min_risk_set", "must be at least 1"));
                }
                if c.time_resolution.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
                    return Err(bad("analysis.time_resolution", "must be finite and > 0"));
                }
                &c.formula
            }
            Analysis::Km(k) => {
                if seh_stats::km::ConfType::parse(&k.conf_type).is_none() {
                    return Err(bad("analysis.conf_type", "must be log, log-log, plain or none"));
                }
                &k.formula
            }
            Analysis::Glm(g) => {
                if seh_stats::glm::Family::parse(&g.family).is_none() {
                    return Err(bad("analysis.family", "must be binomial, gaussian or poisson"));
                }
                &g.formula
            }
            Analysis::Describe(_) => return Ok(()),
        };
        if formula.is_empty() || formula.len() > 4096 || formula.chars().any(char::is_control) {
            return Err(bad("analysis.formula", "must be 1..=4096 characters without control characters"));
        }
        seh_stats::formula::Formula::parse(formula).map_err(|e| bad("analysis.formula", e.to_string()))?;
        self.validate_sites()
    }

    fn validate_sites(&self) -> Result<(), ProtocolError> {
        if self.sites.len() < 2 {
            return Err(bad("sites", "need at least two sites"));
        }
        for (i, s) in self.sites.iter().enumerate() {
            if self.sites[..i].contains(s) {
                return Err(bad(format!("sites[{i}]"), "duplicate site"));
            }
        }
        let (t, n) = (self.threshold as usize, self.sites.len());
        if t < 2 || t > n || 2 * t <= n {
            return Err(bad("threshold", format!("must be a strict majority of the {n} sites and at least 2")));
        }
        self.validate_governance()?;
        if self.aggregation == Aggregation::He && n > MAX_HE_SITES {
            return Err(bad("aggregation", format!("`he` supports at most {MAX_HE_SITES} sites per study")));
        }
        Ok(())
    }

    /// Purpose code (1..=64 ASCII letters/digits) and DP parameters (ε finite and > 0; δ in
    /// (0, 1) and only with ε; DP only for describe studies).
    fn validate_governance(&self) -> Result<(), ProtocolError> {
        let p = &self.purpose;
        if let Err(e) = seh_policy::consent::check_purpose_code(p) {
            return Err(bad("purpose", e.to_string()));
        }
        if let Some(e) = self.dp_epsilon {
            if !(e.is_finite() && e > 0.0) {
                return Err(bad("dp_epsilon", "must be finite and > 0"));
            }
            if !matches!(self.analysis, Analysis::Describe(_)) {
                let kind = self.analysis.kind();
                return Err(bad("dp_epsilon", format!("differential privacy is not available for {kind}")));
            }
        }
        match (self.dp_epsilon, self.dp_delta) {
            (None, Some(_)) => Err(bad("dp_delta", "given without dp_epsilon")),
            (_, Some(d)) if !(d > 0.0 && d < 1.0) => Err(bad("dp_delta", "must be in (0, 1)")),
            _ => Ok(()),
        }
    }

    /// The smallest valid threshold for `n` sites (a strict majority, at least 2).
    pub fn default_threshold(n: usize) -> u32 {
        (n / 2 + 1).max(2) as u32
    }
}

/// A study spec as signed by the researcher: the exact JSON text and an Ed25519 signature over
/// [`SPEC_SIGNING_CONTEXT`] followed by that text.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedStudy {
    /// The spec, JSON.
    pub spec: String,
    /// Signature, 128 hex characters.
    pub signature: String,
}

fn signing_input(spec: &str) -> Vec<u8> {
    context_input(SPEC_SIGNING_CONTEXT, spec)
}

fn context_input(context: &[u8], text: &str) -> Vec<u8> {
    let mut m = context.to_vec();
    m.extend_from_slice(text.as_bytes());
    m
}

/// Signs `text` the way a researcher signs a study ([`SignedStudy`]): Ed25519 over `context`
/// (a domain-separation prefix ending in a NUL byte) followed by the text; returns the signature
/// as 128 hex characters.
pub(crate) fn sign_text(context: &[u8], text: &str, key: &SigningKey) -> String {
    hex::encode(&ed25519_sign(key, &context_input(context, text)))
}

/// Checks a signature made by [`sign_text`] under `key`. Errors: a signature that is not 128 hex
/// characters ([`ProtocolError::Invalid`] naming `what`) or does not verify
/// ([`ProtocolError::BadSignature`] naming `what` and `signer`).
pub(crate) fn verify_text(
    context: &[u8],
    text: &str,
    signature: &str,
    key: &VerifyingKey,
    what: &'static str,
    signer: &str,
) -> Result<(), ProtocolError> {
    let sig = hex::decode_array::<64>(signature)
        .ok_or_else(|| ProtocolError::invalid(what, "signature", "not 128 hex characters"))?;
    let sig = ed25519_dalek::Signature::from_bytes(&sig);
    key.verify_strict(&context_input(context, text), &sig)
        .map_err(|_| ProtocolError::BadSignature { what, signer: signer.to_owned() })
}

impl SignedStudy {
    /// Validates and signs `spec` with the researcher's key.
    pub fn sign(spec: &StudySpec, key: &SigningKey) -> Result<Self, ProtocolError> {
        spec.validate()?;
        let text = serde_json::to_string(spec).map_err(|e| ProtocolError::parse("study spec", &e))?;
        let signature = sign_text(SPEC_SIGNING_CONTEXT, &text, key);
        Ok(SignedStudy { spec: text, signature })
    }

    /// The spec without checking the signature (for routing and naming the researcher).
    pub fn unverified_spec(&self) -> Result<StudySpec, ProtocolError> {
        let spec: StudySpec = serde_json::from_str(&self.spec).map_err(|e| ProtocolError::parse("study spec", &e))?;
        spec.validate()?;
        Ok(spec)
    }

    /// Checks the signature under `researcher_key` and returns the validated spec.
    pub fn verify(&self, researcher_key: &VerifyingKey) -> Result<StudySpec, ProtocolError> {
        let spec = self.unverified_spec()?;
        let sig = hex::decode_array::<64>(&self.signature)
            .ok_or_else(|| ProtocolError::invalid("signed study", "signature", "not 128 hex characters"))?;
        let sig = ed25519_dalek::Signature::from_bytes(&sig);
        researcher_key
            .verify_strict(&signing_input(&self.spec), &sig)
            .map_err(|_| ProtocolError::BadSignature { what: "study spec", signer: spec.researcher.clone() })?;
        Ok(spec)
    }

    /// SHA-256 of the spec text, hex: what a release names to bind itself to this study.
    pub fn digest(&self) -> String {
        hex::encode(&Sha256::digest(self.spec.as_bytes()))
    }
}

fn ed25519_sign(key: &SigningKey, msg: &[u8]) -> [u8; 64] {
    use ed25519_dalek::Signer;
    key.sign(msg).to_bytes()
}
