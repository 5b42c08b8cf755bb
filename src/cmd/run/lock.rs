//! `<out>/.lock`: one `halley run` at a time in an output directory. It
//! holds the pid of the run using the directory; a lock whose process is
//! gone (the run was killed) is taken over, so `--resume` after a SIGKILL
//! works. Removed when the run ends.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

const FILE: &str = ".lock";

/// The directory is this process's until dropped.
#[derive(Debug)]
pub struct Lock(PathBuf);

impl Lock {
    pub fn take(out: &Path) -> anyhow::Result<Lock> {
        let path = out.join(FILE);
        if let Ok(text) = std::fs::read_to_string(&path)
            && let Ok(pid) = text.trim().parse::<u32>()
            && pid != std::process::id()
            && alive(pid)
        {
            bail!(
                "{}: another halley run (pid {pid}) is using this directory; wait for it, \
                 or stop it (it can be resumed)",
                out.display()
            );
        }
        std::fs::write(&path, format!("{}\n", std::process::id()))
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(Lock(path))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Whether process `pid` exists and is not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_runs_lock_is_refused_and_a_dead_ones_taken_over() {
        let dir = std::env::temp_dir().join(format!("halley-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        std::fs::write(dir.join(FILE), format!("{}\n", child.id())).unwrap();
        let err = Lock::take(&dir).unwrap_err().to_string();
        assert!(err.contains(&format!("pid {}", child.id())), "{err}");
        child.kill().unwrap();
        child.wait().unwrap();
        let lock = Lock::take(&dir).unwrap();
        assert!(dir.join(FILE).exists());
        drop(lock);
        assert!(!dir.join(FILE).exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
