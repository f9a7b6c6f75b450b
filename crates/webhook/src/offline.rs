//! `dynamo-webhook validate`: everything the cluster would check on manifests
//! ([`dynamo_api::offline::check`]: schema, CEL rules, admission rules), without a cluster; a
//! create for each object, or with `--old` an update from its old version.
//!
//! Findings go to standard output, one line each (or a JSON array with `-o json`); notes about
//! what was skipped and the summary go to standard error. Exit code: 0 nothing refused, 1 an
//! object refused, 2 an input could not be read (or bad flags).

mod documents;
mod identity;
mod report;
mod sources;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::Value;

use identity::Identity;
use report::Location;
pub use report::Record;

/// Some object would be refused.
pub const EXIT_REFUSED: u8 = 1;
/// An input could not be read, or the flags are wrong (as clap exits on bad flags).
pub const EXIT_UNREADABLE: u8 = 2;

/// How findings are printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// `file:document: Kind/name: path: message (rule)`, one line each.
    #[default]
    Text,
    /// One JSON array of records for tools.
    Json,
}

/// What to validate and how to report it.
#[derive(Clone, Debug)]
pub struct Options {
    /// Manifest files, directories, or `-` for standard input.
    pub files: Vec<PathBuf>,
    /// The old versions, for an update; empty: every object is a create.
    pub old: Vec<PathBuf>,
    /// The namespace of objects that name none, on both sides.
    pub namespace: String,
    pub output: OutputFormat,
}

/// Validates `options.files` and reports; the exit code says whether anything was refused.
pub fn run(options: &Options) -> ExitCode {
    let stdin_uses = options
        .files
        .iter()
        .chain(&options.old)
        .filter(|path| sources::is_stdin(path))
        .count();
    if stdin_uses > 1 {
        eprintln!("error: standard input (-) can be read only once");
        return ExitCode::from(EXIT_UNREADABLE);
    }
    let mut tally = Tally::default();
    let old_versions = (!options.old.is_empty())
        .then(|| old_versions(load(&options.old, &mut tally), &options.namespace));
    let mut records = Vec::new();
    for (location, object) in load(&options.files, &mut tally) {
        let identity = Identity::of(&object, &options.namespace);
        let pairing = pair(&identity, old_versions.as_ref());
        let Some(findings) = dynamo_api::offline::check(&object, pairing.old()) else {
            let text = "skipped: nothing to check for this kind";
            eprintln!("{}", report::note(&location, &identity, text));
            continue;
        };
        if let Some(text) = pairing.note() {
            eprintln!("{}", report::note(&location, &identity, text));
        }
        tally.checked += 1;
        if findings.iter().any(|finding| !finding.warning) {
            tally.refused += 1;
        }
        for finding in findings {
            let record = Record::new(&location, &identity, finding);
            match options.output {
                OutputFormat::Text => println!("{}", record.line()),
                OutputFormat::Json => records.push(record),
            }
        }
    }
    if options.output == OutputFormat::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&records).expect("records are plain data")
        );
    }
    eprintln!(
        "{}",
        report::summary(tally.checked, tally.refused, tally.unreadable)
    );
    ExitCode::from(tally.exit_code())
}

#[derive(Debug, Default)]
struct Tally {
    checked: usize,
    refused: usize,
    /// Files and documents that could not be read.
    unreadable: usize,
}

impl Tally {
    fn exit_code(&self) -> u8 {
        if self.unreadable > 0 {
            EXIT_UNREADABLE
        } else if self.refused > 0 {
            EXIT_REFUSED
        } else {
            0
        }
    }
}

/// Every object of `arguments` with where it is; what cannot be read is reported on standard
/// error and counted.
fn load(arguments: &[PathBuf], tally: &mut Tally) -> Vec<(Location, Value)> {
    let (files, errors) = sources::read(arguments);
    for error in errors {
        eprintln!("{}: unreadable: {}", error.shown, error.reason);
        tally.unreadable += 1;
    }
    let mut objects = Vec::new();
    for file in files {
        let (documents, problem) = documents::decode(&file.text);
        objects.extend(documents.into_iter().map(|document| {
            let location = Location {
                file: file.shown.clone(),
                document: document.index,
            };
            (location, document.object)
        }));
        if let Some(problem) = problem {
            let location = Location {
                file: file.shown.clone(),
                document: problem.index,
            };
            eprintln!("{location}: unreadable: the document {}", problem.reason);
            tally.unreadable += 1;
        }
    }
    objects
}

type OldVersions = BTreeMap<Identity, Value>;

