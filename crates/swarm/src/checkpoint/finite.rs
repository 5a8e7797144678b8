//! Whether a value holds a `null` that reads back as another value. serde_json writes a
//! non-finite float as `null` without an error, and a `Some` of a value written as `null` (a
//! `Some(None)`, a `Some(())`) as that `null` alone; an `Option` reads either back as `None`
//! instead of failing, so decoding the record cannot tell: walking the value can.

use std::fmt;

use serde::ser::{self, Serialize};

/// What a value holds whose JSON `null` would not read back as itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LossyNull {
    /// A NaN or an infinity: no float reads `null`, an `Option` reads it as `None`.
    NonFinite,
    /// A `Some` of a value written as `null` (`Some(None)`, `Some(())`): read back as `None`.
    SomeOfNull,
}

impl fmt::Display for LossyNull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NonFinite => {
                "a non-finite float, written as JSON null, which would not read back as itself"
            }
            Self::SomeOfNull => {
                "a `Some` of a value written as JSON null (a `Some(None)`, a `Some(())`), which \
                 would read back as `None`"
            }
        })
    }
}

/// The first value `value` holds whose JSON `null` would not read back as itself, if any.
pub(crate) fn lossy_null<T: Serialize + ?Sized>(value: &T) -> Option<LossyNull> {
    match value.serialize(Probe::default()) {
        Err(Found::NonFinite) => Some(LossyNull::NonFinite),
        Err(Found::SomeOfNull) => Some(LossyNull::SomeOfNull),
        Ok(()) | Err(Found::Other) => None,
    }
}

/// A serializer that writes nothing and stops at the first non-finite float or `Some` of a
/// `null`.
#[derive(Default)]
struct Probe {
    /// Whether the value serialized is a `Some`'s (through newtype structs, which JSON writes as
    /// their field): a `null` here reads back as the `None` around it.
    below_some: bool,
}

impl Probe {
    /// A `null` written here: lost when the value is a `Some`'s.
    fn null(self) -> Result<(), Found> {
        if self.below_some {
            Err(Found::SomeOfNull)
        } else {
            Ok(())
        }
    }
}

/// Why the walk stopped.
#[derive(Debug)]
enum Found {
    NonFinite,
    SomeOfNull,
    /// The value's own serialization failed (its encoding fails the same way).
    Other,
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NonFinite => "a non-finite float",
            Self::SomeOfNull => "a `Some` of a value written as null",
            Self::Other => "the value failed to serialize",
        })
    }
}

impl std::error::Error for Found {}

impl ser::Error for Found {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Self::Other
    }
}

macro_rules! ignore {
    ($($method:ident: $type:ty),* $(,)?) => {
        $(fn $method(self, _: $type) -> Result<(), Found> {
            Ok(())
        })*
    };
}

impl ser::Serializer for Probe {
    type Ok = ();
    type Error = Found;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    ignore! {
        serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
        serialize_i64: i64, serialize_i128: i128, serialize_u8: u8, serialize_u16: u16,
        serialize_u32: u32, serialize_u64: u64, serialize_u128: u128, serialize_char: char,
        serialize_str: &str, serialize_bytes: &[u8],
    }

    fn serialize_f32(self, value: f32) -> Result<(), Found> {
        if value.is_finite() {
            Ok(())
        } else {
            Err(Found::NonFinite)
        }
    }

    fn serialize_f64(self, value: f64) -> Result<(), Found> {
        if value.is_finite() {
            Ok(())
        } else {
            Err(Found::NonFinite)
        }
    }

