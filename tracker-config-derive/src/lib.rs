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
//! A field whose type is a section but lacks `#[config(section)]` compiles
//! (the derive cannot see types), prints as one key with its sub-keys
//! uncommented, and fails [`tracker_config::undocumented_keys`]: keep the
//! test in step 5 below.
//!
//! # Recipe: converting a config module with a `COMMENTS` table
//!
//! 1. Depend on `tracker-config` (already the case) and add
//!    `use tracker_config::ConfigDocs;`.
//! 2. Add `ConfigDocs` to the `#[derive(…)]` of the root struct and of every
//!    section struct. Enums used as values need nothing: they are leaves.
//! 3. For each entry of the table, make its text the doc comment of the
//!    field (or, for a section entry, of the section struct) with the same
//!    line breaks: each `\n` of the table string starts a new `///` line.
//!    Where the old doc comment said something the table did not, merge it
//!    in; the doc comment is now the only source. Give the root struct a doc
//!    comment too (it is never printed: `-p` opens with its own header).
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
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new(
            Span::call_site(),
            "ConfigDocs is for structs with named fields; enum values are plain keys",
        ));
    };
    let Fields::Named(fields) = &data.fields else {
        return Err(syn::Error::new(
            data.fields.span(),
            "ConfigDocs needs named fields: each is a TOML key",
        ));
    };
    let struct_doc = doc_text(&input.attrs).ok_or_else(|| {
        syn::Error::new(
            name.span(),
            format!(
                "`{name}` needs a doc comment: it is the comment printed above a section of this type"
            ),
        )
    })?;
    let rename_all = serde_container(&input.attrs)?;

    let mut pushes = Vec::new();
    for field in &fields.named {
        let ident = field.ident.as_ref().expect("named field");
        let serde = serde_field(&field.attrs)?;
        if serde.skip {
            continue;
        }
        let section = config_section(&field.attrs)?;
        let ty = &field.ty;
        let doc = doc_text(&field.attrs);
        if serde.flatten {
            if doc.is_some() || section {
                return Err(syn::Error::new(
                    ident.span(),
                    "a #[serde(flatten)] field prints its type's keys in place: it has no comment or \
                     section of its own",
                ));
            }
            pushes.push(quote! {
                <#ty as ::tracker_config::ConfigDocs>::key_docs(prefix, out);
            });
            continue;
        }
        let key = match serde.rename {
            Some(key) => key,
            None => rename(&ident.to_string(), rename_all.as_deref(), ident.span())?,
        };
        if section {
            let comment = match doc {
                Some(doc) => quote! { #doc },
                None => quote! { <#ty as ::tracker_config::ConfigDocs>::DOC },
            };
            pushes.push(quote! {
                let path = ::tracker_config::join(prefix, #key);
                out.push((path.clone(), #comment));
                <#ty as ::tracker_config::ConfigDocs>::key_docs(&path, out);
            });
        } else {
            let doc = doc.ok_or_else(|| {
                syn::Error::new(
                    ident.span(),
                    format!(
                        "field `{ident}` needs a doc comment: it is the comment printed above key \
                         `{key}` (or mark a section field #[config(section)])"
                    ),
                )
            })?;
            pushes.push(quote! {
                out.push((::tracker_config::join(prefix, #key), #doc));
            });
        }
    }

    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        impl #impl_generics ::tracker_config::ConfigDocs for #name #ty_generics #where_clause {
            const DOC: &'static str = #struct_doc;
            fn key_docs(
                prefix: &str,
                out: &mut ::std::vec::Vec<(::std::string::String, &'static str)>,
            ) {
                #(#pushes)*
            }
        }
    })
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

/// Whether the field carries `#[config(section)]`.
fn config_section(attrs: &[Attribute]) -> syn::Result<bool> {
    let mut section = false;
    for attr in attrs.iter().filter(|a| a.path().is_ident("config")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("section") {
                section = true;
                Ok(())
            } else {
                Err(meta.error("expected `section`"))
            }
        })?;
    }
    Ok(section)
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
fn rename(field: &str, rule: Option<&str>, span: Span) -> syn::Result<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rename_all_rules_match_serde() {
        let r = |rule| rename("max_in_flight", Some(rule), Span::call_site()).unwrap();
        assert_eq!(r("snake_case"), "max_in_flight");
        assert_eq!(r("lowercase"), "max_in_flight");
        assert_eq!(r("UPPERCASE"), "MAX_IN_FLIGHT");
        assert_eq!(r("SCREAMING_SNAKE_CASE"), "MAX_IN_FLIGHT");
        assert_eq!(r("kebab-case"), "max-in-flight");
        assert_eq!(r("SCREAMING-KEBAB-CASE"), "MAX-IN-FLIGHT");
        assert_eq!(r("PascalCase"), "MaxInFlight");
        assert_eq!(r("camelCase"), "maxInFlight");
        assert!(rename("a", Some("Title Case"), Span::call_site()).is_err());
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