/// The old objects by identity; of two with the same identity the later one counts, as it
/// would after applying both.
fn old_versions(objects: Vec<(Location, Value)>, namespace: &str) -> OldVersions {
    let mut versions = OldVersions::new();
    let mut seen_at: BTreeMap<Identity, Location> = BTreeMap::new();
    for (location, object) in objects {
        let identity = Identity::of(&object, namespace);
        if identity.name.is_none() {
            continue;
        }
        if let Some(earlier) = seen_at.insert(identity.clone(), location.clone()) {
            let text = format!("also at {earlier}; this later one is the old version");
            eprintln!("{}", report::note(&location, &identity, &text));
        }
        versions.insert(identity, object);
    }
    versions
}

/// Whether an object is checked as a create or as an update, and why.
#[derive(Debug, PartialEq)]
enum Pairing<'a> {
    /// No `--old`: every object is new.
    Create,
    /// The old version with the same kind, namespace and name.
    Update(&'a Value),
    /// `--old` was given but holds no version of this object.
    CreateWithoutOldVersion,
    /// An object without a name cannot have an old version.
    CreateUnnamed,
}

impl<'a> Pairing<'a> {
    fn old(&self) -> Option<&'a Value> {
        match self {
            Pairing::Update(old) => Some(old),
            _ => None,
        }
    }

    fn note(&self) -> Option<&'static str> {
        match self {
            Pairing::Create | Pairing::Update(_) => None,
            Pairing::CreateWithoutOldVersion => {
                Some("no old version of it in --old; checked as a create")
            }
            Pairing::CreateUnnamed => {
                Some("has no name to find an old version by; checked as a create")
            }
        }
    }
}

fn pair<'a>(identity: &Identity, old_versions: Option<&'a OldVersions>) -> Pairing<'a> {
    let Some(old_versions) = old_versions else {
        return Pairing::Create;
    };
    if identity.name.is_none() {
        return Pairing::CreateUnnamed;
    }
    match old_versions.get(identity) {
        Some(old) => Pairing::Update(old),
        None => Pairing::CreateWithoutOldVersion,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn identity(kind: &str, namespace: &str, name: Option<&str>) -> Identity {
        Identity {
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.map(Into::into),
        }
    }

    #[test]
    fn pairing_by_kind_namespace_and_name() {
        let stored = json!({"kind": "DynamoModel", "metadata": {"name": "m"}});
        let versions: OldVersions =
            [(identity("DynamoModel", "team", Some("m")), stored.clone())].into();
        let cases = [
            (
                identity("DynamoModel", "team", Some("m")),
                None,
                Pairing::Create,
            ),
            (
                identity("DynamoModel", "team", Some("m")),
                Some(&versions),
                Pairing::Update(&stored),
            ),
            (
                identity("DynamoModel", "other", Some("m")),
                Some(&versions),
                Pairing::CreateWithoutOldVersion,
            ),
            (
                identity("DynamoGraphDeployment", "team", Some("m")),
                Some(&versions),
                Pairing::CreateWithoutOldVersion,
            ),
            (
                identity("DynamoModel", "team", None),
                Some(&versions),
                Pairing::CreateUnnamed,
            ),
        ];
        for (identity, versions, expected) in cases {
            assert_eq!(pair(&identity, versions), expected, "{identity:?}");
        }
    }

    #[test]
    fn only_creates_that_had_a_chance_of_an_old_version_get_a_note() {
        let old = json!({});
        assert_eq!(Pairing::Create.note(), None);
        assert_eq!(Pairing::Update(&old).note(), None);
        assert!(Pairing::CreateWithoutOldVersion.note().is_some());
        assert!(Pairing::CreateUnnamed.note().is_some());
        assert_eq!(Pairing::Update(&old).old(), Some(&old));
        assert_eq!(Pairing::CreateWithoutOldVersion.old(), None);
    }

    #[test]
    fn the_later_of_two_old_versions_counts() {
        let at = |document| Location {
            file: "old.yaml".into(),
            document,
        };
        let first = json!({"kind": "DynamoModel", "metadata": {"name": "m"}, "spec": {"v": 1}});
        let second = json!({"kind": "DynamoModel", "metadata": {"name": "m", "namespace": "team"}, "spec": {"v": 2}});
        let unnamed = json!({"kind": "DynamoModel", "metadata": {"generateName": "m-"}});
        let versions = old_versions(
            vec![(at(1), first), (at(2), second.clone()), (at(3), unnamed)],
            "team",
        );
        assert_eq!(versions.len(), 1);
        assert_eq!(
            versions[&identity("DynamoModel", "team", Some("m"))],
            second
        );
    }

    #[test]
    fn exit_codes() {
        let tally = |refused, unreadable| Tally {
            checked: 3,
            refused,
            unreadable,
        };
        assert_eq!(tally(0, 0).exit_code(), 0);
        assert_eq!(tally(2, 0).exit_code(), EXIT_REFUSED);
        assert_eq!(tally(0, 1).exit_code(), EXIT_UNREADABLE);
        assert_eq!(tally(2, 1).exit_code(), EXIT_UNREADABLE);
    }
}
