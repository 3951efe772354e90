//! The study's chart kinds, drawn with plotters into SVG text and rasterised to PNG with
//! resvg (system fonts; DejaVu Sans on Debian): line charts over steps (with optional
//! vertical markers and a log scale) and grouped bar charts.

use crate::error::{Error, Result};
use crate::metrics::plot::COLORS;
use plotters::prelude::*;
use std::path::Path;

const SIZE: (u32, u32) = (900, 520);

/// One line of a line chart.
pub struct Line {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    /// Index into the palette (the same variant keeps its colour across figures).
    pub color: usize,
    pub dashed: bool,
}

/// A line chart.
pub struct LineChart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub lines: Vec<Line>,
    /// Vertical markers (e.g. ReLoRA's resets), drawn grey, with this legend label.
    pub markers: Vec<f64>,
    pub marker_label: &'a str,
    pub log_y: bool,
}

fn err(e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("drawing a figure: {e}"))
}

impl LineChart<'_> {
    pub fn svg(&self) -> Result<String> {
        let finite = |p: &(f64, f64)| p.1.is_finite() && (!self.log_y || p.1 > 0.0);
        let pts = self
            .lines
            .iter()
            .flat_map(|l| l.points.iter().filter(|p| finite(p)));
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &(x, y) in pts {
            (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
        }
        if x0 > x1 {
            return Err(Error::Invalid(format!(
                "nothing to plot for '{}'",
                self.title
            )));
        }
        if x1 <= x0 {
            x1 = x0 + 1.0;
        }
        if y1 <= y0 {
            y1 = y0 + y0.abs().max(1.0) * 0.1;
        }
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
            root.fill(&WHITE).map_err(err)?;
            let mut builder = ChartBuilder::on(&root);
            builder
                .caption(self.title, ("sans-serif", 22))
                .margin(14)
                .x_label_area_size(45)
                .y_label_area_size(80);
            macro_rules! draw {
                ($chart:expr, $ylo:expr, $yhi:expr) => {{
                    let mut chart = $chart;
                    chart
                        .configure_mesh()
                        .x_desc(self.x_label)
                        .y_desc(self.y_label)
                        .label_style(("sans-serif", 15))
                        .draw()
                        .map_err(err)?;
                    for (i, &m) in self.markers.iter().enumerate() {
                        let s = chart
                            .draw_series(std::iter::once(PathElement::new(
                                vec![(m, $ylo), (m, $yhi)],
                                RGBColor(150, 150, 150).stroke_width(1),
                            )))
                            .map_err(err)?;
                        if i == 0 {
                            s.label(self.marker_label.to_string()).legend(|(x, y)| {
                                PathElement::new(
                                    vec![(x + 9, y - 8), (x + 9, y + 8)],
                                    RGBColor(150, 150, 150).stroke_width(1),
                                )
                            });
                        }
                    }
                    for line in &self.lines {
                        let color = COLORS[line.color % COLORS.len()];
                        let pts: Vec<(f64, f64)> =
                            line.points.iter().copied().filter(|p| finite(p)).collect();
                        let style = color.stroke_width(if line.dashed { 1 } else { 2 });
                        let series = if line.dashed {
                            chart.draw_series(DashedLineSeries::new(pts, 6, 4, style))
                        } else {
                            chart.draw_series(LineSeries::new(pts, style))
                        };
                        let dashed = line.dashed;
                        series
                            .map_err(err)?
                            .label(line.label.clone())
                            .legend(move |(x, y)| {
                                PathElement::new(
                                    vec![(x, y), (x + 18, y)],
                                    color.stroke_width(if dashed { 1 } else { 2 }),
                                )
                            });
                    }
                    chart
                        .configure_series_labels()
                        .position(SeriesLabelPosition::UpperRight)
                        .label_font(("sans-serif", 15))
                        .background_style(WHITE.mix(0.85))
                        .border_style(BLACK)
                        .draw()
                        .map_err(err)?;
                }};
            }
            if self.log_y {
                let (lo, hi) = (y0 / 1.3, y1 * 1.3);
                draw!(
                    builder
                        .build_cartesian_2d(x0..x1, (lo..hi).log_scale())
                        .map_err(err)?,
                    lo,
                    hi
                );
            } else {
                let pad = (y1 - y0) * 0.06;
                let (lo, hi) = (y0 - pad, y1 + pad);
                draw!(
                    builder.build_cartesian_2d(x0..x1, lo..hi).map_err(err)?,
                    lo,
                    hi
                );
            }
            root.present().map_err(err)?;
        }
        Ok(svg)
    }
}

