//! OpenAPI schemas (feature `openapi`) for the types whose serde form is written by hand: money is an object
//! of a decimal string and a currency code, currencies and tax categories are codes.

use std::borrow::Cow;

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::{PartialSchema, ToSchema};

use crate::invoice::TaxCategory;
use crate::{Currency, Money};

fn string(description: &str, pattern: &str, example: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::String))
        .description(Some(description))
        .pattern(Some(pattern))
        .examples([serde_json::Value::from(example)])
}

impl PartialSchema for Currency {
    fn schema() -> RefOr<Schema> {
        string("ISO 4217 alphabetic code", "^[A-Z]{3}$", "AUD")
            .build()
            .into()
    }
}

impl ToSchema for Currency {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Currency")
    }
}

impl PartialSchema for TaxCategory {
    fn schema() -> RefOr<Schema> {
        string(
            "EN 16931 VAT category code (UNCL5305 subset): S, Z, E, AE, K, G, O, L, M",
            "^(S|Z|E|AE|K|G|O|L|M)$",
            "S",
        )
        .build()
        .into()
    }
}

impl ToSchema for TaxCategory {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("TaxCategory")
    }
}

impl PartialSchema for Money {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .description(Some(
                "An exact amount: a decimal string with no more decimals than the currency's minor unit, \
                 never a JSON number",
            ))
            .property(
                "amount",
                string("decimal string", r"^-?[0-9]+(\.[0-9]+)?$", "1210.00"),
            )
            .required("amount")
            .property("currency", Currency::schema())
            .required("currency")
            .build()
            .into()
    }
}

impl ToSchema for Money {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Money")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_schema_names_both_fields_as_strings() {
        let json = serde_json::to_value(Money::schema()).unwrap_or_default();
        assert_eq!(json["properties"]["amount"]["type"], "string");
        assert_eq!(json["properties"]["currency"]["pattern"], "^[A-Z]{3}$");
        assert_eq!(json["required"], serde_json::json!(["amount", "currency"]));
    }
}
