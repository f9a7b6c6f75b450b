//! The files named on the command line: `-` for standard input, directories searched
//! recursively for manifests, anything else read as it is named.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

/// How standard input is shown in reports.
pub const STDIN: &str = "<stdin>";

/// The argument that stands for standard input.
const STDIN_ARGUMENT: &str = "-";

/// One manifest file's text and the name reports show for it.
#[derive(Debug)]
pub struct ManifestFile {
    pub shown: String,
    pub text: String,
}

/// A file or directory that could not be read.
#[derive(Debug)]
pub struct ReadError {
    pub shown: String,
    pub reason: String,
}

/// Whether `argument` stands for standard input.
pub fn is_stdin(argument: &Path) -> bool {
    argument == Path::new(STDIN_ARGUMENT)
}

/// The manifest files of `arguments`, in order: each directory's files sorted by path.
/// Standard input is read where `-` appears.
pub fn read(arguments: &[PathBuf]) -> (Vec<ManifestFile>, Vec<ReadError>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for argument in arguments {
        if is_stdin(argument) {
            let mut text = String::new();
            match std::io::stdin().read_to_string(&mut text) {
                Ok(_) => files.push(ManifestFile {
                    shown: STDIN.into(),
                    text,
                }),
                Err(e) => errors.push(ReadError {
                    shown: STDIN.into(),
                    reason: e.to_string(),
                }),
            }
            continue;
        }
        let paths = if argument.is_dir() {
            let mut found = Vec::new();
            manifests_under(argument, &mut BTreeSet::new(), &mut found, &mut errors);
            found
        } else {
            vec![argument.clone()]
        };
        for path in paths {
            let shown = path.display().to_string();
            match std::fs::read_to_string(&path) {
                Ok(text) => files.push(ManifestFile { shown, text }),
                Err(e) => errors.push(ReadError {
                    shown,
                    reason: e.to_string(),
                }),
            }
        }
    }
    (files, errors)
}

/// Appends the manifest files under `dir` (recursively, following links once) to `found`.
fn manifests_under(
    dir: &Path,
    visited: &mut BTreeSet<PathBuf>,
    found: &mut Vec<PathBuf>,
    errors: &mut Vec<ReadError>,
) {
    let error = |e: std::io::Error| ReadError {
        shown: dir.display().to_string(),
        reason: e.to_string(),
    };
    // A link back up the tree would otherwise be walked forever.
    match dir.canonicalize() {
        Ok(canonical) => {
            if !visited.insert(canonical) {
                return;
            }
        }
        Err(e) => return errors.push(error(e)),
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => return errors.push(error(e)),
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|entry| entry.path()).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            manifests_under(&path, visited, found, errors);
        } else if is_manifest_name(&path) {
            found.push(path);
        }
    }
}

/// `*.yaml`, `*.yml` and `*.json`, as `kubectl apply -R` picks them.
fn is_manifest_name(path: &Path) -> bool {
    path.extension()
        .and_then(|extension| extension.to_str())
        .is_some_and(|extension| matches!(extension, "yaml" | "yml" | "json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_names() {
        for (name, manifest) in [
            ("a.yaml", true),
            ("dir/b.yml", true),
            ("c.json", true),
            ("d.YAML", false),
            ("values.yaml.tmpl", false),
            ("README.md", false),
            ("yaml", false),
        ] {
            assert_eq!(is_manifest_name(Path::new(name)), manifest, "{name}");
        }
    }

    #[test]
    fn only_a_lone_dash_is_stdin() {
        assert!(is_stdin(Path::new("-")));
        assert!(!is_stdin(Path::new("./-")));
        assert!(!is_stdin(Path::new("--")));
    }
}
