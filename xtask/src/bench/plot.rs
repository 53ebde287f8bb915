//! The scaling plot of `bench scale`: responses/s and bytes per peer
//! against peers, one line per (system, torrent count), as an SVG.
//!
//! plotters with its SVG backend only and no font feature: text goes into
//! the SVG as `<text>` elements for the viewer to render (layout uses
//! plotters' built-in size estimate), so neither building nor running
//! needs fontconfig or a font file.

use std::collections::BTreeSet;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

/// One point of the grid, one system: the medians the plot shows.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub system: String,
    pub torrents: u32,
    pub peers: u32,
    pub responses_per_s: f64,
    pub bytes_per_peer: f64,
}

/// One line of a panel: a system at one torrent count, over peers (in
/// millions), sorted, without missing values.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    pub system: String,
    pub torrents: u32,
    pub points: Vec<(f64, f64)>,
}

/// The lines of one panel: `metric` of every summary, grouped by system
/// (in the order of `systems`) and torrent count (ascending). Points whose
/// metric is not finite are left out, and lines left empty too.
pub fn lines(summaries: &[Summary], systems: &[&str], metric: fn(&Summary) -> f64) -> Vec<Line> {
    let torrents: BTreeSet<u32> = summaries.iter().map(|s| s.torrents).collect();
    let mut out = Vec::new();
    for system in systems {
        for &t in &torrents {
            let mut points: Vec<(f64, f64)> = summaries
                .iter()
                .filter(|s| s.system == *system && s.torrents == t)
                .map(|s| (f64::from(s.peers) / 1e6, metric(s)))
                .filter(|(_, y)| y.is_finite())
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            if !points.is_empty() {
                out.push(Line {
                    system: (*system).to_owned(),
                    torrents: t,
                    points,
                });
            }
        }
    }
    out
}

/// "10k", "1M", "0.1M": a count as the plot and the tables label it.
pub fn short_count(n: u32) -> String {
    let n = f64::from(n);
    if n >= 1e5 {
        format!("{}M", trim(n / 1e6))
    } else if n >= 1e3 {
        format!("{}k", trim(n / 1e3))
    } else {
        trim(n)
    }
}

/// Axis labels on a log scale: 1, 2 and 4 of each decade (the grid's peer
/// counts are 0.1, 1, 2 and 4 million), no others (plotters would label
/// every tenth and crowd them).
fn log_label(x: f64) -> String {
    if x <= 0.0 || !x.is_finite() {
        return String::new();
    }
    let mantissa = x / 10f64.powf(x.log10().floor());
    let nice = [1.0, 2.0, 4.0, 10.0]
        .iter()
        .any(|m| (mantissa - m).abs() < 1e-6 * m);
    if nice {
        trim(x)
    } else {
        String::new()
    }
}

/// The medians of a `scale` section's results table, as the plot takes
/// them: the rows of the first table with columns torrents, peers,
/// system, responses/s and bytes per peer. Counts read as the table
/// writes them (10k, 0.1M); cells like `260,097 (243,984–264,824)` by
/// their first number.
pub fn summaries_from_markdown(section: &str) -> Vec<Summary> {
    let mut columns: Option<[usize; 5]> = None;
    let mut out = Vec::new();
    for line in section.lines() {
        let cells: Vec<&str> = match line.trim().strip_prefix('|') {
            Some(rest) => rest
                .trim_end_matches('|')
                .split('|')
                .map(str::trim)
                .collect(),
            None => {
                if columns.is_some() && !out.is_empty() {
                    break;
                }
                continue;
            }
        };
        let Some(cols) = columns else {
            let find = |name: &str| cells.iter().position(|c| *c == name);
            if let (Some(t), Some(p), Some(s), Some(r), Some(b)) = (
                find("torrents"),
                find("peers"),
                find("system"),
                find("responses/s"),
                find("bytes per peer"),
            ) {
                columns = Some([t, p, s, r, b]);
            }
            continue;
        };
        let cell = |i: usize| cells.get(cols[i]).copied().unwrap_or("");
        let first_number = |c: &str| -> f64 {
            c.split_whitespace()
                .next()
                .and_then(|n| n.replace(',', "").parse().ok())
                .unwrap_or(f64::NAN)
        };
        let (Some(torrents), Some(peers)) = (parse_short(cell(0)), parse_short(cell(1))) else {
            continue;
        };
        out.push(Summary {
            system: cell(2).to_owned(),
            torrents,
            peers,
            responses_per_s: first_number(cell(3)),
            bytes_per_peer: first_number(cell(4)),
        });
    }
    out
}

/// The inverse of [`short_count`].
fn parse_short(s: &str) -> Option<u32> {
    let (number, unit) = match s.as_bytes().last()? {
        b'k' => (&s[..s.len() - 1], 1e3),
        b'M' => (&s[..s.len() - 1], 1e6),
        _ => (s, 1.0),
    };
    let x: f64 = number.parse().ok()?;
    Some((x * unit).round() as u32)
}