/// A grouped bar chart: for each group (a model scale), one bar per series (a variant).
pub struct BarChart<'a> {
    pub title: &'a str,
    /// What the groups are, e.g. `model scale`.
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub groups: Vec<String>,
    /// (label, colour index, value per group; NaN for a missing bar).
    pub series: Vec<(String, usize, Vec<f64>)>,
}

/// Roughly how wide a 15-px sans-serif label of `text` is drawn, in pixels.
fn label_px(text: &str) -> u32 {
    8 * text.chars().count() as u32
}

/// Where series `k`'s bar for group `g` of value `v` goes: the rectangle's two corners and the
/// anchor of its value label, in chart coordinates.
type Place<'p> = &'p dyn Fn(usize, usize, f64) -> ([(f64, f64); 2], (f64, f64));

type BarArea<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// The group whose band's middle is at `pos` on the group axis (bands are one unit wide), so
/// only band middles get a name.
fn band_at(pos: f64, groups: usize) -> Option<usize> {
    let i = pos.floor() as usize;
    ((pos - pos.floor() - 0.5).abs() < 1e-6 && i < groups).then_some(i)
}

impl BarChart<'_> {
    /// Vertical bars, or horizontal ones (group names down the left side) when the names
    /// would not fit side by side under the bars.
    pub fn svg(&self) -> Result<String> {
        let values = self.series.iter().flat_map(|s| s.2.iter().copied());
        let top = values.filter(|v| v.is_finite()).fold(0.0f64, f64::max);
        if top <= 0.0 {
            return Err(Error::Invalid(format!(
                "nothing to plot for '{}'",
                self.title
            )));
        }
        let widest = self.groups.iter().map(|g| label_px(g)).max().unwrap_or(0);
        let per_group = (SIZE.0 - 110) / self.groups.len().max(1) as u32;
        if widest + 8 > per_group {
            self.horizontal(top, widest)
        } else {
            self.vertical(top)
        }
    }

    fn horizontal(&self, top: f64, widest: u32) -> Result<String> {
        let (groups, n) = (self.groups.len(), self.series.len().max(1));
        // Each group gets a band of n bars, 16 px each, plus a gap; an empty band above the
        // first group holds the legend (about 20 px a line), so it covers no bar.
        let band_px = 16 * n as u32 + 14;
        // Whole bands, so the axis ticks stay at the bands' middles.
        let legend = (20 * n as u32 + 24).div_ceil(band_px) as usize;
        let height = (120 + (groups + legend) as u32 * band_px).max(SIZE.1);
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (SIZE.0, height)).into_drawing_area();
            root.fill(&WHITE).map_err(err)?;
            let x1 = top * 1.45;
            let mut chart = ChartBuilder::on(&root)
                .caption(self.title, ("sans-serif", 22))
                .margin(14)
                .x_label_area_size(45)
                .y_label_area_size((widest + 16).min(SIZE.0 / 2))
                .build_cartesian_2d(0.0..x1, 0.0..(groups + legend) as f64)
                .map_err(err)?;
            // Group 0 at the top: group i's band is [groups - 1 - i, groups - i).
            chart
                .configure_mesh()
                .disable_y_mesh()
                .y_labels((groups + legend) * 2 + 1)
                .y_label_formatter(&|y| {
                    band_at(*y, groups)
                        .map_or(String::new(), |i| self.groups[groups - 1 - i].clone())
                })
                .x_desc(self.y_label)
                .y_desc(self.x_label)
                .label_style(("sans-serif", 15))
                .draw()
                .map_err(err)?;
            let band = 0.8 / n as f64;
            let place = |g: usize, k: usize, v: f64| {
                let y = (groups - 1 - g) as f64 + 0.9 - (k + 1) as f64 * band;
                (
                    [(0.0, y), (v, y + band * 0.92)],
                    (v + top * 0.01, y + band * 0.9),
                )
            };
            self.draw_bars(&mut chart, &place, SeriesLabelPosition::UpperRight)?;
            root.present().map_err(err)?;
        }
        Ok(svg)
    }

    fn vertical(&self, top: f64) -> Result<String> {
        let (groups, n) = (self.groups.len(), self.series.len().max(1));
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
            root.fill(&WHITE).map_err(err)?;
            let y1 = top * 1.4;
            let mut chart = ChartBuilder::on(&root)
                .caption(self.title, ("sans-serif", 22))
                .margin(14)
                .x_label_area_size(45)
                .y_label_area_size(80)
                .build_cartesian_2d(0.0..groups as f64, 0.0..y1)
                .map_err(err)?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(groups * 2 + 1)
                .x_label_formatter(&|x| {
                    band_at(*x, groups).map_or(String::new(), |i| self.groups[i].clone())
                })
                .x_desc(self.x_label)
                .y_desc(self.y_label)
                .label_style(("sans-serif", 15))
                .draw()
                .map_err(err)?;
            let width = 0.8 / n as f64;
            let place = |g: usize, k: usize, v: f64| {
                let x = g as f64 + 0.1 + k as f64 * width;
                ([(x, 0.0), (x + width * 0.92, v)], (x, v + top * 0.02))
            };
            self.draw_bars(&mut chart, &place, SeriesLabelPosition::UpperLeft)?;
            root.present().map_err(err)?;
        }
        Ok(svg)
    }

    /// Every series' bars with their value labels where `place` puts them, then the legend.
    fn draw_bars<'a, 'b: 'a>(
        &self,
        chart: &mut BarArea<'a, 'b>,
        place: Place,
        legend: SeriesLabelPosition,
    ) -> Result<()> {
        for (k, (label, color, vals)) in self.series.iter().enumerate() {
            let color = COLORS[color % COLORS.len()];
            let finite = || vals.iter().enumerate().filter(|(_, v)| v.is_finite());
            let bars = finite().map(|(g, &v)| Rectangle::new(place(g, k, v).0, color.filled()));
            chart
                .draw_series(bars)
                .map_err(err)?
                .label(label.clone())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled())
                });
            let texts = finite()
                .map(|(g, &v)| Text::new(bar_label(v), place(g, k, v).1, ("sans-serif", 13)));
            chart.draw_series(texts).map_err(err)?;
        }
        chart
            .configure_series_labels()
            .position(legend)
            .label_font(("sans-serif", 15))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        Ok(())
    }
}

