//! The keys of a `slurm` class (`partition`, `account`, `qos`,
//! `time_limit`, `cpus_per_task`, `extra_args`, `setup`): allowed only on
//! a `slurm` class, and checked before anything is submitted.

use super::{Invalid, ProviderKind, Resource};

/// `sbatch` options the provider sets itself: an `extra_args` entry may
/// not set them again.
const OWN_OPTIONS: [&str; 6] = [
    "--parsable",
    "--output",
    "--error",
    "--job-name",
    "--wrap",
    "--array",
];

/// Checks the Slurm keys of class `r`; `field` names a key of it.
pub(super) fn validate(r: &Resource, field: &dyn Fn(&str) -> String) -> Result<(), Invalid> {
    let bad = |name: &str, message: String| {
        Err(Invalid {
            field: field(name),
            message,
        })
    };
    let keys = [
        ("partition", r.partition.is_some()),
        ("account", r.account.is_some()),
        ("qos", r.qos.is_some()),
        ("time_limit", r.time_limit.is_some()),
        ("cpus_per_task", r.cpus_per_task.is_some()),
        ("extra_args", r.extra_args.is_some()),
        ("setup", r.setup.is_some()),
    ];
    if r.provider != ProviderKind::Slurm {
        return match keys.iter().find(|(_, set)| *set) {
            Some((name, _)) => bad(name, "only for provider \"slurm\"".into()),
            None => Ok(()),
        };
    }
    for (name, value) in [
        ("partition", &r.partition),
        ("account", &r.account),
        ("qos", &r.qos),
    ] {
        if let Some(value) = value
            && (value.is_empty() || value.chars().any(|c| c.is_whitespace() || c == ','))
        {
            return bad(
                name,
                format!("expected one Slurm name without spaces or commas, found {value:?}"),
            );
        }
    }
    if let Some(limit) = r.time_limit
        && limit < 60.0
    {
        return bad(
            "time_limit",
            "expected a wall time of 1m or more (Slurm counts in minutes)".into(),
        );
    }
    if r.cpus_per_task == Some(0) {
        return bad("cpus_per_task", "expected 1 or more".into());
    }
    for arg in r.extra_args.iter().flatten() {
        let name = "extra_args";
        if !arg.starts_with('-') {
            return bad(
                name,
                format!("expected sbatch options such as \"--constraint=gpu\", found {arg:?}"),
            );
        }
        let option = arg.split('=').next().unwrap_or(arg);
        if OWN_OPTIONS.contains(&option) || option == "-o" || option == "-e" || option == "-J" {
            return bad(
                name,
                format!("{option} is set by halley itself (the job script and its log)"),
            );
        }
    }
    Ok(())
}

/// Slurm's `--time` for `secs`: whole minutes, rounded up (`D-HH:MM:00`).
pub fn time_limit(secs: f64) -> String {
    let minutes = (secs / 60.0).ceil() as u64;
    let (days, hours, minutes) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    format!("{days}-{hours:02}:{minutes:02}:00")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;

    const HPC: &str = "[[resources]]\nname = \"hpc\"\nprovider = \"slurm\"\nmax = 4\n";

    fn error(extra: &str) -> String {
        Policy::parse("p.toml", &format!("{HPC}{extra}"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_slurm_class_takes_its_keys_and_is_free_by_default() {
        let text = format!(
            "{HPC}partition = \"debug\"\naccount = \"lab42\"\nqos = \"normal\"\ntime_limit = \"1h 30m\"\n\
             cpus_per_task = 2\nslots = 2\nextra_args = [\"--hold\", \"--constraint=avx2\"]\n\
             setup = \"module load gcc\"\nboot_time = \"2m\"\n"
        );
        let policy = Policy::parse("p.toml", &text).unwrap();
        let hpc = &policy.resources[0];
        assert_eq!(hpc.provider, ProviderKind::Slurm);
        assert!(hpc.is_private(), "price 0 by default");
        assert_eq!(hpc.limit(), 4);
        assert_eq!(hpc.time_limit, Some(5400.0));
        assert_eq!(hpc.partition.as_deref(), Some("debug"));
        assert_eq!(
            hpc.extra_args.as_deref(),
            Some(&["--hold".to_string(), "--constraint=avx2".to_string()][..])
        );
    }

    #[test]
    fn bad_slurm_keys_name_line_field_and_what_was_expected() {
        assert_eq!(
            error("partition = \"a b\"\n"),
            "p.toml:5:1: resources[0].partition: expected one Slurm name without spaces or commas, found \"a b\""
        );
        assert_eq!(
            error("time_limit = \"30s\"\n"),
            "p.toml:5:1: resources[0].time_limit: expected a wall time of 1m or more (Slurm counts in minutes)"
        );
        assert_eq!(
            error("cpus_per_task = 0\n"),
            "p.toml:5:1: resources[0].cpus_per_task: expected 1 or more"
        );
        assert_eq!(
            error("extra_args = [\"--hold\", \"gpu\"]\n"),
            "p.toml:5:1: resources[0].extra_args: expected sbatch options such as \"--constraint=gpu\", found \"gpu\""
        );
        assert_eq!(
            error("extra_args = [\"--output=x\"]\n"),
            "p.toml:5:1: resources[0].extra_args: --output is set by halley itself (the job script and its log)"
        );
        let no_max = Policy::parse(
            "p.toml",
            "[[resources]]\nname = \"hpc\"\nprovider = \"slurm\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            no_max.contains("resources[0].max: expected the most machines at once"),
            "{no_max}"
        );
    }

    #[test]
    fn slurm_keys_on_another_provider_are_refused() {
        let text = "[[resources]]\nname = \"cloud\"\nprovider = \"local\"\nmax = 1\npartition = \"debug\"\n";
        let error = Policy::parse("p.toml", text).unwrap_err().to_string();
        assert_eq!(
            error,
            "p.toml:5:1: resources[0].partition: only for provider \"slurm\""
        );
    }

    #[test]
    fn time_limits_are_whole_minutes_rounded_up() {
        assert_eq!(time_limit(60.0), "0-00:01:00");
        assert_eq!(time_limit(5401.0), "0-01:31:00");
        assert_eq!(time_limit(2.0 * 86400.0 + 3600.0), "2-01:00:00");
    }
}
