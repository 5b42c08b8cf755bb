//! Where `halley run`'s commands come from: a tasks file (`-`: stdin),
//! or, as GNU parallel, a `--command` template fed with arguments — from
//! `:::` lists (every combination, first list slowest), an arguments file
//! (one task a line, its columns split by `--colsep`, default a tab) or
//! stdin (`-`).
//!
//! In the template `{}` is the task's arguments (each quoted for `sh`,
//! separated by spaces) and `{1}`, `{2}`, … its first, second, …
//! argument (column); a template without any gets ` {}` appended. A `{n}`
//! past a task's arguments is an error naming the line.

use std::io::Read;
use std::path::Path;

use anyhow::{anyhow, bail};
use halley_paradigms::bag::{parse_tasks, sh_quote};

/// The marker between `:::` lists.
const LIST: &str = ":::";

/// The commands of a run: `words` are its positional arguments (a tasks
/// file, or with `template` an arguments file, `-` or `:::` lists).
pub fn commands(
    template: Option<&str>,
    words: &[String],
    colsep: &str,
) -> anyhow::Result<Vec<String>> {
    let commands = match template {
        None => {
            let [file] = words else {
                bail!("expected one tasks file (or --command with ::: lists or an arguments file)");
            };
            let text = read(file)?;
            let commands = parse_tasks(&text);
            if commands.is_empty() {
                bail!(
                    "{file}: no tasks (expected one shell command a line; empty and # lines are skipped)"
                );
            }
            commands
        }
        Some(template) => {
            let tasks: Vec<(String, Vec<String>)> = match words.first().map(String::as_str) {
                Some(LIST) => combinations(&lists(words)?)
                    .into_iter()
                    .map(|args| (String::from(LIST), args))
                    .collect(),
                Some(file) if words.len() == 1 => {
                    let text = read(file)?;
                    text.lines()
                        .enumerate()
                        .filter(|(_, line)| !line.is_empty())
                        .map(|(n, line)| {
                            let columns = line.split(colsep).map(str::to_owned).collect();
                            (format!("{file}:{}", n + 1), columns)
                        })
                        .collect()
                }
                _ => bail!(
                    "--command: expected an arguments file, - (stdin) or ::: lists after it, got {words:?}"
                ),
            };
            if tasks.is_empty() {
                bail!("--command: no arguments, so no tasks");
            }
            tasks
                .iter()
                .map(|(place, args)| fill(template, args).map_err(|e| anyhow!("{place}: {e}")))
                .collect::<anyhow::Result<_>>()?
        }
    };
    Ok(commands)
}

/// The text of `file`, or stdin for `-`.
fn read(file: &str) -> anyhow::Result<String> {
    if file == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| anyhow!("-: cannot read stdin: {e}"))?;
        return Ok(text);
    }
    std::fs::read_to_string(Path::new(file)).map_err(|e| anyhow!("{file}: cannot read: {e}"))
}

/// `::: a b ::: x y` → `[[a, b], [x, y]]`.
fn lists(words: &[String]) -> anyhow::Result<Vec<Vec<String>>> {
    let mut lists: Vec<Vec<String>> = Vec::new();
    for word in words {
        if word == LIST {
            lists.push(Vec::new());
        } else if let Some(list) = lists.last_mut() {
            list.push(word.clone());
        }
    }
    if lists.iter().any(Vec::is_empty) {
        bail!("--command: a ::: list is empty");
    }
    Ok(lists)
}

/// Every combination of one value from each list, the first list slowest.
fn combinations(lists: &[Vec<String>]) -> Vec<Vec<String>> {
    let mut all = vec![Vec::new()];
    for list in lists {
        all = all
            .into_iter()
            .flat_map(|prefix: Vec<String>| {
                list.iter().map(move |value| {
                    let mut next = prefix.clone();
                    next.push(value.clone());
                    next
                })
            })
            .collect();
    }
    all
}

/// `template` with `{}` and `{n}` replaced by `args`, quoted.
fn fill(template: &str, args: &[String]) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    let mut replaced = false;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('}');
        let inside = close.map(|c| &after[..c]);
        match inside {
            Some("") => {
                let all: Vec<String> = args.iter().map(|a| sh_quote(a)).collect();
                out.push_str(&all.join(" "));
            }
            Some(n) if n.chars().all(|c| c.is_ascii_digit()) => {
                let arg = n
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .and_then(|n| args.get(n - 1))
                    .ok_or_else(|| format!("{{{n}}}: this task has {} argument(s)", args.len()))?;
                out.push_str(&sh_quote(arg));
            }
            _ => {
                // Not a placeholder (`${HOME}`, awk's `{print}`): kept.
                out.push('{');
                rest = after;
                continue;
            }
        }
        replaced = true;
        rest = &after[close.map_or(0, |c| c + 1)..];
    }
    out.push_str(rest);
    if !replaced {
        let all: Vec<String> = args.iter().map(|a| sh_quote(a)).collect();
        out.push(' ');
        out.push_str(&all.join(" "));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split(' ').map(str::to_owned).collect()
    }

    #[test]
    fn lists_give_every_combination_first_list_slowest() {
        let got = commands(Some("echo {1}-{2}"), &words("::: a b ::: x y"), "\t").unwrap();
        assert_eq!(
            got,
            [
                "echo 'a'-'x'",
                "echo 'a'-'y'",
                "echo 'b'-'x'",
                "echo 'b'-'y'"
            ]
        );
        let got = commands(Some("gzip"), &words("::: it's"), "\t").unwrap();
        assert_eq!(got, ["gzip 'it'\\''s'"]);
        assert!(commands(Some("x {}"), &words("::: a :::"), "\t").is_err());
    }

    #[test]
    fn an_arguments_file_gives_one_task_a_line_by_columns() {
        let dir = std::env::temp_dir().join(format!("halley-inputs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("args.tsv");
        std::fs::write(&file, "a\t1\n\nb\t2\nc\n").unwrap();
        let name = file.to_str().unwrap().to_owned();
        let err = commands(Some("cp {1} {2}"), std::slice::from_ref(&name), "\t").unwrap_err();
        assert!(
            err.to_string().contains("args.tsv:4: {2}: this task has 1"),
            "{err}"
        );
        std::fs::write(&file, "a\t1\n\nb\t2\n").unwrap();
        let got = commands(Some("cp {1} {2} # {}"), &[name], "\t").unwrap();
        assert_eq!(got, ["cp 'a' '1' # 'a' '1'", "cp 'b' '2' # 'b' '2'"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn braces_that_are_not_placeholders_stay() {
        assert_eq!(
            fill("awk '{print}' ${HOME}/{1}", &["f".into()]).unwrap(),
            "awk '{print}' ${HOME}/'f'"
        );
    }
}
