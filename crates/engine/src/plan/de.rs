//! A serde `Deserializer` over the located YAML tree.
//!
//! Reading the typed plan straight from the tree means every type error (a string where
//! a number belongs, an unknown field, a missing one, a bad duration) comes back with the
//! field path and the span of the node it concerns. Scalars are read leniently where a
//! string is wanted (`working: true` is the string "true", as an operator means it) and
//! strictly where a number is wanted (a quoted "3" is not a retry count).

use std::fmt;

use serde::de::{
    self, DeserializeSeed, EnumAccess, Expected, IntoDeserializer, MapAccess, SeqAccess,
    Unexpected, VariantAccess, Visitor,
};

use super::error::quote;
use super::path::FieldPath;
use super::yaml::{Entry, Node, NodeKind, Resolved, Span};

/// A type error, located once by the innermost node it concerns.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DeError {
    pub message: String,
    pub span: Option<Span>,
    pub path: FieldPath,
    /// Set by `missing_field`: the error then belongs to the absent child, not the mapping.
    missing: Option<&'static str>,
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

fn one_of(names: &[&str]) -> String {
    if names.is_empty() {
        return "no fields here".to_owned();
    }
    format!("one of {}", names.join(", "))
}

/// serde names Rust types ("u32", "struct Target"); operators think in YAML.
fn expected_in_yaml(exp: &dyn Expected) -> String {
    let text = exp.to_string();
    match text.as_str() {
        "u8" | "u32" | "u64" | "usize" => "a non-negative integer".to_owned(),
        "u16" => "an integer from 0 to 65535".to_owned(),
        "a map" => "a mapping".to_owned(),
        "option" => "a value".to_owned(),
        "path string" => "a file path".to_owned(),
        _ if text.starts_with("struct ") => "a mapping".to_owned(),
        _ if text.starts_with("enum ") => "a string".to_owned(),
        _ => text,
    }
}

fn found_in_yaml(unexp: &Unexpected<'_>) -> String {
    match unexp {
        Unexpected::Bool(b) => format!("boolean {b}"),
        Unexpected::Unsigned(n) => format!("integer {n}"),
        Unexpected::Signed(n) => format!("integer {n}"),
        Unexpected::Float(x) => format!("number {x}"),
        Unexpected::Char(c) => format!("string {}", quote(&c.to_string())),
        Unexpected::Str(s) => format!("string {}", quote(s)),
        Unexpected::Unit | Unexpected::Option => "null".to_owned(),
        Unexpected::Map => "a mapping".to_owned(),
        Unexpected::Seq => "a sequence".to_owned(),
        other => other.to_string(),
    }
}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            message: msg.to_string(),
            span: None,
            path: FieldPath::root(),
            missing: None,
        }
    }

    fn invalid_type(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        Self::custom(format_args!(
            "invalid type: expected {}, found {}",
            expected_in_yaml(exp),
            found_in_yaml(&unexp)
        ))
    }

    fn invalid_value(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        Self::custom(format_args!(
            "invalid value {}: expected {}",
            found_in_yaml(&unexp),
            expected_in_yaml(exp)
        ))
    }

    fn invalid_length(len: usize, exp: &dyn Expected) -> Self {
        Self::custom(format_args!("invalid length {len}: expected {exp}"))
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        Self::custom(format_args!(
            "unknown value {}: expected {}",
            quote(variant),
            one_of(expected)
        ))
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        Self::custom(format_args!(
            "unknown field {}: expected {}",
            quote(field),
            one_of(expected)
        ))
    }

    fn missing_field(field: &'static str) -> Self {
        let mut error = Self::custom(format_args!("missing field {field:?}: it is required"));
        error.missing = Some(field);
        error
    }

    fn duplicate_field(field: &'static str) -> Self {
        Self::custom(format_args!(
            "duplicate field {field:?}: expected each field once"
        ))
    }
}

/// Deserializes one node; `key_span` is the key it sits under, if any.
#[derive(Clone, Copy)]
pub(crate) struct NodeDe<'a, 'p> {
    node: &'a Node,
    path: &'p FieldPath,
    key_span: Option<Span>,
}

impl<'a, 'p> NodeDe<'a, 'p> {
    pub fn root(node: &'a Node, path: &'p FieldPath) -> Self {
        NodeDe {
            node,
            path,
            key_span: None,
        }
    }

    /// Gives an error raised at this node its place, unless a deeper node already did.
    fn locate(&self, mut error: DeError) -> DeError {
        if error.span.is_some() {
            return error;
        }
        match error.missing.take() {
            Some(field) => {
                error.path = self.path.key(field);
                error.span = Some(self.key_span.unwrap_or(self.node.span));
            }
            None => {
                error.path = self.path.clone();
                error.span = Some(self.node.point(self.key_span));
            }
        }
        error
    }

