//! Reading a request: its method, its JSON body and the fields of it, never
//! with a panic, whatever arrives.

use super::bearer::bearer_token;
use super::error::ApiError;
use crate::credentials::{Email, Password, Username, Who};
use crate::service::mfa::{Reauth, SecondFactor};
use crate::session::Origin;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt};
use serde_json::{Map, Value};

/// Largest request body accepted; anything bigger is `413`.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// `405` unless the request uses the route's one method (`"POST"`).
pub fn require_method(req: &Request, allow: &'static str) -> Result<(), ApiError> {
    if req.method().as_str() == allow {
        Ok(())
    } else {
        Err(ApiError::MethodNotAllowed { allow })
    }
}

/// Longest user agent kept with a session, in characters.
const MAX_USER_AGENT: usize = 256;

/// Where the request comes from, as API Gateway saw it (its request
/// context), never a header the client sets; empty outside API Gateway.
/// One exception, for the local stack: `cargo lambda watch` reports every
/// client as a loopback address, and only then does `X-Forwarded-For` (its
/// first address) name the client, so tests can speak from many addresses.
/// API Gateway never reports a loopback source, so deployed the header is ignored.
pub fn origin(req: &Request) -> Origin {
    let (ip, user_agent) = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => (ctx.http.source_ip.clone(), ctx.http.user_agent.clone()),
        Some(RequestContext::ApiGatewayV1(ctx)) => (ctx.identity.source_ip.clone(), ctx.identity.user_agent.clone()),
        _ => (None, None),
    };
    let ip = ip.unwrap_or_default();
    let loopback = ip.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback());
    let forwarded = || {
        let header = req.headers().get("x-forwarded-for")?.to_str().ok()?;
        let first = header.split(',').next()?.trim();
        first.parse::<std::net::IpAddr>().ok().map(|a| a.to_string())
    };
    Origin {
        ip: loopback.then(forwarded).flatten().unwrap_or(ip),
        user_agent: user_agent.unwrap_or_default().chars().take(MAX_USER_AGENT).collect(),
    }
}

/// The last segment of the request's path (`/sessions/{id}` gives the id):
/// the route's path parameter, else the path itself, percent-decoded.
pub fn last_segment(req: &Request) -> Option<String> {
    let raw = req.uri().path().trim_end_matches('/').rsplit('/').next()?;
    let decoded = percent_decode(raw)?;
    (!decoded.is_empty()).then_some(decoded)
}

/// `%XX`-decoded UTF-8, or `None` for a malformed escape or bytes that are not UTF-8.
fn percent_decode(raw: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(raw.len());
    let mut rest = raw.bytes();
    while let Some(b) = rest.next() {
        if b == b'%' {
            let hex = [rest.next()?, rest.next()?];
            bytes.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            bytes.push(b);
        }
    }
    String::from_utf8(bytes).ok()
}

/// Whether the request declares its body `application/json` (any case,
/// parameters such as `charset` allowed).
fn is_json(req: &Request) -> bool {
    let Some(value) = req.headers().get(lambda_http::http::header::CONTENT_TYPE) else {
        return false;
    };
    let media = value.to_str().unwrap_or("").split(';').next().unwrap_or("");
    media.trim().eq_ignore_ascii_case("application/json")
}

/// The start of the error a key given twice makes.
const DUPLICATE: &str = "duplicate key";

/// A JSON value read strictly: an object that gives a key twice, at any
/// depth, is an error, where serde_json would keep the last one.
struct Strict(Value);

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            let Strict(value) = access.next_value()?;
            if map.insert(key, value).is_some() {
                return Err(serde::de::Error::custom(DUPLICATE));
            }
        }
        Ok(Value::Object(map))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(value)) = access.next_element()? {
            items.push(value);
        }
        Ok(Value::Array(items))
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

/// A request body that parsed as a JSON object.
#[derive(Debug)]
pub struct JsonObject(Map<String, Value>);

