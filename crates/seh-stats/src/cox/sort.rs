//! Sorting helpers for the O(n log n) passes of the Cox fit and the concordance:
//! an order-preserving map of `f64` to `u64` and a stable LSD radix sort of
//! `(key, payload)` pairs, which sorts 10^6 rows several times faster than a
//! comparison sort (and skips the byte positions in which all keys agree, so
//! integer-valued times cost only two or three passes).

/// Maps `x` to a `u64` whose unsigned order is `f64::total_cmp` order
/// (`-0.0` sorts just before `0.0`; no NaN is expected but it would sort last
/// or first by sign, as `total_cmp` does).
#[inline]
pub(crate) fn order_key(x: f64) -> u64 {
    let b = x.to_bits();
    if b >> 63 == 1 {
        !b
    } else {
        b | (1 << 63)
    }
}

/// Sorts `items` by their `u64` key, ascending and **stable** (equal keys keep
/// their input order). Cost O(6 n) (11-bit digits) with one scratch buffer of the same size.
pub(crate) fn radix_sort<T: Copy>(items: &mut Vec<(u64, T)>) {
    const BITS: usize = 11;
    const PASSES: usize = 64_usize.div_ceil(BITS);
    const RADIX: usize = 1 << BITS;
    let n = items.len();
    if n < 256 {
        items.sort_by_key(|e| e.0);
        return;
    }
    let mut hist = vec![[0usize; RADIX]; PASSES];
    for &(k, _) in items.iter() {
        for (d, h) in hist.iter_mut().enumerate() {
            h[((k >> (BITS * d)) as usize) & (RADIX - 1)] += 1;
        }
    }
    let mut buf: Vec<(u64, T)> = Vec::new();
    let mut src_is_items = true;
    for (d, h) in hist.iter().enumerate() {
        if h.contains(&n) {
            continue; // every key has the same digit here
        }
        if buf.is_empty() {
            // Filled entirely by the scatter below; starting as a copy means no
            // uninitialised memory is ever read.
            buf.extend_from_slice(items);
        }
        let mut offs = vec![0usize; RADIX];
        let mut acc = 0;
        for (o, &c) in offs.iter_mut().zip(h.iter()) {
            *o = acc;
            acc += c;
        }
        let (src, dst) =
            if src_is_items { (items.as_slice(), buf.as_mut_slice()) } else { (buf.as_slice(), items.as_mut_slice()) };
        let shift = BITS * d;
        for &e in src.iter() {
            let b = ((e.0 >> shift) as usize) & (RADIX - 1);
            dst[offs[b]] = e;
            offs[b] += 1;
        }
        src_is_items = !src_is_items;
    }
    if !src_is_items {
        std::mem::swap(items, &mut buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_key_follows_total_cmp() {
        let mut v = vec![3.5, -0.0, 0.0, -2.0, f64::MIN_POSITIVE, -1e300, 1e300, 1.0, -1.0, 7.0];
        let mut w = v.clone();
        v.sort_by(f64::total_cmp);
        w.sort_by_key(|x| order_key(*x));
        assert_eq!(
            v.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            w.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn radix_sort_is_stable_and_sorted() {
        let mut s = 12345u64;
        let mut items: Vec<(u64, usize)> = (0..5000)
            .map(|i| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let k = if i % 3 == 0 { (s >> 60) << 40 } else { s >> 7 };
                (k, i)
            })
            .collect();
        let mut expected = items.clone();
        expected.sort_by_key(|e| e.0); // stable
        radix_sort(&mut items);
        assert_eq!(items, expected);
        let mut small: Vec<(u64, usize)> = vec![(3, 0), (1, 1), (3, 2), (0, 3)];
        radix_sort(&mut small);
        assert_eq!(small, vec![(0, 3), (1, 1), (3, 0), (3, 2)]);
    }
}
