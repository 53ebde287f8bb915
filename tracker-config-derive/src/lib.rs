//! `#[derive(ConfigDocs)]`: the comments of `-p` (the default config printed
//! as commented TOML) come from the config structs' own `///` doc comments,
//! so each setting is described in one place instead of in its field and
//! again in a hand-kept table that drifts.
//!
//! Use it through `tracker_config`, which re-exports the derive next to the
//! [`ConfigDocs`](../tracker_config/trait.ConfigDocs.html) trait it
//! implements and the writer that reads it.
//!
//! # What it reads
//!
//! - The doc comment of each field is the comment printed above its key, one
//!   `#` line per doc line (one leading space stripped, so indentation
//!   inside a comment survives; an empty `///` line prints as `#`).
//! - The doc comment of the struct is the comment printed above a
//!   `[section]` of that type. A field marked `#[config(section)]` is such a
//!   section: its keys are listed under a dotted prefix, recursively. A doc
//!   comment on the section field itself, if any, replaces the struct's for
//!   that one place (useful when one struct serves two sections).
//! - serde's `rename = "…"` on a field and `rename_all = "…"` on the struct
//!   give the key its printed name; `skip`/`skip_serializing` fields are left
//!   out; a `#[serde(flatten)]` field lists its type's keys at the current
//!   level.
//! - An enum used as a value can derive `ConfigDocs` too: each unit
//!   variant's doc comment describes that value, named as serde writes it
//!   (`rename_all`, `rename`, `skip` respected). A field of that enum marked
//!   `#[config(values)]` prints its own doc comment followed by one
//!   `- value: doc` line per variant, so the list of accepted values cannot
//!   drift from the enum. Without the attribute the enum is a plain key and
//!   needs no derive.
//!
//! Missing documentation is a compile error, not a bare key in `-p`: every
//! deriving struct and every printed field needs a doc comment.
//!
//! ```compile_fail
//! use tracker_config::ConfigDocs;
//! /// A section.
//! #[derive(ConfigDocs)]
//! struct Section {
//!     undocumented: u32,
//! }
//! ```
//!
//! ```compile_fail
//! use tracker_config::ConfigDocs;
//! #[derive(ConfigDocs)]
//! struct NoStructDoc {
//!     /// Documented.
//!     key: u32,
//! }
//! ```
//!
//!
//! ```compile_fail
//! use tracker_config::ConfigDocs;
//! #[derive(ConfigDocs)]
//! enum Mode {
//!     /// Documented.
//!     On,
//!     Off,
//! }
//! ```
//!
//! `#[config(values)]` on a field whose type is not such an enum (a struct
//! has no values) fails to compile as well:
//!
//! ```compile_fail
//! use tracker_config::ConfigDocs;
//! /// A section.
//! #[derive(ConfigDocs)]
//! struct Inner {
//!     /// Documented.
//!     key: u32,
//! }
//! /// The root.
//! #[derive(ConfigDocs)]
//! struct Root {
//!     /// Not an enum.
//!     #[config(values)]
//!     inner: Inner,
//! }
//! fn main() {
//!     tracker_config::key_docs::<Root>();
//! }
//! ```
//!
//! A field whose type is a section but lacks `#[config(section)]` compiles
//! (the derive cannot see types), prints as one key with its sub-keys
//! uncommented, and fails `tracker_config::undocumented_keys`: keep the
//! test in step 5 below.
//!
//! # Recipe: converting a config module with a `COMMENTS` table
//!
//! 1. Depend on `tracker-config` (already the case) and add
//!    `use tracker_config::ConfigDocs;`.
//! 2. Add `ConfigDocs` to the `#[derive(…)]` of the root struct and of every
//!    section struct. Enums used as values need nothing: they are leaves.
//!    Optionally, where a comment lists an enum's values by hand (say
//!    `off, error, warn, …`), derive `ConfigDocs` on the enum, document each
//!    variant, mark the field `#[config(values)]` and drop the hand-kept
//!    list from its comment (this changes the `-p` layout of that comment).
//! 3. For each entry of the table, make its text the doc comment of the
//!    field (or, for a section entry, of the section struct) with the same
//!    line breaks: each `\n` of the table string starts a new `///` line.
//!    Where the old doc comment said something the table did not, merge it
//!    in; the doc comment is now the only source. Give the root struct a doc
//!    comment too (it is never printed: `-p` opens with its own header).
//!    Where comments name a section as `[tls]`, add
//!    `#![allow(rustdoc::broken_intra_doc_links)]` to the module: rustdoc
//!    takes it for a link, the operator reads a TOML section.
//! 4. Mark each field whose type is a section struct `#[config(section)]`,
//!    remove a doc comment on it unless it should override the struct's.
//! 5. Replace the printing body with
//!    `tracker_config::commented_toml(self, HEADER)` and delete the
//!    `COMMENTS` table and its `comment_for` helper. Replace the "every key
//!    has a comment" test by one asserting
//!    `tracker_config::undocumented_keys::<Config>(&table)` is empty for the
//!    serialized default (it catches a section field missing its
//!    attribute); keep the round-trip tests.
//! 6. Diff the `-p` output before and after: it should be identical but for
//!    the comments you changed on purpose.
//!
//! ```
//! use serde::Serialize;
//! use tracker_config::ConfigDocs;
//!
//! /// The whole file.
//! #[derive(Default, Serialize, ConfigDocs)]
//! struct Config {
//!     /// Least severe level logged.
//!     log_level: String,
//!     #[config(section)]
//!     swarm: Swarm,
//! }
//!
//! /// The swarm store.
//! #[derive(Default, Serialize, ConfigDocs)]
//! struct Swarm {
//!     /// Request workers;
//!     /// 1 to 1024.
//!     workers: u32,
//! }
//!
//! let text = tracker_config::commented_toml(&Config::default(), "# header\n");
//! assert_eq!(
//!     text,
//!     "# header\n\n# Least severe level logged.\nlog_level = \"\"\n\
//!      \n# The swarm store.\n[swarm]\n\n# Request workers;\n# 1 to 1024.\nworkers = 0\n"
//! );
//! ```
#![forbid(unsafe_code)]

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::quote;
use syn::{parse_macro_input, spanned::Spanned, Attribute, Data, DeriveInput, Fields, LitStr};

