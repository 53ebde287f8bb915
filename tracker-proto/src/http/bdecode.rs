//! A bencode reader, for tests and the load tester: the tracker itself only
//! writes bencode.

use core::fmt;

/// A decoded bencode value, borrowing its strings from the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BValue<'a> {
    Int(i64),
    Bytes(&'a [u8]),
    List(Vec<BValue<'a>>),
    /// Entries in input order.
    Dict(Vec<(&'a [u8], BValue<'a>)>),
}

/// Bounds on what [`BValue::decode_with`] accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Deepest nesting of lists and dictionaries; the decoder recurses, so
    /// this bounds its stack use.
    pub max_depth: usize,
    /// Most values in total, bounding memory beyond the input's size.
    pub max_values: usize,
    /// Refuse dictionaries whose keys are not strictly increasing, as BEP 3
    /// requires of every encoder.
    pub require_sorted_keys: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            max_depth: 32,
            max_values: 1 << 20,
            require_sorted_keys: true,
        }
    }
}

/// Why bencode decoding failed, with the byte offset where it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BDecodeError {
    UnexpectedEnd,
    UnexpectedByte {
        pos: usize,
        byte: u8,
    },
    /// Not a canonical integer: empty, leading zeros, `-0`, or out of range.
    InvalidInt {
        pos: usize,
    },
    /// A string length that is not canonical or runs past the input.
    InvalidLength {
        pos: usize,
    },
    /// A dictionary key that is not a string.
    KeyNotString {
        pos: usize,
    },
    UnsortedKey {
        pos: usize,
    },
    TooDeep {
        pos: usize,
    },
    TooManyValues,
    TrailingData {
        pos: usize,
    },
}

impl fmt::Display for BDecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnexpectedEnd => f.write_str("bencode ends early"),
            Self::UnexpectedByte { pos, byte } => {
                write!(f, "unexpected byte 0x{byte:02x} at {pos}")
            }
            Self::InvalidInt { pos } => write!(f, "invalid integer at {pos}"),
            Self::InvalidLength { pos } => write!(f, "invalid string length at {pos}"),
            Self::KeyNotString { pos } => write!(f, "dictionary key at {pos} is not a string"),
            Self::UnsortedKey { pos } => {
                write!(
                    f,
                    "dictionary key at {pos} is not greater than the one before"
                )
            }
            Self::TooDeep { pos } => write!(f, "nesting too deep at {pos}"),
            Self::TooManyValues => f.write_str("too many values"),
            Self::TrailingData { pos } => write!(f, "trailing data at {pos}"),
        }
    }
}

impl std::error::Error for BDecodeError {}

struct BDecoder<'a> {
    input: &'a [u8],
    pos: usize,
    values: usize,
    options: DecodeOptions,
}

impl<'a> BDecoder<'a> {
    fn peek(&self) -> Result<u8, BDecodeError> {
        self.input
            .get(self.pos)
            .copied()
            .ok_or(BDecodeError::UnexpectedEnd)
    }

    /// Digits up to `end`, as a canonical decimal: no sign, no leading zero.
    fn digits_until(&mut self, end: u8) -> Result<Option<u64>, BDecodeError> {
        let start = self.pos;
        let rest = self.input.get(start..).unwrap_or(&[]);
        let len = rest
            .iter()
            .position(|&b| b == end)
            .ok_or(BDecodeError::UnexpectedEnd)?;
        let digits = &rest[..len];
        self.pos = start + len + 1;
        let canonical = !digits.is_empty()
            && digits.iter().all(u8::is_ascii_digit)
            && (digits[0] != b'0' || digits.len() == 1);
        if !canonical {
            return Ok(None);
        }
        Ok(digits.iter().try_fold(0u64, |acc, &d| {
            acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        }))
    }

    fn value(&mut self, depth: usize) -> Result<BValue<'a>, BDecodeError> {
        self.values += 1;
        if self.values > self.options.max_values {
            return Err(BDecodeError::TooManyValues);
        }
        let start = self.pos;
        match self.peek()? {
            b'i' => {
                self.pos += 1;
                let negative = self.peek()? == b'-';
                if negative {
                    self.pos += 1;
                }
                let invalid = BDecodeError::InvalidInt { pos: start };
                let magnitude = self.digits_until(b'e')?.ok_or(invalid)?;
                let value = if negative {
                    if magnitude == 0 {
                        return Err(invalid);
                    }
                    0i64.checked_sub_unsigned(magnitude).ok_or(invalid)?
                } else {
                    i64::try_from(magnitude).map_err(|_| invalid)?
                };
                Ok(BValue::Int(value))
            }
            b'0'..=b'9' => self.bytes().map(BValue::Bytes),
            b'l' | b'd' if depth >= self.options.max_depth => {
                Err(BDecodeError::TooDeep { pos: start })
            }
            b'l' => {
                self.pos += 1;
                let mut items = Vec::new();
                while self.peek()? != b'e' {
                    items.push(self.value(depth + 1)?);
                }
                self.pos += 1;
                Ok(BValue::List(items))
            }
            b'd' => {
                self.pos += 1;
                let mut entries: Vec<(&'a [u8], BValue<'a>)> = Vec::new();
                while self.peek()? != b'e' {
                    let key_pos = self.pos;
                    if !self.peek()?.is_ascii_digit() {
                        return Err(BDecodeError::KeyNotString { pos: key_pos });
                    }
                    let key = self.bytes()?;
                    if self.options.require_sorted_keys
                        && entries.last().is_some_and(|(prev, _)| key <= *prev)
                    {
                        return Err(BDecodeError::UnsortedKey { pos: key_pos });
                    }
                    let value = self.value(depth + 1)?;
                    entries.push((key, value));
                }
                self.pos += 1;
                Ok(BValue::Dict(entries))
            }
            byte => Err(BDecodeError::UnexpectedByte { pos: start, byte }),
        }
    }

    fn bytes(&mut self) -> Result<&'a [u8], BDecodeError> {
        let start = self.pos;
        let invalid = BDecodeError::InvalidLength { pos: start };
        let len = self.digits_until(b':')?.ok_or(invalid)?;
        let len = usize::try_from(len).map_err(|_| invalid)?;
        let end = self.pos.checked_add(len).ok_or(invalid)?;
        let bytes = self.input.get(self.pos..end).ok_or(invalid)?;
        self.pos = end;
        Ok(bytes)
    }
}

