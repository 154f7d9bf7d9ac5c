//! Figures of events as people read them.

/// `bytes` for people, in binary units with up to one decimal:
/// `512 MiB`, `8 GiB`, `1.5 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    let (value, unit) = scaled(bytes);
    let rounded = (value * 10.0).round() / 10.0;
    match rounded.fract() == 0.0 {
        true => format!("{rounded:.0} {unit}"),
        false => format!("{rounded:.1} {unit}"),
    }
}

/// `bytes` for people with one decimal always (but for bytes), for a
/// measured figure: `8.0 GiB`, `511.9 MiB`, `512 B`.
pub fn human_bytes_exact(bytes: u64) -> String {
    match scaled(bytes) {
        (_, "B") => format!("{bytes} B"),
        (value, unit) => format!("{value:.1} {unit}"),
    }
}

fn scaled(bytes: u64) -> (f64, &'static str) {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    (value, UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_for_people() {
        assert_eq!(human_bytes(8192 << 20), "8 GiB");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
        assert_eq!(human_bytes(512 << 20), "512 MiB");
        assert_eq!(human_bytes(100), "100 B");
        assert_eq!(human_bytes_exact(8192 << 20), "8.0 GiB");
        assert_eq!(human_bytes_exact((512 << 20) - (100 << 10)), "511.9 MiB");
        assert_eq!(human_bytes_exact(512), "512 B");
    }
}
