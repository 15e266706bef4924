//! Rules for references to the outside world: the arbiter's and hooks' URLs, container images.

use super::PLACEHOLDERS;
use super::rules::placeholders;
use crate::plan::error::quote;

const IMAGE: &str =
    "an image reference name[:tag][@digest] with a lowercase repository, e.g. alpine:3.18.0";

/// The parts of an `http(s)://` URL this crate cares about.
pub(super) struct UrlParts<'a> {
    pub(super) has_query_or_fragment: bool,
    pub(super) has_credentials: bool,
    _host: &'a str,
}

pub(super) fn parse_http_url(s: &str) -> Result<UrlParts<'_>, &'static str> {
    if s.chars().any(char::is_whitespace) {
        return Err("contains whitespace");
    }
    let Some((scheme, rest)) = s.split_once("://") else {
        return Err("no scheme");
    };
    if scheme != "http" && scheme != "https" {
        return Err("scheme is not http or https");
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (has_credentials, host_port) = match authority.rsplit_once('@') {
        Some((_, host_port)) => (true, host_port),
        None => (false, authority),
    };
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        let Some((inside, after)) = v6.split_once(']') else {
            return Err("unclosed IPv6 address");
        };
        if inside.is_empty()
            || !inside
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Err("invalid IPv6 address");
        }
        match after {
            "" => (inside, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (inside, Some(port)),
                None => return Err("invalid port"),
            },
        }
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return Err("no host");
    }
    if host.starts_with(['-', '.'])
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
    {
        return Err("invalid host");
    }
    if let Some(port) = port
        && !port.parse::<u16>().is_ok_and(|p| p > 0)
    {
        return Err("invalid port");
    }
    Ok(UrlParts {
        has_query_or_fragment: tail.contains(['?', '#']),
        has_credentials,
        _host: host,
    })
}

const URL: &str = "an http:// or https:// URL with a host, e.g. http://arbiter.default.svc:8080";

pub(crate) fn arbiter_url(s: &str) -> Result<(), String> {
    let parts = parse_http_url(s)
        .map_err(|problem| format!("invalid URL {} ({problem}): expected {URL}", quote(s)))?;
    if parts.has_credentials {
        return Err(format!(
            "URL {} carries credentials, which would be logged: expected a URL without user or password (use tokenFile)",
            quote(s)
        ));
    }
    if parts.has_query_or_fragment {
        return Err(format!(
            "URL {} has a query or fragment: expected a base URL such as http://host:8080/prefix",
            quote(s)
        ));
    }
    Ok(())
}

pub(crate) fn hook_url(s: &str) -> Result<(), String> {
    placeholders(s)?;
    let filled = PLACEHOLDERS.iter().fold(s.to_owned(), |acc, p| {
        acc.replace(&format!("{{{{{p}}}}}"), "x")
    });
    let parts = parse_http_url(&filled)
        .map_err(|problem| format!("invalid URL {} ({problem}): expected {URL}", quote(s)))?;
    if parts.has_credentials {
        return Err(format!(
            "URL {} carries credentials, which would be logged: expected a URL without user or password",
            quote(s)
        ));
    }
    Ok(())
}

/// `[domain[:port]/]path[:tag][@digest]`, following the distribution reference grammar.
pub(crate) fn image_reference(s: &str) -> Result<(), String> {
    match image_problem(s) {
        None => Ok(()),
        Some(problem) => Err(format!(
            "invalid image {} ({problem}): expected {IMAGE}",
            quote(s)
        )),
    }
}

fn image_problem(s: &str) -> Option<&'static str> {
    if s.is_empty() {
        return Some("empty");
    }
    if s.chars().any(char::is_whitespace) {
        return Some("contains whitespace");
    }
    let (rest, digest) = match s.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (s, None),
    };
    if let Some(digest) = digest
        && !is_digest(digest)
    {
        return Some("invalid digest");
    }
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(tag) = tag
        && !is_tag(tag)
    {
        return Some("invalid tag");
    }
    if name.is_empty() {
        return Some("no repository");
    }
    if name.len() > 255 {
        return Some("repository longer than 255 characters");
    }
    let mut components: Vec<&str> = name.split('/').collect();
    let first = components[0];
    let has_domain = components.len() > 1
        && (first.contains(['.', ':'])
            || first == "localhost"
            || first.chars().any(|c| c.is_ascii_uppercase()));
    if has_domain {
        if !is_domain(first) {
            return Some("invalid registry host");
        }
        components.remove(0);
    }
    if components
        .iter()
        .any(|c| c.chars().any(|ch| ch.is_ascii_uppercase()))
    {
        return Some("uppercase repository");
    }
    if !components.iter().all(|c| is_path_component(c)) {
        return Some("invalid repository");
    }
    None
}

/// `[a-z0-9]+ ((\.|_|__|-+)[a-z0-9]+)*`
fn is_path_component(c: &str) -> bool {
    let bytes = c.as_bytes();
    let mut i = 0;
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    loop {
        let start = i;
        while i < bytes.len() && alnum(bytes[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        let sep_start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &c[sep_start..i];
        let ok = sep == "."
            || sep == "_"
            || sep == "__"
            || (!sep.is_empty() && sep.bytes().all(|b| b == b'-'));
        if !ok {
            return false;
        }
    }
}

/// `[\w][\w.-]{0,127}`
fn is_tag(t: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    t.len() <= 128
        && t.chars().next().is_some_and(word)
        && t.chars().all(|c| word(c) || c == '.' || c == '-')
}

/// `algorithm:hex`, the hex part at least 32 characters.
fn is_digest(d: &str) -> bool {
    let Some((algorithm, hex)) = d.split_once(':') else {
        return false;
    };
    let algorithm_ok = !algorithm.is_empty()
        && algorithm.starts_with(|c: char| c.is_ascii_alphabetic())
        && algorithm
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '+' | '.'));
    algorithm_ok && hex.len() >= 32 && hex.chars().all(|c| c.is_ascii_hexdigit())
}

/// `host[:port]`, the host DNS labels (any case) or a bracketed IPv6 address.
fn is_domain(d: &str) -> bool {
    let port_ok = |p: &str| !p.is_empty() && p.parse::<u16>().is_ok();
    if let Some(v6) = d.strip_prefix('[') {
        let Some((inside, after)) = v6.split_once(']') else {
            return false;
        };
        let inside_ok =
            !inside.is_empty() && inside.chars().all(|c| c.is_ascii_hexdigit() || c == ':');
        return inside_ok && (after.is_empty() || after.strip_prefix(':').is_some_and(port_ok));
    }
    let (host, port) = match d.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (d, None),
    };
    let host_ok = host.split('.').all(|label| {
        !label.is_empty()
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    });
    host_ok && port.is_none_or(port_ok)
}
