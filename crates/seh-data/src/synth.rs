//! Deterministic synthetic FHIR R4 bulk exports (`seh data synth`).
//!
//! A chronic-kidney-disease style cohort: patients aged 40–85 on
//! 2015-01-01, diabetes and hypertension diagnosed before it, heart failure
//! with onsets before and during follow-up, creatinine measured every one to
//! thirteen months with a patient-specific trend and the matching CKD-EPI
//! 2021 eGFR, deaths driven by age, sex, diabetes, heart failure and
//! creatinine, and consent records (mostly research permits, some denials,
//! some nested exceptions) plus an opt-out list. Site sizes vary.
//!
//! Each site directory gets `Patient.ndjson`, `Condition.ndjson`,
//! `Observation.ndjson`, `Encounter.ndjson`, `Procedure.ndjson`,
//! `MedicationStatement.ndjson`, `Consent.ndjson` and `opt_out.csv`; with
//! `flat`, also `flat_patients.csv`, `flat_conditions.csv` and
//! `flat_labs.csv`, written from the generator's own records (not from the
//! FHIR files) for independent checks such as the R `tmerge` reference.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use seh_fhir::date::days_from_civil;
use seh_fhir::FhirDate;

use crate::error::DataError;

/// SNOMED CT system URI.
pub const SNOMED: &str = "http://snomed.info/sct";
/// LOINC system URI.
pub const LOINC: &str = "http://loinc.org";
/// SNOMED: diabetes mellitus.
pub const DIABETES: &str = "44054006";
/// SNOMED: hypertensive disorder.
pub const HYPERTENSION: &str = "38341003";
/// SNOMED: heart failure.
pub const HEART_FAILURE: &str = "84114007";
/// LOINC: creatinine, serum/plasma, mass/volume (mg/dL).
pub const CREATININE: &str = "2160-0";
/// LOINC: eGFR CKD-EPI 2021 (mL/min/1.73m2).
pub const EGFR: &str = "98979-8";

/// Parameters of a synthetic export.
#[derive(Clone, Debug)]
pub struct SynthParams {
    /// Patients over all sites (>= sites).
    pub patients: usize,
    /// Number of sites (>= 1).
    pub sites: usize,
    /// RNG seed: equal parameters give byte-identical files.
    pub seed: u64,
    /// Also write flat CSV exports of the ground truth.
    pub flat: bool,
}

/// What was written for one site.
#[derive(Clone, Debug)]
pub struct SiteOutput {
    /// The site directory.
    pub dir: PathBuf,
    /// Patients at the site.
    pub patients: usize,
    /// Resources written.
    pub resources: usize,
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    // Box–Muller.
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn date(day: i64) -> String {
    FhirDate::from_day_number(day).to_string()
}

fn cc(system: &str, code: &str, display: &str) -> Value {
    json!({"coding": [{"system": system, "code": code, "display": display}]})
}

/// CKD-EPI 2021 eGFR from creatinine (mg/dL), age (years) and sex.
pub fn egfr_ckd_epi_2021(scr: f64, age: f64, female: bool) -> f64 {
    let (kappa, alpha) = if female { (0.7, -0.241) } else { (0.9, -0.302) };
    let r = scr / kappa;
    142.0 * r.min(1.0).powf(alpha) * r.max(1.0).powf(-1.200) * 0.9938f64.powf(age) * if female { 1.012 } else { 1.0 }
}

struct Writers {
    files: Vec<(&'static str, BufWriter<fs::File>)>,
    count: usize,
}

impl Writers {
    fn new(dir: &Path) -> Result<Self, DataError> {
        let mut files = Vec::new();
        for t in ["Patient", "Condition", "Observation", "Encounter", "Procedure", "MedicationStatement", "Consent"] {
            let p = dir.join(format!("{t}.ndjson"));
            let f = fs::File::create(&p).map_err(|e| DataError::Io { path: p, message: e.to_string() })?;
            files.push((t, BufWriter::new(f)));
        }
        Ok(Writers { files, count: 0 })
    }

