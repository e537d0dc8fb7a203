//! How Megatron-LM may split the layers over pipeline stages.

/// Every split of `layers` over `pp` stages that Megatron-LM can run with `v` virtual stages per
/// device: equal stages, and unless `even_only`, a first and/or last stage of its own size with the
/// stages between equal (`--decoder-first-pipeline-num-layers`,
/// `--decoder-last-pipeline-num-layers`). With `v > 1` every stage's layers are a multiple of `v`
/// (Megatron-LM's rule for virtual stages, with or without the uneven flags). The equal split
/// comes first when there is one.
///
/// ```
/// use watos::strategy::megatron::splits;
/// assert_eq!(splits(12, 4, 1, true), vec![vec![3, 3, 3, 3]]);
/// assert!(splits(10, 4, 1, true).is_empty());
/// assert!(splits(10, 4, 1, false).contains(&vec![2, 3, 3, 2]));
/// assert_eq!(splits(12, 3, 2, false)[0], vec![4, 4, 4]);
/// ```
pub fn splits(layers: u32, pp: u32, v: u32, even_only: bool) -> Vec<Vec<u32>> {
    let v = v.max(1);
    let mut out = Vec::new();
    if pp == 0 {
        return out;
    }
    let even = (layers % pp == 0 && (layers / pp) % v == 0 && layers / pp >= v)
        .then(|| vec![layers / pp; pp as usize]);
    out.extend(even.clone());
    if even_only || pp == 1 {
        return out;
    }
    let middle = pp - 2;
    // Middle stages of `k` layers each (none when pp = 2), the rest over the first and last.
    let mut k = if middle == 0 { 0 } else { v };
    while u64::from(k) * u64::from(middle) + 2 * u64::from(v) <= u64::from(layers) {
        let rest = layers - k * middle;
        for first in (v..=rest - v).step_by(v as usize) {
            let last = rest - first;
            if last % v != 0 {
                continue;
            }
            let mut s = vec![first];
            s.extend(std::iter::repeat_n(k, middle as usize));
            s.push(last);
            if Some(&s) != even.as_ref() {
                out.push(s);
            }
        }
        if middle == 0 {
            break;
        }
        k += v;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uneven_splits_keep_the_middle_equal() {
        let all = splits(10, 4, 1, false);
        // Middle stages of 1, 2, 3 and 4 layers leave 8, 6, 4 and 2 for the ends.
        assert_eq!(all.len(), 7 + 5 + 3 + 1);
        assert!(all
            .iter()
            .all(|s| s.iter().sum::<u32>() == 10 && s[1] == s[2]));
        assert!(all.iter().all(|s| s.iter().all(|n| *n >= 1)));
    }

    #[test]
    fn virtual_stages_divide_every_stage() {
        let all = splits(12, 3, 2, false);
        assert_eq!(all.len(), 10);
        assert!(all.iter().all(|s| s.iter().all(|n| n % 2 == 0 && *n >= 2)));
        // Two stages: every first-stage size, the last takes the rest.
        assert_eq!(
            splits(6, 2, 1, false),
            vec![vec![3, 3], vec![1, 5], vec![2, 4], vec![4, 2], vec![5, 1]]
        );
        assert_eq!(splits(7, 1, 1, false), vec![vec![7]]);
    }
}
