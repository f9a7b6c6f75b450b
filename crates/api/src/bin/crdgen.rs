//! Writes the CRD YAML of the platform into the `dynamo-crds` chart, or checks it is current.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Parser;

/// Generate the CustomResourceDefinitions from the Rust types.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Directory the CRD files are written to.
    #[arg(long, default_value = "charts/crds/templates")]
    out_dir: PathBuf,
    /// Write nothing; fail if any file differs from what would be written.
    #[arg(long)]
    check: bool,
    /// Print the CRDs to standard output as one YAML stream instead of writing files.
    #[arg(long, conflicts_with = "check")]
    stdout: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let files = dynamo_api::crd::rendered()?;
    if args.stdout {
        let stream: Vec<&str> = files.iter().map(|(_, yaml)| yaml.as_str()).collect();
        print!("{}", stream.join("---\n"));
        return Ok(());
    }
    let mut stale = Vec::new();
    for (name, yaml) in &files {
        let path = args.out_dir.join(name);
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current == *yaml {
            continue;
        }
        if args.check {
            stale.push(path.display().to_string());
        } else {
            std::fs::create_dir_all(&args.out_dir)
                .with_context(|| format!("creating {}", args.out_dir.display()))?;
            std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {} ({} bytes)", path.display(), yaml.len());
        }
    }
    if !stale.is_empty() {
        bail!(
            "CRD files are out of date: {}; run `cargo run -p dynamo-api --bin crdgen`",
            stale.join(", ")
        );
    }
    Ok(())
}
