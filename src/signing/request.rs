//! A received request checked as its receiver would check it, with the reason when it fails:
//! what `hookd verify` prints for a developer whose receiver refuses hookd's deliveries.

use http::HeaderMap;

use super::schemes::{verify_hmac, verify_stripe};
use crate::domain::{SignatureScheme, SigningSecret};

/// Why a request does not verify, or what matched when it does.
pub type Verdict = Result<String, String>;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, String> {
    let value = headers
        .get(name)
        .ok_or_else(|| format!("the request has no {name} header"))?;
    value
        .to_str()
        .map_err(|_| format!("the {name} header is not ASCII"))
}

fn fresh(timestamp: i64, now: i64, tolerance: i64) -> Result<(), String> {
    let age = now - timestamp;
    if age.abs() > tolerance {
        let when = if age > 0 { "old" } else { "in the future" };
        return Err(format!(
            "the signature is valid but its timestamp is {} s {when}, outside the {tolerance} s tolerance (a replay, or a clock that is off)",
            age.abs()
        ));
    }
    Ok(())
}

/// Checks `headers` and `body` under `scheme` and `secret` at `now` (unix seconds), allowing
/// timestamps `tolerance` seconds away. The standard scheme reads the `webhook-*` headers,
/// or the `svix-*` ones when those are absent.
pub fn verify_request(
    scheme: &SignatureScheme,
    secret: &SigningSecret,
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
    tolerance: i64,
) -> Verdict {
    match scheme {
        SignatureScheme::Standard => {
            let family = if headers.contains_key("webhook-signature")
                || !headers.contains_key("svix-signature")
            {
                "webhook"
            } else {
                "svix"
            };
            let signatures = header(headers, &format!("{family}-signature"))?;
            let id = header(headers, &format!("{family}-id"))?;
            let timestamp = header(headers, &format!("{family}-timestamp"))?;
            let timestamp: i64 = timestamp
                .parse()
                .map_err(|_| format!("{family}-timestamp {timestamp:?} is not a unix time"))?;
            if !super::verify(secret, id, timestamp, body, signatures) {
                return Err(format!(
                    "no v1 signature in {family}-signature is this request's under this secret: check that the secret is the endpoint's (GET …/secret) and that the body is byte for byte what was received ({} bytes)",
                    body.len()
                ));
            }
            fresh(timestamp, now, tolerance)?;
            Ok(format!("{family}-signature matches (message {id})"))
        }
        SignatureScheme::Stripe { header: name } => {
            let value = header(headers, name.as_str())?;
            let timestamp = verify_stripe(secret, body, value).map_err(|why| {
                format!("{name}: {why} (the key is the secret's whole text, whsec_ included)")
            })?;
            fresh(timestamp, now, tolerance)?;
            Ok(format!("{name} matches"))
        }
        SignatureScheme::HmacSha256 {
            header: name,
            prefix,
            encoding,
            timestamp_header,
        } => {
            let timestamp = match timestamp_header {
                None => None,
                Some(t) => {
                    let value = header(headers, t.as_str())?;
                    Some(
                        value
                            .parse::<i64>()
                            .map_err(|_| format!("{t} {value:?} is not a unix time"))?,
                    )
                }
            };
            let value = header(headers, name.as_str())?;
            verify_hmac(secret, prefix, *encoding, timestamp, body, value).map_err(|why| {
                format!("{name}: {why} (the key is the secret's whole text, whsec_ included)")
            })?;
            if let Some(t) = timestamp {
                fresh(t, now, tolerance)?;
            }
            Ok(format!("{name} matches"))
        }
    }
}

