//! Mapping suggestions: pair values of two systems by normalized name. A
//! suggestion is only a pre-filled choice the admin confirms; when nothing
//! matches, the row stays empty rather than guessed (DESIGN.md "unmapped
//! values are shown, not guessed").

use bridge::model::PicklistValue;

/// Lower case, letters and digits only: "Waiting-Customer", "waiting
/// customer" and "WaitingCustomer" compare equal.
pub fn normalize(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Names that mean the same in a desk and a PSA, as groups of normalized
/// names. Kept short on purpose: each pair is one a person would agree with
/// without looking at the tenant's setup.
const SYNONYMS: &[&[&str]] = &[
    &["urgent", "critical", "emergency"],
    &["normal", "medium"],
    &["solved", "complete", "completed", "resolved"],
    &["pending", "waitingcustomer", "waitingoncustomer"],
    &["hold", "onhold", "waitingvendor", "waitingthirdparty"],
    &["open", "inprogress"],
];

fn same_meaning(a: &str, b: &str) -> bool {
    a == b
        || SYNONYMS
            .iter()
            .any(|group| group.contains(&a) && group.contains(&b))
}

/// The words of a name, normalized: "Priority 3 - Normal Response" has
/// "priority", "3", "normal" and "response".
fn words(name: &str) -> impl Iterator<Item = String> + '_ {
    name.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(normalize)
}

/// Whether one word of a longer name means `wanted`: ConnectWise's default
/// priorities carry their meaning in a word ("Priority 1 - Emergency
/// Response"), so whole-name matching alone would suggest none of them.
fn word_means(name: &str, wanted: &str) -> bool {
    words(name).any(|w| same_meaning(&w, wanted))
}

/// The best match for `name` among `candidates`: an exact normalized name
/// first, then a synonym, then a word of the candidate's name that is the
/// name or a synonym; inactive values are never suggested.
pub fn suggest(name: &str, candidates: &[PicklistValue]) -> Option<i64> {
    let wanted = normalize(name);
    if wanted.is_empty() {
        return None;
    }
    let active = || candidates.iter().filter(|c| c.is_active);
    active()
        .find(|c| normalize(&c.label) == wanted)
        .or_else(|| active().find(|c| same_meaning(&normalize(&c.label), &wanted)))
        .or_else(|| active().find(|c| word_means(&c.label, &wanted)))
        .map(|c| c.value)
}

/// The best match for a PSA value's name among the desk's plain value
/// names (the reverse tables): by name, by synonym, then by a word of the
/// PSA name. Not for company names, where one shared word ("Acme") is no
/// reason to pair two companies.
pub fn suggest_desk_value(psa_name: &str, desk: &[&str]) -> Option<usize> {
    suggest_name(psa_name, desk).or_else(|| {
        desk.iter()
            .position(|d| word_means(psa_name, &normalize(d)))
    })
}

/// The best match for `name` among plain names (Zendesk statuses and
/// priorities for the reverse tables, company names): its index.
pub fn suggest_name(name: &str, candidates: &[&str]) -> Option<usize> {
    let wanted = normalize(name);
    if wanted.is_empty() {
        return None;
    }
    let normalized: Vec<String> = candidates.iter().map(|c| normalize(c)).collect();
    normalized
        .iter()
        .position(|c| *c == wanted)
        .or_else(|| normalized.iter().position(|c| same_meaning(c, &wanted)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(labels: &[(&str, bool)]) -> Vec<PicklistValue> {
        labels
            .iter()
            .enumerate()
            .map(|(i, (label, is_active))| PicklistValue {
                value: i as i64 + 1,
                label: (*label).to_owned(),
                is_active: *is_active,
            })
            .collect()
    }

    #[test]
    fn names_match_whatever_their_case_spacing_and_punctuation() {
        let statuses = values(&[
            ("New", true),
            ("Waiting Customer", true),
            ("Complete", true),
        ]);
        assert_eq!(suggest("new", &statuses), Some(1));
        assert_eq!(suggest("waiting-customer", &statuses), Some(2));
        assert_eq!(suggest("  WAITING_customer ", &statuses), Some(2));
        assert_eq!(suggest("COMPLETE.", &statuses), Some(3));
    }

    #[test]
    fn an_exact_name_wins_over_a_synonym() {
        let statuses = values(&[("Complete", true), ("Solved", true)]);
        assert_eq!(suggest("solved", &statuses), Some(2));
        let statuses = values(&[("Complete", true)]);
        assert_eq!(suggest("solved", &statuses), Some(1));
    }

    #[test]
    fn common_synonyms_pair_and_nothing_else_is_guessed() {
        let priorities = values(&[("Critical", true), ("High", true), ("Medium", true)]);
        assert_eq!(suggest("urgent", &priorities), Some(1));
        assert_eq!(suggest("normal", &priorities), Some(3));
        assert_eq!(suggest("low", &priorities), None);
        let statuses = values(&[("New", true), ("In Progress", true), ("On Hold", true)]);
        assert_eq!(suggest("open", &statuses), Some(2));
        assert_eq!(suggest("hold", &statuses), Some(3));
        // "new" in Zendesk is not "open": no guess across meanings.
        assert_eq!(suggest("closed", &statuses), None);
        assert_eq!(suggest("", &statuses), None);
    }

    #[test]
    fn a_word_of_a_longer_name_is_the_last_resort() {
        let priorities = values(&[
            ("Priority 1 - Emergency Response", true),
            ("Priority 2 - Quick Response", true),
            ("Priority 3 - Normal Response", true),
            ("Priority 4 - Scheduled Maintenance", true),
            ("Do Not Respond", true),
        ]);
        assert_eq!(suggest("urgent", &priorities), Some(1));
        assert_eq!(suggest("normal", &priorities), Some(3));
        assert_eq!(suggest("high", &priorities), None);
        assert_eq!(suggest("low", &priorities), None);
        // A whole-name match still wins over a word.
        let statuses = values(&[("Closed - Resolved", true), ("Closed", true)]);
        assert_eq!(suggest("closed", &statuses), Some(2));
        let desk = ["urgent", "high", "normal", "low"];
        assert_eq!(
            suggest_desk_value("Priority 1 - Emergency Response", &desk),
            Some(0)
        );
        assert_eq!(
            suggest_desk_value("Priority 2 - Quick Response", &desk),
            None
        );
    }

    #[test]
    fn inactive_values_are_never_suggested() {
        let statuses = values(&[("Complete", false), ("Completed", true)]);
        assert_eq!(suggest("complete", &statuses), Some(2));
        let statuses = values(&[("Complete", false)]);
        assert_eq!(suggest("complete", &statuses), None);
    }

    #[test]
    fn plain_names_match_by_name_then_synonym() {
        let desk = ["open", "pending", "hold", "solved", "closed"];
        assert_eq!(suggest_name("Waiting Customer", &desk), Some(1));
        assert_eq!(suggest_name("Complete", &desk), Some(3));
        assert_eq!(suggest_name("Closed", &desk), Some(4));
        assert_eq!(suggest_name("Escalated", &desk), None);
        let companies = ["Acme Corp.", "Globex"];
        assert_eq!(suggest_name("ACME corp", &companies), Some(0));
    }
}
