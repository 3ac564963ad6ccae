//! Property: the order of files and how they are split across imports does not change the cohort.

mod common;

use proptest::prelude::*;
use seh_data::cohort::{self, CohortDef};
use seh_data::source::ClinicalSource;
use seh_data::Store;

fn cohort_csv(store: &mut Store) -> String {
    let text = std::fs::read_to_string(common::testdata("cohort/ckd_death.toml")).unwrap();
    let def = CohortDef::from_toml(&text, "ckd_death.toml").unwrap();
    let built = cohort::build(&def, store as &mut dyn ClinicalSource).unwrap();
    seh_data::csv::to_csv_string(&built.frame)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]
    #[test]
    fn import_order_does_not_change_the_cohort(perm in Just(common::synth_files()).prop_shuffle(), split in 0usize..14) {
        let reference = cohort_csv(&mut common::synth_store());
        let mut s = Store::open_in_memory(common::secret()).unwrap();
        let k = split.min(perm.len());
        s.import_fhir_files(&perm[..k]).unwrap();
        s.import_fhir_files(&perm[k..]).unwrap();
        prop_assert_eq!(cohort_csv(&mut s), reference);
    }
}
