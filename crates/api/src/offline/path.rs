//! Field paths in the two spellings the API server uses.
//!
//! The OpenAPI schema validator writes map keys like fields (`spec.services.Frontend.replicas`);
//! the CEL validator and the metadata checks write them in brackets
//! (`spec.services[Frontend].checkpoint`). Both write list indexes in brackets (`spec.pvcs[0]`).

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Field(String),
    Key(String),
    Index(usize),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FieldPath(Vec<Segment>);

impl FieldPath {
    pub(crate) fn root() -> Self {
        Self::default()
    }

    /// A property of an object schema.
    pub(crate) fn field(&self, name: &str) -> Self {
        self.with(Segment::Field(name.to_owned()))
    }

    /// A key of a map (an object schema with `additionalProperties`).
    pub(crate) fn key(&self, key: &str) -> Self {
        self.with(Segment::Key(key.to_owned()))
    }

    pub(crate) fn index(&self, index: usize) -> Self {
        self.with(Segment::Index(index))
    }

    fn with(&self, segment: Segment) -> Self {
        let mut segments = self.0.clone();
        segments.push(segment);
        Self(segments)
    }

    /// As the schema validator writes it: `spec.services.Frontend.replicas`.
    pub(crate) fn schema_style(&self) -> String {
        self.render(false)
    }

    /// As the CEL validator writes it: `spec.services[Frontend].checkpoint`.
    pub(crate) fn field_style(&self) -> String {
        self.render(true)
    }

    fn render(&self, bracket_keys: bool) -> String {
        let mut text = String::new();
        for segment in &self.0 {
            match segment {
                Segment::Index(index) => text.push_str(&format!("[{index}]")),
                Segment::Key(key) if bracket_keys => text.push_str(&format!("[{key}]")),
                Segment::Field(name) | Segment::Key(name) => {
                    if !text.is_empty() {
                        text.push('.');
                    }
                    text.push_str(name);
                }
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings() {
        let path = FieldPath::root()
            .field("spec")
            .field("services")
            .key("Frontend")
            .field("volumeMounts")
            .index(2)
            .field("name");
        assert_eq!(
            path.schema_style(),
            "spec.services.Frontend.volumeMounts[2].name"
        );
        assert_eq!(
            path.field_style(),
            "spec.services[Frontend].volumeMounts[2].name"
        );
        assert_eq!(FieldPath::root().schema_style(), "");
        assert_eq!(FieldPath::root().index(0).schema_style(), "[0]");
    }
}
