//! "Evaluate at β": the Cox partial-likelihood kernel (R's `coxfit6` /
//! `agfit4` inner loop) restructured for federation.
//!
//! [`evaluate`] walks the event-time grid of every stratum from the last time
//! to the first. At each grid time `t` it holds the risk-set sums
//!
//! * `S0 = Σ_risk w e^(η-c)`, `S1 = Σ_risk w e^(η-c) x`, `S2 = Σ_risk w e^(η-c) x xᵀ`
//!
//! and the sums over the rows that die at `t`
//!
//! * count `m`, `Σ w`, `Σ w η`, `Σ w x`, and (Efron) `D0 = Σ w e^(η-c)`,
//!   `D1 = Σ w e^(η-c) x`, `D2 = Σ w e^(η-c) x xᵀ`,
//!
//! where `c` (the *shift*, the largest η of the stratum) keeps `exp` from
//! overflowing. All of them are sums over rows, hence **additive across
//! sites** once brought to a common shift. They go to a [`CoxSink`]:
//! [`FoldSink`] folds them at once into log-likelihood, score and information
//! with [`fold_time`] (memory O(p²)); [`StoredSums`] keeps them per
//! (stratum, time) so that a federation can add the sums of all sites and then
//! fold them with the same [`fold_time`].
//!
//! Matrices `S2`, `D2` and the information are packed lower triangles
//! (`p (p + 1) / 2` values: row `i` holds columns `0..=i`) inside the kernel;
//! [`Evaluation::info`] is a full row-major `p × p` matrix.

use super::prepared::PreparedCox;
use super::{CoxError, Ties};

/// Risk-set and death sums of one event time of one stratum, as produced by
/// [`evaluate`] (borrowing the kernel's buffers) or by [`StoredSums`].
#[derive(Debug, Clone, Copy)]
pub struct TimeSums<'a> {
    /// Stratum index (label order).
    pub stratum: usize,
    /// The event time.
    pub time: f64,
    /// Number of rows at risk (unweighted).
    pub n_risk: u64,
    /// Number of rows with an event at this time (Efron's `m`).
    pub n_deaths: u64,
    /// `Σ w` over the deaths.
    pub death_weight: f64,
    /// `Σ w η` over the deaths (η without the shift).
    pub death_eta: f64,
    /// The shift `c`: every exponential sum below is scaled by `e^(-c)`.
    pub shift: f64,
    /// `S0`.
    pub s0: f64,
    /// `S1`, length p.
    pub s1: &'a [f64],
    /// `S2`, packed lower triangle.
    pub s2: &'a [f64],
    /// `D0` (deaths' part of `S0`).
    pub d0: f64,
    /// `D1`, length p.
    pub d1: &'a [f64],
    /// `D2`, packed lower triangle; empty when the kernel ran with Breslow ties
    /// (Breslow does not need it).
    pub d2: &'a [f64],
    /// `Σ w x` over the deaths, length p.
    pub death_x: &'a [f64],
}

/// Receiver of the per-time sums of [`evaluate`].
pub trait CoxSink {
    /// Called once per grid time of each stratum, strata in label order and
    /// times in *decreasing* order within a stratum.
    fn event_time(&mut self, sums: &TimeSums<'_>);

    /// Whether the sink uses the second-order sums `S2` / `D2` (default `true`).
    /// When `false`, [`evaluate`] skips them (about p/2 times less work) and
    /// passes them as zeros.
    fn second_order(&self) -> bool {
        true
    }
}

/// Log-likelihood, score and information at one β (all on the kernel's
/// internal, centred and scaled, covariate scale).
///
/// Evaluations of disjoint strata add up (site-stratified federation).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Evaluation {
    /// Log partial likelihood.
    pub loglik: f64,
    /// Score vector `U(β)`, length p.
    pub score: Vec<f64>,
    /// Information matrix `I(β)`, row-major `p × p`.
    pub info: Vec<f64>,
}

impl Evaluation {
    /// A zero evaluation for `p` coefficients.
    pub fn zero(p: usize) -> Self {
        Evaluation { loglik: 0.0, score: vec![0.0; p], info: vec![0.0; p * p] }
    }

    /// Number of coefficients.
    pub fn p(&self) -> usize {
        self.score.len()
    }