fn trim(x: f64) -> String {
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// The smallest and largest x and y of `lines`, with `pad` of the y span
/// added above (room for the legend) and a tenth of it below when y goes
/// below 0; y starts at 0 otherwise.
pub fn bounds(lines: &[Line], pad: f64) -> Option<((f64, f64), (f64, f64))> {
    let all = || lines.iter().flat_map(|l| l.points.iter());
    let x0 = all().map(|p| p.0).reduce(f64::min)?;
    let x1 = all().map(|p| p.0).reduce(f64::max)?;
    let y0 = all().map(|p| p.1).reduce(f64::min)?.min(0.0);
    let y1 = all().map(|p| p.1).reduce(f64::max)?.max(0.0);
    let span = (y1 - y0).max(1.0);
    let low = if y0 < 0.0 { y0 - 0.1 * span } else { 0.0 };
    Some(((x0, x1), (low, y1 + pad * span)))
}

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// The two panels side by side, as SVG text. `systems[0]` is drawn solid,
/// the others dashed; colours tell torrent counts apart.
pub fn svg(summaries: &[Summary], systems: &[&str], title: &str) -> Result<String> {
    let rps = lines(summaries, systems, |s| s.responses_per_s);
    let bpp = lines(summaries, systems, |s| s.bytes_per_peer);
    let torrents: Vec<u32> = summaries
        .iter()
        .map(|s| s.torrents)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (1200, 520)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let root = root.titled(title, ("sans-serif", 20)).map_err(err)?;
        let panels = root.split_evenly((1, 2));
        panel(
            &panels[0],
            &rps,
            systems,
            &torrents,
            "responses/s",
            "responses/s",
            |v| format!("{:.0}k", v / 1e3),
        )?;
        panel(
            &panels[1],
            &bpp,
            systems,
            &torrents,
            "bytes per peer held (RSS growth over the prefill)",
            "bytes per peer",
            |v| format!("{v:.0}"),
        )?;
        root.present().map_err(err)?;
    }
    Ok(out)
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing the plot: {e:?}")
}

