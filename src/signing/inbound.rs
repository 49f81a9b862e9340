//! Requests received by an ingest source, checked the way their sender signs them (see
//! [`Verification`]). A refusal says why, in words for the source log; it never echoes a
//! secret.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;
use subtle::ConstantTimeEq;

use super::request::{VerifyKey, fresh, header, timestamp_in, verify_request};
use super::schemes::{key_mac, verify_hmac_key, verify_stripe_key};
use crate::domain::ingest::Verification;
use crate::domain::{SignatureScheme, SigningSecret};

/// Checks a received request at `now` (unix seconds); `tolerance` is how far a signed
/// timestamp may be from it.
pub fn verify_inbound(
    verification: &Verification,
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
    tolerance: i64,
) -> Result<(), String> {
    match verification {
        Verification::None => Ok(()),
        Verification::StandardWebhooks { secret } => {
            let secret = SigningSecret::parse(secret)
                .map_err(|e| format!("the source's secret cannot be read: {e}"))?;
            verify_request(
                &SignatureScheme::Standard,
                &VerifyKey::Secret(secret),
                headers,
                body,
                now,
                tolerance,
            )
            .map(drop)
        }
        Verification::Stripe { secret } => {
            let value = header(headers, "stripe-signature")?;
            let timestamp = verify_stripe_key(secret.as_bytes(), body, value)
                .map_err(|why| format!("stripe-signature: {why}"))?;
            fresh(timestamp, now, tolerance)
        }
        Verification::Hmac {
            secret,
            header: name,
            prefix,
            encoding,
            timestamp_header,
        } => {
            let timestamp = timestamp_in(headers, timestamp_header.as_ref())?;
            let value = header(headers, name.as_str())?;
            verify_hmac_key(
                secret.as_bytes(),
                prefix,
                *encoding,
                timestamp,
                body,
                value.trim(),
            )
            .map_err(|why| format!("{name}: {why}"))?;
            match timestamp {
                Some(t) => fresh(t, now, tolerance),
                None => Ok(()),
            }
        }
        Verification::Slack { secret } => {
            let value = header(headers, "x-slack-request-timestamp")?;
            let timestamp: i64 = value
                .trim()
                .parse()
                .map_err(|_| format!("x-slack-request-timestamp {value:?} is not a unix time"))?;
            let signature = header(headers, "x-slack-signature")?;
            let hex = signature
                .strip_prefix("v0=")
                .ok_or("x-slack-signature does not start with v0=")?;
            let candidate = hex::decode(hex)
                .map_err(|e| format!("x-slack-signature is not hexadecimal: {e}"))?;
            let mut signed = Vec::with_capacity(body.len() + 16);
            signed.extend_from_slice(b"v0:");
            signed.extend_from_slice(timestamp.to_string().as_bytes());
            signed.push(b':');
            signed.extend_from_slice(body);
            let expected = key_mac(secret.as_bytes(), None, &signed);
            if !bool::from(candidate.as_slice().ct_eq(&expected)) {
                return Err(
                    "x-slack-signature is not this body's under the source's signing secret".into(),
                );
            }
            fresh(timestamp, now, tolerance)
        }
        Verification::Basic { username, password } => {
            let value = header(headers, "authorization")?;
            let encoded = value
                .strip_prefix("Basic ")
                .ok_or("authorization is not Basic credentials")?;
            let expected = STANDARD.encode(format!("{username}:{password}"));
            if bool::from(encoded.trim().as_bytes().ct_eq(expected.as_bytes())) {
                Ok(())
            } else {
                Err("authorization: wrong user name or password".into())
            }
        }
        Verification::Bearer { token } => {
            let value = header(headers, "authorization")?;
            let given = value
                .strip_prefix("Bearer ")
                .ok_or("authorization is not a Bearer token")?;
            if bool::from(given.trim().as_bytes().ct_eq(token.as_bytes())) {
                Ok(())
            } else {
                Err("authorization: wrong bearer token".into())
            }
        }
    }
}