    fn serialize_none(self) -> Result<(), Found> {
        self.null()
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Found> {
        value.serialize(Self { below_some: true })
    }

    fn serialize_unit(self) -> Result<(), Found> {
        self.null()
    }

    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Found> {
        self.null()
    }

    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<(), Found> {
        Ok(())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Found> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        value: &T,
    ) -> Result<(), Found> {
        // Written `{"variant":value}`: no longer the `Some`'s value itself.
        value.serialize(Self::default())
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self, Found> {
        Ok(self)
    }

    fn serialize_tuple(self, _: usize) -> Result<Self, Found> {
        Ok(self)
    }

    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, Found> {
        Ok(self)
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, Found> {
        Ok(self)
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self, Found> {
        Ok(self)
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, Found> {
        Ok(self)
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, Found> {
        Ok(self)
    }
}

macro_rules! elements {
    ($($trait:ident :: $method:ident),* $(,)?) => {
        $(impl ser::$trait for Probe {
            type Ok = ();
            type Error = Found;

            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Found> {
                value.serialize(Probe::default())
            }

            fn end(self) -> Result<(), Found> {
                Ok(())
            }
        })*
    };
}

elements! {
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
}

macro_rules! fields {
    ($($trait:ident),* $(,)?) => {
        $(impl ser::$trait for Probe {
            type Ok = ();
            type Error = Found;

            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                _: &'static str,
                value: &T,
            ) -> Result<(), Found> {
                value.serialize(Probe::default())
            }

            fn end(self) -> Result<(), Found> {
                Ok(())
            }
        })*
    };
}

fields!(SerializeStruct, SerializeStructVariant);

impl ser::SerializeMap for Probe {
    type Ok = ();
    type Error = Found;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Found> {
        key.serialize(Probe::default())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Found> {
        value.serialize(Probe::default())
    }

    fn end(self) -> Result<(), Found> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::{lossy_null, LossyNull};

    #[test]
    fn finds_non_finite_floats_wherever_they_are() {
        let found = Some(LossyNull::NonFinite);
        assert_eq!(lossy_null(&f64::NAN), found);
        assert_eq!(lossy_null(&Some(f64::INFINITY)), found);
        assert_eq!(lossy_null(&vec![1.0, f64::NEG_INFINITY]), found);
        assert_eq!(lossy_null(&(1_u8, Some(f32::NAN))), found);
        assert_eq!(lossy_null(&BTreeMap::from([("a", f64::NAN)])), found);
        assert_eq!(lossy_null(&Some(1.5_f64)), None);
        assert_eq!(lossy_null(&None::<f64>), None);
        assert_eq!(
            lossy_null(&(String::from("x"), vec![Some(2.0_f32), None])),
            None
        );
    }

    /// A unit struct, and a newtype struct around a `None`: both written as `null`.
    #[derive(serde::Serialize)]
    struct Unit;

    #[derive(serde::Serialize)]
    struct Wrapper(Option<u8>);

    #[derive(serde::Serialize)]
    enum Choice {
        Maybe(Option<u8>),
    }

    #[test]
    fn finds_a_some_of_a_value_written_as_null_wherever_it_is() {
        let found = Some(LossyNull::SomeOfNull);
        assert_eq!(lossy_null(&Some(None::<u8>)), found);
        assert_eq!(lossy_null(&Some(())), found);
        assert_eq!(lossy_null(&Some(Unit)), found);
        assert_eq!(lossy_null(&Some(Wrapper(None))), found);
        assert_eq!(lossy_null(&Some(Some(None::<u8>))), found);
        assert_eq!(lossy_null(&vec![Some(Some(1_u8)), Some(None), None]), found);
        assert_eq!(lossy_null(&BTreeMap::from([("a", Some(()))])), found);
    }

    #[test]
    fn a_null_that_reads_back_as_itself_is_not_reported() {
        assert_eq!(lossy_null(&()), None);
        assert_eq!(lossy_null(&None::<Option<u8>>), None);
        assert_eq!(lossy_null(&Some(Some(1_u8))), None);
        assert_eq!(lossy_null(&Some(vec![None::<u8>])), None);
        assert_eq!(lossy_null(&Some((None::<u8>, 1_u8))), None);
        assert_eq!(lossy_null(&Some(Choice::Maybe(None))), None);
        assert_eq!(lossy_null(&Wrapper(None)), None);
        assert_eq!(lossy_null(&Unit), None);
    }
}