    /// Add another evaluation (of other strata) into this one.
    pub fn add(&mut self, other: &Evaluation) -> Result<(), CoxError> {
        if other.score.len() != self.score.len() || other.info.len() != self.info.len() {
            return Err(CoxError::SumsMismatch("evaluations have different numbers of coefficients"));
        }
        self.loglik += other.loglik;
        self.score.iter_mut().zip(&other.score).for_each(|(a, b)| *a += b);
        self.info.iter_mut().zip(&other.info).for_each(|(a, b)| *a += b);
        Ok(())
    }
}

/// Packed lower-triangle length for `p` columns.
pub fn packed_len(p: usize) -> usize {
    p * (p + 1) / 2
}

/// Expand a packed lower triangle into a full symmetric row-major matrix.
pub fn unpack_symmetric(packed: &[f64], p: usize) -> Vec<f64> {
    let mut full = vec![0.0; p * p];
    let mut k = 0;
    for i in 0..p {
        for j in 0..=i {
            full[i * p + j] = packed[k];
            full[j * p + i] = packed[k];
            k += 1;
        }
    }
    full
}

/// Fold the sums of one event time into log-likelihood, score and
/// (packed) information: the single place where the partial likelihood is
/// formed, used by local fits and by the federation alike.
///
/// Breslow (or a single death): with `ā = S1/S0`,
/// `ℓ += Σw η − Σw (ln S0 + c)`, `U += Σ w x − Σw ā`,
/// `I += Σw (S2/S0 − ā āᵀ)`.
///
/// Efron with `m` deaths: for `k = 0..m`, `t_k = (m−1−k)/m`, the `k`-th term
/// uses `S0 − t_k D0`, `S1 − t_k D1`, `S2 − t_k D2` with weight `Σw / m`; the
/// sums over `k` are formed in closed form, so the cost is O(m + p²).
///
/// Precondition: `score.len() == p`, `info_packed.len() == p(p+1)/2`, and for
/// Efron with `m > 1`, `sums.d2` is filled. A time with no deaths adds nothing.
// Index loops mirror the packed-triangle formulas (i, j, k = packed index).
#[allow(clippy::needless_range_loop)]
pub fn fold_time(sums: &TimeSums<'_>, ties: Ties, loglik: &mut f64, score: &mut [f64], info_packed: &mut [f64]) {
    let m = sums.n_deaths;
    if m == 0 {
        return;
    }
    let p = score.len();
    let dw = sums.death_weight;
    *loglik += sums.death_eta;
    for (u, dx) in score.iter_mut().zip(sums.death_x) {
        *u += dx;
    }
    if m == 1 || ties != Ties::Efron {
        let denom = sums.s0;
        *loglik -= dw * (denom.ln() + sums.shift);
        let mut k = 0;
        for i in 0..p {
            let ai = sums.s1[i] / denom;
            score[i] -= dw * ai;
            for j in 0..=i {
                let aj = sums.s1[j] / denom;
                info_packed[k] += dw * (sums.s2[k] / denom - ai * aj);
                k += 1;
            }
        }
        return;
    }
    // Efron, closed form over the m sub-steps.
    let mf = m as f64;
    let wtave = dw / mf;
    let (mut h1, mut ht, mut q1, mut qt, mut qtt) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let mut lsum = 0.0;
    for k in 0..m {
        let t = (m - 1 - k) as f64 / mf;
        let d = sums.s0 - t * sums.d0;
        lsum += d.ln() + sums.shift;
        let inv = 1.0 / d;
        h1 += inv;
        ht += t * inv;
        q1 += inv * inv;
        qt += t * inv * inv;
        qtt += t * t * inv * inv;
    }
    *loglik -= wtave * lsum;
    let mut k = 0;
    for i in 0..p {
        let (si, di) = (sums.s1[i], sums.d1[i]);
        score[i] -= wtave * (si * h1 - di * ht);
        for j in 0..=i {
            let (sj, dj) = (sums.s1[j], sums.d1[j]);
            let second = sums.s2[k] * h1 - sums.d2[k] * ht;
            let outer = si * sj * q1 - (si * dj + di * sj) * qt + di * dj * qtt;
            info_packed[k] += wtave * (second - outer);
            k += 1;
        }
    }
}

/// Sink that folds every time immediately (local fits): O(p²) memory.
#[derive(Debug, Clone)]
pub struct FoldSink {
    ties: Ties,
    loglik: f64,
    score: Vec<f64>,
    info: Vec<f64>,
}