    fn put(&mut self, v: &Value) -> std::io::Result<()> {
        let t = v["resourceType"].as_str().unwrap_or("");
        if let Some((_, w)) = self.files.iter_mut().find(|(n, _)| *n == t) {
            serde_json::to_writer(&mut *w, v)?;
            w.write_all(b"\n")?;
            self.count += 1;
        }
        Ok(())
    }
}

/// Writes the export under `out/site1 … out/siteK`.
///
/// # Errors
/// I/O failures, naming the file.
pub fn generate(params: &SynthParams, out: &Path) -> Result<Vec<SiteOutput>, DataError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e: std::io::Error| DataError::Io { path: p, message: e.to_string() }
    };
    let sites = params.sites.max(1);
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
    // Varied site sizes: weights uniform in [0.4, 2.0].
    let w: Vec<f64> = (0..sites).map(|_| rng.gen_range(0.4..2.0)).collect();
    let total: f64 = w.iter().sum();
    let mut sizes: Vec<usize> = w.iter().map(|x| ((x / total) * params.patients as f64).floor() as usize).collect();
    let assigned: usize = sizes.iter().sum();
    if let Some(first) = sizes.first_mut() {
        *first += params.patients.saturating_sub(assigned);
    }
    let mut outputs = Vec::new();
    for (s, &n) in sizes.iter().enumerate() {
        let dir = out.join(format!("site{}", s + 1));
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let mut site_rng =
            ChaCha8Rng::seed_from_u64(params.seed ^ (0x9E37_79B9_7F4A_7C15u64.wrapping_mul(s as u64 + 1)));
        let resources = write_site(&mut site_rng, s + 1, n, &dir, params.flat)?;
        outputs.push(SiteOutput { dir, patients: n, resources });
    }
    Ok(outputs)
}

struct Flat {
    patients: BufWriter<fs::File>,
    conditions: BufWriter<fs::File>,
    labs: BufWriter<fs::File>,
}

fn create(dir: &Path, name: &str, header: &str) -> Result<BufWriter<fs::File>, DataError> {
    let p = dir.join(name);
    let f = fs::File::create(&p).map_err(|e| DataError::Io { path: p.clone(), message: e.to_string() })?;
    let mut w = BufWriter::new(f);
    writeln!(w, "{header}").map_err(|e| DataError::Io { path: p, message: e.to_string() })?;
    Ok(w)
}

