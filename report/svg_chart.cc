#include "report/svg_chart.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace mobilenet {
namespace {

constexpr double kWidth = 720;
constexpr double kHeight = 360;
constexpr double kLeft = 70;
constexpr double kRight = 170;  // room for the legend
constexpr double kTop = 36;
constexpr double kBottom = 50;

const char* const kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                               "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

const char* Color(size_t i) { return kColors[i % (sizeof(kColors) / sizeof(kColors[0]))]; }

std::string TickLabel(double v) {
  if (v == 0) return "0";
  const double a = std::fabs(v);
  if (a >= 1e6 || a < 1e-3) return absl::StrFormat("%.3g", v);
  return absl::StrFormat("%g", std::round(v * 1e6) / 1e6);
}

std::string Open(const std::string& id, const std::string& title) {
  return absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"%s\" class=\"chart\" viewBox=\"0 0 %g %g\" "
      "width=\"100%%\" style=\"max-width:%gpx\" font-family=\"sans-serif\" font-size=\"12\">"
      "<title>%s</title><rect width=\"%g\" height=\"%g\" fill=\"white\"/>"
      "<text x=\"%g\" y=\"22\" font-size=\"15\" font-weight=\"bold\">%s</text>",
      EscapeXml(id), kWidth, kHeight, kWidth, EscapeXml(title), kWidth, kHeight, kLeft,
      EscapeXml(title));
}

std::string NoData() {
  return absl::StrFormat(
      "<text class=\"no-data\" x=\"%g\" y=\"%g\" text-anchor=\"middle\" fill=\"#777\">"
      "no data</text></svg>",
      kWidth / 2, kHeight / 2);
}

struct Scale {
  double lo, hi, pixel_lo, pixel_hi;
  double operator()(double v) const {
    return hi == lo ? (pixel_lo + pixel_hi) / 2
                    : pixel_lo + (v - lo) / (hi - lo) * (pixel_hi - pixel_lo);
  }
};

// The y axis (grid lines, ticks, label) and the axis label of x.
std::string YAxis(const Scale& y, const std::vector<double>& ticks, const std::string& y_label,
                  const std::string& x_label) {
  std::string out;
  const double x0 = kLeft, x1 = kWidth - kRight;
  for (double t : ticks) {
    const double py = y(t);
    absl::StrAppendFormat(
        &out,
        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>"
        "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>",
        x0, py, x1, py, x0 - 6, py + 4, EscapeXml(TickLabel(t)));
  }
  absl::StrAppendFormat(&out,
                        "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"black\"/>"
                        "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"black\"/>",
                        x0, kTop, x0, kHeight - kBottom, x0, kHeight - kBottom, x1,
                        kHeight - kBottom);
  absl::StrAppendFormat(&out,
                        "<text x=\"16\" y=\"%g\" text-anchor=\"middle\" "
                        "transform=\"rotate(-90 16 %g)\">%s</text>",
                        (kTop + kHeight - kBottom) / 2, (kTop + kHeight - kBottom) / 2,
                        EscapeXml(y_label));
  absl::StrAppendFormat(&out, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">%s</text>",
                        (x0 + x1) / 2, kHeight - 12, EscapeXml(x_label));
  return out;
}

std::string LegendEntry(size_t i, const std::string& name) {
  const double y = kTop + 8 + 18 * i;
  const double x = kWidth - kRight + 14;
  return absl::StrFormat(
      "<rect x=\"%g\" y=\"%g\" width=\"14\" height=\"4\" fill=\"%s\"/>"
      "<text x=\"%g\" y=\"%g\">%s</text>",
      x, y - 2, Color(i), x + 20, y + 4, EscapeXml(name));
}

// Ticks over [lo, hi] and the range widened to the outer ticks.
std::vector<double> Range(double& lo, double& hi) {
  if (lo == hi) {
    const double pad = lo == 0 ? 1 : std::fabs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  std::vector<double> ticks = NiceTicks(lo, hi, 6);
  if (!ticks.empty()) {
    lo = std::min(lo, ticks.front());
    hi = std::max(hi, ticks.back());
  }
  return ticks;
}

}  // namespace

std::string EscapeXml(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string Slug(absl::string_view text) {
  std::string out;
  for (char c : text) {
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
      out += c;
    } else if (c >= 'A' && c <= 'Z') {
      out += static_cast<char>(c - 'A' + 'a');
    } else if (!out.empty() && out.back() != '-') {
      out += '-';
    }
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out;
}

std::vector<double> NiceTicks(double lo, double hi, int target) {
  std::vector<double> ticks;
  if (!std::isfinite(lo) || !std::isfinite(hi) || hi <= lo || target < 1) return ticks;
  const double raw = (hi - lo) / target;
  const double magnitude = std::pow(10, std::floor(std::log10(raw)));
  double step = magnitude;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    step = m * magnitude;
    if (step >= raw) break;
  }
  const double first = std::floor(lo / step) * step;
  for (double t = first; t < hi + step * 0.999; t += step) {
    ticks.push_back(std::fabs(t) < step * 1e-9 ? 0 : t);
    if (ticks.size() > 100) break;
  }
  return ticks;
}

