//! A strict bencode decoder, written for the tests independently of
//! `tracker-proto`: it refuses anything a conforming encoder would not
//! write (unsorted or duplicate dictionary keys, leading zeros, `-0`,
//! trailing bytes), so a response that decodes here is well-formed.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub enum Value {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    /// Keys in the order they came (checked to be sorted and unique).
    Dict(Vec<(Vec<u8>, Value)>),
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Bytes(b) => write!(f, "b\"{}\"", b.escape_ascii()),
            Value::List(l) => f.debug_list().entries(l).finish(),
            Value::Dict(d) => {
                let mut m = f.debug_map();
                for (k, v) in d {
                    m.entry(&format_args!("\"{}\"", k.escape_ascii()), v);
                }
                m.finish()
            }
        }
    }
}

impl Value {
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(d) => d.iter().find(|(k, _)| k == key.as_bytes()).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn keys(&self) -> Vec<String> {
        match self {
            Value::Dict(d) => d
                .iter()
                .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
                .collect(),
            other => panic!("not a dictionary: {other:?}"),
        }
    }

    pub fn int(&self) -> i64 {
        match self {
            Value::Int(i) => *i,
            other => panic!("not an integer: {other:?}"),
        }
    }

    pub fn bytes(&self) -> &[u8] {
        match self {
            Value::Bytes(b) => b,
            other => panic!("not a byte string: {other:?}"),
        }
    }

    pub fn list(&self) -> &[Value] {
        match self {
            Value::List(l) => l,
            other => panic!("not a list: {other:?}"),
        }
    }

    pub fn dict(&self) -> &[(Vec<u8>, Value)] {
        match self {
            Value::Dict(d) => d,
            other => panic!("not a dictionary: {other:?}"),
        }
    }

    /// The integer at `key` of a dictionary; panics naming the key.
    pub fn int_at(&self, key: &str) -> i64 {
        self.get(key)
            .unwrap_or_else(|| panic!("no `{key}` in {self:?}"))
            .int()
    }

    pub fn bytes_at(&self, key: &str) -> &[u8] {
        self.get(key)
            .unwrap_or_else(|| panic!("no `{key}` in {self:?}"))
            .bytes()
    }
}

/// Decodes exactly one value filling all of `buf`; Err says what is wrong
/// and where.
pub fn decode(buf: &[u8]) -> Result<Value, String> {
    let mut p = Parser { buf, at: 0 };
    let v = p.value(0)?;
    if p.at != buf.len() {
        return Err(format!(
            "{} trailing bytes after the value at offset {}",
            buf.len() - p.at,
            p.at
        ));
    }
    Ok(v)
}

/// Like [`decode`], panicking with the whole text on error.
pub fn decode_ok(buf: &[u8]) -> Value {
    decode(buf).unwrap_or_else(|e| panic!("bad bencode ({e}): b\"{}\"", buf.escape_ascii()))
}

struct Parser<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Result<u8, String> {
        self.buf
            .get(self.at)
            .copied()
            .ok_or_else(|| format!("unexpected end at offset {}", self.at))
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > 64 {
            return Err("nested too deep".into());
        }
        match self.peek()? {
            b'i' => {
                self.at += 1;
                let n = self.digits(b'e', true)?;
                Ok(Value::Int(n))
            }
            b'0'..=b'9' => Ok(Value::Bytes(self.string()?)),
            b'l' => {
                self.at += 1;
                let mut items = Vec::new();
                while self.peek()? != b'e' {
                    items.push(self.value(depth + 1)?);
                }
                self.at += 1;
                Ok(Value::List(items))
            }
            b'd' => {
                self.at += 1;
                let mut items: Vec<(Vec<u8>, Value)> = Vec::new();
                while self.peek()? != b'e' {
                    let key_at = self.at;
                    if !self.peek()?.is_ascii_digit() {
                        return Err(format!("dictionary key is not a string at offset {key_at}"));
                    }
                    let key = self.string()?;
                    if let Some((prev, _)) = items.last() {
                        if *prev >= key {
                            return Err(format!(
                                "dictionary key \"{}\" at offset {key_at} is not after \"{}\" (keys must be sorted and unique)",
                                key.escape_ascii(),
                                prev.escape_ascii()
                            ));
                        }
                    }
                    let v = self.value(depth + 1)?;
                    items.push((key, v));
                }
                self.at += 1;
                Ok(Value::Dict(items))
            }
            other => Err(format!(
                "unexpected byte {:?} at offset {}",
                other as char, self.at
            )),
        }
    }

    /// A decimal number ended by `end`; canonical form only.
    fn digits(&mut self, end: u8, signed: bool) -> Result<i64, String> {
        let start = self.at;
        let rel = self.buf[start..]
            .iter()
            .position(|&b| b == end)
            .ok_or_else(|| format!("number at offset {start} never ends"))?;
        let text = &self.buf[start..start + rel];
        self.at = start + rel + 1;
        let (neg, digits) = match text.split_first() {
            Some((b'-', rest)) if signed => (true, rest),
            _ => (false, text),
        };
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err(format!(
                "bad number \"{}\" at offset {start}",
                text.escape_ascii()
            ));
        }
        if (digits.len() > 1 && digits[0] == b'0') || (neg && digits == b"0") {
            return Err(format!(
                "non-canonical number \"{}\" at offset {start}",
                text.escape_ascii()
            ));
        }
        let n: i64 = std::str::from_utf8(text)
            .unwrap()
            .parse()
            .map_err(|e| format!("number at offset {start}: {e}"))?;
        Ok(n)
    }

    fn string(&mut self) -> Result<Vec<u8>, String> {
        let at = self.at;
        let len = self.digits(b':', false)? as usize;
        let end = self
            .at
            .checked_add(len)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| format!("string of {len} bytes at offset {at} runs past the end"))?;
        let s = self.buf[self.at..end].to_vec();
        self.at = end;
        Ok(s)
    }
}
