//! Rows of any `Serialize` type taken apart into named cells, so one table can be written
//! both as CSV and as typed Parquet columns.

use serde::Serialize;
use serde::ser::{self, Impossible};

/// One cell of a table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    /// An empty cell (`Option::None`, `()`).
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    Int(i64),
    /// An unsigned integer (kept apart so that one above `i64::MAX` is reported, not wrapped).
    UInt(u64),
    /// A floating-point number, non-finite values included.
    Float(f64),
    /// Text (strings, chars, unit enum variants).
    Text(String),
}

/// Why a row could not be taken apart.
#[derive(Debug)]
pub(crate) struct CellError(pub(crate) String);

impl std::fmt::Display for CellError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CellError {}

impl ser::Error for CellError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        CellError(msg.to_string())
    }
}

/// The fields of one row, in declaration order.
pub(crate) fn row_cells<R: Serialize>(row: &R) -> Result<Vec<(&'static str, Cell)>, CellError> {
    row.serialize(RowSerializer)
}

struct RowSerializer;

struct FieldCollector(Vec<(&'static str, Cell)>);

fn not_a_struct<T>(what: &str) -> Result<T, CellError> {
    Err(CellError(format!(
        "a table row must be a struct with named fields, not {what}"
    )))
}

fn nested<T>(field: &str) -> Result<T, CellError> {
    Err(CellError(format!(
        "a table cell must be a number, bool, string or option of one; `{field}` is nested"
    )))
}

macro_rules! refuse_scalars {
    ($($method:ident: $ty:ty),* $(,)?) => {
        $(fn $method(self, _v: $ty) -> Result<Self::Ok, Self::Error> {
            not_a_struct(stringify!($ty))
        })*
    };
}

impl ser::Serializer for RowSerializer {
    type Ok = Vec<(&'static str, Cell)>;
    type Error = CellError;
    type SerializeSeq = Impossible<Self::Ok, CellError>;
    type SerializeTuple = Impossible<Self::Ok, CellError>;
    type SerializeTupleStruct = Impossible<Self::Ok, CellError>;
    type SerializeTupleVariant = Impossible<Self::Ok, CellError>;
    type SerializeMap = Impossible<Self::Ok, CellError>;
    type SerializeStruct = FieldCollector;
    type SerializeStructVariant = Impossible<Self::Ok, CellError>;

    refuse_scalars!(
        serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
        serialize_i64: i64, serialize_u8: u8, serialize_u16: u16, serialize_u32: u32,
        serialize_u64: u64, serialize_f32: f32, serialize_f64: f64, serialize_char: char,
        serialize_str: &str, serialize_bytes: &[u8],
    );

    fn serialize_none(self) -> Result<Self::Ok, CellError> {
        not_a_struct("None")
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<Self::Ok, CellError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Self::Ok, CellError> {
        not_a_struct("()")
    }
    fn serialize_unit_struct(self, name: &'static str) -> Result<Self::Ok, CellError> {
        not_a_struct(name)
    }
    fn serialize_unit_variant(
        self,
        name: &'static str,
        _index: u32,
        _variant: &'static str,
    ) -> Result<Self::Ok, CellError> {
        not_a_struct(name)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<Self::Ok, CellError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<Self::Ok, CellError> {
        not_a_struct(name)
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, CellError> {
        not_a_struct("a sequence")
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, CellError> {
        not_a_struct("a tuple")
    }
    fn serialize_tuple_struct(
        self,
        name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, CellError> {
        not_a_struct(name)
    }
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, CellError> {
        not_a_struct(name)
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, CellError> {
        not_a_struct("a map")
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, CellError> {
        Ok(FieldCollector(Vec::with_capacity(len)))
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, CellError> {
        not_a_struct(name)
    }
}

impl ser::SerializeStruct for FieldCollector {
    type Ok = Vec<(&'static str, Cell)>;
    type Error = CellError;

    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), CellError> {
        let cell = value.serialize(CellSerializer { field: key })?;
        self.0.push((key, cell));
        Ok(())
    }

    fn end(self) -> Result<Self::Ok, CellError> {
        Ok(self.0)
    }
}

/// Turns one field's value into a [`Cell`].
struct CellSerializer {
    field: &'static str,
}

impl ser::Serializer for CellSerializer {
    type Ok = Cell;
    type Error = CellError;
    type SerializeSeq = Impossible<Cell, CellError>;
    type SerializeTuple = Impossible<Cell, CellError>;
    type SerializeTupleStruct = Impossible<Cell, CellError>;
    type SerializeTupleVariant = Impossible<Cell, CellError>;
    type SerializeMap = Impossible<Cell, CellError>;
    type SerializeStruct = Impossible<Cell, CellError>;
    type SerializeStructVariant = Impossible<Cell, CellError>;

    fn serialize_bool(self, v: bool) -> Result<Cell, CellError> {
        Ok(Cell::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Cell, CellError> {
        Ok(Cell::Int(v.into()))
    }
    fn serialize_i16(self, v: i16) -> Result<Cell, CellError> {
        Ok(Cell::Int(v.into()))
    }
    fn serialize_i32(self, v: i32) -> Result<Cell, CellError> {
        Ok(Cell::Int(v.into()))
    }
    fn serialize_i64(self, v: i64) -> Result<Cell, CellError> {
        Ok(Cell::Int(v))
    }
    fn serialize_u8(self, v: u8) -> Result<Cell, CellError> {
        Ok(Cell::UInt(v.into()))
    }
    fn serialize_u16(self, v: u16) -> Result<Cell, CellError> {
        Ok(Cell::UInt(v.into()))
    }
    fn serialize_u32(self, v: u32) -> Result<Cell, CellError> {
        Ok(Cell::UInt(v.into()))
    }
    fn serialize_u64(self, v: u64) -> Result<Cell, CellError> {
        Ok(Cell::UInt(v))
    }
    fn serialize_f32(self, v: f32) -> Result<Cell, CellError> {
        Ok(Cell::Float(v.into()))
    }
    fn serialize_f64(self, v: f64) -> Result<Cell, CellError> {
        Ok(Cell::Float(v))
    }
    fn serialize_char(self, v: char) -> Result<Cell, CellError> {
        Ok(Cell::Text(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> Result<Cell, CellError> {
        Ok(Cell::Text(v.to_string()))
    }
    fn serialize_bytes(self, _v: &[u8]) -> Result<Cell, CellError> {
        nested(self.field)
    }
    fn serialize_none(self) -> Result<Cell, CellError> {
        Ok(Cell::Null)
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<Cell, CellError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Cell, CellError> {
        Ok(Cell::Null)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<Cell, CellError> {
        Ok(Cell::Null)
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Cell, CellError> {
        Ok(Cell::Text(variant.to_string()))
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<Cell, CellError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<Cell, CellError> {
        nested(self.field)
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, CellError> {
        nested(self.field)
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, CellError> {
        nested(self.field)
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, CellError> {
        nested(self.field)
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, CellError> {
        nested(self.field)
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, CellError> {
        nested(self.field)
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, CellError> {
        nested(self.field)
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, CellError> {
        nested(self.field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    enum Kind {
        Attn,
    }

    #[derive(Serialize)]
    struct Row {
        layer: u32,
        delta: i16,
        name: String,
        kind: Kind,
        value: f32,
        ok: bool,
        note: Option<String>,
    }

    #[test]
    fn a_struct_becomes_its_fields_in_order() {
        let row = Row {
            layer: 3,
            delta: -2,
            name: "h.3".into(),
            kind: Kind::Attn,
            value: 0.5,
            ok: true,
            note: None,
        };
        let cells = row_cells(&row).unwrap();
        assert_eq!(
            cells,
            vec![
                ("layer", Cell::UInt(3)),
                ("delta", Cell::Int(-2)),
                ("name", Cell::Text("h.3".into())),
                ("kind", Cell::Text("Attn".into())),
                ("value", Cell::Float(0.5)),
                ("ok", Cell::Bool(true)),
                ("note", Cell::Null),
            ]
        );
    }

    #[test]
    fn nested_fields_and_non_structs_are_refused_by_name() {
        #[derive(Serialize)]
        struct Nested {
            dims: Vec<u32>,
        }
        let err = row_cells(&Nested { dims: vec![1] }).unwrap_err();
        assert!(err.to_string().contains("`dims` is nested"), "{err}");
        let err = row_cells(&7_u32).unwrap_err();
        assert!(err.to_string().contains("must be a struct"), "{err}");
    }
}
