// Line and bar charts as inline SVG, for a page that needs no script and no network.
#ifndef MOBILENET_REPORT_SVG_CHART_H_
#define MOBILENET_REPORT_SVG_CHART_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace mobilenet {

struct LineSeries {
  std::string name;                               // shown in the legend
  std::vector<std::pair<double, double>> points;  // (x, y), drawn in this order
};

struct LineChart {
  std::string id;  // the <svg>'s id; each series' <path> is "<id>-<slug of its name>"
  std::string title;
  std::string x_label;
  std::string y_label;
  std::vector<LineSeries> series;
};

struct BarSeries {
  std::string name;
  std::vector<double> values;  // one per category; missing ones (or < 0) are not drawn
};

struct BarChart {
  std::string id;  // each series' <g> is "<id>-<slug of its name>"
  std::string title;
  std::string y_label;
  std::vector<std::string> categories;  // groups along the x axis
  std::vector<BarSeries> series;        // one bar of each per category
};

// An <svg> element (width 100%, fixed viewBox) with axes, ticks, labels and a legend.
// Without any finite point it says "no data" instead. Every text is escaped.
std::string RenderLineChart(const LineChart& chart);
std::string RenderBarChart(const BarChart& chart);

// Text and attribute values for HTML/SVG: & < > " ' escaped.
std::string EscapeXml(absl::string_view text);

// Lowercase letters, digits and '-' ("Worker 1 (loss)" -> "worker-1-loss"): ids and classes.
std::string Slug(absl::string_view text);

// Round tick values covering [lo, hi], about `target` of them (1, 2 or 5 times a power of 10).
std::vector<double> NiceTicks(double lo, double hi, int target);

}  // namespace mobilenet

#endif  // MOBILENET_REPORT_SVG_CHART_H_