impl JsonObject {
    /// Parses the body: `None` when it is empty, `413` when it is too large,
    /// `415` when it is not declared `application/json` (a form or a text
    /// body would let a cross-site page post it without a CORS preflight),
    /// `400` when it is not a JSON object or gives a key twice (which a
    /// filter in front may read differently). Unknown fields are kept and ignored.
    pub fn from_request(req: &Request) -> Result<Option<Self>, ApiError> {
        let bytes: &[u8] = match req.body() {
            Body::Empty => return Ok(None),
            Body::Text(text) => text.as_bytes(),
            Body::Binary(bytes) => bytes,
            _ => return Err(ApiError::invalid("the request body could not be read")),
        };
        if bytes.len() > MAX_BODY_BYTES {
            return Err(ApiError::PayloadTooLarge);
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        if !is_json(req) {
            return Err(ApiError::UnsupportedMediaType);
        }
        match serde_json::from_slice::<Strict>(bytes) {
            Ok(Strict(Value::Object(map))) => Ok(Some(Self(map))),
            Err(e) if e.to_string().starts_with(DUPLICATE) => {
                Err(ApiError::invalid("the request body gives a key twice"))
            }
            _ => Err(ApiError::invalid("the request body must be a JSON object")),
        }
    }

    /// Like `from_request`, for routes where a body is required.
    pub fn require(req: &Request) -> Result<Self, ApiError> {
        Self::from_request(req)?.ok_or_else(|| ApiError::invalid("the request body must be a JSON object"))
    }

    /// A required string field.
    pub fn string(&self, field: &str) -> Result<&str, ApiError> {
        self.optional_string(field)?
            .ok_or_else(|| ApiError::invalid(format!("field \"{field}\" is required")))
    }

    /// A required password field, within the password rules.
    pub fn password(&self, field: &str) -> Result<Password, ApiError> {
        Password::parse(self.string(field)?).map_err(|rule| ApiError::invalid(format!("{field}: {rule}")))
    }

    /// A required username field, within the username rules.
    pub fn username(&self, field: &str) -> Result<Username, ApiError> {
        Username::parse(self.string(field)?).map_err(|rule| ApiError::invalid(format!("{field}: {rule}")))
    }

    /// An email field that may be absent (or `null`), a plain address when present.
    pub fn optional_email(&self, field: &str) -> Result<Option<Email>, ApiError> {
        self.optional_string(field)?
            .map(|raw| Email::parse(raw).map_err(|rule| ApiError::invalid(format!("{field}: {rule}"))))
            .transpose()
    }

    /// A required email field.
    pub fn email(&self, field: &str) -> Result<Email, ApiError> {
        self.optional_email(field)?
            .ok_or_else(|| ApiError::invalid(format!("field \"{field}\" is required")))
    }

    /// The account a login or a reset request names: `username`, else `email`.
    pub fn who(&self) -> Result<Who, ApiError> {
        if self.optional_string("username")?.is_none()
            && let Some(email) = self.optional_email("email")?
        {
            return Ok(Who::Email(email));
        }
        self.username("username").map(Who::Username)
    }

    /// What re-authenticates a second-factor change: `code` or `password`, exactly one.
    pub fn reauth(&self) -> Result<Reauth, ApiError> {
        Ok(match self.one_of("code", "password")? {
            "code" => Reauth::Code(self.string("code")?.to_owned()),
            _ => Reauth::Password(self.password("password")?),
        })
    }

    /// The second step of a login: `code` or `recovery_code`, exactly one.
    pub fn second_factor(&self) -> Result<SecondFactor, ApiError> {
        Ok(match self.one_of("code", "recovery_code")? {
            "code" => SecondFactor::Code(self.string("code")?.to_owned()),
            _ => SecondFactor::RecoveryCode(self.string("recovery_code")?.to_owned()),
        })
    }

    /// Which of the string fields `a` and `b` is given; `400` for both or neither.
    fn one_of(&self, a: &'static str, b: &'static str) -> Result<&'static str, ApiError> {
        match (self.optional_string(a)?, self.optional_string(b)?) {
            (Some(_), None) => Ok(a),
            (None, Some(_)) => Ok(b),
            _ => Err(ApiError::invalid(format!("give either \"{a}\" or \"{b}\", not both"))),
        }
    }

