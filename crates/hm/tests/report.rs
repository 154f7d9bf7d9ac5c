//! `hm report`: a past run as one HTML page, loaded in a real headless
//! browser (Debian's `chromium`), which must show every step with its
//! outcome, the critical path and the logs, inert whatever they hold.

mod util;

use std::path::Path;
use std::process::Command;

use serde_json::json;
use util::{envelope, sandbox_available, skip, step, Fixture};

/// The browser, if this machine has one.
fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"].into_iter().find(|name| {
        Command::new(name)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// `chromium --headless ARGS URL` with a profile of its own in `scratch`
/// (and two minutes at most).
fn headless(browser: &str, scratch: &Path, args: &[&str], page: &Path) -> std::process::Output {
    let out = Command::new("timeout")
        .args(["120", browser])
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"])
        .args(["--force-color-profile=srgb", "--hide-scrollbars"])
        .arg(format!("--user-data-dir={}", scratch.join("profile").display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .env("HOME", scratch)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{browser} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn a_run_is_reported_as_a_page_a_browser_shows() {
    if !sandbox_available() {
        return;
    }
    let Some(browser) = chromium() else {
        skip("no `chromium` to load the report in (apt-get install chromium)");
        return;
    };
    let steps = [
        step("deps", "echo fetching deps").cache(json!({"policy": "forever"})),
        step("build", "sleep 0.5; printf 'built \\033[32mok\\033[0m\\r\\n'"),
        step("lint", "echo '</script><b>lint</b> & more'; sleep 0.1"),
        step("bad", "echo about to fail; echo oops >&2; exit 3"),
        step("after-bad", "echo never"),
    ];
    let edges = [
        ("deps", "build", "builds_in"),
        ("build", "bad", "depends_on"),
        ("bad", "after-bad", "depends_on"),
    ];
    let fx = Fixture::with(&envelope("ci", &steps, &edges, None));
    // The first run fills the cache; the second is the one reported. With
    // a slot for each, `lint` ends long before `bad`.
    fx.run_json(&["-k"]);
    let run = fx.run_json(&["-k", "-j", "4"]);
    assert_eq!(run.code, 1, "{}", run.dump());
    for (key, status) in [
        ("deps", "cache_hit"),
        ("build", "passed"),
        ("lint", "passed"),
        ("bad", "failed"),
        ("after-bad", "skipped"),
    ] {
        assert_eq!(run.status(key), status, "{}", run.dump());
    }
    let start = run.events.iter().find(|e| e["kind"] == "build_start").unwrap();
    let id = start["run_id"].as_str().unwrap().to_owned();

    let out = fx.hm(&["report"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let html = String::from_utf8(out.stdout).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert_eq!(
        fx.hm(&["report", &id[..4]]).stdout,
        html.as_bytes(),
        "a run by its prefix"
    );
    for external in ["http:", "https:", "src=", "<link", "@import", "url("] {
        assert!(!html.contains(external), "the page refers to `{external}`");
    }
    let page = fx.dir.path().join("run.html");
    std::fs::write(&page, &html).unwrap();

    // What the browser made of it.
    let dom = String::from_utf8(headless(browser, fx.dir.path(), &["--dump-dom"], &page).stdout).unwrap();
    assert!(dom.contains(&format!("<code id=\"run-id\">{id}</code>")), "{dom}");
    assert!(dom.contains("<span class=\"badge failed\" id=\"status\">failed</span>"));
    for (key, class, label) in [
        ("deps", "cache-hit", "cache hit"),
        ("build", "passed", "passed"),
        ("lint", "passed", "passed"),
        ("bad", "failed", "failed"),
        ("after-bad", "skipped", "skipped"),
    ] {
        let row = timeline_row(&dom, &run.id(key));
        assert!(row.contains(&format!("class=\"row {class}")), "{row}");
        assert!(row.contains(&format!("<i class=\"chip\"></i>{label}</span>")), "{row}");
        assert_eq!(
            row.contains("class=\"bar\""),
            key != "after-bad",
            "a bar for every step that ran: {row}"
        );
    }
    // The run ended with `bad`, after `build`, which built in `deps`.
    let critical = |key: &str| timeline_row(&dom, &run.id(key)).contains(" critical\"");
    assert!(critical("deps") && critical("build") && critical("bad"), "{dom}");
    assert!(!critical("lint") && !critical("after-bad"), "{dom}");
    let path = &dom[dom.find("id=\"critical-path\"").expect("a critical path")..];
    let path = &path[..path.find("</p>").unwrap()];
    let order: Vec<usize> = ["deps", "build", "bad"]
        .iter()
        .map(|k| path.find(&format!(">{k}</a>")).unwrap())
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{path}");
    // Logs: the failed one open, colours as spans, markup as text.
    assert!(
        dom.contains("about to fail\noops") || dom.contains("oops\nabout to fail"),
        "{dom}"
    );
    assert!(dom.contains("built <span class=\"c2\">ok</span>"), "{dom}");
    assert!(
        dom.contains("&lt;/script&gt;&lt;b&gt;lint&lt;/b&gt; &amp; more"),
        "{dom}"
    );
    assert!(!dom.contains("<b>lint</b>"), "a log's markup became elements: {dom}");
    let bad = &dom[dom.find("<details class=\"step failed").unwrap()..];
    assert!(bad[..bad.find('>').unwrap()].contains(" open"), "{bad}");

    // And it shows: the status colours and the critical path's outline
    // are on the screen.
    let shot = fx.dir.path().join("run.png");
    headless(
        browser,
        fx.dir.path(),
        &[&format!("--screenshot={}", shot.display()), "--window-size=1200,900"],
        &page,
    );
    let pixels = png::decode(&std::fs::read(&shot).unwrap());
    assert_eq!((pixels.width, pixels.height), (1200, 900));
    let background = pixels.at(0, 0);
    let drawn = pixels.iter().filter(|&p| p != background).count();
    assert!(drawn > pixels.len() / 100, "the page is blank: {drawn} pixels drawn");
    for (what, colour) in [
        ("passed", [0x2f, 0x9e, 0x44]),
        ("cache hit", [0x1c, 0x7e, 0xd6]),
        ("failed", [0xe0, 0x31, 0x31]),
        ("critical path", [0xf7, 0x67, 0x07]),
    ] {
        assert!(
            pixels.iter().any(|p| p == colour),
            "no {what} colour {colour:02x?} in the screenshot"
        );
    }
}

/// The timeline's row of the step `id`, from the DOM (one line).
fn timeline_row<'a>(dom: &'a str, id: &str) -> &'a str {
    let at = dom
        .find(&format!("id=\"row-{id}\""))
        .unwrap_or_else(|| panic!("no row for step {id}: {dom}"));
    let start = dom[..at].rfind("<div").unwrap();
    let end = at + dom[at..].find('\n').unwrap();
    &dom[start..end]
}

#[test]
fn an_unknown_run_is_a_usage_error() {
    let fx = Fixture::new();
    let out = fx.hm(&["report"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no run recorded yet"));
    let out = fx.hm(&["report", "nosuchrun"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no run `nosuchrun` (see `hm runs`)"), "{stderr}");
    assert!(out.stdout.is_empty());
}

/// Just enough of PNG to read chromium's screenshots: 8-bit RGB or RGBA,
/// not interlaced.
mod png {
    use std::io::Read;

    pub struct Pixels {
        pub width: usize,
        pub height: usize,
        rgb: Vec<[u8; 3]>,
    }

    impl Pixels {
        pub fn at(&self, x: usize, y: usize) -> [u8; 3] {
            self.rgb[y * self.width + x]
        }

        pub fn iter(&self) -> impl Iterator<Item = [u8; 3]> + '_ {
            self.rgb.iter().copied()
        }

        pub fn len(&self) -> usize {
            self.rgb.len()
        }
    }

    pub fn decode(file: &[u8]) -> Pixels {
        assert_eq!(&file[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
        let (mut width, mut height, mut channels) = (0, 0, 0);
        let mut data = Vec::new();
        let mut at = 8;
        while at + 8 <= file.len() {
            let len = u32::from_be_bytes(file[at..at + 4].try_into().unwrap()) as usize;
            let kind = &file[at + 4..at + 8];
            let body = &file[at + 8..at + 8 + len];
            match kind {
                b"IHDR" => {
                    width = u32::from_be_bytes(body[0..4].try_into().unwrap()) as usize;
                    height = u32::from_be_bytes(body[4..8].try_into().unwrap()) as usize;
                    assert_eq!(body[8], 8, "bit depth");
                    channels = match body[9] {
                        2 => 3,
                        6 => 4,
                        other => panic!("colour type {other}"),
                    };
                    assert_eq!(body[12], 0, "interlaced");
                }
                b"IDAT" => data.extend_from_slice(body),
                _ => {}
            }
            at += 12 + len;
        }
        let mut raw = Vec::new();
        flate2::read::ZlibDecoder::new(&data[..]).read_to_end(&mut raw).unwrap();
        let stride = width * channels;
        assert_eq!(raw.len(), height * (stride + 1), "image data");
        let mut pixels = vec![0u8; height * stride];
        for y in 0..height {
            let filter = raw[y * (stride + 1)];
            let line = &raw[y * (stride + 1) + 1..(y + 1) * (stride + 1)];
            for x in 0..stride {
                let a = if x >= channels {
                    pixels[y * stride + x - channels]
                } else {
                    0
                };
                let b = if y > 0 { pixels[(y - 1) * stride + x] } else { 0 };
                let c = if x >= channels && y > 0 {
                    pixels[(y - 1) * stride + x - channels]
                } else {
                    0
                };
                let predicted = match filter {
                    0 => 0,
                    1 => a,
                    2 => b,
                    3 => ((a as u16 + b as u16) / 2) as u8,
                    4 => paeth(a, b, c),
                    other => panic!("filter {other}"),
                };
                pixels[y * stride + x] = line[x].wrapping_add(predicted);
            }
        }
        let rgb = pixels.chunks(channels).map(|p| [p[0], p[1], p[2]]).collect();
        Pixels { width, height, rgb }
    }

    fn paeth(a: u8, b: u8, c: u8) -> u8 {
        let p = a as i16 + b as i16 - c as i16;
        let (pa, pb, pc) = ((p - a as i16).abs(), (p - b as i16).abs(), (p - c as i16).abs());
        if pa <= pb && pa <= pc {
            a
        } else if pb <= pc {
            b
        } else {
            c
        }
    }
}