/// Implements `tracker_config::ConfigDocs` from the doc comments of the
/// struct and its fields; see the crate documentation.
#[proc_macro_derive(ConfigDocs, attributes(config))]
pub fn derive_config_docs(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

fn expand(input: &DeriveInput) -> syn::Result<TokenStream2> {
    let name = &input.ident;
    let (doc, values, pushes) = match &input.data {
        Data::Struct(data) => {
            let Fields::Named(fields) = &data.fields else {
                return Err(syn::Error::new(
                    data.fields.span(),
                    "ConfigDocs needs named fields: each is a TOML key",
                ));
            };
            let doc = doc_text(&input.attrs).ok_or_else(|| {
                syn::Error::new(
                    name.span(),
                    format!(
                        "`{name}` needs a doc comment: it is the comment printed above a section \
                         of this type"
                    ),
                )
            })?;
            (doc, Vec::new(), struct_fields(input, fields)?)
        }
        Data::Enum(data) => {
            let doc = doc_text(&input.attrs).unwrap_or_default();
            (doc, enum_values(input, data)?, Vec::new())
        }
        Data::Union(_) => {
            return Err(syn::Error::new(
                Span::call_site(),
                "ConfigDocs is for config structs and the enums of their values",
            ))
        }
    };
    let values = values.iter().map(|(value, doc)| quote! { (#value, #doc) });

    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        impl #impl_generics ::tracker_config::ConfigDocs for #name #ty_generics #where_clause {
            const DOC: &'static str = #doc;
            const VALUES: &'static [(&'static str, &'static str)] = &[#(#values),*];
            fn key_docs(
                prefix: &str,
                out: &mut ::std::vec::Vec<::tracker_config::KeyDoc>,
            ) {
                let _ = (&prefix, &out);
                #(#pushes)*
            }
        }
    })
}

/// The statements that push each field's `(path, comment)`.
fn struct_fields(input: &DeriveInput, fields: &syn::FieldsNamed) -> syn::Result<Vec<TokenStream2>> {
    let rename_all = serde_container(&input.attrs)?;
    let mut pushes = Vec::new();
    for field in &fields.named {
        let ident = field.ident.as_ref().expect("named field");
        let serde = serde_field(&field.attrs)?;
        if serde.skip {
            continue;
        }
        let kind = config_kind(&field.attrs)?;
        let ty = &field.ty;
        let doc = doc_text(&field.attrs);
        if serde.flatten {
            if doc.is_some() || kind != Kind::Key {
                return Err(syn::Error::new(
                    ident.span(),
                    "a #[serde(flatten)] field prints its type's keys in place: it has no \
                     comment or section of its own",
                ));
            }
            pushes.push(quote! {
                <#ty as ::tracker_config::ConfigDocs>::key_docs(prefix, out);
            });
            continue;
        }
        let key = match serde.rename {
            Some(key) => key,
            None => rename_field(&ident.to_string(), rename_all.as_deref(), ident.span())?,
        };
        if kind == Kind::Section {
            let comment = match doc {
                Some(doc) => quote! { #doc },
                None => quote! { <#ty as ::tracker_config::ConfigDocs>::DOC },
            };
            pushes.push(quote! {
                let path = ::tracker_config::join(prefix, #key);
                out.push((path.clone(), ::std::borrow::Cow::Borrowed(#comment)));
                <#ty as ::tracker_config::ConfigDocs>::key_docs(&path, out);
            });
            continue;
        }
        let doc = doc.ok_or_else(|| {
            syn::Error::new(
                ident.span(),
                format!(
                    "field `{ident}` needs a doc comment: it is the comment printed above key \
                     `{key}` (or mark a section field #[config(section)])"
                ),
            )
        })?;
        let comment = if kind == Kind::Values {
            quote! {
                ::std::borrow::Cow::Owned(::tracker_config::with_values(
                    #doc,
                    const {
                        let values = <#ty as ::tracker_config::ConfigDocs>::VALUES;
                        assert!(
                            !values.is_empty(),
                            "#[config(values)] needs a type that derives ConfigDocs as an enum"
                        );
                        values
                    },
                ))
            }
        } else {
            quote! { ::std::borrow::Cow::Borrowed(#doc) }
        };
        pushes.push(quote! {
            out.push((::tracker_config::join(prefix, #key), #comment));
        });
    }
    Ok(pushes)
}

/// Each unit variant as serde writes it, with its doc comment.
fn enum_values(input: &DeriveInput, data: &syn::DataEnum) -> syn::Result<Vec<(String, String)>> {
    let rename_all = serde_container(&input.attrs)?;
    let mut values = Vec::new();
    for variant in &data.variants {
        let ident = &variant.ident;
        let serde = serde_field(&variant.attrs)?;
        if serde.skip {
            continue;
        }
        if !matches!(variant.fields, Fields::Unit) {
            return Err(syn::Error::new(
                ident.span(),
                "ConfigDocs describes enums of plain values: unit variants only",
            ));
        }
        let value = match serde.rename {
            Some(value) => value,
            None => rename_variant(&ident.to_string(), rename_all.as_deref(), ident.span())?,
        };
        let doc = doc_text(&variant.attrs).ok_or_else(|| {
            syn::Error::new(
                ident.span(),
                format!(
                    "variant `{ident}` needs a doc comment: it is printed after `- {value}:` \
                     where a key takes this enum"
                ),
            )
        })?;
        values.push((value, doc));
    }
    Ok(values)
}

/// The doc comment as comment text: one line per doc line, one leading
/// space stripped (the one after `///`), outer blank lines dropped. `None`
/// when there is none or it is blank.
fn doc_text(attrs: &[Attribute]) -> Option<String> {
    let mut lines = Vec::new();
    for attr in attrs {
        if !attr.path().is_ident("doc") {
            continue;
        }
        let syn::Meta::NameValue(nv) = &attr.meta else {
            continue;
        };
        let syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(s),
            ..
        }) = &nv.value
        else {
            continue;
        };
        for line in s.value().split('\n') {
            let line = line.strip_prefix(' ').unwrap_or(line);
            lines.push(line.trim_end().to_owned());
        }
    }
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let first = lines.iter().position(|l| !l.is_empty())?;
    Some(lines[first..].join("\n"))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A plain key: its doc comment is its comment.
    Key,
    /// `#[config(section)]`: a `[section]` of a ConfigDocs struct.
    Section,
    /// `#[config(values)]`: a key whose comment lists its enum's values.
    Values,
}

/// What `#[config(…)]` makes of a field.
fn config_kind(attrs: &[Attribute]) -> syn::Result<Kind> {
    let mut kind = Kind::Key;
    for attr in attrs.iter().filter(|a| a.path().is_ident("config")) {
        attr.parse_nested_meta(|meta| {
            let this = if meta.path.is_ident("section") {
                Kind::Section
            } else if meta.path.is_ident("values") {
                Kind::Values
            } else {
                return Err(meta.error("expected `section` or `values`"));
            };
            if kind != Kind::Key && kind != this {
                return Err(meta.error("a field is a section or takes values, not both"));
            }
            kind = this;
            Ok(())
        })?;
    }
    Ok(kind)
}

#[derive(Default)]
struct SerdeField {
    rename: Option<String>,
    skip: bool,
    flatten: bool,
}

/// The serde field attributes that change what is printed; the rest are
/// read past.
fn serde_field(attrs: &[Attribute]) -> syn::Result<SerdeField> {
    let mut out = SerdeField::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("serde")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("rename") {
                if meta.input.peek(syn::Token![=]) {
                    out.rename = Some(meta.value()?.parse::<LitStr>()?.value());
                    return Ok(());
                }
                let mut serialize = None;
                meta.parse_nested_meta(|inner| {
                    let value = inner.value()?.parse::<LitStr>()?.value();
                    if inner.path.is_ident("serialize") {
                        serialize = Some(value);
                    }
                    Ok(())
                })?;
                out.rename = serialize.or(out.rename.take());
                return Ok(());
            }
            if meta.path.is_ident("skip") || meta.path.is_ident("skip_serializing") {
                out.skip = true;
            } else if meta.path.is_ident("flatten") {
                out.flatten = true;
            }
            skip_meta_value(&meta)
        })?;
    }
    Ok(out)
}

/// The struct's `rename_all` (its serialize side), if any.
fn serde_container(attrs: &[Attribute]) -> syn::Result<Option<String>> {
    let mut rename_all = None;
    for attr in attrs.iter().filter(|a| a.path().is_ident("serde")) {
        attr.parse_nested_meta(|meta| {
            if !meta.path.is_ident("rename_all") {
                return skip_meta_value(&meta);
            }
            if meta.input.peek(syn::Token![=]) {
                rename_all = Some(meta.value()?.parse::<LitStr>()?.value());
                return Ok(());
            }
            meta.parse_nested_meta(|inner| {
                let value = inner.value()?.parse::<LitStr>()?.value();
                if inner.path.is_ident("serialize") {
                    rename_all = Some(value);
                }
                Ok(())
            })
        })?;
    }
    Ok(rename_all)
}

/// Reads past `= value` or `(…)` of an attribute entry this derive ignores.
fn skip_meta_value(meta: &syn::meta::ParseNestedMeta) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        meta.value()?.parse::<syn::Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        let content;
        syn::parenthesized!(content in meta.input);
        content.parse::<TokenStream2>()?;
    }
    Ok(())
}

/// A snake_case field name as serde's `rename_all` rule prints it.
fn rename_field(field: &str, rule: Option<&str>, span: Span) -> syn::Result<String> {
    let field = field.strip_prefix("r#").unwrap_or(field);
    let words = || field.split('_').filter(|w| !w.is_empty());
    let capitalized = |w: &str| {
        let mut chars = w.chars();
        chars.next().map_or_else(String::new, |c| {
            c.to_uppercase().chain(chars).collect::<String>()
        })
    };
    Ok(match rule {
        None | Some("snake_case") => field.to_owned(),
        Some("lowercase") => field.to_lowercase(),
        Some("UPPERCASE") | Some("SCREAMING_SNAKE_CASE") => field.to_uppercase(),
        Some("kebab-case") => field.replace('_', "-"),
        Some("SCREAMING-KEBAB-CASE") => field.replace('_', "-").to_uppercase(),
        Some("PascalCase") => words().map(capitalized).collect(),
        Some("camelCase") => {
            let pascal: String = words().map(capitalized).collect();
            let mut chars = pascal.chars();
            chars.next().map_or_else(String::new, |c| {
                c.to_lowercase().chain(chars).collect::<String>()
            })
        }
        Some(other) => {
            return Err(syn::Error::new(
                span,
                format!("unknown serde rename_all rule `{other}`"),
            ))
        }
    })
}

/// A PascalCase variant name as serde's `rename_all` rule prints it.
fn rename_variant(variant: &str, rule: Option<&str>, span: Span) -> syn::Result<String> {
    let variant = variant.strip_prefix("r#").unwrap_or(variant);
    let snake = || {
        let mut out = String::new();
        for (i, c) in variant.char_indices() {
            if c.is_uppercase() && i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        }
        out
    };
    Ok(match rule {
        None | Some("PascalCase") => variant.to_owned(),
        Some("lowercase") => variant.to_lowercase(),
        Some("UPPERCASE") => variant.to_uppercase(),
        Some("camelCase") => {
            let mut chars = variant.chars();
            chars.next().map_or_else(String::new, |c| {
                c.to_lowercase().chain(chars).collect::<String>()
            })
        }
        Some("snake_case") => snake(),
        Some("SCREAMING_SNAKE_CASE") => snake().to_uppercase(),
        Some("kebab-case") => snake().replace('_', "-"),
        Some("SCREAMING-KEBAB-CASE") => snake().replace('_', "-").to_uppercase(),
        Some(other) => {
            return Err(syn::Error::new(
                span,
                format!("unknown serde rename_all rule `{other}`"),
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rename_all_rules_match_serde() {
        let r = |rule| rename_field("max_in_flight", Some(rule), Span::call_site()).unwrap();
        assert_eq!(r("snake_case"), "max_in_flight");
        assert_eq!(r("lowercase"), "max_in_flight");
        assert_eq!(r("UPPERCASE"), "MAX_IN_FLIGHT");
        assert_eq!(r("SCREAMING_SNAKE_CASE"), "MAX_IN_FLIGHT");
        assert_eq!(r("kebab-case"), "max-in-flight");
        assert_eq!(r("SCREAMING-KEBAB-CASE"), "MAX-IN-FLIGHT");
        assert_eq!(r("PascalCase"), "MaxInFlight");
        assert_eq!(r("camelCase"), "maxInFlight");
        assert!(rename_field("a", Some("Title Case"), Span::call_site()).is_err());
        let v = |rule| rename_variant("ZeroCopy", Some(rule), Span::call_site()).unwrap();
        assert_eq!(v("PascalCase"), "ZeroCopy");
        assert_eq!(v("lowercase"), "zerocopy");
        assert_eq!(v("UPPERCASE"), "ZEROCOPY");
        assert_eq!(v("camelCase"), "zeroCopy");
        assert_eq!(v("snake_case"), "zero_copy");
        assert_eq!(v("SCREAMING_SNAKE_CASE"), "ZERO_COPY");
        assert_eq!(v("kebab-case"), "zero-copy");
        assert_eq!(v("SCREAMING-KEBAB-CASE"), "ZERO-COPY");
    }

    #[test]
    fn doc_text_keeps_inner_indentation_and_drops_outer_blanks() {
        let input: DeriveInput = syn::parse_quote! {
            ///
            /// First line.
            ///   indented
            ///
            /// After a blank.
            ///
            struct S;
        };
        assert_eq!(
            doc_text(&input.attrs).as_deref(),
            Some("First line.\n  indented\n\nAfter a blank.")
        );
        let bare: DeriveInput = syn::parse_quote! { struct S; };
        assert_eq!(doc_text(&bare.attrs), None);
    }
}
