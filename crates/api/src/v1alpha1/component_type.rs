//! The role of a service (`componentType`): the operator gives each known role its defaults.
//!
//! The field stays a free string in the CRD (upstream accepts any value), so an unknown role is
//! kept as [`ComponentType::Other`] rather than rejected.

use std::borrow::Cow;
use std::convert::Infallible;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

// The string forms. The operator still compares `componentType` with these; new code should
// use `ComponentType` (via `DynamoComponentDeploymentSharedSpec::component_type()`).
pub const FRONTEND: &str = "frontend";
pub const WORKER: &str = "worker";
pub const PREFILL: &str = "prefill";
pub const DECODE: &str = "decode";
pub const PLANNER: &str = "planner";
pub const EPP: &str = "epp";
pub const DEFAULT: &str = "default";

/// Role of a service. Parsing never fails: values are matched exactly (as upstream does), and
/// anything else is kept in `Other`, so a round trip gives back the string that was written.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ComponentType {
    Frontend,
    Worker,
    Prefill,
    Decode,
    Planner,
    /// The endpoint picker of the Gateway API inference extension.
    Epp,
    /// Explicitly the generic defaults.
    Default,
    Other(String),
}

impl ComponentType {
    pub fn as_str(&self) -> &str {
        match self {
            Self::Frontend => FRONTEND,
            Self::Worker => WORKER,
            Self::Prefill => PREFILL,
            Self::Decode => DECODE,
            Self::Planner => PLANNER,
            Self::Epp => EPP,
            Self::Default => DEFAULT,
            Self::Other(value) => value,
        }
    }

    /// The known role spelled `value`, if any.
    fn known(value: &str) -> Option<Self> {
        Some(match value {
            FRONTEND => Self::Frontend,
            WORKER => Self::Worker,
            PREFILL => Self::Prefill,
            DECODE => Self::Decode,
            PLANNER => Self::Planner,
            EPP => Self::Epp,
            DEFAULT => Self::Default,
            _ => return None,
        })
    }
}

impl From<&str> for ComponentType {
    fn from(value: &str) -> Self {
        Self::known(value).unwrap_or_else(|| Self::Other(value.to_owned()))
    }
}

impl From<String> for ComponentType {
    fn from(value: String) -> Self {
        Self::known(&value).unwrap_or(Self::Other(value))
    }
}

impl FromStr for ComponentType {
    type Err = Infallible;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(value.into())
    }
}

impl fmt::Display for ComponentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ComponentType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ComponentType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::from)
    }
}

/// A plain string in the schema, so the field could switch to this type without changing the CRD.
impl JsonSchema for ComponentType {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "ComponentType".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        schemars::json_schema!({ "type": "string" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_maps_to_its_role_and_back() {
        let cases = [
            ("frontend", ComponentType::Frontend),
            ("worker", ComponentType::Worker),
            ("prefill", ComponentType::Prefill),
            ("decode", ComponentType::Decode),
            ("planner", ComponentType::Planner),
            ("epp", ComponentType::Epp),
            ("default", ComponentType::Default),
            // Matched exactly, as upstream compares the plain string.
            ("Frontend", ComponentType::Other("Frontend".into())),
            ("router", ComponentType::Other("router".into())),
            ("", ComponentType::Other(String::new())),
        ];
        for (text, role) in cases {
            assert_eq!(ComponentType::from(text), role, "{text:?}");
            assert_eq!(ComponentType::from(text.to_owned()), role, "{text:?}");
            assert_eq!(text.parse::<ComponentType>(), Ok(role.clone()), "{text:?}");
            assert_eq!(role.as_str(), text);
            assert_eq!(role.to_string(), text);
        }
    }

    #[test]
    fn serde_uses_the_plain_string() {
        for text in ["epp", "custom-role"] {
            let json = serde_json::json!(text);
            let role: ComponentType = serde_json::from_value(json.clone()).unwrap();
            assert_eq!(role, ComponentType::from(text));
            assert_eq!(serde_json::to_value(&role).unwrap(), json);
        }
        assert!(serde_json::from_value::<ComponentType>(serde_json::json!(3)).is_err());
    }

    #[test]
    fn the_schema_is_a_plain_string() {
        let schema = schemars::SchemaGenerator::default().into_root_schema_for::<ComponentType>();
        assert_eq!(schema.get("type"), Some(&serde_json::json!("string")));
        assert_eq!(schema.get("enum"), None);
    }
}
