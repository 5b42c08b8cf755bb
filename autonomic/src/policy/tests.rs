//! Policy parsing, defaults, validation and error locations.

use super::*;

fn error(text: &str) -> String {
    Policy::parse("policy.toml", text).unwrap_err().to_string()
}

const CLOUD: &str = "[[resources]]\nname = \"campus\"\nprovider = \"static\"\ncount = 2\n\n[[resources]]\nname = \"cloud\"\nprovider = \"local\"\nprice_per_hour = 0.1\nmax = 4\n";

#[test]
fn every_example_policy_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            Policy::load(&path).unwrap_or_else(|e| panic!("{e}"));
            seen += 1;
        }
    }
    assert_eq!(seen, 7);
}

#[test]
fn the_builtin_policy_is_this_machine_with_no_paid_class() {
    let policy = Policy::builtin();
    assert_eq!(policy.resources.len(), 1);
    assert!(policy.resources[0].is_private());
    assert_eq!(policy.resources[0].limit(), cores());
    assert_eq!(policy.objective, Objective::default());
}

#[test]
fn durations_are_humane_and_defaults_fill_in() {
    let text = format!(
        "[objective]\ndeadline = \"1h 30m\"\nbudget = 5\n[scaling]\ninterval = \"2s\"\n{CLOUD}"
    );
    let policy = Policy::parse("p", &text).unwrap();
    assert_eq!(policy.objective.deadline, Some(5400.0));
    assert_eq!(policy.objective.budget, Some(5.0));
    assert_eq!(policy.scaling.interval, 2.0);
    assert_eq!(policy.scaling.idle_release, 60.0);
    let cloud = &policy.resources[1];
    assert_eq!(
        (cloud.slots, cloud.billing, cloud.boot_time, cloud.limit()),
        (1, Billing::PerSecond, 0.0, 4)
    );
    assert!(!cloud.is_private());
}

#[test]
fn a_bad_enum_names_line_column_field_and_choices() {
    let text = format!("{CLOUD}billing = \"weekly\"\n");
    assert_eq!(
        error(&text),
        "policy.toml:11:11: resources[1].billing: expected \"per-second\" or \"per-hour\", found \"weekly\""
    );
}

#[test]
fn an_unknown_key_is_an_error() {
    let text = format!("[scaling]\nintervall = \"5s\"\n{CLOUD}");
    let message = error(&text);
    assert!(message.starts_with("policy.toml:2:1: scaling"), "{message}");
    assert!(message.contains("unknown key \"intervall\""), "{message}");
}

#[test]
fn a_bad_duration_says_what_was_expected() {
    let text = format!("[objective]\ndeadline = \"soon\"\n{CLOUD}");
    assert_eq!(
        error(&text),
        "policy.toml:2:12: objective.deadline: expected a duration like \"30s\", \"5m\" or \"2h\", found \"soon\""
    );
}

#[test]
fn validation_names_the_field_and_its_line() {
    let text = CLOUD.replace("max = 4\n", "");
    assert_eq!(
        error(&text),
        "policy.toml:6:1: resources[1].max: expected the most machines at once (max = 4)"
    );
    let text = CLOUD.replace("count = 2", "count = 2\nprice_per_hour = 1.0");
    assert!(error(&text).starts_with("policy.toml:5:1: resources[0].price_per_hour: not used"));
    let text = CLOUD.replace("\"cloud\"", "\"campus\"");
    assert_eq!(
        error(&text),
        "policy.toml:7:1: resources[1].name: \"campus\" names two classes"
    );
    let text = format!("[objective]\nbudget = -1.0\n{CLOUD}");
    assert_eq!(
        error(&text),
        "policy.toml:2:1: objective.budget: expected a sum of 0 or more"
    );
    let text = CLOUD.replace("\"local\"", "\"command\"");
    assert!(
        error(&text).starts_with("policy.toml:6:1: resources[1].start: provider \"command\" needs")
    );
}

#[test]
fn a_missing_file_is_named() {
    let message = Policy::load(Path::new("/nonexistent/p.toml"))
        .unwrap_err()
        .to_string();
    assert!(message.starts_with("/nonexistent/p.toml: "), "{message}");
}

#[test]
fn a_missing_field_is_named() {
    assert_eq!(
        error("[objective]\nbudget = 1.0\n"),
        "policy.toml:1:1: resources: missing"
    );
    let message = error("[[resources]]\nprovider = \"local\"\nmax = 1\n");
    assert!(message.ends_with("resources[0].name: missing"), "{message}");
}

#[test]
fn a_preemptible_class_needs_its_mean_time_to_preemption() {
    let spot = format!(
        "{CLOUD}preemptible = true\nmean_time_to_preemption = \"2h\"\nboot_time = \"1m\"\n"
    );
    let policy = Policy::parse("p", &spot).unwrap();
    let cloud = &policy.resources[1];
    assert!(cloud.preemptible);
    assert_eq!(cloud.mean_time_to_preemption, Some(7200.0));
    // A 10-minute task: 5 minutes lost a life of 2 hours, after a minute's boot.
    assert_eq!(cloud.useful(600.0), (7200.0 - 300.0) / 7260.0);
    assert_eq!(policy.resources[0].useful(600.0), 1.0);
    assert_eq!(
        error(&format!("{CLOUD}preemptible = true\n")),
        "policy.toml:6:1: resources[1].mean_time_to_preemption: a preemptible class needs how long a machine runs on average before it is taken back (mean_time_to_preemption = \"2h\")"
    );
    assert_eq!(
        error(&format!("{CLOUD}mean_time_to_preemption = \"2h\"\n")),
        "policy.toml:11:1: resources[1].mean_time_to_preemption: only for a class with preemptible = true"
    );
    assert_eq!(
        error(&format!(
            "{CLOUD}preemptible = true\nmean_time_to_preemption = \"0s\"\n"
        )),
        "policy.toml:12:1: resources[1].mean_time_to_preemption: expected a duration above 0"
    );
    let fixed = CLOUD.replace("count = 2", "count = 2\npreemptible = true");
    assert_eq!(
        error(&fixed),
        "policy.toml:5:1: resources[0].preemptible: not used by provider \"static\" (workers that exist already)"
    );
}

#[test]
fn a_fleet_too_large_to_plan_is_refused_with_its_range() {
    let class = |extra: &str| {
        format!(
            "[[resources]]\nname = \"cloud\"\nprovider = \"local\"\nprice_per_hour = 0.1\n{extra}"
        )
    };
    assert_eq!(
        error(&class("max = 4294967295\n")),
        "policy.toml:5:1: resources[0].max: expected at most 10000 machines of a class \
         (a larger fleet: split it into several classes)"
    );
    assert_eq!(
        error(&class("max = 4\nslots = 2000\n")),
        "policy.toml:6:1: resources[0].slots: expected 1 to 1024 task slots a machine"
    );
    assert_eq!(
        error("[[resources]]\nname = \"campus\"\nprovider = \"static\"\ncount = 10001\n"),
        "policy.toml:4:1: resources[0].count: expected at most 10000 machines of a class \
         (a larger fleet: split it into several classes)"
    );
    Policy::parse("policy.toml", &class("max = 10000\nslots = 1024\n")).unwrap();
}
