//! hookd's own OpenAPI 3.1 document, generated from the route and DTO definitions.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::error::{HttpErrorOut, HttpValidationError, ValidationItem};
use super::pagination::Ordering;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "hookd",
        description = "Webhook delivery service. The API is compatible with the Svix server API v1.",
    ),
    // Parameters name these schemas without bringing them along (the `order` parameters once
    // pointed at a missing `Ordering`).
    components(schemas(
        HttpErrorOut,
        HttpValidationError,
        ValidationItem,
        Ordering,
        strings::PathKeyString,
        strings::EventTypeNameString,
        strings::EntityNameString,
        strings::ChannelString,
        strings::DeliveryStatusCode,
        strings::StatusCodeClass,
        strings::DateTimeString,
    )),
    security(("HTTPBearer" = [])),
)]
pub struct ApiDoc;

/// Adds the bearer security scheme and the error responses every operation can give. Run
/// on the finished document: the routes are only known once the routers are merged.
pub struct Conventions;

impl Modify for Conventions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "HTTPBearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        for item in openapi.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                add_error_responses(op);
            }
        }
    }
}

fn add_error_responses(op: &mut Operation) {
    let public = op
        .security
        .as_ref()
        .is_some_and(|s| s.iter().all(|r| r == &Default::default()));
    let error = |description: &str, schema: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name(schema)))
                    .build(),
            )
            .build()
    };
    let mut add = |status: &str, description: &str, schema: &str| {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| error(description, schema).into());
    };
    if public {
        return;
    }
    add("400", "The body is not valid JSON", "HttpErrorOut");
    add("401", "Missing, invalid or expired token", "HttpErrorOut");
    add(
        "403",
        "The token lacks the ability the route needs, or is limited to one application and the route is outside it",
        "HttpErrorOut",
    );
    add("404", "Not found", "HttpErrorOut");
    add("409", "Conflict with stored state", "HttpErrorOut");
    add("413", "The body or payload is too large", "HttpErrorOut");
    add("422", "Validation error", "HttpValidationError");
    add(
        "429",
        "The token made its requests of the hour (token_rate_limit); see Retry-After",
        "HttpErrorOut",
    );
    add(
        "503",
        "The store is temporarily unavailable, or the node is at a limit; nothing was done",
        "HttpErrorOut",
    );
    add(
        "504",
        "The store did not answer within api_request_timeout_secs; a write may have been applied",
        "HttpErrorOut",
    );
}

