/* Kantong viewer tools: inspect a cell, search, pocket list, permalink, downloads, print,
 * and the layers loaded on demand (existing facilities, rivers and towns, kecamatan, villages).
 *
 * viewer.js calls window.kantongTools(api) once the map is ready (api: map, config, layers,
 * state, msg, el, numberText, closeOthers, relayout, chooseRegency, toLatLngBounds, isPhone).
 * Texts come from config.messages; data is inserted as text (textContent), never as HTML.
 * Only same-origin URLs given in config are fetched.
 */
(function () {
  "use strict";

  function getJson(url) {
    return fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) {
          var err = new Error("HTTP " + response.status);
          err.status = response.status;
          throw err;
        }
        return response.json();
      });
  }

  window.kantongTools = function (api) {
    var map = api.map, config = api.config, layers = api.layers, state = api.state;
    var msg = function (key, values) { return api.msg(config, key, values); };
    var el = api.el;
    var urls = config.urls;
    var labels = config.fieldLabels || {};
    var container = map.getContainer();

    function num(value, digits) {
      if (value === null || value === undefined) { return "–"; }
      return api.numberText(config, value, digits || 0);
    }
    function pct(value) {
      if (value === null || value === undefined) { return "–"; }
      return api.numberText(config, 100 * value, 1) + (config.lang === "id" ? " %" : "%");
    }
    function row(table, label, value) {
      var tr = el("tr");
      tr.appendChild(el("th", null, label));
      tr.appendChild(el("td", null, value));
      table.appendChild(tr);
    }
    function zoomButton(bbox, text) {
      var button = el("button", "kantong-zoom", text || msg("zoom_to"));
      button.type = "button";
      button.setAttribute("data-bbox", bbox.join(","));
      return button;
    }
    function fitBox(bbox, maxZoom) {
      map.fitBounds(api.toLatLngBounds(bbox), { padding: [30, 30], maxZoom: maxZoom || 14 });
    }

    /* ---- inspect: a click (tap) on the map shows the published figures of the cell there,
       from /api/cells/<h3> (the cell id of the resolution drawn at this zoom from /api/locate). */
    function cellContent(cell) {
      var box = el("div", "kantong-popup kantong-cell");
      box.appendChild(el("h3", null, msg("cell_title", { id: cell.h3 })));
      var table = el("table");
      row(table, msg("f_households"), num(cell.households));
      if ("extreme_households" in cell) { row(table, msg("f_extreme_households"), num(cell.extreme_households)); }
      if ("extreme_rate" in cell) { row(table, msg("f_extreme_rate"), pct(cell.extreme_rate)); }
      if ("priority" in cell) { row(table, msg("f_priority"), num(cell.priority, 2)); }
      if (cell.rank_province !== undefined && cell.rank_province !== null) {
        row(table, msg("f_rank"), num(cell.rank_province));
      }
      row(table, msg("f_pocket"), cell.pocket_id === null || cell.pocket_id === undefined
        ? msg("f_none") : msg("pocket_short", { id: cell.pocket_id }));
      if (cell.regency_name) { row(table, msg("f_regency"), cell.regency_name); }
      if (cell.district_name) { row(table, msg("f_district"), cell.district_name); }
      box.appendChild(table);
      function section(title, prefix, format) {
        var keys = Object.keys(cell).filter(function (k) {
          return k.indexOf(prefix) === 0 && cell[k] !== null;
        });
        if (!keys.length) { return; }
        box.appendChild(el("h4", null, title));
        var t = el("table");
        keys.forEach(function (k) { row(t, labels[k] || k, format(cell[k])); });
        box.appendChild(t);
      }
      section(msg("h_deprivations"), "share_", pct);
      section(msg("h_travel"), "travel_min_", function (v) { return msg("f_minutes", { n: num(v) }); });
      section(msg("h_contrib"), "contrib_", function (v) { return num(v, 3); });
      return box;
    }
    var inspectSeq = 0;
    function inspectAt(latlng) {
      var seq = ++inspectSeq;
      var popup = L.popup({ maxWidth: 340, className: "kantong-cell-popup" })
        .setLatLng(latlng).setContent(el("div", "kantong-popup", msg("loading"))).openOn(map);
      var z = Math.round(map.getZoom());
      getJson(urls.locate + "?lat=" + latlng.lat.toFixed(6) + "&lon=" + latlng.lng.toFixed(6) +
              "&z=" + z)
        .then(function (loc) {
          if (!loc.published) { var none = new Error("not published"); none.status = 404; throw none; }
          return getJson(urls.cell.replace("{h3}", loc.h3));
        })
        .then(function (cell) {
          if (seq === inspectSeq) { popup.setContent(cellContent(cell)); }
        })
        .catch(function (err) {
          if (seq !== inspectSeq) { return; }
          popup.setContent(el("div", "kantong-popup", err.status === 404
            ? msg("cell_withheld", { k: config.minHouseholds }) : msg("cell_error")));
        });
    }
    map.on("click", function (e) { inspectAt(e.latlng); });
    /* buttons inside popups: zoom to a box, inspect the cell under a pocket's popup,
       download one pocket */
    container.addEventListener("click", function (e) {
      var target = e.target.closest ? e.target.closest("button") : null;
      if (!target) { return; }
      if (target.classList.contains("kantong-zoom")) {
        fitBox(target.getAttribute("data-bbox").split(",").map(Number));
      } else if (target.classList.contains("kantong-inspect-here")) {
        var open = map._popup;
        if (open) { inspectAt(open.getLatLng()); }
      } else if (target.classList.contains("kantong-pocket-download")) {
        state.pocket = target.getAttribute("data-pocket");
        map.fire("kantong:scope");
        var details = document.getElementById("kantong-downloads");
        var body = document.getElementById("kantong-panel-body");
        if (body && body.hidden) { document.getElementById("kantong-menu-toggle").click(); }
        if (details) { details.open = true; details.scrollIntoView({ block: "nearest" }); }
      }
    });

    /* ---- search box over regencies, kecamatan, villages and pocket ids (/api/search) */
    var input = document.getElementById("kantong-search");
    var results = document.getElementById("kantong-search-results");
    var status = document.getElementById("kantong-search-status");
    var found = null;
    var timer = null;
    var searchSeq = 0;
    function choose(item) {
      if (found) { map.removeLayer(found); }
      found = L.circleMarker([item.centre[1], item.centre[0]], {
        radius: 9, color: "#d95f02", weight: 3, fill: false, interactive: false
      }).bindTooltip(item.name, { permanent: true, direction: "top", className: "kantong-found" })
        .addTo(map);
      if (item.kind === "regency") { api.chooseRegency(item.codes.regency_code, false); }
      if (item.kind === "pocket") { state.pocket = String(item.codes.pocket_id); map.fire("kantong:scope"); }
      fitBox(item.bbox, item.kind === "village" ? 13 : 12);
      results.textContent = "";
      if (api.isPhone()) { api.closeOthers(""); }
    }
    function showResults(items) {
      results.textContent = "";
      status.textContent = items.length ? "" : msg("search_none");
      items.forEach(function (item) {
        var li = el("li");
        var button = el("button", "kantong-result");
        button.type = "button";
        button.appendChild(el("span", "kantong-result-name", item.kind === "pocket"
          ? msg("pocket_short", { id: item.name }) : item.name));
        var where = [msg("kind_" + item.kind)];
        if (item.codes.district_name) { where.push(item.codes.district_name); }
        if (item.codes.regency_name) { where.push(item.codes.regency_name); }
        button.appendChild(el("span", "kantong-result-where", where.join(", ")));
        button.addEventListener("click", function () { choose(item); });
        li.appendChild(button);
        results.appendChild(li);
      });
      api.relayout();
    }
    function search() {
      var q = input.value.trim();
      var seq = ++searchSeq;
      if (q.length < 1) { showResults([]); status.textContent = ""; return; }
      getJson(urls.search + "?q=" + encodeURIComponent(q))
        .then(function (body) { if (seq === searchSeq) { showResults(body.results); } })
        .catch(function () { if (seq === searchSeq) { status.textContent = msg("search_error"); } });
    }
    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(search, 200);
    });
    input.addEventListener("keydown", function (e) {
      if (e.key === "Enter") {
        e.preventDefault();
        clearTimeout(timer);
        var first = results.querySelector("button");
        if (first) { first.click(); } else { search(); }
      } else if (e.key === "ArrowDown") {
        var next = results.querySelector("button");
        if (next) { e.preventDefault(); next.focus(); }
      } else if (e.key === "Escape") {
        results.textContent = "";
      }
    });
    results.addEventListener("keydown", function (e) {
      var buttons = Array.prototype.slice.call(results.querySelectorAll("button"));
      var i = buttons.indexOf(document.activeElement);
      if (e.key === "ArrowDown" && i < buttons.length - 1) { e.preventDefault(); buttons[i + 1].focus(); }
      if (e.key === "ArrowUp") { e.preventDefault(); (i > 0 ? buttons[i - 1] : input).focus(); }
      if (e.key === "Escape") { results.textContent = ""; input.focus(); }
    });

    /* ---- ranked pocket list: zoom to the pocket and open its popup */
    function pocketLayer(id) {
      var hit = null;
      if (layers.pockets) {
        layers.pockets.eachLayer(function (l) {
          if (String(l.feature.properties.pocket_id) === String(id)) { hit = l; }
        });
      }
      return hit;
    }
    Array.prototype.forEach.call(document.querySelectorAll("button.kantong-pocket-item"), function (b) {
      b.addEventListener("click", function () {
        var id = b.getAttribute("data-pocket");
        var bbox = b.getAttribute("data-bbox").split(",").map(Number);
        if (layers.pockets && !map.hasLayer(layers.pockets)) { map.addLayer(layers.pockets); }
        if (api.isPhone()) { api.closeOthers(""); }
        var opened = false;
        var open = function () {
          if (opened) { return; }
          opened = true;
          map.off("moveend", open);
          var l = pocketLayer(id);
          if (l) { l.openPopup(api.toLatLngBounds(bbox).getCenter()); }
        };
        map.on("moveend", open);  /* before the move: an unanimated move ends at once */
        fitBox(bbox, 13);
        setTimeout(open, 800);  /* already in view: no move at all */
      });
    });

    /* ---- the view in the URL (layer, regency, centre, zoom, language) */
    var langLink = document.getElementById("kantong-lang");
    function writeUrl() {
      var c = map.getCenter();
      var params = new URLSearchParams();
      params.set("lang", config.lang);
      params.set("layer", state.indicator);
      if (state.regency) { params.set("regency", state.regency); }
      params.set("lat", c.lat.toFixed(5));
      params.set("lon", c.lng.toFixed(5));
      params.set("z", String(Math.round(map.getZoom())));
      history.replaceState(null, "", location.pathname + "?" + params.toString());
      if (langLink) {
        params.set("lang", config.lang === "id" ? "en" : "id");
        langLink.setAttribute("href", location.pathname + "?" + params.toString());
      }
    }
    (function readUrl() {
      var params = new URLSearchParams(location.search);
      var layer = params.get("layer");
      var tiles = layers.tiles || {};
      if (layer && tiles[layer] && layer !== state.indicator) {
        if (tiles[state.indicator]) { map.removeLayer(tiles[state.indicator]); }
        map.addLayer(tiles[layer]);
        state.indicator = layer;
      }
      var regency = params.get("regency");
      var fit = !(params.has("lat") && params.has("lon") && params.has("z"));
      if (regency && config.regencyBounds[regency]) { api.chooseRegency(regency, fit); }
      var lat = parseFloat(params.get("lat")), lon = parseFloat(params.get("lon"));
      var z = parseInt(params.get("z"), 10);
      if (!fit && isFinite(lat) && isFinite(lon) && isFinite(z) && Math.abs(lat) <= 90 &&
          Math.abs(lon) <= 180) {
        map.setView([lat, lon], Math.max(map.getMinZoom(), Math.min(map.getMaxZoom(), z)),
                    { animate: false });
      }
    })();
    map.on("moveend baselayerchange kantong:scope", writeUrl);
    writeUrl();
    var copy = document.getElementById("kantong-copy-link");
    if (copy) {
      copy.addEventListener("click", function () {
        writeUrl();
        var done = function () { copy.textContent = msg("link_copied"); };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(location.href).then(done, done);
        } else {
          var area = el("textarea");
          area.value = location.href;
          document.body.appendChild(area);
          area.select();
          try { document.execCommand("copy"); } catch (err) { /* nothing to do */ }
          document.body.removeChild(area);
          done();
        }
      });
    }

    /* ---- downloads: the links follow the chosen regency (or pocket); sizes from HEAD */
    var downloads = document.getElementById("kantong-downloads");
    var scope = document.getElementById("kantong-download-scope");
    function sizeText(bytes) {
      if (bytes < 1024) { return num(bytes) + " B"; }
      if (bytes < 1048576) { return num(bytes / 1024, 0) + " KB"; }
      return num(bytes / 1048576, 1) + " MB";
    }
    function updateDownloads() {
      var query = state.pocket ? "?pocket=" + encodeURIComponent(state.pocket)
        : state.regency ? "?regency=" + encodeURIComponent(state.regency) : "";
      var select = document.getElementById("kantong-regency");
      scope.textContent = state.pocket ? msg("pocket_short", { id: state.pocket })
        : state.regency ? select.options[select.selectedIndex].getAttribute("data-name")
          : msg("download_all");
      Array.prototype.forEach.call(downloads.querySelectorAll("a.kantong-download"), function (a) {
        var layer = a.getAttribute("data-layer");
        var hidden = state.pocket && layer === "sites";
        a.parentNode.hidden = !!hidden;
        a.setAttribute("href", a.getAttribute("data-href") + query);
        var size = a.parentNode.querySelector(".kantong-size");
        size.textContent = "";
        if (!downloads.open || hidden) { return; }
        size.textContent = "…";
        var href = a.getAttribute("href");
        fetch(href, { method: "HEAD", credentials: "same-origin" }).then(function (r) {
          if (a.getAttribute("href") !== href) { return; }
          var n = r.ok ? parseInt(r.headers.get("Content-Length"), 10) : NaN;
          size.textContent = isFinite(n) ? sizeText(n) : msg("size_unknown");
        }).catch(function () { size.textContent = msg("size_unknown"); });
      });
    }
    if (downloads) {
      downloads.addEventListener("toggle", updateDownloads);
      map.on("kantong:scope", updateDownloads);
      updateDownloads();
    }

    /* ---- print: the map with title, legend, scale, date, run and source; no controls */
    var printButton = document.getElementById("kantong-print");
    var printInfo = document.getElementById("kantong-print-info");
    function beforePrint() {
      var date = new Date().toLocaleDateString(config.locale, { year: "numeric", month: "long",
                                                                day: "numeric" });
      printInfo.textContent = msg("print_title", { date: date, run_id: config.runId,
                                                   source: msg("data_source") });
      document.documentElement.classList.add("kantong-printing");
      if (api.isPhone()) { api.closeOthers(""); }
      if (layers.control) { layers.control.collapse(); }
      var legendDetails = document.getElementById("kantong-legend-details");
      if (legendDetails) { legendDetails.open = true; }
      map.invalidateSize();
    }
    function afterPrint() {
      document.documentElement.classList.remove("kantong-printing");
      if (layers.control && !api.isPhone()) { layers.control.expand(); }
      map.invalidateSize();
    }
    window.addEventListener("beforeprint", beforePrint);
    window.addEventListener("afterprint", afterPrint);
    if (printButton) {
      printButton.addEventListener("click", function () { beforePrint(); window.print(); });
    }

    /* ---- layers loaded on demand ---------------------------------------------------- */
    /* Text labels never overlap: a town or village name over a control, a regency name or an
       earlier label (the lists come most important first) is hidden until there is room. */
    function fixedBoxes() {
      var out = [];
      Array.prototype.forEach.call(container.querySelectorAll(
        ".leaflet-control, .kantong-regency-label > div"), function (node) {
        if (node.closest(".kantong-regency-label") &&
            node.parentNode.style.visibility === "hidden") { return; }
        var r = api.rectOf(node);
        if (r) { out.push(r); }
      });
      return out;
    }
    var placeLabels = [];
    var villageLabels = [];
    function declutterAll() {
      var taken = api.declutter(placeLabels, fixedBoxes());
      api.declutter(villageLabels, taken);
    }
    function lazyOverlay(layer, url, label, show, onData) {
      var loaded = false;
      function load() {
        if (loaded) { return; }
        loaded = true;
        getJson(url).then(function (doc) { if (onData) { onData(doc); } else { layer.addData(doc); } })
          .catch(function (err) { loaded = false; console.warn("kantong: " + url + ":", err); });
      }
      map.on("overlayadd", function (e) { if (e.layer === layer) { load(); } });
      if (layers.control) { layers.control.addOverlay(layer, label); }
      if (show) { layer.addTo(map); load(); }
      return layer;
    }
    /* existing facilities (public infrastructure points) from /api/facilities */
    if (urls.facilities && config.facilityCount > 0) {
      var facilityCanvas = L.canvas({ padding: 0.3 });  /* thousands of points: one canvas */
      layers.facilities = lazyOverlay(L.geoJSON(null, {
        pointToLayer: function (f, latlng) {
          return L.circleMarker(latlng, { radius: 4.5, color: "#1b1b1b", weight: 1.5,
                                          fillColor: "#ffffff", fillOpacity: 1,
                                          renderer: facilityCanvas,
                                          bubblingMouseEvents: false });
        },
        onEachFeature: function (f, l) {
          var p = f.properties;
          var kind = (config.facilityLabels || {})[p.type] || p.type;
          var box = el("div", "kantong-popup");
          box.appendChild(el("h3", null, p.name || kind));
          var t = el("table");
          row(t, msg("f_type"), kind);
          if (p.name) { row(t, msg("f_name"), p.name); }
          row(t, msg("f_coordinates"), num(f.geometry.coordinates[1], 5) + ", " +
              num(f.geometry.coordinates[0], 5));
          box.appendChild(t);
          l.bindPopup(box, { maxWidth: 300 });
          l.bindTooltip((p.name ? p.name + " · " : "") + kind);
        }
      }), urls.facilities, msg("layer_facilities", { n: num(config.facilityCount) }), false);
    }
    /* rivers and towns (Natural Earth) */
    if (urls.context) {
      var context = L.layerGroup();
      lazyOverlay(context, urls.context, msg("layer_context"), true, function (doc) {
        L.geoJSON(doc.rivers, { style: { color: "#4a90c2", weight: 1.6, opacity: 0.9 },
                                interactive: false }).addTo(context);
        (doc.places.features || []).forEach(function (f) {
          var c = f.geometry.coordinates;
          var label = L.marker([c[1], c[0]], { interactive: false, keyboard: false,
            icon: L.divIcon({ className: "kantong-place-label",
                              html: el("div", null, f.properties.name), iconSize: null })
          }).addTo(context);
          label.dot = L.circleMarker([c[1], c[0]], { radius: 2.5, color: "#333", weight: 1,
                                                     fillColor: "#333", fillOpacity: 1,
                                                     interactive: false }).addTo(context);
          placeLabels.push(label);
        });
        declutterAll();
      });
      map.on("moveend overlayadd", declutterAll);
    }
    /* kecamatan boundaries from zoom 9, village names from zoom 12 (only those in view) */
    if (urls.districts) {
      var districts = L.geoJSON(null, { style: { color: "#8c8c8c", weight: 0.8, dashArray: "3 3",
                                                 fill: false }, interactive: false });
      lazyOverlay(districts, urls.districts, msg("layer_districts"), map.getZoom() >= 9);
      map.on("zoomend", function () {
        if (map.getZoom() >= 9 && !map.hasLayer(districts) && !state.districtsOff) {
          map.addLayer(districts);
        }
      });
      map.on("overlayremove", function (e) { if (e.layer === districts) { state.districtsOff = true; } });
    }
    /* the coastline at the shipped precision from zoom 10 (the background is simplified) */
    if (urls.coast) {
      var coast = L.geoJSON(null, { style: { color: "#4a4a4a", weight: 1.2, fill: false },
                                    interactive: false });
      layers.coast = lazyOverlay(coast, urls.coast, msg("layer_coast"), map.getZoom() >= 10);
      map.on("zoomend", function () {
        if (map.getZoom() >= 10 && !map.hasLayer(coast) && !state.coastOff) {
          map.addLayer(coast);
        }
      });
      map.on("overlayremove", function (e) { if (e.layer === coast) { state.coastOff = true; } });
    }
    if (urls.villages) {
      var villages = L.layerGroup();
      var villagePoints = null;
      var drawVillages = function () {
        villages.clearLayers();
        villageLabels = [];
        if (!villagePoints || map.getZoom() < 12) { return; }
        var view = map.getBounds();
        var shown = 0;
        villagePoints.some(function (v) {
          if (!view.contains([v[1], v[0]])) { return false; }
          villageLabels.push(L.marker([v[1], v[0]], { interactive: false, keyboard: false,
            icon: L.divIcon({ className: "kantong-village-label", html: el("div", null, v[2]),
                              iconSize: null }) }).addTo(villages));
          shown += 1;
          return shown >= 250;
        });
        declutterAll();
      };
      lazyOverlay(villages, urls.villages, msg("layer_villages"), true, function (doc) {
        villagePoints = doc.villages;
        drawVillages();
      });
      map.on("moveend", drawVillages);
    }
  };
})();