fn write_site(rng: &mut ChaCha8Rng, site: usize, n: usize, dir: &Path, flat: bool) -> Result<usize, DataError> {
    let ioe = |e: std::io::Error| DataError::Io { path: dir.to_path_buf(), message: e.to_string() };
    let mut w = Writers::new(dir)?;
    let mut flat = if flat {
        Some(Flat {
            patients: create(dir, "flat_patients.csv", "id,gender,birth_date,deceased,death_date")?,
            conditions: create(dir, "flat_conditions.csv", "id,code,onset_date,verification")?,
            labs: create(dir, "flat_labs.csv", "id,code,date,value,status")?,
        })
    } else {
        None
    };
    let mut opt_out = create(dir, "opt_out.csv", "patient,purpose,date")?;
    let index = days_from_civil(2015, 1, 1);
    let horizon = days_from_civil(2021, 12, 31);
    let first_lab = days_from_civil(2013, 1, 1);
    let org = format!("site{site}");
    for i in 0..n {
        let pid = format!("s{site}-p{i:06}");
        let subject = json!({"reference": format!("Patient/{pid}")});
        let female = rng.gen_bool(0.5);
        let gender = if rng.gen_bool(0.01) {
            "unknown"
        } else if female {
            "female"
        } else {
            "male"
        };
        let age0: f64 = rng.gen_range(40.0..85.0);
        let birth = index - (age0 * 365.25) as i64;
        let diabetes = rng.gen_bool(0.25);
        let hypertension = rng.gen_bool(0.4);
        // Heart failure: prevalent (before index) or incident during follow-up.
        let hf_onset = if rng.gen_bool(0.06) {
            Some(index - rng.gen_range(30..3000))
        } else if rng.gen_bool(0.25) {
            Some(index + rng.gen_range(1..2500))
        } else {
            None
        };
        let base_creat =
            (if female { 0.8 } else { 1.0 }) * (0.25 * normal(rng)).exp() * if diabetes { 1.15 } else { 1.0 };
        let slope = if rng.gen_bool(0.3) { rng.gen_range(0.05..0.3) } else { rng.gen_range(-0.02..0.03) };
        let creat_at = |day: i64| base_creat * (slope * (day - index) as f64 / 365.25).exp();
        // Death: monthly steps from 2013 to the horizon.
        let mut death: Option<i64> = None;
        let mut t = first_lab;
        while t < horizon {
            let age = (t - birth) as f64 / 365.25;
            let hf = hf_onset.is_some_and(|o| o <= t);
            let lin = 0.06 * (age - 65.0)
                + if gender == "male" { 0.3 } else { 0.0 }
                + if diabetes { 0.4 } else { 0.0 }
                + if hf { 0.9 } else { 0.0 }
                + 0.7 * (creat_at(t) - 1.0).min(4.0);
            let h = 0.00012 * lin.exp();
            if rng.gen_bool((1.0 - (-h * 30.0).exp()).clamp(0.0, 1.0)) {
                death = Some(t + rng.gen_range(0..30));
                break;
            }
            t += 30;
        }
        let death = death.filter(|d| *d <= horizon);
        let unknown_death_date = death.is_some() && rng.gen_bool(0.01);
        let mut patient = json!({
            "resourceType": "Patient", "id": pid, "meta": {"versionId": "1"},
            "identifier": [{"system": format!("urn:seh:{org}:mrn"), "value": format!("MRN{site}{i:07}")}],
            "name": [{"family": "Synthetic", "given": [format!("P{i}")]}],
            "gender": gender, "birthDate": date(birth),
            "managingOrganization": {"display": org}
        });
        match (death, unknown_death_date) {
            (Some(_), true) => patient["deceasedBoolean"] = json!(true),
            (Some(d), false) => patient["deceasedDateTime"] = json!(format!("{}T12:00:00Z", date(d))),
            (None, _) => patient["deceasedBoolean"] = json!(false),
        }
        w.put(&patient).map_err(ioe)?;
        if let Some(f) = flat.as_mut() {
            let (dec, dd) = match (death, unknown_death_date) {
                (Some(_), true) => (1, String::new()),
                (Some(d), false) => (1, date(d)),
                (None, _) => (0, String::new()),
            };
            writeln!(f.patients, "{pid},{gender},{},{dec},{dd}", date(birth)).map_err(ioe)?;
        }
        let alive_until = death.unwrap_or(horizon);
        let mut conds: Vec<(&str, &str, i64)> = Vec::new();
        if diabetes {
            conds.push((DIABETES, "Diabetes mellitus", index - rng.gen_range(30..5000)));
        } else if rng.gen_bool(0.05) {
            conds.push((DIABETES, "Diabetes mellitus", index + rng.gen_range(1..2000)));
        }
        if hypertension {
            conds.push((HYPERTENSION, "Hypertensive disorder", index - rng.gen_range(30..6000)));
        }
        if let Some(o) = hf_onset {
            conds.push((HEART_FAILURE, "Heart failure", o));
            if rng.gen_bool(0.1) {
                // A later duplicate record of the same diagnosis.
                conds.push((HEART_FAILURE, "Heart failure", o + rng.gen_range(10..400)));
            }
        }
        for (k, (code, display, onset)) in conds.into_iter().enumerate() {
            if onset > alive_until {
                continue;
            }
            let verification = if rng.gen_bool(0.03) { "entered-in-error" } else { "confirmed" };
            let c = json!({
                "resourceType": "Condition", "id": format!("{pid}-c{k}"), "meta": {"versionId": "1"},
                "clinicalStatus": cc("http://terminology.hl7.org/CodeSystem/condition-clinical", "active", "Active"),
                "verificationStatus": cc("http://terminology.hl7.org/CodeSystem/condition-ver-status", verification, verification),
                "code": {"coding": [{"system": SNOMED, "code": code, "display": display}], "text": display},
                "subject": subject, "onsetDateTime": date(onset), "recordedDate": date(onset.max(first_lab))
            });
            w.put(&c).map_err(ioe)?;
            if let Some(f) = flat.as_mut() {
                writeln!(f.conditions, "{pid},{code},{},{verification}", date(onset)).map_err(ioe)?;
            }
        }
        // Labs: creatinine and eGFR on distinct days, every 30–400 days.
        let mut day = first_lab + rng.gen_range(0..365);
        let mut k = 0;
        while day < alive_until.min(horizon) {
            let age = (day - birth) as f64 / 365.25;
            let scr = (creat_at(day) * (0.08 * normal(rng)).exp() * 100.0).round() / 100.0;
            let egfr = egfr_ckd_epi_2021(scr, age, female).round();
            let status = if rng.gen_bool(0.02) { "cancelled" } else { "final" };
            let enc_id = format!("{pid}-e{k}");
            let enc = json!({
                "resourceType": "Encounter", "id": enc_id, "status": "finished",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                "subject": subject,
                "period": {"start": format!("{}T09:00:00Z", date(day)), "end": format!("{}T09:30:00Z", date(day))}
            });
            w.put(&enc).map_err(ioe)?;
            for (code, display, value, unit) in
                [(CREATININE, "Creatinine", scr, "mg/dL"), (EGFR, "eGFR CKD-EPI 2021", egfr, "mL/min/{1.73_m2}")]
            {
                let o = json!({
                    "resourceType": "Observation", "id": format!("{pid}-o{k}-{code}"), "status": status,
                    "category": [cc("http://terminology.hl7.org/CodeSystem/observation-category", "laboratory", "Laboratory")],
                    "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
                    "subject": subject, "encounter": {"reference": format!("Encounter/{enc_id}")},
                    "effectiveDateTime": format!("{}T09:10:00+01:00", date(day)),
                    "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
                });
                w.put(&o).map_err(ioe)?;
                if let Some(f) = flat.as_mut() {
                    writeln!(f.labs, "{pid},{code},{},{value},{status}", date(day)).map_err(ioe)?;
                }
            }
            k += 1;
            day += rng.gen_range(30..400);
        }
        if diabetes {
            let m = json!({
                "resourceType": "MedicationStatement", "id": format!("{pid}-m0"), "status": "active",
                "medicationCodeableConcept": cc("http://www.nlm.nih.gov/research/umls/rxnorm", "860975", "metformin 500 MG"),
                "subject": subject, "effectivePeriod": {"start": date(index - rng.gen_range(0..2000))}
            });
            w.put(&m).map_err(ioe)?;
        }
        if creat_at(alive_until.min(horizon)) > 4.0 {
            let start = index + rng.gen_range(0..2000);
            if start < alive_until {
                let p = json!({
                    "resourceType": "Procedure", "id": format!("{pid}-x0"), "status": "completed",
                    "code": cc(SNOMED, "108241001", "Dialysis procedure"),
                    "subject": subject, "performedDateTime": date(start)
                });
                w.put(&p).map_err(ioe)?;
            }
        }
        // Consent: 90 % research permit, 6 % deny, 4 % permit with a nested marketing deny.
        let u: f64 = rng.gen();
        let research = json!([{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HRESCH"}]);
        let consent_date = index - rng.gen_range(0..1500);
        let provision = if u < 0.90 {
            json!({"type": "permit", "period": {"start": date(consent_date)}, "purpose": research})
        } else if u < 0.96 {
            json!({"type": "deny", "purpose": research})
        } else {
            json!({"type": "permit", "purpose": research, "provision": [{"type": "deny",
                "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HMARKT"}]}]})
        };
        let rule = if (0.90..0.96).contains(&u) { "OPTOUT" } else { "OPTIN" };
        let consent = json!({
            "resourceType": "Consent", "id": format!("{pid}-k0"), "status": "active",
            "scope": cc("http://terminology.hl7.org/CodeSystem/consentscope", "research", "Research"),
            "category": [cc(LOINC, "57016-8", "Privacy policy acknowledgment Document")],
            "patient": subject, "dateTime": date(consent_date),
            "policyRule": cc("http://terminology.hl7.org/CodeSystem/v3-ActCode", rule, rule),
            "provision": provision
        });
        w.put(&consent).map_err(ioe)?;
        if rng.gen_bool(0.03) {
            writeln!(opt_out, "{pid},HRESCH,{}", date(index + rng.gen_range(0..1000))).map_err(ioe)?;
        }
    }
    for (_, f) in w.files.iter_mut() {
        f.flush().map_err(ioe)?;
    }
    opt_out.flush().map_err(ioe)?;
    if let Some(mut f) = flat {
        f.patients.flush().map_err(ioe)?;
        f.conditions.flush().map_err(ioe)?;
        f.labs.flush().map_err(ioe)?;
    }
    Ok(w.count)
}