/// A bar's value with about three significant figures.
fn bar_label(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// Write `svg` to `stem.svg` and its rendering to `stem.png`.
pub fn save_svg_and_png(svg: &str, stem: &Path) -> Result<()> {
    let svg_path = stem.with_extension("svg");
    std::fs::write(&svg_path, svg)
        .map_err(|e| Error::Invalid(format!("writing {}: {e}", svg_path.display())))?;
    let mut options = resvg::usvg::Options::default();
    {
        let db = options.fontdb_mut();
        db.load_system_fonts();
        // plotters asks for "sans-serif": point it at a font this machine has.
        let families: Vec<String> = db
            .faces()
            .flat_map(|f| f.families.iter().map(|(n, _)| n.clone()))
            .collect();
        if let Some(f) = ["DejaVu Sans", "Liberation Sans", "Arial", "Helvetica"]
            .iter()
            .find(|f| families.iter().any(|n| n == *f))
            .map(|f| f.to_string())
            .or_else(|| families.first().cloned())
        {
            db.set_sans_serif_family(f);
        }
    }
    let tree = resvg::usvg::Tree::from_str(svg, &options).map_err(err)?;
    let size = tree.size().to_int_size();
    let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height())
        .ok_or_else(|| err("empty figure"))?;
    pixmap.fill(resvg::tiny_skia::Color::WHITE);
    resvg::render(
        &tree,
        resvg::tiny_skia::Transform::default(),
        &mut pixmap.as_mut(),
    );
    let png = stem.with_extension("png");
    pixmap
        .save_png(&png)
        .map_err(|e| Error::Invalid(format!("writing {}: {e}", png.display())))
}
