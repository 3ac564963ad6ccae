//! Writes a synthetic FHIR export without building the whole `seh` binary:
//! `cargo run -p seh-data --example synth -- PATIENTS SITES SEED OUT_DIR [flat]`
//! (same generator as `seh data synth`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 5 {
        return Err("usage: synth PATIENTS SITES SEED OUT_DIR [flat]".into());
    }
    let params = seh_data::synth::SynthParams {
        patients: a[1].parse()?,
        sites: a[2].parse()?,
        seed: a[3].parse()?,
        flat: a.get(5).is_some_and(|f| f == "flat"),
    };
    for s in seh_data::synth::generate(&params, std::path::Path::new(&a[4]))? {
        println!("{}: {} patients, {} resources", s.dir.display(), s.patients, s.resources);
    }
    Ok(())
}