impl FoldSink {
    /// A zeroed accumulator for `p` coefficients and the given ties method.
    pub fn new(p: usize, ties: Ties) -> Self {
        FoldSink { ties, loglik: 0.0, score: vec![0.0; p], info: vec![0.0; packed_len(p)] }
    }

    /// Reset to zero (reuse between iterations without allocating).
    pub fn reset(&mut self) {
        self.loglik = 0.0;
        self.score.iter_mut().for_each(|v| *v = 0.0);
        self.info.iter_mut().for_each(|v| *v = 0.0);
    }

    /// The accumulated log-likelihood.
    pub fn loglik(&self) -> f64 {
        self.loglik
    }

    /// The accumulated score.
    pub fn score(&self) -> &[f64] {
        &self.score
    }

    /// The accumulated information, packed lower triangle.
    pub fn info_packed(&self) -> &[f64] {
        &self.info
    }

    /// The result as an [`Evaluation`].
    pub fn to_evaluation(&self) -> Evaluation {
        let p = self.score.len();
        Evaluation { loglik: self.loglik, score: self.score.clone(), info: unpack_symmetric(&self.info, p) }
    }
}

impl CoxSink for FoldSink {
    fn event_time(&mut self, sums: &TimeSums<'_>) {
        fold_time(sums, self.ties, &mut self.loglik, &mut self.score, &mut self.info);
    }
}

/// Owned sums of one (stratum, time), see [`TimeSums`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TimeRecord {
    /// Stratum index.
    pub stratum: usize,
    /// Event time.
    pub time: f64,
    /// Rows at risk.
    pub n_risk: u64,
    /// Deaths.
    pub n_deaths: u64,
    /// `Σ w` over deaths.
    pub death_weight: f64,
    /// `Σ w η` over deaths.
    pub death_eta: f64,
    /// Shift `c` of the exponential sums (`-inf` when nobody is at risk).
    pub shift: f64,
    /// `S0`.
    pub s0: f64,
    /// `S1`.
    pub s1: Vec<f64>,
    /// `S2` packed (empty when second-order sums were not kept).
    pub s2: Vec<f64>,
    /// `D0`.
    pub d0: f64,
    /// `D1`.
    pub d1: Vec<f64>,
    /// `D2` packed (empty for Breslow or when second-order sums were not kept).
    pub d2: Vec<f64>,
    /// `Σ w x` over deaths.
    pub death_x: Vec<f64>,
}

impl TimeRecord {
    fn view(&self) -> TimeSums<'_> {
        TimeSums {
            stratum: self.stratum,
            time: self.time,
            n_risk: self.n_risk,
            n_deaths: self.n_deaths,
            death_weight: self.death_weight,
            death_eta: self.death_eta,
            shift: self.shift,
            s0: self.s0,
            s1: &self.s1,
            s2: &self.s2,
            d0: self.d0,
            d1: &self.d1,
            d2: &self.d2,
            death_x: &self.death_x,
        }
    }

    fn rescale(&mut self, new_shift: f64) {
        if self.shift == new_shift || self.n_risk == 0 {
            self.shift = new_shift;
            return;
        }
        let f = (self.shift - new_shift).exp();
        self.s0 *= f;
        self.d0 *= f;
        for v in self.s1.iter_mut().chain(self.s2.iter_mut()).chain(self.d1.iter_mut()).chain(self.d2.iter_mut()) {
            *v *= f;
        }
        self.shift = new_shift;
    }
}

/// Sink that stores the sums of every (stratum, time): what a site sends in a
/// pooled-exact federation. Sums of several sites prepared on the same grid
/// line up record by record; [`StoredSums::add`] combines them and
/// [`StoredSums::fold`] turns them into an [`Evaluation`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoredSums {
    /// Number of coefficients.
    pub p: usize,
    /// Whether `S2` / `D2` were kept.
    pub second_order: bool,
    /// One record per grid time, strata in order, times decreasing.
    pub records: Vec<TimeRecord>,
}

impl StoredSums {
    /// An empty store. `second_order = false` keeps only the first-order sums
    /// (enough for baseline hazards and score residuals, not for folding).
    pub fn new(p: usize, second_order: bool) -> Self {
        StoredSums { p, second_order, records: Vec::new() }
    }