/// Splits a saved request into its headers and its body: header lines `Name: value` (a first
/// line such as `POST /hook HTTP/1.1` is skipped), an empty line, then the body, byte for byte
/// to the end. Lines may end in CRLF or LF.
pub fn parse_saved_request(raw: &[u8]) -> Result<(HeaderMap, &[u8]), String> {
    let mut headers = HeaderMap::new();
    let mut rest = raw;
    let mut first = true;
    loop {
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return Err("no empty line between the headers and the body".into());
        };
        let line = &rest[..end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        rest = &rest[end + 1..];
        if line.is_empty() {
            return Ok((headers, rest));
        }
        let text =
            std::str::from_utf8(line).map_err(|_| "a header line is not UTF-8".to_owned())?;
        match text.split_once(':') {
            Some((name, value)) => {
                let name = http::HeaderName::from_bytes(name.trim().as_bytes())
                    .map_err(|_| format!("{:?} is not a header name", name.trim()))?;
                let value = http::HeaderValue::from_str(value.trim())
                    .map_err(|_| format!("the value of {name} is not a header value"))?;
                headers.append(name, value);
            }
            None if first => {}
            None => return Err(format!("{text:?} is not a `Name: value` header line")),
        }
        first = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{MacEncoding, SignatureScheme};
    use crate::signing::{hmac_header, signature_header, stripe_header};
    use http::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, String)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn a_saved_request_splits_into_headers_and_the_exact_body() {
        let raw = b"POST /hook HTTP/1.1\r\nWebhook-Id: msg_1\r\nX-A:  b \r\n\r\n{\"a\":1}\n";
        let (headers, body) = parse_saved_request(raw).unwrap();
        assert_eq!(headers["webhook-id"], "msg_1");
        assert_eq!(headers["x-a"], "b");
        assert_eq!(body, b"{\"a\":1}\n");
        let (headers, body) = parse_saved_request(b"x-a: 1\n\n").unwrap();
        assert_eq!((headers.len(), body), (1, &b""[..]));
        assert!(parse_saved_request(b"x-a: 1\n").is_err());
        assert!(parse_saved_request(b"x-a: 1\nnot a header\n\n").is_err());
    }

    #[test]
    fn each_scheme_verifies_and_says_why_not() {
        let secret = SigningSecret::generate();
        let body = br#"{"x":1}"#;
        let now = 1_700_000_000;

        let standard = headers(&[
            ("svix-id", "msg_1".into()),
            ("svix-timestamp", now.to_string()),
            (
                "svix-signature",
                signature_header("msg_1", now, body, [&secret]),
            ),
        ]);
        let scheme = SignatureScheme::Standard;
        assert!(verify_request(&scheme, &secret, &standard, body, now, 300).is_ok());
        let why = verify_request(&scheme, &secret, &standard, b"{}", now, 300).unwrap_err();
        assert!(why.contains("byte for byte"), "{why}");
        let why = verify_request(&scheme, &secret, &standard, body, now + 301, 300).unwrap_err();
        assert!(why.contains("301 s old"), "{why}");

        let stripe = SignatureScheme::Stripe {
            header: HeaderName::from_static("x-obsrv-signature"),
        };
        let sent = headers(&[("x-obsrv-signature", stripe_header(now, body, [&secret]))]);
        assert!(verify_request(&stripe, &secret, &sent, body, now, 300).is_ok());
        let why = verify_request(&stripe, &secret, &HeaderMap::new(), body, now, 300).unwrap_err();
        assert_eq!(why, "the request has no x-obsrv-signature header");

        let hmac = SignatureScheme::HmacSha256 {
            header: HeaderName::from_static("x-webhook-signature"),
            prefix: "sha256=".into(),
            encoding: MacEncoding::Hex,
            timestamp_header: Some(HeaderName::from_static("x-webhook-timestamp")),
        };
        let sent = headers(&[
            (
                "x-webhook-signature",
                hmac_header(&secret, "sha256=", MacEncoding::Hex, Some(now), body),
            ),
            ("x-webhook-timestamp", now.to_string()),
        ]);
        assert!(verify_request(&hmac, &secret, &sent, body, now + 10, 300).is_ok());
        let why =
            verify_request(&hmac, &SigningSecret::generate(), &sent, body, now, 300).unwrap_err();
        assert!(why.contains("not this body's"), "{why}");
    }
}