    fn any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            NodeKind::Scalar(scalar) => match scalar.resolve() {
                Resolved::Null => visitor.visit_unit(),
                Resolved::Bool(b) => visitor.visit_bool(b),
                Resolved::Unsigned(n) => visitor.visit_u64(n),
                Resolved::Signed(n) => visitor.visit_i64(n),
                Resolved::Float(x) => visitor.visit_f64(x),
                Resolved::Str(s) => visitor.visit_str(s),
            },
            NodeKind::Seq(items) => visitor.visit_seq(SeqDe {
                items: items.iter().enumerate(),
                path: self.path,
            }),
            NodeKind::Map(entries) => visitor.visit_map(MapDe {
                entries: entries.iter(),
                current: None,
                path: self.path,
            }),
        }
    }
}

impl<'de> de::Deserializer<'de> for NodeDe<'de, '_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.any(visitor).map_err(|e| self.locate(e))
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match &self.node.kind {
            NodeKind::Scalar(scalar) if !scalar.is_null() => visitor.visit_str(&scalar.text),
            _ => self.any(visitor),
        };
        result.map_err(|e| self.locate(e))
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match &self.node.kind {
            NodeKind::Scalar(scalar) if scalar.is_null() => visitor.visit_none(),
            _ => visitor.visit_some(self),
        };
        result.map_err(|e| self.locate(e))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor
            .visit_newtype_struct(self)
            .map_err(|e| self.locate(e))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let result = match &self.node.kind {
            NodeKind::Scalar(scalar) if !scalar.is_null() => {
                visitor.visit_enum(UnitVariant(&scalar.text))
            }
            _ => self.any(visitor),
        };
        result.map_err(|e| self.locate(e))
    }

    /// Structs are mappings only: serde would also accept a sequence of field values,
    /// which in YAML is always a mistake.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let result = match &self.node.kind {
            NodeKind::Map(_) => self.any(visitor),
            NodeKind::Seq(_) => Err(de::Error::invalid_type(Unexpected::Seq, &visitor)),
            NodeKind::Scalar(scalar) => {
                let found = match scalar.resolve() {
                    Resolved::Null => Unexpected::Unit,
                    Resolved::Bool(b) => Unexpected::Bool(b),
                    Resolved::Unsigned(n) => Unexpected::Unsigned(n),
                    Resolved::Signed(n) => Unexpected::Signed(n),
                    Resolved::Float(x) => Unexpected::Float(x),
                    Resolved::Str(s) => Unexpected::Str(s),
                };
                Err(de::Error::invalid_type(found, &visitor))
            }
        };
        result.map_err(|e| self.locate(e))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char
        bytes byte_buf unit unit_struct seq tuple tuple_struct map
    }
}

struct SeqDe<'a, 'p> {
    items: std::iter::Enumerate<std::slice::Iter<'a, Node>>,
    path: &'p FieldPath,
}

impl<'de> SeqAccess<'de> for SeqDe<'de, '_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some((index, node)) = self.items.next() else {
            return Ok(None);
        };
        let path = self.path.index(index);
        let child = NodeDe {
            node,
            path: &path,
            key_span: None,
        };
        // Errors a type raises after reading its value (a bad duration) belong here too.
        seed.deserialize(child)
            .map(Some)
            .map_err(|e| child.locate(e))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct MapDe<'a, 'p> {
    entries: std::slice::Iter<'a, Entry>,
    current: Option<&'a Entry>,
    path: &'p FieldPath,
}

impl<'de> MapAccess<'de> for MapDe<'de, '_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        self.current = Some(entry);
        let key: de::value::StrDeserializer<'_, DeError> = entry.key.as_str().into_deserializer();
        seed.deserialize(key).map(Some).map_err(|mut e| {
            if e.span.is_none() {
                e.span = Some(entry.key_span);
                e.path = self.path.key(&entry.key);
            }
            e
        })
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some(entry) = self.current.take() else {
            return Err(de::Error::custom("a mapping value was read before its key"));
        };
        let path = self.path.key(&entry.key);
        let child = NodeDe {
            node: &entry.value,
            path: &path,
            key_span: Some(entry.key_span),
        };
        // Errors a type raises after reading its value (a bad duration) belong here too.
        seed.deserialize(child).map_err(|e| child.locate(e))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// An enum written as a plain string (`approval: firstWave`): only unit variants.
struct UnitVariant<'a>(&'a str);

impl<'de> EnumAccess<'de> for UnitVariant<'de> {
    type Error = DeError;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), DeError> {
        let name: de::value::StrDeserializer<'_, DeError> = self.0.into_deserializer();
        seed.deserialize(name).map(|v| (v, self))
    }
}

impl<'de> VariantAccess<'de> for UnitVariant<'de> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, _seed: T) -> Result<T::Value, DeError> {
        Err(de::Error::invalid_type(
            Unexpected::UnitVariant,
            &"a mapping",
        ))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, _visitor: V) -> Result<V::Value, DeError> {
        Err(de::Error::invalid_type(
            Unexpected::UnitVariant,
            &"a sequence",
        ))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, DeError> {
        Err(de::Error::invalid_type(
            Unexpected::UnitVariant,
            &"a mapping",
        ))
    }
}
