//! The bencode decoder (tracker-proto `http::BValue`), which reads what
//! HTTP trackers answer in the load generator and the tests.
//!
//! Beyond "no panic": every accepted input is canonical BEP 3 bencode, so
//! encoding the decoded value gives back the input byte for byte; the
//! lenient mode (unsorted keys allowed) accepts everything the strict one
//! does, with the same value; error positions lie within the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracker_proto::http::{BDecodeError, BValue, DecodeOptions};

fn encode(v: &BValue<'_>, out: &mut Vec<u8>) {
    match v {
        BValue::Int(i) => out.extend_from_slice(format!("i{i}e").as_bytes()),
        BValue::Bytes(b) => {
            out.extend_from_slice(format!("{}:", b.len()).as_bytes());
            out.extend_from_slice(b);
        }
        BValue::List(items) => {
            out.push(b'l');
            items.iter().for_each(|i| encode(i, out));
            out.push(b'e');
        }
        BValue::Dict(entries) => {
            out.push(b'd');
            for (k, v) in entries {
                encode(&BValue::Bytes(k), out);
                encode(v, out);
            }
            out.push(b'e');
        }
    }
}

fn error_pos(e: &BDecodeError) -> Option<usize> {
    match *e {
        BDecodeError::UnexpectedEnd | BDecodeError::TooManyValues => None,
        BDecodeError::UnexpectedByte { pos, .. }
        | BDecodeError::InvalidInt { pos }
        | BDecodeError::InvalidLength { pos }
        | BDecodeError::KeyNotString { pos }
        | BDecodeError::UnsortedKey { pos }
        | BDecodeError::TooDeep { pos }
        | BDecodeError::TrailingData { pos } => Some(pos),
    }
}

fuzz_target!(|data: &[u8]| {
    let lenient = DecodeOptions {
        require_sorted_keys: false,
        ..DecodeOptions::default()
    };
    let strict = BValue::decode(data);
    let loose = BValue::decode_with(data, lenient);
    for result in [&strict, &loose] {
        match result {
            Ok(value) => {
                let mut out = Vec::new();
                encode(value, &mut out);
                assert_eq!(out, data, "re-encoding differs from the input");
                if let Some(k) = value.as_dict().and_then(|d| d.first()).map(|(k, _)| *k) {
                    assert!(value.get(k).is_some());
                }
            }
            Err(e) => {
                if let Some(pos) = error_pos(e) {
                    assert!(pos <= data.len(), "{e} beyond {} bytes", data.len());
                }
                let _ = e.to_string();
            }
        }
    }
    if let Ok(value) = &strict {
        assert_eq!(loose.as_ref().ok(), Some(value));
    }
    // A tight depth limit must refuse, not recurse, and never accept what
    // the default refuses.
    let shallow = DecodeOptions {
        max_depth: 2,
        max_values: 64,
        require_sorted_keys: true,
    };
    if let Ok(value) = BValue::decode_with(data, shallow) {
        assert_eq!(strict.as_ref().ok(), Some(&value));
    }
});
