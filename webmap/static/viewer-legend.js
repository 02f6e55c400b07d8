/* Kantong viewer: texts, numbers and the legend (loaded before viewer.js).
 *
 * window.kantongText = {msg, numberText, el, renderLegend}. Every text comes from
 * config.messages (webmap/i18n.py); data is inserted as text (textContent), never as HTML.
 */
(function () {
  "use strict";

  /* Message `key` of the page's language with {name} placeholders filled. */
  function msg(config, key, values) {
    var text = (config.messages || {})[key];
    if (text === undefined) { return key; }
    return text.replace(/\{([a-z_]+)\}/g, function (m, name) {
      return values && values[name] !== undefined ? String(values[name]) : m;
    });
  }

  function numberText(config, value, digits) {
    return value.toLocaleString(config.locale || "id-ID", { maximumFractionDigits: digits });
  }

  /* Tick text of a legend value; "share ..." units (0..1) are shown as percentages. */
  function formatValue(config, value, unit) {
    if (value === null || value === undefined || value === "") { return "–"; }
    if (typeof value !== "number") { return String(value); }
    unit = unit || "";
    if (unit.indexOf("share") === 0) {
      var pct = 100 * value;
      return numberText(config, pct, Math.abs(pct) < 10 && pct !== 0 ? 1 : 0) + "%";
    }
    var abs = Math.abs(value);
    var digits = abs >= 100 || value === Math.round(value) ? 0 : abs >= 1 ? 1 : 2;
    return numberText(config, value, digits);
  }

  /* Unit line under the legend title, in the page's language. */
  function unitNote(config, legend) {
    var unit = legend.unit || "";
    var keys = {
      "households": "unit_households", "persons": "unit_persons", "minutes": "unit_minutes",
      "share of households": "unit_share_households", "share of persons": "unit_share_persons",
      "score 0-1": "unit_score", "score": "unit_score",
      "share of persons (percentage points)": "unit_change_rate"
    };
    if (legend.indicator === "change_extreme_households") { return msg(config, "unit_change_households"); }
    return keys[unit] ? msg(config, keys[unit]) : "";
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  /* Positions (percent of the bar) and texts of the ticks: every round value the server
     gives, plus both ends; an inner tick too close to an end gives way to the end, never the
     end to it. Open ends are marked ("≤ 0,1", "195+"). */
  function tickMarks(config, legend, lo, hi) {
    var span = hi - lo || 1;
    var values = Array.isArray(legend.ticks) && legend.ticks.length > 1 ? legend.ticks.slice()
      : (legend.stops || []).map(function (s) { return s.value; });
    values = values.filter(function (v) { return v >= lo - 1e-9 && v <= hi + 1e-9; });
    if (!values.length || Math.abs(values[0] - lo) > 1e-9 * (1 + Math.abs(lo))) { values.unshift(lo); }
    if (Math.abs(values[values.length - 1] - hi) > 1e-9 * (1 + Math.abs(hi))) { values.push(hi); }
    var marks = values.map(function (v, i) {
      var text = formatValue(config, v, legend.unit);
      if (i === 0 && legend.open_low) { text = msg(config, "legend_open_low") + " " + text; }
      if (i === values.length - 1 && legend.open_high) { text += "+"; }
      return { pos: 100 * (v - lo) / span, text: text, end: i === 0 || i === values.length - 1 };
    });
    var minGap = 100 / 5.5;
    return marks.filter(function (m, i) {
      if (m.end) { return true; }
      var prev = marks[i - 1];
      var last = marks[marks.length - 1];
      return m.pos - prev.pos >= minGap && last.pos - m.pos >= minGap;
    });
  }

  /* Render {indicator, label, unit, kind, stops: [{value, color}], domain, nodata, opacity}. */
  function renderLegend(box, legend, config, shown) {
    box.textContent = "";
    box.dataset.indicator = legend.indicator;
    var labels = config.indicatorLabels || {};
    box.appendChild(el("div", "kantong-legend-title", labels[legend.indicator] || legend.label ||
      legend.indicator));
    var stops = Array.isArray(legend.stops) ? legend.stops : [];
    var opacity = typeof legend.opacity === "number" ? legend.opacity : 1;
    var categorical = legend.kind === "categorical" || stops.some(function (s) {
      return typeof s.value !== "number";
    });
    var note = unitNote(config, legend);
    if (!categorical && note) { box.appendChild(el("div", "kantong-legend-unit", note)); }
    if (stops.length > 1 && !categorical) {
      var lo = stops[0].value;
      var hi = stops[stops.length - 1].value;
      var span = hi - lo || 1;
      var grad = stops.map(function (s) {
        return s.color + " " + (100 * (s.value - lo) / span).toFixed(1) + "%";
      });
      var bar = el("div", "kantong-legend-bar");
      bar.style.background = "linear-gradient(to right, " + grad.join(", ") + ")";
      bar.style.opacity = String(opacity);
      box.appendChild(bar);
      var ticks = el("div", "kantong-legend-ticks");
      var marks = tickMarks(config, legend, lo, hi);
      marks.forEach(function (m, i) {
        var tick = el("span", "kantong-legend-tick", m.text);
        tick.style.left = m.pos.toFixed(1) + "%";
        if (i === 0) { tick.classList.add("first"); }
        if (i === marks.length - 1) { tick.classList.add("last"); }
        ticks.appendChild(tick);
      });
      box.appendChild(ticks);
    } else {
      var list = el("ul", "kantong-legend-list");
      var few = stops.slice(0, 10);
      few.forEach(function (s) {
        var item = el("li");
        var swatch = el("span", "kantong-swatch");
        swatch.style.background = s.color;
        swatch.style.opacity = String(opacity);
        item.appendChild(swatch);
        var text = legend.indicator === "pocket" ? msg(config, "legend_pocket_value", { n: s.value })
          : typeof s.label === "string" ? s.label : formatValue(config, s.value, legend.unit);
        item.appendChild(document.createTextNode(text));
        list.appendChild(item);
      });
      if (stops.length > few.length) {
        list.appendChild(el("li", "kantong-legend-more",
          msg(config, "legend_more", { n: stops.length - few.length })));
      }
      if (!stops.length) { list.appendChild(el("li", "kantong-legend-more", msg(config, "legend_nothing"))); }
      box.appendChild(list);
    }
    var key = el("ul", "kantong-legend-key");
    var entries = [];
    if (!categorical && legend.nodata) {
      var nodata = legend.indicator.indexOf("change_") === 0 ? msg(config, "change_nodata")
        : msg(config, "no_data");
      entries.push(["kantong-swatch kantong-nodata", nodata, legend.nodata]);
    }
    if (shown.pockets) { entries.push(["kantong-key kantong-key-pocket", msg(config, "legend_pocket")]); }
    if (shown.statuses) {
      (config.pocketStatuses || []).forEach(function (status) {
        entries.push(["kantong-key kantong-key-status", status[0], null, status[1]]);
      });
    }
    if (shown.sites) { entries.push(["kantong-key kantong-key-site", msg(config, "legend_site")]); }
    if (shown.facilities) {
      entries.push(["kantong-key kantong-key-facility", msg(config, "legend_facility")]);
    }
    if (shown.outlines) { entries.push(["kantong-key kantong-key-regency", msg(config, "legend_regency")]); }
    entries.forEach(function (entry) {
      var item = el("li");
      var mark = el("span", entry[0]);
      if (entry[2]) { mark.style.backgroundColor = entry[2]; }
      if (entry[3]) { mark.style.borderColor = entry[3]; }
      item.appendChild(mark);
      item.appendChild(el("span", "kantong-key-text", entry[1]));
      key.appendChild(item);
    });
    if (entries.length) { box.appendChild(key); }
    if (config.minHouseholds) {
      box.appendChild(el("div", "kantong-legend-note",
        msg(config, "legend_below", { k: config.minHouseholds })));
    }
  }

  window.kantongText = { msg: msg, numberText: numberText, el: el, renderLegend: renderLegend };
})();
