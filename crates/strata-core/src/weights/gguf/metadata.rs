//! GGUF metadata values: the thirteen value types, scalars, strings and (nested) arrays.

use std::fmt;

/// The type tag of a GGUF metadata value, with the id the file stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgufValueType {
    /// `UINT8` (id 0).
    U8,
    /// `INT8` (id 1).
    I8,
    /// `UINT16` (id 2).
    U16,
    /// `INT16` (id 3).
    I16,
    /// `UINT32` (id 4).
    U32,
    /// `INT32` (id 5).
    I32,
    /// `FLOAT32` (id 6).
    F32,
    /// `BOOL` (id 7), one byte.
    Bool,
    /// `STRING` (id 8): a u64 byte length and UTF-8 bytes.
    String,
    /// `ARRAY` (id 9): an item type, a u64 length and the items.
    Array,
    /// `UINT64` (id 10).
    U64,
    /// `INT64` (id 11).
    I64,
    /// `FLOAT64` (id 12).
    F64,
}

impl GgufValueType {
    /// The type with this id, or `None` for an id GGUF does not define.
    pub fn from_id(id: u32) -> Option<Self> {
        use GgufValueType::*;
        Some(match id {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// The id the file stores for this type.
    pub fn id(self) -> u32 {
        use GgufValueType::*;
        match self {
            U8 => 0,
            I8 => 1,
            U16 => 2,
            I16 => 3,
            U32 => 4,
            I32 => 5,
            F32 => 6,
            Bool => 7,
            String => 8,
            Array => 9,
            U64 => 10,
            I64 => 11,
            F64 => 12,
        }
    }

    /// The name the GGUF specification gives the type (`UINT32`, `STRING`, ...).
    pub fn name(self) -> &'static str {
        use GgufValueType::*;
        match self {
            U8 => "UINT8",
            I8 => "INT8",
            U16 => "UINT16",
            I16 => "INT16",
            U32 => "UINT32",
            I32 => "INT32",
            F32 => "FLOAT32",
            Bool => "BOOL",
            String => "STRING",
            Array => "ARRAY",
            U64 => "UINT64",
            I64 => "INT64",
            F64 => "FLOAT64",
        }
    }

    /// The fewest bytes one value of this type takes in a file (an empty string or array for
    /// the variable-length types): the bound on how many items a given number of bytes holds.
    pub(crate) fn min_encoded_size(self) -> usize {
        use GgufValueType::*;
        match self {
            U8 | I8 | Bool => 1,
            U16 | I16 => 2,
            U32 | I32 | F32 => 4,
            U64 | I64 | F64 | String => 8,
            Array => 12,
        }
    }
}

impl fmt::Display for GgufValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum GgufValue {
    /// `UINT8`.
    U8(u8),
    /// `INT8`.
    I8(i8),
    /// `UINT16`.
    U16(u16),
    /// `INT16`.
    I16(i16),
    /// `UINT32`.
    U32(u32),
    /// `INT32`.
    I32(i32),
    /// `FLOAT32`.
    F32(f32),
    /// `BOOL` (any non-zero byte reads as `true`).
    Bool(bool),
    /// `STRING`.
    String(String),
    /// `ARRAY`.
    Array(GgufArray),
    /// `UINT64`.
    U64(u64),
    /// `INT64`.
    I64(i64),
    /// `FLOAT64`.
    F64(f64),
}

impl GgufValue {
    /// The value's type tag.
    pub fn value_type(&self) -> GgufValueType {
        match self {
            GgufValue::U8(_) => GgufValueType::U8,
            GgufValue::I8(_) => GgufValueType::I8,
            GgufValue::U16(_) => GgufValueType::U16,
            GgufValue::I16(_) => GgufValueType::I16,
            GgufValue::U32(_) => GgufValueType::U32,
            GgufValue::I32(_) => GgufValueType::I32,
            GgufValue::F32(_) => GgufValueType::F32,
            GgufValue::Bool(_) => GgufValueType::Bool,
            GgufValue::String(_) => GgufValueType::String,
            GgufValue::Array(_) => GgufValueType::Array,
            GgufValue::U64(_) => GgufValueType::U64,
            GgufValue::I64(_) => GgufValueType::I64,
            GgufValue::F64(_) => GgufValueType::F64,
        }
    }

    /// The type for messages: `UINT32`, or `ARRAY of STRING` for an array.
    pub fn type_name(&self) -> String {
        match self {
            GgufValue::Array(array) => array.type_name(),
            other => other.value_type().name().to_string(),
        }
    }

    /// The value of any integer type that is not negative, widened to u64.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            GgufValue::U8(v) => Some(v.into()),
            GgufValue::U16(v) => Some(v.into()),
            GgufValue::U32(v) => Some(v.into()),
            GgufValue::U64(v) => Some(v),
            GgufValue::I8(v) => u64::try_from(v).ok(),
            GgufValue::I16(v) => u64::try_from(v).ok(),
            GgufValue::I32(v) => u64::try_from(v).ok(),
            GgufValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value of any integer type that fits an i64.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            GgufValue::U8(v) => Some(v.into()),
            GgufValue::U16(v) => Some(v.into()),
            GgufValue::U32(v) => Some(v.into()),
            GgufValue::U64(v) => i64::try_from(v).ok(),
            GgufValue::I8(v) => Some(v.into()),
            GgufValue::I16(v) => Some(v.into()),
            GgufValue::I32(v) => Some(v.into()),
            GgufValue::I64(v) => Some(v),
            _ => None,
        }
    }

