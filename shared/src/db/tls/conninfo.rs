//! Splits libpq's TLS parameters off a connection string.
//!
//! tokio-postgres parses `sslmode` as `disable`/`prefer`/`require` only and
//! rejects `verify-ca`, `verify-full` and `sslrootcert` as unknown, so both
//! are taken out here (from a URL's query or a `key=value` string) and the
//! rest is left, byte for byte, for tokio-postgres to parse.

/// A connection string without its TLS parameters, and those parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Split {
    /// The connection string, `sslmode` and `sslrootcert` removed.
    pub rest: String,
    /// The last `sslmode` given, decoded.
    pub sslmode: Option<String>,
    /// The last `sslrootcert` given, decoded.
    pub sslrootcert: Option<String>,
}

/// Splits `s`, a `postgres[ql]://` URL or a libpq `key=value` string.
///
/// A string neither parser understands is left as it is past the point it
/// stops making sense: tokio-postgres then reports the syntax error.
pub(crate) fn split(s: &str) -> Split {
    let mut out = Split {
        rest: String::with_capacity(s.len()),
        sslmode: None,
        sslrootcert: None,
    };
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        split_url(s, &mut out);
    } else {
        split_key_values(s, &mut out);
    }
    out
}

/// Records `value` if `key` is one of ours; says whether it was.
fn take(out: &mut Split, key: &str, value: String) -> bool {
    match key {
        "sslmode" => out.sslmode = Some(value),
        "sslrootcert" => out.sslrootcert = Some(value),
        _ => return false,
    }
    true
}

fn split_url(s: &str, out: &mut Split) {
    // Where the query starts, found as tokio-postgres finds it: credentials
    // run to the first `@` anywhere, then host and path to the first `?`.
    let scheme_end = s.find("://").map_or(0, |i| i + 3);
    let after_credentials = s[scheme_end..]
        .find('@')
        .map_or(scheme_end, |i| scheme_end + i + 1);
    let Some(q) = s[after_credentials..]
        .find('?')
        .map(|i| after_credentials + i)
    else {
        out.rest.push_str(s);
        return;
    };
    out.rest.push_str(&s[..q]);
    let mut kept = Vec::new();
    for pair in s[q + 1..].split('&') {
        let ours = pair.split_once('=').is_some_and(|(key, value)| {
            match (percent_decode(key), percent_decode(value)) {
                (Some(key), Some(value)) => take(out, &key, value),
                // Not decodable: tokio-postgres will say so.
                _ => false,
            }
        });
        if !ours {
            kept.push(pair);
        }
    }
    if !kept.is_empty() {
        out.rest.push('?');
        out.rest.push_str(&kept.join("&"));
    }
}

/// `%XX` decoding as tokio-postgres does it (`+` stays a plus).
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = (bytes[i] == b'%')
            .then(|| s.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(byte) => {
                decoded.push(byte);
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(decoded).ok()
}

fn split_key_values(s: &str, out: &mut Split) {
    let mut parser = KeyValues { s, pos: 0 };
    let mut copied = 0;
    loop {
        let start = parser.skip_ws();
        let Some((key, value)) = parser.parameter() else {
            break;
        };
        if take(out, key, value) {
            out.rest.push_str(&s[copied..start]);
            copied = parser.pos;
        }
    }
    out.rest.push_str(&s[copied..]);
}

/// libpq's `key = value` syntax: values bare or in single quotes, with `\`
/// escaping the next character.
struct KeyValues<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> KeyValues<'a> {
    fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_ws(&mut self) -> usize {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
        self.pos
    }

    /// The next `key = value`, or `None` at the end or on a syntax error.
    fn parameter(&mut self) -> Option<(&'a str, String)> {
        let start = self.pos;
        while self.peek().is_some_and(|c| !c.is_whitespace() && c != '=') {
            self.bump();
        }
        let key = &self.s[start..self.pos];
        self.skip_ws();
        if key.is_empty() || self.bump() != Some('=') {
            return None;
        }
        self.skip_ws();
        let quoted = self.peek() == Some('\'');
        if quoted {
            self.bump();
        }
        let mut value = String::new();
        loop {
            match self.bump() {
                Some('\'') if quoted => return Some((key, value)),
                Some(c) if !quoted && c.is_whitespace() => {
                    // Leave the separator for the next skip_ws.
                    self.pos -= c.len_utf8();
                    break;
                }
                Some('\\') => value.extend(self.bump()),
                Some(c) => value.push(c),
                None if quoted => return None,
                None => break,
            }
        }
        (!value.is_empty()).then_some((key, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, rest: &str, mode: Option<&str>, root: Option<&str>) {
        let got = split(input);
        assert_eq!(
            got,
            Split {
                rest: rest.to_owned(),
                sslmode: mode.map(str::to_owned),
                sslrootcert: root.map(str::to_owned),
            },
            "{input}"
        );
    }

    #[test]
    fn url_query_loses_only_the_tls_parameters() {
        check(
            "postgres://u:p@db:5432/app?sslmode=verify-full&application_name=x&sslrootcert=%2Fetc%2Fca.crt",
            "postgres://u:p@db:5432/app?application_name=x",
            Some("verify-full"),
            Some("/etc/ca.crt"),
        );
        check(
            "postgresql://db/app?sslmode=require",
            "postgresql://db/app",
            Some("require"),
            None,
        );
        check("postgres://db/app", "postgres://db/app", None, None);
        // The last value wins, as in libpq.
        check(
            "postgres://db?sslmode=disable&sslmode=verify-ca",
            "postgres://db",
            Some("verify-ca"),
            None,
        );
    }

    #[test]
    fn a_question_mark_in_the_password_is_not_the_query() {
        check(
            "postgres://u:a?b@db/app?sslmode=require",
            "postgres://u:a?b@db/app",
            Some("require"),
            None,
        );
    }

    #[test]
    fn key_value_strings_keep_everything_else_verbatim() {
        check(
            "host=db  sslmode = verify-full user='a b' sslrootcert='/tmp/my ca.crt' dbname=app",
            "host=db   user='a b'  dbname=app",
            Some("verify-full"),
            Some("/tmp/my ca.crt"),
        );
        check(
            r"sslrootcert=/x\ y.crt host=db",
            " host=db",
            None,
            Some("/x y.crt"),
        );
    }

    #[test]
    fn broken_syntax_is_left_for_tokio_postgres_to_report() {
        check(
            "sslmode=require host='db",
            " host='db",
            Some("require"),
            None,
        );
        check("host", "host", None, None);
    }
}