fn panel(
    area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    lines: &[Line],
    systems: &[&str],
    torrents: &[u32],
    caption: &str,
    y_desc: &str,
    y_label: fn(&f64) -> String,
) -> Result<()> {
    // Half the data's span again on top: the legend's room.
    let Some(((x0, x1), (y0, y1))) = bounds(lines, 0.5) else {
        area.draw(&Text::new(
            format!("{caption}: no data"),
            (40, 40),
            ("sans-serif", 16),
        ))
        .map_err(err)?;
        return Ok(());
    };
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d((x0 * 0.85..x1 * 1.15).log_scale(), y0..y1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("peers (millions, log scale)")
        .y_desc(y_desc)
        .x_label_formatter(&|v| log_label(*v))
        .y_label_formatter(&y_label)
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(err)?;
    for line in lines {
        let colour = torrents
            .iter()
            .position(|&t| t == line.torrents)
            .map_or(BLACK, |i| PALETTE[i % PALETTE.len()]);
        let label = format!("{}, {} torrents", line.system, short_count(line.torrents));
        let pts = line.points.clone();
        let style = colour.stroke_width(2);
        if systems.first() == Some(&line.system.as_str()) {
            chart
                .draw_series(LineSeries::new(pts.clone(), style))
                .map_err(err)?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 4, colour.filled())))
                .map_err(err)?;
        } else {
            chart
                .draw_series(DashedLineSeries::new(pts.clone(), 7, 5, style))
                .map_err(err)?
                .label(label)
                .legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + PathElement::new(vec![(0, 0), (9, 0)], style)
                        + PathElement::new(vec![(15, 0), (24, 0)], style)
                });
            chart
                .draw_series(
                    pts.iter()
                        .map(|&p| Circle::new(p, 4, colour.stroke_width(2))),
                )
                .map_err(err)?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(system: &str, torrents: u32, peers: u32, rps: f64, bpp: f64) -> Summary {
        Summary {
            system: system.to_owned(),
            torrents,
            peers,
            responses_per_s: rps,
            bytes_per_peer: bpp,
        }
    }

    fn sample() -> Vec<Summary> {
        vec![
            s("b", 1_000_000, 2_000_000, 200e3, 90.0),
            s("a", 1_000_000, 4_000_000, 240e3, 50.0),
            s("a", 10_000, 100_000, 300e3, f64::NAN),
            s("a", 1_000_000, 100_000, 280e3, 70.0),
            s("b", 10_000, 100_000, 250e3, 120.0),
            s("a", 10_000, 1_000_000, 290e3, 40.0),
        ]
    }

    #[test]
    fn lines_group_sort_and_drop_missing_values() {
        let rps = lines(&sample(), &["a", "b"], |s| s.responses_per_s);
        let keys: Vec<(&str, u32)> = rps
            .iter()
            .map(|l| (l.system.as_str(), l.torrents))
            .collect();
        assert_eq!(
            keys,
            [
                ("a", 10_000),
                ("a", 1_000_000),
                ("b", 10_000),
                ("b", 1_000_000)
            ]
        );
        assert_eq!(rps[1].points, [(0.1, 280e3), (4.0, 240e3)]);
        // The NaN point is left out of its line, not the whole line.
        let bpp = lines(&sample(), &["a", "b"], |s| s.bytes_per_peer);
        assert_eq!(bpp[0].points, [(1.0, 40.0)]);
        // A system nobody measured has no lines; all-NaN lines vanish.
        assert!(lines(&sample(), &["c"], |s| s.responses_per_s).is_empty());
        assert!(lines(&sample(), &["a"], |_| f64::NAN).is_empty());
    }

    #[test]
    fn bounds_start_at_zero_and_pad_the_top() {
        let l = lines(&sample(), &["a", "b"], |s| s.bytes_per_peer);
        let ((x0, x1), (y0, y1)) = bounds(&l, 0.1).unwrap();
        assert_eq!((x0, x1), (0.1, 4.0));
        assert_eq!(y0, 0.0);
        assert!((y1 - 132.0).abs() < 1e-9, "{y1}");
        let negative = vec![Line {
            system: "a".into(),
            torrents: 1,
            points: vec![(1.0, -10.0), (2.0, 30.0)],
        }];
        let (_, (y0, y1)) = bounds(&negative, 0.1).unwrap();
        assert_eq!((y0, y1), (-14.0, 34.0));
        let (_, (_, y1)) = bounds(&negative, 0.5).unwrap();
        assert_eq!(y1, 50.0);
        assert_eq!(bounds(&[], 0.1), None);
    }

    #[test]
    fn log_labels_skip_the_crowd() {
        let labels: Vec<String> = [0.1, 0.2, 0.3, 0.4, 0.5, 0.8, 0.9, 1.0, 2.0, 4.0]
            .iter()
            .map(|&x| log_label(x))
            .collect();
        assert_eq!(labels, ["0.1", "0.2", "", "0.4", "", "", "", "1", "2", "4"]);
        assert_eq!(log_label(0.0), "");
    }

    #[test]
    fn the_table_reads_back_into_summaries() {
        let section = "## Scaling\n\ntext | not a table\n\n\
            | torrents | peers | system | peers held | responses/s | bytes per peer |\n\
            |---:|---:|---|---:|---:|---:|\n\
            | 10k | 0.1M | a | 99,889 | 260,097 (243,984–264,824) | 89.3 (89.2–91.6) |\n\
            | 1M | 4M | b | 3,998,689 | 210,507 | – |\n\
            \nOurs against aquatic_udp:\n\n\
            | torrents | peers | responses/s, ours / aquatic |\n|---:|---:|---:|\n| 10k | 0.1M | 1.34× |\n";
        let s = summaries_from_markdown(section);
        assert_eq!(s.len(), 2, "{s:?}");
        assert_eq!(
            s[0],
            Summary {
                system: "a".into(),
                torrents: 10_000,
                peers: 100_000,
                responses_per_s: 260_097.0,
                bytes_per_peer: 89.3,
            }
        );
        assert_eq!((s[1].torrents, s[1].peers), (1_000_000, 4_000_000));
        assert!(s[1].bytes_per_peer.is_nan());
        // Every count short_count writes reads back.
        for n in [10_000, 100_000, 1_000_000, 2_500_000, 999] {
            assert_eq!(parse_short(&short_count(n)), Some(n));
        }
        assert!(summaries_from_markdown("no table").is_empty());
    }

    #[test]
    fn short_counts() {
        assert_eq!(short_count(10_000), "10k");
        assert_eq!(short_count(100_000), "0.1M");
        assert_eq!(short_count(1_000_000), "1M");
        assert_eq!(short_count(2_500_000), "2.5M");
        assert_eq!(short_count(999), "999");
    }

    #[test]
    fn the_svg_has_both_panels_and_a_legend_without_fonts() {
        let svg = svg(&sample(), &["a", "b"], "scaling").unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..100.min(svg.len())]);
        for text in [
            "scaling",
            "responses/s",
            "bytes per peer",
            "a, 10k torrents",
            "b, 1M torrents",
            "peers (millions, log scale)",
        ] {
            assert!(svg.contains(text), "no {text:?} in the SVG");
        }
        assert!(svg.contains("stroke-dasharray") || svg.matches("<polyline").count() > 4);
        // No data at all still makes a valid picture.
        let empty = svg_of_nothing();
        assert!(empty.contains("no data"));
    }

    fn svg_of_nothing() -> String {
        svg(&[], &["a"], "empty").unwrap()
    }
}
