//! The purpose-of-use codes of HL7 v3-ActReason (the concepts under `PurposeOfUse`, the binding
//! of FHIR R4 `Consent.provision.purpose`), with their place in the hierarchy.
//!
//! This table is the one place a purpose string is checked: the opt-out list, the node's consent
//! file, imported FHIR `Consent` resources, study specs and site policies all go through
//! [`check_purpose_code`]. Codes are case-sensitive, as HL7 defines them: `hresch` is not
//! `HRESCH`, and is refused (with the correct spelling in the message) rather than silently
//! matching nothing.

/// Every purpose-of-use concept of v3-ActReason as `(code, parent)`; `None`: directly under
/// `PurposeOfUse`. Transcribed from the HL7 Terminology (THO) expansion of the value set
/// `v3-PurposeOfUse`.
const PURPOSE_OF_USE: &[(&str, Option<&str>)] = &[
    ("HMARKT", None),
    ("HOPERAT", None),
    ("CAREMGT", Some("HOPERAT")),
    ("DONAT", Some("HOPERAT")),
    ("FRAUD", Some("HOPERAT")),
    ("GOV", Some("HOPERAT")),
    ("HACCRED", Some("HOPERAT")),
    ("HCOMPL", Some("HOPERAT")),
    ("HDECD", Some("HOPERAT")),
    ("HDIRECT", Some("HOPERAT")),
    ("HDM", Some("HOPERAT")),
    ("HLEGAL", Some("HOPERAT")),
    ("HOUTCOMS", Some("HOPERAT")),
    ("HPRGRP", Some("HOPERAT")),
    ("HQUALIMP", Some("HOPERAT")),
    ("HSYSADMIN", Some("HOPERAT")),
    ("LABELING", Some("HSYSADMIN")),
    ("METAMGT", Some("HSYSADMIN")),
    ("MEMADMIN", Some("HOPERAT")),
    ("MILCDM", Some("HOPERAT")),
    ("PATADMIN", Some("HOPERAT")),
    ("PATSFTY", Some("HOPERAT")),
    ("PERFMSR", Some("HOPERAT")),
    ("RECORDMGT", Some("HOPERAT")),
    ("SYSDEV", Some("HOPERAT")),
    ("HTEST", Some("SYSDEV")),
    ("TRAIN", Some("HOPERAT")),
    ("HPAYMT", None),
    ("CLMATTCH", Some("HPAYMT")),
    ("COVAUTH", Some("HPAYMT")),
    ("COVERAGE", Some("HPAYMT")),
    ("ELIGDTRM", Some("COVERAGE")),
    ("ELIGVER", Some("COVERAGE")),
    ("ENROLLM", Some("COVERAGE")),
    ("MILDCRG", Some("COVERAGE")),
    ("REMITADV", Some("HPAYMT")),
    ("HRESCH", None),
    ("BIORCH", Some("HRESCH")),
    ("CLINTRCH", Some("HRESCH")),
    ("CLINTRCHNPC", Some("CLINTRCH")),
    ("CLINTRCHPC", Some("CLINTRCH")),
    ("PRECLINTRCH", Some("CLINTRCH")),
    ("DSRCH", Some("HRESCH")),
    ("POARCH", Some("HRESCH")),
    ("TRANSRCH", Some("HRESCH")),
    ("PATRQT", None),
    ("FAMRQT", Some("PATRQT")),
    ("PWATRNY", Some("PATRQT")),
    ("SUPNWK", Some("PATRQT")),
    ("PUBHLTH", None),
    ("DISASTER", Some("PUBHLTH")),
    ("THREAT", Some("PUBHLTH")),
    ("TREAT", None),
    ("CLINTRL", Some("TREAT")),
    ("COC", Some("TREAT")),
    ("ETREAT", Some("TREAT")),
    ("BTG", Some("ETREAT")),
    ("ERTREAT", Some("ETREAT")),
    ("POPHLTH", Some("TREAT")),
];

/// Why a purpose string is not a v3-ActReason purpose-of-use code. The message never repeats
/// the rejected text (a misaligned CSV line could put a patient id in the purpose field); it
/// gives the correct spelling when the text differs from a code only by letter case.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum PurposeCodeError {
    /// The text is empty.
    #[error("empty (write a v3-ActReason purpose-of-use code such as HRESCH)")]
    Empty,
    /// The text is a code written in the wrong letter case.
    #[error("v3-ActReason codes are case-sensitive: write `{expected}`")]
    WrongCase {
        /// The code as HL7 spells it.
        expected: &'static str,
    },
    /// The text is no purpose-of-use code.
    #[error("not a v3-ActReason purpose-of-use code (such as HRESCH, CLINTRCH, PUBHLTH, TREAT)")]
    Unknown,
}

/// The code as the table spells it, if `code` is a purpose-of-use code (exact match).
pub fn purpose_code(code: &str) -> Option<&'static str> {
    PURPOSE_OF_USE.iter().find(|(c, _)| *c == code).map(|(c, _)| *c)
}

/// Checks that `code` is a v3-ActReason purpose-of-use code, exactly as HL7 spells it.
pub fn check_purpose_code(code: &str) -> Result<&'static str, PurposeCodeError> {
    if code.is_empty() {
        return Err(PurposeCodeError::Empty);
    }
    if let Some(c) = purpose_code(code) {
        return Ok(c);
    }
    match PURPOSE_OF_USE.iter().find(|(c, _)| c.eq_ignore_ascii_case(code)) {
        Some((c, _)) => Err(PurposeCodeError::WrongCase { expected: c }),
        None => Err(PurposeCodeError::Unknown),
    }
}

/// The parent of a purpose-of-use code (`None` for a top-level code or an unknown one).
pub(crate) fn parent(code: &str) -> Option<&'static str> {
    PURPOSE_OF_USE.iter().find(|(c, _)| *c == code).and_then(|(_, p)| *p)
}

/// Number of concepts in the table (bounds hierarchy walks).
pub(crate) const COUNT: usize = PURPOSE_OF_USE.len();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_parent_is_a_code_of_the_table_and_codes_are_unique() {
        for (i, (c, p)) in PURPOSE_OF_USE.iter().enumerate() {
            assert!(PURPOSE_OF_USE[..i].iter().all(|(d, _)| d != c), "{c} twice");
            if let Some(p) = p {
                assert!(purpose_code(p).is_some(), "{c}: parent {p} unknown");
            }
            assert!(c.bytes().all(|b| b.is_ascii_uppercase()), "{c}");
        }
    }

    #[test]
    fn codes_are_case_sensitive() {
        assert_eq!(check_purpose_code("HRESCH"), Ok("HRESCH"));
        assert_eq!(check_purpose_code("hresch"), Err(PurposeCodeError::WrongCase { expected: "HRESCH" }));
        assert_eq!(check_purpose_code("Hresch"), Err(PurposeCodeError::WrongCase { expected: "HRESCH" }));
        assert_eq!(check_purpose_code("RESEARCH"), Err(PurposeCodeError::Unknown));
        assert_eq!(check_purpose_code(""), Err(PurposeCodeError::Empty));
        assert!(!PurposeCodeError::Unknown.to_string().contains("RESEARCH"));
    }
}