    /// Add the sums of another site, record by record.
    ///
    /// Errors when the two stores do not have the same (stratum, time) keys or
    /// sizes. Exponential sums are first brought to the larger shift.
    pub fn add(&mut self, other: &StoredSums) -> Result<(), CoxError> {
        if self.p != other.p || self.second_order != other.second_order {
            return Err(CoxError::SumsMismatch("different numbers of coefficients or orders"));
        }
        if self.records.len() != other.records.len() {
            return Err(CoxError::SumsMismatch("different numbers of event times"));
        }
        for (a, b) in self.records.iter_mut().zip(&other.records) {
            if a.stratum != b.stratum || a.time != b.time {
                return Err(CoxError::SumsMismatch("event times differ"));
            }
            if a.s2.len() != b.s2.len() || a.d2.len() != b.d2.len() {
                return Err(CoxError::SumsMismatch("second-order sums differ in size"));
            }
            let mut b = b.clone();
            let shift = if a.n_risk == 0 {
                b.shift
            } else if b.n_risk == 0 {
                a.shift
            } else {
                a.shift.max(b.shift)
            };
            a.rescale(shift);
            b.rescale(shift);
            a.n_risk += b.n_risk;
            a.n_deaths += b.n_deaths;
            a.death_weight += b.death_weight;
            a.death_eta += b.death_eta;
            a.s0 += b.s0;
            a.d0 += b.d0;
            let pairs = [(&mut a.s1, &b.s1), (&mut a.s2, &b.s2), (&mut a.d1, &b.d1), (&mut a.d2, &b.d2)];
            for (x, y) in pairs {
                x.iter_mut().zip(y).for_each(|(u, v)| *u += v);
            }
            a.death_x.iter_mut().zip(&b.death_x).for_each(|(u, v)| *u += v);
        }
        Ok(())
    }

    /// Fold all records into log-likelihood, score and information.
    pub fn fold(&self, ties: Ties) -> Result<Evaluation, CoxError> {
        if !self.second_order {
            return Err(CoxError::SumsMismatch("second-order sums were not kept"));
        }
        let mut sink = FoldSink::new(self.p, ties);
        for r in &self.records {
            if ties == Ties::Efron && r.n_deaths > 1 && r.d2.len() != packed_len(self.p) {
                return Err(CoxError::SumsMismatch("Efron needs the deaths' second-order sums"));
            }
            sink.event_time(&r.view());
        }
        Ok(sink.to_evaluation())
    }

    /// Iterate over the records as [`TimeSums`].
    pub fn iter(&self) -> impl Iterator<Item = TimeSums<'_>> {
        self.records.iter().map(TimeRecord::view)
    }
}

impl CoxSink for StoredSums {
    fn second_order(&self) -> bool {
        self.second_order
    }

    fn event_time(&mut self, s: &TimeSums<'_>) {
        let keep2 = self.second_order;
        self.records.push(TimeRecord {
            stratum: s.stratum,
            time: s.time,
            n_risk: s.n_risk,
            n_deaths: s.n_deaths,
            death_weight: s.death_weight,
            death_eta: s.death_eta,
            shift: if s.n_risk == 0 { f64::NEG_INFINITY } else { s.shift },
            s0: s.s0,
            s1: s.s1.to_vec(),
            s2: if keep2 { s.s2.to_vec() } else { Vec::new() },
            d0: s.d0,
            d1: s.d1.to_vec(),
            d2: if keep2 { s.d2.to_vec() } else { Vec::new() },
            death_x: s.death_x.to_vec(),
        });
    }
}

/// Caller-owned scratch space of [`evaluate`]; allocate once per data set and
/// reuse for every iteration (no allocation inside the kernel).
#[derive(Debug, Clone)]
pub struct Workspace {
    pub(crate) eta: Vec<f64>,
    pub(crate) risk: Vec<f64>,
    /// Counting process: `risk` in `start_order` (gathered once per evaluation,
    /// so that removing rows from the risk set reads memory sequentially).
    risk_by_start: Vec<f64>,
    s1: Vec<f64>,
    s2: Vec<f64>,
    d1: Vec<f64>,
    d2: Vec<f64>,
    dx: Vec<f64>,
}

