//! A minimal W3C WebDriver client for the dashboard's browser tests: chromedriver driving a
//! headless Chromium, spoken to over plain HTTP (no extra dependency).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A browser session; the browser and its driver go away when it is dropped.
pub struct Driver {
    driver: Child,
    port: u16,
    session: String,
    _profile: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Driver {
    /// Starts chromedriver and a headless Chromium. `None` (after saying so on one line) when
    /// they are not installed, unless `CODEFRAME_REQUIRE_BROWSER` is set (`.ci/run` sets it):
    /// then their absence fails the test.
    pub fn start_or_skip(test: &str) -> Option<Self> {
        let present = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
        if !present {
            assert!(
                std::env::var_os("CODEFRAME_REQUIRE_BROWSER").is_none(),
                "{test}: {CHROMIUM} and {CHROMEDRIVER} are required (apt-get install chromium chromium-driver)"
            );
            #[allow(clippy::print_stderr)] // the one line saying the test was skipped
            {
                eprintln!(
                    "skipped {test}: no Chromium ({CHROMIUM}) or chromedriver ({CHROMEDRIVER}) on this machine"
                );
            }
            return None;
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let profile = tempfile::tempdir().unwrap();
        let mut d = Self { driver, port, session: String::new(), _profile: profile };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,1000",
        ]
        .iter()
        .map(|a| (*a).to_owned())
        .chain([format!("--user-data-dir={}", d._profile.path().display())])
        .collect::<Vec<_>>();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        }}});
        let created = d.raw("POST", "/session", Some(&caps));
        d.session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_owned();
        Some(d)
    }

    /// One HTTP/1.1 exchange with chromedriver (which speaks no HTTP/1.0); the parsed JSON answer.
    fn raw(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        // chromedriver keeps the connection open: read the headers, then exactly the body.
        let mut answer = Vec::new();
        let mut buf = [0u8; 8192];
        let header_end = loop {
            if let Some(i) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "{method} {path}: the driver closed the connection");
            answer.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8_lossy(&answer[..header_end]).to_ascii_lowercase();
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok());
        let chunked = head.contains("transfer-encoding: chunked");
        loop {
            let got = &answer[header_end..];
            let complete = match length {
                Some(n) => got.len() >= n,
                None if chunked => got.ends_with(b"0\r\n\r\n"),
                None => false,
            };
            if complete {
                break;
            }
            let n = stream.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&answer[header_end..]).into_owned();
        let body = if chunked { dechunk(&text) } else { text.clone() };
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{method} {path}: {e}: {head}{text}"))
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let v = self.raw(method, &format!("/session/{}{path}", self.session), body.as_ref());
        if let Some(err) = v["value"]["error"].as_str() {
            panic!("webdriver {method} {path}: {err}: {}", v["value"]["message"]);
        }
        v["value"].clone()
    }

    pub fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({"url": url})));
    }

    /// The element matching `css` once there is one (within 15 s).
    pub fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let v = self.raw(
                "POST",
                &format!("/session/{}/element", self.session),
                Some(&json!({"using": "css selector", "value": css})),
            );
            if let Some(id) = v["value"][ELEMENT].as_str() {
                return id.to_owned();
            }
            assert!(Instant::now() < deadline, "no element {css:?} within 15 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs `steps` on the element matching `css`; again, on a fresh match, when the live page
    /// re-rendered it in between (a stale element), for up to 15 s.
    fn on_element(&self, css: &str, steps: &[(&str, Value)]) {
        let deadline = Instant::now() + Duration::from_secs(15);
        'again: loop {
            let id = self.find(css);
            for (action, body) in steps {
                let path = format!("/session/{}/element/{id}/{action}", self.session);
                let v = self.raw("POST", &path, Some(body));
                match v["value"]["error"].as_str() {
                    None => {}
                    Some("stale element reference") if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50));
                        continue 'again;
                    }
                    Some(err) => panic!("webdriver {action} on {css:?}: {err}: {}", v["value"]["message"]),
                }
            }
            return;
        }
    }

    pub fn click(&self, css: &str) {
        self.on_element(css, &[("click", json!({}))]);
    }

    pub fn type_into(&self, css: &str, text: &str) {
        self.on_element(css, &[("clear", json!({})), ("value", json!({"text": text}))]);
    }

    /// Waits until the text of `css` satisfies `ok` (within 15 s); the text.
    pub fn wait_text(&self, css: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let found = self.script(
                "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
                json!([css]),
            );
            if let Some(t) = found.as_str()
                && ok(t)
            {
                return t.to_owned();
            }
            assert!(Instant::now() < deadline, "{css:?} never got the text expected; last: {found}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs `js` in the page (`arguments` are `args`); its result.
    pub fn script(&self, js: &str, args: Value) -> Value {
        self.call("POST", "/execute/sync", Some(json!({"script": js, "args": args})))
    }

    pub fn resize(&self, width: u32, height: u32) {
        self.call("POST", "/window/rect", Some(json!({"width": width, "height": height})));
    }

    /// Saves a PNG screenshot of the page.
    pub fn screenshot(&self, to: &Path) {
        let b64 = self.call("GET", "/screenshot", None);
        let png = base64_decode(b64.as_str().unwrap_or_default());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(to, png).unwrap();
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.raw("DELETE", &format!("/session/{}", self.session), None)
            }));
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The body of a chunked HTTP/1.1 answer.
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        })
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for v in text.bytes().filter_map(value) {
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}
