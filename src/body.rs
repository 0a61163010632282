//! The JSON body guard: every way a body can be wrong becomes a 4xx `ApiError` that names
//! the field, instead of Rocket's bare 400/422 or a 500.

use rocket::data::{FromData, Outcome, ToByteUnit};
use rocket::http::Status;
use rocket::{Data, Request};
use serde::de::{self, DeserializeOwned, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::error::{stash, ApiError};
use crate::state::App;

/// A request body parsed from JSON into `T`.
pub struct JsonBody<T>(pub T);

/// Turns a deserialization failure into a `VALIDATION_ERROR` naming the field.
fn field_error(err: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = err.path().to_string();
    let inner = err.inner().to_string();
    let field = if path != "." && !path.is_empty() {
        path
    } else if let Some(rest) = inner.strip_prefix("missing field `") {
        rest.split('`').next().unwrap_or("").to_string()
    } else {
        String::new()
    };
    if inner.starts_with("missing field") {
        ApiError::validation(&field, format!("The field `{field}` is required"))
    } else if inner.starts_with("invalid type") {
        ApiError::validation(&field, format!("The field `{field}` has the wrong type"))
    } else {
        ApiError::validation(&field, format!("The field `{field}` is not valid"))
    }
}

/// A JSON value read with serde, refusing an object that repeats a key (at any depth):
/// serde_json's own `Value` keeps the last, so `{"email": a, "email": b}` would mean b here
/// and a to a proxy or firewall that reads the first.
struct Strict(Value);

/// Prefix of the error [`Strict`] raises, followed by the key.
const DUPLICATE: &str = "duplicate key: ";

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Strict(v) = map.next_value()?;
            if out.contains_key(&key) {
                return Err(de::Error::custom(format!("{DUPLICATE}{key}")));
            }
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    // Scalars: as serde_json's own Value reads them.
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

/// Parses a body: empty means `{}`, so that missing fields are named rather than the body.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Default::default())
    } else {
        serde_json::from_slice::<Strict>(bytes)
            .map(|s| s.0)
            .map_err(|e| {
                let text = e.to_string();
                match text.strip_prefix(DUPLICATE) {
                    Some(rest) => {
                        // serde_json appends " at line L column C".
                        let key = rest.rsplit_once(" at line ").map_or(rest, |(k, _)| k);
                        ApiError::validation(key, format!("The key `{key}` appears twice"))
                    }
                    None => ApiError::new(
                        Status::BadRequest,
                        "VALIDATION_ERROR",
                        "The request body is not valid JSON",
                    ),
                }
            })?
    };
    if !value.is_object() {
        return Err(ApiError::new(
            Status::BadRequest,
            "VALIDATION_ERROR",
            "The request body must be a JSON object",
        ));
    }
    serde_path_to_error::deserialize(value).map_err(field_error)
}

#[rocket::async_trait]
impl<'r, T: DeserializeOwned> FromData<'r> for JsonBody<T> {
    type Error = ();

    async fn from_data(req: &'r Request<'_>, data: Data<'r>) -> Outcome<'r, Self, ()> {
        let fail = |e: ApiError| Outcome::Error((stash(req, e), ()));
        if let Some(ct) = req.content_type() {
            if !ct.is_json() {
                return fail(ApiError::new(
                    Status::UnsupportedMediaType,
                    "UNSUPPORTED_MEDIA_TYPE",
                    "Send the body as application/json",
                ));
            }
        }
        let limit = req
            .rocket()
            .state::<App>()
            .map(|a| a.config.max_body_bytes)
            .unwrap_or(16 * 1024);
        let bytes = match data.open(limit.bytes()).into_bytes().await {
            Ok(b) if b.is_complete() => b.into_inner(),
            Ok(_) => {
                return fail(ApiError::new(
                    Status::PayloadTooLarge,
                    "PAYLOAD_TOO_LARGE",
                    format!("The request body is larger than {limit} bytes"),
                ))
            }
            Err(_) => {
                return fail(ApiError::new(
                    Status::BadRequest,
                    "VALIDATION_ERROR",
                    "The request body could not be read",
                ))
            }
        };
        match parse(&bytes) {
            Ok(v) => Outcome::Success(JsonBody(v)),
            Err(e) => fail(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    struct B {
        #[allow(dead_code)]
        code: String,
        #[allow(dead_code)]
        password: Option<String>,
    }

    fn field(bytes: &[u8]) -> String {
        let e = parse::<B>(bytes).unwrap_err();
        assert_eq!(e.code, "VALIDATION_ERROR");
        e.details
            .map(|d| d["field"].as_str().unwrap_or("").to_string())
            .unwrap_or_default()
    }

    #[test]
    fn names_the_field() {
        assert_eq!(field(b"{}"), "code");
        assert_eq!(field(b""), "code");
        assert_eq!(field(br#"{"code": 123456}"#), "code");
        assert_eq!(field(br#"{"code": "1", "password": 5}"#), "password");
        assert!(parse::<B>(b"{not json").is_err());
        assert!(parse::<B>(b"[1,2]").is_err());
        assert!(parse::<B>(br#"{"code":"1","extra":true}"#).is_ok());
    }

    #[test]
    fn duplicate_keys_are_refused_and_named() {
        assert_eq!(field(br#"{"code":"1","password":"a","code":"2"}"#), "code");
        assert_eq!(field(br#"{"code":"1","extra":{"a":1,"a":2}}"#), "a");
        assert_eq!(field(br#"{"code":"1","extra":[{"b":1,"b":1}]}"#), "b");
        let ok: Value = parse(br#"{"a":[1,2.5,"x",null,true,{"b":-3}]}"#).unwrap();
        assert_eq!(ok, serde_json::json!({"a":[1,2.5,"x",null,true,{"b":-3}]}));
    }
}
