//! GLMs against R `glm` references (`testdata/ref/expected/logistic_*.json`,
//! `testdata/ref-extra/glm_*.json`): every field, 1e-6 relative.

use seh_stats::glm::{
    glm_fit, glm_fit_with, Family, GlmControl, GlmData, GlmError, GlmFit, GlmPieces, GlmSource, GlmSpec, IrlsPoint,
};
use seh_stats::DataFrame;
use serde_json::Value;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata");

fn load_json(rel: &str) -> Value {
    let path = format!("{ROOT}/{rel}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn load_csv(rel: &str) -> DataFrame {
    let path = format!("{ROOT}/{rel}");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    DataFrame::from_csv_bytes(&bytes, rel).unwrap()
}

struct Check {
    max: f64,
    fields: usize,
}

impl Check {
    fn one(&mut self, what: &str, got: f64, want: &Value) {
        let w = want.as_f64().unwrap_or_else(|| panic!("{what}: reference is not a number"));
        let d = (got - w).abs();
        let e = if d <= 1e-9 { 0.0 } else { d / w.abs() };
        assert!(e <= 1e-6, "{what}: got {got}, want {w} (rel err {e})");
        let raw = if w != 0.0 { d / w.abs() } else { d };
        self.max = self.max.max(raw);
        self.fields += 1;
    }
}

/// Design with an intercept and the named columns.
fn design(df: &DataFrame, terms: &[String]) -> Vec<f64> {
    let n = df.nrows();
    let p = terms.len();
    let mut x = vec![0.0; n * p];
    for (j, t) in terms.iter().enumerate() {
        let col: Vec<f64> = if t == "(Intercept)" { vec![1.0; n] } else { df.column(t).unwrap().to_vec() };
        for i in 0..n {
            x[i * p + j] = col[i];
        }
    }
    x
}

fn check_fit(fit: &GlmFit, e: &Value, name: &str) -> Check {
    let mut c = Check { max: 0.0, fields: 0 };
    let terms: Vec<String> = e["terms"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect();
    assert_eq!(fit.terms, terms);
    let stat_key = if e.get("t").is_some() { "t" } else { "z" };
    let stat = fit.z.as_ref().or(fit.t.as_ref()).unwrap();
    let ratio = fit.odds_ratio.as_ref().or(fit.rate_ratio.as_ref());
    for (j, t) in terms.iter().enumerate() {
        c.one(&format!("{name} coef {t}"), fit.coef.values[j], &e["coef"][t]);
        c.one(&format!("{name} se {t}"), fit.se.values[j], &e["se"][t]);
        c.one(&format!("{name} {stat_key} {t}"), stat.values[j], &e[stat_key][t]);
        c.one(&format!("{name} p {t}"), fit.p.values[j], &e["p"][t]);
        for key in ["odds_ratio", "rate_ratio"] {
            if let Some(v) = e.get(key) {
                c.one(&format!("{name} {key} {t}"), ratio.unwrap().values[j], &v[t]);
            }
        }
        for (k, _) in terms.iter().enumerate() {
            c.one(&format!("{name} var[{j}][{k}]"), fit.var[j][k], &e["var"][j][k]);
        }
    }
    for (key, got) in [
        ("deviance", fit.deviance),
        ("null_deviance", fit.null_deviance),
        ("df_residual", fit.df_residual),
        ("df_null", fit.df_null),
        ("loglik", fit.loglik),
        ("aic", fit.aic),
        ("n", fit.n),
    ] {
        c.one(&format!("{name} {key}"), got, &e[key]);
    }
    if let Some(d) = e.get("dispersion") {
        c.one(&format!("{name} dispersion"), fit.dispersion, d);
    }
    c.one(&format!("{name} lrt statistic"), fit.lrt.statistic, &e["lrt"]["statistic"]);
    c.one(&format!("{name} lrt df"), fit.lrt.df, &e["lrt"]["df"]);
    c.one(&format!("{name} lrt p"), fit.lrt.p, &e["lrt"]["p"]);
    assert_eq!(fit.iterations as u64, e["iterations"].as_u64().unwrap(), "{name} iterations");
    assert_eq!(fit.converged, e["converged"].as_bool().unwrap(), "{name} converged");
    assert!(fit.aliased.is_empty());
    c
}

/// A federation in the clear: pieces of each site summed.
struct Sites<'a> {
    parts: Vec<GlmData<'a>>,
}

impl GlmSource for Sites<'_> {
    fn pieces(&mut self, at: &IrlsPoint, cols: &[usize]) -> Result<GlmPieces, GlmError> {
        let mut total: Option<GlmPieces> = None;
        for d in &self.parts {
            let p = d.pieces(at, cols)?;
            match total.as_mut() {
                None => total = Some(p),
                Some(t) => t.add(&p)?,
            }
        }
        total.ok_or(GlmError::Empty)
    }
}

