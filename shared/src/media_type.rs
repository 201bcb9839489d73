//! Media types parsed strictly, as RFC 9110 §8.3.1 writes them:
//! `type "/" subtype *( OWS ";" OWS [ parameter ] )`, with `type`, `subtype`
//! and parameter names tokens and parameter values tokens or quoted strings.
//!
//! Strict because browsers are lenient: a stored `text/html,x` or
//! ` text/html` passes a naive "split at `;` and compare" deny list, yet a
//! browser that gets it back as `Content-Type` may well render HTML. Anything
//! outside the grammar (lists, stray or leading whitespace, non-ASCII) is
//! refused rather than repaired.

/// A well-formed media type: its lowercase essence (`type/subtype`), the
/// parameters checked and dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaType {
    essence: String,
    slash: usize,
}

impl MediaType {
    /// Parses `raw` against the grammar above; `None` when it does not fit.
    pub fn parse(raw: &str) -> Option<Self> {
        let mut p = Parser {
            bytes: raw.as_bytes(),
            at: 0,
        };
        let kind = p.token()?;
        p.byte(b'/')?;
        let subtype = p.token()?;
        while !p.done() {
            p.ows();
            p.byte(b';')?;
            p.ows();
            if p.peek().is_some_and(is_tchar) {
                p.token()?;
                p.byte(b'=')?;
                if p.peek() == Some(b'"') {
                    p.quoted_string()?;
                } else {
                    p.token()?;
                }
            }
        }
        let essence = format!("{kind}/{subtype}").to_ascii_lowercase();
        Some(Self {
            essence,
            slash: kind.len(),
        })
    }

    /// `type/subtype`, lowercase.
    pub fn essence(&self) -> &str {
        &self.essence
    }

    /// The top-level type (`image` in `image/png`).
    pub fn top_level(&self) -> &str {
        &self.essence[..self.slash]
    }

    /// The subtype (`png` in `image/png`).
    pub fn subtype(&self) -> &str {
        &self.essence[self.slash + 1..]
    }

    /// Whether type or subtype is `*`: a pattern, not the type of an object.
    pub fn is_wildcard(&self) -> bool {
        self.top_level() == "*" || self.subtype() == "*"
    }

    /// Whether a browser shows this type without running anything in it:
    /// raster images (not SVG, nor any XML), PDF, audio, video, plain text.
    /// Downloads of these may be `inline`; everything else is an attachment.
    pub fn is_inert(&self) -> bool {
        match self.top_level() {
            "image" => !self.subtype().starts_with("svg") && !self.subtype().ends_with("xml"),
            "audio" | "video" => true,
            _ => matches!(self.essence(), "application/pdf" | "text/plain"),
        }
    }
}

impl std::fmt::Display for MediaType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.essence)
    }
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

struct Parser<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Parser<'a> {
    fn done(&self) -> bool {
        self.at == self.bytes.len()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn byte(&mut self, want: u8) -> Option<()> {
        (self.peek() == Some(want)).then(|| self.at += 1)
    }

    /// `1*tchar`, as text (tchars are ASCII).
    fn token(&mut self) -> Option<&'a str> {
        let start = self.at;
        while self.peek().is_some_and(is_tchar) {
            self.at += 1;
        }
        let token = std::str::from_utf8(&self.bytes[start..self.at]).ok()?;
        (!token.is_empty()).then_some(token)
    }

    /// `OWS`: spaces and tabs.
    fn ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.at += 1;
        }
    }

    /// `DQUOTE *( qdtext / quoted-pair ) DQUOTE`, non-ASCII (`obs-text`)
    /// refused: nothing legitimate needs it in a stored content type.
    fn quoted_string(&mut self) -> Option<()> {
        self.byte(b'"')?;
        loop {
            match self.peek()? {
                b'"' => {
                    self.at += 1;
                    return Some(());
                }
                b'\\' => {
                    self.at += 1;
                    match self.peek()? {
                        b'\t' | b' '..=b'~' => self.at += 1,
                        _ => return None,
                    }
                }
                b'\t' | b' ' | b'!' | b'#'..=b'[' | b']'..=b'~' => self.at += 1,
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_grammar_and_lowercases_the_essence() {
        for (raw, essence) in [
            ("text/plain", "text/plain"),
            ("Text/Plain; Charset=UTF-8", "text/plain"),
            ("text/plain ; charset=\"utf-8\"", "text/plain"),
            ("text/plain;", "text/plain"),
            ("text/plain;;a=b", "text/plain"),
            ("text/plain;\ta=\"x\\\"y\"", "text/plain"),
            ("application/vnd.ms-excel", "application/vnd.ms-excel"),
            ("image/*", "image/*"),
        ] {
            let parsed = MediaType::parse(raw).unwrap_or_else(|| panic!("{raw:?}"));
            assert_eq!(parsed.essence(), essence, "{raw:?}");
        }
    }

    #[test]
    fn refuses_everything_else() {
        for raw in [
            "",
            "text",
            "text/",
            "/plain",
            "text/html,x",
            "text/html ,x",
            "image/png, text/html",
            " text/html",
            "\ttext/html",
            "text/html ",
            "\u{feff}text/html",
            "text /html",
            "text/ html",
            "text/html;x",
            "text/html; a=",
            "text/plain; a=\"open",
            "text/plain; a=\"\0\"",
            "text/plain\0",
            "text/plain\u{b}",
            "text/pläin",
            "text/plain/x",
        ] {
            assert_eq!(MediaType::parse(raw), None, "{raw:?}");
        }
    }

    #[test]
    fn only_types_browsers_cannot_run_are_inert() {
        let inert = |raw: &str| MediaType::parse(raw).unwrap().is_inert();
        for raw in [
            "image/png",
            "image/jpeg",
            "application/pdf",
            "audio/mpeg",
            "video/mp4",
            "text/plain",
        ] {
            assert!(inert(raw), "{raw}");
        }
        for raw in [
            "image/svg+xml",
            "image/svg",
            "text/html",
            "text/xml",
            "application/xml",
            "text/csv",
            "application/octet-stream",
            "application/javascript",
        ] {
            assert!(!inert(raw), "{raw}");
        }
    }
}
