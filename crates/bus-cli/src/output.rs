//! Where results go: standard output, as coloured text or NDJSON, and
//! notices on standard error.
//!
//! Colour is decided by `anstream`: on when standard output is a terminal,
//! off when `NO_COLOR` is set or output is piped; `--color` overrides both.

use std::io::Write;

use anstyle::{AnsiColor, Style};

/// Standard output in the chosen mode.
pub(crate) struct Output {
    json: bool,
    out: anstream::AutoStream<std::io::Stdout>,
}

impl Output {
    pub(crate) fn new(json: bool) -> Output {
        Output {
            json,
            out: anstream::stdout(),
        }
    }

    /// Whether `--json` was given.
    pub(crate) fn is_json(&self) -> bool {
        self.json
    }

    /// Writes one NDJSON line.
    pub(crate) fn record(&mut self, value: &serde_json::Value) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(value).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.out.write_all(&line)?;
        self.out.flush()
    }

    /// Writes human text (styles are stripped when colour is off).
    pub(crate) fn text(&mut self, text: &str) -> std::io::Result<()> {
        self.out.write_all(text.as_bytes())?;
        self.out.flush()
    }
}

/// Writes `bus: <message>` on standard error: progress and warnings that
/// must not mix with the results on standard output.
pub(crate) fn notice(message: &str) {
    let mut err = anstream::stderr();
    let _ = writeln!(err, "{DIM}bus:{DIM:#} {message}");
}

/// Labels and other secondary text.
pub(crate) const DIM: Style = Style::new().dimmed();
/// Routing keys.
pub(crate) const KEY: Style = Style::new().bold();
/// Success.
pub(crate) const GOOD: Style = AnsiColor::Green.on_default().bold();
/// Failure.
pub(crate) const BAD: Style = AnsiColor::Red.on_default().bold();
/// Something to look at twice.
pub(crate) const WARN: Style = AnsiColor::Yellow.on_default().bold();
/// Events.
pub(crate) const EVENT: Style = AnsiColor::Blue.on_default().bold();
/// Commands.
pub(crate) const COMMAND: Style = AnsiColor::Magenta.on_default().bold();
/// Configurations.
pub(crate) const CONFIG: Style = AnsiColor::Cyan.on_default().bold();

/// `text` in `style`.
pub(crate) fn paint(style: Style, text: &str) -> String {
    format!("{style}{text}{style:#}")
}

/// Pretty JSON, every line indented by `indent` spaces.
pub(crate) fn indented_json(value: &serde_json::Value, indent: usize) -> String {
    let pretty = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    indent_lines(&pretty, indent)
}

/// `text` with every line indented by `indent` spaces, ending with a newline.
pub(crate) fn indent_lines(text: &str, indent: usize) -> String {
    let pad = " ".repeat(indent);
    let mut out = String::with_capacity(text.len() + indent * 4);
    for line in text.lines() {
        out.push_str(&pad);
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indentation() {
        assert_eq!(indent_lines("a\nb", 2), "  a\n  b\n");
        assert_eq!(
            indented_json(&serde_json::json!({"k": 1}), 4),
            "    {\n      \"k\": 1\n    }\n"
        );
    }

    #[test]
    fn painting_resets() {
        assert_eq!(paint(Style::new(), "x"), "x");
        let red = paint(BAD, "x");
        assert!(
            red.starts_with("\u{1b}[") && red.ends_with("\u{1b}[0m"),
            "{red:?}"
        );
    }
}
