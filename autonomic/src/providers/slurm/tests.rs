//! The job script and sbatch options, and the provider against a real Slurm
//! (`sinfo` answering; skipped loudly without one, failed under CI=true).

use std::time::{Duration, Instant};

use super::*;
use crate::policy::Policy;

fn class(extra: &str) -> Resource {
    let text = format!("[[resources]]\nname = \"hpc\"\nprovider = \"slurm\"\nmax = 4\n{extra}");
    Policy::parse("p", &text).unwrap().resources.remove(0)
}

fn line(program: &str, args: &[&str]) -> WorkerLine {
    WorkerLine {
        program: program.into(),
        args: args.iter().map(Into::into).collect(),
        env: vec![("HALLEY_TOKEN".into(), Some("c0ffee".into()))],
    }
}

#[test]
fn the_job_script_runs_the_worker_as_its_machine_after_the_setup() {
    let hpc = class("slots = 4\nsetup = \"module load gcc\"\n");
    let worker = line(
        "/opt/it's/halley",
        &["worker", "--peer", "/ip4/10.0.0.1/tcp/7000"],
    );
    assert_eq!(
        script(&worker, &hpc, MachineId(3)),
        "#!/bin/sh\n# A halley worker: machine m3 of class hpc, submitted by halley with sbatch.\n\
         export HALLEY_MACHINE=m3\nmodule load gcc\n\
         exec '/opt/it'\\''s/halley' 'worker' '--peer' '/ip4/10.0.0.1/tcp/7000' '--resource' 'hpc' '--slots' '4'\n"
    );
    assert!(
        !script(&worker, &hpc, MachineId(3)).contains("c0ffee"),
        "the key stays out"
    );
}

#[test]
fn sbatch_gets_the_class_keys_then_the_extra_args() {
    let hpc = class(
        "slots = 2\npartition = \"debug\"\naccount = \"lab\"\ntime_limit = \"90m\"\n\
         extra_args = [\"--hold\"]\n",
    );
    assert_eq!(
        sbatch_args(&hpc, "halley-hpc-m1", Path::new("/logs/hpc-m1-%j.out")),
        [
            "--parsable",
            "--job-name=halley-hpc-m1",
            "--output=/logs/hpc-m1-%j.out",
            "--cpus-per-task=2",
            "--partition=debug",
            "--account=lab",
            "--time=0-01:30:00",
            "--hold",
        ]
    );
}

/// Whether a Slurm cluster answers here; without one, says so loudly, and
/// fails under CI (which starts one).
fn slurm_here() -> bool {
    let up = Command::new("sinfo")
        .args(["-h", "-o", "%a"])
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("up"));
    if !up {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but no Slurm cluster answers (sinfo): .ci/run starts one"
        );
        eprintln!("skipped: no Slurm cluster answers here (sinfo); see .ci/run");
    }
    up
}

fn dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("halley-slurm-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Polls `p` until `done` holds of what it reports, for at most 30 s.
fn until(p: &mut SlurmProvider, mut done: impl FnMut(&mut SlurmProvider, &[MachineId]) -> bool) {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let gone = p.gone();
        if done(p, &gone) {
            return;
        }
        assert!(Instant::now() < end, "timed out; jobs: {:?}", p.jobs);
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_job_runs_the_worker_and_scancel_releases_it() {
    if !slurm_here() {
        return;
    }
    let dir = dir("run");
    let marker = dir.join("ran");
    let worker = line(
        "sh",
        &[
            "-c",
            &format!(
                "echo \"$HALLEY_MACHINE $HALLEY_TOKEN $*\" > {}; exec sleep 60",
                marker.display()
            ),
            "worker",
        ],
    );
    let mut p = SlurmProvider::new(worker, &dir);
    p.start(MachineId(2), &class(""), 0.0).unwrap();
    until(&mut p, |p, gone| {
        assert!(gone.is_empty(), "{:?}", p.lost);
        p.waiting(MachineId(2))
            .is_some_and(|w| w.ends_with("RUNNING"))
            && marker.exists()
    });
    let job = p.external_id(MachineId(2)).expect("a job id");
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        "m2 c0ffee --resource hpc --slots 1\n",
        "the worker runs as its machine, with the key from the environment"
    );
    p.stop(MachineId(2), 1.0).unwrap();
    until(&mut p, |_, gone| gone == [MachineId(2)]);
    assert!(p.lost().is_empty(), "a release is no loss");
    assert_eq!(p.alive(), 0);
    let shown = Command::new("scontrol")
        .args(["show", "job", &job])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&shown.stdout).contains("JobState=CANCELLED"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_held_job_waits_and_one_that_ends_on_its_own_is_lost() {
    if !slurm_here() {
        return;
    }
    let dir = dir("lost");
    let mut p = SlurmProvider::new(line("sh", &["-c", "exit 0"]), &dir);
    p.start(MachineId(1), &class("extra_args = [\"--hold\"]\n"), 0.0)
        .unwrap();
    p.start(MachineId(2), &class(""), 0.0).unwrap();
    let mut lost = Vec::new();
    until(&mut p, |p, gone| {
        lost.extend(p.lost());
        gone.contains(&MachineId(2))
    });
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert_eq!(lost[0].0, MachineId(2));
    // COMPLETED, or GONE when the job ended and left Slurm's memory
    // between two looks (a job of `exit 0` can).
    assert!(
        ["ended on its own: COMPLETED", "ended on its own: GONE"]
            .iter()
            .any(|why| lost[0].1.contains(why)),
        "{}",
        lost[0].1
    );
    assert_eq!(
        p.waiting(MachineId(1)).as_deref(),
        Some(
            format!(
                "Slurm job {} PENDING: JobHeldUser",
                p.external_id(MachineId(1)).unwrap()
            )
            .as_str()
        )
    );
    drop(p);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sbatch_refusing_the_job_is_a_lost_machine_with_its_words() {
    if !slurm_here() {
        return;
    }
    let dir = dir("refused");
    let mut p = SlurmProvider::new(line("true", &[]), &dir);
    p.start(
        MachineId(5),
        &class("partition = \"nosuchpartition\"\n"),
        0.0,
    )
    .unwrap();
    let mut lost = Vec::new();
    until(&mut p, |p, gone| {
        lost.extend(p.lost());
        gone == [MachineId(5)]
    });
    assert!(
        lost[0].1.starts_with("sbatch failed: ") && lost[0].1.contains("partition"),
        "{lost:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
