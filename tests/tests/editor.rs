//! The editor opens in the standalone build under a real X server (Xvfb),
//! draws something, and scales: screenshots at 1x and 2x.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reverie_tests::clap_host::reverie_bundle;
use reverie_tests::screenshot::Shot;
use reverie_tests::workspace_root;
use reverie_tests::xvfb::{xvfb, Running};

/// Runs the standalone on `display` with the dummy audio backend and
/// returns a screenshot once the editor has drawn itself.
fn editor_screenshot(display: &str, scale: u32) -> Shot {
    // The window takes its scale from the X resources' Xft.dpi, as on a
    // desktop set to that scaling.
    let mut xrdb = Command::new("xrdb")
        .args(["-nocpp", "-display", display, "-merge"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("xrdb runs (the README's test command installs x11-xserver-utils)");
    std::io::Write::write_all(
        xrdb.stdin.as_mut().expect("stdin"),
        format!("Xft.dpi: {}\n", 96 * scale).as_bytes(),
    )
    .expect("xrdb reads the setting");
    drop(xrdb.stdin.take());
    assert!(xrdb.wait().expect("xrdb ends").success(), "xrdb failed");
    let bundle = reverie_bundle();
    let app = Running(
        Command::new(&bundle.standalone)
            .args(["--backend", "dummy"])
            .env("DISPLAY", display)
            .env("NICE_LOG", "/dev/null")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the standalone starts"),
    );
    // Poll until the window shows the drawn editor (many colours: text,
    // widgets, pictures; not a blank or single-colour window) and has
    // settled: egui lays grids out over the first frames, and only the
    // status numbers may still change between two dumps.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut previous: Option<Shot> = None;
    let mut colours = 0;
    while Instant::now() < deadline {
        let shot = Shot::take(display).expect("xwd works");
        colours = shot.distinct_colours();
        let Some(area) = shot.content_box([0, 0, 0]) else {
            continue;
        };
        let window = shot.crop(area);
        if window.distinct_colours() <= 64 || window.width < 400 {
            continue;
        }
        if let Some(before) = previous
            .as_ref()
            .filter(|b| (b.width, b.height) == (window.width, window.height))
        {
            let changed = before
                .rgb
                .chunks(3)
                .zip(window.rgb.chunks(3))
                .filter(|(a, b)| a != b)
                .count();
            if changed * 100 < window.width * window.height {
                drop(app);
                return window;
            }
        }
        previous = Some(window);
    }
    panic!("the editor never drew itself and settled within 120 s ({colours} colours on screen)");
}

#[test]
fn editor_opens_draws_and_scales() {
    let (_server, display) = xvfb(2400, 1600);
    let one = editor_screenshot(&display, 1);
    // The window is the editor's size and far from uniform.
    assert!(
        (900..=1100).contains(&one.width) && (600..=800).contains(&one.height),
        "1x window is {}x{}",
        one.width,
        one.height
    );
    let out = workspace_root().join("target").join("editor-screenshot.png");
    one.save_png(&out).expect("the screenshot saves");

    let two = editor_screenshot(&display, 2);
    let ratio = two.width as f64 / one.width as f64;
    assert!(
        (1.8..=2.2).contains(&ratio),
        "at 2x the window is {}x{} against {}x{} at 1x",
        two.width,
        two.height,
        one.width,
        one.height
    );
    two.save_png(&workspace_root().join("target").join("editor-screenshot-2x.png"))
        .expect("the screenshot saves");
}
