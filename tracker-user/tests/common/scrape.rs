//! Reading the admin listener as a monitoring system would: `/metrics`
//! parsed from its Prometheus text, `/stats.json` as JSON.

use std::net::SocketAddr;

/// One sample line of `/metrics`.
#[derive(Clone, Debug)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// A parsed `/metrics` answer.
#[derive(Clone, Debug)]
pub struct Exposition {
    pub text: String,
    pub samples: Vec<Sample>,
}

impl Exposition {
    pub fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| parse_sample(l).unwrap_or_else(|| panic!("not a sample line: {l:?}")))
            .collect();
        Self {
            text: text.to_owned(),
            samples,
        }
    }

    /// The sample of `name` with exactly these labels (in any order).
    pub fn find(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| {
                s.name == name
                    && s.labels.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
            })
            .map(|s| s.value)
    }

    /// Like [`find`](Self::find), as an integer; panics, showing the
    /// whole exposition, when the series is absent.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let v = self
            .find(name, labels)
            .unwrap_or_else(|| panic!("no {name}{labels:?} in /metrics:\n{}", self.text));
        assert!(v >= 0.0 && v.fract() == 0.0, "{name}{labels:?} = {v}");
        v as u64
    }

    /// Every sample of `name`, whatever its labels.
    pub fn all(&self, name: &str) -> Vec<&Sample> {
        self.samples.iter().filter(|s| s.name == name).collect()
    }
}

fn parse_sample(line: &str) -> Option<Sample> {
    let (series, value) = line.rsplit_once(' ')?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    let Some((name, rest)) = series.split_once('{') else {
        return Some(Sample {
            name: series.to_owned(),
            labels: Vec::new(),
            value,
        });
    };
    let body = rest.strip_suffix('}')?;
    let mut labels = Vec::new();
    let mut chars = body.chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
        if chars.next()? != '"' {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '"' => break,
                '\\' => match chars.next()? {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                c => value.push(c),
            }
        }
        labels.push((key, value));
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// `GET /metrics` from the admin listener at `admin`.
pub fn metrics(admin: SocketAddr) -> Exposition {
    let r = super::http::get(admin, "/metrics");
    assert_eq!(r.status, 200, "{}", r.body_text());
    Exposition::parse(std::str::from_utf8(&r.body).expect("/metrics is UTF-8"))
}

/// `GET /stats.json` from the admin listener at `admin`.
pub fn stats_json(admin: SocketAddr) -> serde_json::Value {
    let r = super::http::get(admin, "/stats.json");
    assert_eq!(r.status, 200, "{}", r.body_text());
    serde_json::from_slice(&r.body).expect("/stats.json is JSON")
}
