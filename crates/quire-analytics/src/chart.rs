//! Charts as data (what to draw), rendered to SVG by `plotters` (SVG backend only, no font
//! files: text goes into the SVG as `<text>` and the viewer's fonts draw it).

use plotters::prelude::*;

use crate::{Error, Result};

/// One bar series: a value per category, optionally with a confidence interval per bar.
#[derive(Clone, Debug, PartialEq)]
pub struct BarSeries {
    pub name: String,
    pub values: Vec<f64>,
    /// `(low, high)` per category.
    pub ci: Option<Vec<(f64, f64)>>,
}

/// One line: points in x order; `step` draws a right-continuous step function (survival
/// curves).
#[derive(Clone, Debug, PartialEq)]
pub struct LineSeries {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub step: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ChartKind {
    /// Grouped vertical bars, one group per category.
    Bars {
        categories: Vec<String>,
        series: Vec<BarSeries>,
    },
    Lines {
        series: Vec<LineSeries>,
    },
}

/// A chart: file stem `name`, a title, axis labels and what to draw.
#[derive(Clone, Debug, PartialEq)]
pub struct Chart {
    pub name: String,
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub kind: ChartKind,
}

const SIZE: (u32, u32) = (900, 480);

fn palette(i: usize) -> RGBColor {
    const C: [RGBColor; 6] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
    ];
    C[i % C.len()]
}

fn draw_err<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> Error {
    Error::Chart(e.to_string())
}

/// `(min, max)` of the finite values, widened to include 0 and never empty.
fn y_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (0.0f64, 0.0f64);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if hi - lo < 1e-12 {
        hi = lo + 1.0;
    }
    let pad = (hi - lo) * 0.05;
    (if lo < 0.0 { lo - pad } else { lo }, hi + pad)
}

impl Chart {
    /// The chart as an SVG document.
    pub fn to_svg(&self) -> Result<String> {
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
            root.fill(&WHITE).map_err(draw_err)?;
            match &self.kind {
                ChartKind::Bars { categories, series } => self.bars(&root, categories, series)?,
                ChartKind::Lines { series } => self.lines(&root, series)?,
            }
            root.present().map_err(draw_err)?;
        }
        Ok(svg)
    }

    fn bars(
        &self,
        root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
        categories: &[String],
        series: &[BarSeries],
    ) -> Result<()> {
        let n = categories.len().max(1);
        let all = series.iter().flat_map(|s| {
            s.values.iter().copied().chain(
                s.ci.iter()
                    .flat_map(|c| c.iter().flat_map(|&(a, b)| [a, b])),
            )
        });
        let (lo, hi) = y_range(all);
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(70)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), lo..hi)
            .map_err(draw_err)?;
        let labels = categories.to_vec();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n.min(30))
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 {
                    labels.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .draw()
            .map_err(draw_err)?;
        let k = series.len().max(1) as f64;
        let width = 0.8 / k;
        for (si, s) in series.iter().enumerate() {
            let color = palette(si);
            let left = |i: usize| i as f64 - 0.4 + si as f64 * width;
            chart
                .draw_series(
                    s.values
                        .iter()
                        .enumerate()
                        .filter(|(_, v)| v.is_finite())
                        .map(|(i, &v)| {
                            Rectangle::new(
                                [(left(i), 0.0), (left(i) + width * 0.9, v)],
                                color.filled(),
                            )
                        }),
                )
                .map_err(draw_err)?
                .label(s.name.clone())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
                });
            if let Some(ci) = &s.ci {
                chart
                    .draw_series(
                        ci.iter()
                            .enumerate()
                            .filter(|(_, (a, b))| a.is_finite() && b.is_finite())
                            .map(|(i, &(a, b))| {
                                let x = left(i) + width * 0.45;
                                PathElement::new(vec![(x, a), (x, b)], BLACK.stroke_width(2))
                            }),
                    )
                    .map_err(draw_err)?;
            }
        }
        if series.len() > 1 {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(draw_err)?;
        }
        Ok(())
    }

    fn lines(
        &self,
        root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
        series: &[LineSeries],
    ) -> Result<()> {
        let xs = series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .filter(|x| x.is_finite());
        let (mut x0, mut x1) = (f64::INFINITY, f64::NEG_INFINITY);
        for x in xs {
            x0 = x0.min(x);
            x1 = x1.max(x);
        }
        if !x0.is_finite() {
            (x0, x1) = (0.0, 1.0);
        }
        if x1 - x0 < 1e-12 {
            x1 = x0 + 1.0;
        }
        let (lo, hi) = y_range(series.iter().flat_map(|s| s.points.iter().map(|p| p.1)));
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, lo..hi)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .draw()
            .map_err(draw_err)?;
        for (si, s) in series.iter().enumerate() {
            let color = palette(si);
            let mut pts: Vec<(f64, f64)> = Vec::with_capacity(s.points.len() * 2);
            for &(x, y) in s
                .points
                .iter()
                .filter(|p| p.0.is_finite() && p.1.is_finite())
            {
                if s.step
                    && let Some(&(_, prev)) = pts.last()
                {
                    pts.push((x, prev));
                }
                pts.push((x, y));
            }
            chart
                .draw_series(plotters::series::LineSeries::new(
                    pts,
                    color.stroke_width(2),
                ))
                .map_err(draw_err)?
                .label(s.name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 15, y)], color.stroke_width(2))
                });
        }
        if series.len() > 1 {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(draw_err)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_and_steps_render_with_their_text() {
        let bars = Chart {
            name: "b".into(),
            title: "Conversion by device".into(),
            x_label: "device".into(),
            y_label: "cvr".into(),
            kind: ChartKind::Bars {
                categories: vec!["desktop".into(), "mobile".into()],
                series: vec![BarSeries {
                    name: "cvr".into(),
                    values: vec![0.1, 0.05],
                    ci: Some(vec![(0.08, 0.12), (0.04, 0.06)]),
                }],
            },
        };
        let svg = bars.to_svg().unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("Conversion by device"));
        assert!(svg.contains("mobile"));
        let lines = Chart {
            name: "l".into(),
            title: "Survival".into(),
            x_label: "days".into(),
            y_label: "S(t)".into(),
            kind: ChartKind::Lines {
                series: vec![
                    LineSeries {
                        name: "first".into(),
                        points: vec![(0.0, 1.0), (1.0, 0.5), (3.0, 0.25)],
                        step: true,
                    },
                    LineSeries {
                        name: "empty".into(),
                        points: vec![],
                        step: false,
                    },
                ],
            },
        };
        let svg = lines.to_svg().unwrap();
        assert!(svg.contains("<polyline"), "{svg}");
        assert!(svg.contains("first"));
    }
}