fn family_of(e: &Value) -> Family {
    let f = e["family"].as_str().unwrap();
    Family::parse(f.split('(').next().unwrap()).unwrap()
}

/// One site's (design, response, offset, weights).
type SiteRows = (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>);

fn glm_case(json: &str) {
    let e = load_json(json);
    let data_file = e["data_file"].as_str().unwrap();
    let df = load_csv(&format!("ref/{data_file}"));
    let terms: Vec<String> = e["terms"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect();
    let response = e["formula"].as_str().unwrap().split('~').next().unwrap().trim().to_string();
    let y = df.column(&response).unwrap().to_vec();
    let x = design(&df, &terms);
    let offset: Option<Vec<f64>> = e.get("offset").map(|o| {
        let col = o.as_str().unwrap();
        let (f, c) = col.split_once('(').unwrap();
        assert_eq!(f, "log");
        df.column(c.trim_end_matches(')')).unwrap().iter().map(|v| v.ln()).collect()
    });
    // Prior weights: a data column, or the rule `1 + (row % 3)` on 1-based rows.
    let weights: Option<Vec<f64>> = e.get("weights").map(|w| match w.as_str().unwrap() {
        "1 + (row % 3)" => (1..=y.len()).map(|r| 1.0 + (r % 3) as f64).collect(),
        name => df.column(name).unwrap().to_vec(),
    });
    let family = family_of(&e);
    let control = GlmControl { epsilon: 1e-14, maxit: 100, ..GlmControl::default() };
    let data = GlmData::new(&x, terms.len(), &y, weights.as_deref(), offset.as_deref(), family).unwrap();
    let fit = glm_fit(&data, &terms, true, &control).unwrap();
    let c = check_fit(&fit, &e, json);
    println!("{json}: {} fields, max rel err {:.3e}", c.fields, c.max);

    // Federated: rows split over 3 sites as in testdata/ref/sites (round robin
    // when the data set has no site file), pieces summed.
    let mut site: Vec<usize> = (0..y.len()).map(|i| i % 3 + 1).collect();
    if data_file.starts_with("data/") {
        let sites = load_csv(&format!("ref/{}", data_file.replace("data/", "sites/")));
        for (r, s) in sites.column("row").unwrap().iter().zip(sites.column("site3").unwrap()) {
            site[*r as usize - 1] = *s as usize;
        }
    }
    let p = terms.len();
    let mut split: Vec<SiteRows> = vec![Default::default(); 3];
    for i in 0..y.len() {
        let s = &mut split[site[i] - 1];
        s.0.extend_from_slice(&x[i * p..(i + 1) * p]);
        s.1.push(y[i]);
        s.2.push(offset.as_ref().map_or(0.0, |o| o[i]));
        s.3.push(weights.as_ref().map_or(1.0, |w| w[i]));
    }
    let parts = split
        .iter()
        .map(|(x, y, o, w)| {
            let o = offset.as_ref().map(|_| o.as_slice());
            let w = weights.as_ref().map(|_| w.as_slice());
            GlmData::new(x, p, y, w, o, family).unwrap()
        })
        .collect();
    let spec = GlmSpec { family, names: &terms, intercept: true, has_offset: offset.is_some() };
    let fed = glm_fit_with(&mut Sites { parts }, &spec, &control).unwrap();
    check_fit(&fed, &e, &format!("{json} (federated)"));
}

#[test]
fn logistic_birthwt() {
    glm_case("ref/expected/logistic_birthwt.json");
}

#[test]
fn logistic_lung() {
    glm_case("ref/expected/logistic_lung.json");
}

#[test]
fn gaussian_birthwt() {
    glm_case("ref-extra/glm_gaussian_birthwt.json");
}

#[test]
fn poisson_birthwt() {
    glm_case("ref-extra/glm_poisson_birthwt.json");
}

#[test]
fn gaussian_birthwt_with_prior_weights() {
    glm_case("ref-extra/glm_gaussian_birthwt_weighted.json");
}

#[test]
fn binomial_proportions_with_trials_as_weights() {
    glm_case("ref-extra/glm_binomial_birthwt_agg.json");
}

#[test]
fn poisson_birthwt_with_offset() {
    glm_case("ref-extra/glm_poisson_birthwt_offset.json");
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn close(a: &[f64], b: &[f64], tol: f64) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol * (1.0 + y.abs()))
    }

    /// (x1, x2, response seed, site) rows.
    fn rows() -> impl Strategy<Value = Vec<(f64, f64, u32, usize)>> {
        prop::collection::vec((-3.0f64..3.0, 0.0f64..10.0, 0u32..5, 0usize..3), 6..60)
    }

    proptest! {
        #[test]
        fn site_pieces_sum_to_pooled_pieces(r in rows(), fam in 0usize..3, b in prop::collection::vec(-0.5f64..0.5, 3)) {
            let family = [Family::Binomial, Family::Gaussian, Family::Poisson][fam];
            let resp = |k: u32, x: f64| match family {
                Family::Binomial => (k % 2) as f64,
                Family::Poisson => k as f64,
                Family::Gaussian => k as f64 + x,
            };
            let build = |rows: &[(f64, f64, u32, usize)]| {
                let x: Vec<f64> = rows.iter().flat_map(|r| [1.0, r.0, r.1]).collect();
                let y: Vec<f64> = rows.iter().map(|r| resp(r.2, r.0)).collect();
                let o: Vec<f64> = rows.iter().map(|r| 0.1 * r.1).collect();
                (x, y, o)
            };
            let (x, y, o) = build(&r);
            let pooled = GlmData::new(&x, 3, &y, None, Some(&o), family).unwrap();
            for at in [IrlsPoint::Start, IrlsPoint::Beta(b.clone())] {
                let want = pooled.pieces(&at, &[0, 1, 2]).unwrap();
                let mut total: Option<GlmPieces> = None;
                for site in 0..3 {
                    let sub: Vec<_> = r.iter().copied().filter(|q| q.3 == site).collect();
                    if sub.is_empty() { continue; }
                    let (sx, sy, so) = build(&sub);
                    let p = GlmData::new(&sx, 3, &sy, None, Some(&so), family).unwrap().pieces(&at, &[0, 1, 2]).unwrap();
                    match total.as_mut() { None => total = Some(p), Some(t) => t.add(&p).unwrap() }
                }
                let got = total.unwrap();
                prop_assert!(close(&got.xtwx, &want.xtwx, 1e-10));
                prop_assert!(close(&got.xtwz, &want.xtwz, 1e-10));
                prop_assert!(close(&[got.deviance, got.aic_sum, got.n_obs, got.sum_wy], &[want.deviance, want.aic_sum, want.n_obs, want.sum_wy], 1e-10));
            }
        }

        #[test]
        fn row_order_does_not_change_the_fit(seed in any::<u64>()) {
            let e = load_json("ref/expected/logistic_birthwt.json");
            let df = load_csv("ref/data/birthwt.csv");
            let terms: Vec<String> = e["terms"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect();
            let p = terms.len();
            let x = design(&df, &terms);
            let y = df.column("low").unwrap().to_vec();
            let n = y.len();
            let mut idx: Vec<usize> = (0..n).collect();
            let mut s = seed | 1;
            for i in (1..n).rev() {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                idx.swap(i, (s % (i as u64 + 1)) as usize);
            }
            let px: Vec<f64> = idx.iter().flat_map(|&i| x[i * p..(i + 1) * p].to_vec()).collect();
            let py: Vec<f64> = idx.iter().map(|&i| y[i]).collect();
            let control = GlmControl { epsilon: 1e-14, maxit: 100, ..GlmControl::default() };
            let a = glm_fit(&GlmData::new(&x, p, &y, None, None, Family::Binomial).unwrap(), &terms, true, &control).unwrap();
            let b = glm_fit(&GlmData::new(&px, p, &py, None, None, Family::Binomial).unwrap(), &terms, true, &control).unwrap();
            prop_assert!(close(&a.coef.values, &b.coef.values, 1e-9));
            prop_assert!(close(&a.se.values, &b.se.values, 1e-9));
            prop_assert_eq!(a.iterations, b.iterations);
        }
    }

    fn names(k: usize) -> Vec<String> {
        std::iter::once("(Intercept)".to_string()).chain((1..k).map(|j| format!("x{j}"))).collect()
    }

    #[test]
    fn perfect_separation_warns() {
        let x: Vec<f64> = (1..=10).flat_map(|i| [1.0, i as f64]).collect();
        let y: Vec<f64> = (1..=10).map(|i| if i > 5 { 1.0 } else { 0.0 }).collect();
        let d = GlmData::new(&x, 2, &y, None, None, Family::Binomial).unwrap();
        let fit = glm_fit(&d, &names(2), true, &GlmControl::default()).unwrap();
        assert!(
            fit.warnings.iter().any(|w| w.contains("fitted probabilities numerically 0 or 1 occurred")),
            "{:?}",
            fit.warnings
        );
    }

    #[test]
    fn collinear_column_is_reported_as_aliased() {
        let x: Vec<f64> = (1..=12).flat_map(|i| [1.0, i as f64, 2.0 * i as f64, ((i * 7) % 5) as f64]).collect();
        let y: Vec<f64> = (1..=12).map(|i| ((i * 3) % 7) as f64).collect();
        let d = GlmData::new(&x, 4, &y, None, None, Family::Poisson).unwrap();
        let fit = glm_fit(&d, &names(4), true, &GlmControl::default()).unwrap();
        assert_eq!(fit.aliased, vec!["x2".to_string()]);
        assert!(fit.coef.get("x2").unwrap().is_nan());
        assert!(fit.coef.get("x1").unwrap().is_finite());
        assert_eq!(fit.df_residual, 12.0 - 3.0);
        assert!(fit.converged);
    }

    #[test]
    fn clear_errors() {
        let x = [1.0, 1.0, 1.0];
        assert_eq!(GlmData::new(&[], 1, &[], None, None, Family::Gaussian).unwrap_err(), GlmError::Empty);
        assert!(matches!(
            GlmData::new(&x, 1, &[0.0, 2.0, 1.0], None, None, Family::Binomial),
            Err(GlmError::BadResponse { row: 2, family: Family::Binomial, .. })
        ));
        assert!(matches!(
            GlmData::new(&x, 1, &[0.0, 0.5, 1.0], None, None, Family::Binomial),
            Err(GlmError::BadResponse { row: 2, .. })
        ));
        assert!(matches!(
            GlmData::new(&x, 1, &[0.0, 1.0, -1.0], None, None, Family::Poisson),
            Err(GlmError::BadResponse { row: 3, family: Family::Poisson, .. })
        ));
        assert!(matches!(
            GlmData::new(&x, 1, &[0.0, f64::NAN, 1.0], None, None, Family::Gaussian),
            Err(GlmError::NotFinite { row: 2, .. })
        ));
        assert_eq!(
            GlmData::new(&x, 1, &[0.0, 1.0, 1.0], Some(&[1.0, 0.0, 1.0]), None, Family::Gaussian).unwrap_err(),
            GlmError::BadWeight { row: 2 }
        );
        assert!(matches!(
            GlmData::new(&x, 2, &[0.0, 1.0, 1.0], None, None, Family::Gaussian),
            Err(GlmError::Length { .. })
        ));
        let d = GlmData::new(&x, 1, &[0.0, 1.0, 1.0], None, None, Family::Gaussian).unwrap();
        assert_eq!(
            glm_fit(&d, &names(2), true, &GlmControl::default()).unwrap_err(),
            GlmError::Spec("one name per design column is required")
        );
    }
}
