//! Building status conditions, keeping a condition's transition time while its status holds.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// A condition of `type_`; keeps the previous transition time when the status is unchanged.
pub fn condition(
    previous: Option<&[Condition]>,
    type_: &str,
    ready: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
) -> Condition {
    let status = if ready { "True" } else { "False" };
    let last_transition_time = previous
        .into_iter()
        .flatten()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(k8s_openapi::jiff::Timestamp::now()));
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_is_kept_while_the_status_holds() {
        let first = condition(None, "Ready", false, "x", String::new(), Some(1));
        let same = condition(
            Some(std::slice::from_ref(&first)),
            "Ready",
            false,
            "y",
            "m".into(),
            Some(2),
        );
        assert_eq!(same.last_transition_time, first.last_transition_time);
        let flipped = condition(
            Some(std::slice::from_ref(&first)),
            "Ready",
            true,
            "z",
            String::new(),
            Some(2),
        );
        assert_eq!(flipped.status, "True");
        assert!(flipped.last_transition_time.0 >= first.last_transition_time.0);
    }
}