impl Workspace {
    /// Scratch sized for `data`.
    pub fn new(data: &PreparedCox) -> Self {
        let (n, p) = (data.rows(), data.p);
        Workspace {
            eta: vec![0.0; n],
            risk: vec![0.0; n],
            risk_by_start: vec![0.0; data.start_order.len()],
            s1: vec![0.0; p],
            s2: vec![0.0; packed_len(p)],
            d1: vec![0.0; p],
            d2: vec![0.0; packed_len(p)],
            dx: vec![0.0; p],
        }
    }
}

/// `s1 += r x`, `s2 += r x xᵀ` (packed lower triangle). Small `p` dispatch to
/// a copy with the size known at compile time (fully unrolled, no bounds
/// checks); every version performs the same operations in the same order.
#[inline(always)]
fn add_outer(s1: &mut [f64], s2: &mut [f64], x: &[f64], r: f64) {
    match x.len() {
        1 => add_outer_n::<1>(s1, s2, x, r),
        2 => add_outer_n::<2>(s1, s2, x, r),
        3 => add_outer_n::<3>(s1, s2, x, r),
        4 => add_outer_n::<4>(s1, s2, x, r),
        5 => add_outer_n::<5>(s1, s2, x, r),
        6 => add_outer_n::<6>(s1, s2, x, r),
        7 => add_outer_n::<7>(s1, s2, x, r),
        8 => add_outer_n::<8>(s1, s2, x, r),
        9 => add_outer_n::<9>(s1, s2, x, r),
        10 => add_outer_n::<10>(s1, s2, x, r),
        11 => add_outer_n::<11>(s1, s2, x, r),
        12 => add_outer_n::<12>(s1, s2, x, r),
        _ => add_outer_any(s1, s2, x, r),
    }
}

#[inline(always)]
fn add_outer_n<const P: usize>(s1: &mut [f64], s2: &mut [f64], x: &[f64], r: f64) {
    let (Some(s1), Some(s2), Some(x)) = (s1.get_mut(..P), s2.get_mut(..P * (P + 1) / 2), x.get(..P)) else {
        return add_outer_any(s1, s2, x, r);
    };
    let mut off = 0;
    for i in 0..P {
        let rxi = r * x[i];
        s1[i] += rxi;
        for j in 0..=i {
            s2[off + j] += rxi * x[j];
        }
        off += i + 1;
    }
}

fn add_outer_any(s1: &mut [f64], s2: &mut [f64], x: &[f64], r: f64) {
    let mut off = 0;
    for (i, &xi) in x.iter().enumerate() {
        let rxi = r * xi;
        s1[i] += rxi;
        let row = &mut s2[off..off + i + 1];
        for (s, &xj) in row.iter_mut().zip(&x[..=i]) {
            *s += rxi * xj;
        }
        off += i + 1;
    }
}

/// [`add_outer`], or only its first-order part when `second` is false.
#[inline(always)]
fn add_row(second: bool, s1: &mut [f64], s2: &mut [f64], x: &[f64], r: f64) {
    if second {
        add_outer(s1, s2, x, r);
    } else {
        add_scaled(s1, x, r);
    }
}

#[inline(always)]
fn add_scaled(acc: &mut [f64], x: &[f64], r: f64) {
    for (a, &v) in acc.iter_mut().zip(x) {
        *a += r * v;
    }
}

fn zero(v: &mut [f64]) {
    v.iter_mut().for_each(|x| *x = 0.0);
}

/// Compute η = offset + xβ and the per-stratum shifted risks `w e^(η-c)`.
pub(crate) fn linear_predictor(data: &PreparedCox, beta: &[f64], ws: &mut Workspace) -> Result<Vec<f64>, CoxError> {
    let p = data.p;
    let mut shifts = Vec::with_capacity(data.blocks.len());
    for b in &data.blocks {
        let mut cmax = f64::NEG_INFINITY;
        for i in b.lo..b.hi {
            let xi = &data.x[i * p..(i + 1) * p];
            let eta = data.offset[i] + xi.iter().zip(beta).map(|(x, b)| x * b).sum::<f64>();
            ws.eta[i] = eta;
            cmax = cmax.max(eta);
        }
        if b.lo < b.hi && !cmax.is_finite() {
            return Err(CoxError::Overflow);
        }
        let c = if cmax.is_finite() { cmax } else { 0.0 };
        for i in b.lo..b.hi {
            ws.risk[i] = data.weight[i] * (ws.eta[i] - c).exp();
        }
        shifts.push(c);
    }
    Ok(shifts)
}