    /// The value of a `FLOAT32` or `FLOAT64`, as f64 (exactly).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            GgufValue::F32(v) => Some(v.into()),
            GgufValue::F64(v) => Some(v),
            _ => None,
        }
    }

    /// The value of a `BOOL`.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            GgufValue::Bool(v) => Some(v),
            _ => None,
        }
    }

    /// The text of a `STRING`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            GgufValue::String(v) => Some(v),
            _ => None,
        }
    }

    /// The items of an `ARRAY`.
    pub fn as_array(&self) -> Option<&GgufArray> {
        match self {
            GgufValue::Array(v) => Some(v),
            _ => None,
        }
    }
}

/// The items of a metadata array, stored by item type (an array of `UINT8` is a `Vec<u8>`).
///
/// An array of arrays holds its inner arrays, each with its own item type.
#[derive(Debug, Clone, PartialEq)]
pub enum GgufArray {
    /// Items of type `UINT8`.
    U8(Vec<u8>),
    /// Items of type `INT8`.
    I8(Vec<i8>),
    /// Items of type `UINT16`.
    U16(Vec<u16>),
    /// Items of type `INT16`.
    I16(Vec<i16>),
    /// Items of type `UINT32`.
    U32(Vec<u32>),
    /// Items of type `INT32`.
    I32(Vec<i32>),
    /// Items of type `FLOAT32`.
    F32(Vec<f32>),
    /// Items of type `BOOL`.
    Bool(Vec<bool>),
    /// Items of type `STRING`.
    String(Vec<String>),
    /// Items of type `ARRAY`.
    Array(Vec<GgufArray>),
    /// Items of type `UINT64`.
    U64(Vec<u64>),
    /// Items of type `INT64`.
    I64(Vec<i64>),
    /// Items of type `FLOAT64`.
    F64(Vec<f64>),
}

impl GgufArray {
    /// The type of the items.
    pub fn item_type(&self) -> GgufValueType {
        match self {
            GgufArray::U8(_) => GgufValueType::U8,
            GgufArray::I8(_) => GgufValueType::I8,
            GgufArray::U16(_) => GgufValueType::U16,
            GgufArray::I16(_) => GgufValueType::I16,
            GgufArray::U32(_) => GgufValueType::U32,
            GgufArray::I32(_) => GgufValueType::I32,
            GgufArray::F32(_) => GgufValueType::F32,
            GgufArray::Bool(_) => GgufValueType::Bool,
            GgufArray::String(_) => GgufValueType::String,
            GgufArray::Array(_) => GgufValueType::Array,
            GgufArray::U64(_) => GgufValueType::U64,
            GgufArray::I64(_) => GgufValueType::I64,
            GgufArray::F64(_) => GgufValueType::F64,
        }
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        match self {
            GgufArray::U8(v) => v.len(),
            GgufArray::I8(v) => v.len(),
            GgufArray::U16(v) => v.len(),
            GgufArray::I16(v) => v.len(),
            GgufArray::U32(v) => v.len(),
            GgufArray::I32(v) => v.len(),
            GgufArray::F32(v) => v.len(),
            GgufArray::Bool(v) => v.len(),
            GgufArray::String(v) => v.len(),
            GgufArray::Array(v) => v.len(),
            GgufArray::U64(v) => v.len(),
            GgufArray::I64(v) => v.len(),
            GgufArray::F64(v) => v.len(),
        }
    }

    /// Whether the array has no items.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The type for messages: `ARRAY of INT32`.
    pub fn type_name(&self) -> String {
        format!("ARRAY of {}", self.item_type().name())
    }
}
