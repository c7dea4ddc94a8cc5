//! A private X server (Xvfb) for tests that open the editor, as on a
//! desktop but headless.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::screenshot::Shot;

/// A process killed when dropped, so a failing test leaves nothing behind.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts Xvfb on a free display of `width` x `height` pixels; returns the
/// server and the display name once the server answers.
pub fn xvfb(width: u32, height: u32) -> (Running, String) {
    for n in 0..50 {
        let display = format!(":{}", 90 + (std::process::id() + n) % 400);
        let lock = format!("/tmp/.X{}-lock", &display[1..]);
        if std::path::Path::new(&lock).exists() {
            continue;
        }
        let child = Command::new("Xvfb")
            .args([
                &display,
                "-screen",
                "0",
                &format!("{width}x{height}x24"),
                "-nolisten",
                "tcp",
                "-br",
                "-noreset",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb runs (the README's test command installs the xvfb package)");
        let server = Running(child);
        // The server is up once a dump of its root window works.
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if Shot::take(&display).is_ok() {
                return (server, display);
            }
        }
        drop(server);
    }
    panic!("no free X display for Xvfb");
}

/// Asks every top-level window on `display` to close, as a window
/// manager's close button does (a `WM_DELETE_WINDOW` message); returns how
/// many windows were asked.
pub fn close_windows(display: &str) -> Result<usize, String> {
    use x11rb::connection::Connection;
    use x11rb::protocol::xproto::{ClientMessageEvent, ConnectionExt, EventMask};

    let (conn, screen) = x11rb::connect(Some(display)).map_err(|e| e.to_string())?;
    let root = conn.setup().roots[screen].root;
    let atom = |name: &str| -> Result<u32, String> {
        Ok(conn
            .intern_atom(false, name.as_bytes())
            .map_err(|e| e.to_string())?
            .reply()
            .map_err(|e| e.to_string())?
            .atom)
    };
    let (protocols, delete) = (atom("WM_PROTOCOLS")?, atom("WM_DELETE_WINDOW")?);
    let tree = conn
        .query_tree(root)
        .map_err(|e| e.to_string())?
        .reply()
        .map_err(|e| e.to_string())?;
    for &window in &tree.children {
        let message = ClientMessageEvent::new(32, window, protocols, [delete, 0, 0, 0, 0]);
        conn.send_event(false, window, EventMask::NO_EVENT, message)
            .map_err(|e| e.to_string())?;
    }
    conn.flush().map_err(|e| e.to_string())?;
    Ok(tree.children.len())
}
