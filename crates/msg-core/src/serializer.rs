//! Serializer hooks for entities and contexts (oslo's `Serializer`).

use std::fmt;

use serde_json::Value;

use crate::{Context, Result};

/// Hooks that turn entities and contexts into what travels and back. The client serializes
/// the context and each argument; the server deserializes the context, then the arguments
/// with it, and serializes the result.
///
/// ```
/// use msg_core::{Context, JsonSerializer, Serializer};
/// let s = JsonSerializer;
/// let v = s.serialize_entity(&Context::new(), serde_json::json!(1)).unwrap();
/// assert_eq!(v, serde_json::json!(1));
/// ```
pub trait Serializer: Send + Sync + fmt::Debug {
    /// An entity on its way out.
    fn serialize_entity(&self, context: &Context, entity: Value) -> Result<Value> {
        let _ = context;
        Ok(entity)
    }
    /// An entity on its way in.
    fn deserialize_entity(&self, context: &Context, entity: Value) -> Result<Value> {
        let _ = context;
        Ok(entity)
    }
    /// Whether [`serialize_entity`](Serializer::serialize_entity) and
    /// [`deserialize_entity`](Serializer::deserialize_entity) return every entity as it is
    /// (the default ones do): then arguments, results and payloads are not parsed into
    /// `Value`s for them, and stay the JSON text they travel as. `false` unless overridden.
    fn passes_entities_through(&self) -> bool {
        false
    }
    /// A context on its way out.
    fn serialize_context(&self, context: Context) -> Result<Context> {
        Ok(context)
    }
    /// A context on its way in.
    fn deserialize_context(&self, context: Context) -> Result<Context> {
        Ok(context)
    }
}

/// The default: values are JSON already (serde did the work), so entities pass as they are.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonSerializer;
impl Serializer for JsonSerializer {
    fn passes_entities_through(&self) -> bool {
        true
    }
}

/// Passes everything through untouched (oslo's `NoOpSerializer`).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoOpSerializer;
impl Serializer for NoOpSerializer {
    fn passes_entities_through(&self) -> bool {
        true
    }
}
