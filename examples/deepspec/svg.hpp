// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief A minimal SVG line chart for the evaluation's plots (acceptance by position,
///        reliability diagrams, throughput against concurrency): axes with ticks, one polyline
///        with markers per series, a legend. No dependency; the file is plain text.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

namespace deepspec {

/// One series of a chart: points (x, y); NaN y values are skipped.
struct svg_series {
  std::string name;      ///< legend entry
  std::vector<double> x; ///< abscissae
  std::vector<double> y; ///< ordinates
  bool dashed = false;   ///< a dashed line (e.g. a reference diagonal)
};

/// Axis ranges and labels of a chart.
struct svg_axes {
  std::string title, xlabel, ylabel;     ///< texts
  double x0 = 0, x1 = 1, y0 = 0, y1 = 1; ///< ranges
  bool log_x = false;                    ///< logarithmic x axis (x0 > 0)
};

/// Escapes &, < and > for SVG text.
inline std::string svg_escape(const std::string& s) {
  std::string o;
  for (char c : s)
    o += c == '&'   ? std::string("&amp;")
         : c == '<' ? std::string("&lt;")
         : c == '>' ? std::string("&gt;")
                    : std::string(1, c);
  return o;
}

/// @brief Writes a line chart to `path`. @return false when the file cannot be written
inline bool write_svg_chart(const std::string& path,
                            const svg_axes& ax,
                            const std::vector<svg_series>& series) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr)
    return false;
  const double W = 640, H = 400, L = 70, R = 180, T = 40, B = 50;
  const double pw = W - L - R, ph = H - T - B;
  auto fx = [&](double x) {
    const double t = ax.log_x
                         ? (std::log(x) - std::log(ax.x0)) / (std::log(ax.x1) - std::log(ax.x0))
                         : (x - ax.x0) / (ax.x1 - ax.x0);
    return L + pw * t;
  };
  auto fy = [&](double y) { return T + ph * (1.0 - (y - ax.y0) / (ax.y1 - ax.y0)); };
  std::fprintf(f,
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" "
               "height=\"100%%\" fill=\"white\"/>\n",
               W,
               H);
  std::fprintf(f,
               "<text x=\"%.0f\" y=\"22\" font-size=\"14\" text-anchor=\"middle\">%s</text>\n",
               L + pw / 2,
               svg_escape(ax.title).c_str());
  std::fprintf(f,
               "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
               "stroke=\"#333\"/>\n",
               L,
               T,
               pw,
               ph);
  for (int i = 0; i <= 5; ++i) { // ticks
    const double yv = ax.y0 + (ax.y1 - ax.y0) * i / 5.0;
    std::fprintf(f,
                 "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                 "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.3g</text>\n",
                 L,
                 L + pw,
                 fy(yv),
                 fy(yv),
                 L - 6,
                 fy(yv) + 4,
                 yv);
    const double xv =
        ax.log_x ? std::exp(std::log(ax.x0) + (std::log(ax.x1) - std::log(ax.x0)) * i / 5.0)
                 : ax.x0 + (ax.x1 - ax.x0) * i / 5.0;
    std::fprintf(f,
                 "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.3g</text>\n",
                 fx(xv),
                 T + ph + 16,
                 xv);
  }
  std::fprintf(f,
               "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">%s</text>\n"
               "<text x=\"16\" y=\"%.0f\" text-anchor=\"middle\" transform=\"rotate(-90 16 "
               "%.0f)\">%s</text>\n",
               L + pw / 2,
               H - 12,
               svg_escape(ax.xlabel).c_str(),
               T + ph / 2,
               T + ph / 2,
               svg_escape(ax.ylabel).c_str());
  static const char* const colors[] = {"#1f77b4",
                                       "#d62728",
                                       "#2ca02c",
                                       "#ff7f0e",
                                       "#9467bd",
                                       "#8c564b",
                                       "#e377c2",
                                       "#7f7f7f",
                                       "#bcbd22",
                                       "#17becf",
                                       "#393b79",
                                       "#637939"};
  for (std::size_t si = 0; si < series.size(); ++si) {
    const svg_series& s = series[si];
    const char* col = colors[si % 12];
    std::string pts;
    for (std::size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.y[i]) || !std::isfinite(s.x[i]) || (ax.log_x && s.x[i] <= 0))
        continue;
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.1f,%.1f ", fx(s.x[i]), fy(s.y[i]));
      pts += buf;
      std::fprintf(f,
                   "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"/>\n",
                   fx(s.x[i]),
                   fy(s.y[i]),
                   col);
    }
    std::fprintf(f,
                 "<polyline points=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\"%s/>\n",
                 pts.c_str(),
                 col,
                 s.dashed ? " stroke-dasharray=\"4 3\"" : "");
    const double ly = T + 14 + 16.0 * static_cast<double>(si);
    std::fprintf(f,
                 "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                 "stroke-width=\"2\"%s/><text x=\"%.0f\" y=\"%.1f\">%s</text>\n",
                 L + pw + 10,
                 L + pw + 30,
                 ly - 4,
                 ly - 4,
                 col,
                 s.dashed ? " stroke-dasharray=\"4 3\"" : "",
                 L + pw + 34,
                 ly,
                 svg_escape(s.name).c_str());
  }
  std::fprintf(f, "</svg>\n");
  return std::fclose(f) == 0;
}

} // namespace deepspec
