#!/usr/bin/env bash
# Synthetic FHIR for three sites → one SQLite site store each → the committed ckd_death cohort →
# a federated Cox model whose sites take consent from their stores (FHIR Consent + opt-out list).
# Usage: scripts/store-federation-demo.sh [PATIENTS] [WORKDIR]   (needs `cargo build --release -p seh-cli`)
# The same pipeline, checked against pooled fits, is crates/seh-cli/tests/store_federation.rs.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SEH=${SEH:-$ROOT/target/release/seh}
N=${1:-3000}
WORK=${2:-$(mktemp -d /tmp/seh-store-demo.XXXXXX)}
DEF=$ROOT/testdata/cohort/ckd_death.toml
FORMULA="Surv(tstart, tstop, death) ~ age + male + diabetes + hypertension + egfr"

mkdir -p "$WORK"
"$SEH" data synth --patients "$N" --sites 3 --seed 7 --out "$WORK/fhir"
SITES=()
for k in 1 2 3; do
  store=$WORK/site$k.sqlite
  "$SEH" data import --store "$store" --fhir "$WORK/fhir/site$k" | tail -n 1
  "$SEH" data import --store "$store" --opt-out "$WORK/fhir/site$k/opt_out.csv"
  "$SEH" data cohort --store "$store" --def "$DEF"
  SITES+=(--site-store "site$k=$store")
done
echo "== research purpose (HRESCH): each site drops the rows of patients without consent"
"$SEH" federate cox "${SITES[@]}" --table ckd_death --purpose HRESCH --formula "$FORMULA" --workdir "$WORK/fed"
echo "== what consent removed at each site (site audit logs; never sent to the researcher)"
grep -h '"policy_decision"' "$WORK"/fed/state/site*.audit.jsonl | grep -o '"actor":"[^"]*"\|"consent_removed":[0-9]*' | paste - -