/// Schemas of the strings hookd parses into domain names and secrets, stating the rules
/// the parsers apply, so that a string the document allows is one hookd accepts. Used as a
/// field's `value_type`.
pub mod strings {
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaType, Type};
    use utoipa::openapi::{RefOr, SchemaFormat};
    use utoipa::{PartialSchema, ToSchema};

    use crate::domain::{Channel, EventId, EventTypeName, FeatureFlag, Uid};

    /// The alphabet of every user-chosen name.
    const NAME_PATTERN: &str = r"^[a-zA-Z0-9\-_.]+$";

    fn string(pattern: &str, min: usize, max: usize, description: &str) -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(pattern))
            .min_length(Some(min))
            .max_length(Some(max))
            .description(Some(description))
            .into()
    }

    macro_rules! string_schema {
        ($name:ident, $pattern:expr, $min:expr, $max:expr, $description:literal) => {
            pub struct $name;

            impl PartialSchema for $name {
                fn schema() -> RefOr<Schema> {
                    string($pattern, $min, $max, $description)
                }
            }

            impl ToSchema for $name {}
        };
    }

    string_schema!(
        PathKeyString,
        NAME_PATTERN,
        1,
        Uid::MAX_LEN,
        "An id, or the uid (for messages, the eventId) it was given."
    );
    string_schema!(
        UidString,
        NAME_PATTERN,
        1,
        Uid::MAX_LEN,
        "A uid: usable wherever the id is."
    );
    string_schema!(
        EventTypeNameString,
        NAME_PATTERN,
        1,
        EventTypeName::MAX_LEN,
        "An event type's name."
    );
    string_schema!(
        EntityNameString,
        NAME_PATTERN,
        1,
        crate::domain::EntityTypeName::MAX_LEN,
        "An entity type's name, or an entity's key."
    );
    string_schema!(
        ChannelString,
        NAME_PATTERN,
        1,
        Channel::MAX_LEN,
        "A channel."
    );
    string_schema!(
        EventIdString,
        NAME_PATTERN,
        1,
        EventId::MAX_LEN,
        "The producer's id for a message."
    );
    string_schema!(
        SessionIdString,
        "^[a-zA-Z0-9@_-]+$",
        1,
        64,
        "An app portal session's id."
    );
    string_schema!(
        FeatureFlagString,
        NAME_PATTERN,
        1,
        FeatureFlag::MAX_LEN,
        "A feature flag."
    );
    string_schema!(
        SecretString,
        // 24 to 75 bytes in base64 (32 to 100 characters), optionally after `whsec_`; or
        // `whsk_` and the base64 of 32 or 64 bytes (that the last 32 of 64 are the public
        // key of the first is past a pattern). Padding is canonical: the bits after the last
        // byte are zero, as the decoder requires.
        r"^(?:(whsec_)?(?:(?:[A-Za-z0-9+/]{4}){8,24}(?:[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?|(?:[A-Za-z0-9+/]{4}){25})|whsk_(?:[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=|[A-Za-z0-9+/]{85}[AQgw]==))$",
        32,
        106,
        "A signing secret: `whsec_` (optional) and the base64 of 24 to 75 random bytes; or an ed25519 secret for `v1a` signatures (standard scheme only), `whsk_` and the base64 of its 32-byte seed or 64 bytes of seed and public key."
    );

    /// An RFC 3339 date-time. The pattern says what `format` only suggests in OpenAPI 3.1.
    pub struct DateTimeString;

    impl PartialSchema for DateTimeString {
        fn schema() -> RefOr<Schema> {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
                .pattern(Some(
                    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?$",
                ))
                .description(Some("An RFC 3339 date-time; without an offset it is UTC."))
                .into()
        }
    }

    impl ToSchema for DateTimeString {}

    /// Custom headers sent with each delivery: names are HTTP tokens, values have no control
    /// characters. (Headers hookd sets itself, such as `webhook-signature` and
    /// `content-type`, are refused too.)
    pub struct CustomHeaders;

    impl PartialSchema for CustomHeaders {
        fn schema() -> RefOr<Schema> {
            header_map(Type::String)
        }
    }

    impl ToSchema for CustomHeaders {}

    /// As [`CustomHeaders`], where a null value removes the header.
    pub struct CustomHeadersPatch;

    impl PartialSchema for CustomHeadersPatch {
        fn schema() -> RefOr<Schema> {
            header_map(SchemaType::from_iter([Type::String, Type::Null]))
        }
    }

    impl ToSchema for CustomHeadersPatch {}

    fn header_map(value_type: impl Into<SchemaType>) -> RefOr<Schema> {
        let name = ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"));
        let value = ObjectBuilder::new()
            .schema_type(value_type)
            .pattern(Some("^[^\\u0000-\\u0008\\u000a-\\u001f\\u007f]*$"));
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property_names(Some(name))
            .additional_properties(Some(value))
            .description(Some(
                "Header names are HTTP tokens; values have no control characters. Headers \
                 hookd sets itself (signatures, `content-type`, ...) are refused.",
            ))
            .into()
    }

    /// A delivery status, as a number: 0 success, 1 pending, 2 fail, 3 sending.
    pub struct DeliveryStatusCode;

    impl PartialSchema for DeliveryStatusCode {
        fn schema() -> RefOr<Schema> {
            integer_enum(&[0, 1, 2, 3], "0 success, 1 pending, 2 fail, 3 sending.")
        }
    }

    impl ToSchema for DeliveryStatusCode {}

    /// The class of an attempt's response status; 0 when there was no response.
    pub struct StatusCodeClass;

    impl PartialSchema for StatusCodeClass {
        fn schema() -> RefOr<Schema> {
            integer_enum(
                &[0, 100, 200, 300, 400, 500],
                "The response status's class; 0: no response.",
            )
        }
    }

    impl ToSchema for StatusCodeClass {}

    fn integer_enum(values: &[i64], description: &str) -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .enum_values(Some(values.iter().copied()))
            .description(Some(description))
            .into()
    }

    /// An HTTP(S) URL, as deliveries need.
    pub struct EndpointUrlString;

    impl PartialSchema for EndpointUrlString {
        fn schema() -> RefOr<Schema> {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::Custom("uri".into())))
                .pattern(Some("^[hH][tT][tT][pP][sS]?://[^/?#\\s]+"))
                .min_length(Some(1))
                .max_length(Some(crate::domain::EndpointUrl::MAX_LEN))
                .description(Some("An http:// or https:// URL with a host."))
                .into()
        }
    }

    impl ToSchema for EndpointUrlString {}

    #[cfg(test)]
    mod tests {
        use base64::Engine;
        use base64::engine::general_purpose::STANDARD;
        use regex::Regex;

        use super::*;
        use crate::domain::{NameError, SigningSecret};

        fn pattern<T: PartialSchema>() -> Regex {
            let RefOr::T(Schema::Object(schema)) = T::schema() else {
                panic!("not an object schema");
            };
            Regex::new(&schema.pattern.expect("a pattern")).expect("a valid regex")
        }

        /// A string the document allows is one the parser accepts, and the other way round.
        #[test]
        fn the_secret_pattern_matches_the_parser() {
            let re = pattern::<SecretString>();
            for bytes in 0..100 {
                for fill in [0u8, 0xff, 0x5a] {
                    let b64 = STANDARD.encode(vec![fill; bytes]);
                    // 64 bytes of one fill are no keypair: the one case the pattern allows
                    // and the parser refuses.
                    if bytes != 64 {
                        let secret = format!("whsk_{b64}");
                        assert_eq!(
                            re.is_match(&secret),
                            SigningSecret::parse(&secret).is_ok(),
                            "{secret}"
                        );
                    }
                    for secret in [format!("whsec_{b64}"), b64] {
                        assert_eq!(
                            re.is_match(&secret),
                            SigningSecret::parse(&secret).is_ok(),
                            "{secret}"
                        );
                    }
                }
            }
            let pair = SigningSecret::generate_ed25519();
            let pair = SigningSecret::parse(&format!(
                "whsk_{}",
                STANDARD.encode(
                    [
                        STANDARD.decode(&pair.expose()[5..]).unwrap(),
                        STANDARD
                            .decode(&pair.public_key().unwrap().expose()[5..])
                            .unwrap(),
                    ]
                    .concat()
                )
            ))
            .unwrap();
            assert!(re.is_match(&pair.expose()));
            for odd in [
                "whsk_",
                "whsec_",
                "AAAB=",
                "AB==",
                &format!("{}AB==", "A".repeat(32)),
            ] {
                assert_eq!(re.is_match(odd), SigningSecret::parse(odd).is_ok(), "{odd}");
            }
        }

        #[test]
        fn the_name_patterns_match_the_parser() {
            let re = pattern::<UidString>();
            let long = "a".repeat(300);
            for name in ["a", "A-b_c.d", "", "a b", "ü", "a/b", &long] {
                let parsed: Result<Uid, NameError> = Uid::parse(name);
                let allowed = re.is_match(name) && name.len() <= Uid::MAX_LEN;
                assert_eq!(allowed, parsed.is_ok(), "{name:?}");
            }
        }
    }
}