impl<'a> BValue<'a> {
    /// Decodes exactly one value filling `input`, with default limits.
    pub fn decode(input: &'a [u8]) -> Result<Self, BDecodeError> {
        Self::decode_with(input, DecodeOptions::default())
    }

    pub fn decode_with(input: &'a [u8], options: DecodeOptions) -> Result<Self, BDecodeError> {
        let mut d = BDecoder {
            input,
            pos: 0,
            values: 0,
            options,
        };
        let value = d.value(0)?;
        if d.pos != input.len() {
            return Err(BDecodeError::TrailingData { pos: d.pos });
        }
        Ok(value)
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            BValue::Int(v) => Some(*v),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self {
            BValue::Bytes(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_list(&self) -> Option<&[BValue<'a>]> {
        match self {
            BValue::List(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_dict(&self) -> Option<&[(&'a [u8], BValue<'a>)]> {
        match self {
            BValue::Dict(entries) => Some(entries),
            _ => None,
        }
    }

    /// The value under `key` of a dictionary (the first, if repeated).
    pub fn get(&self, key: &[u8]) -> Option<&BValue<'a>> {
        self.as_dict()?
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoder_rejects() {
        use BDecodeError::*;
        let cases: &[(&[u8], BDecodeError)] = &[
            (b"", UnexpectedEnd),
            (b"i12", UnexpectedEnd),
            (b"ie", InvalidInt { pos: 0 }),
            (b"i-0e", InvalidInt { pos: 0 }),
            (b"i03e", InvalidInt { pos: 0 }),
            (b"i-e", InvalidInt { pos: 0 }),
            (b"i+1e", InvalidInt { pos: 0 }),
            (b"i9223372036854775808e", InvalidInt { pos: 0 }),
            (b"5:abc", InvalidLength { pos: 0 }),
            (b"05:abcde", InvalidLength { pos: 0 }),
            (b"99999999999999999999999:a", InvalidLength { pos: 0 }),
            (b"l", UnexpectedEnd),
            (b"di1ei2ee", KeyNotString { pos: 1 }),
            (b"d1:b0:1:a0:e", UnsortedKey { pos: 6 }),
            (b"d1:a0:1:a0:e", UnsortedKey { pos: 6 }),
            (b"x", UnexpectedByte { pos: 0, byte: b'x' }),
            (b"i1ei2e", TrailingData { pos: 3 }),
        ];
        for (input, want) in cases {
            assert_eq!(
                BValue::decode(input),
                Err(*want),
                "{:?}",
                input.escape_ascii()
            );
            assert!(!want.to_string().is_empty());
        }
        assert_eq!(
            BValue::decode(b"i-9223372036854775808e"),
            Ok(BValue::Int(i64::MIN))
        );
        let deep = [b"l".repeat(33), b"e".repeat(33)].concat();
        assert_eq!(BValue::decode(&deep), Err(TooDeep { pos: 32 }));
        let ok = [b"l".repeat(32), b"e".repeat(32)].concat();
        assert!(BValue::decode(&ok).is_ok());
        let lenient = DecodeOptions {
            require_sorted_keys: false,
            max_values: 3,
            ..DecodeOptions::default()
        };
        assert!(BValue::decode_with(b"d1:b0:1:a0:e", lenient).is_ok());
        assert_eq!(
            BValue::decode_with(b"li1ei2ei3ee", lenient),
            Err(TooManyValues)
        );
    }

    #[test]
    fn decoder_accessors() {
        let v = BValue::decode(b"d1:ai-3e1:bl0:e1:cdee").unwrap();
        assert_eq!(v.get(b"a").and_then(BValue::as_int), Some(-3));
        assert_eq!(
            v.get(b"b").and_then(BValue::as_list),
            Some(&[BValue::Bytes(b"")][..])
        );
        assert_eq!(v.get(b"c").and_then(BValue::as_dict), Some(&[][..]));
        assert_eq!(v.get(b"d"), None);
        assert_eq!(v.get(b"a").and_then(BValue::as_bytes), None);
        assert_eq!(BValue::Int(1).get(b"a"), None);
    }
}
