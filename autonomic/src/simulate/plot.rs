//! A hand-written SVG of a simulated run: machines up per class (steps) and
//! the queue length (grey, on its own scale) over time.

use std::fmt::Write;

use crate::clock::human;
use crate::simulate::Report;

const W: f64 = 800.0;
const H: f64 = 360.0;
const PAD: f64 = 50.0;
const COLOURS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

/// The SVG document for `report`.
pub fn svg(report: &Report) -> String {
    let t_max = report.makespan_s.max(1.0);
    let w_max = report
        .timeline
        .iter()
        .flat_map(|s| s.workers.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let q_max = report
        .timeline
        .iter()
        .map(|s| s.queued)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let x = |t: f64| PAD + t / t_max * (W - 2.0 * PAD);
    let y = |v: f64, max: f64| H - PAD - v / max * (H - 2.0 * PAD);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(out, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
    let _ = writeln!(
        out,
        "<path d=\"M{PAD} {PAD} V{b} H{r}\" stroke=\"black\" fill=\"none\"/>",
        b = H - PAD,
        r = W - PAD
    );
    // At most one queue point per pixel column.
    let mut queue = String::new();
    let mut column = f64::NEG_INFINITY;
    for s in &report.timeline {
        if x(s.at).floor() == column {
            continue;
        }
        column = x(s.at).floor();
        let cmd = if queue.is_empty() { 'M' } else { 'L' };
        let _ = write!(
            queue,
            "{cmd}{:.1} {:.1} ",
            x(s.at),
            y(s.queued as f64, q_max)
        );
    }
    let _ = writeln!(
        out,
        "<path d=\"{queue}\" stroke=\"#999\" stroke-dasharray=\"4 3\" fill=\"none\"/>"
    );
    for (class, name) in report.classes.iter().enumerate() {
        let colour = COLOURS[class % COLOURS.len()];
        let mut path = String::new();
        let mut last = None;
        for s in &report.timeline {
            let v = y(s.workers[class] as f64, w_max);
            match last {
                None => {
                    let _ = write!(path, "M{:.1} {v:.1} ", x(s.at));
                }
                Some(prev) if prev == v => continue,
                Some(prev) => {
                    let _ = write!(path, "L{:.1} {prev:.1} L{:.1} {v:.1} ", x(s.at), x(s.at));
                }
            }
            last = Some(v);
        }
        if let Some(v) = last {
            let _ = write!(path, "L{:.1} {v:.1}", x(t_max));
        }
        let _ = writeln!(
            out,
            "<path d=\"{path}\" stroke=\"{colour}\" stroke-width=\"2\" fill=\"none\"/>"
        );
        let _ = writeln!(
            out,
            "<text x=\"{:.0}\" y=\"{:.0}\" fill=\"{colour}\">{}</text>",
            PAD + 10.0,
            PAD + 14.0 * class as f64,
            escape(name)
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"{:.0}\" y=\"{:.0}\" fill=\"#999\">queued (max {q_max})</text>",
        W - PAD - 140.0,
        PAD
    );
    let _ = writeln!(
        out,
        "<text x=\"5\" y=\"{:.0}\">{w_max} machines</text>",
        PAD - 8.0
    );
    let _ = writeln!(
        out,
        "<text x=\"{PAD}\" y=\"{:.0}\">0</text>",
        H - PAD + 16.0
    );
    let _ = writeln!(
        out,
        "<text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"end\">{}</text>",
        W - PAD,
        H - PAD + 16.0,
        human(t_max)
    );
    out.push_str("</svg>\n");
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
