//! Latency percentile-distribution charts as SVG: one line per server, percentile on a
//! "nines" axis (90 %, 99 %, 99.9 % ... equally spaced), latency in µs on a log scale
//! (tails are often a hundred times the median).

use std::fmt::Write as _;

const W: f64 = 800.0;
const H: f64 = 480.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 160.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const COLORS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
/// The axis ends at 99.999 %.
const MAX_NINES: f64 = 5.0;

/// One line of the chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend label.
    pub name: String,
    /// (percentile 0-100, latency µs), percentile ascending.
    pub points: Vec<(f64, f64)>,
}

fn nines(p: f64) -> f64 {
    let rest = (1.0 - p / 100.0).max(1e-12);
    (-rest.log10()).clamp(0.0, MAX_NINES)
}

/// Renders the chart.
pub fn percentile_svg(title: &str, series: &[Series]) -> String {
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let values = || {
        series
            .iter()
            .flat_map(|s| s.points.iter())
            .map(|&(_, us)| us.max(1.0))
    };
    let lo = values()
        .fold(f64::INFINITY, f64::min)
        .log10()
        .floor()
        .min(6.0);
    let hi = values().fold(1.0f64, f64::max).log10().ceil().max(lo + 1.0);
    let x = |p: f64| LEFT + nines(p) / MAX_NINES * plot_w;
    let y = |us: f64| TOP + plot_h - (us.max(1.0).log10() - lo) / (hi - lo) * plot_h;

    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(svg, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = write!(
        svg,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
        LEFT + plot_w / 2.0,
        escape(title)
    );
    // Axes and grid.
    for (i, label) in ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]
        .iter()
        .enumerate()
    {
        let gx = LEFT + i as f64 / MAX_NINES * plot_w;
        let _ = write!(
            svg,
            r##"<line x1="{gx}" y1="{TOP}" x2="{gx}" y2="{}" stroke="#ddd"/><text x="{gx}" y="{}" text-anchor="middle">{label}</text>"##,
            TOP + plot_h,
            TOP + plot_h + 18.0
        );
    }
    let mut decade = lo;
    while decade <= hi {
        let v = 10f64.powf(decade);
        let gy = y(v);
        let label = if v >= 1_000.0 {
            format!("{} ms", v / 1_000.0)
        } else {
            format!("{v} µs")
        };
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" y1="{gy}" x2="{}" y2="{gy}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{label}</text>"##,
            LEFT + plot_w,
            LEFT - 6.0,
            gy + 4.0
        );
        decade += 1.0;
    }
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">percentile</text><text x="14" y="{}" transform="rotate(-90 14 {})" text-anchor="middle">latency (log scale)</text>"#,
        LEFT + plot_w / 2.0,
        H - 10.0,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0
    );
    // Lines and legend.
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<String> = s
            .points
            .iter()
            .filter(|(p, _)| nines(*p) < MAX_NINES)
            .map(|&(p, us)| format!("{:.1},{:.1}", x(p), y(us)))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            pts.join(" ")
        );
        let ly = TOP + 20.0 + i as f64 * 20.0;
        let lx = W - RIGHT + 15.0;
        let _ = write!(
            svg,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
            lx + 20.0,
            lx + 26.0,
            ly + 4.0,
            escape(&s.name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_has_a_line_and_a_legend_entry_per_series() {
        let s = |name: &str, k: f64| Series {
            name: name.into(),
            points: vec![
                (50.0, 100.0 * k),
                (99.0, 300.0 * k),
                (99.9, 900.0 * k),
                (100.0, 5000.0 * k),
            ],
        };
        let svg = percentile_svg("http-static <test>", &[s("streamhub", 1.0), s("axum", 2.0)]);
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains(">streamhub<") && svg.contains(">axum<"));
        assert!(svg.contains("http-static &lt;test&gt;"));
    }

    #[test]
    fn nines_axis_spaces_each_nine_equally() {
        assert_eq!(nines(0.0), 0.0);
        assert!((nines(90.0) - 1.0).abs() < 1e-9);
        assert!((nines(99.9) - 3.0).abs() < 1e-9);
        assert_eq!(nines(100.0), MAX_NINES);
    }
}
