//! hookd's own OpenAPI 3.1 document, generated from the route and DTO definitions.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::error::{HttpErrorOut, HttpValidationError, ValidationItem};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "hookd",
        description = "Webhook delivery service. The API is compatible with the Svix server API v1.",
    ),
    components(schemas(HttpErrorOut, HttpValidationError, ValidationItem)),
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
    add("401", "Missing or invalid token", "HttpErrorOut");
    add("404", "Not found", "HttpErrorOut");
    add("409", "Conflict with stored state", "HttpErrorOut");
    add("413", "The body or payload is too large", "HttpErrorOut");
    add("422", "Validation error", "HttpValidationError");
    add(
        "503",
        "The store is temporarily unavailable",
        "HttpErrorOut",
    );
}
