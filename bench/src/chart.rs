//! The latency curves as an SVG chart: a panel per path, p99 (log scale) against offered rate,
//! a line per stack and the path's bound dashed. Written by hand: no plotting library.

use std::fmt::Write as _;

/// One panel: its title, its p99 bound, and its lines (label, points of offered rate and p99 ms).
pub struct Panel {
    pub title: String,
    pub bound_ms: f64,
    pub lines: Vec<(String, Vec<(f64, f64)>)>,
}

const W: f64 = 360.0;
const H: f64 = 240.0;
const PAD: f64 = 48.0;
/// The p99 axis: 0.1 ms to 1 s, log scale; an unanswered step is drawn at the top.
const Y_MIN: f64 = 0.1;
const Y_MAX: f64 = 1000.0;
const COLORS: [&str; 2] = ["#d1495b", "#00798c"];

/// The chart of `panels`, three to a row.
pub fn svg(panels: &[Panel]) -> String {
    let cols = 3usize;
    let rows = panels.len().div_ceil(cols);
    let (width, height) = (W * cols as f64, H * rows as f64 + 30.0);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="10" y="18" font-size="13">p99 latency (ms, log) against offered rate (req/s); dashed: the bound</text>"#
    );
    for (i, p) in panels.iter().enumerate() {
        let (x0, y0) = (W * (i % cols) as f64, 30.0 + H * (i / cols) as f64);
        panel(&mut s, p, x0, y0);
    }
    s.push_str("</svg>\n");
    s
}

fn panel(s: &mut String, p: &Panel, x0: f64, y0: f64) {
    let x_max = p
        .lines
        .iter()
        .flat_map(|(_, pts)| pts.iter().map(|(x, _)| *x))
        .fold(1.0, f64::max)
        * 1.05;
    let (left, top, right, bottom) = (x0 + PAD, y0 + 24.0, x0 + W - 12.0, y0 + H - 30.0);
    let sx = |x: f64| left + (right - left) * x / x_max;
    let sy = |ms: f64| {
        let v = if ms.is_finite() {
            ms.clamp(Y_MIN, Y_MAX)
        } else {
            Y_MAX
        };
        bottom - (bottom - top) * (v / Y_MIN).log10() / (Y_MAX / Y_MIN).log10()
    };
    let _ = writeln!(
        s,
        r#"<text x="{left}" y="{}" font-weight="bold">{}</text>"#,
        y0 + 14.0,
        esc(&p.title)
    );
    let _ = writeln!(
        s,
        r#"<rect x="{left}" y="{top}" width="{}" height="{}" fill="none" stroke="gray"/>"#,
        right - left,
        bottom - top
    );
    for ms in [0.1, 1.0, 10.0, 100.0, 1000.0] {
        let y = sy(ms);
        let _ = writeln!(
            s,
            r#"<line x1="{left}" x2="{right}" y1="{y:.1}" y2="{y:.1}" stroke="gainsboro"/>"#
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{ms}</text>"#,
            left - 4.0,
            y + 4.0
        );
    }
    for k in 0..=4 {
        let x = x_max * k as f64 / 4.0;
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{:.0}</text>"#,
            sx(x),
            bottom + 14.0,
            x
        );
    }
    let yb = sy(p.bound_ms);
    let _ = writeln!(
        s,
        r#"<line x1="{left}" x2="{right}" y1="{yb:.1}" y2="{yb:.1}" stroke="dimgray" stroke-dasharray="4 3"/>"#
    );
    for (j, (label, pts)) in p.lines.iter().enumerate() {
        let color = COLORS[j % COLORS.len()];
        let path: Vec<String> = pts
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
            path.join(" ")
        );
        for (x, y) in pts {
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{color}"/>"#,
                sx(*x),
                sy(*y)
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" fill="{color}">{}</text>"#,
            left + 6.0,
            top + 14.0 + 13.0 * j as f64,
            esc(label)
        );
    }
}

fn esc(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_has_a_line_per_stack_and_a_bound_per_panel() {
        let chart = svg(&[Panel {
            title: "GET <one>".into(),
            bound_ms: 5.0,
            lines: vec![
                ("suite".into(), vec![(100.0, 1.0), (200.0, f64::INFINITY)]),
                ("bare pair".into(), vec![(100.0, 0.5), (200.0, 0.7)]),
            ],
        }]);
        assert_eq!(chart.matches("<polyline").count(), 2);
        assert_eq!(chart.matches("stroke-dasharray").count(), 1);
        assert!(chart.contains("GET &lt;one&gt;"));
        assert!(chart.starts_with("<svg") && chart.ends_with("</svg>\n"));
    }
}
