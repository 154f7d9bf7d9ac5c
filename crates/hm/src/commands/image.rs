use std::time::{SystemTime, UNIX_EPOCH};

use hm_exec::exit_codes;
use hm_vm::ImageStore;

use super::{cache_dir, print_json};
use crate::cli::{Format, ImageCommand};
use crate::error::CliError;

/// `hm image ...`.
pub fn image(command: ImageCommand) -> Result<i32, CliError> {
    let store = ImageStore::new(&cache_dir()?);
    match command {
        ImageCommand::Import { name, path } => {
            say!("importing `{name}` from `{}`...", path.display());
            let summary = store.import(&name, &path)?;
            let info = &summary.info;
            say!(
                "imported `{name}`: {} entries, {}, id {}",
                info.files,
                format_size(info.size_bytes),
                short_id(&info.id)
            );
            if summary.skipped_special > 0 {
                say!(
                    "note: {} device nodes were left out (creating them needs root); the sandbox provides its own /dev",
                    summary.skipped_special
                );
            }
        }
        ImageCommand::Ls { format } => {
            let images = store.list()?;
            match format {
                Format::Json => print_json(&images)?,
                Format::Human => {
                    let width = images.iter().map(|i| i.name.len()).max().unwrap_or(4).max(4);
                    let mut text = format!("{:<width$}  {:<19}  {:>9}  CREATED\n", "NAME", "ID", "SIZE");
                    let now = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or(0);
                    for image in images {
                        text.push_str(&format!(
                            "{:<width$}  {:<19}  {:>9}  {} ago\n",
                            image.name,
                            short_id(&image.id),
                            format_size(image.size_bytes),
                            format_age(now.saturating_sub(image.created))
                        ));
                    }
                    crate::output::print(&text)?;
                }
            }
        }
        ImageCommand::Rm { name } => {
            store.remove(&name)?;
            say!("removed `{name}`");
        }
    }
    Ok(exit_codes::PASSED)
}

fn short_id(id: &str) -> &str {
    &id[..id.len().min(19)]
}

/// `512 B`, `3.4 MiB`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `42s`, `5m`, `3h`, `2d`.
pub fn format_age(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m", secs / 60),
        3600..=86_399 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}