std::string RenderLineChart(const LineChart& chart) {
  std::string out = Open(chart.id, chart.title);
  double x_lo = std::numeric_limits<double>::infinity(), x_hi = -x_lo;
  double y_lo = x_lo, y_hi = -x_lo;
  for (const LineSeries& s : chart.series) {
    for (const auto& [x, y] : s.points) {
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      x_lo = std::min(x_lo, x);
      x_hi = std::max(x_hi, x);
      y_lo = std::min(y_lo, y);
      y_hi = std::max(y_hi, y);
    }
  }
  if (!(x_lo <= x_hi)) return out + NoData();
  const std::vector<double> x_ticks = Range(x_lo, x_hi);
  const std::vector<double> y_ticks = Range(y_lo, y_hi);
  const Scale sx{x_lo, x_hi, kLeft, kWidth - kRight};
  const Scale sy{y_lo, y_hi, kHeight - kBottom, kTop};
  out += YAxis(sy, y_ticks, chart.y_label, chart.x_label);
  for (double t : x_ticks) {
    absl::StrAppendFormat(&out,
                          "<line x1=\"%.1f\" y1=\"%g\" x2=\"%.1f\" y2=\"%g\" stroke=\"black\"/>"
                          "<text x=\"%.1f\" y=\"%g\" text-anchor=\"middle\">%s</text>",
                          sx(t), kHeight - kBottom, sx(t), kHeight - kBottom + 5, sx(t),
                          kHeight - kBottom + 18, EscapeXml(TickLabel(t)));
  }
  for (size_t i = 0; i < chart.series.size(); ++i) {
    const LineSeries& s = chart.series[i];
    std::string d;
    int drawn = 0;
    for (const auto& [x, y] : s.points) {
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      absl::StrAppendFormat(&d, "%s%.1f %.1f", drawn == 0 ? "M" : " L", sx(x), sy(y));
      ++drawn;
    }
    const std::string id = EscapeXml(absl::StrCat(chart.id, "-", Slug(s.name)));
    absl::StrAppendFormat(&out,
                          "<g id=\"%s\" class=\"series\" data-series=\"%s\" data-points=\"%d\">"
                          "<path d=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\"/>",
                          id, EscapeXml(s.name), drawn, d, Color(i));
    if (drawn == 1) {  // a lone point has no line to show
      absl::StrAppendFormat(&out, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>",
                            sx(s.points.front().first), sy(s.points.front().second), Color(i));
    }
    out += "</g>";
    out += LegendEntry(i, s.name);
  }
  return out + "</svg>";
}

std::string RenderBarChart(const BarChart& chart) {
  std::string out = Open(chart.id, chart.title);
  double y_hi = -std::numeric_limits<double>::infinity();
  for (const BarSeries& s : chart.series) {
    for (double v : s.values) {
      if (std::isfinite(v) && v >= 0) y_hi = std::max(y_hi, v);
    }
  }
  if (chart.categories.empty() || !std::isfinite(y_hi)) return out + NoData();
  double y_lo = 0;
  const std::vector<double> y_ticks = Range(y_lo, y_hi);
  const Scale sy{y_lo, y_hi, kHeight - kBottom, kTop};
  out += YAxis(sy, y_ticks, chart.y_label, "");
  const double group = (kWidth - kRight - kLeft) / chart.categories.size();
  const double bar = group * 0.8 / std::max<size_t>(1, chart.series.size());
  // At most about 16 category labels, so that they do not overlap.
  const size_t label_every = (chart.categories.size() + 15) / 16;
  for (size_t c = 0; c < chart.categories.size(); c += label_every) {
    absl::StrAppendFormat(&out, "<text x=\"%.1f\" y=\"%g\" text-anchor=\"middle\">%s</text>",
                          kLeft + group * (c + 0.5), kHeight - kBottom + 18,
                          EscapeXml(chart.categories[c]));
  }
  for (size_t i = 0; i < chart.series.size(); ++i) {
    const BarSeries& s = chart.series[i];
    absl::StrAppendFormat(&out, "<g id=\"%s\" class=\"series\" data-series=\"%s\" fill=\"%s\">",
                          EscapeXml(absl::StrCat(chart.id, "-", Slug(s.name))), EscapeXml(s.name),
                          Color(i));
    for (size_t c = 0; c < chart.categories.size() && c < s.values.size(); ++c) {
      const double v = s.values[c];
      if (!std::isfinite(v) || v < 0) continue;
      const double x = kLeft + group * c + group * 0.1 + bar * i;
      absl::StrAppendFormat(
          &out,
          "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\">"
          "<title>%s</title></rect>",
          x, sy(v), bar, sy(0) - sy(v),
          EscapeXml(absl::StrCat(chart.categories[c], " ", s.name, ": ", TickLabel(v))));
    }
    out += "</g>";
    out += LegendEntry(i, s.name);
  }
  return out + "</svg>";
}

}  // namespace mobilenet
