//! The bounded exact-sum search: which few rows of one group sum to the
//! check exactly. A group of at most [`EXHAUSTIVE_ROWS_MAX`] rows is
//! searched whole (meet in the middle: every subset sum of each half, one
//! half sorted, the other looked up in it); a larger one for subsets of two
//! to four rows (every pair's sum sorted, rows and pairs looked up in it).
//! Work is counted in subset sums, so the same input gives the same answer
//! whatever the machine's speed.

/// A group of at most this many rows is searched for every subset.
pub const EXHAUSTIVE_ROWS_MAX: usize = 40;
/// A larger group is searched for subsets of two to four rows while it has
/// at most this many (about 500K pairs).
pub const PAIRED_ROWS_MAX: usize = 1_000;
/// Rows above this many cents either way are left out of the search, so
/// that no sum of [`EXHAUSTIVE_ROWS_MAX`] of them leaves `i64`.
pub const SEARCHED_CENTS_MAX: i64 = 1_000_000_000_000_000;
/// Entries of one sorted list scanned for a disjoint match.
const EQUAL_SUMS_SCANNED: usize = 64;

/// The work searching `n` rows costs, in subset sums built or looked up;
/// `None` for a group too large to search.
pub fn cost(n: usize) -> Option<u64> {
    if n <= EXHAUSTIVE_ROWS_MAX {
        let (a, b) = (n / 2, n - n / 2);
        Some((1_u64 << a) + (1_u64 << b))
    } else if n <= PAIRED_ROWS_MAX {
        let pairs = (n * (n - 1) / 2) as u64;
        Some(2 * pairs + n as u64)
    } else {
        None
    }
}

/// Indices of a subset of `values` summing to `target`, of at least two
/// rows and not all of them (those are other strategies' answers); `None`
/// when there is none (or none of at most four rows in a large group).
pub fn exact_subset(values: &[i64], target: i64) -> Option<Vec<usize>> {
    if values.len() < 3 || values.iter().any(|v| v.abs() > SEARCHED_CENTS_MAX) {
        return None;
    }
    if values.len() <= EXHAUSTIVE_ROWS_MAX {
        halves(values, target)
    } else if values.len() <= PAIRED_ROWS_MAX {
        paired(values, target)
    } else {
        None
    }
}

/// Every subset sum of `values`, indexed by the subset's bit mask.
fn subset_sums(values: &[i64]) -> Vec<i64> {
    let mut sums = vec![0_i64; 1 << values.len()];
    for mask in 1..sums.len() {
        let low = mask.trailing_zeros() as usize;
        sums[mask] = sums[mask & (mask - 1)] + values[low];
    }
    sums
}

fn halves(values: &[i64], target: i64) -> Option<Vec<usize>> {
    let n = values.len();
    let (a, b) = values.split_at(n / 2);
    let left = subset_sums(a);
    let mut right: Vec<(i64, u32)> = subset_sums(b).into_iter().zip(0_u32..).collect();
    right.sort_unstable();
    let acceptable = |l: usize, r: u32| {
        let rows = l.count_ones() + r.count_ones();
        rows >= 2 && (rows as usize) < n
    };
    for (l, &sum) in left.iter().enumerate() {
        let want = target - sum;
        let start = right.partition_point(|&(s, _)| s < want);
        let found = right[start..]
            .iter()
            .take_while(|&&(s, _)| s == want)
            .take(EQUAL_SUMS_SCANNED)
            .find(|&&(_, r)| acceptable(l, r));
        if let Some(&(_, r)) = found {
            let left_rows = (0..a.len()).filter(|i| l & (1 << i) != 0);
            let right_rows = (0..b.len()).filter(|i| r & (1 << i) != 0).map(|i| i + a.len());
            return Some(left_rows.chain(right_rows).collect());
        }
    }
    None
}

/// Subsets of two, three, then four rows, through every pair's sum.
fn paired(values: &[i64], target: i64) -> Option<Vec<usize>> {
    let n = values.len();
    let mut pairs: Vec<(i64, u16, u16)> = Vec::with_capacity(n * (n - 1) / 2);
    for i in 0..n {
        for j in i + 1..n {
            // n <= PAIRED_ROWS_MAX < u16::MAX.
            pairs.push((values[i] + values[j], i as u16, j as u16));
        }
    }
    pairs.sort_unstable();
    let matching = |want: i64| {
        let start = pairs.partition_point(|&(s, _, _)| s < want);
        pairs[start..].iter().take_while(move |&&(s, _, _)| s == want).take(EQUAL_SUMS_SCANNED)
    };
    if let Some(&(_, i, j)) = matching(target).next() {
        return Some(vec![usize::from(i), usize::from(j)]);
    }
    for (r, &v) in values.iter().enumerate() {
        let hit = matching(target - v).find(|&&(_, i, j)| usize::from(i) != r && usize::from(j) != r);
        if let Some(&(_, i, j)) = hit {
            return Some(sorted(vec![r, usize::from(i), usize::from(j)]));
        }
    }
    if n < 5 {
        return None;
    }
    for &(s, i, j) in &pairs {
        let hit = matching(target - s).find(|&&(_, k, l)| k != i && k != j && l != i && l != j);
        if let Some(&(_, k, l)) = hit {
            return Some(sorted([i, j, k, l].map(usize::from).to_vec()));
        }
    }
    None
}

fn sorted(mut v: Vec<usize>) -> Vec<usize> {
    v.sort_unstable();
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sum(values: &[i64], picked: &[usize]) -> i64 {
        picked.iter().map(|&i| values[i]).sum()
    }

    #[test]
    fn trivial_answers_are_left_to_the_other_strategies() {
        // The single row and the whole group are not this search's answers.
        assert_eq!(exact_subset(&[5, 7, 9], 7), None);
        assert_eq!(exact_subset(&[5, 7, 9], 21), None);
        assert_eq!(exact_subset(&[5, 7, 9], 16), Some(vec![1, 2]));
        assert_eq!(exact_subset(&[5, 7], 12), None);
        assert_eq!(exact_subset(&[5, 7, SEARCHED_CENTS_MAX + 1], 12), None);
    }

    #[test]
    fn large_groups_find_up_to_four_rows() {
        let values: Vec<i64> = (0..300).map(|i| 100_000 + i * 7919 % 100_003).collect();
        for picked in [vec![3, 250], vec![1, 99, 298], vec![0, 10, 20, 299]] {
            let target = sum(&values, &picked);
            let found = exact_subset(&values, target);
            assert!(
                found.as_ref().is_some_and(|f| sum(&values, f) == target && f.len() <= 4),
                "{picked:?}: {found:?}"
            );
        }
        // A sum no four rows reach is not made up.
        assert_eq!(exact_subset(&values, 4 * 200_004), None);
    }

    proptest! {
        #[test]
        fn whatever_is_found_sums_exactly(
            values in proptest::collection::vec(-50_000_i64..100_000, 3..24),
            mask in any::<u32>(),
        ) {
            let picked: Vec<usize> = (0..values.len()).filter(|i| mask & (1 << i) != 0).collect();
            let target = sum(&values, &picked);
            match exact_subset(&values, target) {
                Some(found) => {
                    prop_assert_eq!(sum(&values, &found), target);
                    prop_assert!(found.len() >= 2 && found.len() < values.len());
                }
                // Only when the picked subset is itself trivial and no other fits.
                None => prop_assert!(picked.len() < 2 || picked.len() == values.len()),
            }
        }
    }
}
