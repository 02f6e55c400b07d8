/* Kantong viewer: panel, legend, layer control and labels of the Folium map.
 *
 * Loaded from the app itself (no remote code); runs under the CSP
 * "script-src 'self' 'unsafe-inline'; connect-src 'self'" (no eval, only same-origin fetch).
 * The page calls kantongViewer(map, config, layers) once the map and layers exist:
 *   layers = {outlines, control, pockets, sites, tiles: {indicator: TileLayer},
 *             pairs: [[overlay, ringLayer], ...]}.
 * Every text comes from config.messages (webmap/i18n.py): the script holds none of its own;
 * texts, numbers and the legend are in viewer-legend.js (window.kantongText).
 * The inspect, search, permalink, download and print tools are in viewer-tools.js.
 */
(function () {
  "use strict";

  var OUTLINE_SELECTED = { color: "#d95f02", weight: 3.5, opacity: 1 };
  var PHONE = "(max-width: 600px)";

  var text = window.kantongText;
  var msg = text.msg;
  var numberText = text.numberText;
  var el = text.el;
  var renderLegend = text.renderLegend;

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

  /* Hide each label (markers, most important first) that would overlap a box in `taken` or
     an earlier label; a label's `dot` (a circle marker) follows it. Returns the boxes taken. */
  function declutter(markers, taken) {
    markers.forEach(function (marker) {
      var icon = marker.getElement();
      if (!icon) { return; }
      icon.style.visibility = "";
      var r = rectOf(icon.firstChild || icon);
      if (!r) { return; }
      var hide = taken.some(function (t) { return overlaps(r, t, 3); });
      icon.style.visibility = hide ? "hidden" : "";
      if (!hide) { taken.push(r); }
      if (marker.dot) { marker.dot.setStyle({ opacity: hide ? 0 : 1, fillOpacity: hide ? 0 : 1 }); }
    });
    return taken;
  }

  /* Keep the layer control (top right) clear of the bottom-right stack (legend, compare box)
     and, on a phone, of the panel (top left): lists scroll instead of overlapping. */
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

  /* Padding that keeps a popup clear of the controls in the four corners. */
  function popupPadding(map) {
    var container = map.getContainer();
    var box = container.getBoundingClientRect();
    var pad = { top: 10, left: 10, bottom: 10, right: 10 };
    Array.prototype.forEach.call(container.querySelectorAll(".leaflet-control"), function (c) {
      var r = rectOf(c);
      if (!r) { return; }
      var corner = c.parentNode.className;
      if (corner.indexOf("leaflet-top") >= 0) { pad.top = Math.max(pad.top, r.bottom - box.top + 8); }
      if (corner.indexOf("leaflet-bottom") >= 0) {
        pad.bottom = Math.max(pad.bottom, box.bottom - r.top + 8);
      }
    });
    /* a popup taller than the space left would be cut: keep at least 60 % of the height */
    var free = box.height - pad.top - pad.bottom;
    if (free < 0.6 * box.height) {
      var scale = 0.4 * box.height / (pad.top + pad.bottom);
      pad.top = Math.round(pad.top * scale);
      pad.bottom = Math.round(pad.bottom * scale);
    }
    return pad;
  }

  window.kantongViewer = function (map, config, layers) {
    var panel = document.getElementById("kantong-panel");
    var legendBox = document.getElementById("kantong-legend");
    var legendWrap = document.getElementById("kantong-legend-wrap");
    var container = map.getContainer();
    var outlines = layers.outlines;
    var control = layers.control;
    var markerPairs = layers.pairs || [];
    var phone = window.matchMedia ? window.matchMedia(PHONE).matches : false;
    window.kantongMap = map;
    document.documentElement.classList.toggle("kantong-phone", phone);

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
        L.DomEvent.disableClickPropagation(legendWrap);
        L.DomEvent.disableScrollPropagation(legendWrap);
        return legendWrap;
      }
    });
    new Panel().addTo(map);
    new Legend().addTo(map);
    L.control.scale({ imperial: false, position: "bottomleft" }).addTo(map);

    /* Names and keyboard order of the Leaflet controls, in the page's language. */
    var zoomIn = container.querySelector(".leaflet-control-zoom-in");
    var zoomOut = container.querySelector(".leaflet-control-zoom-out");
    [[zoomIn, "zoom_in"], [zoomOut, "zoom_out"]].forEach(function (pair) {
      if (!pair[0]) { return; }
      pair[0].title = msg(config, pair[1]);
      pair[0].setAttribute("aria-label", msg(config, pair[1]));
    });
    var layersBox = container.querySelector(".leaflet-control-layers");
    var toggle = layersBox && layersBox.querySelector(".leaflet-control-layers-toggle");
    if (toggle) {
      toggle.title = msg(config, "layers");
      toggle.setAttribute("aria-label", msg(config, "layers"));
      toggle.setAttribute("aria-expanded", "false");
    }
    if (layersBox) {
      layersBox.setAttribute("role", "region");
      layersBox.setAttribute("aria-label", msg(config, "layers"));
      var section = layersBox.querySelector(".leaflet-control-layers-list");
      if (section) { section.setAttribute("aria-label", msg(config, "layers")); }
    }
    /* Leaflet's attribution prefix links out with an English title: name it plainly */
    if (map.attributionControl) { map.attributionControl.setPrefix("Leaflet"); }

    /* Phone: the panel body, the layer list and the legend start closed, and opening one
       closes the others so that no two overlap. */
    var menuButton = document.getElementById("kantong-menu-toggle");
    var panelBody = document.getElementById("kantong-panel-body");
    var legendDetails = document.getElementById("kantong-legend-details");
    function setMenu(open) {
      panelBody.hidden = !open;
      menuButton.setAttribute("aria-expanded", open ? "true" : "false");
    }
    function closeOthers(except) {
      if (!document.documentElement.classList.contains("kantong-phone")) { return; }
      if (except !== "menu") { setMenu(false); }
      if (except !== "layers" && control) { control.collapse(); }
      if (except !== "legend" && legendDetails) { legendDetails.open = false; }
    }
    menuButton.addEventListener("click", function () {
      var open = panelBody.hidden;
      if (open) { closeOthers("menu"); }
      setMenu(open);
      relayout();
    });
    if (control) {
      var expand = control.expand;
      control.expand = function () {
        closeOthers("layers");
        expand.call(control);
        /* on a phone the open list goes below the title panel instead of over it */
        if (document.documentElement.classList.contains("kantong-phone") && layersBox) {
          layersBox.style.marginTop = "";
          var below = panel.getBoundingClientRect().bottom - layersBox.getBoundingClientRect().top;
          if (below > -8) { layersBox.style.marginTop = (below + 18) + "px"; }
        }
        if (toggle) { toggle.setAttribute("aria-expanded", "true"); }
        relayout();
        return control;
      };
      var collapse = control.collapse;
      control.collapse = function () {
        collapse.call(control);
        if (layersBox) { layersBox.style.marginTop = ""; }
        if (toggle) { toggle.setAttribute("aria-expanded", "false"); }
        return control;
      };
    }
    if (legendDetails) {
      legendDetails.addEventListener("toggle", function () {
        if (legendDetails.open) { closeOthers("legend"); }
        relayout();
      });
    }
    if (phone) {
      setMenu(false);
      /* Leaflet expands a control with collapsed: false whenever a layer is added to it */
      if (control) { control.options.collapsed = true; control.collapse(); }
      if (legendDetails) { legendDetails.open = false; }
      map.on("click", function () { closeOthers(""); });
    } else {
      setMenu(true);
    }
    window.matchMedia && window.matchMedia(PHONE).addEventListener("change", function (e) {
      document.documentElement.classList.toggle("kantong-phone", e.matches);
      if (control) { control.options.collapsed = e.matches; }
      if (!e.matches) { setMenu(true); if (control) { control.expand(); } }
      relayout();
    });

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
      declutter(labelMarkers, blockers);
    }
    function toggleLabels() {
      var visible = map.hasLayer(outlines) && map.getZoom() >= (phone ? 6 : 7);
      if (visible && !map.hasLayer(labels)) { labels.addTo(map); }
      if (!visible && map.hasLayer(labels)) { map.removeLayer(labels); }
      placeLabels();
    }
    function toggleMarkers() {
      markerPairs.forEach(function (pair) {
        var visible = map.hasLayer(pair[0]) && map.getZoom() <= config.pocketMarkerMaxZoom;
        if (visible && !map.hasLayer(pair[1])) { pair[1].addTo(map); }
        if (!visible && map.hasLayer(pair[1])) { map.removeLayer(pair[1]); }
        /* rings above the site markers: a site inside a pocket must not hide its ring */
        if (visible) { pair[1].bringToFront(); }
      });
    }
    function relayout() {
      fitControls(map, legendBox);
      placeLabels();
    }
    /* Popups open clear of the controls (padding from the visible ones) and fit the width. */
    map.on("popupopen", function (event) {
      var pad = popupPadding(map);
      var popup = event.popup;
      popup.options.autoPanPaddingTopLeft = L.point(pad.left, pad.top);
      popup.options.autoPanPaddingBottomRight = L.point(pad.right, pad.bottom);
      popup.options.maxWidth = Math.min(popup.options.maxWidth || 340, container.clientWidth - 40);
      /* taller content scrolls inside the popup (tip and close button stay in view) */
      popup.options.maxHeight = Math.max(120, container.clientHeight - pad.top - pad.bottom - 40);
      popup.update();
      /* long content scrolls: it must be reachable with the keyboard */
      var body = popup.getElement() && popup.getElement().querySelector(".leaflet-popup-content");
      if (body) { body.setAttribute("tabindex", "0"); }
      var close = popup.getElement() && popup.getElement().querySelector(".leaflet-popup-close-button");
      if (close) {
        close.setAttribute("aria-label", msg(config, "close"));
        close.title = msg(config, "close");
      }
    });
    /* Vector features (pockets, rings, sites, facilities) are reached by the pocket list and
       the search box, not one Tab stop each before the panel: out of the Tab order. */
    function untab(node) { if (node && node.setAttribute) { node.setAttribute("tabindex", "-1"); } }
    Array.prototype.forEach.call(container.querySelectorAll(".leaflet-interactive"), untab);
    map.on("layeradd", function (e) { if (e.layer.getElement) { untab(e.layer.getElement()); } });
    map.on("zoomend overlayadd overlayremove", function () {
      toggleLabels();
      toggleMarkers();
    });
    map.on("moveend", placeLabels);
    map.on("resize", relayout);
    container.addEventListener("toggle", relayout, true);
    toggleLabels();
    toggleMarkers();
    relayout();

    /* The legend follows the base layer, the zoom (count domains depend on the H3 resolution
       drawn there) and the overlays shown; it is redrawn only when its content changes. */
    var requested = null;
    var current = null;
    var shownKey = null;
    function overlaysShown() {
      var statuses = markerPairs.length > (layers.pockets ? 1 : 0);
      return {
        pockets: !!(layers.pockets && map.hasLayer(layers.pockets)),
        sites: !!(layers.sites && map.hasLayer(layers.sites)),
        facilities: !!(layers.facilities && map.hasLayer(layers.facilities)),
        outlines: !!(outlines && map.hasLayer(outlines)),
        statuses: statuses && markerPairs.some(function (p) {
          return p[0] !== layers.pockets && map.hasLayer(p[0]);
        })
      };
    }
    function drawLegend() {
      if (!current) { return; }
      var shown = overlaysShown();
      var key = JSON.stringify([current, shown]);
      if (key === shownKey) { return; }
      shownKey = key;
      renderLegend(legendBox, current, config, shown);
      relayout();
    }
    function showLegend(indicator) {
      var url = config.legendUrl.replace("{indicator}", encodeURIComponent(indicator)) +
        "?z=" + Math.round(map.getZoom());
      if (url === requested) { return; }
      requested = url;
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (response) {
          if (!response.ok) { throw new Error("HTTP " + response.status + " for " + url); }
          return response.json();
        })
        .then(function (legend) {
          if (requested !== url) { return; }
          current = legend;
          drawLegend();
        })
        .catch(function (err) {
          console.warn("kantong: legend unavailable:", err);
          if (requested !== url) { return; }
          current = null;
          shownKey = null;
          legendBox.textContent = msg(config, "legend_unavailable");
          relayout();
        });
    }
    var state = { indicator: config.defaultIndicator };
    map.on("baselayerchange", function (event) {
      var indicator = event.layer && event.layer.options && event.layer.options.indicator;
      if (indicator) { state.indicator = indicator; showLegend(indicator); }
    });
    map.on("zoomend", function () { showLegend(state.indicator); });
    map.on("overlayadd overlayremove", drawLegend);
    showLegend(state.indicator);

    var select = document.getElementById("kantong-regency");
    function chooseRegency(code, fit) {
      select.value = code || "";
      state.regency = code || "";
      state.pocket = null;
      var box = code && config.regencyBounds[code];
      if (fit) { map.fitBounds(toLatLngBounds(box || config.runBounds), { padding: [24, 24] }); }
      if (outlines) {
        outlines.eachLayer(function (layer) {
          var selected = code && layer.feature.properties.regency_code === code;
          layer.setStyle(selected ? OUTLINE_SELECTED : config.outlineStyle);
          if (selected) { layer.bringToFront(); }
        });
      }
      map.fire("kantong:scope");
    }
    select.addEventListener("change", function () { chooseRegency(select.value, true); });

    var api = {
      map: map, config: config, layers: layers, state: state, msg: msg, el: el,
      numberText: numberText, closeOthers: closeOthers, relayout: relayout,
      declutter: declutter, rectOf: rectOf,
      chooseRegency: chooseRegency, toLatLngBounds: toLatLngBounds, isPhone: function () {
        return document.documentElement.classList.contains("kantong-phone");
      }
    };
    window.kantongViewerApi = api;
    if (window.kantongTools) { window.kantongTools(api); }
  };
})();
