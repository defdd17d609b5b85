//! The few statistics the report gives: medians with their range, and a target's verdict.

/// The median, minimum and maximum of `v` (NaN-free input; `v` must not be empty).
pub fn median_min_max(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let med = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (med, v[0], v[n - 1])
}

/// `met`, or by how much a figure missed its target (`ratio_to_target` = figure ÷ target).
pub fn verdict(met: bool, ratio_to_target: f64) -> String {
    if met {
        "met".to_owned()
    } else {
        let pct = (ratio_to_target - 1.0) * 100.0;
        // A miss under 1% still says by how much.
        let shown = match pct {
            p if p < 0.05 => "<0.1".to_owned(),
            p if p < 1.0 => format!("{p:.1}"),
            p => format!("{p:.0}"),
        };
        format!("**missed by {shown}%**")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_even_count_has_the_mean_of_its_middle_two_as_median() {
        assert_eq!(median_min_max(vec![4.0, 1.0, 3.0, 2.0]), (2.5, 1.0, 4.0));
    }

    #[test]
    fn a_miss_under_one_percent_still_says_by_how_much() {
        assert_eq!(verdict(false, 1.004), "**missed by 0.4%**");
        assert_eq!(verdict(false, 1.25), "**missed by 25%**");
        assert_eq!(verdict(true, 0.9), "met");
    }
}