/// Evaluate the Cox partial likelihood at `beta` (kernel scale) and send the
/// sums of every grid time to `sink`.
///
/// Inputs: prepared data, `beta` of length p (internal scale, see
/// [`PreparedCox::to_internal`]), the ties method (Breslow or Efron; the exact
/// method has its own kernel), a workspace made for this data. Cost
/// O(n p²) time, no allocation except one small vector of per-stratum shifts.
///
/// Errors: wrong β length, `Ties::Exact`, or a non-finite linear predictor.
pub fn evaluate<S: CoxSink>(
    data: &PreparedCox,
    beta: &[f64],
    ties: Ties,
    ws: &mut Workspace,
    sink: &mut S,
) -> Result<(), CoxError> {
    let p = data.p;
    if beta.len() != p {
        return Err(CoxError::CoefLength { expected: p, got: beta.len() });
    }
    if ties == Ties::Exact {
        return Err(CoxError::Unsupported("the exact method is evaluated by cox::exact"));
    }
    if ws.eta.len() != data.rows() || ws.s1.len() != p || ws.risk_by_start.len() != data.start_order.len() {
        return Err(CoxError::DriverMisuse("workspace was made for other data"));
    }
    let shifts = linear_predictor(data, beta, ws)?;
    let efron = ties == Ties::Efron;
    let second = sink.second_order();
    let Workspace { eta, risk, risk_by_start, s1, s2, d1, d2, dx } = ws;
    for (r, &k) in risk_by_start.iter_mut().zip(&data.start_order) {
        *r = risk[k as usize];
    }
    for (sidx, b) in data.blocks.iter().enumerate() {
        let shift = shifts[sidx];
        let mut s0 = 0.0;
        zero(s1);
        zero(s2);
        let mut n_risk: u64 = 0;
        let mut ptr = b.lo;
        let mut rptr = b.lo;
        for &g in &b.grid_desc {
            // Remove rows that entered at or after g (counting process).
            if data.counting {
                while rptr < b.hi && data.start_by_start[rptr] >= g {
                    n_risk = n_risk.saturating_sub(1);
                    if n_risk == 0 {
                        s0 = 0.0;
                        zero(s1);
                        zero(s2);
                    } else {
                        let r = risk_by_start[rptr];
                        s0 -= r;
                        add_row(second, s1, s2, &data.x_by_start[rptr * p..(rptr + 1) * p], -r);
                    }
                    rptr += 1;
                }
            }
            // Add rows whose stop time is >= g.
            let mut d0 = 0.0;
            let mut n_deaths: u64 = 0;
            let mut death_weight = 0.0;
            let mut death_eta = 0.0;
            zero(d1);
            zero(dx);
            if efron {
                zero(d2);
            }
            while ptr < b.hi && data.stop[ptr] >= g {
                let r = risk[ptr];
                let x = &data.x[ptr * p..(ptr + 1) * p];
                s0 += r;
                n_risk += 1;
                if data.event[ptr] && data.stop[ptr] == g {
                    let w = data.weight[ptr];
                    n_deaths += 1;
                    d0 += r;
                    death_weight += w;
                    death_eta += w * eta[ptr];
                    add_scaled(dx, x, w);
                    if efron {
                        add_row(second, d1, d2, x, r);
                    } else {
                        add_scaled(d1, x, r);
                        add_row(second, s1, s2, x, r);
                    }
                } else {
                    add_row(second, s1, s2, x, r);
                }
                ptr += 1;
            }
            if efron {
                for (a, v) in s1.iter_mut().zip(d1.iter()) {
                    *a += v;
                }
                for (a, v) in s2.iter_mut().zip(d2.iter()) {
                    *a += v;
                }
            }
            sink.event_time(&TimeSums {
                stratum: sidx,
                time: g,
                n_risk,
                n_deaths,
                death_weight,
                death_eta,
                shift,
                s0,
                s1,
                s2,
                d0,
                d1,
                d2: if efron { d2 } else { &[] },
                death_x: dx,
            });
        }
    }
    Ok(())
}

/// Evaluate and fold in one call (local fits).
pub fn evaluate_local(
    data: &PreparedCox,
    beta: &[f64],
    ties: Ties,
    ws: &mut Workspace,
    sink: &mut FoldSink,
) -> Result<Evaluation, CoxError> {
    sink.reset();
    evaluate(data, beta, ties, ws, sink)?;
    Ok(sink.to_evaluation())
}
