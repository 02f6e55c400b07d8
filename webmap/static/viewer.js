/* Kantong viewer: wires the title panel, regency selector and legend to the Folium map.
 *
 * Loaded from the app itself (no remote code); runs under the CSP
 * "script-src 'self' 'unsafe-inline'; connect-src 'self'" (no eval, only same-origin fetch).
 * The page calls kantongViewer(map, config, outlinesLayer, [[overlay, ringLayer], ...]) once
 * the map and layers exist (the pairs: pocket overlays and their low-zoom rings).
 */
(function () {
  "use strict";

  var OUTLINE_SELECTED = { color: "#d95f02", weight: 3.5, opacity: 1 };

  /* Tick text of a legend value; "share ..." units (0..1) are shown as percentages. */
  function formatValue(value, unit) {
    if (value === null || value === undefined || value === "") { return "–"; }
    if (typeof value !== "number") { return String(value); }
    unit = unit || "";
    if (unit.indexOf("share") === 0) {
      var pct = 100 * value;
      return pct.toLocaleString("en-US", { maximumFractionDigits: Math.abs(pct) < 10 ? 1 : 0 }) +
        "%";
    }
    var abs = Math.abs(value);
    var digits = abs >= 100 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 1 : 2;
    return value.toLocaleString("en-US", { maximumFractionDigits: digits });
  }

  /* Unit line under the legend title (not repeated on every tick). */
  function unitNote(unit) {
    if (unit && unit.indexOf("share") === 0) { return "% " + unit.replace(/^share /, ""); }
    return unit || "";
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  /* Render {indicator, label, unit, kind, stops: [{value, color}], domain, nodata, opacity}. */
  function renderLegend(box, legend, config) {
    box.textContent = "";
    box.dataset.indicator = legend.indicator;
    box.appendChild(el("div", "kantong-legend-title", legend.label || legend.indicator));
    var stops = Array.isArray(legend.stops) ? legend.stops : [];
    var opacity = typeof legend.opacity === "number" ? legend.opacity : 1;
    var categorical = legend.kind === "categorical" || stops.some(function (s) {
      return typeof s.value !== "number";
    });
    if (!categorical && unitNote(legend.unit)) {
      box.appendChild(el("div", "kantong-legend-unit", unitNote(legend.unit)));
    }
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
      /* labels at round values (legend.ticks) when the server gives them, else the stops */
      var values = Array.isArray(legend.ticks) && legend.ticks.length > 1 ? legend.ticks
        : stops.map(function (s) { return s.value; });
      var last = -100;
      values.forEach(function (value, i) {
        var pos = 100 * (value - lo) / span;
        var isEnd = i === 0 || i === values.length - 1;
        if (!isEnd && (pos - last < 15 || 100 - pos < 15)) { return; }
        var text = formatValue(value, legend.unit);
        /* values beyond the last stop take its colour: say so ("0.5+") */
        if (i === values.length - 1 && legend.open_high) { text += "+"; }
        var tick = el("span", "kantong-legend-tick", text);
        tick.style.left = pos.toFixed(1) + "%";
        if (i === 0) { tick.classList.add("first"); }
        if (i === values.length - 1) { tick.classList.add("last"); }
        ticks.appendChild(tick);
        last = pos;
      });
      box.appendChild(ticks);
    } else {
      var list = el("ul", "kantong-legend-list");
      var shown = stops.slice(0, 10);
      shown.forEach(function (s) {
        var item = el("li");
        var swatch = el("span", "kantong-swatch");
        swatch.style.background = s.color;
        swatch.style.opacity = String(opacity);
        item.appendChild(swatch);
        var text = typeof s.label === "string" ? s.label
          : legend.indicator === "pocket" ? "Pocket " + s.value : formatValue(s.value, legend.unit);
        item.appendChild(document.createTextNode(text));
        list.appendChild(item);
      });
      if (stops.length > shown.length) {
        list.appendChild(el("li", "kantong-legend-more",
          "… and " + (stops.length - shown.length) + " more"));
      }
      if (!stops.length) { list.appendChild(el("li", "kantong-legend-more", "Nothing to show")); }
      box.appendChild(list);
    }
    var key = el("ul", "kantong-legend-key");
    var entries = [];
    if (!categorical && legend.nodata) {
      entries.push(["kantong-swatch kantong-nodata", legend.nodata_label || "No data",
                    legend.nodata]);
    }
    if (config.hasPockets) { entries.push(["kantong-key kantong-key-pocket", "Poverty pocket"]); }
    (config.pocketStatuses || []).forEach(function (status) {
      entries.push(["kantong-key kantong-key-status", status[0], null, status[1]]);
    });
    if (config.hasSites) { entries.push(["kantong-key kantong-key-site", "Chosen site"]); }
    entries.push(["kantong-key kantong-key-regency", "Regency boundary"]);
    entries.forEach(function (entry) {
      var item = el("li");
      var mark = el("span", entry[0]);
      if (entry[2]) { mark.style.backgroundColor = entry[2]; }
      if (entry[3]) { mark.style.borderColor = entry[3]; }
      item.appendChild(mark);
      item.appendChild(el("span", "kantong-key-text", entry[1]));
      key.appendChild(item);
    });
    box.appendChild(key);
    if (config.minHouseholds) {
      box.appendChild(el("div", "kantong-legend-note",
        "Cells with fewer than " + config.minHouseholds + " households are not shown."));
    }
  }

  function toLatLngBounds(b) {
    return L.latLngBounds([b[1], b[0]], [b[3], b[2]]);
  }

  function rectOf(node) {
    if (!node || !node.getClientRects().length) { return null; }
    var r = node.getBoundingClientRect();
    return r.width && r.height ? r : null;
  }

  function overlaps(a, b, pad) {
    return a.left < b.right + pad && b.left < a.right + pad &&
      a.top < b.bottom + pad && b.top < a.bottom + pad;
  }

  /* Keep the layer control (top right) clear of the legend and compare box (bottom right):
     with many base layers (compare mode) or a short window the list scrolls instead, and on
     very short windows the legend scrolls too. */
  function fitControls(map, legendBox) {
    var container = map.getContainer();
    var layers = container.querySelector(".leaflet-top.leaflet-right .leaflet-control-layers");
    if (!layers) { return; }
    var list = layers.querySelector(".leaflet-control-layers-list") || layers;
    list.style.maxHeight = "";
    legendBox.style.maxHeight = "";
    var gap = 10;
    var bottoms = container.querySelectorAll(".leaflet-bottom.leaflet-right > .leaflet-control");
    function topOfBottom() {
      var top = container.getBoundingClientRect().bottom;
      Array.prototype.forEach.call(bottoms, function (node) {
        var r = rectOf(node);
        if (r) { top = Math.min(top, r.top); }
      });
      return top;
    }
    var excess = layers.getBoundingClientRect().bottom + gap - topOfBottom();
    if (excess > 0) {
      list.style.maxHeight = Math.max(84, list.clientHeight - excess) + "px";
      list.style.overflowY = "auto";
      list.style.overflowX = "hidden";
      /* keep the chosen base layer in sight */
      var checked = list.querySelector("input:checked");
      var label = checked && checked.closest("label");
      if (label) {
        var y = label.offsetTop - list.offsetTop;
        if (y < list.scrollTop || y + label.offsetHeight > list.scrollTop + list.clientHeight) {
          list.scrollTop = Math.max(0, y - 4);
        }
      }
      excess = layers.getBoundingClientRect().bottom + gap - topOfBottom();
    }
    if (excess > 0) {
      legendBox.style.maxHeight = Math.max(64, legendBox.clientHeight - excess) + "px";
      legendBox.style.overflowY = "auto";
      legendBox.style.overflowX = "hidden";
    }
  }

  window.kantongViewer = function (map, config, outlines, markerPairs) {
    var panel = document.getElementById("kantong-panel");
    var legendBox = document.getElementById("kantong-legend");
    var container = map.getContainer();
    window.kantongMap = map;

    var Panel = L.Control.extend({
      options: { position: "topleft" },
      onAdd: function () {
        L.DomEvent.disableClickPropagation(panel);
        L.DomEvent.disableScrollPropagation(panel);
        return panel;
      }
    });
    var Legend = L.Control.extend({
      options: { position: "bottomright" },
      onAdd: function () {
        L.DomEvent.disableClickPropagation(legendBox);
        L.DomEvent.disableScrollPropagation(legendBox);
        return legendBox;
      }
    });
    new Panel().addTo(map);
    new Legend().addTo(map);
    L.control.scale({ imperial: false, position: "bottomleft" }).addTo(map);

    /* Regency names at a point inside each outline (text only: no HTML injection), largest
       regencies first; a label under a control or over an earlier label is hidden. */
    var labelMarkers = (config.regencyLabels || []).map(function (item) {
      var text = el("div", null, item[2]);
      return L.marker([item[0], item[1]], {
        icon: L.divIcon({ className: "kantong-regency-label", html: text, iconSize: null }),
        interactive: false, keyboard: false
      });
    });
    var labels = L.layerGroup(labelMarkers);
    function placeLabels() {
      if (!map.hasLayer(labels)) { return; }
      var blockers = [];
      Array.prototype.forEach.call(container.querySelectorAll(".leaflet-control"), function (c) {
        var r = rectOf(c);
        if (r) { blockers.push(r); }
      });
      var placed = [];
      labelMarkers.forEach(function (marker) {
        var icon = marker.getElement();
        if (!icon) { return; }
        icon.style.visibility = "";
        var r = rectOf(icon.firstChild || icon);
        if (!r) { return; }
        var hidden = blockers.some(function (b) { return overlaps(r, b, 4); }) ||
          placed.some(function (p) { return overlaps(r, p, 2); });
        if (hidden) { icon.style.visibility = "hidden"; } else { placed.push(r); }
      });
    }
    function toggleLabels() {
      var visible = map.hasLayer(outlines) && map.getZoom() >= 7;
      if (visible && !map.hasLayer(labels)) { labels.addTo(map); }
      if (!visible && map.hasLayer(labels)) { map.removeLayer(labels); }
      placeLabels();
    }
    /* Pocket rings at low zoom, where a pocket is a few pixels wide: each ring layer
       follows its overlay ("Poverty pockets", "Pocket changes") and gives way to the
       outlines when zoomed in. */
    function toggleMarkers() {
      (markerPairs || []).forEach(function (pair) {
        var visible = map.hasLayer(pair[0]) && map.getZoom() <= config.pocketMarkerMaxZoom;
        if (visible && !map.hasLayer(pair[1])) { pair[1].addTo(map); }
        if (!visible && map.hasLayer(pair[1])) { map.removeLayer(pair[1]); }
      });
    }
    function relayout() {
      fitControls(map, legendBox);
      placeLabels();
    }
    map.on("zoomend overlayadd overlayremove", function () {
      toggleLabels();
      toggleMarkers();
    });
    map.on("moveend", placeLabels);
    map.on("resize", relayout);
    /* opening the compare table (a <details>) changes the height of the bottom-right stack */
    container.addEventListener("toggle", relayout, true);
    toggleLabels();
    toggleMarkers();
    relayout();

    /* The legend follows the base layer and the zoom: count domains depend on the H3
       resolution drawn at that zoom (?z= lets the server pick it). */
    var requested = null;
    var shownUrl = null;
    function showLegend(indicator) {
      var url = config.legendUrl.replace("{indicator}", encodeURIComponent(indicator)) +
        "?z=" + Math.round(map.getZoom());
      if (url === shownUrl) { return; }
      requested = url;
      legendBox.classList.add("loading");
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (response) {
          if (!response.ok) { throw new Error("HTTP " + response.status + " for " + url); }
          return response.json();
        })
        .then(function (legend) {
          if (requested !== url) { return; }
          renderLegend(legendBox, legend, config);
          legendBox.classList.remove("loading");
          shownUrl = url;
          relayout();
        })
        .catch(function (err) {
          console.warn("kantong: legend unavailable:", err);
          if (requested !== url) { return; }
          legendBox.textContent = "Legend unavailable";
          legendBox.classList.remove("loading");
          relayout();
        });
    }
    var active = config.defaultIndicator;
    map.on("baselayerchange", function (event) {
      var indicator = event.layer && event.layer.options && event.layer.options.indicator;
      if (indicator) { active = indicator; showLegend(indicator); }
    });
    map.on("zoomend", function () { showLegend(active); });
    showLegend(active);

    var select = document.getElementById("kantong-regency");
    var downloads = document.querySelectorAll("a.kantong-download");
    select.addEventListener("change", function () {
      var code = select.value;
      /* downloads follow the selection: ?regency=CODE limits them to that regency */
      Array.prototype.forEach.call(downloads, function (a) {
        var base = a.getAttribute("data-href");
        a.setAttribute("href", code ? base + "?regency=" + encodeURIComponent(code) : base);
      });
      var box = code && config.regencyBounds[code];
      map.fitBounds(toLatLngBounds(box || config.runBounds), { padding: [24, 24] });
      if (outlines) {
        outlines.eachLayer(function (layer) {
          var selected = code && layer.feature.properties.regency_code === code;
          layer.setStyle(selected ? OUTLINE_SELECTED : config.outlineStyle);
          if (selected) { layer.bringToFront(); }
        });
      }
    });
  };
})();