    /// A required field that is a JSON object, as it is.
    pub fn object(&self, field: &str) -> Result<&Value, ApiError> {
        match self.0.get(field) {
            Some(value @ Value::Object(_)) => Ok(value),
            None | Some(Value::Null) => Err(ApiError::invalid(format!("field \"{field}\" is required"))),
            Some(_) => Err(ApiError::invalid(format!("field \"{field}\" must be an object"))),
        }
    }

    /// A boolean field, `false` when absent (or `null`).
    pub fn flag(&self, field: &str) -> Result<bool, ApiError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(ApiError::invalid(format!("field \"{field}\" must be true or false"))),
        }
    }

    /// A string field that may be absent (or `null`), but is a string when present.
    pub fn optional_string(&self, field: &str) -> Result<Option<&str>, ApiError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ApiError::invalid(format!("field \"{field}\" must be a string"))),
        }
    }
}

/// The refresh token of a refresh or logout request: the JSON body's
/// `refresh_token`, else the bearer header. Missing is `401`.
pub fn refresh_token<'r>(req: &'r Request, body: Option<&'r JsonObject>) -> Result<&'r str, ApiError> {
    match body.map(|b| b.optional_string("refresh_token")).transpose()?.flatten() {
        Some(token) => Ok(token),
        None => bearer_token(req)?.ok_or(ApiError::InvalidToken),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::testing::event;
    use lambda_http::http::Request as HttpRequest;

    fn request(body: Body) -> Request {
        with_type(body, "application/json")
    }

    fn with_type(body: Body, content_type: &str) -> Request {
        HttpRequest::builder()
            .method("POST")
            .uri("/x")
            .header("content-type", content_type)
            .body(body)
            .unwrap()
    }

    #[test]
    fn a_body_not_declared_json_is_415_whatever_it_holds() {
        let json = r#"{"username":"alice","password":"correct horse battery staple"}"#;
        for content_type in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/xml",
            "application/jsonp",
            "",
        ] {
            let err = JsonObject::from_request(&with_type(Body::Text(json.into()), content_type)).unwrap_err();
            assert_eq!(err, ApiError::UnsupportedMediaType, "{content_type:?}");
        }
        let untyped = HttpRequest::builder()
            .method("POST")
            .uri("/x")
            .body(Body::Text(json.into()))
            .unwrap();
        assert_eq!(
            JsonObject::from_request(&untyped).unwrap_err(),
            ApiError::UnsupportedMediaType
        );
        for declared in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
        ] {
            assert!(
                JsonObject::from_request(&with_type(Body::Text(json.into()), declared)).is_ok(),
                "{declared}"
            );
        }
        // A route that needs no body ignores the header.
        assert!(
            JsonObject::from_request(&with_type(Body::Empty, "text/plain"))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_key_given_twice_at_any_depth_is_400_where_serde_would_keep_the_last() {
        for body in [
            r#"{"username":"a","password":"correct horse battery staple","username":"b"}"#,
            r#"{"credential":{"id":"x","id":"y"}}"#,
            r#"{"list":[{"k":1,"k":2}]}"#,
        ] {
            let err = JsonObject::from_request(&request(Body::Text(body.into()))).unwrap_err();
            assert_eq!(err, ApiError::invalid("the request body gives a key twice"), "{body}");
        }
        let nested = r#"{"a":{"b":[1,2.5,"x",null,true,{"c":{}}]},"d":-3}"#;
        let parsed = JsonObject::from_request(&request(Body::Text(nested.into())))
            .unwrap()
            .unwrap();
        assert_eq!(Value::Object(parsed.0), serde_json::from_str::<Value>(nested).unwrap());
    }

    #[test]
    fn bodies_that_are_not_json_objects_are_rejected() {
        for body in ["[]", "\"x\"", "1", "null", "{", "{\"a\":}", "{} {}"] {
            let err = JsonObject::from_request(&request(Body::Text(body.into()))).unwrap_err();
            assert!(matches!(err, ApiError::InvalidRequest(_)), "{body}");
        }
        let err = JsonObject::from_request(&request(Body::Binary(vec![b'{', 0xff, 0xfe, b'}']))).unwrap_err();
        assert!(matches!(err, ApiError::InvalidRequest(_)), "non-UTF-8");
    }

    #[test]
    fn an_empty_or_blank_body_is_no_body() {
        assert!(JsonObject::from_request(&request(Body::Empty)).unwrap().is_none());
        assert!(
            JsonObject::from_request(&request(Body::Text(" \n".into())))
                .unwrap()
                .is_none()
        );
        assert!(matches!(
            JsonObject::require(&request(Body::Empty)),
            Err(ApiError::InvalidRequest(_))
        ));
    }

    #[test]
    fn a_body_of_16_kib_is_read_and_one_byte_more_is_413() {
        let exact = format!("{{\"a\":\"{}\"}}", "x".repeat(MAX_BODY_BYTES - 8));
        assert_eq!(exact.len(), MAX_BODY_BYTES);
        assert!(JsonObject::from_request(&request(Body::Text(exact.clone()))).is_ok());
        let over = format!("{exact} ");
        assert_eq!(
            JsonObject::from_request(&request(Body::Text(over))).unwrap_err(),
            ApiError::PayloadTooLarge
        );
    }

    #[test]
    fn fields_must_be_present_and_of_their_type() {
        let obj = JsonObject::require(&request(Body::Text(
            r#"{"a": 1, "b": "x", "c": null, "t": true}"#.into(),
        )))
        .unwrap();
        assert_eq!(obj.string("b").unwrap(), "x");
        assert!(matches!(obj.string("a"), Err(ApiError::InvalidRequest(m)) if m.contains("must be a string")));
        assert!(matches!(obj.string("c"), Err(ApiError::InvalidRequest(m)) if m.contains("is required")));
        assert!(matches!(obj.string("zz"), Err(ApiError::InvalidRequest(m)) if m.contains("is required")));
        assert_eq!(
            (obj.flag("t"), obj.flag("c"), obj.flag("zz")),
            (Ok(true), Ok(false), Ok(false))
        );
        assert!(matches!(obj.flag("b"), Err(ApiError::InvalidRequest(m)) if m.contains("true or false")));
    }

    #[test]
    fn names_passwords_and_emails_outside_the_rules_are_400_with_the_rule() {
        let with = |body: &str| JsonObject::require(&request(Body::Text(body.into()))).unwrap();
        let ok = with(r#"{"username": "alice", "password": "correct horse", "email": "a@example.com"}"#);
        assert!(ok.username("username").is_ok() && ok.password("password").is_ok());
        assert_eq!(ok.optional_email("email").unwrap().unwrap().as_str(), "a@example.com");
        assert!(
            matches!(with(r#"{"username": "al"}"#).username("username"), Err(ApiError::InvalidRequest(m)) if m.contains("3 to 64"))
        );
        assert!(
            matches!(with(r#"{"password": "short"}"#).password("password"), Err(ApiError::InvalidRequest(m)) if m.contains("8 to 1024"))
        );
        assert!(matches!(with("{}").password("password"), Err(ApiError::InvalidRequest(m)) if m.contains("password")));
        assert!(
            matches!(with(r#"{"email": "nope"}"#).optional_email("email"), Err(ApiError::InvalidRequest(m)) if m.contains("email"))
        );
        assert_eq!(with(r#"{"email": null}"#).optional_email("email"), Ok(None));
        assert!(matches!(with("{}").email("email"), Err(ApiError::InvalidRequest(m)) if m.contains("required")));
    }

    #[test]
    fn a_request_names_its_account_by_username_else_by_email() {
        let with = |body: &str| JsonObject::require(&request(Body::Text(body.into()))).unwrap().who();
        assert_eq!(
            with(r#"{"username": "bob", "email": "a@example.com"}"#),
            Ok(Who::Username(Username::parse("bob").unwrap()))
        );
        assert_eq!(
            with(r#"{"email": "A@example.com"}"#),
            Ok(Who::Email(Email::parse("A@example.com").unwrap()))
        );
        assert!(matches!(with("{}"), Err(ApiError::InvalidRequest(m)) if m.contains("username")));
        assert!(matches!(with(r#"{"email": 5}"#), Err(ApiError::InvalidRequest(_))));
    }

    #[test]
    fn the_refresh_token_comes_from_the_body_before_the_header() {
        let req = HttpRequest::builder()
            .method("POST")
            .uri("/x")
            .header("authorization", "Bearer from.header.x")
            .header("content-type", "application/json")
            .body(Body::Text(r#"{"refresh_token": "from.body.x"}"#.into()))
            .unwrap();
        let body = JsonObject::from_request(&req).unwrap();
        assert_eq!(refresh_token(&req, body.as_ref()), Ok("from.body.x"));
        assert_eq!(refresh_token(&req, None), Ok("from.header.x"));
        assert_eq!(refresh_token(&request(Body::Empty), None), Err(ApiError::InvalidToken));
    }

    #[test]
    fn the_origin_comes_from_the_request_context_not_from_headers() {
        let mut json: serde_json::Value = serde_json::from_str(&crate::testing::event_json("login-ok")).unwrap();
        json["headers"]["user-agent"] = "set by the client".into();
        json["headers"]["x-forwarded-for"] = "198.51.100.66".into();
        let req = lambda_http::request::from_str(&json.to_string()).unwrap();
        assert_eq!(
            origin(&req),
            Origin {
                ip: "203.0.113.10".into(),
                user_agent: "curl/8.5.0".into()
            }
        );
        let rest = event("register-rest-api", None);
        assert_eq!(
            (origin(&rest).ip.as_str(), origin(&rest).user_agent.as_str()),
            ("203.0.113.10", "curl/8.5.0")
        );
        let bare = request(Body::Empty);
        assert_eq!(origin(&bare), Origin::default(), "no context, nothing made up");
    }

    #[test]
    fn only_a_loopback_source_the_local_stack_reports_takes_x_forwarded_for() {
        let with = |source: &str, forwarded: &str| {
            let mut json: serde_json::Value = serde_json::from_str(&crate::testing::event_json("login-ok")).unwrap();
            json["requestContext"]["http"]["sourceIp"] = source.into();
            json["headers"]["x-forwarded-for"] = forwarded.into();
            origin(&lambda_http::request::from_str(&json.to_string()).unwrap()).ip
        };
        assert_eq!(with("127.0.0.1", "198.51.100.7, 10.0.0.1"), "198.51.100.7");
        assert_eq!(with("::1", "2001:db8::5"), "2001:db8::5");
        assert_eq!(with("127.0.0.1", "not an address"), "127.0.0.1");
        assert_eq!(
            with("203.0.113.10", "127.0.0.1"),
            "203.0.113.10",
            "API Gateway's source stands"
        );
    }

    #[test]
    fn the_last_segment_is_the_id_of_the_path() {
        let with = |path: &str| {
            let req = HttpRequest::builder().uri(path).body(Body::Empty).unwrap();
            last_segment(&req)
        };
        assert_eq!(with("/sessions/abc-1").as_deref(), Some("abc-1"));
        assert_eq!(with("/lambda-url/sessions/abc-1/").as_deref(), Some("abc-1"));
        assert_eq!(with("/sessions/a%20b").as_deref(), Some("a b"));
        assert_eq!(with("/sessions/%zz"), None);
        assert_eq!(with("/sessions/%ff"), None, "not UTF-8");
        assert_eq!(with("/"), None);
    }
}
